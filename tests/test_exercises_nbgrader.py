"""The exercises round-trip through real nbgrader, in temporary course folders copied from the project:
release generation, validation, autograding of right, wrong and partial submissions, feedback."""

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
POINTS = {"ps1-convolution": 18, "ps2-pooling": 14, "ps3-mnist": 6}


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
    """Autograde every student's submission in a fresh course; return scores per student and per test cell."""
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


# --- validate both ways ------------------------------------------------------------------------


@pytest.mark.parametrize("ps", ["ps1-convolution", "ps2-pooling"])
def test_solutions_validate_and_release_fails_every_test(tmp_path, ps):
    course = make_course(tmp_path)
    out = nbgrader(course, "validate", f"solutions/{ps}/{ASSIGNMENTS[ps]}.ipynb").stdout
    assert "Success! Your notebook passes all the tests." in out, out
    shutil.copytree(ROOT / "exercises", course / "exercises")
    out = nbgrader(course, "validate", "--invert", f"exercises/{ps}/{ASSIGNMENTS[ps]}.ipynb").stdout
    assert "Success! The notebook does not pass any tests." in out, out


def test_ps3_release_fails_every_test(tmp_path):
    course = make_course(tmp_path)
    shutil.copytree(ROOT / "exercises", course / "exercises")
    out = nbgrader(course, "validate", "--invert", "exercises/ps3-mnist/mnist_cnn.ipynb").stdout
    assert "Success! The notebook does not pass any tests." in out, out


# --- autograde: right, untouched, partial and plausible-but-wrong submissions ------------------


def replaced(ps: str, grade_id: str, old: str, new: str) -> str:
    src = reference(ps, grade_id)[grade_id]
    assert old in src, f"{ps}:{grade_id} no longer contains {old!r}"
    return src.replace(old, new)


def test_ps1_autograde_scores_each_submission_exactly(tmp_path):
    ps = "ps1-convolution"
    full = reference(ps)
    students = {
        "reference": submission(ps, full),
        "untouched": release_nb(ps),
        "partial": submission(ps, reference(ps, "output_size", "conv2d_params")),
        "flipped": submission(
            ps,
            {
                **full,
                "conv2d": replaced(
                    ps, "conv2d", "np.tensordot(window, w,", "np.tensordot(window, w[::-1, ::-1],"
                ),
            },
        ),
        "topleft": submission(
            ps,
            {
                **full,
                "conv2d": replaced(
                    ps,
                    "conv2d",
                    "pads.append((total // 2, total - total // 2))",
                    "pads.append((total - total // 2, total // 2))",
                ),
            },
        ),
        "uses_tf": submission(
            ps,
            {
                **full,
                "conv2d": "def conv2d(x, w, stride=1, padding='valid'):\n"
                "    import tensorflow as tf\n"
                "    return tf.nn.conv2d(np.asarray(x, 'float64'), "
                "np.asarray(w, 'float64'), "
                "stride, padding.upper()).numpy()\n",
            },
        ),
    }
    course, scores, cells = autograde(tmp_path, ps, students)
    assert scores["reference"] == POINTS[ps]
    assert scores["untouched"] == 0
    assert scores["partial"] == 2 + 2  # output_size (1 + 1) and conv2d_params (1 + 1)
    lost = {s: sorted(g for g, v in cells[s].items() if v == 0) for s in students}
    assert lost["flipped"] == [
        "test_conv2d_kernel_orientation_and_channels",
        "test_conv2d_random_cases",
    ]
    assert scores["flipped"] == POINTS[ps] - 2 - 3
    assert lost["topleft"] == [
        "test_conv2d_random_cases",
        "test_conv2d_seed_examples",
        "test_conv2d_stride_and_same_padding",
    ]
    assert scores["topleft"] == POINTS[ps] - 2 - 3 - 2
    # TensorFlow cannot be imported in ps1's grading sandbox, and the grader's reading of the source names it.
    conv2d_cells = sorted(
        g for g in cells["reference"] if g.startswith("test_conv2d_") and "params" not in g
    )
    assert lost["uses_tf"] == conv2d_cells and scores["uses_tf"] == POINTS[ps] - 11

    # Feedback: generated for everyone, names the mistake in the grader's words, shows no grader code.
    nbgrader(course, "generate_feedback", ps, "--force")
    checks = (ROOT / "cnnbook/grader/checks/ps1_convolution.py").read_text().splitlines()
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
    assert "you flipped the filter (true convolution)" in feedback["flipped"]
    assert "yours went on the top/left" in feedback["topleft"]
    assert "tensorflow cannot be imported" in feedback["uses_tf"].lower()
    assert "conv2d must be written with numpy indexing and loops only" in feedback["uses_tf"]

    # Grades export.
    nbgrader(course, "export", "--to", "grades.csv")
    rows = (course / "grades.csv").read_text().splitlines()
    assert len(rows) == 1 + len(students)


def test_ps2_autograde_scores_each_submission_exactly(tmp_path):
    ps = "ps2-pooling"
    full = reference(ps)
    students = {
        "reference": submission(ps, full),
        "untouched": release_nb(ps),
        "partial": submission(ps, reference(ps, "max_pool2d")),
        "zero_padded_max": submission(
            ps,
            {
                **full,
                "max_pool2d": replaced(
                    ps,
                    "max_pool2d",
                    "out[:, i, j, :] = x[:, r0:r1, c0:c1, :].max(axis=(1, 2))",
                    "out[:, i, j, :] = np.maximum(x[:, r0:r1, c0:c1, :].max(axis=(1, 2)), "
                    "0 if (r1 - r0, c1 - c0) != (kh, kw) else -np.inf)",
                ),
            },
        ),
        "avg_over_padding": submission(
            ps,
            {
                **full,
                "avg_pool2d": replaced(
                    ps,
                    "avg_pool2d",
                    "x[:, r0:r1, c0:c1, :].mean(axis=(1, 2))",
                    "x[:, r0:r1, c0:c1, :].sum(axis=(1, 2)) / (kh * kw)",
                ),
            },
        ),
        "sliding_window": submission(
            ps,
            {
                **full,
                "avg_pool2d": replaced(
                    ps,
                    "avg_pool2d",
                    "x[:, r0:r1, c0:c1, :].mean(axis=(1, 2))",
                    "np.lib.stride_tricks.sliding_window_view(x[:, r0:r1, c0:c1, :], (1, 1), axis=(1, 2))"
                    ".mean(axis=(1, 2, 4, 5))",
                ),
            },
        ),
    }
    course, scores, cells = autograde(tmp_path, ps, students)
    lost = {s: sorted(g for g, v in cells[s].items() if v == 0) for s in students}
    assert scores["reference"] == POINTS[ps]
    assert scores["untouched"] == 0
    assert scores["partial"] == 8
    assert lost["zero_padded_max"] == ["test_max_pool_random_cases", "test_max_pool_seed_example"]
    assert scores["zero_padded_max"] == POINTS[ps] - 5
    assert lost["avg_over_padding"] == ["test_avg_pool_examples", "test_avg_pool_random_cases"]
    assert scores["avg_over_padding"] == POINTS[ps] - 5
    assert lost["sliding_window"] == ["test_avg_pool_numpy_only"]
    graded = nbformat.read(
        course / "autograded/sliding_window" / ps / "pooling.ipynb", as_version=4
    )
    verdict = cell_by_id(graded, "test_avg_pool_numpy_only").outputs[0]
    assert (
        verdict.ename == "Failed"
        and "avg_pool2d uses numpy's sliding_window_view" in verdict.evalue
    )
