"""Problem set 2 (pooling): the grader's own references, cases and named mistakes.

Expected values come from an independent reference (pad with NaN, stack one strided slice per window
offset, reduce ignoring NaN), which tests/test_grader_checks.py proves equal to ``tf.nn.max_pool2d``
and ``tf.nn.avg_pool2d``; what known mistakes return is computed the same way.

VALID padding has a cell of its own per function (visible cases and random VALID cases, every
stride given), and the random cells draw SAME cases only: one SAME mistake in a helper both
functions share costs the SAME cells (8 of 18 points), not every cell.
"""

from __future__ import annotations

import numpy as np

from cnnbook.grader import compare
from cnnbook.grader.checks import ps1_convolution, with_other_values
from cnnbook.grader.checks.ps1_convolution import numpy_only, pair, same_pads
from cnnbook.grader.plan import Call, Check, Probe, Verdict

NOTEBOOK = "pooling"
HIDDEN_PACKAGES = ps1_convolution.HIDDEN_PACKAGES  # numpy only, as in ps1
RANDOM_CASES = 60  # SAME padding, per function
VALID_RANDOM_CASES = 40  # VALID padding, per function, in the VALID cells
CELL_SECONDS, NOTEBOOK_SECONDS = (
    ps1_convolution.CELL_SECONDS,
    ps1_convolution.NOTEBOOK_SECONDS,
)  # as ps1

ZERO_MAX = (
    "SAME max pooling pads with -infinity, so a padded cell never wins; yours padded with 0, "
    "which wins over negative values"
)
ZERO_AVG = (
    "SAME average pooling divides by the number of real cells in the window; yours also counted "
    "the padded cells"
)
TOP_LEFT = "TensorFlow's SAME padding goes at the bottom/right; yours is at the top/left"
STRIDE_NONE = "stride=None means stride = pool_size (windows do not overlap)"
SAME_SIZE = "SAME gives ceil(n / stride) windows per axis"
VALID_SIZE = "VALID drops the incomplete last window: floor((n - k) / stride) + 1 windows per axis"
CHANNELS = "pool each channel separately: the output keeps the input's channels"


def pool2d(x, k, s, padding, reduce, fill=np.nan, odd_first=False):
    """Independent reference: pad with ``fill``, one strided slice per window offset, reduce
    ignoring NaN."""
    x = np.asarray(x, float)
    kh, kw = pair(k)
    sh, sw = pair((kh, kw) if s is None else s)
    if padding.lower() == "same":
        rows, cols = (
            same_pads(x.shape[1], kh, sh, odd_first),
            same_pads(x.shape[2], kw, sw, odd_first),
        )
        x = np.pad(x, ((0, 0), rows, cols, (0, 0)), constant_values=fill)
    oh, ow = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    stack = [
        x[:, a : a + sh * (oh - 1) + 1 : sh, b : b + sw * (ow - 1) + 1 : sw, :]
        for a in range(kh)
        for b in range(kw)
    ]
    return reduce(np.stack(stack), axis=0)


REDUCE = {"max_pool2d": np.nanmax, "avg_pool2d": np.nanmean}


def _arguments(call):
    x, *rest = call.args
    k, s, padding = (*rest, *(2, None, "valid")[len(rest) :])
    k = call.kwargs.get("pool_size", k)
    s = call.kwargs.get("stride", s)
    return x, k, s, call.kwargs.get("padding", padding)


def _shape_mistakes(x, k, s, padding, expected_shape):
    n, h, w, c = x.shape
    kh, kw = pair(k)
    shapes = [((n, expected_shape[1], expected_shape[2], 1), CHANNELS)]
    if s is None:
        shapes.append(((n, h - kh + 1, w - kw + 1, c), STRIDE_NONE))
        shapes.append(((n, h, w, c), STRIDE_NONE))
    sh, sw = pair((kh, kw) if s is None else s)
    if padding.lower() == "same":
        shapes.append(((n, (h - kh) // sh + 1, (w - kw) // sw + 1, c), SAME_SIZE))
    else:
        shapes.append(((n, -(-h // sh), -(-w // sw), c), VALID_SIZE))
    return [(message, shape) for shape, message in shapes if shape != tuple(expected_shape)]


def pool_mistakes(function, x, k, s, padding, expected):
    reduce = REDUCE[function]
    arrays = []
    if padding.lower() == "same":
        arrays = [
            (
                ZERO_MAX if function == "max_pool2d" else ZERO_AVG,
                pool2d(x, k, s, padding, reduce, fill=0.0),
            ),
            (TOP_LEFT, pool2d(x, k, s, padding, reduce, odd_first=True)),
        ]
    arrays = [
        (m, v)
        for m, v in arrays
        if v.shape != expected.shape or not np.allclose(v, expected, atol=1e-4)
    ]
    return arrays + _shape_mistakes(x, k, s, padding, expected.shape)


def _mistake(function):
    def mistake_of(call, result):
        x, k, s, padding = _arguments(call)
        expected = pool2d(x, k, s, padding, REDUCE[function])
        return compare.array_mistake(
            result, expected, pool_mistakes(function, x, k, s, padding, expected), call.label
        )

    return mistake_of


# --------------------------------------------------------------------------- the cases


def _calls(function, group, cases):
    return [
        Call(
            tuple(np.asarray(a, float) if isinstance(a, (np.ndarray, list)) else a for a in args),
            kwargs,
            f"{function}({label})",
            group,
        )
        for label, args, kwargs in cases
    ]


def _max_visible():
    maps = np.array([[12, 16], [24, 28]], dtype=float).reshape(1, 2, 2, 1) * np.array(
        [1.0, 10.0, -1.0]
    )
    five = np.arange(1, 26, dtype=float).reshape(1, 5, 5, 1)
    seed = _calls("max_pool2d", "seed", [("maps, 2, 1, 'same'", (maps, 2, 1, "same"), {})])
    stride = _calls(
        "max_pool2d",
        "stride",
        [
            ("5x5", (five,), {}),
            ("5x5, 3, 2", (five, 3, 2), {}),
            ("x of shape (2, 14, 14, 3), 2", (np.ones((2, 14, 14, 3)), 2), {}),
            (
                "x of shape (2, 7, 7, 3), 2, padding='SAME'",
                (np.ones((2, 7, 7, 3)), 2),
                {"padding": "SAME"},
            ),
        ],
    )
    # Its shape only: SAME's values are the seed and random cells' job, so that a SAME mistake does
    # not cost this cell too.
    same_shape = _calls(
        "max_pool2d", "same_shape", [("5x5, 2, padding='same'", (five, 2), {"padding": "same"})]
    )
    full = _calls("max_pool2d", "full", [("5x5, padding='full'", (five,), {"padding": "full"})])
    return seed + stride + same_shape + full + _valid_visible("max_pool2d")


def _valid_visible(function):
    """The VALID cells' visible cases (the same inputs for both functions)."""
    x = np.array(
        [[3, -1, 4, -1, 5], [-9, 2, -6, 5, -3], [5, -8, 9, -7, 9], [-3, 2, -3, 8, -4]], dtype=float
    ).reshape(1, 4, 5, 1)
    cases = [
        ("4x5, 2, 1, 'valid'", (x, 2, 1, "valid"), {}),
        ("4x5, (2, 3), (2, 1), 'VALID'", (x, (2, 3), (2, 1), "VALID"), {}),
    ]
    if function == "max_pool2d":
        cases.append(("x with 2 channels, 2, 2", (np.concatenate([x, -x], axis=3), 2, 2), {}))
    else:
        cases.insert(
            0, ("5x5, 2, 2", (np.arange(1, 26, dtype=float).reshape(1, 5, 5, 1), 2, 2), {})
        )
    return _calls(function, "valid", cases)


def _avg_visible():
    image = np.arange(1, 10, dtype=float).reshape(1, 3, 3, 1)
    five = np.arange(1, 26, dtype=float).reshape(1, 5, 5, 1)
    examples = _calls(
        "avg_pool2d",
        "examples",
        [
            ("5x5", (five,), {}),
            ("3x3, 2, 1, 'same'", (image, 2, 1, "same"), {}),
            ("5x5, 2, padding='SAME'", (five, 2), {"padding": "SAME"}),
        ],
    )
    full = _calls("avg_pool2d", "full", [("5x5, padding='full'", (five,), {"padding": "full"})])
    return _valid_visible("avg_pool2d") + examples + full


def _random_calls(function, rng, group="random", paddings=("same", "Same", "SAME"), count=None):
    """Random cases with these paddings; the SAME and the VALID cells each get their own."""
    calls = []
    for case in range(RANDOM_CASES if count is None else count):
        k = (
            int(rng.integers(1, 4))
            if rng.random() < 0.6
            else tuple(int(v) for v in rng.integers(1, 4, size=2))
        )
        kh, kw = pair(k)
        # The VALID cells give every stride explicitly: stride=None is the other cells' job.
        s = [None, int(rng.integers(1, 4)), tuple(int(v) for v in rng.integers(1, 4, size=2))][
            case % 3 if group != "valid" else 1 + case % 2
        ]
        padding = str(rng.choice(paddings))
        x = rng.normal(
            size=(
                int(rng.integers(1, 3)),
                int(rng.integers(kh, 9)),
                int(rng.integers(kw, 9)),
                int(rng.integers(1, 4)),
            )
        )
        label = f"{function}(x of shape {x.shape}, pool_size={k}, stride={s}, padding={padding!r})"
        calls.append(Call((x, k, s, padding), {}, label, group))
    return calls


def _valid_random_calls(function, rng):
    return _random_calls(
        function, rng, "valid", ("valid", "VALID", "Valid"), count=VALID_RANDOM_CASES
    )


def probes(rng) -> list[Probe]:
    """This submission's calls: the visible tests' cases, then random ones drawn from ``rng``."""
    return [
        Probe(
            "max_pool2d",
            with_other_values(_max_visible(), rng, ("seed", "stride", "valid"))
            + _random_calls("max_pool2d", rng)
            + _valid_random_calls("max_pool2d", rng),
        ),
        Probe(
            "avg_pool2d",
            with_other_values(_avg_visible(), rng, ("examples", "valid"))
            + _random_calls("avg_pool2d", rng)
            + _valid_random_calls("avg_pool2d", rng),
        ),
    ]


# --------------------------------------------------------------------------- the judges


def _group(function, group, many=False):
    def judge(ctx) -> Verdict:
        return compare.first_failure(ctx.pairs(function, group), _mistake(function), many=many)

    return judge


def _shape_mistake(call, result):
    """SAME's size only (the values are judged by the SAME cells)."""
    x, k, s, padding = _arguments(call)
    expected_shape = pool2d(x, k, s, padding, np.nanmax).shape
    got = result.array()
    if got is None:
        return f"{call.label} {compare.describe(result)}"
    if got.shape == expected_shape:
        return None
    named = [
        m for m, shape in _shape_mistakes(x, k, s, padding, expected_shape) if shape == got.shape
    ]
    return f"{call.label}: wrong output shape {got.shape}" + (f": {named[0]}" if named else "")


def _with_bad_padding(function, group):
    """The group's cases (and SAME's output shape, when there is such a case), and padding='full'
    raising ValueError."""

    def judge(ctx) -> Verdict:
        verdict = _group(function, group)(ctx)
        if verdict.fraction < 1:
            return verdict
        shapes = [pair for pair in ctx.pairs(function) if pair[0].group == "same_shape"]
        verdict = compare.first_failure(shapes, _shape_mistake) if shapes else verdict
        if verdict.fraction < 1:
            return verdict
        ((call, result),) = ctx.pairs(function, "full")
        if compare.raised(result, "ValueError"):
            return Verdict.passed()
        return Verdict.failed(
            f"{call.label} should raise ValueError: only 'valid' and 'same' exist"
        )

    return judge


CHECKS = [
    Check("test_max_pool_seed_example", _group("max_pool2d", "seed"), "max_pool2d"),
    Check(
        "test_max_pool_stride_and_shapes", _with_bad_padding("max_pool2d", "stride"), "max_pool2d"
    ),
    Check("test_max_pool_valid_padding", _group("max_pool2d", "valid", many=True), "max_pool2d"),
    Check("test_max_pool_random_cases", _group("max_pool2d", "random", many=True), "max_pool2d"),
    Check("test_max_pool_numpy_only", numpy_only("max_pool2d", "seed"), "max_pool2d"),
    Check("test_avg_pool_valid_padding", _group("avg_pool2d", "valid", many=True), "avg_pool2d"),
    Check("test_avg_pool_examples", _with_bad_padding("avg_pool2d", "examples"), "avg_pool2d"),
    Check("test_avg_pool_random_cases", _group("avg_pool2d", "random", many=True), "avg_pool2d"),
    Check("test_avg_pool_numpy_only", numpy_only("avg_pool2d", "examples"), "avg_pool2d"),
]
