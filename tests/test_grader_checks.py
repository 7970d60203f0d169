"""The exercises' own code, checked without nbgrader: hidden references equal TensorFlow, solutions
equal TensorFlow, and the visible tests name the mistake a wrong implementation makes.

Cells are taken from the source notebooks (solutions/) by their nbgrader grade_id and executed here.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = {
    "ps1": ROOT / "solutions/ps1-convolution/convolution.ipynb",
    "ps2": ROOT / "solutions/ps2-pooling/pooling.ipynb",
}


def cell(ps: str, grade_id: str) -> str:
    nb = json.loads(NOTEBOOKS[ps].read_text())
    for c in nb["cells"]:
        if c["metadata"]["nbgrader"]["grade_id"] == grade_id:
            return "".join(c["source"])
    raise KeyError(f"{ps} has no cell {grade_id}")


def definitions(source: str) -> str:
    """Only the imports and function definitions of a cell (a hidden test cell's helpers, without its checks)."""
    source = source.replace("### BEGIN HIDDEN TESTS", "").replace("### END HIDDEN TESTS", "")
    tree = ast.parse(source)
    keep = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.Import, ast.ImportFrom))]
    return ast.unparse(ast.Module(body=keep, type_ignores=[]))


def namespace(ps: str, *grade_ids: str, extra: str = "") -> dict:
    ns: dict = {"__name__": "__main__"}
    for gid in ("imports", "check_helpers", *grade_ids):
        exec(cell(ps, gid), ns)
    exec(extra, ns)
    return ns


def random_conv_cases(n: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        kh, kw = (int(v) for v in rng.integers(1, 6, size=2))
        stride = int(rng.integers(1, 4)) if rng.random() < 0.5 else tuple(int(v) for v in rng.integers(1, 4, size=2))
        padding = str(rng.choice(["valid", "same"]))
        x = rng.normal(size=(int(rng.integers(1, 3)), int(rng.integers(kh, 12)), int(rng.integers(kw, 12)),
                             int(rng.integers(1, 4))))
        w = rng.normal(size=(kh, kw, x.shape[3], int(rng.integers(1, 4))))
        yield x, w, stride, padding


def random_pool_cases(n: int, seed: int):
    rng = np.random.default_rng(seed)
    for i in range(n):
        k = int(rng.integers(1, 4)) if rng.random() < 0.6 else tuple(int(v) for v in rng.integers(1, 4, size=2))
        kh, kw = (k, k) if np.ndim(k) == 0 else k
        s = [None, int(rng.integers(1, 4)), tuple(int(v) for v in rng.integers(1, 4, size=2))][i % 3]
        padding = str(rng.choice(["valid", "same"]))
        x = rng.normal(size=(int(rng.integers(1, 3)), int(rng.integers(kh, 10)), int(rng.integers(kw, 10)),
                             int(rng.integers(1, 4))))
        yield x, k, s, padding


@pytest.fixture(scope="module")
def tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow
    return tensorflow


# --- the hidden references (and the solutions) equal TensorFlow -------------------------------

def test_hidden_conv2d_reference_equals_tf_nn_conv2d(tf):
    ns = {"np": np}
    exec(definitions(cell("ps1", "test_conv2d_random_cases")), ns)
    ref = ns["_reference_conv2d"]
    solution = namespace("ps1", "conv2d")["conv2d"]
    for x, w, stride, padding in random_conv_cases(150, seed=1):
        expected = tf.nn.conv2d(x.astype("float32"), w.astype("float32"), strides=stride, padding=padding.upper()).numpy()
        np.testing.assert_allclose(ref(x, w, stride, padding), expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(solution(x, w, stride, padding), expected, rtol=1e-4, atol=1e-4)


def test_hidden_conv2d_reference_detects_top_left_padding(tf):
    """The 'odd cell first' variant really differs from TensorFlow (so the diagnosis it feeds is meaningful)."""
    ns = {"np": np}
    exec(definitions(cell("ps1", "test_conv2d_random_cases")), ns)
    x = np.arange(25.0).reshape(1, 5, 5, 1)
    w = np.ones((2, 2, 1, 1))
    expected = tf.nn.conv2d(x, w, strides=1, padding="SAME").numpy()
    assert not np.allclose(ns["_reference_conv2d"](x, w, 1, "same", odd_cell_first=True), expected)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_hidden_pool_reference_equals_tf_nn_pool(tf, kind):
    ns = {"np": np}
    exec(definitions(cell("ps2", f"test_{kind}_pool_random_cases")), ns)
    ref = ns["_reference_pool2d"]
    solution = namespace("ps2", "max_pool2d", "avg_pool2d")[f"{kind}_pool2d"]
    tf_pool = tf.nn.max_pool2d if kind == "max" else tf.nn.avg_pool2d
    reduce = np.nanmax if kind == "max" else np.nanmean
    for x, k, s, padding in random_pool_cases(150, seed=2):
        expected = tf_pool(x.astype("float32"), ksize=k, strides=k if s is None else s, padding=padding.upper()).numpy()
        np.testing.assert_allclose(ref(x, k, s, padding, reduce), expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(solution(x, k, s, padding), expected, rtol=1e-5, atol=1e-5)


def test_seed_numbers(tf):
    """The seeds' walkthrough numbers, from TensorFlow itself, are the ones the visible tests expect."""
    image = np.arange(1, 10, dtype="float32").reshape(1, 3, 3, 1)
    ones = np.ones((2, 2, 1, 1), "float32")
    assert tf.nn.conv2d(image, ones, 1, "VALID").numpy()[0, :, :, 0].tolist() == [[12, 16], [24, 28]]
    assert tf.nn.conv2d(image, ones, 1, "SAME").numpy()[0, :, :, 0].tolist() == [[12, 16, 9], [24, 28, 15], [15, 17, 9]]
    maps = tf.nn.conv2d(image, ones * np.array([1, 10, -1], "float32"), 1, "VALID")
    pooled = tf.nn.max_pool2d(maps, 2, 1, "SAME").numpy()[0]
    assert pooled[..., 2].tolist() == [[-12, -16], [-24, -28]]   # padding never wins (seed 001's -12)
    assert pooled[..., 1].tolist() == [[280, 280], [280, 280]]
    seed_cell = cell("ps1", "test_conv2d_seed_examples")
    assert "[[[[12], [16]], [[24], [28]]]]" in seed_cell
    assert "[[[[28, 280, -12], [28, 280, -16]], [[28, 280, -24], [28, 280, -28]]]]" in cell("ps2", "test_max_pool_seed_example")
    ns = namespace("ps1", "conv2d_params")
    layer = tf.keras.layers.Conv2D(50, 3)
    layer.build((None, 14, 14, 75))
    assert layer.count_params() == ns["conv2d_params"](3, 75, 50) == 33800


# --- visible tests name the mistake -----------------------------------------------------------

CONV_SOLUTION = cell("ps1", "conv2d")
POOL_SOLUTION = cell("ps2", "max_pool2d") + "\n" + cell("ps2", "avg_pool2d")


def wrong(source: str, old: str, new: str) -> str:
    assert old in source, f"the solution no longer contains {old!r}"
    return source.replace(old, new)


CONV_MISTAKES = {
    "flipped kernel": (wrong(CONV_SOLUTION, "np.tensordot(window, w,", "np.tensordot(window, w[::-1, ::-1],"),
                       "test_conv2d_kernel_orientation_and_channels", "you flipped the filter (true convolution)"),
    "height/width swapped": (wrong(CONV_SOLUTION, "np.tensordot(window, w,", "np.tensordot(window, w.transpose(1, 0, 2, 3),"),
                             "test_conv2d_kernel_orientation_and_channels", "height and width are swapped"),
    "channels first": (wrong(CONV_SOLUTION, "    return out\n", "    return out.transpose(0, 3, 1, 2)\n"),
                       "test_conv2d_kernel_orientation_and_channels", "yours is channels-first"),
    "top-left SAME": (wrong(CONV_SOLUTION, "pads.append((total // 2, total - total // 2))",
                            "pads.append((total - total // 2, total // 2))"),
                      "test_conv2d_seed_examples", "yours are at the top/left"),
    "top-left SAME with stride": (wrong(CONV_SOLUTION, "pads.append((total // 2, total - total // 2))",
                                        "pads.append((total - total // 2, total // 2))"),
                                  "test_conv2d_stride_and_same_padding", "yours went on the top/left"),
    "symmetric SAME": (wrong(CONV_SOLUTION, "pads.append((total // 2, total - total // 2))",
                             "pads.append(((k - 1) // 2, (k - 1) // 2))"),
                       "test_conv2d_seed_examples", "SAME padding keeps the size when stride is 1"),
    "symmetric SAME, 4x4 filter": (wrong(CONV_SOLUTION, "pads.append((total // 2, total - total // 2))",
                                         "pads.append((total // 2, total // 2) if k == 4 else (total // 2, total - total // 2))"),
                                   "test_conv2d_stride_and_same_padding", "not the same number on each side"),
    "stride off by one (ceil)": (wrong(CONV_SOLUTION, "out_h = (x.shape[1] - kh) // sh + 1", "out_h = -(-(x.shape[1] - kh) // sh) + 1")
                                 .replace("out_w = (x.shape[2] - kw) // sw + 1", "out_w = -(-(x.shape[2] - kw) // sw) + 1")
                                 .replace("x[:, i * sh:i * sh + kh, j * sw:j * sw + kw, :]",
                                          "np.pad(x, ((0, 0), (0, kh), (0, kw), (0, 0)))[:, i * sh:i * sh + kh, j * sw:j * sw + kw, :]"),
                                 "test_conv2d_stride_and_same_padding", "the window moves `stride` cells at a time"),
    "last window missing": (wrong(CONV_SOLUTION, "out_h = (x.shape[1] - kh) // sh + 1", "out_h = (x.shape[1] - kh) // sh")
                            .replace("out_w = (x.shape[2] - kw) // sw + 1", "out_w = (x.shape[2] - kw) // sw"),
                            "test_conv2d_stride_and_same_padding", "you stopped one window early"),
    "off by one in values": (wrong(CONV_SOLUTION, "    return out\n", "    return out + (out == out.max())\n"),
                             "test_conv2d_seed_examples", "wrong values; the largest difference is 1 at index (0, 1, 1, 0)"),
}

POOL_MISTAKES = {
    "zero padding in max pooling": (
        wrong(POOL_SOLUTION, "out[:, i, j, :] = x[:, r0:r1, c0:c1, :].max(axis=(1, 2))",
              "out[:, i, j, :] = np.maximum(x[:, r0:r1, c0:c1, :].max(axis=(1, 2)), "
              "0 if (r1 - r0, c1 - c0) != (kh, kw) else -np.inf)"),
        "test_max_pool_seed_example", "yours padded with 0"),
    "averaging over padded cells": (
        wrong(POOL_SOLUTION, "x[:, r0:r1, c0:c1, :].mean(axis=(1, 2))", "x[:, r0:r1, c0:c1, :].sum(axis=(1, 2)) / (kh * kw)"),
        "test_avg_pool_examples", "yours also counted the padded cells"),
    "stride None taken as 1": (
        wrong(POOL_SOLUTION, "stride = (kh, kw) if stride is None else stride", "stride = 1 if stride is None else stride"),
        "test_max_pool_stride_and_shapes", "stride=None means stride = pool_size"),
    "top-left SAME in pooling": (
        wrong(POOL_SOLUTION, "before = max((count - 1) * s + k - n, 0) // 2",
              "before = -(-max((count - 1) * s + k - n, 0) // 2)"),
        "test_avg_pool_examples", "yours is at the top/left"),
}


@pytest.mark.parametrize("mistake", list(CONV_MISTAKES))
def test_conv2d_visible_tests_name_the_mistake(mistake):
    source, grade_id, message = CONV_MISTAKES[mistake]
    ns = namespace("ps1", extra=source)
    with pytest.raises(AssertionError) as failure:
        exec(cell("ps1", grade_id), ns)
    assert message in str(failure.value)


@pytest.mark.parametrize("mistake", list(POOL_MISTAKES))
def test_pooling_visible_tests_name_the_mistake(mistake):
    source, grade_id, message = POOL_MISTAKES[mistake]
    ns = namespace("ps2", extra=source)
    with pytest.raises(AssertionError) as failure:
        exec(cell("ps2", grade_id), ns)
    assert message in str(failure.value)


def test_solutions_pass_their_visible_tests():
    ns = namespace("ps1", "edge_map", "output_size", "conv2d", "conv2d_params")
    for gid in ("test_edge_map_shape", "test_output_size_examples", "test_conv2d_seed_examples",
                "test_conv2d_kernel_orientation_and_channels", "test_conv2d_stride_and_same_padding",
                "test_conv2d_padding_argument", "test_conv2d_params_seed_summary"):
        exec(cell("ps1", gid), ns)
    ns = namespace("ps2", "max_pool2d", "avg_pool2d")
    for gid in ("test_max_pool_seed_example", "test_max_pool_stride_and_shapes", "test_avg_pool_examples"):
        exec(cell("ps2", gid), ns)


def test_output_size_hint_says_the_rule():
    ns = namespace("ps1", extra="def output_size(n, k, stride=1, padding='valid'):\n    return (n - k) // stride + 1\n")
    with pytest.raises(AssertionError, match=r"output_size\(3, 2, 1, 'same'\) should be 3, got 2: SAME padding keeps the size"):
        exec(cell("ps1", "test_output_size_examples"), ns)


def test_edge_map_visible_test_draws_the_answer_and_the_expected_shape(capsys):
    ns = namespace("ps1", extra="edge_map = np.zeros((6, 6))")
    with pytest.raises(AssertionError, match=r"should have shape \(5, 5\), got \(6, 6\)"):
        exec(cell("ps1", "test_edge_map_shape"), ns)
    printed = capsys.readouterr().out
    assert "your edge_map: (6, 6)" in printed and "expected shape (5, 5)" in printed
    assert printed.count("   .") == 25


def test_edge_map_hidden_test_names_a_flipped_filter():
    ns = namespace("ps1", extra="edge_map = np.zeros((5, 5)); edge_map[:, 2] = -2")
    with pytest.raises(AssertionError, match="flipped the filter"):
        exec(cell("ps1", "test_edge_map_values"), ns)


def test_edge_map_answer_is_what_tensorflow_computes(tf):
    image = np.zeros((1, 6, 6, 1), "float32")
    image[:, :, 3:] = 1
    w = np.array([[-1, 1], [-1, 1]], "float32").reshape(2, 2, 1, 1)
    expected = tf.nn.conv2d(image, w, 1, "VALID").numpy()[0, :, :, 0]
    np.testing.assert_array_equal(namespace("ps1", "edge_map")["edge_map"], expected)
    assert expected[:, 2].tolist() == [2] * 5 and np.count_nonzero(expected) == 5


# --- the numpy-only check (in a fresh interpreter: this test process has TensorFlow loaded) ---

NUMPY_ONLY_CASES = {
    "sliding_window_view": ("def conv2d(x, w, stride=1, padding='valid'):\n"
                            "    v = np.lib.stride_tricks.sliding_window_view(x, w.shape[:2], axis=(1, 2))\n"
                            "    return np.einsum('nhwcab,abcf->nhwf', v, w)\n", "sliding_window_view"),
    "scipy": ("from scipy import signal\n"
              "def _one(x, w):\n    return signal.correlate(x, w, mode='valid')\n"
              "def conv2d(x, w, stride=1, padding='valid'):\n    return _one(x[0, :, :, 0], w[:, :, 0, 0])[None, :, :, None]\n",
              "scipy"),
    "tensorflow": ("def conv2d(x, w, stride=1, padding='valid'):\n    import tensorflow as tf\n"
                   "    return tf.nn.conv2d(x, w, stride, padding.upper()).numpy()\n", "TensorFlow"),
}


@pytest.mark.parametrize("case", list(NUMPY_ONLY_CASES))
def test_numpy_only_check_says_why(case, tmp_path):
    source, message = NUMPY_ONLY_CASES[case]
    # SciPy is not a dependency of this course: a stand-in package with the same names will do.
    (tmp_path / "scipy").mkdir()
    (tmp_path / "scipy" / "__init__.py").write_text("")
    (tmp_path / "scipy" / "signal.py").write_text(
        "import numpy as np\n"
        "def correlate(a, b, mode='valid'):\n"
        "    n, m = a.shape[0] - b.shape[0] + 1, a.shape[1] - b.shape[1] + 1\n"
        "    return np.array([[np.sum(a[i:i + b.shape[0], j:j + b.shape[1]] * b) for j in range(m)] for i in range(n)])\n")
    hidden = cell("ps1", "test_conv2d_numpy_only")
    script = ("import numpy as np\n" + source + "\ntry:\n    exec(" + repr(hidden) + ")\n"
              "except AssertionError as error:\n    print('FAILED:', error)\nelse:\n    print('PASSED')\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0", PYTHONPATH=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert "FAILED:" in out.stdout and message in out.stdout, out.stdout + out.stderr[-2000:]


def test_numpy_only_check_passes_the_solution():
    hidden = cell("ps1", "test_conv2d_numpy_only")
    script = "import numpy as np\n" + CONV_SOLUTION + "\nexec(" + repr(hidden) + ")\nprint('PASSED')\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "PASSED", out.stderr[-2000:]


# --- ps3: the model check says which check failed ------------------------------------------

PS3_MODELS = {
    "not compiled": ("keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),"
                     " keras.layers.Dense(10)])", "the model is not compiled"),
    "no Conv2D": ("keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])",
                  "the model has no Conv2D layer"),
    "too many parameters": ("keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(128, 3), keras.layers.Flatten(),"
                            " keras.layers.Dense(10)])", "the cap is 500,000"),
    "wrong input": ("keras.Sequential([keras.Input((784,)), keras.layers.Reshape((28, 28, 1)), keras.layers.Conv2D(4, 3),"
                    " keras.layers.Flatten(), keras.layers.Dense(10)])", "expected (28, 28, 1)"),
    "one-hot loss": ("keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),"
                     " keras.layers.Dense(10, activation='softmax')])", "sparse_categorical_crossentropy"),
}


@pytest.mark.parametrize("case", list(PS3_MODELS))
def test_ps3_model_check_says_which_check_failed(tf, case):
    model, message = PS3_MODELS[case]
    compile_ = {"not compiled": "", "one-hot loss": "m.compile('adam', 'categorical_crossentropy')"}.get(
        case, "m.compile('adam', 'sparse_categorical_crossentropy')")
    ns = {"np": np, "keras": tf.keras, "tf": tf}
    exec(f"def build_model():\n    m = {model}\n    {compile_ or 'pass'}\n    return m\n", ns)
    nb = json.loads((ROOT / "solutions/ps3-mnist/mnist_cnn.ipynb").read_text())
    check = next("".join(c["source"]) for c in nb["cells"]
                 if c["metadata"]["nbgrader"]["grade_id"] == "test_build_model_is_small_compiled_cnn")
    with pytest.raises(AssertionError, match=re.escape(message)):
        exec(check, ns)


def test_ps3_reference_model_passes_the_check(tf):
    nb = json.loads((ROOT / "solutions/ps3-mnist/mnist_cnn.ipynb").read_text())
    source = {c["metadata"]["nbgrader"]["grade_id"]: "".join(c["source"]) for c in nb["cells"]}
    ns = {"np": np, "keras": tf.keras, "tf": tf}
    exec(source["build_model"], ns)
    exec(source["test_build_model_is_small_compiled_cnn"], ns)
    assert ns["model"].count_params() == 35114


# --- hidden tests cannot be talked round from inside the notebook -----------------------------

ALWAYS_EQUAL = '''
class _AlwaysEqual(int):
    def __eq__(self, other):
        return True
    __ne__ = lambda self, other: False
    __hash__ = int.__hash__
'''


def hidden(ps: str, grade_id: str) -> str:
    return cell(ps, grade_id).replace("### BEGIN HIDDEN TESTS", "").replace("### END HIDDEN TESTS", "")


@pytest.mark.parametrize("ps, grade_id, function, wrong", [
    ("ps1", "test_conv2d_random_cases", "conv2d", "def conv2d(x, w, stride=1, padding='valid'):\n    return np.zeros(1)\n"),
    ("ps2", "test_max_pool_random_cases", "max_pool2d", "def max_pool2d(x, pool_size=2, stride=None, padding='valid'):\n    return np.zeros(1)\n"),
    ("ps2", "test_avg_pool_random_cases", "avg_pool2d", "def avg_pool2d(x, pool_size=2, stride=None, padding='valid'):\n    return np.zeros(1)\n"),
])
def test_redefining_the_check_helper_does_not_pass_hidden_tests(ps, grade_id, function, wrong):
    """A notebook that replaces check_result (and np) by things that never fail still fails the hidden test."""
    ns = namespace(ps, extra=wrong + "check_result = lambda *args, **kwargs: None\n")
    if ps == "ps2":  # the pooling reference reuses the released _windows helper of the max_pool2d cell
        exec(definitions(cell(ps, "max_pool2d")).replace("def max_pool2d", "def _unused_max_pool2d"), ns)
    with pytest.raises(AssertionError, match=rf"{function}\(.*wrong result"):
        exec(hidden(ps, grade_id), ns)


@pytest.mark.parametrize("grade_id, function", [
    ("test_output_size_all_sizes", "def output_size(n, k, stride=1, padding='valid'):\n    if padding == 'full': raise ValueError\n    return _AlwaysEqual(0)\n"),
    ("test_conv2d_params_all_shapes", "def conv2d_params(kernel_size, in_channels, filters, use_bias=True):\n    return _AlwaysEqual(0)\n"),
])
def test_an_object_equal_to_everything_fails_the_hidden_tests(grade_id, function):
    ns = namespace("ps1", extra=ALWAYS_EQUAL + function)
    with pytest.raises(AssertionError):
        exec(hidden("ps1", grade_id), ns)


def test_the_solutions_pass_the_hardened_hidden_tests():
    for ps, grade_ids in {"ps1": ["output_size", "conv2d", "conv2d_params"], "ps2": ["max_pool2d", "avg_pool2d"]}.items():
        ns = namespace(ps, *grade_ids)
        tests = {"ps1": ["test_output_size_all_sizes", "test_conv2d_random_cases", "test_conv2d_params_all_shapes"],
                 "ps2": ["test_max_pool_random_cases", "test_avg_pool_random_cases"]}[ps]
        for grade_id in tests:
            exec(hidden(ps, grade_id), ns)
