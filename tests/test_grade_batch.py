"""Hostile submissions against `python -m cnnbook.grade_batch`: the batch finishes, every other student is
graded, the gradebook is intact, and each bad submission ends within its limits with a clear status.
Then plain `nbgrader autograde` and `nbgrader generate_feedback` on a course of their own: a forged
nbgrader cell no longer stops the run, and feedback shows no hidden test whatever the student's code prints.

A tiny numpy-only assignment in a temporary course folder (one solution cell, one test cell worth 2
points) keeps this independent of the course's own exercises. The course folder is made outside /tmp
so that hiding it (not just the sandbox's private /tmp) is what keeps the gradebook out of reach.
"""

from __future__ import annotations

import copy
import csv
import html
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from cnnbook import grade_batch, grading, sandbox

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
        f"configure(c, {str(root)!r}, limits={limits!r}, require_sandbox={require_sandbox!r})\n"
        "from cnnbook import grading\n"
        "grading.configure(c)\n")
    for cmd in (["db", "assignment", "add", "tiny"], ["generate_assignment", "tiny", "--force"]):
        nbgrader(root, *cmd).check_returncode()
    return root


def nbgrader(root: Path, *args: str) -> subprocess.CompletedProcess:
    """``nbgrader <args>`` in the course folder, as an instructor runs it."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, env=env, capture_output=True, text=True)


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


def nbformat3(nb: dict) -> dict:
    """``nb`` as an old Jupyter (nbformat 3) saves it."""
    old = nbformat.convert(nbformat.from_dict(nb), 3)
    del old["orig_nbformat"], old["orig_nbformat_minor"]  # only a downgrade writes these
    return old


PNG_1X1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
RICH_OUTPUT = f"""
from IPython.display import HTML, SVG, Javascript, Markdown, display
display(HTML('<script>alert("html")</script>'))
display(Javascript('alert("javascript")'))
display(SVG('<svg xmlns="http://www.w3.org/2000/svg"><script>alert("svg")</script></svg>'))
display(Markdown('<img src=x onerror=alert("markdown")>'))
# the HTML export writes an image's width unquoted: <img ... width=1 onerror=alert(...)>
display({{"image/png": "{PNG_1X1}", "text/plain": "a pixel"}}, raw=True,
        metadata={{"image/png": {{"width": '1 onerror=alert("width")'}}}})
"""


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
        submit(root, "segfault", answer(root, "import ctypes\nctypes.string_at(0)\n"))
        deleted = answer(root, SOLUTION)
        del deleted["cells"][2]  # the test cell deleted by the student
        submit(root, "deletedtest", deleted)
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
        copied = answer(root, "def double(x):\n    return None\n")  # the test cell copied twice, copies emptied
        copies = [copy.deepcopy(copied["cells"][2]) for _ in range(2)]
        for cell in copies:
            cell["source"] = "pass"
        copied["cells"][3:3] = copies
        submit(root, "copiedtest", copied)
        same_ids = answer(root, SOLUTION)
        for cell in same_ids["cells"]:
            cell["id"] = "same-id"
        submit(root, "sameids", same_ids)
        submit(root, "nbformat3", nbformat3(answer(root, SOLUTION)))
        million = answer(root, SOLUTION)
        million["cells"].append(_cell("for i in range(10**6):\n    print(i)"))  # after the test: its points are safe
        submit(root, "millionlines", million)
        submit(root, "html20mb", answer(root, "from IPython.display import HTML, display\n"
                                              "display(HTML('<b>' + 'x' * 20_000_000 + '</b>'))\n" + SOLUTION))
        submit(root, "richoutput", answer(root, RICH_OUTPUT + SOLUTION))

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
    for student in ("membomb", "forkbomb", "exit", "segfault"):
        assert res[student].status.startswith("graded"), (student, res[student])
        assert res[student].score == 0.0
        assert res[student].seconds < WALL
    assert "MemoryError" in json.dumps(autograded(batch, "membomb")) or "kernel died" in res["membomb"].status
    assert res["exit"].status.startswith("graded (kernel died")
    assert res["segfault"].status.startswith("graded (kernel died")


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


def test_copied_test_cell_is_graded_once_as_the_assignment_has_it(batch):
    res = batch["results"]["copiedtest"]
    assert res.status == "graded" and (res.score, res.max_score) == (0.0, 2.0)  # not "error", no free points
    assert any("'test_double' appears 3 times" in n for n in res.notes)
    graded = [c for c in autograded(batch, "copiedtest")["cells"]
              if c["metadata"].get("nbgrader", {}).get("grade_id") == "test_double"]
    assert len(graded) == 1 and "should be [2, 4]" in "".join(graded[0]["source"])


def test_deleted_test_cell_is_restored_and_run(batch):
    res = batch["results"]["deletedtest"]
    assert res.status == "graded" and (res.score, res.max_score) == (2.0, 2.0)
    sources = ["".join(c["source"]) for c in autograded(batch, "deletedtest")["cells"]]
    assert any("should be [2, 4]" in src for src in sources)


def test_cells_with_the_same_id_are_graded(batch):
    res = batch["results"]["sameids"]
    assert res.status == "graded" and res.score == 2.0
    ids = [c["id"] for c in autograded(batch, "sameids")["cells"]]
    assert len(set(ids)) == len(ids) == 3


def test_nbformat3_notebook_is_converted_and_graded(batch):
    res = batch["results"]["nbformat3"]
    assert res.status == "graded" and res.score == 2.0
    assert any("nbformat 3 notebook (saved by an old Jupyter) converted to version 4" in n for n in res.notes)
    assert autograded(batch, "nbformat3")["nbformat"] == 4


def test_million_lines_of_output_stay_small(batch):
    res = batch["results"]["millionlines"]
    # The loop may outlast the cell timeout (it does on 2 busy cores); it comes after the test cell either way.
    assert res.status.startswith("graded") and res.score == 2.0 and res.seconds < WALL
    assert (batch["root"] / "autograded" / "millionlines" / "tiny" / "tiny.ipynb").stat().st_size < 200_000
    printed = "".join("".join(o["text"]) for o in autograded(batch, "millionlines")["cells"][-1]["outputs"]
                      if o["output_type"] == "stream")
    assert printed.startswith("0\n1\n2\n") and "truncated" in printed


def test_20_mb_html_display_is_dropped(batch):
    res = batch["results"]["html20mb"]
    assert res.status == "graded" and res.score == 2.0
    assert (batch["root"] / "autograded" / "html20mb" / "tiny" / "tiny.ipynb").stat().st_size < 200_000
    [output] = autograded(batch, "html20mb")["cells"][1]["outputs"]
    assert list(output["data"]) == ["text/plain"]
    assert "[text/html output removed by the grader" in "".join(output["data"]["text/plain"])


def test_rich_outputs_are_reduced_to_text_and_images(batch):
    # HTML, JavaScript, SVG and Markdown would run script in the formgrader and in feedback pages.
    assert batch["results"]["richoutput"].score == 2.0
    outputs = autograded(batch, "richoutput")["cells"][1]["outputs"]
    assert len(outputs) == 5
    assert {mime for o in outputs for mime in o["data"]} == {"text/plain", "image/png"}
    assert "alert" not in json.dumps(outputs)
    [pixel] = [o for o in outputs if "image/png" in o["data"]]
    assert "".join(pixel["data"]["image/png"]).strip() == PNG_1X1 and pixel["metadata"] == {}


# --- plain nbgrader, without grade_batch: autograde and feedback -------------------------------

PRINTS_ITS_TEST = "def double(x):\n    print(get_ipython().user_ns['In'][-1])\n    return 2 * np.asarray(x)\n"
RAISES_ITS_TEST = "def double(x):\n    raise AssertionError(get_ipython().user_ns['In'][-1])\n"
PRINTS_HISTORY = "print(In)\nprint(In[-2])\nprint(repr(In[-2]))"  # In[-2]: the test cell, run just before


@pytest.fixture(scope="module")
def plain():
    """`nbgrader autograde tiny`, then `nbgrader generate_feedback tiny`, on a course of its own."""
    if sandbox.bwrap_problem():
        pytest.skip(sandbox.bwrap_problem())
    root = Path(tempfile.mkdtemp(prefix="cnnbook-plain-", dir="/var/tmp"))
    try:
        make_course(root, {"cpu_seconds": 20, "processes": 64, "address_space_mb": 2048})
        forged = answer(root, SOLUTION)
        forged["cells"][2]["metadata"]["nbgrader"].update(schema_version=99, points=100)
        forged["cells"].append(_cell("pass", {"grade": True, "solution": False, "locked": True, "points": 100,
                                              "grade_id": "bonus", "schema_version": 3}))
        submit(root, "aa-schema99", forged)  # graded first: nbgrader used to stop here, for everyone
        submit(root, "bb-good", answer(root, SOLUTION))
        submit(root, "cc-prints-its-test", answer(root, PRINTS_ITS_TEST))
        submit(root, "cc-raises-its-test", answer(root, RAISES_ITS_TEST))
        history = answer(root, SOLUTION)
        history["cells"].append(_cell(PRINTS_HISTORY))
        submit(root, "cc-prints-history", history)
        students = sorted(p.name for p in (root / "submitted").iterdir())
        graded = nbgrader(root, "autograde", "tiny")
        scores = {s: grade_batch.read_scores(f"sqlite:///{root / 'gradebook.db'}", "tiny", s) for s in students}
        feedback = nbgrader(root, "generate_feedback", "tiny")
        yield {"root": root, "students": students, "autograde": graded, "scores": scores, "feedback": feedback}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def feedback_text(plain, student) -> tuple[str, str]:
    """A student's feedback page: its HTML, and the text a browser shows."""
    page = (plain["root"] / "feedback" / student / "tiny" / "tiny.html").read_text()
    return page, html.unescape(re.sub(r"<[^>]+>", "", page))


def test_plain_autograde_survives_a_forged_schema_version(plain):
    run = plain["autograde"]
    assert run.returncode == 0, run.stderr[-3000:]
    assert "cell 'test_double': nbgrader metadata differed from the assignment's; restored" in run.stderr
    assert "cell with unknown nbgrader metadata" in run.stderr
    scores = plain["scores"]
    assert scores["aa-schema99"] == (2.0, 2.0)  # what it earned: forged points count for nothing
    assert scores["bb-good"] == (2.0, 2.0)
    for student in ("aa-schema99", "bb-good"):
        assert _rows(plain["root"] / "gradebook.db", student)[3], f"no grades for {student}"


def test_feedback_shows_pass_or_fail_and_no_hidden_test(plain):
    assert plain["feedback"].returncode == 0, plain["feedback"].stderr[-3000:]
    # The student's code did get the hidden test during grading: the instructor's copy shows it.
    assert "hidden check" in outputs_text(autograded(plain, "cc-prints-its-test"))
    assert "hidden check" in outputs_text(autograded(plain, "cc-raises-its-test"))
    for student in plain["students"]:
        page, text = feedback_text(plain, student)
        for secret in ("hidden check", "BEGIN HIDDEN TESTS", "double([3])"):
            assert secret not in page and secret not in text, (student, secret)
        assert "double([1, 2]) should be [2, 4]" in text  # the visible test is still shown
    expected = {"bb-good": (2.0, "passed"), "cc-prints-its-test": (2.0, "passed"),
                "cc-raises-its-test": (0.0, f"Failed: {grading.TEST_FAILED}"),
                "cc-prints-history": (2.0, grading.REDACTED_LINE)}
    for student, (score, shown) in expected.items():
        _, text = feedback_text(plain, student)
        assert f"tiny (Score: {score} / 2.0)" in text and shown in text, (student, text[-2000:])



# --- checks before grading, without a kernel ---------------------------------------------------


def test_symbolic_links_are_removed_before_grading(tmp_path):
    """nbgrader copies a submission as root, following links: a link to the gradebook would become a copy."""
    secret = tmp_path / "gradebook.db"
    secret.write_text("grades")
    folder = tmp_path / "submitted" / "s1" / "tiny"
    folder.mkdir(parents=True)
    (folder / "tiny.ipynb").write_text(json.dumps(source_notebook()))
    (folder / "data.txt").symlink_to(secret)
    rejected, notes = grade_batch.prepare(folder, {"tiny.ipynb": source_notebook()}, tmp_path / "originals")
    assert rejected is None
    assert not (folder / "data.txt").exists() and not (folder / "data.txt").is_symlink()
    assert secret.read_text() == "grades"
    assert any(f"symbolic link data.txt -> {secret} removed" in n for n in notes), notes

    (folder / "tiny.ipynb").unlink()
    (folder / "tiny.ipynb").symlink_to(secret)  # the notebook itself a link: nothing left to grade
    rejected, notes = grade_batch.prepare(folder, {"tiny.ipynb": source_notebook()}, tmp_path / "originals")
    assert rejected == "missing notebook" and secret.read_text() == "grades"


def test_wall_clock_limit_leaves_room_for_every_fresh_kernel(tmp_path):
    config = tmp_path / "nbgrader_config.py"
    config.write_text("c = get_config()\nc.Execute.timeout = 300\n")
    assert grade_batch.course_dirs(tmp_path)["wall_seconds"] == (sandbox.MAX_KERNEL_RESTARTS + 2) * 300
    config.write_text("c = get_config()\nc.Execute.timeout = 300\nc.SandboxedExecute.max_kernel_restarts = 1\n")
    assert grade_batch.course_dirs(tmp_path)["wall_seconds"] == 3 * 300
    config.unlink()  # nbgrader's 30 s cell timeout: the floor applies
    assert grade_batch.course_dirs(tmp_path)["wall_seconds"] == grade_batch.MIN_WALL_SECONDS
    assert grade_batch.course_dirs(ROOT)["wall_seconds"] == 1500  # this course: ps3's 300 s cells
