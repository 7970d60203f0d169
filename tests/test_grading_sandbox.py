"""The sandboxed grading kernel: its kernelspec, the bubblewrap command it builds, and how configure() sets
up nbgrader (refusing to autograde without bubblewrap unless the instructor opts out).

The hostile submissions themselves are in tests/test_grade_batch.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from traitlets.config import Config

from cnnbook import sandbox

ROOT = Path(__file__).resolve().parent.parent


def test_kernelspec_runs_the_launcher_with_message_interrupts(tmp_path):
    path = sandbox.install(tmp_path)
    assert path == tmp_path / "share" / "jupyter" / "kernels" / "cnnbook-sandbox" / "kernel.json"
    spec = json.loads(path.read_text())
    assert spec["argv"] == [sys.executable, "-m", "cnnbook.sandbox", "launch", "{connection_file}"]
    assert spec["interrupt_mode"] == "message"
    assert sandbox.install(tmp_path).read_text() == path.read_text()  # idempotent


def test_command_hides_the_course_and_drops_privileges(tmp_path, monkeypatch):
    course = tmp_path / "course"
    notebook_dir = course / "autograded" / "s1" / "ps1"
    monkeypatch.delenv("CNNBOOK_DATA_DIR", raising=False)
    cmd = sandbox.sandbox_command(7, ["--x"], notebook_dir, tmp_path / "sock", course, {})
    assert cmd[0].endswith("bwrap")
    pairs = list(zip(cmd, cmd[1:]))
    assert ("--ro-bind", "/") in pairs and ("--tmpfs", "/tmp") in pairs and ("--tmpfs", str(course)) in pairs
    assert ("--tmpfs", "/root") in pairs
    assert "--unshare-net" in cmd or "--unshare-all" in cmd
    assert "--die-with-parent" in cmd and ("--unshare-pid" in cmd or "--unshare-all" in cmd)
    # the notebook's folder is bound after the course is hidden, so it is the one visible part of it
    assert cmd.index(str(notebook_dir)) > cmd.index(str(course))
    assert cmd[-4:] == ["ipykernel_launcher", "-f", "/tmp/.kernel.json", "--x"]
    if os.geteuid() == 0:
        assert "--reuid=65534" in cmd and cmd.index("--reuid=65534") > cmd.index("--die-with-parent")


def test_working_folder_shows_the_assignment_files_but_no_notebook(tmp_path):
    folder = tmp_path / "autograded" / "s1" / "ps1"
    (folder / "data").mkdir(parents=True)
    for name in ("ps1.ipynb", "Other.IPYNB", "numbers.txt"):
        (folder / name).write_text("x")
    (folder / ".ipynb_checkpoints").mkdir()
    (folder / "link.txt").symlink_to("/etc/shadow")
    cmd = sandbox.sandbox_command(7, [], folder, tmp_path / "sock", tmp_path, {})
    pairs = list(zip(cmd, cmd[1:]))
    assert ("--tmpfs", str(folder)) in pairs and ("--bind", str(folder)) not in pairs  # a private, empty tmpfs
    shown = {Path(src).name for flag, src in pairs if flag == "--ro-bind" and Path(src).parent == folder}
    assert shown == {"data", "numbers.txt"}  # read-only; no notebook, no checkpoints, no symlink followed as root
    assert not any(arg.endswith(("ps1.ipynb", "link.txt")) for arg in cmd)
    assert cmd.index(str(folder / "numbers.txt")) > cmd.index(str(folder))  # bound onto the tmpfs, not hidden by it


def test_kernel_environment_leaks_nothing_of_the_grader(monkeypatch):
    monkeypatch.setenv("NBGRADER_DB_URL", "postgresql://grader:secret@db/course")
    monkeypatch.setenv("JPY_PARENT_PID", "123")
    env = sandbox._kernel_env(Path("/course"))
    assert "NBGRADER_DB_URL" not in env and "JPY_PARENT_PID" not in env
    from cnnbook.data import cache_dir

    assert env["HOME"] == "/tmp" and env["CNNBOOK_DATA_DIR"] == str(Path(cache_dir()).resolve())


def test_missing_bubblewrap_is_explained(monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    problem = sandbox.bwrap_problem()
    assert "apt-get install bubblewrap" in problem and "require_sandbox=False" in problem


def _configured(monkeypatch, problem, **kw):
    monkeypatch.setattr(sandbox, "bwrap_problem", lambda: problem)
    monkeypatch.setattr(sys, "argv", ["nbgrader", "autograde", "ps1"])
    monkeypatch.delenv(sandbox.ENV_LIMITS, raising=False)
    c = Config()
    sandbox.configure(c, ROOT, **kw)
    return c


def test_autograde_refuses_without_a_sandbox(monkeypatch, capsys):
    c = _configured(monkeypatch, "bubblewrap (bwrap) is not installed")
    [refuse] = c.Autograde.autograde_preprocessors
    with pytest.raises(sandbox.SandboxError, match="Refusing to autograde without a sandbox: bubblewrap"):
        refuse(config=c).preprocess({}, {})
    assert "bubblewrap (bwrap) is not installed" in capsys.readouterr().err


def test_opting_out_grades_in_the_plain_kernel(monkeypatch, capsys):
    c = _configured(monkeypatch, "bubblewrap (bwrap) is not installed", require_sandbox=False)
    execute = c.Autograde.autograde_preprocessors[0]
    assert execute.__name__ == "UnsandboxedExecute"
    assert "WITHOUT a sandbox" in capsys.readouterr().err


def test_configure_with_bubblewrap(monkeypatch):
    c = _configured(monkeypatch, None, limits={"cpu_seconds": 5})
    names = [p.__name__ for p in c.Autograde.autograde_preprocessors]
    assert names[0] == "SandboxedExecute"
    assert names.index("CapOutputBytes") == names.index("LimitOutput") + 1 < names.index("SaveAutoGrades")
    assert c.OverwriteCells.add_missing_cells is True
    assert json.loads(os.environ[sandbox.ENV_LIMITS])["cpu_seconds"] == 5
    with pytest.raises(sandbox.SandboxError, match="unknown sandbox limit"):
        sandbox.configure(Config(), ROOT, limits={"ram": 1})


def test_output_cap_keeps_the_start_and_says_so():
    _, CapOutputBytes, _ = sandbox._preprocessors()
    cap = CapOutputBytes(max_bytes=100)
    cell = {"outputs": [{"output_type": "stream", "text": "x" * 10_000},
                        {"output_type": "execute_result", "data": {"text/plain": ["y" * 5000]}}]}
    cap.preprocess_cell(cell, {}, 0)
    assert cell["outputs"][0]["text"].startswith("x" * 100)
    assert "output truncated by the grader: 10000 bytes, 100 kept" in cell["outputs"][0]["text"]
    assert len(cell["outputs"][1]["data"]["text/plain"]) < 200


@pytest.mark.slow
def test_sandbox_as_nobody_without_network():
    if sandbox.bwrap_problem():
        pytest.skip(sandbox.bwrap_problem())
    cmd = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", *sandbox._unshare(),
           "--die-with-parent", *sandbox._drop_privileges(), "sh", "-c", "id -u; tail -n +3 /proc/net/dev | cut -d: -f1"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.split()
    assert out[0] == ("65534" if os.geteuid() == 0 else str(os.getuid()))
    assert out[1:] == ["lo"]  # a network namespace of its own: only a loopback device
