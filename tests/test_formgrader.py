"""nbgrader's formgrader as the instructor's page documents it: ``python -m cnnbook.lms formgrader``
as a normal user (never root), on 127.0.0.1, a free port, opened in the site tests' browser
(Playwright with Debian's Chromium, the conftest's `browser` fixture), a score overridden
on its manual grading page, then stopped.

As root, the test runs the command as ``nobody`` in a bubblewrap mount namespace that shows the
system, the Python environment (pyenv keeps it under /root, which nobody cannot enter), this
project read-only and the course folder writable, sharing the machine's network.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import nbgrader
from tiny_course import CHECKS, SOLUTION, source_notebook

from cnnbook import sandbox

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graded_course() -> Path:
    """The tiny course with this project's nbgrader_config.py and one graded student, kim."""
    root = Path(tempfile.mkdtemp(prefix="cnnbook-formgrader-", dir="/var/tmp"))
    (root / "solutions" / "tiny").mkdir(parents=True)
    (root / "solutions" / "tiny" / "tiny.ipynb").write_text(json.dumps(source_notebook()))
    (root / "tiny_checks.py").write_text(CHECKS)
    extra = f'\nc.AddProbeCells.checks = {{"tiny": {str(root / "tiny_checks.py")!r}}}\n'
    (root / "nbgrader_config.py").write_text((ROOT / "nbgrader_config.py").read_text() + extra)
    assert nbgrader(root, "generate_assignment", "tiny", "--force").returncode == 0
    nb = json.loads((root / "exercises" / "tiny" / "tiny.ipynb").read_text())
    nb["cells"][2]["source"] = SOLUTION
    (root / "submitted" / "kim" / "tiny").mkdir(parents=True)
    (root / "submitted" / "kim" / "tiny" / "tiny.ipynb").write_text(json.dumps(nb))
    done = nbgrader(root, "autograde", "tiny")
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def as_normal_user(command: list[str], course: Path) -> list[str]:
    """``command`` as ``nobody`` when the tests run as root; as is otherwise."""
    if os.geteuid() != 0:
        return command
    shown = [ROOT, *(p for p in sandbox._python_roots() if not p.is_relative_to(ROOT))]
    args = ["bwrap", "--die-with-parent", "--unshare-pid", "--unshare-ipc", *sandbox._system()]
    args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for path in shown:
        args += sandbox._bind(path)
    for name in ("/etc/passwd", "/etc/group", "/etc/nsswitch.conf"):
        args += ["--ro-bind", name, name]
    if Path(os.environ.get("SSL_CERT_FILE", "/nonexistent")).is_file():
        args += sandbox._bind(Path(os.environ["SSL_CERT_FILE"]).resolve())
    args += sandbox._bind(course, writable=True) + ["--chdir", str(course)]
    args += ["--setenv", "HOME", str(course / ".home"), "--setenv", "USER", "nobody"]
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    return args + drop + ["--inh-caps=-all", "--", *command]


def port_closes(port: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return True
        time.sleep(0.2)
    return False


def wait_for(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the formgrader did not answer at {url} within {timeout} s")


def manual_score(course: Path, within: float) -> float | None:
    from nbgrader.api import Gradebook

    deadline, score = time.monotonic() + within, None
    while time.monotonic() < deadline and score is None:
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            score = gb.find_grade("test_double", "tiny", "tiny", "kim").manual_score
        time.sleep(0.5)
    return score


@pytest.fixture
def course():
    root = graded_course()
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_formgrader_refuses_root_in_one_line(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the tests do not run as root")
    shutil.copyfile(ROOT / "nbgrader_config.py", tmp_path / "nbgrader_config.py")
    done = subprocess.run(
        [sys.executable, "-m", "cnnbook.lms", "formgrader"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: the formgrader runs students' notebooks in your browser")
    assert "Traceback" not in done.stderr


def test_formgrader_manual_grading_page_in_the_browser(course, browser):
    from nbgrader.api import Gradebook

    (course / ".home").mkdir()
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(course)], check=True)
    port = free_port()
    command = [sys.executable, "-m", "cnnbook.lms", "formgrader", "--port", str(port)]
    log = course / ".home" / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            as_normal_user(command, course),
            cwd=course,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while "token=" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        token = re.search(r"\?token=(\S+)", log.read_text()).group(1)
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/formgrader/?token={token}")
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            submission_id = gb.find_submission_notebook("tiny", "tiny", "kim").id
        page = browser.new_page()
        page.goto(f"{base}/formgrader/manage_assignments?token={token}")
        page.wait_for_selector("td.name >> text=tiny")  # the assignment's row
        assert page.locator("#warning-exchange").count() == 0  # the exchange warning
        page.goto(f"{base}/formgrader/submissions/{submission_id}/?token={token}")
        assert page.title() == "tiny"
        score = page.locator("input.score#test_double")
        page.wait_for_function("document.querySelector('#test_double').placeholder !== ''")
        assert score.get_attribute("placeholder") == "2"  # the autograded score, in grey
        score.fill("1.5")
        score.press("Tab")  # the formgrader saves when the box loses focus
        assert manual_score(course, within=20) == 1.5  # the instructor's override, saved
        page.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    # The wrapper (bwrap when the tests run as root) can exit a moment before the server inside
    # it has closed its socket, so the port is given a few seconds to close.
    assert port_closes(port, within=20), "the formgrader still listens 20 s after stop"
    text = log.read_text()
    assert "exchange directory" not in text and "Running as root" not in text, text[-3000:]
