"""The sandboxed grading kernel: its kernelspec, the bubblewrap command it builds, and, in real
kernels started by the launcher the way nbgrader starts them, what a hostile submission can and
cannot reach.

The refusal to grade without bubblewrap is SandboxedExecute's (cnnbook.grader.preprocessors); whole
hostile submissions graded by nbgrader are in tests/test_grading_tricks.py.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cnnbook
from cnnbook import sandbox

ROOT = Path(__file__).resolve().parent.parent
SITE = next(Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
# Hidden in the hostile kernel: packages (tensorflow, keras), one installed only in the base
# Python's site-packages (scipy here), a one-file module with its cached bytecode (pandocfilters),
# an extension module (_cffi_backend) and a package that is not installed at all.
HIDDEN = (
    "tensorflow",
    "keras",
    "scipy",
    "pandocfilters",
    "_cffi_backend",
    "not_installed_anywhere",
)
MESSAGE = "{} cannot be imported when this problem set is graded: use numpy only"


def _pairs(cmd):
    return list(zip(cmd, cmd[1:]))


def _command(tmp_path, cwd=None, files=None, stubs=None):
    cwd = cwd or tmp_path / "course" / "autograded" / "s1" / "ps1"
    return sandbox.sandbox_command(
        ["--x"], cwd, tmp_path / "sock", tmp_path / "course", files or {}, stubs
    )


# --------------------------------------------------------------------------- the command line


def test_kernelspec_runs_the_launcher_with_message_interrupts(tmp_path):
    path = sandbox.install(tmp_path)
    assert path == tmp_path / "share" / "jupyter" / "kernels" / "cnnbook-sandbox" / "kernel.json"
    spec = json.loads(path.read_text())
    assert spec["argv"] == [sys.executable, "-m", "cnnbook.sandbox", "launch", "{connection_file}"]
    assert spec["interrupt_mode"] == "message"
    assert sandbox.install(tmp_path).read_text() == path.read_text()  # idempotent


def test_command_builds_the_root_from_the_needed_pieces_and_drops_privileges(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNBOOK_DATA_DIR", raising=False)
    cmd = _command(tmp_path, files={sandbox.CONNECTION_FILE: 7})
    pairs = _pairs(cmd)
    assert (
        cmd[0].endswith("bwrap")
        and ("--ro-bind", "/") not in pairs
        and ("--bind", "/") not in pairs
    )
    package = Path(cnnbook.__file__).resolve().parent
    allowed = {
        *map(Path, sandbox.SYSTEM_PATHS),
        *sandbox._python_roots(),
        sandbox._data_dir(),
        package / "__init__.py",
        package / "data.py",
    }
    assert {Path(src) for flag, src in pairs if flag == "--ro-bind"} <= allowed
    assert [src for flag, src in pairs if flag == "--bind"] == [
        str(tmp_path / "sock")
    ]  # the one writable host folder
    assert ("--tmpfs", "/tmp") in pairs and ("--ro-bind-data", "7") in pairs
    assert "--unshare-net" in cmd or "--unshare-all" in cmd
    assert (
        "--die-with-parent" in cmd
        and "--new-session" in cmd
        and ("--unshare-pid" in cmd or "--unshare-all" in cmd)
    )
    # the root is made read-only after the last mount, before the command
    assert cmd.index("--remount-ro", cmd.index(sandbox.CONNECTION_FILE)) == cmd.index("--chdir") - 2
    assert cmd[-4:] == ["ipykernel_launcher", "-f", sandbox.CONNECTION_FILE, "--x"]
    if os.geteuid() == 0:
        uid = f"--reuid={sandbox.kernel_uid()}"
        assert (
            uid in cmd
            and cmd.index(uid) > cmd.index("--chdir")
            and sandbox.kernel_uid() >= sandbox.KERNEL_UID_BASE
        )


def test_working_folder_starts_empty(tmp_path):
    folder = tmp_path / "course" / "autograded" / "s1" / "ps1"
    (folder / "data").mkdir(parents=True)
    for name in ("ps1.ipynb", "numpy.py", "numbers.txt"):
        (folder / name).write_text("x")
    (folder / "link.txt").symlink_to("/etc/shadow")
    cmd = _command(tmp_path, cwd=folder)
    assert ("--tmpfs", str(folder)) in _pairs(cmd) and ("--chdir", str(folder)) in _pairs(cmd)
    assert not [
        arg for arg in cmd if arg.startswith(f"{folder}/")
    ]  # nothing of the submission is bound into it


def test_mounts_land_on_the_folders_they_cover(tmp_path, monkeypatch):
    # a project checked out under /tmp keeps its environment; the working folder and the socket
    # folder, under the grader's /tmp, are mounted on the sandbox's /tmp, not hidden by it
    monkeypatch.setattr(sys, "prefix", "/tmp/checkout/.venv")
    cmd = _command(tmp_path)
    tmp = cmd.index("/tmp")
    assert cmd.index("/tmp/checkout/.venv") > tmp
    assert cmd.index(str(tmp_path / "course" / "autograded" / "s1" / "ps1")) > tmp
    assert cmd.index(str(tmp_path / "sock")) > tmp
    # the parents bwrap creates on the way are open to `nobody`
    assert cmd[cmd.index("/tmp/checkout") - 3 : cmd.index("/tmp/checkout")] == [
        "--perms",
        "0755",
        "--dir",
    ]


def test_only_the_data_module_of_the_course_package_is_shown():
    args = sandbox._course_package()
    package = str(Path(cnnbook.__file__).resolve().parent)
    assert args[args.index(package) - 1] == "--tmpfs"  # an empty folder in place of cnnbook/
    shown = [src for flag, src in _pairs(args) if flag == "--ro-bind"]
    assert shown == [f"{package}/__init__.py", f"{package}/data.py"]
    assert args[-2:] == ["--remount-ro", package]


def test_a_shown_folder_that_holds_the_course_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(
        "CNNBOOK_DATA_DIR", str(tmp_path)
    )  # the dataset cache would show the course folder
    with pytest.raises(sandbox.SandboxError, match="is shown to the kernel"):
        _command(tmp_path)


def test_hidden_modules_are_found_in_every_form(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "pkg" / "sub").mkdir(parents=True)
    (site / "__pycache__").mkdir()
    for name in (
        "mod.py",
        "__pycache__/mod.cpython-311.pyc",
        "ext.cpython-311-x86_64-linux-gnu.so",
        "other.py",
        "module.py",
        "__pycache__/module.cpython-311.pyc",
    ):
        (site / name).write_text("x")
    monkeypatch.setattr(sandbox, "_package_dirs", lambda: ([site], []))
    found = sandbox._hidden_modules(["pkg", "mod", "ext", "absent"])
    assert found == {
        site / "pkg": "pkg",
        site / "mod.py": "mod",
        site / "__pycache__" / "mod.cpython-311.pyc": "mod",
        site / "ext.cpython-311-x86_64-linux-gnu.so": "ext",
    }  # not module.py, other.py, absent
    assert sandbox._stub("pkg", site / "pkg") == sandbox._stub("pkg", site / "pkg.py")
    assert MESSAGE.format("pkg") in sandbox._stub("pkg", site / "pkg").decode()
    assert sandbox._stub("ext", site / "ext.cpython-311-x86_64-linux-gnu.so") == b""
    args = sandbox._hide({str(site / "pkg"): 5, str(site / "mod.py"): 6})
    assert args == [
        "--perms",
        "0444",
        "--ro-bind-data",
        "6",
        str(site / "mod.py"),
        "--perms",
        "0755",
        "--tmpfs",
        str(site / "pkg"),
        "--perms",
        "0444",
        "--ro-bind-data",
        "5",
        str(site / "pkg" / "__init__.py"),
        "--remount-ro",
        str(site / "pkg"),
    ]


def test_unused_site_packages_are_emptied_and_hidden_names_checked(monkeypatch):
    used, unused = sandbox._package_dirs()
    assert SITE.resolve() in used and not set(used) & set(unused)
    assert all(
        any(p.is_relative_to(root) for root in sandbox._python_roots() + sandbox._system_dirs())
        for p in used
    )
    if sys.base_prefix != sys.prefix and (Path(sys.base_prefix) / "lib").is_dir():
        assert {
            p for p in Path(sys.base_prefix).resolve().glob("lib*/python3*/site-packages")
        } <= set(unused)
    monkeypatch.setenv(sandbox.ENV_HIDDEN_PACKAGES, " tensorflow , keras,")
    assert sandbox._hidden_names() == ["tensorflow", "keras"]
    monkeypatch.setenv(sandbox.ENV_HIDDEN_PACKAGES, "")
    assert sandbox._hidden_names() == []
    monkeypatch.setenv(sandbox.ENV_HIDDEN_PACKAGES, "tensorflow,../../etc")
    with pytest.raises(sandbox.SandboxError, match="not package names"):
        sandbox._hidden_names()


def test_kernel_environment_leaks_nothing_of_the_grader(monkeypatch):
    monkeypatch.setenv("NBGRADER_DB_URL", "postgresql://grader:secret@db/course")
    monkeypatch.setenv("JPY_PARENT_PID", "123")
    monkeypatch.setenv(sandbox.ENV_HIDDEN_PACKAGES, "tensorflow")
    env = sandbox._kernel_env()
    assert (
        "NBGRADER_DB_URL" not in env
        and "JPY_PARENT_PID" not in env
        and sandbox.ENV_HIDDEN_PACKAGES not in env
    )
    from cnnbook.data import cache_dir

    assert env["HOME"] == "/tmp" and env["CNNBOOK_DATA_DIR"] == str(Path(cache_dir()).resolve())


def test_missing_bubblewrap_is_explained(monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    problem = sandbox.bwrap_problem()
    assert "apt-get install bubblewrap" in problem and "require_sandbox=False" in problem


def test_autograde_refuses_without_a_sandbox_unless_told_otherwise(monkeypatch):
    from cnnbook.grader.preprocessors.sandboxedexecute import SandboxedExecute

    monkeypatch.setattr(sandbox, "bwrap_problem", lambda: "bubblewrap (bwrap) is not installed")
    with pytest.raises(
        sandbox.SandboxError, match="Refusing to autograde without a sandbox: bubblewrap"
    ):
        SandboxedExecute()._kernel_name()
    assert SandboxedExecute(require_sandbox=False)._kernel_name() == "python3"
    monkeypatch.setattr(sandbox, "bwrap_problem", lambda: None)
    assert SandboxedExecute()._kernel_name() == sandbox.KERNEL_NAME


def test_configure_limits(monkeypatch, tmp_path):
    monkeypatch.setenv(sandbox.ENV_COURSE, "")
    monkeypatch.setenv(sandbox.ENV_LIMITS, "")
    sandbox.configure_limits(tmp_path, {"cpu_seconds": 5})
    assert os.environ[sandbox.ENV_COURSE] == str(tmp_path.resolve())
    assert json.loads(os.environ[sandbox.ENV_LIMITS]) == {
        **sandbox.DEFAULT_LIMITS,
        "cpu_seconds": 5,
    }
    with pytest.raises(sandbox.SandboxError, match="unknown sandbox limit"):
        sandbox.configure_limits(tmp_path, {"ram": 1})


# --------------------------------------------------------------------------- real kernels


class Kernel:
    """A real ``cnnbook-sandbox`` kernel, started as nbgrader starts it: the launcher in the
    notebook's folder, with an ipc connection file whose sockets live in a fresh socket folder under
    /tmp."""

    def __init__(self, cwd: Path, course: Path, hidden=()):
        from jupyter_client import BlockingKernelClient
        from jupyter_client.connect import write_connection_file

        self.socket_dir = Path("/tmp") / f"cnnbook-kernel-{secrets.token_hex(8)}"
        self.cwd = cwd
        self.connection_file, _ = write_connection_file(
            str(course.parent / f"{self.socket_dir.name}.json"),
            transport="ipc",
            ip=str(self.socket_dir / "k"),
        )
        env = {
            **os.environ,
            sandbox.ENV_HIDDEN_PACKAGES: ",".join(hidden),
            sandbox.ENV_COURSE: str(course),
        }
        self.log = course.parent / f"{self.socket_dir.name}.log"
        with open(self.log, "w") as log:  # jupyter_client starts kernels in a session of their own
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cnnbook.sandbox", "launch", self.connection_file],
                cwd=cwd,
                env=env,
                stderr=log,
                start_new_session=True,
            )
        self.client = BlockingKernelClient(connection_file=self.connection_file)
        self.client.load_connection_file()
        self.client.start_channels()
        try:
            self.client.wait_for_ready(timeout=120)
        except RuntimeError:
            self.close()
            raise AssertionError(
                f"the sandboxed kernel did not start:\n{self.log.read_text()}"
            ) from None

    def run(self, code: str, timeout: float = 300):
        """Run ``code`` in the kernel; it sets ``result``, which comes back through JSON."""
        out, errors = [], []

        def hook(msg):
            if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                errors.append("\n".join(msg["content"]["traceback"]))

        code += "\nimport json as _json\nprint('\\n' + _json.dumps(result))"
        reply = self.client.execute_interactive(
            code, timeout=timeout, output_hook=hook, store_history=False
        )
        assert reply["content"]["status"] == "ok", "\n".join(errors)
        return json.loads("".join(out).strip().splitlines()[-1])

    def close(self):
        if self.proc.poll() is None:
            self.client.shutdown()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.client.stop_channels()
        shutil.rmtree(self.socket_dir, ignore_errors=True)


def _needs_bwrap():
    if sandbox.bwrap_problem():
        pytest.skip(sandbox.bwrap_problem())


def _plant_secrets(token: str) -> list[Path]:
    """World-readable "solutions" in folders of their own under the host's top-level folders, and a
    copy of the course package's grader. Returns the folders (removed afterwards)."""
    folders = []
    for top in ("/var/tmp", "/opt", "/srv", "/mnt", "/home"):
        if os.path.isdir(top) and os.access(top, os.W_OK):
            folder = Path(top) / f"cnnbook-sandbox-test-{token}"
            (folder / "cnnbook" / "grader").mkdir(parents=True)
            (folder / "solutions.txt").write_text("SOLUTIONS")
            shutil.copy(
                ROOT / "cnnbook" / "grader" / "__init__.py",
                folder / "cnnbook" / "grader" / "__init__.py",
            )
            for path in (folder, *folder.rglob("*")):
                path.chmod(0o755 if path.is_dir() else 0o644)
            folders.append(folder)
    return folders


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """One sandboxed kernel for a hostile submission: secrets planted on the host, a ``numpy.py``
    and other files beside the notebook, :data:`HIDDEN` packages hidden."""
    _needs_bwrap()
    course = tmp_path_factory.mktemp("hostile") / "course"
    cwd = course / "autograded" / "s1" / "ps1"
    cwd.mkdir(parents=True)
    (cwd / "ps1.ipynb").write_text("HIDDEN TESTS")
    (cwd / "numpy.py").write_text("SHADOWED = True\n")
    (cwd / "solutions.py").write_text("ANSWER = 42\n")
    (course / "gradebook.db").write_text("GRADES")
    planted = _plant_secrets(secrets.token_hex(4))
    try:
        kernel = Kernel(cwd, course, HIDDEN)
        try:
            kernel.first_listing = kernel.run("import os\nresult = sorted(os.listdir('.'))")
            kernel.planted = planted
            yield kernel
        finally:
            kernel.close()
    finally:
        for folder in planted:
            shutil.rmtree(folder, ignore_errors=True)


def _allowed(kernel) -> list[str]:
    """Everything the sandbox may show, by path."""
    package = Path(cnnbook.__file__).resolve().parent
    paths = [
        *(p for p in sandbox.SYSTEM_PATHS if os.path.lexists(p)),
        *sandbox._etc_files(),
        "/tmp",
        "/dev",
        "/proc",
        *map(str, sandbox._python_roots()),
        str(sandbox._data_dir()),
        *(str(package / m) for m in sandbox.COURSE_MODULES),
        str(kernel.cwd),
        str(kernel.socket_dir),
    ]
    return sorted(set(paths))


@pytest.mark.slow
def test_kernel_runs_as_nobody_without_network(hostile):
    result = hostile.run(
        "import os, socket\n"
        "names = [line.split(':')[0].strip() for line in open('/proc/net/dev').readlines()[2:]]\n"
        "try:\n"
        "    socket.create_connection(('1.1.1.1', 53), timeout=5); reached = True\n"
        "except OSError:\n"
        "    reached = False\n"
        "result = [os.getuid(), os.getgid(), names, reached]"
    )
    if os.geteuid() == 0:  # a uid of its own, no account of the host's (see sandbox.kernel_uid)
        assert result[0] >= sandbox.KERNEL_UID_BASE and result[1] == sandbox.NOBODY, result
    else:
        assert result[:2] == [os.getuid(), os.getgid()]
    assert result[2:] == [["lo"], False]  # a network namespace of its own: only a loopback device


@pytest.mark.slow
def test_nothing_else_of_the_host_is_visible(hostile):
    allowed = _allowed(hostile)
    result = hostile.run(
        "import os\n"
        f"allowed = {allowed!r}\n"
        f"planted = {[str(p) for p in hostile.planted]!r}\n"
        "seen = []\n"
        "for folder, dirs, files in os.walk('/'):\n"
        "    dirs[:] = [d for d in dirs if os.path.join(folder, d) not in allowed]\n"
        "    seen += [os.path.join(folder, name) for name in dirs + files]\n"
        "readable = []\n"
        "for path in [f'{p}/solutions.txt' for p in planted] + [f'{p}/cnnbook/grader/__init__.py' "
        "for p in planted]:\n"
        "    try:\n"
        "        readable.append(open(path).read())\n"
        "    except OSError:\n"
        "        pass\n"
        "result = {'seen': seen, 'readable': readable,\n"
        "          'root': sorted(os.listdir('/root')) if os.path.isdir('/root') else [],\n"
        "          'work': sorted(os.listdir('/work')) if os.path.isdir('/work') else [],\n"
        "          'gone': [p for p in ('/var', '/opt', '/srv', '/mnt', '/home', '/sys', '/boot', "
        "'/run')\n"
        "                   if os.path.lexists(p)]}"
    )
    assert (
        hostile.planted and result["readable"] == []
    )  # the planted solutions and the course copy cannot be read
    assert result["gone"] == []
    # every path found is one of the allowed ones or on the way to one: /root holds only the way to
    # the base Python, /work only the way to the venv, the dataset cache and cnnbook's two modules
    stray = [
        p
        for p in result["seen"]
        if p not in allowed and not any(a.startswith(p + "/") for a in allowed)
    ]
    assert stray == []
    assert set(result["root"]) <= {Path(a).parts[2] for a in allowed if a.startswith("/root/")}
    assert set(result["work"]) <= {Path(a).parts[2] for a in allowed if a.startswith("/work/")}
    assert "gradebook.db" not in str(result["seen"]) and "grader" not in {
        Path(p).name for p in result["seen"]
    }


@pytest.mark.slow
def test_course_package_offers_only_cnnbook_data(hostile):
    result = hostile.run(
        "import os, importlib\n"
        "from cnnbook.data import load_mnist\n"
        "(x, y), _ = load_mnist()\n"
        "import cnnbook\n"
        "try:\n"
        "    importlib.import_module('cnnbook.grader'); grader = 'imported'\n"
        "except ImportError as exc:\n"
        "    grader = type(exc).__name__\n"
        "result = [list(x.shape), sorted(os.listdir(os.path.dirname(cnnbook.__file__))), grader]"
    )
    assert result == [[60000, 28, 28], ["__init__.py", "data.py"], "ModuleNotFoundError"]


@pytest.mark.slow
def test_working_folder_starts_empty_and_submitted_files_are_not_importable(hostile):
    assert hostile.first_listing == []
    result = hostile.run(
        "import os, numpy\n"
        "host_files = "
        f"{[str(hostile.cwd / n) for n in ('numpy.py', 'solutions.py', 'ps1.ipynb')]!r}\n"
        "result = [numpy.__file__, hasattr(numpy, 'SHADOWED'), [os.path.exists(p) for p in "
        "host_files]]"
    )
    assert result == [str(SITE / "numpy" / "__init__.py"), False, [False, False, False]]


@pytest.mark.slow
def test_hidden_packages_raise_and_cannot_be_brought_back(hostile):
    base_site = sorted(Path(sys.base_prefix).resolve().glob("lib/python3*/site-packages"))
    result = hostile.run(
        "import ctypes, importlib, importlib.machinery, importlib.util, os, subprocess, sys\n"
        f"site = {str(SITE)!r}\n"
        "def attempt(action):\n"
        "    try:\n"
        "        action()\n"
        "        return 'done'\n"
        "    except (ImportError, OSError) as exc:\n"
        "        return f'{type(exc).__name__}: {exc}'\n"
        f"result = {{name: attempt(lambda: importlib.import_module(name)) for name in "
        f"{list(HIDDEN)!r}}}\n"
        # other places a copy may be: the base Python's site-packages (scipy), the system's
        # dist-packages
        f"sys.path += {[str(p) for p in base_site]!r} + ['/usr/lib/python3/dist-packages']\n"
        "importlib.invalidate_caches()\n"
        "result['scipy on sys.path'] = attempt(lambda: importlib.import_module('scipy'))\n"
        "def from_real_path():\n"
        "    spec = importlib.util.spec_from_file_location('tensorflow', site + "
        "'/tensorflow/__init__.py')\n"
        "    spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "result['tensorflow from its path'] = attempt(from_real_path)\n"
        "result['tensorflow internals'] = attempt(lambda: open(site + "
        "'/tensorflow/python/__init__.py'))\n"
        "result['tensorflow folder'] = sorted(os.listdir(site + '/tensorflow'))\n"
        "result['cached bytecode'] = attempt(lambda: importlib.machinery.SourcelessFileLoader(\n"
        "    'pandocfilters', site + '/__pycache__/pandocfilters.cpython-311.pyc').load_module())\n"
        "result['extension by ctypes'] = attempt(\n"
        "    lambda: ctypes.CDLL(site + '/_cffi_backend.cpython-311-x86_64-linux-gnu.so'))\n"
        "result['overwrite stub'] = attempt(lambda: open(site + '/tensorflow/__init__.py', 'w'))\n"
        "result['add module'] = attempt(lambda: open(site + '/tensorflow/python.py', 'w'))\n"
        "result['unmount'] = subprocess.run(['umount', site + '/tensorflow'], "
        "capture_output=True).returncode\n"
        "result['still hidden'] = attempt(lambda: importlib.import_module('tensorflow'))\n"
    )
    for name in ("tensorflow", "keras", "pandocfilters"):
        assert result[name] == f"ImportError: {MESSAGE.format(name)}"
    assert result["_cffi_backend"].startswith(
        "ImportError: "
    )  # an empty file where the extension module was
    for name in ("scipy", "not_installed_anywhere", "scipy on sys.path"):
        assert result[name].startswith("ModuleNotFoundError: ")
    assert result["tensorflow from its path"] == f"ImportError: {MESSAGE.format('tensorflow')}"
    assert result["tensorflow internals"].startswith("FileNotFoundError")
    assert result["tensorflow folder"] == ["__init__.py"]
    assert result["cached bytecode"].startswith("ImportError: bad magic number")
    assert result["extension by ctypes"].startswith("OSError: ")
    assert result["overwrite stub"].startswith("OSError: [Errno 30]")  # read-only file system
    assert result["add module"].startswith("OSError: [Errno 30]")
    assert result["unmount"] != 0
    assert result["still hidden"] == f"ImportError: {MESSAGE.format('tensorflow')}"


@pytest.mark.slow
def test_numpy_matplotlib_and_ipython_work_beside_hidden_packages(hostile):
    result = hostile.run(
        "import numpy as np, matplotlib, matplotlib.pyplot as plt, IPython, os\n"
        "figure, axes = plt.subplots()\n"
        "axes.imshow(np.arange(16.0).reshape(4, 4))\n"
        "figure.savefig('/tmp/figure.png')\n"
        "result = [round(float(np.linalg.det(np.eye(3) * 2)), 6), "
        "matplotlib.get_backend().lower(),\n"
        "          os.path.getsize('/tmp/figure.png') > 0, IPython.get_ipython() is not None]"
    )
    assert result == [8.0, "agg", True, True]


# Run in the hostile kernel (after `token` and `sockets` are set): every folder it can create a file
# in, and two functions that fill a folder with bytes or with files until they are refused.
WRITABLE_FOLDERS_AND_FILLERS = """\
writable = []
for folder, dirs, files in os.walk('/'):
    if folder in ('/proc', '/sys'):
        dirs[:] = []
        continue
    probe = os.path.join(folder, f'probe-{token}')
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except OSError:
        continue
    writable.append(folder)
    if folder != '/tmp' and folder != os.getcwd():
        os.unlink(probe)
def fill(folder, size):
    written = 0
    try:
        with open(os.path.join(folder, 'fill'), 'wb') as f:
            while written < size:
                written += f.write(b'x' * 65536)
                f.flush()
    except OSError as exc:
        return [written, exc.errno]
    finally:
        os.unlink(os.path.join(folder, 'fill'))
    return [written, None]
def many_files(folder, count):
    made = 0
    try:
        for i in range(count):
            os.close(os.open(os.path.join(folder, f'f{i}'), os.O_CREAT | os.O_WRONLY))
            made += 1
    except OSError as exc:
        return [made, exc.errno]
    finally:
        for i in range(made):
            os.unlink(os.path.join(folder, f'f{i}'))
    return [made, None]
"""


@pytest.mark.slow
def test_socket_folder_is_the_only_writable_host_folder_and_has_a_quota(hostile):
    token = secrets.token_hex(4)
    result = hostile.run(
        "import errno, os\n"
        f"token, sockets = {token!r}, {str(hostile.socket_dir)!r}\n"
        + WRITABLE_FOLDERS_AND_FILLERS
        + "result = {'writable': writable, 'fill': fill(sockets, 4 << 20), 'files': "
        "many_files(sockets, 1000)}\n"
    )
    _assert_only_the_socket_folder_is_writable_on_the_host(hostile, token, result["writable"])
    if os.geteuid() != 0:
        pytest.skip("without root the socket folder has no quota (see sandbox._socket_folder)")
    written, error = result["fill"]
    assert error == 28 and written <= sandbox.SOCKET_QUOTA_KB * 1024  # ENOSPC
    made, error = result["files"]
    assert error == 28 and made < sandbox.SOCKET_INODES
    assert os.path.ismount(hostile.socket_dir)
    stat = hostile.socket_dir.stat()
    # private to this kernel
    assert stat.st_uid >= sandbox.KERNEL_UID_BASE and stat.st_mode & 0o777 == 0o700


def _assert_only_the_socket_folder_is_writable_on_the_host(hostile, token, writable) -> None:
    # everything under /tmp is the sandbox's own tmpfs, but for the socket folder bound onto it
    sockets = str(hostile.socket_dir)
    host_writable = [
        f for f in writable if f == sockets or not (f == "/tmp" or f.startswith("/tmp/"))
    ]
    assert host_writable == [sockets], writable
    # what it wrote to its /tmp and its working folder is not on the host
    assert (
        not (Path("/tmp") / f"probe-{token}").exists()
        and not (hostile.cwd / f"probe-{token}").exists()
    )
    assert str(hostile.cwd) in writable


@pytest.mark.slow
def test_socket_folder_quota_is_unmounted_however_the_launcher_ends(tmp_path):
    _needs_bwrap()
    if os.geteuid() != 0:
        pytest.skip("the quota is a mount, made only as root")
    course = tmp_path / "course"
    (course / "autograded" / "s1" / "ps1").mkdir(parents=True)
    for ending in (
        "shutdown",
        "SIGKILL",
    ):  # SIGKILL: what jupyter_client does to a kernel after a hung cell
        kernel = Kernel(course / "autograded" / "s1" / "ps1", course)
        try:
            assert kernel.run("result = 1 + 1") == 2 and os.path.ismount(kernel.socket_dir)
            if ending == "SIGKILL":
                os.killpg(kernel.proc.pid, signal.SIGKILL)
            else:
                kernel.client.shutdown()
            kernel.proc.wait(timeout=60)
            deadline = time.monotonic() + 20
            while os.path.ismount(kernel.socket_dir) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not os.path.ismount(kernel.socket_dir), ending
        finally:
            kernel.close()


@pytest.mark.slow
def test_tensorflow_works_when_not_hidden(tmp_path):
    _needs_bwrap()
    course = tmp_path / "course"
    (course / "autograded" / "s1" / "ps3").mkdir(parents=True)
    kernel = Kernel(course / "autograded" / "s1" / "ps3", course, hidden=())
    try:
        result = kernel.run(
            "import tensorflow as tf\n"
            "image = tf.reshape(tf.range(16.0), (1, 4, 4, 1))\n"
            "out = tf.nn.conv2d(image, tf.ones((2, 2, 1, 1)), strides=1, padding='VALID')\n"
            "result = [list(out.shape), float(out[0, 0, 0, 0])]",
            timeout=600,
        )
        assert result == [[1, 3, 3, 1], 10.0]
    finally:
        kernel.close()


@pytest.mark.slow
def test_a_kernel_that_uses_up_its_process_limit_does_not_stop_the_kernel_beside_it(tmp_path):
    """Parallel grading: a fork bomb holds every process its limit allows; a kernel started beside
    it (as grade_batch's other worker does) still starts and runs, since each kernel has a uid of
    its own."""
    _needs_bwrap()
    if os.geteuid() != 0:
        pytest.skip("without root every kernel keeps the grader's uid (see sandbox.kernel_uid)")
    bomb = Kernel(_kernel_folder(tmp_path, "bomb"), tmp_path / "course-bomb")
    try:
        held = bomb.run(  # children that sleep, as many as RLIMIT_NPROC lets this uid have
            "import os, time\nborn = 0\n"
            "while True:\n"
            "    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
            "    if pid == 0:\n        time.sleep(600)\n        os._exit(0)\n"
            "    born += 1\n"
            "result = born",
            timeout=120,
        )
        assert held > 100, held
        beside = Kernel(_kernel_folder(tmp_path, "beside"), tmp_path / "course-beside")
        try:
            assert beside.run("result = sum(range(10))") == 45
        finally:
            beside.close()
    finally:
        bomb.close()


def _kernel_folder(tmp_path: Path, name: str) -> Path:
    cwd = tmp_path / f"course-{name}" / "autograded" / "s1" / "ps1"
    cwd.mkdir(parents=True)
    return cwd


def test_a_launcher_whose_grader_died_while_it_started_starts_no_kernel(monkeypatch):
    # The death signal is asked for once Python runs; a grader killed before that sends none, so the
    # launcher compares its parent with the one jupyter_client named (JPY_PARENT_PID) and gives up.
    monkeypatch.setenv("JPY_PARENT_PID", str(os.getppid()))
    assert not sandbox._parent_gone()
    monkeypatch.setenv("JPY_PARENT_PID", str(os.getppid() + 1))
    assert sandbox._parent_gone()
    monkeypatch.delenv("JPY_PARENT_PID")
    assert not sandbox._parent_gone()
