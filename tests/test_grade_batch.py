"""Hostile submissions against `python -m cnnbook.grade_batch`: the batch finishes, every other student is
graded, the gradebook is intact, and each bad submission ends within its limits with a clear status.

A tiny numpy-only assignment in a temporary course folder (one solution cell, one test cell worth 2
points) keeps this independent of the course's own exercises. The course folder is made outside /tmp
so that hiding it (not just the sandbox's private /tmp) is what keeps the gradebook out of reach.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from cnnbook import grade_batch, sandbox

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CELL_TIMEOUT = 8
WALL = 90
SOLUTION = "def double(x):\n    return 2 * np.asarray(x)\n"


def _cell(src, meta=None, kind="code"):
    cell = {"cell_type": kind, "metadata": {"nbgrader": meta} if meta else {}, "source": src}
    if kind == "code":
        cell.update(outputs=[], execution_count=None)
    return cell


def source_notebook() -> dict:
    return {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [
            _cell("import numpy as np"),
            _cell("def double(x):\n    ### BEGIN SOLUTION\n    return 2 * np.asarray(x)\n    ### END SOLUTION",
                  {"grade": False, "solution": True, "locked": False, "grade_id": "double", "schema_version": 3}),
            _cell('"""double doubles"""\nassert (double([1, 2]) == [2, 4]).all(), "double([1, 2]) should be [2, 4]"\n'
                  "### BEGIN HIDDEN TESTS\nassert (double([3]) == [6]).all(), 'hidden check'\n### END HIDDEN TESTS",
                  {"grade": True, "solution": False, "locked": True, "points": 2, "grade_id": "test_double",
                   "schema_version": 3}),
        ],
    }


def make_course(root: Path, limits: dict, require_sandbox: bool = True) -> Path:
    (root / "source" / "tiny").mkdir(parents=True)
    (root / "source" / "tiny" / "tiny.ipynb").write_text(json.dumps(source_notebook()))
    (root / "nbgrader_config.py").write_text(
        "from cnnbook.sandbox import configure\n"
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(root)!r}\n"
        f"c.Execute.timeout = {CELL_TIMEOUT}\n"
        f"configure(c, {str(root)!r}, limits={limits!r}, require_sandbox={require_sandbox!r})\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for cmd in (["db", "assignment", "add", "tiny"], ["generate_assignment", "tiny", "--force"]):
        subprocess.run([sys.executable, "-m", "nbgrader", *cmd], cwd=root, env=env, check=True, capture_output=True)
    return root


def released(root: Path) -> dict:
    return json.loads((root / "release" / "tiny" / "tiny.ipynb").read_text())


def answer(root: Path, code: str, **nb_changes) -> dict:
    nb = released(root)
    nb["cells"][1]["source"] = code
    nb.update(nb_changes)
    return nb


def submit(root: Path, student: str, content, name: str = "tiny.ipynb") -> None:
    folder = root / "submitted" / student / "tiny"
    folder.mkdir(parents=True, exist_ok=True)
    if content is None:
        return
    data = content if isinstance(content, bytes) else json.dumps(content).encode()
    (folder / name).write_bytes(data)


PROBE = r'''
import os, socket
def _try(what, fn):
    try:
        fn()
        print("LEAK", what)
    except Exception as exc:
        print("BLOCKED", what, type(exc).__name__)
course = {course!r}
_try("gradebook", lambda: open(course + "/gradebook.db", "rb").read(10))
_try("solutions", lambda: open(course + "/source/tiny/tiny.ipynb").read(10))
_try("shadow", lambda: open("/etc/shadow").read(10))
_try("network", lambda: socket.create_connection(("1.1.1.1", 53), timeout=3))
_try("write-course", lambda: open(course + "/evil.txt", "w").write("x"))
_try("write-work", lambda: open({outside!r}, "w").write("x"))
print("ROOT-HOME", sorted(os.listdir("/root")))
print("UID", os.getuid())
''' + SOLUTION

DAEMON = r'''
import os, time, sqlite3
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(4)
        for path in [{db!r}, "gradebook.db"]:
            try:
                db = sqlite3.connect(path)
                db.execute("update grade set manual_score = 0, auto_score = 0")
                db.commit()
            except Exception:
                pass
        open({marker!r}, "w").write("daemon survived")
    os._exit(0)
''' + SOLUTION


@pytest.fixture(scope="module")
def batch():
    if sandbox.bwrap_problem():
        pytest.skip(sandbox.bwrap_problem())
    root = Path(tempfile.mkdtemp(prefix="cnnbook-batch-", dir="/var/tmp"))
    outside = Path(tempfile.mkdtemp(prefix="cnnbook-outside-", dir="/var/tmp"))
    os.chmod(outside, 0o777)  # writable by nobody on the host: only the sandbox's read-only root can stop it
    marker = outside / "daemon-was-here"
    try:
        make_course(root, {"cpu_seconds": 20, "processes": 64, "address_space_mb": 2048})
        db = root / "gradebook.db"
        good = answer(root, SOLUTION)
        submit(root, "aa-good", good)
        grade_batch.grade(root, "tiny", ["aa-good"], wall_seconds=WALL, echo=lambda s: None)
        before = _rows(db, "aa-good")

        submit(root, "loop", answer(root, "while True:\n    pass\n" + SOLUTION))
        submit(root, "sigint", answer(root, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                            "while True:\n    pass\n"))
        submit(root, "membomb", answer(root, "blocks = []\nwhile True:\n    blocks.append(bytearray(10**8))\n"))
        submit(root, "forkbomb", answer(root, "import os\nwhile True:\n    os.fork()\n"))
        submit(root, "exit", answer(root, "import os\nos._exit(3)\n"))
        submit(root, "daemon", answer(root, DAEMON.format(db=str(db), marker=str(marker))))
        submit(root, "probe", answer(root, PROBE.format(course=str(root), outside=str(outside / "escaped.txt"))))
        bonus = answer(root, "def double(x):\n    return None\n")
        bonus["cells"].append(_cell("pass", {"grade": True, "solution": False, "locked": True, "points": 100,
                                             "grade_id": "bonus", "schema_version": 3}))
        submit(root, "bonus", bonus)
        schema = answer(root, "def double(x):\n    return None\n")
        schema["cells"][2]["metadata"]["nbgrader"]["schema_version"] = 99
        schema["cells"][2]["source"] = "pass"  # also a test cell emptied by the student
        submit(root, "schema99", schema)
        submit(root, "flood", answer(root, "print('x' * 20_000_000)\n" + SOLUTION))
        submit(root, "alwaystrue", answer(root, "class Yes:\n    def __eq__(self, other):\n        return self\n"
                                                "    def all(self):\n        return True\n"
                                                "def double(x):\n    return Yes()\n"))
        submit(root, "truncated", json.dumps(good).encode()[:200])
        submit(root, "notutf8", json.dumps(good).encode().replace(b"import numpy", b"import \xff\xfenumpy"))
        submit(root, "missing", None)
        submit(root, "renamed", good, name="tiny (1).ipynb")
        kernel = answer(root, SOLUTION)
        kernel["metadata"]["kernelspec"] = {"name": "bash", "display_name": "Bash", "language": "bash"}
        kernel["cells"][2]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "forged"}]
        submit(root, "kernelspec", kernel)
        prefilled = answer(root, "def double(x):\n    return None\n")
        prefilled["cells"][2]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "ok"}]
        submit(root, "prefilled", prefilled)

        originals = {p: p.read_bytes() for p in (root / "submitted").rglob("*.ipynb")}
        lines = []
        start = time.monotonic()
        results = grade_batch.grade(root, "tiny", wall_seconds=WALL, echo=lines.append)
        elapsed = time.monotonic() - start
        time.sleep(5)  # the daemon would have written by now
        yield {"root": root, "results": {r.student: r for r in results}, "lines": lines, "elapsed": elapsed,
               "before": before, "after": _rows(db, "aa-good"), "marker": marker, "outside": outside,
               "originals": originals}
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(outside, ignore_errors=True)


def _rows(db: Path, student: str) -> list:
    """Every gradebook row that belongs to ``student`` (grades, comments, submissions), as raw tuples."""
    con = sqlite3.connect(db)
    try:
        sub = con.execute("select id from submitted_assignment where student_id = ?", (student,)).fetchall()
        ids = [s[0] for s in sub]
        q = ",".join("?" * len(ids))
        nbs = con.execute(f"select * from submitted_notebook where assignment_id in ({q})", ids).fetchall()
        nb_ids = [n[0] for n in nbs]
        q2 = ",".join("?" * len(nb_ids))
        return [con.execute("select * from student where id = ?", (student,)).fetchall(),
                con.execute(f"select * from submitted_assignment where id in ({q})", ids).fetchall(), nbs,
                con.execute(f"select * from grade where notebook_id in ({q2}) order by id", nb_ids).fetchall(),
                con.execute(f"select * from comment where notebook_id in ({q2}) order by id", nb_ids).fetchall()]
    finally:
        con.close()


def autograded(batch, student) -> dict:
    return json.loads((batch["root"] / "autograded" / student / "tiny" / "tiny.ipynb").read_text())


def outputs_text(nb) -> str:
    return "".join("".join(o.get("text", "")) + o.get("evalue", "") for c in nb["cells"] for o in c.get("outputs", []))


def test_every_student_gets_a_status_and_the_good_one_full_marks(batch):
    res = batch["results"]
    assert res["aa-good"].status == "graded" and res["aa-good"].score == 2.0
    report = list(csv.DictReader(open(batch["root"] / "grade_batch" / "tiny" / "report.csv")))
    assert {r["student"] for r in report} == set(res)
    assert len(batch["lines"]) == len(res) + 1


def test_other_students_gradebook_rows_are_unchanged_byte_for_byte(batch):
    assert batch["before"][3], "the good student's grades should be in the gradebook"
    assert batch["after"] == batch["before"]


def test_hanging_cells_cost_only_their_own_scores(batch):
    res = batch["results"]
    # An interruptible loop and one that ignores SIGINT: each cell is stopped after the cell timeout,
    # the kernel restarted, and the student still gets a row with 0 points (not lost).
    assert res["loop"].status.startswith("graded (cell timed out") and res["loop"].score == 0.0
    assert res["sigint"].status.startswith("graded (cell timed out") and res["sigint"].score == 0.0
    for student in ("loop", "sigint"):
        assert res[student].seconds < WALL


def test_resource_bombs_are_contained(batch):
    res = batch["results"]
    for student in ("membomb", "forkbomb", "exit"):
        assert res[student].status.startswith("graded"), (student, res[student])
        assert res[student].score == 0.0
        assert res[student].seconds < WALL
    assert "MemoryError" in json.dumps(autograded(batch, "membomb")) or "kernel died" in res["membomb"].status
    assert res["exit"].status.startswith("graded (kernel died")


def test_detached_daemon_dies_with_the_kernel(batch):
    assert batch["results"]["daemon"].score == 2.0
    assert not batch["marker"].exists()
    out = subprocess.run(["ps", "-u", str(sandbox.NOBODY), "-o", "pid=,args="], capture_output=True, text=True).stdout
    assert "ipykernel" not in out, f"sandbox processes left behind:\n{out}"


def test_secrets_network_and_writes_are_out_of_reach(batch):
    text = outputs_text(autograded(batch, "probe"))
    assert "ROOT-HOME []" in text or "ROOT-HOME ['.pyenv']" in text, text  # the grader's home is hidden
    for what in ("gradebook", "solutions", "shadow", "network", "write-course", "write-work"):
        assert f"BLOCKED {what}" in text, text
    assert "LEAK" not in text
    assert "UID 65534" in text
    assert batch["results"]["probe"].score == 2.0
    assert not (batch["root"] / "evil.txt").exists() and not (batch["outside"] / "escaped.txt").exists()


def test_forged_metadata_cannot_add_points(batch):
    res = batch["results"]
    assert res["bonus"].max_score == 2.0 and res["bonus"].score == 0.0
    assert any("unknown nbgrader metadata" in n for n in res["bonus"].notes)
    assert res["schema99"].status == "graded" and res["schema99"].score == 0.0
    assert any("test_double" in n and "restored" in n for n in res["schema99"].notes)
    # the emptied test cell was restored from the source and run
    assert "hidden check" in json.dumps(autograded(batch, "schema99")) or "should be [2, 4]" in json.dumps(
        autograded(batch, "schema99"))
    assert res["prefilled"].score == 0.0 and any("outputs removed" in n for n in res["prefilled"].notes)
    assert res["kernelspec"].score == 2.0 and any("kernelspec" in n for n in res["kernelspec"].notes)


def test_output_flood_is_capped(batch):
    path = batch["root"] / "autograded" / "flood" / "tiny" / "tiny.ipynb"
    assert path.stat().st_size < 200_000
    assert "output truncated by the grader" in path.read_text()
    assert batch["results"]["flood"].score == 2.0


def test_always_equal_object_is_reported(batch):
    # Not stopped here: visible and hidden tests must check types (the exercises' job). Documented.
    assert batch["results"]["alwaystrue"].status == "graded"


def test_unreadable_and_missing_notebooks_are_rejected_with_a_reason(batch):
    res = batch["results"]
    assert res["truncated"].status == "unreadable notebook" and "not valid JSON" in res["truncated"].notes[0]
    assert res["notutf8"].status == "unreadable notebook" and "not UTF-8" in res["notutf8"].notes[0]
    assert res["missing"].status == "missing notebook"
    assert res["renamed"].status == "graded" and res["renamed"].score == 2.0
    assert any("tiny (1).ipynb" in n for n in res["renamed"].notes)


def test_originals_are_kept(batch):
    root = batch["root"]
    kept = root / "grade_batch" / "tiny" / "originals"
    for path, data in batch["originals"].items():
        student = path.relative_to(root / "submitted").parts[0]
        if path.exists() and path.read_bytes() == data:
            continue
        assert (kept / student / path.name).read_bytes() == data, f"original of {student} lost"


def test_batch_time_is_bounded(batch):
    assert batch["elapsed"] < WALL * len(batch["results"])
