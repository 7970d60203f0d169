"""Submissions that turn the grading kernel against the grader, graded by `cnnbook.grade_batch` in one batch.

The tiny course of tests/test_grade_batch.py gets a second function, ``triple``, with its own test cell
(1 point), so that a test cell that hangs or kills its kernel can be seen to cost only its own points.
Each student below tries one trick:

* reading the notebook being graded (the autograded copy holds the hidden tests) and replacing it with a
  symlink that nbgrader, as root, would write the graded notebook through;
* silencing failing tests with ``set_custom_exc`` or a no-op ``showtraceback``;
* a function that loops forever or calls ``os._exit`` only when a test calls it;
* more kernel deaths than the grader restarts kernels for.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import test_grade_batch
from test_grade_batch import SOLUTION, _cell, answer, autograded, outputs_text, submit
from test_grade_batch import source_notebook as tiny_notebook

from cnnbook import grade_batch, sandbox

pytestmark = pytest.mark.slow

CELL_TIMEOUT = 5
WALL = 120
TRIPLE = "def triple(x):\n    return 3 * np.asarray(x)\n"  # np from the first cell: needs it re-run after a restart
WRONG_DOUBLE = "def double(x):\n    return None\n"
WRONG_TRIPLE = "def triple(x):\n    return None\n"


def source_notebook() -> dict:
    """The tiny assignment plus ``triple``: its solution cell and a test cell worth 1 point."""
    nb = tiny_notebook()
    nb["cells"] += [
        _cell("def triple(x):\n    ### BEGIN SOLUTION\n    return 3 * np.asarray(x)\n    ### END SOLUTION",
              {"grade": False, "solution": True, "locked": False, "grade_id": "triple", "schema_version": 3}),
        _cell('"""triple triples"""\nassert (triple([1, 2]) == [3, 6]).all(), "triple([1, 2]) should be [3, 6]"\n'
              "### BEGIN HIDDEN TESTS\nassert (triple([3]) == [9]).all(), 'hidden triple check'\n### END HIDDEN TESTS",
              {"grade": True, "solution": False, "locked": True, "points": 1, "grade_id": "test_triple",
               "schema_version": 3}),
    ]
    return nb


def both(root: Path, double_code: str, triple_code: str = TRIPLE) -> dict:
    nb = answer(root, double_code)
    nb["cells"][3]["source"] = triple_code
    return nb


READER = r'''
import os
print("LISTING", sorted(os.listdir(".")))
for name in sorted(os.listdir(".")):
    print("FILE", name, open(name).read())
try:
    print(open(os.path.abspath("tiny.ipynb")).read())
except OSError as exc:
    print("NOTEBOOK", type(exc).__name__)
open("scratch.txt", "w").write("student file")
print("WROTE", open("scratch.txt").read())
# nbgrader, as root, writes the graded notebook to this name after the kernel is done.
os.symlink({planted!r}, "link")
os.replace("link", "tiny.ipynb")
print("SYMLINK", os.path.islink("tiny.ipynb"))
''' + SOLUTION

CUSTOM_EXC = "get_ipython().set_custom_exc((Exception,), lambda *args, **kwargs: None)\n"
NO_TRACEBACK = "get_ipython().showtraceback = lambda *args, **kwargs: None\n"
LOOP_WHEN_CALLED = "def double(x):\n    while True:\n        pass\n"
EXIT_WHEN_CALLED = "import os\ndef double(x):\n    os._exit(1)\n"
MARK = "print('solution cell ran')\n"


@pytest.fixture(scope="module")
def batch():
    if sandbox.bwrap_problem():
        pytest.skip(sandbox.bwrap_problem())
    root = Path(tempfile.mkdtemp(prefix="cnnbook-tricks-", dir="/var/tmp"))
    outside = Path(tempfile.mkdtemp(prefix="cnnbook-tricks-outside-", dir="/var/tmp"))
    planted = outside / "written-through-symlink"
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(test_grade_batch, "source_notebook", source_notebook)
            mp.setattr(test_grade_batch, "CELL_TIMEOUT", CELL_TIMEOUT)
            test_grade_batch.make_course(root, {"cpu_seconds": 20, "processes": 64, "address_space_mb": 2048})
        # A file shipped with the assignment: nbgrader copies it next to the notebook it grades.
        (root / "source" / "tiny" / "numbers.txt").write_text("7 8 9")

        submit(root, "reader", both(root, READER.format(planted=str(planted))))
        submit(root, "customexc-wrong", both(root, CUSTOM_EXC + WRONG_DOUBLE, WRONG_TRIPLE))
        submit(root, "customexc-right", both(root, CUSTOM_EXC + SOLUTION))
        submit(root, "notraceback-wrong", both(root, NO_TRACEBACK + WRONG_DOUBLE, WRONG_TRIPLE))
        submit(root, "notraceback-right", both(root, NO_TRACEBACK + SOLUTION))
        submit(root, "loop-when-called", both(root, MARK + LOOP_WHEN_CALLED))
        submit(root, "exit-when-called", both(root, EXIT_WHEN_CALLED))
        # Right answers, but one more kernel death than the grader restarts kernels for.
        deaths = both(root, SOLUTION)
        kills = sandbox.MAX_KERNEL_RESTARTS + 1
        deaths["cells"][2:2] = [_cell("import os\nos._exit(1)") for _ in range(kills)]
        submit(root, "too-many-deaths", deaths)

        results = grade_batch.grade(root, "tiny", wall_seconds=WALL, echo=lambda line: None)
        yield {"root": root, "results": {r.student: r for r in results}, "planted": planted, "kills": kills}
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(outside, ignore_errors=True)


def _test_cell_outputs(nb: dict, grade_id: str) -> list:
    [cell] = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id]
    return cell["outputs"]


def test_notebook_being_graded_is_out_of_the_kernels_reach(batch):
    res = batch["results"]["reader"]
    path = batch["root"] / "autograded" / "reader" / "tiny" / "tiny.ipynb"
    assert not path.is_symlink() and not batch["planted"].exists(), "nbgrader wrote through the student's symlink"
    text = outputs_text(autograded(batch, "reader"))
    assert "hidden check" not in text and "hidden triple check" not in text, text
    # The working folder shows the assignment's other files, no notebook; the kernel may still write there.
    assert "LISTING ['numbers.txt']" in text and "FILE numbers.txt 7 8 9" in text, text
    assert "NOTEBOOK FileNotFoundError" in text and "WROTE student file" in text and "SYMLINK True" in text, text
    assert not (path.parent / "scratch.txt").exists(), "the kernel's files must not reach the graded folder"
    assert res.status == "graded" and (res.score, res.max_score) == (3.0, 3.0)


@pytest.mark.parametrize("trick", ["customexc", "notraceback"])
def test_silenced_tracebacks_do_not_hide_failing_tests(batch, trick):
    wrong, right = batch["results"][f"{trick}-wrong"], batch["results"][f"{trick}-right"]
    assert wrong.status == "graded" and (wrong.score, wrong.max_score) == (0.0, 3.0)
    assert right.status == "graded" and right.score == 3.0
    errors = [o for o in _test_cell_outputs(autograded(batch, f"{trick}-wrong"), "test_double")
              if o["output_type"] == "error"]
    assert errors, "the failed test has no error output in the graded notebook"


def test_function_that_hangs_when_called_costs_only_its_tests(batch):
    res = batch["results"]["loop-when-called"]
    assert res.status == "graded (cell timed out)" and res.score == 1.0, res  # later cells did run
    nb = autograded(batch, "loop-when-called")
    assert [o["ename"] for o in _test_cell_outputs(nb, "test_double")] == ["CellTimeoutError"]
    assert _test_cell_outputs(nb, "test_triple") == []
    # The cells above were re-run in the fresh kernel without adding to the graded outputs.
    assert outputs_text(nb).count("solution cell ran") == 1


def test_function_that_kills_the_kernel_when_called_costs_only_its_tests(batch):
    res = batch["results"]["exit-when-called"]
    assert res.status == "graded (kernel died)" and res.score == 1.0, res
    nb = autograded(batch, "exit-when-called")
    assert [o["ename"] for o in _test_cell_outputs(nb, "test_double")] == ["DeadKernelError"]
    assert _test_cell_outputs(nb, "test_triple") == []


def test_kernel_restarts_are_bounded(batch):
    res = batch["results"]["too-many-deaths"]
    assert res.status == "graded (kernel died; later cells not run)" and res.score == 0.0, res
    nb = autograded(batch, "too-many-deaths")
    died = [c for c in nb["cells"] if any(o.get("ename") == "DeadKernelError" for o in c["outputs"])]
    assert len(died) == batch["kills"]
    for grade_id in ("test_double", "test_triple"):
        [out] = _test_cell_outputs(nb, grade_id)
        assert out["ename"] == "NotRun" and f"after {batch['kills'] - 1} kernel restarts" in out["evalue"], out


def test_every_trick_ends_graded_within_the_wall_clock_limit(batch):
    for res in batch["results"].values():
        assert res.status.startswith("graded"), res  # not "timed out" at the wall-clock limit, not "error"
