"""Run students' notebooks in a sandboxed kernel when nbgrader autogrades them.

nbgrader executes each submission with the grader's own rights: without this module a
notebook can read ``gradebook.db`` and ``solutions/``, reach the network, or leave a process
behind that edits grades later. This module provides

* the ``cnnbook-sandbox`` Jupyter kernel (``python -m cnnbook.sandbox install``): its launcher
  drops to the unprivileged user ``nobody`` when started as root, sets resource limits
  (address space, CPU seconds, processes/threads, file size, open files) and starts ipykernel
  inside bubblewrap with no network, a read-only root, private ``/tmp`` and ``$HOME``, the course
  folder hidden (only the Python environment, the ``cnnbook`` package and the dataset cache are
  visible, read-only), a private working folder in place of the notebook's folder (the assignment's
  other files read-only in it, no notebook: the one being graded holds the hidden tests), in a new
  pid namespace that dies with its parent;
* :func:`configure_limits`, which the grader's one entry point (:func:`cnnbook.grader.configure`)
  calls to pass resource limits to the launcher.

nbgrader runs the kernel through ``cnnbook.grader.preprocessors.sandboxedexecute``.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

KERNEL_NAME = "cnnbook-sandbox"
NOBODY = 65534
ENV_COURSE = "CNNBOOK_SANDBOX_COURSE_ROOT"
ENV_LIMITS = "CNNBOOK_SANDBOX_LIMITS"
# Top-level packages the kernel may not import (comma-separated), set by the grader per assignment.
ENV_HIDDEN_PACKAGES = "CNNBOOK_SANDBOX_HIDDEN_PACKAGES"
SCRATCH_MB = 256  # size of each of the kernel's tmpfs scratch spaces: its /tmp and its working folder
MAX_KERNEL_RESTARTS = 3  # per notebook, after a cell hangs or kills its kernel (see SandboxedExecute)

# Per kernel. Measured in the sandbox on 2 cores: TensorFlow import + MNIST + one epoch of a small
# Conv2D model peaks at 2.3 GB of address space (VmPeak) and 20 threads; the limits leave a wide margin.
DEFAULT_LIMITS = {
    "address_space_mb": 8192,  # RLIMIT_AS (TensorFlow reserves a lot of virtual memory)
    "cpu_seconds": 600,  # RLIMIT_CPU of the kernel process (all its threads together)
    "processes": 256,  # RLIMIT_NPROC: processes *and threads* of the sandbox user
    "file_size_mb": 256,  # RLIMIT_FSIZE: largest file the kernel may write
    "open_files": 1024,  # RLIMIT_NOFILE
}


class SandboxError(RuntimeError):
    """The sandbox cannot be set up; the message says what is wrong and how to fix it."""


# --------------------------------------------------------------------------- kernelspec


def kernel_spec() -> dict:
    return {
        "argv": [sys.executable, "-m", "cnnbook.sandbox", "launch", "{connection_file}"],
        "display_name": "Python 3 (cnnbook grading sandbox)",
        "language": "python",
        # Interrupts as messages: the launcher is not the kernel, a signal to it would be lost.
        "interrupt_mode": "message",
        "metadata": {"debugger": False},
    }


def kernel_dir(prefix: str | os.PathLike | None = None) -> Path:
    return Path(prefix or sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME


def install(prefix: str | os.PathLike | None = None) -> Path:
    """Write ``kernel.json`` into ``<prefix>/share/jupyter/kernels/cnnbook-sandbox`` (idempotent)."""
    folder = kernel_dir(prefix)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "kernel.json"
    text = json.dumps(kernel_spec(), indent=1) + "\n"
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path


def bwrap_problem() -> str | None:
    """``None`` when bubblewrap can start a sandbox here, else what is wrong and how to fix it."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return (
            "bubblewrap (bwrap) is not installed, so student code cannot be sandboxed. "
            "Fix: install it (Debian/Ubuntu: apt-get install bubblewrap), or, only if every "
            "submission is trusted, call configure(c, root, require_sandbox=False) in nbgrader_config.py."
        )
    cmd = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", *_unshare(),
           "--die-with-parent", *_drop_privileges(), "true"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not be started ({exc})."
    if done.returncode != 0:
        return (
            f"bubblewrap is installed but cannot create a sandbox here: {done.stderr.strip()} "
            "Fix: allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
            "or in a container run it with --security-opt seccomp=unconfined / --privileged)."
        )
    return None


# --------------------------------------------------------------------------- launcher


def _unshare() -> list[str]:
    # As root, no user namespace: it would map only uid 0, and setpriv could not become nobody.
    if os.geteuid() == 0:
        return ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    return ["--unshare-all"]


def _drop_privileges() -> list[str]:
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--"]


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent (nbgrader) goes away."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _limits() -> dict:
    limits = dict(DEFAULT_LIMITS)
    if os.environ.get(ENV_LIMITS):
        limits.update(json.loads(os.environ[ENV_LIMITS]))
    return limits


def _set_limits(limits: dict) -> None:
    mb = 1024 * 1024
    pairs = [
        (resource.RLIMIT_AS, limits["address_space_mb"] * mb),
        (resource.RLIMIT_CPU, limits["cpu_seconds"]),
        (resource.RLIMIT_NPROC, limits["processes"]),
        (resource.RLIMIT_FSIZE, limits["file_size_mb"] * mb),
        (resource.RLIMIT_NOFILE, limits["open_files"]),
        (resource.RLIMIT_CORE, 0),
    ]
    for which, value in pairs:
        resource.setrlimit(which, (int(value), int(value)))


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _open_parents(path: Path) -> list[str]:
    """bwrap arguments that make the parent folders of ``path`` traversable.

    A mount under a tmpfs (/tmp, /root, the hidden course folder) makes bwrap create the missing
    parents with mode 0700, which `nobody` cannot enter; ``--perms 0755 --dir`` creates them open
    (folders that already exist are left as they are).
    """
    args = []
    for parent in reversed(path.parents[:-1]):  # from the top, without "/"
        args += ["--perms", "0755", "--dir", str(parent)]
    return args


def _bind(path: Path, writable: bool = False) -> list[str]:
    """bwrap arguments that show ``path`` at the same place, with traversable parent folders."""
    return _open_parents(path) + ["--bind" if writable else "--ro-bind", str(path), str(path)]


def _working_folder(cwd: Path) -> list[str]:
    """bwrap arguments that give the kernel a private working folder at ``cwd`` with the assignment's files.

    nbgrader runs the kernel in ``autograded/<student>/<assignment>/``, where it has just written the
    notebook being graded *with its hidden tests*, and where it later writes (as root) the graded
    notebook and the assignment's next notebooks; generate_feedback copies that folder's other files to
    the students. So the kernel sees a fresh tmpfs there instead: no notebook (nothing to read the hidden
    tests from), the assignment's other files read-only, and whatever it writes (a file, a symlink named
    like a notebook) vanishes with the kernel instead of being read, written through or handed out.
    """
    args = _open_parents(cwd) + ["--size", str(SCRATCH_MB * 1024 * 1024), "--perms", "1777",
                                 "--tmpfs", str(cwd)]
    for entry in sorted(cwd.glob("*")):  # dotfiles included
        # Symlinks are left out: bwrap runs as root and would follow them anywhere.
        if ".ipynb" not in entry.name.lower() and not entry.is_symlink():
            args += ["--ro-bind", str(entry), str(entry)]
    return args


def sandbox_command(connection_fd: int, kernel_args: list[str], cwd: Path, socket_dir: Path,
                    course_root: Path | None, data_fds: dict[str, int]) -> list[str]:
    """The full command line: bubblewrap, the privilege drop inside it, then ipykernel.

    As root, bubblewrap sets up the mounts (it can read the grader's files to bind them), then
    ``setpriv`` inside the sandbox becomes ``nobody`` with no capabilities before Python starts:
    a user namespace alone would keep the host uid 0 and read root-owned files.
    """
    bwrap = shutil.which("bwrap") or "/usr/bin/bwrap"
    cmd = [
        bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
        *_unshare(), "--die-with-parent", "--new-session",
        "--size", str(SCRATCH_MB * 1024 * 1024), "--perms", "1777", "--tmpfs", "/tmp",
        "--tmpfs", "/root",  # the grader's home
    ]
    base = Path(sys.base_prefix).resolve()  # the Python the venv is made from (pyenv keeps it in /root)
    if _inside(base, Path("/root")):
        cmd += _bind(base)
    # Hide the course folder (gradebook.db, solutions/, other students' work) and bind back
    # only what the kernel needs, read-only.
    if course_root is not None and course_root != Path("/"):
        cmd += ["--tmpfs", str(course_root)]
    # Bound back read-only after the tmpfs mounts above, wherever they live: a project checked out
    # under /tmp or inside the course folder would otherwise lose its Python environment.
    import cnnbook

    needed = {Path(sys.prefix).resolve(), Path(cnnbook.__file__).resolve().parent}
    data = _data_dir()
    if data.is_dir():
        needed.add(data)
    for path in sorted(needed):
        cmd += _bind(path)
    for dest, fd in data_fds.items():  # dataset files only root may read: readable copies
        cmd += ["--perms", "0444", "--ro-bind-data", str(fd), dest]
    cmd += _working_folder(cwd) + _bind(socket_dir, writable=True) + [
            "--perms", "0444", "--ro-bind-data", str(connection_fd), "/tmp/.kernel.json", "--chdir", str(cwd)]
    cmd += _drop_privileges() + [sys.executable, "-m", "ipykernel_launcher", "-f", "/tmp/.kernel.json", *kernel_args]
    return cmd


def _data_dir() -> Path:
    """The dataset cache the grader uses (``cnnbook.data.cache_dir()``), shown read-only to the kernel."""
    from cnnbook.data import cache_dir

    return Path(cache_dir()).resolve()


def _kernel_env(course_root: Path | None) -> dict:
    keep = ("LANG", "LC_ALL", "TZ", "NBGRADER_EXECUTION", "TF_CPP_MIN_LOG_LEVEL",
            "TF_ENABLE_ONEDNN_OPTS", "PYDEVD_DISABLE_FILE_VALIDATION", "CNNBOOK_DATA_DIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update({
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp/.matplotlib",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    env.setdefault("LANG", "C.UTF-8")
    env["CNNBOOK_DATA_DIR"] = str(_data_dir())
    # Deliberately absent: JPY_PARENT_PID (pids differ inside the sandbox), NBGRADER_DB_URL
    # (may hold a database password) and anything else of the grader's environment.
    return env


def launch(argv: list[str]) -> int:
    """Entry point of the kernelspec: ``launch <connection_file> [ipykernel args...]``."""
    _die_with_parent()
    if not argv:
        print("usage: python -m cnnbook.sandbox launch <connection_file> [kernel args]", file=sys.stderr)
        return 2
    connection_file, kernel_args = Path(argv[0]), argv[1:]
    info = json.loads(connection_file.read_text())
    if info.get("transport") != "ipc":
        print("cnnbook-sandbox: the kernel has no network, so it needs IPC transport. Fix: use "
              "cnnbook.sandbox.configure(c, root) in nbgrader_config.py (it sets this up).", file=sys.stderr)
        return 2
    socket_dir = Path(info["ip"]).parent
    socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(socket_dir, NOBODY, NOBODY)
    cwd = Path.cwd().resolve()
    root = os.environ.get(ENV_COURSE)
    course_root = Path(root).resolve() if root else None
    fds = [os.open(connection_file, os.O_RDONLY)]
    data_fds: dict[str, int] = {}
    data = _data_dir()
    if os.geteuid() == 0 and data.is_dir():
        for f in sorted(data.glob("*.npz")):
            if not f.stat().st_mode & 0o004:
                data_fds[str(f)] = os.open(f, os.O_RDONLY)
                fds.append(data_fds[str(f)])
    cmd = sandbox_command(fds[0], kernel_args, cwd, socket_dir, course_root, data_fds)
    limits = _limits()
    proc = subprocess.Popen(cmd, env=_kernel_env(course_root), pass_fds=fds, stdout=subprocess.DEVNULL,
                            preexec_fn=lambda: _set_limits(limits))
    for fd in fds:
        os.close(fd)

    def forward(signum, _frame):
        proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = proc.wait()
    for sock in socket_dir.glob(Path(info["ip"]).name + "-*"):
        sock.unlink(missing_ok=True)
    return code


def configure_limits(course_root, limits: dict | None = None) -> None:
    """Tell the launcher (which inherits nbgrader's environment) the course folder and the limits.

    ``limits`` overrides entries of :data:`DEFAULT_LIMITS`.
    """
    os.environ[ENV_COURSE] = str(Path(course_root).resolve())
    if limits:
        unknown = set(limits) - set(DEFAULT_LIMITS)
        if unknown:
            raise SandboxError(f"unknown sandbox limit(s) {sorted(unknown)}; known: {sorted(DEFAULT_LIMITS)}")
        os.environ[ENV_LIMITS] = json.dumps({**DEFAULT_LIMITS, **limits})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["launch"]:
        return launch(argv[1:])
    if argv[:1] == ["install"]:
        path = install(argv[1] if len(argv) > 1 else None)
        print(f"installed the {KERNEL_NAME} kernel: {path}")
        problem = bwrap_problem()
        if problem:
            print(f"warning: {problem}", file=sys.stderr)
        return 0
    if argv[:1] == ["check"]:
        problem = bwrap_problem()
        print(problem or "ok: bubblewrap can sandbox student kernels here")
        return 1 if problem else 0
    print("usage: python -m cnnbook.sandbox install [prefix] | check | launch <connection_file>", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
