"""A real PostgreSQL server for the tests (a helper module, not a test module).

:class:`PostgresServer` runs ``initdb`` and ``pg_ctl start`` in a temporary folder: the server
listens on 127.0.0.1 only, on a free port, with its unix socket in that folder, and is stopped
(``pg_ctl stop -m immediate``) and removed by :meth:`PostgresServer.stop`. Over TCP it checks
passwords (scram-sha-256): the tests connect as the role ``grader`` with the password ``secret``,
with URLs of the documented form ``postgresql://grader:secret@127.0.0.1:PORT/cnn_course``. The
superuser ``postgres`` connects through the unix socket without a password, to create roles and
databases. initdb refuses to run as root: under root the folder belongs to ``nobody`` and initdb and
pg_ctl run as ``nobody``.

The binaries are found on PATH or in /usr/lib/postgresql/<version>/bin (Debian's ``postgresql``
package, which ``bash scripts/install-system-packages.sh`` installs).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER, PASSWORD = "grader", "secret"
SUPERUSER = "postgres"
RUN_AS = "nobody"  # who runs the server when the tests run as root


class PostgresNotInstalled(RuntimeError):
    """initdb and pg_ctl were found neither on PATH nor in /usr/lib/postgresql/*/bin."""


def bin_dir() -> Path:
    """The folder of PostgreSQL's server binaries (the newest version when several are
    installed)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
    )
    if versions:
        return Path(versions[-1]).parent
    raise PostgresNotInstalled(
        "PostgreSQL's server (initdb, pg_ctl) is not installed: run "
        "`bash scripts/install-system-packages.sh` (Debian's postgresql package)"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One PostgreSQL server in a temporary folder; :meth:`start` it, :meth:`stop` it."""

    def __init__(self):
        self.bin = bin_dir()
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="cnnbook-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.as_root = os.geteuid() == 0

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        """A PostgreSQL binary run as the server's owner; an error with its output when it fails."""
        prefix = ["runuser", "-u", RUN_AS, "--"] if self.as_root else []
        done = subprocess.run(
            [*prefix, str(self.bin / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.folder,
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.is_file() else ""
            raise RuntimeError(
                f"{args[0]} failed ({done.returncode}):\n"
                f"{done.stdout[-2000:]}{done.stderr[-2000:]}\n{log}"
            )
        return done

    def start(self) -> PostgresServer:
        """initdb, settings for a throw-away server, pg_ctl start (waits until it accepts
        connections)."""
        if self.as_root:
            owner = pwd.getpwnam(RUN_AS)
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "-E",
            "UTF8",
            "--locale=C",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": self.port,
            "unix_socket_directories": f"'{self.folder}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("".join(f"{key} = {value}\n" for key, value in settings.items()))
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
        self.admin(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")
        return self

    def admin(self, sql: str) -> None:
        """Run one statement as the superuser, outside a transaction (CREATE/DROP DATABASE need
        that)."""
        import psycopg

        with psycopg.connect(
            host=str(self.folder),
            port=self.port,
            user=SUPERUSER,
            dbname="postgres",
            autocommit=True,
        ) as conn:
            conn.execute(sql)

    def fresh_database(self, name: str = "cnn_course") -> str:
        """An empty database ``name`` owned by ``grader`` (dropped first if it exists); its URL."""
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.admin(f"CREATE DATABASE {name} OWNER {USER}")
        return self.url(name)

    def url(self, name: str = "cnn_course") -> str:
        """The documented URL form: postgresql://grader:secret@127.0.0.1:PORT/<name>."""
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stop the server at once (its data is thrown away) and remove the folder."""
        try:
            if (self.data / "postmaster.pid").is_file():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
