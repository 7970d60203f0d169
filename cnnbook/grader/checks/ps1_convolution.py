"""Problem set 1 (convolution by hand): the grader's own references, cases and named mistakes.

Every expected value is computed here from the inputs with an independent reference
(tests/test_grader_checks.py proves it equal to ``tf.nn.conv2d``); what known mistakes return is
computed the same way, so that feedback can name the mistake.
"""

from __future__ import annotations

import numpy as np

from cnnbook.grader import compare, sourcescan
from cnnbook.grader.checks import with_other_values
from cnnbook.grader.plan import Call, Check, Probe, Verdict

NOTEBOOK = "convolution"
HIDDEN_PACKAGES = (
    "tensorflow",
    "keras",
    "tf_keras",
    "scipy",
    "jax",
    "torch",
    "sklearn",
    "cv2",
    "skimage",
    "numba",
)
RANDOM_CASES = 60
# Time limits (read by cnnbook.grader.plan.Plan). The reference runs each cell, probe cells
# included, in under 0.1 s and the whole notebook in about 2 s, kernel start included: a cell that
# runs 30 s loops. The notebook's 110 s hold three such cells, the three kernel restarts after them,
# and the probe cells; so a submission whose every answer loops is done within 2 minutes.
CELL_SECONDS = 30
NOTEBOOK_SECONDS = 110

FLIPPED = (
    "you flipped the filter (true convolution); a convolution layer computes cross-correlation: "
    "multiply x[i + a, j + b] by w[a, b] without flipping"
)
KERNEL_HW = (
    "height and width are swapped: w is (KH, KW, C_in, C_out), so w[a, b] pairs row offset a "
    "with column offset b"
)
TOP_LEFT = (
    "TensorFlow's SAME padding puts the odd padded row and column at the bottom/right; "
    "yours went on the top/left"
)
SAME_SIZE = (
    "SAME gives ceil(n / stride) positions per axis: pad only what those windows need "
    "(the odd row/column at the bottom/right), not the same number on every side"
)
VALID_SIZE = "VALID adds no border: floor((n - k) / stride) + 1 positions per axis"
STRIDE = "the window moves `stride` cells at a time (stride=(rows, columns) when it is a pair)"
ONE_EARLY = "you stopped one window early: VALID gives floor((n - k) / stride) + 1 positions"
C_OUT = "one output channel per filter: the last axis of w is C_out"


# --------------------------------------------------------------------------- references


def pair(value) -> tuple[int, int]:
    return (value, value) if np.ndim(value) == 0 else tuple(value)


def same_pads(n: int, k: int, s: int, odd_first: bool = False) -> tuple[int, int]:
    total = max((-(-n // s) - 1) * s + k - n, 0)
    small, large = total // 2, total - total // 2
    return (large, small) if odd_first else (small, large)


def conv2d(x, w, stride=1, padding="valid", odd_first=False):
    """Independent reference: one shifted, strided slice of the input per filter offset (a, b)."""
    x, w = np.asarray(x, float), np.asarray(w, float)
    (kh, kw), (sh, sw) = w.shape[:2], pair(stride)
    if padding.lower() == "same":
        rows, cols = (
            same_pads(x.shape[1], kh, sh, odd_first),
            same_pads(x.shape[2], kw, sw, odd_first),
        )
        x = np.pad(x, ((0, 0), rows, cols, (0, 0)))
    oh, ow = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    out = np.zeros((x.shape[0], oh, ow, w.shape[3]))
    for a in range(kh):
        for b in range(kw):
            out += x[:, a : a + sh * (oh - 1) + 1 : sh, b : b + sw * (ow - 1) + 1 : sw, :] @ w[a, b]
    return out


def output_size(n: int, k: int, stride: int, padding: str) -> int:
    """Counted, not computed by the formula the students use: one position per window start."""
    return (
        len(range(0, n, stride)) if padding.lower() == "same" else len(range(0, n - k + 1, stride))
    )


def conv2d_params(kernel_size, in_channels: int, filters: int, use_bias: bool = True) -> int:
    kh, kw = pair(kernel_size)
    return np.zeros((kh, kw, in_channels, filters)).size + (filters if use_bias else 0)


# --------------------------------------------------------------------------- conv2d's mistakes


def _shape_mistakes(x, w, stride, padding, expected_shape):
    n, h, wd, _ = x.shape
    (kh, kw), (sh, sw) = w.shape[:2], pair(stride)
    valid = (n, (h - kh) // sh + 1, (wd - kw) // sw + 1, w.shape[3])
    shapes = [
        ((n, h - kh + 1, wd - kw + 1, w.shape[3]), STRIDE),
        ((n, h, wd, w.shape[3]), STRIDE),
        ((n, expected_shape[1], expected_shape[2], 1), C_OUT),
    ]
    if padding.lower() == "same":
        # The same padding on every side (k // 2 or (k - 1) // 2 per axis), then the stride.
        shapes += [(valid, SAME_SIZE)] + [
            ((n, (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1, w.shape[3]), SAME_SIZE)
            for ph, pw in (((kh - 1) // 2, (kw - 1) // 2), (kh // 2, kw // 2))
        ]
    else:
        shapes += [((n, valid[1] - 1, valid[2] - 1, w.shape[3]), ONE_EARLY)]
    return [(message, shape) for shape, message in shapes if shape != tuple(expected_shape)]


def conv2d_mistakes(x, w, stride, padding, expected):
    """(message, what that mistake returns) for conv2d on these inputs; none equal to the right
    answer."""
    arrays = [(FLIPPED, conv2d(x, w[::-1, ::-1], stride, padding))]
    if w.shape[0] == w.shape[1]:
        arrays.append((KERNEL_HW, conv2d(x, w.transpose(1, 0, 2, 3), stride, padding)))
    if padding.lower() == "same":
        arrays.append((TOP_LEFT, conv2d(x, w, stride, padding, odd_first=True)))
    arrays = [
        (m, v)
        for m, v in arrays
        if v.shape != expected.shape or not np.allclose(v, expected, atol=1e-4)
    ]
    return arrays + _shape_mistakes(x, w, stride, padding, expected.shape)


def _conv_mistake(call, result):
    x, w = call.args[0], call.args[1]
    stride, padding = call.kwargs.get("stride", 1), call.kwargs.get("padding", "valid")
    expected = conv2d(x, w, stride, padding)
    return compare.array_mistake(
        result, expected, conv2d_mistakes(x, w, stride, padding, expected), call.label
    )


# --------------------------------------------------------------------------- the cases


def _conv(group, label, x, w, **kwargs):
    return Call((np.asarray(x, float), np.asarray(w, float)), kwargs, label, group)


# The visible test of a (2, 4, 5, 2) input and a (2, 3, 2, 3) filter bank (orientation task).
_MIXED_X = np.array(
    [
        [
            [[2, -2], [-3, -1], [-1, 2], [0, -3], [-1, 1]],
            [[2, 2], [3, -2], [3, -3], [0, -2], [-2, 1]],
            [[-1, 0], [-2, -2], [2, 0], [1, 1], [3, -1]],
            [[-2, 1], [3, 3], [3, 1], [-1, -1], [-3, -2]],
        ],
        [
            [[-1, -1], [1, 0], [1, 3], [3, 2], [3, -1]],
            [[3, 3], [-2, 0], [0, 1], [1, -3], [0, -3]],
            [[3, -2], [0, 3], [0, 1], [0, 2], [1, 1]],
            [[0, -1], [1, 0], [2, 1], [0, 3], [-2, 0]],
        ],
    ]
)
_MIXED_W = np.array(
    [
        [[[0, 2, 0], [1, -2, 2]], [[0, 0, -2], [1, 1, -1]], [[1, 0, -2], [-1, -1, -2]]],
        [[[0, -2, 0], [1, 0, 0]], [[-1, 2, -1], [2, 0, -1]], [[1, 2, 1], [0, -2, 1]]],
    ]
)


def _visible_conv_calls():
    image = np.arange(1, 10, dtype=float).reshape(1, 3, 3, 1)
    ones = np.ones((2, 2, 1, 1))
    three = np.array([1.0, 10.0, -1.0]) * np.ones((2, 2, 1, 3))
    rect = np.arange(1, 13, dtype=float).reshape(1, 3, 4, 1)
    k = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(2, 2, 1, 1)
    five = np.arange(1, 26, dtype=float).reshape(1, 5, 5, 1)
    return [
        _conv("seed", "conv2d(image, ones, padding='valid')", image, ones),
        _conv("seed", "conv2d(image, ones, padding='same')", image, ones, padding="same"),
        _conv("seed", "conv2d(image, three_filters, padding='SAME')", image, three, padding="SAME"),
        _conv("orientation", "conv2d(3x4 image, [[1, 2], [3, 4]])", rect, k),
        _conv(
            "orientation",
            "conv2d(x of shape (2, 4, 5, 2), w of shape (2, 3, 2, 3))",
            _MIXED_X.copy(),  # fresh arrays per call, as the others are
            _MIXED_W.copy(),
        ),
        _conv("stride", "conv2d(5x5, 2x2 ones, stride=2)", five, ones, stride=2),
        _conv(
            "stride",
            "conv2d(5x5, 2x2 ones, stride=2, padding='same')",
            five,
            ones,
            stride=2,
            padding="same",
        ),
        _conv(
            "stride",
            "conv2d(5x5, 3x3 ones, stride=(1, 2), padding='same')",
            five,
            np.ones((3, 3, 1, 1)),
            stride=(1, 2),
            padding="same",
        ),
        _conv(
            "stride",
            "conv2d(5x5, 4x4 ones, padding='same')",
            five,
            np.ones((4, 4, 1, 1)),
            padding="same",
        ),
        *[
            _conv(
                "padding_names", f"conv2d(image, ones, padding={name!r})", image, ones, padding=name
            )
            for name in ("VALID", "Same", "same")
        ],
        _conv("padding_full", "conv2d(image, ones, padding='full')", image, ones, padding="full"),
    ]


def _random_conv_calls(rng):
    calls = []
    for _ in range(RANDOM_CASES):
        kh, kw = (int(v) for v in rng.integers(1, 5, size=2))
        stride = (
            int(rng.integers(1, 4))
            if rng.random() < 0.5
            else tuple(int(s) for s in rng.integers(1, 4, size=2))
        )
        padding = str(rng.choice(["valid", "VALID", "same", "Same"]))
        x = rng.normal(
            size=(
                int(rng.integers(1, 3)),
                int(rng.integers(kh, 10)),
                int(rng.integers(kw, 10)),
                int(rng.integers(1, 4)),
            )
        )
        w = rng.normal(size=(kh, kw, x.shape[3], int(rng.integers(1, 4))))
        label = (
            f"conv2d(x of shape {x.shape}, w of shape {w.shape}, "
            f"stride={stride}, padding={padding!r})"
        )
        calls.append(_conv("random", label, x, w, stride=stride, padding=padding))
    return calls


def _random_sizes(rng, count: int = 6):
    """Cases beside the visible examples, drawn per submission (remembered answers earn nothing)."""
    cases = []
    for _ in range(count):
        n = int(rng.integers(30, 200))
        cases.append(
            (
                n,
                int(rng.integers(1, n)),
                int(rng.integers(1, 6)),
                str(rng.choice(["valid", "same"])),
            )
        )
    return cases


def _size_calls(rng):
    examples = [
        (3, 2),
        (3, 2, 1, "same"),
        (28, 3, 2, "SAME"),
        (14, 2, 2),
        (7, 2, 2, "same"),
        (6, 3, 2, "valid"),
    ]
    calls = [Call(args, {}, f"output_size{args}", "examples") for args in examples]
    calls += [Call(args, {}, f"output_size{args}", "examples") for args in _random_sizes(rng)]
    for n in range(1, 30):
        for k in range(1, n + 1):
            for s in range(1, 5):
                calls += [
                    Call((n, k, s, p), {}, f"output_size({n}, {k}, {s}, {p!r})", "all")
                    for p in ("valid", "SAME")
                ]
    return calls + [Call((5, 3, 1, "full"), {}, "output_size(5, 3, 1, 'full')", "full")]


def _params_calls(rng):
    seed = [
        ((2, 1, 1), {}),
        ((3, 1, 75), {}),
        ((3, 75, 50), {}),
        ((3, 50, 25), {}),
        (((2, 3), 4, 8), {"use_bias": False}),
    ]
    seed += [
        ((int(rng.integers(1, 8)), int(rng.integers(1, 300)), int(rng.integers(1, 300))), {})
        for _ in range(5)
    ]
    calls = [
        Call(args, kwargs, f"conv2d_params{args}" + (" without bias" if kwargs else ""), "seed")
        for args, kwargs in seed
    ]
    for kh in range(1, 6):
        for kw in range(1, 6):
            for cin, f in [(1, 1), (3, 16), (16, 32), (64, 7)]:
                ks = kh if kh == kw else (kh, kw)
                calls += [
                    Call(
                        (ks, cin, f),
                        {"use_bias": bias},
                        f"conv2d_params({ks}, {cin}, {f}, use_bias={bias})",
                        "all",
                    )
                    for bias in (True, False)
                ]
    return calls


def probes(rng) -> list[Probe]:
    """This submission's calls: the visible tests' cases, then random ones drawn from ``rng``."""
    return [
        Probe("edge_map", [Call(label="edge_map", group="value")], value=True),
        Probe("output_size", _size_calls(rng)),
        Probe(
            "conv2d",
            with_other_values(_visible_conv_calls(), rng, ("seed", "orientation", "stride"))
            + _random_conv_calls(rng),
        ),
        Probe("conv2d_params", _params_calls(rng)),
    ]


# --------------------------------------------------------------------------- the judges


def edge_answer():
    image = np.zeros((1, 6, 6, 1))
    image[0, :, 3:] = 1
    return conv2d(image, np.array([[-1.0, 1.0], [-1.0, 1.0]]).reshape(2, 2, 1, 1))[0, :, :, 0]


def edge_shape(ctx) -> Verdict:
    ((_, result),) = ctx.pairs("edge_map")
    got = result.array()
    if got is not None and got.shape == (5, 5):
        return Verdict.passed()
    if got is None:
        return Verdict.failed(
            f"edge_map {compare.describe(result)}"
            if result.kind != "raised"
            else "edge_map is not defined: store your answer in a variable named edge_map"
        )
    return Verdict.failed(
        f"edge_map has shape {got.shape}: a 2x2 filter fits 6 - 2 + 1 = 5 times along each "
        "axis (VALID)"
    )


def edge_values(ctx) -> Verdict:
    ((_, result),) = ctx.pairs("edge_map")
    answer = edge_answer()
    message = compare.array_mistake(result, answer, [(FLIPPED, -answer)], "edge_map")
    if message and result.array() is not None and result.array().shape == (5, 5):
        wrong = int(np.sum(~np.isclose(result.array(), answer)))
        message = message if "flipped" in message else f"edge_map: {wrong} of 25 cells are wrong"
    return Verdict.failed(message) if message else Verdict.passed()


def _size_mistake(call, result):
    defaults = (1, "valid")  # output_size(n, k, stride=1, padding="valid")
    n, k, s, p = (*call.args, *defaults[len(call.args) - 2 :])
    rule = "SAME: ceil(n / stride)" if p.lower() == "same" else "VALID: floor((n - k) / stride) + 1"
    return compare.int_mistake(result, output_size(n, k, s, p), call.label, rule)


def size_examples(ctx) -> Verdict:
    return compare.first_failure(ctx.pairs("output_size", "examples"), _size_mistake)


def size_all(ctx) -> Verdict:
    verdict = compare.first_failure(ctx.pairs("output_size", "all"), _size_mistake, many=True)
    if verdict.fraction < 1:
        return verdict
    ((call, result),) = ctx.pairs("output_size", "full")
    if compare.raised(result, "ValueError"):
        return Verdict.passed()
    return Verdict.failed(f"{call.label} should raise ValueError: only 'valid' and 'same' exist")


def _conv_group(group, many=False):
    def judge(ctx) -> Verdict:
        return compare.first_failure(ctx.pairs("conv2d", group), _conv_mistake, many=many)

    return judge


def conv_padding_argument(ctx) -> Verdict:
    for call, result in ctx.pairs("conv2d", "padding_names"):
        if result.kind == "raised":
            return Verdict.failed(
                f"{call.label} {compare.describe(result)}: padding is 'valid' or 'same' in any case"
            )
    ((call, result),) = ctx.pairs("conv2d", "padding_full")
    if compare.raised(result, "ValueError"):
        return Verdict.passed()
    return Verdict.failed(
        f"{call.label} should raise ValueError: only 'valid' and 'same' exist in TensorFlow"
    )


def numpy_only(function, probe_group):
    """The source keeps to numpy, and the function works at all (an empty stub earns nothing)."""

    def judge(ctx) -> Verdict:
        message = sourcescan.numpy_only_message(ctx.code_cells, function)
        if message:
            return Verdict.failed(message)
        (call, result), *_ = ctx.pairs(function, probe_group)
        if result.kind != "array":
            return Verdict.failed(f"{call.label} {compare.describe(result)}")
        return Verdict.passed()

    return judge


def _params_mistake(call, result):
    kernel_size, cin, f = call.args
    return compare.int_mistake(
        result,
        conv2d_params(kernel_size, cin, f, **call.kwargs),
        call.label,
        "KH * KW * C_in weights per filter, plus one bias per filter when use_bias",
    )


def params_seed(ctx) -> Verdict:
    return compare.first_failure(ctx.pairs("conv2d_params", "seed"), _params_mistake)


def params_all(ctx) -> Verdict:
    return compare.first_failure(ctx.pairs("conv2d_params", "all"), _params_mistake, many=True)


CHECKS = [
    Check("test_edge_map_shape", edge_shape, "edge_map"),
    Check("test_edge_map_values", edge_values, "edge_map"),
    Check("test_output_size_examples", size_examples, "output_size"),
    Check("test_output_size_all_sizes", size_all, "output_size"),
    Check("test_conv2d_seed_examples", _conv_group("seed"), "conv2d"),
    Check("test_conv2d_kernel_orientation_and_channels", _conv_group("orientation"), "conv2d"),
    Check("test_conv2d_stride_and_same_padding", _conv_group("stride"), "conv2d"),
    Check("test_conv2d_padding_argument", conv_padding_argument, "conv2d"),
    Check("test_conv2d_random_cases", _conv_group("random", many=True), "conv2d"),
    Check("test_conv2d_numpy_only", numpy_only("conv2d", "seed"), "conv2d"),
    Check("test_conv2d_params_seed_summary", params_seed, "conv2d_params"),
    Check("test_conv2d_params_all_shapes", params_all, "conv2d_params"),
]
