"""``python -m cnnbook.check NOTEBOOK``, the students' check before they submit: per task what the
visible tests found, and what would cost points at grading time (another file name, an old format,
banned functions, cells too slow, ps3's training time against the budget); bad input gets one line.

It runs the student's notebook and its visible tests only: a test watches the whole run and finds
that it opens nothing under solutions/ and imports none of the grader's checks.
"""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest
from helpers import ROOT, Course, find_cell, nbformat3, solution_body, source_text

from cnnbook import check
from cnnbook.grader import trainer
from cnnbook.grader.checks import ps1_convolution, ps2_pooling, ps3_mnist

PROJECT = Course(ROOT)  # the project's own solutions/ and exercises/, read only
NOTEBOOKS = {"ps1-convolution": "convolution", "ps2-pooling": "pooling", "ps3-mnist": "mnist_cnn"}
# Run in a child: an audit hook records every file opened and every module imported.
WATCHED = """
import sys
opened = []
sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" else None)
from cnnbook import check
code = check.main(sys.argv[1:])
leaks = [p for p in opened if "/solutions/" in p] + [m for m in sys.modules if ".checks" in m]
print("LEAKS", leaks)
sys.exit(code)
"""


def run_check(*args: str, watched: bool = False) -> subprocess.CompletedProcess:
    command = ["-c", WATCHED] if watched else ["-m", "cnnbook.check"]
    return subprocess.run(
        [sys.executable, *command, *args], capture_output=True, text=True, timeout=600
    )


def student(ps: str, edits: dict | None = None) -> dict:
    """The release with the reference solutions filled in, some edited ({id: (old, new)})."""
    source = PROJECT.source_notebook(ps, NOTEBOOKS[ps])
    cells = {}
    for grade_id, (old, new) in (edits or {}).items():
        text = source_text(find_cell(source, grade_id))
        assert text.count(old) == 1, f"{ps}:{grade_id} no longer contains {old!r} once"
        cells[grade_id] = solution_body({"source": text.replace(old, new)})
    return PROJECT.submission(ps, NOTEBOOKS[ps], cells, honest=True)


def write(tmp_path, name: str, nb: dict):
    path = tmp_path / name
    path.write_text(json.dumps(nb, indent=1))
    return path


# --- fast: what the check knows of each assignment, bad input, the estimate -------------------


def test_what_the_check_knows_of_each_assignment_is_what_the_grader_uses():
    modules = {
        "ps1-convolution": ps1_convolution,
        "ps2-pooling": ps2_pooling,
        "ps3-mnist": ps3_mnist,
    }
    for assignment in check.ASSIGNMENTS:
        module = modules[assignment.name]
        assert (assignment.notebook, assignment.cell_seconds, assignment.notebook_seconds) == (
            module.NOTEBOOK,
            module.CELL_SECONDS,
            module.NOTEBOOK_SECONDS,
        )
        numpy_only = [c.probe for c in module.CHECKS if c.grade_id.endswith("_numpy_only")]
        assert sorted(numpy_only) == sorted(assignment.numpy_only)
        release = PROJECT.release_notebook(assignment.name, assignment.notebook)
        assert find_cell(release, assignment.marker)["metadata"]["nbgrader"]["solution"]
    assert check.TRAIN_SECONDS == trainer.TRAIN_SECONDS


@pytest.mark.parametrize(
    "content, words",
    [
        (None, "no such file"),
        ("{ not json", "not a Jupyter notebook (not valid JSON"),
        ('{"cells": []}', "not a Jupyter notebook (no nbformat version)"),
        (
            json.dumps(nbformat.v4.new_notebook()),
            "none of the assignments' cells are in this notebook",
        ),
    ],
)
def test_bad_input_gets_one_line_and_exit_code_2(tmp_path, content, words):
    path = tmp_path / "homework.ipynb"
    if content is not None:
        path.write_text(content)
    done = run_check(str(path))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and words in done.stderr, done.stderr


@pytest.mark.parametrize(
    "student_seconds, words",
    [
        (0.05, "about 23 s of the 150 s budget"),
        (0.5, "would stop at its 150 s cap after about 65%"),
    ],
)
def test_training_estimate_scales_the_calibration_models_time_on_the_grader(student_seconds, words):
    cell = nbformat.v4.new_code_cell()
    record = {"student": student_seconds, "calibration": 0.05}
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=check.MARK + json.dumps(record))
    ]
    line, problem = check.training_estimate(cell)
    assert words in line + (problem or "")
    assert (problem is None) == (student_seconds == 0.05)


# --- slow: the check runs real notebooks in a kernel -------------------------------------------


@pytest.mark.slow
def test_a_correct_notebook_passes_and_the_check_reads_no_solution(tmp_path):
    path = write(tmp_path, "convolution.ipynb", student("ps1-convolution"))
    done = run_check(str(path), watched=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Visible tests: 12 of 12 passed (18 of 18 points)" in done.stdout
    assert "Before you submit" not in done.stdout
    assert "LEAKS []" in done.stdout


@pytest.mark.slow
def test_a_wrong_renamed_old_notebook_with_a_banned_function_gets_every_problem_named(tmp_path):
    nb = student(
        "ps1-convolution",
        {
            "conv2d": ("np.tensordot(window, w,", "np.tensordot(window, w[::-1, ::-1],"),
        },
    )
    find_cell(nb, "conv2d_params")["source"] += (
        "\nfrom numpy.lib.stride_tricks import sliding_window_view\n"
    )
    path = write(tmp_path, "convolution (1).ipynb", nbformat3(nb))
    done = run_check(str(path))
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "FAILED  test_conv2d_kernel_orientation_and_channels (2 points): AssertionError: " in out
    assert "you flipped the filter" in out
    assert "Visible tests: 11 of 12 passed (16 of 18 points)" in out
    for words in (
        'saved as "convolution (1).ipynb": the grader grades convolution.ipynb',
        "an old format (nbformat 3",
        "top-level code uses numpy's sliding_window_view",
    ):
        assert words in out, (words, out)


@pytest.mark.slow
def test_ps2_names_the_failing_tests_of_a_same_side_mistake(tmp_path):
    before = "before = max((count - 1) * s + k - n, 0) // 2"
    nb = student("ps2-pooling", {"max_pool2d": (before, f"before = -(-{before[9:]})")})
    done = run_check(str(write(tmp_path, "pooling.ipynb", nb)))
    failed = [line.split()[1] for line in done.stdout.splitlines() if "  FAILED  " in line]
    assert done.returncode == 1 and failed == [
        "test_max_pool_seed_example",
        "test_avg_pool_examples",
    ], done.stdout
    assert "yours is at the top/left" in done.stdout


@pytest.mark.slow
def test_ps3_estimates_the_graded_training_and_flags_own_training_and_logits(tmp_path):
    correct = run_check(str(write(tmp_path, "mnist_cnn.ipynb", student("ps3-mnist"))))
    print("\n" + correct.stdout)
    assert correct.returncode == 0, correct.stdout + correct.stderr
    seconds = float(correct.stdout.split("training on the grader")[1].split("about ")[1].split()[0])
    assert 5 < seconds < 150
    nb = student("ps3-mnist", {"build_model": ('activation="softmax"),', "),")})
    own = "model = build_model()\nif False:  # my own training\n    model.fit(x_train, y_train)"
    nb["cells"].append(nbformat.v4.new_code_cell(own))
    (tmp_path / "wrong").mkdir()
    wrong = run_check(str(write(tmp_path / "wrong", "mnist_cnn.ipynb", nb)))
    assert wrong.returncode == 1
    assert "FAILED  test_build_model_is_small_compiled_cnn" in wrong.stdout
    assert ps3_mnist.LOGITS_WITH_PROBABILITY_LOSS in wrong.stdout
    assert "1 cell(s) of your own call .fit(...): delete them before you submit" in wrong.stdout
