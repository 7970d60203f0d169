"""book/receptive-field.md: the receptive field through seed 001's network, recomputed with numpy
(the formula, and the support of a gradient propagated back as boolean masks), and the
exercises' answers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

PAGE = "receptive-field"
SOURCE = Path(__file__).resolve().parent.parent / "book" / f"{PAGE}.md"

# Seed 001's network up to its last pooling: (name, window k, stride s, SAME top padding p).
# A 3x3 SAME convolution pads 1 row on top; a 2x2 stride-2 pooling of an even size pads nothing.
SEED_001 = [("conv1", 3, 1, 1), ("pool1", 2, 2, 0), ("conv2", 3, 1, 1), ("pool2", 2, 2, 0)]
SIZES = {"input": 28, "conv1": 28, "pool1": 14, "conv2": 14, "pool2": 7}


def fields(stack):
    """[(k, s, jump, field)] after each (k, s) of `stack`, by r += (k - 1) j, j *= s."""
    r, j, rows = 1, 1, []
    for k, s in stack:
        r, j = r + (k - 1) * j, j * s
        rows.append((k, s, j, r))
    return rows


def support(unit_row, unit_col, layer="pool2"):
    """Input pixels that can reach a unit of `layer`: a boolean mask carried back layer by layer,
    each output unit marking the k x k input units it reads (clipped to the image)."""
    names = ["input"] + [name for name, *_ in SEED_001]
    stack = SEED_001[: names.index(layer)]
    mask = np.zeros((SIZES[layer], SIZES[layer]), bool)
    mask[unit_row, unit_col] = True
    for (name, k, s, p), below in zip(reversed(stack), reversed(names[: len(stack)])):
        size = SIZES[below]
        reached = np.zeros((size, size), bool)
        for i, j in zip(*np.nonzero(mask)):
            rows = slice(max(i * s - p, 0), max(i * s - p + k, 0))
            cols = slice(max(j * s - p, 0), max(j * s - p + k, 0))
            reached[rows, cols] = True
        mask = reached
    return mask


def test_table_follows_the_formula(glued):
    expected = fields([(k, s) for _, k, s, _ in SEED_001])
    assert [tuple(row[2:]) for row in glued["rf_table"][1:]] == expected
    assert [row[0] for row in glued["rf_table"]] == ["input", "conv1", "pool1", "conv2", "pool2"]
    assert [row[1] for row in glued["rf_table"]] == [28, 28, 14, 14, 7]
    assert [r for *_, r in expected] == [3, 4, 8, 10]
    for (name, *_), (_, _, j, r) in zip(SEED_001, expected):
        assert glued[f"rf_{name}"] == r and glued[f"jump_{name}"] == j, name


def test_middle_units_fields(glued):
    for name, _, _, _ in SEED_001:
        middle = SIZES[name] // 2
        rows = np.flatnonzero(support(middle, middle, name).any(axis=1))
        assert glued["middle_fields"][name] == [rows.min(), rows.max()], name
    assert glued["middle_fields"]["pool2"] == [9, 18]
    assert (glued["middle_lo"], glued["middle_hi"]) == (9, 18)


def test_linear_gradient_is_nonzero_exactly_on_the_field(glued):
    field = support(3, 3)
    assert field.sum() == 100 == glued["linear_nonzero"]
    np.testing.assert_array_equal(np.array(glued["linear_support"], bool), field)
    assert glued["linear_support_is_field"] is True


def test_corner_unit_field_is_clipped(glued):
    assert (glued["corner_lo"], glued["corner_hi"]) == (-3, 6)
    assert glued["corner_nonzero"] == support(0, 0).sum() == 49
    assert glued["corner_support_is_field"] is True


def test_seed_001_network_uses_the_field_and_nothing_else(glued):
    assert glued["noise_images"] == 200
    assert glued["port_outside"] == 0
    # one conv2 unit's 8x8 field per image; the union over the images is the whole 10x10 field
    assert glued["port_per_image_min"] == glued["port_per_image_max"] == 8 * 8
    assert glued["port_union"] == support(3, 3).sum() == 100


def full_convolution(a, b):
    c = np.zeros((a.shape[0] + b.shape[0] - 1, a.shape[1] + b.shape[1] - 1))
    for p in range(a.shape[0]):
        for q in range(a.shape[1]):
            c[p : p + b.shape[0], q : q + b.shape[1]] += a[p, q] * b
    return c


def valid_correlation(x, kernel):
    k = kernel.shape[0]
    n = x.shape[0] - k + 1
    return np.array(
        [[np.sum(x[i : i + k, j : j + k] * kernel) for j in range(n)] for i in range(n)]
    )


def test_two_3x3_are_one_5x5(glued):
    rng = np.random.default_rng(5)
    a, b, x = rng.normal(size=(3, 3)), rng.normal(size=(3, 3)), rng.normal(size=(9, 9))
    twice = valid_correlation(valid_correlation(x, a), b)
    np.testing.assert_allclose(twice, valid_correlation(x, full_convolution(a, b)), atol=1e-12)
    assert glued["stack_shape"] == [5, 5]
    assert 0 <= glued["stack_difference"] < 1e-12


def test_weight_table_in_the_prose():
    text = SOURCE.read_text()
    for row in (
        f"| two 3×3 | {fields([(3, 1)] * 2)[-1][3]} | 2 · 9 = {2 * 9} | 18 · 64 · 64 = "
        f"{18 * 64 * 64:,} |",
        f"| one 5×5 | 5 | 25 | 25 · 64 · 64 = {25 * 64 * 64:,} |",
        f"| three 3×3 | {fields([(3, 1)] * 3)[-1][3]} | 3 · 9 = 27 | 27 · 64 · 64 = "
        f"{27 * 64 * 64:,} |",
        f"| one 7×7 | 7 | 49 | 49 · 64 · 64 = {49 * 64 * 64:,} |",
    ):
        assert row in text, row


def solution(number):
    text = SOURCE.read_text()
    match = re.search(rf"````{{solution}} {PAGE}-ex-{number}\n(.*?)````", text, re.S)
    assert match, f"no solution {number}"
    return " ".join(match.group(1).split())


def test_exercise_answers():
    three_blocks = fields([(3, 1), (2, 2)] * 3)
    assert three_blocks[-1][2:] == (8, 22)
    assert "pool3: $r = 18 + 1 \\cdot 4 = 22$, $j = 8$" in solution(1)
    assert "sees 22×22 pixels" in solution(1)

    assert fields([(3, 1)] * 3)[-1][3] == 7
    assert f"{3 * 3 * 3 * 64 * 64:,}".replace(",", "{,}") in solution(2)
    assert f"{7 * 7 * 64 * 64:,}".replace(",", "{,}") in solution(2)
    assert round(3 * 9 / 49 * 100) == 55 and "55%" in solution(2)

    assert fields([(3, 1), (5, 1), (9, 1)])[-1][3] == 15
    assert "= 15$" in solution(3)

    bottom = support(6, 6)
    rows = np.flatnonzero(bottom.any(axis=1))
    assert (rows.min(), rows.max(), len(rows)) == (21, 27, 7)
    assert "reads image rows 21 to 30" in solution(4) and "7 of the 10 rows" in solution(4)


def test_page_has_two_figures_with_alt_text(book):
    html = (book.html / "book" / f"{PAGE}.html").read_text()
    shown = re.findall(r'<img alt="([^"]+)"[^>]*src="[^"]+\.png"', html)
    assert any(a.startswith("A handwritten 7") for a in shown), shown
    assert any(a.startswith("Three 28 by 28 maps") for a in shown), shown
    assert html.count('class="solution') >= 5 or html.count("solution") >= 5
