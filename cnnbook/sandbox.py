"""Run students' notebooks in a sandboxed kernel when nbgrader autogrades them.

nbgrader executes each submission with the grader's own rights: without this module a
notebook can read ``gradebook.db`` and ``solutions/``, reach the network, or leave a process
behind that edits grades later. This module provides

* the ``cnnbook-sandbox`` Jupyter kernel (``python -m cnnbook.sandbox install``): its launcher
  drops to an unprivileged uid of its own (no account of the host's) when started as root, sets
  resource limits (address space, CPU seconds, processes/threads, file size, open files) and starts
  ipykernel inside bubblewrap, with no network, in a new pid namespace that dies with its parent, on
  a root file system built only from what the kernel needs, read-only: the system's programs and
  libraries (``/usr``, ``/bin``, ``/lib*``, a few files of ``/etc``), the Python environment, the
  dataset cache, and of the course package only ``cnnbook/__init__.py`` and ``cnnbook/data.py``. No
  other host folder is there (no course folder, ``/root``, ``/home``, ``/var``, ``/opt``...). The
  kernel writes to private tmpfs folders (``/tmp``, and an empty working folder in place of the
  notebook's folder) and to one host folder, its own socket folder, limited to
  :data:`SOCKET_QUOTA_KB` when the grader is root. The packages an assignment forbids
  (:data:`ENV_HIDDEN_PACKAGES`) are replaced by stubs that raise ImportError;
* :func:`configure_limits`, which the grader's one entry point (:func:`cnnbook.grader.configure`)
  calls to pass the course folder and resource limits to the launcher.

nbgrader runs the kernel through ``cnnbook.grader.preprocessors.sandboxedexecute``.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.machinery
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

KERNEL_NAME = "cnnbook-sandbox"
NOBODY = 65534
# As root, each kernel runs as a uid of its own, no account of the host's, from this range:
# RLIMIT_NPROC counts every process of a uid, so with one shared user a fork bomb in one submission
# (or its processes still dying) would stop the kernels of the submissions graded beside it from
# starting.
KERNEL_UID_BASE, KERNEL_UID_SPAN = 2_000_000_000, 4_000_000
ENV_COURSE = "CNNBOOK_SANDBOX_COURSE_ROOT"
ENV_LIMITS = "CNNBOOK_SANDBOX_LIMITS"
# Top-level packages the kernel may not import (comma-separated), set by the grader per assignment.
ENV_HIDDEN_PACKAGES = "CNNBOOK_SANDBOX_HIDDEN_PACKAGES"
SCRATCH_MB = (
    256  # size of each of the kernel's tmpfs scratch spaces: its /tmp and its working folder
)
SOCKET_QUOTA_KB = 1024  # the kernel's socket folder: its five ipc sockets take no space at all
SOCKET_INODES = (
    64  # tmpfs counts files apart from bytes: empty files would cost kernel memory without end
)
CONNECTION_FILE = (
    "/tmp/.kernel.json"  # where the kernel reads its connection file, inside the sandbox
)
# Shown read-only at the same place (a symlink stays a symlink: /lib -> usr/lib on merged-/usr
# systems).
SYSTEM_PATHS = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc/ld.so.cache",  # the dynamic linker's list of libraries
    "/etc/localtime",  # the time zone
    "/etc/fonts",
)  # fontconfig, which matplotlib asks for the system fonts
COURSE_MODULES = ("__init__.py", "data.py")  # of the course package, all a student may import
MAX_KERNEL_RESTARTS = (
    3  # per notebook, after a cell hangs or kills its kernel (see SandboxedExecute)
)
# Thread limits of numpy's BLAS, OpenMP and TensorFlow, which the grader may set
# (SandboxedExecute.threads): the launcher passes them on to the kernel.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)

# Per kernel. Measured in the sandbox on 2 cores: TensorFlow import + MNIST + one epoch of a small
# Conv2D model peaks at 2.3 GB of address space (VmPeak) and 20 threads; the limits leave a wide
# margin.
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
    """Write ``kernel.json`` into ``<prefix>/share/jupyter/kernels/cnnbook-sandbox``
    (idempotent)."""
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
            "submission is trusted, call configure(c, root, require_sandbox=False) in "
            "nbgrader_config.py."
        )
    cmd = [
        bwrap,
        *_system(),
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        *_unshare(),
        "--die-with-parent",
        *_drop_privileges(),
        "true",
    ]
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
        return [
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-uts",
            "--unshare-cgroup-try",
        ]
    return ["--unshare-all"]


def kernel_uid() -> int:
    """The uid the kernel runs as: as root, one from :data:`KERNEL_UID_BASE` no live launcher shares
    (the launcher's pid picks it; pids are unique among live processes); otherwise the grader's
    own."""
    if os.geteuid() != 0:
        return os.getuid()
    return KERNEL_UID_BASE + os.getpid() % KERNEL_UID_SPAN


def _drop_privileges() -> list[str]:
    if os.geteuid() != 0:
        return []
    return [
        "setpriv",
        f"--reuid={kernel_uid()}",
        f"--regid={NOBODY}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
    ]


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent (nbgrader) goes away."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _parent_gone() -> bool:
    """Whether the grader that started this launcher died before the death signal was asked for
    (killed while Python started here): no signal will ever come, so the launcher must not start a
    kernel."""
    expected = os.environ.get("JPY_PARENT_PID", "")
    return expected.isdigit() and os.getppid() != int(expected)


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

    A mount on a folder that does not exist yet (anywhere in the sandbox's root, which starts empty,
    or under /tmp) makes bwrap create the missing parents with the grader's umask (0700 under 077),
    which `nobody` cannot enter; ``--perms 0755 --dir`` creates them open (folders that already
    exist are left as they are).
    """
    args = []
    for parent in reversed(path.parents[:-1]):  # from the top, without "/"
        args += ["--perms", "0755", "--dir", str(parent)]
    return args


def _bind(path: Path, writable: bool = False) -> list[str]:
    """bwrap arguments that show ``path`` at the same place, with traversable parent folders."""
    return _open_parents(path) + ["--bind" if writable else "--ro-bind", str(path), str(path)]


def _system() -> list[str]:
    """bwrap arguments that show the system's programs and libraries (:data:`SYSTEM_PATHS`),
    read-only."""
    args = []
    for name in SYSTEM_PATHS:
        path = Path(name)
        if (
            path.is_symlink()
        ):  # merged /usr: /lib -> usr/lib; /etc/localtime -> the zone's file in /usr
            args += _open_parents(path) + ["--symlink", os.readlink(path), name]
        elif path.exists():
            args += _bind(path)
    return args


def _system_dirs() -> list[Path]:
    """The folders of :data:`SYSTEM_PATHS` shown by a bind (not those that are symlinks)."""
    return [
        Path(name) for name in SYSTEM_PATHS if Path(name).is_dir() and not Path(name).is_symlink()
    ]


def _etc_files() -> dict[str, bytes]:
    """Made-up ``/etc`` files, in place of the host's: the users and groups ``getpwuid`` may ask
    about (the host's accounts stay unknown), and ``localhost``."""
    users = (
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"nobody:x:{NOBODY}:{NOBODY}:nobody:/tmp:/usr/sbin/nologin\n"
    )
    groups = f"root:x:0:\nnogroup:x:{NOBODY}:\n"
    if os.geteuid() == 0:
        users += f"student:x:{kernel_uid()}:{NOBODY}:student:/tmp:/usr/sbin/nologin\n"
    elif os.geteuid() != NOBODY:  # without root, the kernel keeps the grader's uid
        users += f"student:x:{os.getuid()}:{os.getgid()}:student:/tmp:/usr/sbin/nologin\n"
        groups += f"student:x:{os.getgid()}:\n"
    return {
        "/etc/passwd": users.encode(),
        "/etc/group": groups.encode(),
        "/etc/nsswitch.conf": b"passwd: files\ngroup: files\nhosts: files\n",
        "/etc/hosts": b"127.0.0.1 localhost\n::1 localhost\n",
    }


def _python_roots() -> list[Path]:
    """The Python environment: ``sys.prefix`` and, when the system folders do not hold it, the
    installation a venv is made from (``sys.base_prefix``: pyenv keeps it in /root)."""
    roots = []
    for prefix in (sys.prefix, sys.base_prefix):
        path = Path(prefix).resolve()
        if path not in roots and not any(_inside(path, d) for d in _system_dirs()):
            roots.append(path)
    return roots


def _python() -> str:
    """The environment's ``python`` by its path in the sandbox, which has no symlinks leading to the
    venv."""
    try:
        return str(Path(sys.prefix).resolve() / Path(sys.executable).relative_to(sys.prefix))
    except ValueError:
        return sys.executable


def _package_dirs() -> tuple[list[Path], list[Path]]:
    """The folders shown to the kernel where Python looks for modules (``sys.path``), and the
    site-packages folders it does not use (the base Python's of a venv, the system Python's).

    A student can add any folder to ``sys.path``: hidden packages are stubbed out in the first kind,
    and the second kind is shown empty (the base Python of this venv holds scipy, for instance).
    """
    shown = _python_roots() + _system_dirs()
    used = {Path(p).resolve() for p in sys.path if os.path.isabs(p) and os.path.isdir(p)}
    used = {p for p in used if any(_inside(p, root) for root in shown)}  # not the launcher's cwd
    unused = set()
    for root in (*_python_roots(), Path("/usr"), Path("/usr/local")):
        for pattern in ("lib*/python3*/site-packages", "lib*/python3*/dist-packages"):
            unused.update(p.resolve() for p in root.glob(pattern) if p.is_dir())
    return sorted(used), sorted(unused - used)


def _hidden_names() -> list[str]:
    """The top-level packages the grader hides from this kernel (:data:`ENV_HIDDEN_PACKAGES`)."""
    names = [n.strip() for n in os.environ.get(ENV_HIDDEN_PACKAGES, "").split(",") if n.strip()]
    wrong = [n for n in names if not n.isidentifier()]
    if wrong:  # a name is part of a path below: no "..", no "/"
        raise SandboxError(f"{ENV_HIDDEN_PACKAGES} lists {wrong}, which are not package names")
    return names


def _hidden_modules(names: list[str]) -> dict[Path, str]:
    """Where the kernel could import each of ``names`` from, as ``{path: name}``.

    In each folder of :func:`_package_dirs` that Python searches: the package's folder, and its
    module files (source, bytecode, extension module, and the cached bytecode of a source module,
    which holds all its code). Packages that are not installed have no entry.
    """
    found = {}
    for folder in _package_dirs()[0]:
        for name in names:
            paths = [
                folder / name,
                *(folder / f"{name}{suffix}" for suffix in importlib.machinery.all_suffixes()),
                *(folder / "__pycache__").glob(f"{name}.*.pyc"),
            ]
            found.update({path: name for path in paths if path.is_dir() or path.is_file()})
    return found


def _stub(name: str, path: Path) -> bytes:
    """What the kernel finds at ``path`` in place of the hidden package ``name``'s folder or
    file."""
    if path.is_dir() or path.suffix == ".py":  # the folder holds the stub as its __init__.py
        message = f"{name} cannot be imported when this problem set is graded: use numpy only"
        return f"raise ImportError({message!r}, name={name!r})\n".encode()
    return b""  # bytecode or extension module: an empty file fails to load with ImportError


def _hide(stubs: dict[str, int]) -> list[str]:
    """bwrap arguments that put each stub (a file descriptor, see :func:`_stub`) in place of a
    hidden module.

    A package's folder becomes an empty tmpfs holding only the stub ``__init__.py`` (a package takes
    precedence over modules of the same name, and nothing of the real one is left to read), then
    read-only; a module file is covered by its stub. Mounts: the kernel cannot undo them.
    """
    args = []
    for path, fd in sorted(stubs.items()):
        if Path(path).is_dir():
            args += [
                "--perms",
                "0755",
                "--tmpfs",
                path,
                "--perms",
                "0444",
                "--ro-bind-data",
                str(fd),
                f"{path}/__init__.py",
                "--remount-ro",
                path,
            ]
        else:
            args += ["--perms", "0444", "--ro-bind-data", str(fd), path]
    return args


def _empty(folders: list[Path]) -> list[str]:
    """bwrap arguments that show each folder empty and read-only."""
    args = []
    for folder in folders:
        args += ["--perms", "0755", "--tmpfs", str(folder), "--remount-ro", str(folder)]
    return args


def _course_package() -> list[str]:
    """bwrap arguments that show, of the course package, only :data:`COURSE_MODULES`.

    ``from cnnbook.data import load_mnist`` works; ``cnnbook.grader`` (how submissions are checked),
    the ``__pycache__`` (compiled copies of it) and the rest of the project are not there. The
    package is shown where Python finds it, by its path as recorded (an editable install's finder)
    and resolved, and also when it lives inside the environment (a regular install).
    """
    import cnnbook

    args = []
    for folder in sorted({Path(cnnbook.__file__).parent, Path(cnnbook.__file__).resolve().parent}):
        args += _open_parents(folder) + ["--perms", "0755", "--tmpfs", str(folder)]
        for name in COURSE_MODULES:
            args += ["--ro-bind", str(folder / name), str(folder / name)]
        args += ["--remount-ro", str(folder)]
    return args


def _working_folder(cwd: Path) -> list[str]:
    """bwrap arguments that give the kernel an empty, private working folder at ``cwd``.

    nbgrader runs the kernel in ``autograded/<student>/<assignment>/``, where it has just written
    the notebook being graded *with its hidden tests*, beside the files the student submitted with
    it, and where it later writes (as root) the graded notebook and the assignment's next notebooks.
    So the kernel sees a fresh tmpfs there instead: no notebook (nothing to read the hidden tests
    from), none of the submitted files (the cwd comes first on ``sys.path``: a submitted
    ``numpy.py`` would replace numpy), and whatever it writes (a file, a symlink named like a
    notebook) vanishes with the kernel instead of being read, written through or handed out.
    """
    return _open_parents(cwd) + [
        "--size",
        str(SCRATCH_MB * 1024 * 1024),
        "--perms",
        "1777",
        "--tmpfs",
        str(cwd),
    ]


def _check_hidden(shown: list[Path], *secret: Path | None) -> None:
    """Refuse to show a folder that holds the course folder or the notebook's folder."""
    for folder in shown:
        for path in secret:
            if path is not None and _inside(path, folder):
                raise SandboxError(
                    f"{folder} is shown to the kernel (read-only), and it holds {path}. Fix: "
                    "keep the course outside the Python environment, the dataset cache and the "
                    "system folders."
                )


def sandbox_command(
    kernel_args: list[str],
    cwd: Path,
    socket_dir: Path,
    course_root: Path | None,
    files: dict[str, int],
    stubs: dict[str, int] | None = None,
) -> list[str]:
    """The full command line: bubblewrap, the privilege drop inside it, then ipykernel.

    ``files`` maps paths in the sandbox to file descriptors whose contents bwrap shows there,
    read-only: the connection file (at :data:`CONNECTION_FILE`), dataset files only root may read,
    the made-up ``/etc`` files. ``stubs`` maps the paths of hidden modules to the descriptors of
    their stubs (:func:`_hidden_modules`, :func:`_stub`).

    The sandbox's root starts empty and gets only the pieces the module's docstring lists, in an
    order where each mount lands on what it must cover: the private /tmp before what lives under the
    grader's /tmp (the working folder, the socket folder, a project checked out there), the
    environment before the folders emptied or stubbed inside it, and last, the root made read-only
    (without root, the kernel would own it).

    As root, bubblewrap sets up the mounts (it can read the grader's files to bind them), then
    ``setpriv`` inside the sandbox becomes ``nobody`` with no capabilities before Python starts:
    a user namespace alone would keep the host uid 0 and read root-owned files.
    """
    data = _data_dir()
    shown = _python_roots() + ([data] if data.is_dir() else [])
    _check_hidden(shown + _system_dirs(), course_root, cwd)
    return (
        _new_root()
        + _working_folder(cwd)
        + [arg for path in shown for arg in _bind(path)]
        + _empty(_package_dirs()[1])
        + _course_package()
        + _hide(stubs or {})
        + _bind(socket_dir, writable=True)
        + _read_only_files(files)
        + ["--remount-ro", "/", "--chdir", str(cwd)]
        + _drop_privileges()
        + [_python(), "-m", "ipykernel_launcher", "-f", CONNECTION_FILE, *kernel_args]
    )


def _new_root() -> list[str]:
    """bubblewrap with new namespaces, the system folders, /dev, /proc and a private /tmp."""
    return [
        shutil.which("bwrap") or "/usr/bin/bwrap",
        *_unshare(),
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "sandbox",
        *_system(),
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--size",
        str(SCRATCH_MB * 1024 * 1024),
        "--perms",
        "1777",
        "--tmpfs",
        "/tmp",
    ]


def _read_only_files(files: dict[str, int]) -> list[str]:
    """Each descriptor's contents, read-only at its path (see :func:`sandbox_command`)."""
    args = []
    for dest, fd in sorted(files.items()):
        args += _open_parents(Path(dest)) + ["--perms", "0444", "--ro-bind-data", str(fd), dest]
    return args


def _data_dir() -> Path:
    """The dataset cache the grader uses (``cnnbook.data.cache_dir()``), shown read-only to the
    kernel."""
    from cnnbook.data import cache_dir

    return Path(cache_dir()).resolve()


def _dataset_copies() -> dict[str, int]:
    """Descriptors of the dataset files only root may read, for bwrap to show readable copies of
    them."""
    data = _data_dir()
    if os.geteuid() != 0 or not data.is_dir():
        return {}
    return {
        str(f): os.open(f, os.O_RDONLY)
        for f in sorted(data.glob("*.npz"))
        if not f.stat().st_mode & 0o004
    }


def _memfd(content: bytes) -> int:
    """A descriptor of an in-memory file holding ``content``: what bwrap shows is never written to
    disk."""
    fd = os.memfd_create("cnnbook-sandbox")
    os.write(fd, content)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _kernel_env() -> dict:
    keep = (
        "LANG",
        "LC_ALL",
        "TZ",
        "NBGRADER_EXECUTION",
        "TF_CPP_MIN_LOG_LEVEL",
        "TF_ENABLE_ONEDNN_OPTS",
        "PYDEVD_DISABLE_FILE_VALIDATION",
        "CNNBOOK_DATA_DIR",
        *THREAD_VARIABLES,
    )
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(
        {
            "PATH": f"{Path(_python()).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp",
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": "/tmp/.matplotlib",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.setdefault("LANG", "C.UTF-8")
    env["CNNBOOK_DATA_DIR"] = str(_data_dir())
    # Deliberately absent: JPY_PARENT_PID (pids differ inside the sandbox), NBGRADER_DB_URL
    # (may hold a database password), the hidden packages' list and anything else of the grader's.
    return env


@contextlib.contextmanager
def _socket_folder(folder: Path):
    """The kernel's socket folder, the one host folder it may write to: private, with a quota as
    root.

    As root, a tmpfs of :data:`SOCKET_QUOTA_KB` (and :data:`SOCKET_INODES` files) owned by the
    kernel's uid, mode 0700, is mounted on the folder, on the host, where the grader connects to the
    sockets; it is unmounted afterwards, or, when this process is killed (jupyter_client kills the
    launcher's process group with SIGKILL after a hung cell), by a detached ``umount`` that waits
    for this process to end. That one looks for its own mount by a name of its own: a kernel
    restarted with the same connection file mounts a new one on the same folder.

    Without root nothing can be mounted on the host, so the folder stays a plain folder: private
    (mode 0700, new for each kernel, removed by SandboxedExecute afterwards), each file in it capped
    by RLIMIT_FSIZE, but not their number or total size. Grade as root, as CI does, for the quota.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.geteuid() != 0:
        yield folder
        return
    name = f"cnnbook-kernel-{secrets.token_hex(8)}"
    options = (
        f"size={SOCKET_QUOTA_KB}k,nr_inodes={SOCKET_INODES},mode=0700,"
        f"uid={kernel_uid()},gid={NOBODY}"
    )
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"{options},nosuid,nodev,noexec", name, str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SandboxError(
            f"cannot mount the socket folder's quota on {folder}: {done.stderr.strip()}"
        )
    read_end, write_end = os.pipe()  # the write end closes when this process ends, however it ends
    watch = 'cat >/dev/null; grep -qF "$2 $1 tmpfs " /proc/mounts && umount -l "$1"'
    subprocess.Popen(
        ["sh", "-c", watch, "sh", str(folder), name],
        stdin=read_end,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # out of reach of a kill of our group
    os.close(read_end)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        os.close(write_end)


def _run(cmd: list[str], fds: list[int]) -> int:
    """Run the sandbox, forward SIGTERM and SIGINT to it, return its exit code."""
    limits = _limits()
    proc = subprocess.Popen(
        cmd,
        env=_kernel_env(),
        pass_fds=fds,
        stdout=subprocess.DEVNULL,
        preexec_fn=lambda: _set_limits(limits),
    )
    for (
        fd
    ) in fds:  # bwrap holds its copies; the list is emptied, so the caller has none left to close
        os.close(fd)
    fds.clear()

    def forward(signum, _frame):
        proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return proc.wait()


def launch(argv: list[str]) -> int:
    """Entry point of the kernelspec: ``launch <connection_file> [ipykernel args...]``."""
    _die_with_parent()
    if _parent_gone():
        return 1
    if not argv:
        print(
            "usage: python -m cnnbook.sandbox launch <connection_file> [kernel args]",
            file=sys.stderr,
        )
        return 2
    connection_file, kernel_args = Path(argv[0]), argv[1:]
    info = json.loads(connection_file.read_text())
    if info.get("transport") != "ipc":
        print(
            "cnnbook-sandbox: the kernel has no network, so it needs IPC transport. Fix: use "
            "cnnbook.grader.configure(c, root) in nbgrader_config.py (it sets this up).",
            file=sys.stderr,
        )
        return 2
    root = os.environ.get(ENV_COURSE)
    course_root = Path(root).resolve() if root else None
    files = {
        CONNECTION_FILE: os.open(connection_file, os.O_RDONLY),
        **_dataset_copies(),
        **{dest: _memfd(content) for dest, content in _etc_files().items()},
    }
    fds = list(files.values())
    try:
        stubs = {
            str(path): _memfd(_stub(name, path))
            for path, name in _hidden_modules(_hidden_names()).items()
        }
        fds += stubs.values()
        cmd = sandbox_command(
            kernel_args, Path.cwd().resolve(), Path(info["ip"]).parent, course_root, files, stubs
        )
        with _socket_folder(Path(info["ip"]).parent) as folder:
            code = _run(cmd, fds)
            for sock in folder.glob(Path(info["ip"]).name + "-*"):
                sock.unlink(missing_ok=True)
        return code
    except SandboxError as exc:
        print(f"cnnbook-sandbox: {exc}", file=sys.stderr)
        return 1
    finally:
        for fd in fds:
            os.close(fd)


def configure_limits(course_root, limits: dict | None = None) -> None:
    """Tell the launcher (which inherits nbgrader's environment) the course folder and the limits.

    ``limits`` overrides entries of :data:`DEFAULT_LIMITS`.
    """
    os.environ[ENV_COURSE] = str(Path(course_root).resolve())
    if limits:
        unknown = set(limits) - set(DEFAULT_LIMITS)
        if unknown:
            raise SandboxError(
                f"unknown sandbox limit(s) {sorted(unknown)}; known: {sorted(DEFAULT_LIMITS)}"
            )
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
    print(
        "usage: python -m cnnbook.sandbox install [prefix] | check | launch <connection_file>",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
