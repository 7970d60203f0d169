"""The exercises round-trip through real nbgrader, in temporary course folders copied from the
project: release generation, autograding of right, wrong and partial submissions (a table of cases
per assignment), feedback. ``nbgrader validate`` has its own round trips in
tests/test_validate.py."""

from __future__ import annotations

import copy
import html as html_lib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ASSIGNMENTS = {
    "ps1-convolution": "convolution",
    "ps2-pooling": "pooling",
    "ps3-mnist": "mnist_cnn",
}
POINTS = {"ps1-convolution": 18, "ps2-pooling": 18, "ps3-mnist": 6}


def nbgrader(course: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        TF_CPP_MIN_LOG_LEVEL="2",
        TF_ENABLE_ONEDNN_OPTS="0",
    )
    env.pop("NBGRADER_DB_URL", None)
    result = subprocess.run(
        [str(BIN / "nbgrader"), *args],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check:
        assert result.returncode == 0, (
            f"nbgrader {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
        )
    return result


def make_course(tmp_path: Path) -> Path:
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions", course / "solutions")
    return course


def source_nb(ps: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "solutions" / ps / f"{ASSIGNMENTS[ps]}.ipynb", as_version=4)


def release_nb(ps: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "exercises" / ps / f"{ASSIGNMENTS[ps]}.ipynb", as_version=4)


def cell_by_id(nb, grade_id: str):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def summary(nb) -> list:
    """What must match between two releases: cell types, sources and nbgrader metadata (no ids)."""
    return [(c.cell_type, c.source, c.metadata.get("nbgrader")) for c in nb.cells]


def region_lines(source: str, begin: str, end: str) -> list[str]:
    lines, inside = [], False
    for line in source.splitlines():
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside:
            lines.append(line.strip())
    return lines


def submission(ps: str, solved: dict[str, str]) -> nbformat.NotebookNode:
    """The release notebook with the given solution cells (grade_id -> source) filled in."""
    nb = copy.deepcopy(release_nb(ps))
    for grade_id, src in solved.items():
        cell_by_id(nb, grade_id).source = src
    return nb


def reference(ps: str, *grade_ids: str) -> dict[str, str]:
    src = source_nb(ps)
    ids = grade_ids or [
        c.metadata.nbgrader["grade_id"] for c in src.cells if c.metadata.nbgrader.get("solution")
    ]
    return {gid: cell_by_id(src, gid).source for gid in ids}


def autograde(tmp_path: Path, ps: str, students: dict[str, nbformat.NotebookNode]):
    """Autograde every student's submission in a fresh course; return scores per student and per
    test cell."""
    from nbgrader.api import Gradebook

    course = make_course(tmp_path)
    nbgrader(course, "generate_assignment", ps, "--force")
    for student, nb in students.items():
        folder = course / "submitted" / student / ps
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{ASSIGNMENTS[ps]}.ipynb")
    start = time.monotonic()
    nbgrader(course, "autograde", ps, "--force")
    seconds = (time.monotonic() - start) / len(students)
    print(f"\n{ps}: {seconds:.1f} s per submission ({len(students)} submissions)")
    scores, cells = {}, {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in students:
            sub = gb.find_submission(ps, student)
            scores[student] = sub.score
            nb = gb.find_submission_notebook(ASSIGNMENTS[ps], ps, student)
            cells[student] = {g.name: g.score for g in nb.grades}
    return course, scores, cells


# --- the release is what nbgrader makes, with no solution or hidden test in it ---------------


@pytest.mark.parametrize("ps", list(ASSIGNMENTS))
def test_release_is_exactly_what_generate_assignment_makes(tmp_path, ps):
    course = make_course(tmp_path)
    nbgrader(course, "generate_assignment", ps, "--force")
    fresh = nbformat.read(course / "exercises" / ps / f"{ASSIGNMENTS[ps]}.ipynb", as_version=4)
    assert summary(fresh) == summary(release_nb(ps)), (
        f"exercises/{ps} is out of date: run `nbgrader generate_assignment {ps} --force`"
    )
    assert sorted(p.name for p in (ROOT / "exercises" / ps).iterdir()) == [
        f"{ASSIGNMENTS[ps]}.ipynb"
    ]


@pytest.mark.parametrize("ps", list(ASSIGNMENTS))
def test_release_has_no_solution_code_hidden_tests_or_outputs(ps):
    text = (ROOT / "exercises" / ps / f"{ASSIGNMENTS[ps]}.ipynb").read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text
    release = "\n".join(c.source for c in release_nb(ps).cells)
    src = source_nb(ps)
    secret = []
    for c in src.cells:
        secret += region_lines(c.source, "### BEGIN SOLUTION", "### END SOLUTION")
        secret += region_lines(c.source, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
    public = {
        line.strip()
        for c in src.cells
        for line in re.sub(
            r"### BEGIN (SOLUTION|HIDDEN TESTS).*?### END (SOLUTION|HIDDEN TESTS)",
            "",
            c.source,
            flags=re.S,
        ).splitlines()
    }
    prose = "\n".join(c.source for c in src.cells if c.cell_type == "markdown")
    secret = [
        line for line in secret if len(line) > 12 and line not in public and line not in prose
    ]
    assert len(secret) > 5
    leaked = [line for line in secret if line in release]
    assert not leaked, f"solution or hidden-test lines reached exercises/{ps}: {leaked[:5]}"
    for nb in (release_nb(ps), src):
        assert all(
            not c.get("outputs") and not c.get("execution_count")
            for c in nb.cells
            if c.cell_type == "code"
        )


def test_ps1_release_does_not_give_the_edge_map_answer():
    release = "\n".join(c.source for c in release_nb("ps1-convolution").cells)
    assert "edge_map[:, 2] = 2" not in release and "edge_map = " not in release


# --- autograde: right, untouched, partial and plausible-but-wrong submissions ------------------


def replaced(ps: str, grade_id: str, old: str, new: str) -> str:
    src = reference(ps, grade_id)[grade_id]
    assert old in src, f"{ps}:{grade_id} no longer contains {old!r}"
    return src.replace(old, new)


USES_TF = (
    "def conv2d(x, w, stride=1, padding='valid'):\n"
    "    import tensorflow as tf\n"
    "    return tf.nn.conv2d(np.asarray(x, 'float64'), np.asarray(w, 'float64'), "
    "stride, padding.upper()).numpy()\n"
)
CONV2D_CELLS = [
    "test_conv2d_kernel_orientation_and_channels",
    "test_conv2d_numpy_only",
    "test_conv2d_padding_argument",
    "test_conv2d_random_cases",
    "test_conv2d_seed_examples",
    "test_conv2d_stride_and_same_padding",
]
# student: (the work: "all", "none", the solution cells solved, or {grade_id: (old, new) | source}
# on top of the reference), score, graded cells that earn nothing (None: not compared), words the
# feedback holds (one phrase or several))
CASES = {
    "ps1-convolution": {
        "reference": ("all", 18, [], None),
        "untouched": ("none", 0, None, None),
        "partial": (("output_size", "conv2d_params"), 2 + 2, None, None),
        "flipped": (
            {"conv2d": ("np.tensordot(window, w,", "np.tensordot(window, w[::-1, ::-1],")},
            18 - 2 - 3,
            ["test_conv2d_kernel_orientation_and_channels", "test_conv2d_random_cases"],
            "you flipped the filter (true convolution)",
        ),
        "topleft": (
            {
                "conv2d": (
                    "pads.append((total // 2, total - total // 2))",
                    "pads.append((total - total // 2, total // 2))",
                )
            },
            18 - 2 - 3 - 2,
            [
                "test_conv2d_random_cases",
                "test_conv2d_seed_examples",
                "test_conv2d_stride_and_same_padding",
            ],
            "yours went on the top/left",
        ),
        # TensorFlow cannot be imported in ps1's grading sandbox, and the grader's reading of the
        # source names it.
        "uses_tf": (
            {"conv2d": USES_TF},
            18 - 11,
            CONV2D_CELLS,
            ("conv2d must be written with numpy indexing and loops only", "cannot be imported"),
        ),
    },
    "ps2-pooling": {
        "reference": ("all", 18, [], None),
        "untouched": ("none", 0, None, None),
        "partial": (("max_pool2d",), 10, None, None),
        "zero_padded_max": (
            {
                "max_pool2d": (
                    "out[:, i, j, :] = x[:, r0:r1, c0:c1, :].max(axis=(1, 2))",
                    "out[:, i, j, :] = np.maximum(x[:, r0:r1, c0:c1, :].max(axis=(1, 2)), "
                    "0 if (r1 - r0, c1 - c0) != (kh, kw) else -np.inf)",
                )
            },
            18 - 4,
            ["test_max_pool_random_cases", "test_max_pool_seed_example"],
            "yours padded with 0",
        ),
        "avg_over_padding": (
            {
                "avg_pool2d": (
                    "x[:, r0:r1, c0:c1, :].mean(axis=(1, 2))",
                    "x[:, r0:r1, c0:c1, :].sum(axis=(1, 2)) / (kh * kw)",
                )
            },
            18 - 4,
            ["test_avg_pool_examples", "test_avg_pool_random_cases"],
            "yours also counted the padded cells",
        ),
        # One SAME-side mistake in the shared helper: what it costs in ps1, not the whole set.
        "topleft_helper": (
            {
                "max_pool2d": (
                    "before = max((count - 1) * s + k - n, 0) // 2",
                    "before = -(-max((count - 1) * s + k - n, 0) // 2)",
                )
            },
            18 - 8,
            [
                "test_avg_pool_examples",
                "test_avg_pool_random_cases",
                "test_max_pool_random_cases",
                "test_max_pool_seed_example",
            ],
            "yours is at the top/left",
        ),
        "sliding_window": (
            {
                "avg_pool2d": (
                    "x[:, r0:r1, c0:c1, :].mean(axis=(1, 2))",
                    "np.lib.stride_tricks.sliding_window_view(x[:, r0:r1, c0:c1, :], (1, 1), "
                    "axis=(1, 2)).mean(axis=(1, 2, 4, 5))",
                )
            },
            18 - 1,
            ["test_avg_pool_numpy_only"],
            "avg_pool2d uses numpy's sliding_window_view",
        ),
    },
}


def student_notebook(ps: str, work) -> nbformat.NotebookNode:
    """One row's submission: the release with the reference, part of it, or edits of it."""
    if work == "none":
        return release_nb(ps)
    if isinstance(work, tuple):
        return submission(ps, reference(ps, *work))
    cells = reference(ps)
    for grade_id, change in ({} if work == "all" else work).items():
        cells[grade_id] = change if isinstance(change, str) else replaced(ps, grade_id, *change)
    return submission(ps, cells)


@pytest.mark.parametrize("ps", list(CASES))
def test_autograde_scores_each_submission_exactly_and_feedback_names_the_mistake(tmp_path, ps):
    cases = CASES[ps]
    students = {student: student_notebook(ps, work) for student, (work, *_) in cases.items()}
    course, scores, cells = autograde(tmp_path, ps, students)
    assert scores["reference"] == POINTS[ps]
    for student, (_, score, lost, _) in cases.items():
        zero = sorted(g for g, v in cells[student].items() if v == 0)
        assert (scores[student], zero if lost is not None else None) == (score, lost), student
    nbgrader(course, "generate_feedback", ps, "--force")
    feedback = feedback_texts(course, ps, students)
    for student, (*_, words) in cases.items():
        for phrase in (words,) if isinstance(words, str) else words or ():
            assert phrase.lower() in feedback[student].lower(), (student, phrase)
    nbgrader(course, "export", "--to", "grades.csv")
    rows = (course / "grades.csv").read_text().splitlines()
    assert len(rows) == 1 + len(students)


def feedback_texts(course: Path, ps: str, students) -> dict[str, str]:
    """Each student's feedback page as text; none shows grader code, probe cells or hidden tests."""
    module = {"ps1-convolution": "ps1_convolution", "ps2-pooling": "ps2_pooling"}[ps]
    checks = (ROOT / f"cnnbook/grader/checks/{module}.py").read_text().splitlines()
    notebook_text = "\n".join(c.source for c in source_nb(ps).cells)
    grader_lines = [
        line.strip()
        for line in checks
        if len(line.strip()) > 30
        and line.strip() not in notebook_text
        and not line.strip().startswith(("#", '"', "(", "'"))
    ]
    assert len(grader_lines) > 20
    feedback = {}
    for student in students:
        html = (course / "feedback" / student / ps / f"{ASSIGNMENTS[ps]}.html").read_text()
        feedback[student] = html_lib.unescape(re.sub(r"<[^>]+>", "", html))
        leaked = [line for line in grader_lines if line in feedback[student]]
        assert not leaked, f"grader code in {student}'s feedback: {leaked[:3]}"
        assert "_cnnbook_probe" not in feedback[student] and "BEGIN HIDDEN" not in feedback[student]
    return feedback
