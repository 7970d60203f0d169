"""``python -m cnnbook.lms formgrader``: nbgrader's formgrader (manual grading, score overrides,
comments) on http://127.0.0.1:PORT/formgrader, as the user who runs it, never as root.

It starts ``jupyter server`` in the course folder with only nbgrader's formgrader extension (the
students' assignment list, course list and validate button are for a shared JupyterHub, which this
course does not use), listening on 127.0.0.1 only, with a token of its own, printed in the URL.
The formgrader checks nbgrader's *exchange* folder (how a JupyterHub hands out and collects
assignments; here the LMS does that) and warns on every page when it does not exist: the command
gives it an empty one, ``exchange/`` in the course folder. Stop it with Ctrl-C.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from cnnbook.lms.course import LmsError, load_course

EXTENSIONS = {
    "nbgrader.server_extensions.formgrader": True,
    "nbgrader.server_extensions.assignment_list": False,
    "nbgrader.server_extensions.course_list": False,
    "nbgrader.server_extensions.validate_assignment": False,
}


def server_command(root: Path, port: int, token: str) -> list[str]:
    extensions = [f"--ServerApp.jpserver_extensions={name}={on}" for name, on in EXTENSIONS.items()]
    return [
        sys.executable,
        "-m",
        "jupyter_server",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.open_browser=False",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        # Jupyter sets its login cookie for the path of the page the token came with; on a
        # formgrader page (/formgrader/...) the formgrader's own API calls would then go without it
        # and be sent to the login page. One cookie for the whole server:
        "--IdentityProvider.cookie_options=path=/",
        f"--Exchange.root={root / 'exchange'}",
        *extensions,
    ]


def run_formgrader(course_root: Path, port: int) -> int:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        raise LmsError(
            "the formgrader runs students' notebooks in your browser and must not run as root: "
            "start it as your normal user (e.g. `sudo -u <you> python -m cnnbook.lms formgrader`)"
        )
    course = load_course(course_root)
    (course.root / "exchange").mkdir(exist_ok=True)
    token = secrets.token_urlsafe(24)
    print(f"formgrader: http://127.0.0.1:{port}/formgrader?token={token}", flush=True)
    try:
        return subprocess.call(server_command(course.root, port, token), cwd=course.root)
    except KeyboardInterrupt:
        return 130
