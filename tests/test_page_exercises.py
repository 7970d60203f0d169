"""The Exercises sections at the end of the chapter pages (issue 16, item 7).

Each page ends with at least three exercises (sphinx-exercise's ``{exercise}`` directive), each
followed by its ``{solution}``, hidden in a dropdown. The table CASES recomputes, with numpy and
plain Python, every number a solution states: a solution may write only numbers recomputed here,
numbers its question gives, and numbers the page itself states above the exercises (listed per
case as ``given``); and every recomputed number must appear in the solution.

Reads the sources only (no build, no TensorFlow), so it runs in well under a second.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

BOOK = Path(__file__).resolve().parent.parent / "book"
PAGES = [
    "conv-by-hand",
    "padding-and-stride",
    "many-filters",
    "pooling",
    "conv2d-layer",
    "transposed-convolution",
    "feature-maps",
    "mnist-cnn",
    "dense-vs-cnn",
    "tf1-to-tf2",
]
EXERCISE = re.compile(r"^```\{exercise\}\n:label: (\S+)\n\n(.*?)\n```$", re.M | re.S)
SOLUTION = re.compile(r"^(`{4,})\{solution\} (\S+)\n((?::\w+:[^\n]*\n)*)\n(.*?)\n\1$", re.M | re.S)
# A number as the prose writes it: 1,216 or 2{,}304 (LaTeX) or 0.0833; a minus sign counts only
# right after a space, bracket, "=" or backtick (so "28-3" and "k-1" hold no negative number).
NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?!\w)")
SIGN_CONTEXT = " \n([=`"


# --- parsing ----------------------------------------------------------------------------------


def page_text(page: str) -> str:
    return (BOOK / f"{page}.md").read_text(encoding="utf-8")


def split_exercises(page: str) -> tuple[str, str, str]:
    """(text above the Exercises section, the section, what follows it) of book/<page>.md."""
    text = page_text(page)
    parts = text.split("\n## Exercises\n")
    assert len(parts) == 2, f"book/{page}.md needs exactly one '## Exercises' section"
    above, rest = parts
    following = re.search(r"^## ", rest, flags=re.M)
    end = following.start() if following else len(rest)
    return above, rest[:end], rest[end:]


def numbers(text: str) -> list[tuple[str, float]]:
    """Every number written in ``text``, as (the digits as written, its value)."""
    text = text.replace("{,}", ",")
    found = []
    for match in NUMBER.finditer(text):
        written = match.group(0)
        value = float(written.replace(",", ""))
        start = match.start()
        if start and text[start - 1] in "-−" and (start < 2 or text[start - 2] in SIGN_CONTEXT):
            written, value = "-" + written, -value
        found.append((written, value))
    return found


def matches(written: str, value: float) -> bool:
    """Whether ``written`` is ``value`` rounded to the decimals written."""
    decimals = len(written.split(".")[1]) if "." in written else 0
    return abs(float(written.replace(",", "")) - value) <= 0.5 * 10**-decimals + 1e-9


MATH = re.compile(r"(?<![\\$])\$([^$]+)\$")
LATEX_TO_PYTHON = [
    (r"\{,\}", ""),
    (r"\\[,!;]", " "),
    (r"\\(cdot|times)", "*"),
    (r"\\bmod", "%"),
    (r"\\lfloor", "floor("),
    (r"\\rfloor", ")"),
    (r"\\lceil", "ceil("),
    (r"\\rceil", ")"),
    (r"\\sqrt\{([^{}]*)\}", r"sqrt(\1)"),
    (r"\\ln\s*([\d.]+)", r"log(\1)"),
    (r"\\max", "max"),
    (r"−", "-"),
    (r"\^", "**"),
    (r"\)\s*\(", ")*("),
    (r"([\d)])\s*(log|sqrt|floor|ceil)", r"\1*\2"),
]
ARITHMETIC = re.compile(r"[\d.+\-*/%(), ]|floor|ceil|sqrt|log|max")
FUNCTIONS = {"floor": math.floor, "ceil": math.ceil, "sqrt": math.sqrt, "log": math.log, "max": max}


def evaluate(latex: str) -> float | None:
    """The value of a purely numeric LaTeX expression, or None if it holds symbols or text."""
    python = latex
    for pattern, replacement in LATEX_TO_PYTHON:
        python = re.sub(pattern, replacement, python)
    if not python.strip() or ARITHMETIC.sub("", python).strip():
        return None
    return float(eval(python, {"__builtins__": {}}, FUNCTIONS))  # noqa: S307 - digits only


def wrong_equations(text: str) -> list[str]:
    """The chains ``a = b ≈ c`` inside $...$ of ``text`` whose numeric sides disagree.

    A side written as a plain number sets the tolerance: its last written digit, widened by
    0.1% when the other side holds rounded decimals (0.0481 standing for 0.048113...).
    """
    wrong = []
    for formula in MATH.findall(text):
        sides = [s for s in re.split(r"=|\\approx", formula.replace("\n", " "))]
        values = [(side.strip(), evaluate(side)) for side in sides]
        values = [(side, v) for side, v in values if v is not None]
        for (left, a), (right, b) in zip(values, values[1:]):
            written = right.replace("{,}", ",").replace("−", "-")
            plain = re.fullmatch(r"-?[\d,]+(\.\d+)?", written)
            loose = "." in left and 1e-3 * abs(b)
            if plain and not (matches(written, a) or abs(a - b) <= loose):
                wrong.append(formula)
            elif not plain and abs(a - b) > max(1e-9 * abs(b), loose or 0):
                wrong.append(formula)
    return wrong


def exercises(page: str) -> dict[str, dict]:
    """label -> {"question", "solution", "options", "order"} of the page's Exercises section."""
    _, section, _ = split_exercises(page)
    found = {}
    for order, match in enumerate(EXERCISE.finditer(section)):
        found[match.group(1)] = {"question": match.group(2), "order": order}
    for match in SOLUTION.finditer(section):
        label = match.group(2)
        assert label in found, f"book/{page}.md: a solution for the unknown exercise {label}"
        found[label]["options"] = match.group(3)
        found[label]["solution"] = match.group(4)
        found[label]["solution_at"] = match.start()
        found[label]["question_at"] = section.index(f":label: {label}\n")
    return found


# --- independent computations ------------------------------------------------------------------


def correlate(image, kernel) -> np.ndarray:
    """VALID, stride-1 cross-correlation of 2-D arrays (what Conv2D computes), by loops."""
    image, kernel = np.asarray(image, float), np.asarray(kernel, float)
    kh, kw = kernel.shape
    rows, cols = image.shape[0] - kh + 1, image.shape[1] - kw + 1
    return np.array(
        [[np.sum(image[i : i + kh, j : j + kw] * kernel) for j in range(cols)] for i in range(rows)]
    )


def valid_size(n: int, k: int, s: int = 1) -> int:
    return (n - k) // s + 1


def same_size(n: int, s: int = 1) -> int:
    return math.ceil(n / s)


def same_padding(n: int, k: int, s: int) -> tuple[int, int]:
    """TensorFlow's SAME zeros (before, after) along one axis."""
    total = max((same_size(n, s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def pool(x, k: int, s: int, padding: str, how) -> np.ndarray:
    """2-D pooling; SAME windows see only real cells (padding is NaN and ignored)."""
    x = np.asarray(x, float)
    if padding == "same":
        pads = [same_padding(n, k, s) for n in x.shape]
        x = np.pad(x, pads, constant_values=np.nan)
        size = [same_size(n - sum(p), s) for n, p in zip(x.shape, pads)]
    else:
        size = [valid_size(n, k, s) for n in x.shape]
    return np.array(
        [
            [how(x[i * s : i * s + k, j * s : j * s + k]) for j in range(size[1])]
            for i in range(size[0])
        ]
    )


def conv_transpose(x, kernel, s: int) -> np.ndarray:
    """Transposed convolution, VALID: each input cell stamps kernel * value at (i*s, j*s)."""
    x, kernel = np.atleast_2d(np.asarray(x, float)), np.atleast_2d(np.asarray(kernel, float))
    kh, kw = kernel.shape
    out = np.zeros(((x.shape[0] - 1) * s + kh, (x.shape[1] - 1) * s + kw))
    for i, j in np.ndindex(*x.shape):
        out[i * s : i * s + kh, j * s : j * s + kw] += x[i, j] * kernel
    return out


def conv_params(filters: int, k: int, c_in: int, bias: bool = True) -> int:
    return filters * (k * k * c_in + bias)


def dense_params(units: int, inputs: int) -> int:
    return units * (inputs + 1)


def glorot_limit(k: int, c_in: int, c_out: int) -> float:
    return math.sqrt(6 / (k * k * c_in + k * k * c_out))


def entropy(target) -> float:
    target = np.asarray(target, float)
    return float(-np.sum(target * np.log(target)))


def flat(*values) -> list[float]:
    """All the numbers in ``values`` (scalars and arrays), as one list."""
    return [float(v) for value in values for v in np.ravel(value)]


# --- the cases: per page, exercise number -> (numbers recomputed here, numbers the page gives) ---


def conv_by_hand() -> dict:
    image = np.arange(1, 10).reshape(3, 3)
    right_minus_left = correlate(image, [[-1, 1], [-1, 1]])
    bottom_minus_top = correlate(image, [[-1, -1], [1, 1]])
    second = np.arange(25, 50).reshape(5, 5)
    mean = np.full((2, 2), 0.25)
    first_out, second_out = (
        correlate(np.arange(25).reshape(5, 5), mean) + 3,
        correlate(second, mean) + 3,
    )
    assert np.all(second_out - first_out == 25)
    return {
        1: (flat(valid_size(28, 5), 5 * 5, valid_size(28, 5) ** 2 * 25), []),
        2: (
            flat(
                right_minus_left,
                bottom_minus_top,
                np.diff(image, axis=1)[0, 0],
                np.diff(image, axis=0)[0, 0],
            ),
            [],
        ),
        3: (
            flat(
                second[:2, :2],
                second[:2, :2].mean(),
                second_out[0, 0],
                25,
                mean.sum(),
                mean[0, 0],
                np.sum([-1, 1, -1, 1]),
            ),
            [],
        ),
        4: ([], [1, 2, 3, 4]),  # the page's asymmetric kernel [[1, 2], [3, 4]]
    }


def padding_and_stride() -> dict:
    before, after = same_padding(32, 5, 2)
    last_start = (same_size(32, 2) - 1) * 2
    span = 3 + (3 - 1) * (3 - 1)
    last = (valid_size(28, 3, 2) - 1) * 2
    return {
        1: (
            flat(
                (32 - 5) // 2,
                valid_size(32, 5, 2),
                same_size(32, 2),
                last_start,
                last_start + 5,
                before + after,
                before,
                after,
            ),
            [],
        ),
        2: (flat([0, 3, 6], span, valid_size(28, span), 3 * 3, span * span), [1]),
        3: (
            flat(
                valid_size(28, 3, 2),
                [0, 2, last],
                last + np.arange(3),
                27,
                28 - 3,
                (28 - 3) % 2,
                same_size(28, 2),
            ),
            [],
        ),
        4: ([], [1]),
    }


def many_filters() -> dict:
    image = np.arange(1, 10).reshape(3, 3)
    rgb = np.arange(1, 13).reshape(2, 2, 3)
    slices = np.stack([np.ones((2, 2)), np.zeros((2, 2)), -np.ones((2, 2))], axis=-1)
    red, blue = rgb[..., 0].sum(), rgb[..., 2].sum()
    out = float(np.sum(rgb * slices) + 0.5)
    rng = np.random.default_rng(0)
    grey, kernel = rng.normal(size=(4, 4)), rng.normal(size=(2, 2, 3))
    on_copies = sum(correlate(grey, kernel[:, :, c]) for c in range(3))
    assert np.allclose(on_copies, correlate(grey, kernel.sum(axis=2)))
    return {
        1: (flat([5, 5, 3, 16], 5 * 5 * 3 + 1, conv_params(16, 5, 3), valid_size(32, 5)), [1]),
        2: (
            flat(
                correlate(image, np.full((2, 2), 2)), correlate(image, np.full((2, 2), 11)), 1 + 10
            ),
            [10],
        ),
        3: (flat(red, 0, blue, -blue, out, rgb[..., 2] - rgb[..., 0], 4, blue - red), []),
        4: (flat(2, 1), []),  # the kernel's channel axis, and the one grey channel
    }


def pooling() -> dict:
    x49 = np.arange(49).reshape(7, 7)
    image = np.arange(1, 10).reshape(3, 3)
    zeros_counted = np.pad(image, ((0, 1), (0, 1))).reshape(2, 2, 2, 2).mean(axis=(1, 3))
    window = np.array([[-2, 2], [0, 0]])
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    assert relu(window.max()) == relu(window).max()
    unchanged = 0
    for row, col in np.ndindex(4, 3):
        before, after = np.zeros((4, 4)), np.zeros((4, 4))
        before[row, col], after[row, col + 1] = 1, 1
        unchanged += np.array_equal(
            pool(before, 2, 2, "valid", np.max), pool(after, 2, 2, "valid", np.max)
        )
    return {
        1: (flat(valid_size(7, 3, 2), [0, 2, 4], pool(x49, 3, 2, "valid", np.max), 3 - 1), [1]),
        2: (
            flat(
                same_size(3, 2),
                image,
                pool(image, 2, 2, "same", np.nanmean),
                zeros_counted.ravel()[1:],
                pool(image, 2, 2, "same", np.nanmax),
            ),
            [],
        ),
        3: (flat(relu(window).max(), relu(window.mean()), relu(window).mean(), window.size), []),
        4: (flat(unchanged, 12 - unchanged, 2, 3), []),
    }


def conv2d_layer() -> dict:
    sizes = [28]
    for _ in range(3):
        sizes += [valid_size(sizes[-1], 3), valid_size(valid_size(sizes[-1], 3), 2, 2)]
    channels = [75, 50, 25]
    convs = conv_params(75, 3, 1) + conv_params(50, 3, 75) + conv_params(25, 3, 50)
    dense1 = dense_params(512, sizes[-1] ** 2 * 25)
    total = convs + 4 * sum(channels) + dense1 + dense_params(25, 512)
    limit = glorot_limit(3, 32, 64)
    return {
        1: (
            flat(conv_params(64, 3, 32, bias=False), 4, 4 * 64, 2, 2 * 64, conv_params(64, 3, 32)),
            [],
        ),
        2: (
            flat(sizes, sizes[-1] ** 2 * 25, dense1, total, 25 + 1),
            [2, 75, 50, 512, 205_312, 264_562],
        ),
        3: (flat(9 * 32, 9 * 64, 9 * 32 + 9 * 64, limit, limit / math.sqrt(3)), [6]),
        4: (flat(3 * 3 * 1 * 4, 0.001 * 36 * 0.5**2), [0, 1, 2]),
    }


def transposed_convolution() -> dict:
    ones_3x3 = conv_transpose(np.ones((3, 3)), np.ones((3, 3)), 2)
    ones_4x4 = conv_transpose(np.ones((5, 5)), np.ones((4, 4)), 2)
    row = conv_transpose(np.ones((1, 3)), np.ones((1, 3)), 2)[0]
    back = correlate(np.arange(1, 10).reshape(3, 3), np.ones((2, 2)))
    stamped = conv_transpose(back, np.ones((2, 2)), 1)
    return {
        1: (
            flat(
                (7 - 1) * 2 + 3,
                7 * 2,
                3 // 2,
                7 * 2 - ((7 - 1) * 2 + 3 - 2 * (3 // 2)),
                valid_size(15, 3, 2),
                same_size(14, 2),
                max(3 - 2, 0),
            ),
            [0],
        ),
        2: (
            flat(
                conv_transpose([[2, 3]], [[1, 1, 1]], 1),
                conv_transpose([[2, 3]], [[1, 1, 1]], 2),
                [0, 1, 2, 3],
                4,
                5,
            ),
            [],
        ),
        3: (flat(stamped, stamped[1, 1], 9, 4), []),
        4: (
            flat(
                ones_3x3.shape[0],
                [0, 2, 4],
                row,
                np.unique(ones_3x3),
                4,
                ones_4x4[3, 3],
                ones_4x4[3, 3] ** 0.5,
            ),
            [],
        ),
    }


def feature_maps() -> dict:
    vertical = np.array([[1, 0, -1]] * 3)
    blur = np.full((3, 3), 1 / 9)
    patches = [np.array([[1, 1, 0]] * 3), np.array([[0, 1, 1]] * 3), np.ones((3, 3))]
    conv = valid_size(28, 3, 2)
    return {
        1: (flat(conv, valid_size(conv, 2, 2), same_size(conv, 2), [1, 5]), [14]),
        2: (
            flat(
                [correlate(p, vertical) for p in patches],
                [correlate(p, blur) for p in patches],
                patches[0].sum(),
                9,
                vertical.sum(),
                blur.sum(),
            ),
            [],
        ),
        3: (flat(conv_params(5, 3, 1), conv_params(4, 3, 1, bias=False)), [1]),
        4: (flat(0.01 * math.sqrt(9)), [2]),
    }


def mnist_cnn() -> dict:
    sizes = [valid_size(28, 3)]
    sizes += [same_size(sizes[0], 2), valid_size(same_size(sizes[0], 2), 3)]
    sizes += [same_size(sizes[-1], 2)]
    flat_size = sizes[-1] ** 2 * 64
    mults = [14 * 14 * 9 * c_in * c_out for c_in, c_out in ((32, 64), (64, 128))]
    dense = [dense_params(256, 7 * 7 * c) for c in (64, 128)]
    steps = math.ceil(60_000 / 128)
    warmup = 6 * steps // 10
    smoothed = [0.82] + [0.02] * 9
    return {
        1: (
            flat(
                sizes,
                flat_size,
                dense_params(256, flat_size),
                conv_params(32, 3, 1),
                conv_params(64, 3, 32),
            ),
            [28, 3, 32, 64, 256, 803_072],
        ),
        2: (
            flat(
                mults,
                mults[1] / mults[0],
                7 * 7 * 128,
                dense[1],
                round(dense[1] / dense[0], 4),
                round(dense[1] / dense[0]),
            ),
            [14, 9, 7, 256, 3136, 803_072],
        ),
        3: (
            flat(
                1 - 0.2 + 0.2 / 10, 0.2 / 10, 9, 10, entropy(smoothed), entropy([0.91] + [0.01] * 9)
            ),
            [1],
        ),
        4: (
            flat(
                60_000 / 128,
                steps,
                steps - 1,
                60_000 - (steps - 1) * 128,
                6 * steps,
                10,
                warmup,
                6 * steps - warmup,
            ),
            [0.003],
        ),
        5: ([], [1, 5000, 10_000]),
    }


def dense_vs_cnn() -> dict:
    inputs = 32 * 32 * 3
    net1 = [dense_params(500, inputs)] + [dense_params(500, 500)] * 3 + [dense_params(10, 500)]
    sizes = [32]
    for _ in range(2):
        sizes += [valid_size(sizes[-1], 2), valid_size(valid_size(sizes[-1], 2), 2, 2)]
    net2 = [conv_params(30, 2, 3), conv_params(30, 2, 30), dense_params(10, sizes[-1] ** 2 * 30)]
    mults = [28 * 28 * 9 * 1 * 16, 14 * 14 * 9 * 16 * 32, 7 * 7 * 9 * 32 * 64, 576 * 128, 128 * 10]
    p, n = 0.91, 10_000
    return {
        1: (
            flat(
                inputs,
                net1[0],
                3,
                net1[1],
                net1[-1],
                sum(net1),
                net2,
                sizes,
                sizes[-1] ** 2 * 30,
                sum(net2),
            ),
            [2, 30, 500],
        ),
        2: (flat(100 * 0.001 * 255, 100 * 0.001 * 1, 255), []),
        3: (
            flat(mults, 28, 14, 7, 9, 3 * 3 * 64, sum(mults), round(sum(mults) / 1e6, 1)),
            [1, 10, 16, 32, 64, 128],
        ),
        4: (flat(1 - p, math.sqrt(p * (1 - p) / n)), [1]),
    }


def tf1_to_tf2() -> dict:
    logits = np.array([-0.2, -0.1, -3.0])
    softmax = np.exp(logits) / np.exp(logits).sum()
    limit = glorot_limit(3, 32, 64)
    std = limit / math.sqrt(3)
    return {
        1: (flat(7 * 7 * 64, 7 * 7 * 32, 64 // 32, 100 * 64 // 32), []),
        2: (flat(0, 3.0 / 0.75, 0.25 * 0 + 0.75 * 3.0 / 0.75), [1]),
        3: (flat(np.argmax(logits), np.argmax(np.maximum(logits, 0)), softmax), []),
        4: (
            flat(
                math.sqrt(288),
                round(math.sqrt(288)),
                math.sqrt(288) ** 2,
                3 * 3 * 64,
                limit,
                std,
                math.sqrt(288) * std,
            ),
            [0, 6],
        ),
    }


CASES = {
    "conv-by-hand": conv_by_hand,
    "padding-and-stride": padding_and_stride,
    "many-filters": many_filters,
    "pooling": pooling,
    "conv2d-layer": conv2d_layer,
    "transposed-convolution": transposed_convolution,
    "feature-maps": feature_maps,
    "mnist-cnn": mnist_cnn,
    "dense-vs-cnn": dense_vs_cnn,
    "tf1-to-tf2": tf1_to_tf2,
}
ALL_CASES = [(page, n) for page, cases in CASES.items() for n in cases()]


# --- the tests ----------------------------------------------------------------------------------


def test_the_number_reader_reads_the_prose_as_written():
    text = "16 \\cdot 76 = 1{,}216; (28-3)/2 gives −3 or = -7.5, not Conv2D, k-1 or x16: 0.0833."
    assert [w for w, _ in numbers(text)] == [
        "16",
        "76",
        "1,216",
        "28",
        "3",
        "2",
        "-3",
        "-7.5",
        "1",
        "0.0833",
    ]
    assert matches("0.0833", 0.083333) and matches("17", 16.97) and matches("1,216", 1216)
    assert not matches("0.083", 0.0838) and not matches("14", 15)


@pytest.mark.parametrize("page", PAGES)
def test_each_page_ends_with_at_least_three_exercises_with_hidden_solutions(page):
    above, section, following = split_exercises(page)
    assert "\n## Summary\n" in above, f"book/{page}.md: the Exercises section comes after Summary"
    assert re.findall(r"^## .*", following, flags=re.M) in ([], ["## Try it"]), (
        f"book/{page}.md: only 'Try it' may follow the Exercises section"
    )
    found = exercises(page)
    assert len(found) >= 3, f"book/{page}.md has {len(found)} exercises; it needs at least 3"
    assert list(found) == [f"{page}-ex-{n}" for n in range(1, len(found) + 1)], list(found)
    for label, exercise in found.items():
        assert "solution" in exercise, f"book/{page}.md: exercise {label} has no solution"
        assert exercise["solution_at"] > exercise["question_at"], f"{label}: solution first"
        assert ":class: dropdown" in exercise["options"], f"{label}: the solution is not hidden"
        assert len(exercise["solution"].split()) >= 30, f"{label}: the answer does not explain"


@pytest.mark.parametrize("page", PAGES)
def test_every_exercise_has_a_case_and_each_page_has_numeric_ones(page):
    labels = set(exercises(page))
    cases = {f"{page}-ex-{n}" for n in CASES[page]()}
    assert labels == cases, f"book/{page}.md: exercises {labels ^ cases} lack a case or a page"
    numeric = [n for n, (computed, _) in CASES[page]().items() if computed]
    assert len(numeric) >= 2, f"book/{page}.md needs numeric exercises; cases {numeric}"


@pytest.mark.parametrize("page, n", ALL_CASES)
def test_every_number_of_a_solution_is_recomputed_given_or_in_its_question(page, n):
    computed, given = CASES[page]()[n]
    exercise = exercises(page)[f"{page}-ex-{n}"]
    written = numbers(exercise["solution"])
    in_question = {value for _, value in numbers(exercise["question"])}
    unexplained = [
        w
        for w, value in written
        if value not in in_question and not any(matches(w, v) for v in [*computed, *given])
    ]
    assert not unexplained, (
        f"{page}-ex-{n}: the solution writes numbers no case computes: {unexplained}"
    )
    missing = [v for v in computed if not any(matches(w, v) for w, _ in written)]
    assert not missing, f"{page}-ex-{n}: the solution does not state the recomputed {missing}"
    stated = {value for _, value in numbers(split_exercises(page)[0])} | in_question
    assert not set(given) - stated, f"{page}-ex-{n}: given {set(given) - stated} not on the page"


def test_a_wrong_number_in_a_solution_is_caught():
    computed = CASES["pooling"]()[2][0]
    wrong = numbers("counting the zeros would give 2.25, 3.5 and 2.25")
    assert [w for w, value in wrong if not any(matches(w, v) for v in computed)] == ["3.5"]


def test_the_arithmetic_check_reads_latex_and_catches_a_slip():
    good = r"$\lfloor (32 - 5)/2 \rfloor + 1 = 13 + 1 = 14$ and $\sqrt{288} \approx 16.97$ and"
    good += r" $-0.91 \ln 0.91 - 9 \cdot 0.01 \ln 0.01 \approx 0.5003$, $3 + (3 - 1)(3 - 1) = 7$"
    assert wrong_equations(good + r", $2{,}304 \cdot 256 + 256 = 590{,}080$, $n - k + 1$") == []
    assert wrong_equations(
        r"$\lceil 26/2 \rceil = 14$ and $\sqrt{288} \cdot 0.0481 \approx 0.8165$"
    ) == [r"\lceil 26/2 \rceil = 14"]


@pytest.mark.parametrize("page", PAGES)
def test_the_arithmetic_written_in_each_solution_holds(page):
    for label, exercise in exercises(page).items():
        wrong = wrong_equations(exercise["solution"])
        assert not wrong, f"{label}: these equations do not hold: {wrong}"


def contains_run(values: list[float], run: list[float]) -> bool:
    """Whether ``run`` appears in ``values`` as consecutive items (an array the case computed)."""
    return any(
        np.allclose(values[i : i + len(run)], run) for i in range(len(values) - len(run) + 1)
    )


@pytest.mark.parametrize("page, n", ALL_CASES)
def test_every_array_a_solution_writes_is_one_the_case_computes(page, n):
    computed, _ = CASES[page]()[n]
    exercise = exercises(page)[f"{page}-ex-{n}"]
    above = split_exercises(page)[0]
    for literal in re.findall(r"`(\[\[[^`]*\]\])`", exercise["solution"]):
        if literal in exercise["question"] or literal in above:
            continue  # restated from the question or the page
        run = [value for _, value in numbers(literal)]
        assert contains_run(computed, run), f"{page}-ex-{n}: {literal} is not a computed array"
