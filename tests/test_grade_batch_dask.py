"""``python -m cnnbook.grade_batch`` on Dask, end to end: what the batch promises about parallel
grading, dying workers, reruns, clusters and gradebooks.

1. Parallel equals serial: 12 submissions of the real ps1-convolution (right, wrong, raising,
   looping, malformed, misnamed, missing, empty, absent) graded with one worker and, in a copy of
   the course, with two: the same scores per student and per cell, the same statuses.
2. A worker killed (SIGKILL) while it grades: its task is graded again elsewhere, and every student
   is graded exactly once (one report row, one gradebook submission, one log, no half-swapped
   folders).
3. A submission that kills every worker that grades it is marked "kills grading workers" after
   Dask's bounded tries, in bounded time, and the others are graded.
4. Reruns: nothing changed, nobody graded (files and mtimes untouched); a changed notebook,
   --student, --force, and a batch interrupted with SIGINT that keeps what it recorded and grades
   only the rest.
5. An existing cluster (a scheduler and a worker started here) by --scheduler-file and --scheduler.
6. PostgreSQL: generate_assignment, grade_batch --workers 2, generate_feedback and export against a
   real server.
7. A gradebook URL that does not work: one line, exit code 1, nothing changed.
8. A scheduler that cannot be reached (a malformed address, a closed port): one line, exit code 1.

The ps1 courses (helpers.make_course) grade with a 10 s cell limit, so that the looping submission
costs 10 s; the tiny courses are tests/tiny_course.py's (a numpy ``double`` worth 2 points, its
own checks module loaded from a path), which grade in about 2 s a student.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from helpers import _env, code_cell, find_cell, grade_batch, make_course, nbgrader_db, solution_body
from tiny_course import (
    CHECKS as TINY_CHECKS,
)
from tiny_course import (
    SOLUTION,
    answer,
    submit,
)
from tiny_course import (
    make_course as make_tiny_course,
)

from cnnbook import grade_batch as batch_cli
from cnnbook import sandbox
from cnnbook.batch.cluster import KILLED_STATUS, connect

pytestmark = pytest.mark.slow

PS, NOTEBOOK, POINTS = "ps1-convolution", "convolution", 18.0
CELL_SECONDS = 10  # the ps1 courses' cell limit: what the looping submission costs
PS1_CONFIG = f"c.Execute.timeout = {CELL_SECONDS}\n"
TINY = "tiny"
WRONG = "def double(x):\n    return np.asarray(x)\n"  # tiny: 0 of 2 points


@pytest.fixture(autouse=True)
def sandboxed():
    if sandbox.bwrap_problem():
        pytest.skip(sandbox.bwrap_problem())


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def tiny_template():
    """One tiny course (test_grader_inputs: its release generated, its gradebook made), copied for
    each test."""
    root = make_tiny_course(Path(tempfile.mkdtemp(prefix="cnnbook-dask-tiny-", dir="/var/tmp")))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def tiny_course(tiny_template):
    """A fresh copy of the tiny course under /var/tmp (its configuration names its own folder)."""
    root = Path(tempfile.mkdtemp(prefix="cnnbook-dask-tiny-", dir="/var/tmp"))
    shutil.copytree(tiny_template, root, dirs_exist_ok=True)
    config = root / "nbgrader_config.py"
    config.write_text(config.read_text().replace(str(tiny_template), str(root)))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def sleepy(root: Path, code: str, seconds: float) -> dict:
    """A tiny submission with ``code`` that also sleeps ``seconds`` in a cell of its own (a longer
    task)."""
    return answer(root, code, [code_cell(f"import time\ntime.sleep({seconds})")])


def read_report(root: Path, assignment: str) -> dict[str, dict]:
    with open(root / "grade_batch" / assignment / "report.csv", newline="", encoding="utf-8") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def read_state(root: Path, assignment: str) -> dict[str, dict]:
    path = root / "grade_batch" / assignment / "state.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def gradebook(url: str, assignment: str, course_id: str) -> dict[str, tuple]:
    """{student: (score, max_score, {cell: score})} of every submission of ``assignment`` in the
    gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(url, course_id) as gb:
        return {
            s.student.id: (
                float(s.score),
                float(s.max_score),
                {g.name: float(g.score) for nb in s.notebooks for g in nb.grades},
            )
            for s in gb.assignment_submissions(assignment)
        }


def ps1_gradebook(root: Path) -> dict[str, tuple]:
    return gradebook(f"sqlite:///{root / 'gradebook.db'}", PS, "cnn-course")


def tiny_gradebook(root: Path) -> dict[str, tuple]:
    return gradebook(f"sqlite:///{root / 'gradebook.db'}", TINY, "default_course")


def snapshot(*paths: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``paths``: {path: (content, mtime in ns)}."""
    found = {}
    for path in paths:
        for file in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
            found[str(file)] = (file.read_bytes(), file.stat().st_mtime_ns)
    return found


def outputs(root: Path, assignment: str) -> dict[str, tuple[bytes, int]]:
    """What a run may write: the gradebook, autograded/, the logs and state.json."""
    out = root / "grade_batch" / assignment
    return snapshot(root / "gradebook.db", root / "autograded", out / "logs", out / "state.json")


def leftovers(root: Path) -> list[str]:
    """Half-swapped folders replace_folder would leave in autograded/."""
    return sorted(
        str(p) for pattern in (".*.new-*", ".*.old-*") for p in (root / "autograded").rglob(pattern)
    )


def result_lines(stdout: str, students) -> dict[str, int]:
    """How many times each student's result line is in the batch's output (not "unchanged"
    lines)."""
    lines = [line for line in stdout.splitlines() if "unchanged since graded" not in line]
    return {s: sum(line.split(" ", 1)[0] == s for line in lines) for s in students}


def worker_of(log: Path) -> str:
    """The Dask worker a student's log names."""
    [line] = [line for line in log.read_text().splitlines() if line.startswith("worker: ")]
    return line.split()[1].rstrip(",")


def remove_grading_folder(folder: Path) -> None:
    """The temporary course of a task whose worker was killed: nothing was left to remove it."""
    assert folder.parent == Path(tempfile.gettempdir()) and folder.name.startswith(
        "cnnbook-grade-"
    ), folder
    shutil.rmtree(folder, ignore_errors=True)


def start_batch(root: Path, assignment: str, *args: str, log: Path) -> subprocess.Popen:
    """``python -m cnnbook.grade_batch`` in the background, its output into ``log`` (a pipe could
    fill), with Ctrl-C's default action as in a terminal: a test run started in the background by
    a script inherits SIGINT ignored, and would pass that on to the batch."""
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cnnbook.grade_batch", assignment, "--course", str(root), *args],
            cwd=root,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


def wait_until(condition, timeout: float, what: str, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stop(process: subprocess.Popen, timeout: float = 30) -> None:
    """End a process this module started (SIGTERM, then SIGKILL), and any of its children left
    behind."""
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


def worker_processes(client: psutil.Process) -> list[psutil.Process]:
    """The LocalCluster's worker processes: children of the client started by multiprocessing's
    spawn."""
    found = []
    for child in client.children():
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.NoSuchProcess:
            continue
        if "spawn_main" in cmdline and "resource_tracker" not in cmdline:
            found.append(child)
    return found


def kernel_of(worker: psutil.Process) -> psutil.Process | None:
    """The sandboxed kernel a worker runs for the student it grades, if any (it is grading then)."""
    try:
        for child in worker.children(recursive=True):
            if "cnnbook.sandbox" in " ".join(child.cmdline()):
                return child
    except psutil.NoSuchProcess:
        pass
    return None


# ------------------------------------------------------------------------ 1. parallel equals serial

# The 12 students of test 1, with what they should get: (status, score or None).
PS1_EXPECTED = {
    "a-correct": ("graded", 18.0),
    "b-renamed": (
        "graded",
        18.0,
    ),  # the only notebook, named my-convolution.ipynb: taken as convolution.ipynb
    "c-flipped": (
        "graded",
        13.0,
    ),  # conv2d flips the filter: orientation (2) and random cases (3) lost
    "d-size-off": (
        "graded",
        16.0,
    ),  # output_size one too small for VALID: both output_size cells (2) lost
    "e-raises": (
        "graded",
        16.0,
    ),  # the conv2d_params cell raises: both conv2d_params cells (2) lost
    "f-loops": (
        "graded (cell timed out)",
        16.0,
    ),  # output_size loops on an unknown padding: its probe hangs
    "g-edge-zeros": ("graded", 16.0),  # edge_map has the right shape, wrong values (2 points)
    "h-blank": ("graded", 0.0),  # the release as it was handed out
    "i-malformed": ("unreadable notebook", None),
    "j-missing": ("missing notebook", None),  # notes.txt, no notebook
    "k-empty": ("missing notebook", None),  # an empty folder
    "l-absent": ("no submission", None),  # submitted/l-absent/ without ps1-convolution/
}
FLIPPED_CONV2D_LINE = (
    "    w = np.asarray(w, dtype=float)\n",
    "    w = np.asarray(w, dtype=float)[::-1, ::-1]\n",
)
SIZE_OFF = (
    'def output_size(n, k, stride=1, padding="valid"):\n    if str(padding).lower() == "same":\n'
    '        return -(-n // stride)\n    if str(padding).lower() == "valid":\n'
    "        return (n - k) // stride\n    raise ValueError(padding)\n"
)
LOOPS = (
    'def output_size(n, k, stride=1, padding="valid"):\n    if str(padding).lower() == "same":\n'
    '        return -(-n // stride)\n    if str(padding).lower() == "valid":\n'
    "        return (n - k) // stride + 1\n    while True:\n        pass\n"
)


def submit_ps1_class(course) -> None:
    """The 12 submissions of :data:`PS1_EXPECTED`."""
    honest = course.submission(PS, NOTEBOOK, honest=True)
    source = course.source_notebook(PS, NOTEBOOK)
    flipped = solution_body(find_cell(source, "conv2d")).replace(*FLIPPED_CONV2D_LINE)
    assert "[::-1, ::-1]" in flipped
    solved = {
        "a-correct": {},
        "c-flipped": {"conv2d": flipped},
        "d-size-off": {"output_size": SIZE_OFF},
        "e-raises": {"conv2d_params": "raise RuntimeError('I give up on this one')\n"},
        "f-loops": {"output_size": LOOPS},
        "g-edge-zeros": {"edge_map": "edge_map = np.zeros((5, 5))\n"},
    }
    for student, cells in solved.items():
        course.submit(
            student, PS, course.submission(PS, NOTEBOOK, cells, honest=True), notebook=NOTEBOOK
        )
    course.submit("b-renamed", PS, honest, name="my-convolution.ipynb")
    course.submit("h-blank", PS, course.release_notebook(PS, NOTEBOOK), notebook=NOTEBOOK)
    course.submit(
        "i-malformed", PS, b'{"cells": [{"cell_type": "code", "source": "x = 1"', notebook=NOTEBOOK
    )
    course.submit("j-missing", PS, None, files={"notes.txt": "I could not save my notebook"})
    course.submit("k-empty", PS, None)
    (course.submitted / "l-absent").mkdir()


@pytest.fixture(scope="module")
def ps1_pair():
    """Two copies of one ps1 course with the same 12 submissions, graded with 1 and with 2
    workers."""
    serial = make_course(extra_config=PS1_CONFIG, prefix="cnnbook-dask-serial-")
    parallel_root = Path(tempfile.mkdtemp(prefix="cnnbook-dask-parallel-", dir="/var/tmp"))
    try:
        submit_ps1_class(serial)
        shutil.copytree(serial.root, parallel_root, dirs_exist_ok=True)
        runs = {}
        for root, workers in ((serial.root, "1"), (parallel_root, "2")):
            start = time.monotonic()
            done = grade_batch(root, PS, "--workers", workers, timeout=900)
            runs[workers] = (done, time.monotonic() - start)
        yield serial.root, parallel_root, runs
    finally:
        serial.remove()
        if not os.environ.get("CNNBOOK_KEEP_TEST_COURSES"):
            shutil.rmtree(parallel_root, ignore_errors=True)


def test_parallel_grading_equals_serial_grading(ps1_pair):
    serial, parallel, runs = ps1_pair
    for workers, (done, took) in runs.items():
        print(f"\n--workers {workers}: {took:.0f} s\n{done.stdout}")
        assert done.returncode == 1, done.stderr[-3000:]  # some students were not graded
        assert result_lines(done.stdout, PS1_EXPECTED) == dict.fromkeys(PS1_EXPECTED, 1), (
            done.stdout
        )
    reports = [read_report(root, PS) for root in (serial, parallel)]
    columns = [
        {s: (row["status"], row["score"], row["max_score"]) for s, row in report.items()}
        for report in reports
    ]
    assert columns[0] == columns[1]
    expected = {
        s: (status, "" if score is None else str(score), "" if score is None else str(POINTS))
        for s, (status, score) in PS1_EXPECTED.items()
    }
    assert columns[0] == expected, reports[0]
    books = [ps1_gradebook(root) for root in (serial, parallel)]
    assert books[0] == books[1]
    graded = {s for s, (_, score) in PS1_EXPECTED.items() if score is not None}
    assert set(books[0]) == graded
    for student in graded:
        score, max_score, cells = books[0][student]
        assert (score, max_score) == (PS1_EXPECTED[student][1], POINTS), student
        assert len(cells) == 12 and sum(cells.values()) == score, (student, cells)
    assert books[0]["c-flipped"][2]["test_conv2d_kernel_orientation_and_channels"] == 0
    assert books[0]["f-loops"][2]["test_output_size_all_sizes"] == 0
    notes = reports[0]
    assert "took 'my-convolution.ipynb' as 'convolution.ipynb'" in notes["b-renamed"]["notes"]
    assert "convolution.ipynb is unreadable" in notes["i-malformed"]["notes"]
    assert "convolution.ipynb is missing" in notes["k-empty"]["notes"]
    for root, workers in ((serial, 1), (parallel, 2)):
        assert sorted(p.name for p in (root / "autograded").iterdir()) == sorted(graded)
        assert leftovers(root) == []
        logs = root / "grade_batch" / PS / "logs"
        assert sorted(p.stem for p in logs.glob("*.log")) == sorted(PS1_EXPECTED)
        assert len({worker_of(logs / f"{s}.log") for s in graded}) == workers  # both workers graded


# ----------------------------------------------------------------- 2. a worker killed while grading


def test_worker_killed_while_grading_loses_nobody(tmp_path, tiny_course):
    root = tiny_course
    try:
        expected = {}
        for i in range(6):
            student, right = f"dask-kill-{i}", i % 3 != 2
            submit(root, student, sleepy(root, SOLUTION if right else WRONG, 2))
            expected[student] = 2.0 if right else 0.0
        log = tmp_path / "batch.txt"
        killed_cwd = ""
        client = start_batch(root, TINY, "--workers", "2", log=log)
        try:
            parent = psutil.Process(client.pid)
            busy = wait_until(
                lambda: next(
                    ((w, k) for w in worker_processes(parent) if (k := kernel_of(w))), None
                ),
                120,
                "a worker grading a student",
            )
            worker, kernel = busy
            killed_cwd = kernel.cwd()
            worker.send_signal(signal.SIGKILL)
            assert client.wait(300) == 0, log.read_text()[-3000:]
        finally:
            stop(client)
            if killed_cwd:
                remove_grading_folder(Path(*Path(killed_cwd).parts[:3]))
        stdout = log.read_text()
        print(f"\nkilled worker {worker.pid} while its kernel ran in {killed_cwd}")
        assert result_lines(stdout, expected) == dict.fromkeys(expected, 1), stdout[-3000:]
        report = read_report(root, TINY)
        assert {
            s: (row["status"], row["score"], row["max_score"]) for s, row in report.items()
        } == {s: ("graded", str(score), "2.0") for s, score in expected.items()}
        assert {s: v[:2] for s, v in tiny_gradebook(root).items()} == {
            s: (score, 2.0) for s, score in expected.items()
        }
        logs = root / "grade_batch" / TINY / "logs"
        assert sorted(p.stem for p in logs.glob("*.log")) == sorted(expected)
        assert all("status: graded" in (logs / f"{s}.log").read_text() for s in expected)
        assert sorted(p.name for p in (root / "autograded").iterdir()) == sorted(expected)
        assert leftovers(root) == []
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------- 3. a submission that kills workers

# The tiny course's checks, with a grader crash: os._exit when the student's double returns 666s. A
# student's code cannot kill the grader (it runs in the sandbox); a bug in the grader's checks
# could.
KILLER_CHECKS = TINY_CHECKS.replace(
    "import numpy as np\n", "import os\n\nimport numpy as np\n", 1
).replace(
    '    [result] = context.results["double"]\n',
    '    [result] = context.results["double"]\n'
    "    got = result.array()\n"
    "    if got is not None and got.shape == (2,) and np.all(got == 666):\n"
    "        os._exit(1)  # the grading worker's process dies here\n",
    1,
)
assert KILLER_CHECKS.count("os._exit(1)") == 1 and KILLER_CHECKS.count("import os") == 1
KILLER = "def double(x):\n    return np.full(2, 666.0)\n"


def test_submission_that_kills_workers_is_given_up_and_the_batch_goes_on(tmp_path, tiny_course):
    root = tiny_course
    try:
        (root / "tiny_checks.py").write_text(KILLER_CHECKS)
        submit(root, "dask-killer", answer(root, KILLER))
        for student in ("b-honest", "c-honest", "d-honest"):
            submit(root, student, answer(root))
        submit(root, "e-wrong", answer(root, WRONG))
        start = time.monotonic()
        done = grade_batch(root, TINY, "--workers", "2", timeout=600)
        took = time.monotonic() - start
        print(f"\nthe batch with a worker killer took {took:.0f} s")
        assert done.returncode == 1, done.stderr[-3000:]
        report = read_report(root, TINY)
        assert {s: (row["status"], row["score"]) for s, row in report.items()} == {
            "dask-killer": (KILLED_STATUS, ""),
            "b-honest": ("graded", "2.0"),
            "c-honest": ("graded", "2.0"),
            "d-honest": ("graded", "2.0"),
            "e-wrong": ("graded", "0.0"),
        }
        assert (
            "the grading worker died 3 times while grading this submission"
            in report["dask-killer"]["notes"]
        )
        assert set(tiny_gradebook(root)) == {"b-honest", "c-honest", "d-honest", "e-wrong"}
        assert not (root / "autograded" / "dask-killer").exists()
        assert (
            f"status: {KILLED_STATUS}"
            in (root / "grade_batch" / TINY / "logs" / "dask-killer.log").read_text()
        )
        assert (
            "grade-dask-killer-" in done.stderr
            and "marked as failed because 3 workers died" in done.stderr
        )
        assert took < 150, f"the batch took {took:.0f} s"
    finally:
        shutil.rmtree(root, ignore_errors=True)
        for folder in Path(tempfile.gettempdir()).glob("cnnbook-grade-*/submitted/dask-killer"):
            remove_grading_folder(folder.parent.parent)


# --------------------------------------------------------------------------- 4. reruns


def test_reruns_grade_only_what_changed_and_an_interrupted_batch_keeps_its_results(
    tmp_path, capsys, tiny_course
):
    root = tiny_course
    # One single-worker cluster for every run (a LocalCluster per run would add 7 s each).
    with connect(workers=1) as cluster:
        runs = _Reruns(root, cluster.scheduler.address)
        try:
            for student in runs.students:
                submit(root, student, answer(root, WRONG if student == "s3" else SOLUTION))
            assert runs.grade() == runs.students
            runs.nothing_changed_grades_nobody(capsys)
            runs.changed_students_are_graded_one_run_each()
            runs.force_grades_everyone()
            runs.an_interrupted_batch_keeps_its_results(tmp_path / "interrupted.txt")
        finally:
            shutil.rmtree(root, ignore_errors=True)


class _Reruns:
    """Runs of the batch on the tiny course of four students, each checking what it graded."""

    students = ["s1", "s2", "s3", "s4"]

    def __init__(self, root: Path, address: str):
        self.root, self.address = root, address
        self.logs = root / "grade_batch" / TINY / "logs"
        self.report_csv = root / "grade_batch" / TINY / "report.csv"

    def grade(self, *only: str, force: bool = False) -> list[str]:
        """The students a run graded."""
        start = time.monotonic()
        rows = batch_cli.grade(
            self.root, TINY, list(only) or None, scheduler=self.address, force=force
        )
        print(f"run {only or ''} {'--force' if force else ''}: {time.monotonic() - start:.1f} s")
        return sorted(row["student"] for row in rows)

    def log_mtimes(self, students) -> dict[str, int]:
        return {s: (self.logs / f"{s}.log").stat().st_mtime_ns for s in students}

    def nothing_changed_grades_nobody(self, capsys) -> None:
        """Nothing changed: nobody graded, nothing written but report.csv (the same bytes)."""
        root = self.root
        self.first_report = self.report_csv.read_bytes()
        self.before = outputs(root, TINY)
        capsys.readouterr()
        assert self.grade() == []
        said = capsys.readouterr().out
        assert all(f"{s:20s} unchanged since graded, kept" in said for s in self.students), said
        assert outputs(root, TINY) == self.before
        assert self.report_csv.read_bytes() == self.first_report

    def changed_students_are_graded_one_run_each(self) -> None:
        """s2 and s3 change; --student s2 grades s2 alone and keeps every other row as it was; a
        plain rerun then grades the other changed student only."""
        root, before = self.root, self.before
        submit(root, "s2", answer(root, WRONG))
        submit(root, "s3", answer(root, SOLUTION))
        old = read_report(root, TINY)
        assert self.grade("s2") == ["s2"]
        report = read_report(root, TINY)
        assert (report["s2"]["status"], report["s2"]["score"]) == ("graded", "0.0")
        others = ("s1", "s3", "s4")
        assert {s: report[s] for s in others} == {s: old[s] for s in others}
        after = outputs(root, TINY)
        changed = sorted(
            path for path in set(before) | set(after) if before.get(path) != after.get(path)
        )
        assert changed and all(
            "/s2/" in p or p.endswith(("/s2.log", "/gradebook.db", "/state.json")) for p in changed
        ), changed

        assert self.grade() == ["s3"]
        assert read_report(root, TINY)["s3"]["score"] == "2.0"
        scores = {s: v[0] for s, v in tiny_gradebook(root).items()}
        assert scores == {"s1": 2.0, "s2": 0.0, "s3": 2.0, "s4": 2.0}

    def force_grades_everyone(self) -> None:
        mtimes = self.log_mtimes(self.students)
        assert self.grade(force=True) == self.students
        assert all(self.log_mtimes([s])[s] > mtimes[s] for s in self.students)

    def an_interrupted_batch_keeps_its_results(self, log: Path) -> None:
        """Everyone changes; the batch is interrupted (SIGINT, as Ctrl-C) once its first result is
        recorded: it keeps what it recorded, and the next run grades only the rest."""
        root, students = self.root, self.students
        graded = read_state(root, TINY)
        for student in students:
            submit(root, student, sleepy(root, WRONG, 1))
        code, when = self.interrupt_after_the_first_result(graded, log)
        said = log.read_text()
        state = read_state(root, TINY)
        kept = sorted(s for s in students if state[s]["hash"] != graded[s]["hash"])
        print(f"\ninterrupted (exit code {code}, {when}) with {kept} recorded:\n{said[-1500:]}")
        assert code == 130 and 1 <= len(kept) < len(students), f"{when}\n{said[-3000:]}"
        assert (
            "interrupted: every result that arrived is recorded" in said and "Traceback" not in said
        ), said
        assert all(state[s]["score"] == 0.0 and state[s]["status"] == "graded" for s in kept)
        assert leftovers(root) == []
        kept_logs = self.log_mtimes(kept)
        assert self.grade() == sorted(set(students) - set(kept))
        assert self.log_mtimes(kept) == kept_logs
        report = read_report(root, TINY)
        assert {s: (row["status"], row["score"]) for s, row in report.items()} == dict.fromkeys(
            students, ("graded", "0.0")
        )
        scores = {s: v[0] for s, v in tiny_gradebook(root).items()}
        assert scores == dict.fromkeys(students, 0.0)

    def interrupt_after_the_first_result(self, graded: dict, log: Path) -> tuple[int, str]:
        """Start the batch, send it SIGINT once state.json has a new result; its exit code, and
        when the signal went (to tell a late signal from an ignored one)."""
        root = self.root
        start = time.monotonic()
        client = start_batch(root, TINY, "--scheduler", self.address, log=log)
        try:
            wait_until(
                lambda: [
                    s
                    for s, row in read_state(root, TINY).items()
                    if row["hash"] != graded[s]["hash"]
                ],
                180,
                "the first new result in state.json",
            )
            running = client.poll() is None
            client.send_signal(signal.SIGINT)
            when = (
                f"SIGINT {time.monotonic() - start:.1f} s after the start, batch running: {running}"
            )
            return client.wait(60), when
        finally:
            stop(client)


# --------------------------------------------------------------------------- 5. an existing cluster


def dask_process(*args: str, log: Path) -> subprocess.Popen:
    """``python -m distributed.cli.<args>`` on 127.0.0.1, non-daemonic workers (grading starts
    processes)."""
    env = {**_env(), "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
        )


def test_existing_cluster_by_scheduler_file_and_address(tmp_path, tiny_course):
    root = tiny_course
    file = tmp_path / "scheduler.json"
    scheduler = dask_process(
        "distributed.cli.dask_scheduler",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--scheduler-file",
        str(file),
        "--no-dashboard",
        log=tmp_path / "scheduler.log",
    )
    worker = None
    try:
        wait_until(
            lambda: file.is_file() and file.stat().st_size, 60, "the scheduler file", step=0.2
        )
        address = json.loads(file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        worker, worker_address = _one_worker(file, log=tmp_path / "worker.log")
        submit(root, "a-right", answer(root))
        submit(root, "b-wrong", answer(root, WRONG))
        done = grade_batch(root, TINY, "--scheduler-file", str(file), timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        submit(root, "c-right", answer(root))
        done = grade_batch(root, TINY, "--scheduler", address, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert result_lines(done.stdout, ["a-right", "b-wrong", "c-right"]) == {
            "a-right": 0,
            "b-wrong": 0,
            "c-right": 1,
        }
        _assert_graded_on_the_worker(root, worker_address, tmp_path / "worker.log")
    finally:
        for process in (worker, scheduler):
            if process is not None:
                stop(process)
        shutil.rmtree(root, ignore_errors=True)


def _one_worker(scheduler_file: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """A single-threaded worker of the scheduler named in ``scheduler_file``, once the scheduler
    knows it: its process and its address."""
    from distributed import Client

    worker = dask_process(
        "distributed.cli.dask_worker",
        "--scheduler-file",
        str(scheduler_file),
        "--nthreads",
        "1",
        "--host",
        "127.0.0.1",
        "--no-dashboard",
        log=log,
    )
    with Client(scheduler_file=str(scheduler_file), timeout="30s") as client:
        client.wait_for_workers(1, timeout=60)
        [worker_address] = client.scheduler_info()["workers"]
    return worker, worker_address


def _assert_graded_on_the_worker(root: Path, worker_address: str, worker_log: Path) -> None:
    """Each student graded as expected, on that worker, which raised nothing."""
    report = read_report(root, TINY)
    assert {s: (row["status"], row["score"]) for s, row in report.items()} == {
        "a-right": ("graded", "2.0"),
        "b-wrong": ("graded", "0.0"),
        "c-right": ("graded", "2.0"),
    }
    logs = root / "grade_batch" / TINY / "logs"
    for student in report:
        assert f"worker: {worker_address}," in (logs / f"{student}.log").read_text(), student
    text = worker_log.read_text()
    assert "Traceback" not in text, text[-3000:]


# --------------------------------------------------------------------------- 6. PostgreSQL


def grade_batch_db(
    course, db_url: str, *args: str, timeout: float = 900
) -> subprocess.CompletedProcess:
    """``python -m cnnbook.grade_batch <args>`` in the course folder with
    NBGRADER_DB_URL=``db_url``."""
    return subprocess.run(
        [sys.executable, "-m", "cnnbook.grade_batch", *args, "--course", str(course.root)],
        cwd=course.root,
        env={**_env(), "NBGRADER_DB_URL": db_url},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_whole_workflow_against_postgresql(postgres_url):
    course = make_course(assignments=(), prefix="cnnbook-dask-pg-")
    try:

        def run(*args):
            done = nbgrader_db(course, postgres_url, *args)
            assert done.returncode == 0, f"nbgrader {' '.join(args)}:\n{done.stderr[-3000:]}"

        run("generate_assignment", PS, "--force")
        course.submit("kim", PS, course.submission(PS, NOTEBOOK, honest=True), notebook=NOTEBOOK)
        source = course.source_notebook(PS, NOTEBOOK)
        flipped = solution_body(find_cell(source, "conv2d")).replace(*FLIPPED_CONV2D_LINE)
        course.submit(
            "lee",
            PS,
            course.submission(PS, NOTEBOOK, {"conv2d": flipped}, honest=True),
            notebook=NOTEBOOK,
        )
        done = grade_batch_db(course, postgres_url, PS, "--workers", "2")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        run("generate_feedback", PS)
        run("export", "--to", "grades.csv")

        assert not course.gradebook.exists(), (
            "grade_batch wrote a SQLite gradebook instead of PostgreSQL's"
        )
        book = gradebook(postgres_url, PS, "cnn-course")
        assert {s: v[:2] for s, v in book.items()} == {
            "kim": (POINTS, POINTS),
            "lee": (13.0, POINTS),
        }
        assert (
            book["lee"][2]["test_conv2d_random_cases"] == 0
            and book["kim"][2]["test_conv2d_random_cases"] == 3
        )
        report = read_report(course.root, PS)
        assert {
            s: (row["status"], row["score"], row["max_score"]) for s, row in report.items()
        } == {"kim": ("graded", "18.0", "18.0"), "lee": ("graded", "13.0", "18.0")}
        with open(course.root / "grades.csv", newline="", encoding="utf-8") as f:
            exported = {
                row["student_id"]: (row["assignment"], float(row["score"]), float(row["max_score"]))
                for row in csv.DictReader(f)
            }
        assert exported == {"kim": (PS, POINTS, POINTS), "lee": (PS, 13.0, POINTS)}
        assert "18.0 / 18.0" in course.feedback_html("kim", PS, NOTEBOOK)
        assert "13.0 / 18.0" in course.feedback_html("lee", PS, NOTEBOOK)
    finally:
        course.remove()


# ------------------------------------------------------------------------ 7. a broken gradebook URL


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_broken_gradebook_url_stops_in_one_line_and_changes_nothing(ps1_pair, postgres_server):
    serial, _, _ = ps1_pair
    report = serial / "grade_batch" / PS / "report.csv"
    before = snapshot(serial / "autograded", report, serial / "grade_batch" / PS / "state.json")
    (serial / "submitted" / "a-correct" / PS / "extra.txt").write_text("changed: would be regraded")
    urls = {
        f"postgresql://grader:secret@127.0.0.1:{closed_port()}/cnn_course": "Connection refused",
        postgres_server.url().replace(":secret@", ":wrong@"): "password authentication failed",
    }
    for url, words in urls.items():
        done = subprocess.run(
            [sys.executable, "-m", "cnnbook.grade_batch", PS, "--workers", "1"],
            cwd=serial,
            env={**_env(), "NBGRADER_DB_URL": url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and done.stdout == "", (
            done.returncode,
            done.stdout,
            done.stderr,
        )
        assert len(lines) == 1 and lines[0].startswith(
            "error: cannot open the gradebook at 127.0.0.1:"
        ), done.stderr
        assert words in lines[0] and "secret" not in lines[0] and "wrong" not in lines[0], lines[0]
        assert (
            snapshot(serial / "autograded", report, serial / "grade_batch" / PS / "state.json")
            == before
        )


# ----------------------------------------------------------------- 8. a scheduler that is not there


def test_a_scheduler_that_cannot_be_reached_gives_one_line(tiny_course):
    """A malformed address at once, an unreachable one after the 30 s connection timeout: one line
    that says how to fix it, exit code 1, nothing graded or changed."""
    submit(tiny_course, "s1", answer(tiny_course))
    for address, reason in (
        ("nonsense://x:1", "unknown address scheme 'nonsense'"),
        ("tcp://127.0.0.1:1", "Timed out trying to connect to tcp://127.0.0.1:1 after 30 s"),
    ):
        start = time.monotonic()
        done = grade_batch(tiny_course, TINY, "--scheduler", address, timeout=300)
        lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
        assert (
            lines == [lines[0]]
            and f"cannot connect to the Dask scheduler at {address}: {reason}" in lines[0]
        )
        assert "--workers N" in lines[0] and time.monotonic() - start < 90
        assert not (tiny_course / "autograded").exists()
