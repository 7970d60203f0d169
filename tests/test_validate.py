"""``nbgrader validate`` as a student runs it on correct, untouched and plausibly wrong notebooks of
each assignment: success on a correct notebook; on a wrong one, exactly the failing visible tests,
each with the words that name the mistake; never nbgrader's crash ("partial credit cannot be greater
than maximum points": a test cell ending in a bare expression) nor its float-conversion warning
("Cell output is array(...) cannot be converted to a float"). The solutions (source notebooks)
validate, and the releases as given fail every test (``--invert``).

ps3's visible tests build the model and evaluate it on 4 images; they train nothing (the grader
trains), so each ps3 notebook validates in about 10-20 s, TensorFlow's import included.
"""

from __future__ import annotations

import json
import time

import pytest
from helpers import find_cell, make_course, nbgrader, solution_body, source_text

pytestmark = pytest.mark.slow

NOTEBOOKS = {"ps1-convolution": "convolution", "ps2-pooling": "pooling", "ps3-mnist": "mnist_cnn"}
CRASHES = ("partial credit", "cannot be converted to a float", "Traceback (most recent call last)")
SOFTMAX = 'layers.Dense(10, activation="softmax")'
# student: ({solution grade_id: (old, new) in the reference solution} or "untouched",
#           {failing test cell: words its message holds})
CASES = {
    "ps1-convolution": {
        "correct": ({}, {}),
        "untouched": ("untouched", "every test: NotImplementedError"),
        "flipped": (
            {
                "conv2d": ("np.tensordot(window, w,", "np.tensordot(window, w[::-1, ::-1],"),
                "edge_map": ("edge_map[:, 2] = 2", "edge_map[:, 2] = -2"),
            },
            {
                "test_edge_map_values": "you flipped the filter",
                "test_conv2d_kernel_orientation_and_channels": "you flipped the filter",
            },
        ),
        "int_as_float": (
            {"output_size": ("return (n - k) // stride + 1", "return (n - k) / stride + 1")},
            {
                "test_output_size_examples": "should return an int, got float",
                "test_output_size_all_sizes": "output_size should return an int",
            },
        ),
    },
    "ps2-pooling": {
        "correct": ({}, {}),
        "untouched": ("untouched", "every test: NotImplementedError"),
        "topleft_helper": (
            {
                "max_pool2d": (
                    "before = max((count - 1) * s + k - n, 0) // 2",
                    "before = -(-max((count - 1) * s + k - n, 0) // 2)",
                )
            },
            {
                "test_max_pool_seed_example": "yours is at the top/left",
                "test_avg_pool_examples": "yours is at the top/left",
            },
        ),
    },
    "ps3-mnist": {
        "correct": ({}, {}),
        "untouched": ("untouched", "every test: NotImplementedError"),
        "logits_with_the_string_loss": (
            {"build_model": (SOFTMAX, "layers.Dense(10)")},
            {"test_build_model_is_small_compiled_cnn": "the output layer gives logits"},
        ),
        "no_accuracy_metric": (
            {"build_model": (',\n                  metrics=["accuracy"])', ")")},
            # validate cuts each line of an error at about 90 characters
            {"test_build_model_is_small_compiled_cnn": "compiled without the accuracy metric"},
        ),
    },
}


def visible_test_cells(nb: dict) -> dict[str, str]:
    """{grade_id: the first 50 characters of its docstring}, as validate prints them, per test."""
    return {
        cell["metadata"]["nbgrader"]["grade_id"]: source_text(cell).splitlines()[0][:50]
        for cell in nb["cells"]
        if cell["metadata"].get("nbgrader", {}).get("grade")
    }


def student_notebook(course, ps: str, work) -> dict:
    if work == "untouched":
        return course.release_notebook(ps, NOTEBOOKS[ps])
    source = course.source_notebook(ps, NOTEBOOKS[ps])
    edited = {}
    for grade_id, (old, new) in work.items():
        text = source_text(find_cell(source, grade_id))
        assert text.count(old) == 1, f"{ps}:{grade_id} no longer contains {old!r} once"
        edited[grade_id] = solution_body({"source": text.replace(old, new)})
    return course.submission(ps, NOTEBOOKS[ps], edited, honest=True)


def validate(course, path) -> tuple[str, float]:
    start = time.monotonic()
    done = nbgrader(course, "validate", str(path), timeout=600)
    seconds = time.monotonic() - start
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert not [crash for crash in CRASHES if crash in done.stderr], done.stderr[-3000:]
    assert "partial credit" not in output and "converted to a float" not in output, output[-3000:]
    return done.stdout, seconds


@pytest.mark.parametrize("ps", list(CASES))
def test_validate_names_the_failing_visible_tests_and_never_crashes(ps):
    course = make_course((ps,), prefix="cnnbook-validate-")
    try:
        tests = visible_test_cells(course.source_notebook(ps, NOTEBOOKS[ps]))
        for student, (work, failing) in CASES[ps].items():
            path = course.root / "students" / student / f"{NOTEBOOKS[ps]}.ipynb"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps(student_notebook(course, ps, work)))
            out, seconds = validate(course, path)
            print(f"\n{ps} {student}: nbgrader validate {seconds:.1f} s")
            if not failing:
                assert "Success! Your notebook passes all the tests." in out, out[-3000:]
                continue
            named = sorted(gid for gid, head in tests.items() if head in out)
            expected = sorted(tests) if isinstance(failing, str) else sorted(failing)
            assert named == expected and out.count("The following cell failed") == len(expected)
            for words in failing.values() if isinstance(failing, dict) else ["NotImplementedError"]:
                assert words in out, (student, words, out[-3000:])
    finally:
        course.remove()


@pytest.mark.parametrize("ps", list(CASES))
def test_solutions_validate_and_release_fails_every_test(ps):
    course = make_course((ps,), prefix="cnnbook-validate-")
    try:
        out, _ = validate(course, course.source / ps / f"{NOTEBOOKS[ps]}.ipynb")
        assert "Success! Your notebook passes all the tests." in out, out[-3000:]
        done = nbgrader(
            course, "validate", "--invert", str(course.release / ps / f"{NOTEBOOKS[ps]}.ipynb")
        )
        assert "Success! The notebook does not pass any tests." in done.stdout, done.stdout[-3000:]
    finally:
        course.remove()
