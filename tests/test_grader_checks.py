"""The grader's trusted checks, without nbgrader: its references equal TensorFlow, the solutions
earn every point, unsolved or wrong work earns none, and each known mistake is named both by the
visible test in the student's notebook and by the grader's own comparison (which decides the
points).

Cells come from the source notebooks (solutions/) by their nbgrader grade_id; the grader's probes
and checks run in this process through :mod:`cnnbook.grader.inprocess`, the same code path as
grading.
"""

from __future__ import annotations

import json
import linecache
import os
from pathlib import Path

import numpy as np
import pytest

from cnnbook.grader import sourcescan, wire
from cnnbook.grader.checks import ps1_convolution, ps2_pooling, ps3_mnist
from cnnbook.grader.inprocess import judge_namespace

ROOT = Path(__file__).resolve().parent.parent
PS = {
    "ps1": ("solutions/ps1-convolution/convolution.ipynb", ps1_convolution),
    "ps2": ("solutions/ps2-pooling/pooling.ipynb", ps2_pooling),
}
PS3_NOTEBOOK = "solutions/ps3-mnist/mnist_cnn.ipynb"
SOLVED = {
    "ps1": ("edge_map", "output_size", "conv2d", "conv2d_params"),
    "ps2": ("max_pool2d", "avg_pool2d"),
}


def notebook(ps: str, folder: str = "solutions") -> dict:
    path = PS3_NOTEBOOK if ps == "ps3" else PS[ps][0]
    return json.loads((ROOT / path.replace("solutions", folder, 1)).read_text())


def cell(ps: str, grade_id: str, folder: str = "solutions") -> str:
    for c in notebook(ps, folder)["cells"]:
        if c["metadata"]["nbgrader"]["grade_id"] == grade_id:
            return "".join(c["source"])
    raise KeyError(f"{ps} has no cell {grade_id}")


def run_cell(source: str, ns: dict) -> None:
    """Execute a cell as Jupyter does: its source is findable by inspect (the visible numpy-only
    test reads it)."""
    name = f"<cell-{len(linecache.cache)}-{hash(source)}>"
    linecache.cache[name] = (len(source), None, source.splitlines(keepends=True), name)
    exec(compile(source, name, "exec"), ns)


def namespace(ps: str, *grade_ids: str, extra: str = "", folder: str = "solutions") -> dict:
    ns: dict = {"__name__": "__main__"}
    for gid in ("imports", "check_helpers", *grade_ids):
        try:
            run_cell(cell(ps, gid, folder), ns)
        except NotImplementedError:  # a release stub at the top level of a cell: Jupyter goes on
            assert folder == "exercises"
    run_cell(extra, ns)
    return ns


def grade(ps: str, *grade_ids: str, extra: str = "", folder: str = "solutions") -> dict:
    """The grader's verdicts for these solution cells plus ``extra`` (the student's code cells)."""
    ns = namespace(ps, *grade_ids, extra=extra, folder=folder)
    cells = [{"source": cell(ps, gid, folder), "metadata": {}} for gid in grade_ids] + [
        {"source": extra}
    ]
    return judge_namespace(PS[ps][1], ns, cells, seed=20261130)


def lost(verdicts: dict) -> list[str]:
    return sorted(gid for gid, verdict in verdicts.items() if verdict.fraction < 1)


def points(ps: str, verdicts: dict) -> float:
    meta = {
        c["metadata"]["nbgrader"]["grade_id"]: c["metadata"]["nbgrader"]
        for c in notebook(ps)["cells"]
    }
    return sum(meta[gid]["points"] * v.fraction for gid, v in verdicts.items())


def random_conv_cases(n: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        kh, kw = (int(v) for v in rng.integers(1, 6, size=2))
        stride = (
            int(rng.integers(1, 4))
            if rng.random() < 0.5
            else tuple(int(v) for v in rng.integers(1, 4, size=2))
        )
        padding = str(rng.choice(["valid", "same"]))
        x = rng.normal(
            size=(
                int(rng.integers(1, 3)),
                int(rng.integers(kh, 12)),
                int(rng.integers(kw, 12)),
                int(rng.integers(1, 4)),
            )
        )
        w = rng.normal(size=(kh, kw, x.shape[3], int(rng.integers(1, 4))))
        yield x, w, stride, padding


def random_pool_cases(n: int, seed: int):
    rng = np.random.default_rng(seed)
    for i in range(n):
        k = (
            int(rng.integers(1, 4))
            if rng.random() < 0.6
            else tuple(int(v) for v in rng.integers(1, 4, size=2))
        )
        kh, kw = (k, k) if np.ndim(k) == 0 else k
        s = [None, int(rng.integers(1, 4)), tuple(int(v) for v in rng.integers(1, 4, size=2))][
            i % 3
        ]
        padding = str(rng.choice(["valid", "same"]))
        x = rng.normal(
            size=(
                int(rng.integers(1, 3)),
                int(rng.integers(kh, 10)),
                int(rng.integers(kw, 10)),
                int(rng.integers(1, 4)),
            )
        )
        yield x, k, s, padding


@pytest.fixture(scope="module")
def tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow

    return tensorflow


# --- the grader's references (and the solutions) equal TensorFlow -----------------------------


def test_conv2d_reference_equals_tf_nn_conv2d(tf):
    solution = namespace("ps1", "conv2d")["conv2d"]
    for x, w, stride, padding in random_conv_cases(150, seed=1):
        expected = tf.nn.conv2d(
            x.astype("float32"), w.astype("float32"), strides=stride, padding=padding.upper()
        ).numpy()
        np.testing.assert_allclose(
            ps1_convolution.conv2d(x, w, stride, padding), expected, rtol=1e-4, atol=1e-4
        )
        np.testing.assert_allclose(solution(x, w, stride, padding), expected, rtol=1e-4, atol=1e-4)


def test_top_left_padding_really_differs_from_tensorflow(tf):
    """The 'odd cell first' variant differs from TensorFlow, so the mistake it names is a real
    one."""
    x, w = np.arange(25.0).reshape(1, 5, 5, 1), np.ones((2, 2, 1, 1))
    expected = tf.nn.conv2d(x, w, strides=1, padding="SAME").numpy()
    assert not np.allclose(ps1_convolution.conv2d(x, w, 1, "same", odd_first=True), expected)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_reference_equals_tf_nn_pool(tf, kind):
    solution = namespace("ps2", "max_pool2d", "avg_pool2d")[f"{kind}_pool2d"]
    tf_pool = tf.nn.max_pool2d if kind == "max" else tf.nn.avg_pool2d
    reduce = ps2_pooling.REDUCE[f"{kind}_pool2d"]
    for x, k, s, padding in random_pool_cases(150, seed=2):
        expected = tf_pool(
            x.astype("float32"), ksize=k, strides=k if s is None else s, padding=padding.upper()
        ).numpy()
        np.testing.assert_allclose(
            ps2_pooling.pool2d(x, k, s, padding, reduce), expected, rtol=1e-5, atol=1e-5
        )
        np.testing.assert_allclose(solution(x, k, s, padding), expected, rtol=1e-5, atol=1e-5)


def test_output_size_and_params_references_equal_tensorflow(tf):
    for n, k, s in [(28, 3, 2), (7, 2, 2), (6, 3, 2), (5, 4, 3), (1, 1, 4)]:
        x = np.zeros((1, n, 1, 1), "float32")
        for padding in ("VALID", "SAME"):
            got = tf.nn.max_pool2d(x, (k, 1), (s, 1), padding).shape[1]
            assert ps1_convolution.output_size(n, k, s, padding) == got
    layer = tf.keras.layers.Conv2D(7, (2, 3), use_bias=False)
    layer.build((None, 9, 9, 4))
    assert (
        ps1_convolution.conv2d_params((2, 3), 4, 7, use_bias=False) == layer.count_params() == 168
    )


def test_seed_numbers(tf):
    """The seeds' walkthrough numbers, from TensorFlow itself, are the ones the visible tests
    expect."""
    image = np.arange(1, 10, dtype="float32").reshape(1, 3, 3, 1)
    ones = np.ones((2, 2, 1, 1), "float32")
    assert tf.nn.conv2d(image, ones, 1, "VALID").numpy()[0, :, :, 0].tolist() == [
        [12, 16],
        [24, 28],
    ]
    assert tf.nn.conv2d(image, ones, 1, "SAME").numpy()[0, :, :, 0].tolist() == [
        [12, 16, 9],
        [24, 28, 15],
        [15, 17, 9],
    ]
    maps = tf.nn.conv2d(image, ones * np.array([1, 10, -1], "float32"), 1, "VALID")
    pooled = tf.nn.max_pool2d(maps, 2, 1, "SAME").numpy()[0]
    assert pooled[..., 2].tolist() == [
        [-12, -16],
        [-24, -28],
    ]  # padding never wins (seed 001's -12)
    assert pooled[..., 1].tolist() == [[280, 280], [280, 280]]
    assert "[[[[12], [16]], [[24], [28]]]]" in cell("ps1", "test_conv2d_seed_examples")
    assert "[[[[28, 280, -12], [28, 280, -16]], [[28, 280, -24], [28, 280, -28]]]]" in cell(
        "ps2", "test_max_pool_seed_example"
    )
    layer = tf.keras.layers.Conv2D(50, 3)
    layer.build((None, 14, 14, 75))
    assert (
        layer.count_params()
        == namespace("ps1", "conv2d_params")["conv2d_params"](3, 75, 50)
        == 33800
    )


def test_edge_map_answer_is_what_tensorflow_computes(tf):
    image = np.zeros((1, 6, 6, 1), "float32")
    image[:, :, 3:] = 1
    w = np.array([[-1, 1], [-1, 1]], "float32").reshape(2, 2, 1, 1)
    expected = tf.nn.conv2d(image, w, 1, "VALID").numpy()[0, :, :, 0]
    np.testing.assert_array_equal(namespace("ps1", "edge_map")["edge_map"], expected)
    np.testing.assert_array_equal(ps1_convolution.edge_answer(), expected)
    assert expected[:, 2].tolist() == [2] * 5 and np.count_nonzero(expected) == 5


# --- solutions earn everything; unsolved work earns nothing -----------------------------------


@pytest.mark.parametrize("ps", list(PS))
def test_solutions_earn_every_point_and_pass_their_visible_tests(ps):
    verdicts = grade(ps, *SOLVED[ps])
    assert lost(verdicts) == [] and sorted(verdicts) == sorted(c.grade_id for c in PS[ps][1].CHECKS)
    graded = [
        c["metadata"]["nbgrader"]["grade_id"]
        for c in notebook(ps)["cells"]
        if c["metadata"]["nbgrader"].get("grade")
    ]
    assert sorted(graded) == sorted(verdicts), (
        "every graded cell of the notebook has exactly one trusted check"
    )
    ns = namespace(ps, *SOLVED[ps])
    for grade_id in graded:
        run_cell(cell(ps, grade_id), ns)


@pytest.mark.parametrize("ps", list(PS))
def test_the_release_as_given_earns_nothing(ps):
    verdicts = grade(ps, *SOLVED[ps], folder="exercises")
    assert lost(verdicts) == sorted(verdicts)
    assert all(v.message for v in verdicts.values())


# --- each known mistake is named by the visible test and by the grader ------------------------

CONV_SOLUTION = cell("ps1", "conv2d")
POOL_SOLUTION = cell("ps2", "max_pool2d") + "\n" + cell("ps2", "avg_pool2d")
PS1_REST = "\n".join(cell("ps1", gid) for gid in ("edge_map", "output_size", "conv2d_params"))


def wrong(source: str, old: str, new: str) -> str:
    assert old in source, f"the solution no longer contains {old!r}"
    return source.replace(old, new)


TOP_LEFT_CONV = wrong(
    CONV_SOLUTION,
    "pads.append((total // 2, total - total // 2))",
    "pads.append((total - total // 2, total // 2))",
)
# mistake: (wrong code, visible test cell, its message, graded cells the grader fails,
#           the grader's words)
CONV_MISTAKES = {
    "flipped kernel": (
        wrong(CONV_SOLUTION, "np.tensordot(window, w,", "np.tensordot(window, w[::-1, ::-1],"),
        "test_conv2d_kernel_orientation_and_channels",
        "you flipped the filter (true convolution)",
        ["test_conv2d_kernel_orientation_and_channels", "test_conv2d_random_cases"],
        "you flipped the filter",
    ),
    "height/width swapped": (
        wrong(
            CONV_SOLUTION,
            "np.tensordot(window, w,",
            "np.tensordot(window, w.transpose(1, 0, 2, 3),",
        ),
        "test_conv2d_kernel_orientation_and_channels",
        "height and width are swapped",
        ["test_conv2d_kernel_orientation_and_channels", "test_conv2d_random_cases"],
        "height and width are swapped",
    ),
    "channels first": (
        wrong(CONV_SOLUTION, "    return out\n", "    return out.transpose(0, 3, 1, 2)\n"),
        "test_conv2d_kernel_orientation_and_channels",
        "yours is channels-first",
        [
            "test_conv2d_kernel_orientation_and_channels",
            "test_conv2d_random_cases",
            "test_conv2d_seed_examples",
            "test_conv2d_stride_and_same_padding",
        ],
        "yours is channels-first",
    ),
    "top-left SAME": (
        TOP_LEFT_CONV,
        "test_conv2d_seed_examples",
        "yours are at the top/left",
        [
            "test_conv2d_random_cases",
            "test_conv2d_seed_examples",
            "test_conv2d_stride_and_same_padding",
        ],
        "bottom/right; yours went on the top/left",
    ),
    "symmetric SAME": (
        wrong(
            CONV_SOLUTION,
            "pads.append((total // 2, total - total // 2))",
            "pads.append(((k - 1) // 2, (k - 1) // 2))",
        ),
        "test_conv2d_seed_examples",
        "SAME padding keeps the size when stride is 1",
        [
            "test_conv2d_random_cases",
            "test_conv2d_seed_examples",
            "test_conv2d_stride_and_same_padding",
        ],
        "not the same number on every side",
    ),
    "stride off by one (ceil)": (
        wrong(
            CONV_SOLUTION,
            "out_h = (x.shape[1] - kh) // sh + 1",
            "out_h = -(-(x.shape[1] - kh) // sh) + 1",
        )
        .replace("out_w = (x.shape[2] - kw) // sw + 1", "out_w = -(-(x.shape[2] - kw) // sw) + 1")
        .replace(
            "x[:, i * sh:i * sh + kh, j * sw:j * sw + kw, :]",
            "np.pad(x, ((0, 0), (0, kh), (0, kw), (0, 0)))"
            "[:, i * sh:i * sh + kh, j * sw:j * sw + kw, :]",
        ),
        "test_conv2d_stride_and_same_padding",
        "the window moves `stride` cells at a time",
        ["test_conv2d_random_cases", "test_conv2d_stride_and_same_padding"],
        "wrong output shape",
    ),
    "last window missing": (
        wrong(
            CONV_SOLUTION, "out_h = (x.shape[1] - kh) // sh + 1", "out_h = (x.shape[1] - kh) // sh"
        ).replace("out_w = (x.shape[2] - kw) // sw + 1", "out_w = (x.shape[2] - kw) // sw"),
        "test_conv2d_stride_and_same_padding",
        "you stopped one window early",
        [
            "test_conv2d_kernel_orientation_and_channels",
            "test_conv2d_random_cases",
            "test_conv2d_seed_examples",
            "test_conv2d_stride_and_same_padding",
        ],
        "wrong output shape",
    ),
}

POOL_MISTAKES = {
    "zero padding in max pooling": (
        wrong(
            POOL_SOLUTION,
            "out[:, i, j, :] = x[:, r0:r1, c0:c1, :].max(axis=(1, 2))",
            "out[:, i, j, :] = np.maximum(x[:, r0:r1, c0:c1, :].max(axis=(1, 2)), "
            "0 if (r1 - r0, c1 - c0) != (kh, kw) else -np.inf)",
        ),
        "test_max_pool_seed_example",
        "yours padded with 0",
        ["test_max_pool_random_cases", "test_max_pool_seed_example"],
        "yours padded with 0",
    ),
    "averaging over padded cells": (
        wrong(
            POOL_SOLUTION,
            "x[:, r0:r1, c0:c1, :].mean(axis=(1, 2))",
            "x[:, r0:r1, c0:c1, :].sum(axis=(1, 2)) / (kh * kw)",
        ),
        "test_avg_pool_examples",
        "yours also counted the padded cells",
        ["test_avg_pool_examples", "test_avg_pool_random_cases"],
        "yours also counted the padded cells",
    ),
    "stride None taken as 1": (
        wrong(
            POOL_SOLUTION,
            "stride = (kh, kw) if stride is None else stride",
            "stride = 1 if stride is None else stride",
        ),
        "test_max_pool_stride_and_shapes",
        "stride=None means stride = pool_size",
        [
            "test_avg_pool_examples",
            "test_avg_pool_random_cases",
            "test_max_pool_random_cases",
            "test_max_pool_stride_and_shapes",
        ],
        "stride=None means stride = pool_size",
    ),
    "VALID keeps the incomplete last window": (
        wrong(
            POOL_SOLUTION,
            "count, before = (n - k) // s + 1, 0",
            "count, before = -(-(n - k) // s) + 1, 0",
        ),
        "test_max_pool_stride_and_shapes",
        "VALID drops the incomplete last window",
        [
            "test_avg_pool_examples",
            "test_avg_pool_valid_padding",
            "test_max_pool_stride_and_shapes",
            "test_max_pool_valid_padding",
        ],
        "VALID drops the incomplete last window",
    ),
    "top-left SAME in pooling": (
        wrong(
            POOL_SOLUTION,
            "before = max((count - 1) * s + k - n, 0) // 2",
            "before = -(-max((count - 1) * s + k - n, 0) // 2)",
        ),
        "test_avg_pool_examples",
        "yours is at the top/left",
        [
            "test_avg_pool_examples",
            "test_avg_pool_random_cases",
            "test_max_pool_random_cases",
            "test_max_pool_seed_example",
        ],
        "yours is at the top/left",
    ),
}
CONV_MISTAKES["flipped edge_map"] = (
    CONV_SOLUTION + "\nedge_map = np.zeros((5, 5))\nedge_map[:, 2] = -2\n",
    "test_edge_map_values",
    "edge_map: you flipped the filter (true convolution)",
    ["test_edge_map_values"],
    "you flipped the filter",
)
MISTAKES = {
    **{("ps1", k): v for k, v in CONV_MISTAKES.items()},
    **{("ps2", k): v for k, v in POOL_MISTAKES.items()},
}


@pytest.mark.parametrize("ps, mistake", list(MISTAKES))
def test_visible_test_names_the_mistake(ps, mistake):
    source, grade_id, message, _, _ = MISTAKES[ps, mistake]
    ns = namespace(ps, extra=source)
    with pytest.raises(AssertionError) as failure:
        run_cell(cell(ps, grade_id), ns)
    assert message in str(failure.value)


@pytest.mark.parametrize("ps, mistake", list(MISTAKES))
def test_grader_names_the_mistake_and_takes_only_its_points(ps, mistake):
    source, _, _, failed, words = MISTAKES[ps, mistake]
    verdicts = grade(ps, extra=(PS1_REST + "\n" if ps == "ps1" else "") + source)
    assert lost(verdicts) == failed
    named = [gid for gid in failed if words in verdicts[gid].message]
    assert named, {gid: verdicts[gid].message for gid in failed}


def test_a_same_side_mistake_costs_in_ps2_about_what_it_costs_in_ps1():
    """SAME's odd row on the top/left: 7 of ps1's 18 points, 8 of ps2's 18 (12 of 14 before ps2's
    VALID cells, when every cell of ps2 mixed VALID and SAME cases)."""
    ps1 = grade("ps1", extra=PS1_REST + "\n" + MISTAKES["ps1", "top-left SAME"][0])
    ps2 = grade("ps2", extra=MISTAKES["ps2", "top-left SAME in pooling"][0])
    assert (points("ps1", ps1), points("ps2", ps2)) == (18 - 7, 18 - 8)
    valid = grade("ps2", extra=MISTAKES["ps2", "VALID keeps the incomplete last window"][0])
    assert points("ps2", valid) == 18 - 10


def test_output_size_verdict_gives_the_rule_not_the_answer():
    verdicts = grade(
        "ps1",
        "edge_map",
        "conv2d",
        "conv2d_params",
        extra=(
            "def output_size(n, k, stride=1, padding='valid'):\n    return (n - k) // stride + 1\n"
        ),
    )
    assert lost(verdicts) == ["test_output_size_all_sizes", "test_output_size_examples"]
    message = verdicts["test_output_size_examples"].message
    assert message == "output_size(3, 2, 1, 'same') returned a wrong value: SAME: ceil(n / stride)"


@pytest.mark.parametrize(
    "source, message",
    [
        ("edge_map = np.zeros((5, 5)); edge_map[:, 2] = 2", None),
        (
            "edge_map = np.zeros((5, 5)); edge_map[:, 3] = 2",
            "only a window whose two columns differ",
        ),
        ("edge_map = np.zeros((5, 5)); edge_map[2, 2] = 2", "every row should be the same"),
        ("edge_map = np.full((5, 5), 0.5)", "every value of edge_map is a whole number"),
    ],
)
def test_the_visible_edge_map_test_checks_values_without_giving_them(source, message):
    ns = namespace("ps1", extra=source)
    test = cell("ps1", "test_edge_map_values")
    assert "[:, 2]" not in test and "2, 2" not in test and "0, 0, 2" not in test
    if message is None:
        run_cell(test, ns)
    else:
        with pytest.raises(AssertionError, match=message):
            run_cell(test, ns)


def test_edge_map_verdicts_name_a_flipped_filter_and_a_wrong_shape():
    flipped = grade("ps1", extra="edge_map = np.zeros((5, 5)); edge_map[:, 2] = -2")
    assert flipped["test_edge_map_shape"].fraction == 1
    assert "you flipped the filter" in flipped["test_edge_map_values"].message
    six = grade("ps1", extra="edge_map = np.zeros((6, 6))")
    assert six["test_edge_map_shape"].message.startswith(
        "edge_map has shape (6, 6): a 2x2 filter fits 6 - 2 + 1 = 5"
    )
    assert (
        grade("ps1", extra="edge_map = np.zeros((5, 5)); edge_map[:, 3] = 2")[
            "test_edge_map_values"
        ].message
        == "edge_map: 10 of 25 cells are wrong"
    )


def test_ints_are_required_where_the_task_says_int():
    verdicts = grade(
        "ps1",
        extra="def conv2d_params(kernel_size, in_channels, filters, use_bias=True):\n"
        "    kh, kw = (kernel_size, kernel_size) "
        "if np.ndim(kernel_size) == 0 else kernel_size\n"
        "    return float(kh * kw * in_channels * filters + (filters if use_bias else 0))\n",
    )
    assert (
        verdicts["test_conv2d_params_seed_summary"].message
        == "conv2d_params(2, 1, 1) should return an int, not a builtins.float"
    )


# --- objects that lie earn what their data earns -------------------------------------------------

LIARS = {
    "int equal to everything": (
        "class _AlwaysEqual(int):\n    __eq__ = lambda self, other: True\n"
        "    __ne__ = lambda self, other: False\n    __hash__ = int.__hash__\n"
        "def output_size(n, k, stride=1, padding='valid'):\n    return _AlwaysEqual(0)\n"
        "def conv2d_params(kernel_size, in_channels, filters, use_bias=True):\n"
        "    return _AlwaysEqual(0)\n",
        [
            "test_conv2d_params_all_shapes",
            "test_conv2d_params_seed_summary",
            "test_output_size_all_sizes",
            "test_output_size_examples",
        ],
    ),
    "array that claims to be numpy": (
        "class Liar:\n    __module__ = 'numpy'\n"
        "    def __eq__(self, other):\n        return True\n"
        "    def __array__(self, dtype=None, copy=None):\n"
        "        return np.zeros((1, 1, 1, 1))\n"
        "def conv2d(x, w, stride=1, padding='valid'):\n    return Liar()\n",
        [
            "test_conv2d_kernel_orientation_and_channels",
            "test_conv2d_padding_argument",
            "test_conv2d_random_cases",
            "test_conv2d_seed_examples",
            "test_conv2d_stride_and_same_padding",
        ],
    ),
}


@pytest.mark.parametrize("case", list(LIARS))
def test_objects_that_lie_earn_nothing_for_it(case):
    source, failed = LIARS[case]
    solved = [gid for gid in SOLVED["ps1"] if gid not in source]
    assert set(failed) <= set(lost(grade("ps1", *solved, extra=source)))


# --- the numpy-only rule, read from the source ------------------------------------------------

NUMPY_ONLY_CASES = {
    "sliding_window_view": (
        "def conv2d(x, w, stride=1, padding='valid'):\n"
        "    v = np.lib.stride_tricks.sliding_window_view(x, w.shape[:2], axis=(1, 2))\n"
        "    return np.einsum('nhwcab,abcf->nhwf', v, w)\n",
        "numpy's sliding_window_view",
    ),
    "as_strided in a helper": (
        "def _view(x):\n    return np.lib.stride_tricks.as_strided(x)\n"
        "def conv2d(x, w, stride=1, padding='valid'):\n    return _view(x)\n",
        "_view uses numpy's as_strided",
    ),
    "scipy": (
        "from scipy import signal\n"
        "def conv2d(x, w, stride=1, padding='valid'):\n    return signal.correlate(x, w)\n",
        "the scipy package",
    ),
    "tensorflow": (
        "def conv2d(x, w, stride=1, padding='valid'):\n    import tensorflow as tf\n"
        "    return tf.nn.conv2d(x, w, stride, padding.upper()).numpy()\n",
        "the tensorflow package",
    ),
    "alias at the top level": (
        "from numpy.lib.stride_tricks import sliding_window_view as view\n"
        "def conv2d(x, w, stride=1, padding='valid'):\n    return view(x, (2, 2))\n",
        "top-level code uses numpy's sliding_window_view",
    ),
    "name built at run time": (
        "def conv2d(x, w, stride=1, padding='valid'):\n"
        "    f = getattr(np.lib, 'stride' + '_tricks')\n    return f\n",
        "getattr (names built at run time hide what is called)",
    ),
    "eval": ("def conv2d(x, w, stride=1, padding='valid'):\n    return eval('x')\n", "eval"),
    "alias of a helper": (
        "def _windows(x, w, stride=1, padding='valid'):\n"
        "    return np.lib.stride_tricks.sliding_window_view(x, (2, 2))\nconv2d = _windows\n",
        "_windows uses numpy's sliding_window_view",
    ),
    "dict of helpers": (
        "def _win(x):\n    return np.lib.stride_tricks.as_strided(x)\nHELPERS = {'view': _win}\n"
        "def conv2d(x, w, stride=1, padding='valid'):\n    return HELPERS['view'](x)\n",
        "_win uses numpy's as_strided",
    ),
    "code swapped at the top level": (
        "def _other(x, w, stride=1, padding='valid'):\n"
        "    return np.lib.stride_tricks.as_strided(x)\n"
        "def conv2d(x, w, stride=1, padding='valid'):\n    return x\n"
        "conv2d.__code__ = _other.__code__\n",
        "_other uses numpy's as_strided",
    ),
}


@pytest.mark.parametrize("case", list(NUMPY_ONLY_CASES))
def test_numpy_only_check_says_what_was_used(case):
    source, words = NUMPY_ONLY_CASES[case]
    message = sourcescan.numpy_only_message([{"source": source, "metadata": {}}], "conv2d")
    assert message and words in message, message


def test_numpy_only_check_passes_the_solutions_and_ignores_locked_cells():
    for ps, functions in (("ps1", ["conv2d"]), ("ps2", ["max_pool2d", "avg_pool2d"])):
        cells = [
            {"source": "".join(c["source"]), "metadata": c["metadata"]}
            for c in notebook(ps)["cells"]
            if c["cell_type"] == "code"
        ]
        assert all(sourcescan.numpy_only_message(cells, f) is None for f in functions)
    locked = {"source": "x = np.lib.stride_tricks", "metadata": {"nbgrader": {"locked": True}}}
    assert sourcescan.numpy_only_message([locked, {"source": CONV_SOLUTION}], "conv2d") is None


def test_numpy_only_point_needs_a_working_function():
    verdicts = grade(
        "ps1",
        extra="def conv2d(x, w, stride=1, padding='valid'):\n    raise NotImplementedError()\n",
    )
    assert (
        verdicts["test_conv2d_numpy_only"].message
        == "conv2d(image, ones, padding='valid') raised NotImplementedError"
    )


# --- what the kernel sends is data, checked field by field ------------------------------------


def _doc(*records) -> str:
    return json.dumps({"results": list(records)})


GOOD_ARRAY = {"kind": "array", "shape": [2], "data": "AAAAAAAA8D8AAAAAAAAAQA=="}
PAYLOADS = {
    "not a string": ({"results": []}, 0, None),
    "not JSON": ("{", 1, None),
    "deeply nested": ("[" * 100_000 + "]" * 100_000, 1, None),
    "wrong count": (_doc(GOOD_ARRAY, GOOD_ARRAY), 1, None),
    "too long": (" " * (wire.MAX_PAYLOAD_CHARS + 1), 0, None),
    "unknown kind": (_doc({"kind": "pickle", "value": "x"}), 1, ["malformed"]),
    "array with a short buffer": (_doc({**GOOD_ARRAY, "shape": [3]}), 1, ["malformed"]),
    "array with a huge shape": (_doc({**GOOD_ARRAY, "shape": [10**6, 10**6]}), 1, ["malformed"]),
    "array with a negative dimension": (_doc({**GOOD_ARRAY, "shape": [-2]}), 1, ["malformed"]),
    "array with bad base64": (_doc({**GOOD_ARRAY, "data": "%%%"}), 1, ["malformed"]),
    "int that is a string": (_doc({"kind": "int", "value": "3"}), 1, ["malformed"]),
    "int that is a bool": (_doc({"kind": "int", "value": True}), 1, ["malformed"]),
    "good records": (
        _doc(GOOD_ARRAY, {"kind": "int", "value": 3}, {"kind": "raised", "type": "ValueError"}),
        3,
        ["array", "int", "raised"],
    ),
}


@pytest.mark.parametrize("case", list(PAYLOADS))
def test_kernel_data_is_checked_field_by_field(case):
    payload, count, kinds = PAYLOADS[case]
    records = wire.decode_results(payload, count)
    assert (records if records is None else [r.kind for r in records]) == kinds
    if case == "good records":
        assert records[0].value.tolist() == [1.0, 2.0] and records[1].value == 3


# --- ps3: the visible test and the grader agree on the output layer, the loss and the metric ----


def _ps3_model(keras, case: str):
    """A small compiled model for one of OUTPUT_AND_LOSS's cases (and one without the metric)."""
    layers, losses = keras.layers, keras.losses
    last = {
        "softmax": [layers.Dense(10, activation="softmax")],
        "logits": [layers.Dense(10)],
        "Softmax layer": [layers.Dense(10), layers.Softmax()],
        "Activation": [layers.Dense(10), layers.Activation("softmax")],
    }
    output, loss = case.split(" + ")
    loss = {
        "string": "sparse_categorical_crossentropy",
        "from_logits": losses.SparseCategoricalCrossentropy(from_logits=True),
        "function": losses.sparse_categorical_crossentropy,
        "no metric": "sparse_categorical_crossentropy",
    }[loss]
    inputs = keras.Input((28, 28, 1))
    x = layers.Flatten()(layers.Conv2D(4, 3)(inputs))
    for layer in last[output.removeprefix("functional ")]:
        x = layer(x)
    model = keras.Model(inputs, x)
    if not output.startswith("functional"):
        model = keras.Sequential([keras.Input((28, 28, 1)), *model.layers[1:]])
    metrics = [] if case.endswith("no metric") else ["accuracy"]
    model.compile("adam", loss, metrics=metrics)
    return model


def _ps3_visible_test(keras, model) -> str | None:
    """The ps3 notebook's visible test of build_model() on ``model``: None or its message."""
    ns = {"np": np, "keras": keras, "build_model": lambda: model}
    try:
        run_cell(cell("ps3", "test_build_model_is_small_compiled_cnn"), ns)
    except AssertionError as failure:
        return str(failure)
    return None


OUTPUT_AND_LOSS = {
    "softmax + string": None,
    "Softmax layer + function": None,
    "functional Activation + string": None,
    "logits + from_logits": None,
    "logits + string": ps3_mnist.LOGITS_WITH_PROBABILITY_LOSS,
    "functional logits + function": ps3_mnist.LOGITS_WITH_PROBABILITY_LOSS,
    "softmax + from_logits": ps3_mnist.SOFTMAX_WITH_LOGITS_LOSS,
    "Softmax layer + from_logits": ps3_mnist.SOFTMAX_WITH_LOGITS_LOSS,
}


@pytest.mark.parametrize("case", list(OUTPUT_AND_LOSS))
def test_ps3_output_layer_and_loss_agree_in_the_visible_test_and_the_grader(tf, case):
    keras = tf.keras
    model = _ps3_model(keras, case)
    description = json.dumps(
        {"config": model.to_json(), "compile": json.dumps(model.get_compile_config())}
    )
    expected = OUTPUT_AND_LOSS[case]
    assert ps3_mnist.output_loss_problem(description) == expected
    visible = _ps3_visible_test(keras, model)
    assert visible is None if expected is None else expected in visible, visible


def test_ps3_visible_test_requires_the_accuracy_metric_as_the_grader_does(tf):
    from cnnbook.grader import trainer

    model = _ps3_model(tf.keras, "softmax + no metric")
    assert 'pass metrics=["accuracy"]' in _ps3_visible_test(tf.keras, model)
    compiled = model.get_compile_config()
    assert trainer.compile_problems(json.loads(json.dumps(compiled))) == [
        'the model is compiled without the accuracy metric: pass metrics=["accuracy"]'
    ]


def test_no_graded_cell_ends_in_a_bare_expression():
    """nbgrader reads a graded cell's last value as partial credit: an array there makes validate
    warn that it cannot be converted to a float, a number above the cell's points crashes it."""
    import ast

    for path in sorted((ROOT / "solutions").glob("*/*.ipynb")):
        for c in json.loads(path.read_text())["cells"]:
            if c["cell_type"] != "code" or not c["metadata"].get("nbgrader", {}).get("grade"):
                continue
            last = ast.parse("".join(c["source"])).body[-1]
            returns_none = (
                isinstance(last, ast.Expr)
                and isinstance(last.value, ast.Call)
                and getattr(last.value.func, "id", None) == "check_result"
            )
            assert not isinstance(last, ast.Expr) or returns_none, (
                f"{path.name}: {c['metadata']['nbgrader']['grade_id']} ends in a bare expression"
            )


@pytest.mark.slow
def test_ps3_grader_rebuilds_but_does_not_train_a_model_whose_output_and_loss_disagree(tf):
    """The trainer's child checks the model (TensorFlow's import: a few seconds) and trains nothing;
    the first cell names the mistake, the accuracy cells say why nothing was trained."""
    from cnnbook.grader.plan import Context

    model = _ps3_model(tf.keras, "logits + string")
    description = json.dumps(
        {"config": model.to_json(), "compile": json.dumps(model.get_compile_config())}
    )
    result = wire.Result("str", description)
    context = Context({p.name: p for p in ps3_mnist.probes(None)}, {"build_model": [result]}, [])
    verdicts = {check.grade_id: check.judge(context) for check in ps3_mnist.CHECKS}
    run = context.cache[ps3_mnist.CACHE_KEY]
    assert run["accuracy"] is None and run["model_problems"] == [
        ps3_mnist.LOGITS_WITH_PROBABILITY_LOSS
    ]
    first = verdicts.pop("test_build_model_is_small_compiled_cnn")
    assert first.message == f"build_model(): {ps3_mnist.LOGITS_WITH_PROBABILITY_LOSS}"
    assert all(
        v.fraction == 0 and v.message.startswith("the grader trains only a model that passes")
        for v in verdicts.values()
    )
