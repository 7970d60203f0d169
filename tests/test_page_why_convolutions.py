"""book/why-convolutions.md: parameter counts, locality, weight sharing, translation equivariance
and pooling's tolerance to small shifts, each recomputed here with numpy on the same MNIST
digits."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow
PAGE = "why-convolutions"
SOURCE = Path(__file__).resolve().parent.parent / "book" / f"{PAGE}.md"
EDGE = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], np.float64)


def conv_same(images: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Cross-correlation of (n, h, w) images with an odd k x k kernel, zero padding, stride 1."""
    k = kernel.shape[0]
    h, w = images.shape[1:]
    padded = np.pad(images, ((0, 0), (k // 2, k // 2), (k // 2, k // 2)))
    return sum(kernel[i, j] * padded[:, i : i + h, j : j + w] for i in range(k) for j in range(k))


def shift(images: np.ndarray, down: int, right: int) -> np.ndarray:
    moved = np.zeros_like(images)
    h, w = images.shape[1:3]
    moved[:, down:, right:] = images[:, : h - down, : w - right]
    return moved


def max_pool(maps: np.ndarray, size: int) -> np.ndarray:
    n, h, w = maps.shape
    h, w = h // size * size, w // size * size  # VALID: the incomplete windows are dropped
    blocks = maps[:, :h, :w].reshape(n, h // size, size, w // size, size)
    return blocks.max(axis=(2, 4))


def share_unchanged(before: np.ndarray, after: np.ndarray) -> float:
    counted = (before != 0) | (after != 0)
    return float(np.mean(before[counted] == after[counted]))


@pytest.fixture(scope="module")
def test_digits() -> tuple[np.ndarray, np.ndarray]:
    from cnnbook.data import load_mnist

    _, (x_test, y_test) = load_mnist()
    return x_test.astype(np.float64), y_test


def test_parameter_counts(glued):
    assert glued["dense_one_map_params"] == 784 * 784 + 784 == 615_440
    assert glued["conv_one_map_params"] == 3 * 3 + 1 == 10
    assert glued["dense_32_maps_params"] == 784 * (784 * 32) + 784 * 32 == 19_694_080
    assert glued["conv_32_maps_params"] == 3 * 3 * 32 + 32 == 320
    assert glued["params_ratio_32"] == pytest.approx(19_694_080 / 320)
    assert round(glued["dense_32_maps_megabytes"]) == round(19_694_080 * 4 / 1e6) == 79


def test_locality(glued, test_digits):
    digits, labels = test_digits
    assert glued["digit_label"] == labels[0] == 7
    kernel = np.random.default_rng(0).uniform(-1, 1, (3, 3))
    nudged = digits[:1].copy()
    nudged[0, 14, 14] += 100
    changed = np.count_nonzero(conv_same(nudged, kernel) - conv_same(digits[:1], kernel))
    assert glued["conv_changed"] == changed == 9
    assert glued["dense_changed"] == 784


def convolution_matrix(kernel: np.ndarray, size: int = 28) -> np.ndarray:
    """The (size², size²) matrix M with M @ image.ravel() == conv_same(image).ravel()."""
    basis = np.eye(size * size).reshape(size * size, size, size)
    return conv_same(basis, kernel).reshape(size * size, size * size).T


def test_weight_sharing(glued):
    matrix = convolution_matrix(np.random.default_rng(1).uniform(0.1, 1, (3, 3)))
    # each output row's window covers 2 image rows at the border, 3 elsewhere: (2+3*26+2)^2
    assert np.count_nonzero(matrix) == (2 + 3 * 26 + 2) ** 2 == 6_724
    assert glued["matrix_nonzero"] == 6_724
    assert glued["matrix_nonzero_share"] == pytest.approx(6_724 / 784**2)
    assert f"Of the {784**2:,} entries" in SOURCE.read_text(encoding="utf-8")
    assert glued["matrix_distinct"] == len(np.unique(matrix[matrix != 0])) == 9
    assert glued["matrix_is_conv"] is True


def test_translation_equivariance(glued, test_digits):
    x = test_digits[0][:1]
    of_shifted, shifted = conv_same(shift(x, 2, 3), EDGE), shift(conv_same(x, EDGE), 2, 3)
    np.testing.assert_array_equal(of_shifted[:, 2:27, 3:27], shifted[:, 2:27, 3:27])
    differ = np.argwhere(of_shifted != shifted)[:, 1:3].tolist()
    assert glued["equivariant_inside"] is True
    assert glued["equivariance_differ"] == differ
    assert glued["equivariance_differ_count"] == len(differ) > 0
    # the page says: all on the bottom row
    assert all(row == 27 for row, _ in differ), differ


def test_dense_layer_is_not_equivariant(glued):
    # differences as large as the outputs themselves, not rounding errors
    assert glued["dense_gap"] > 0.5 * glued["dense_scale"] > 10


def test_pooling_tolerance(glued, test_digits):
    digits = test_digits[0][:1000]
    before = np.maximum(conv_same(digits, EDGE), 0)
    after = np.maximum(conv_same(shift(digits, 0, 1), EDGE), 0)
    expected = {"no pooling": share_unchanged(before, after)}
    for size in (2, 4, 7):
        expected[f"{size}x{size} max pooling"] = share_unchanged(
            max_pool(before, size), max_pool(after, size)
        )
    expected["global max pooling"] = share_unchanged(
        before.max(axis=(1, 2)), after.max(axis=(1, 2))
    )
    assert glued["unchanged"].keys() == expected.keys()
    for name, share in expected.items():
        assert glued["unchanged"][name] == pytest.approx(share, abs=1e-12), name
    shares = list(expected.values())
    assert shares == sorted(shares), "the share must grow with the pooling window"
    assert shares[0] < 0.01 and 0.15 < shares[1] < 0.5 and shares[-1] == 1.0
    for short, name in [("none", "no pooling"), ("2", "2x2 max pooling"), ("4", "4x4 max pooling")]:
        assert glued[f"unchanged_{short}"] == glued["unchanged"][name]


def solution(label: str) -> str:
    """The text of the page's solution block for exercise ``label``."""
    text = SOURCE.read_text(encoding="utf-8")
    found = re.search(rf"````{{solution}} {label}\n(.*?)\n````", text, flags=re.S)
    assert found, f"book/{PAGE}.md has no solution for {label}"
    return found.group(1)


def test_exercise_answers():
    text = SOURCE.read_text(encoding="utf-8")
    assert len(re.findall(r"```\{exercise\}", text)) >= 3
    conv, dense = 5 * 5 * 3 * 16 + 16, (32 * 32 * 3) * (32 * 32 * 16) + 32 * 32 * 16
    one = solution("why-convolutions-ex-1")
    assert f"**{conv:,}**" in one and f"**{dense:,}**" in one
    assert dense // conv // 1000 == 41 and "41,000" in one
    kernel = np.random.default_rng(2).uniform(0.1, 1, (5, 5))
    image = np.zeros((1, 28, 28))
    middle, corner = image.copy(), image.copy()
    middle[0, 14, 14], corner[0, 0, 0] = 1, 1
    two = solution("why-convolutions-ex-2")
    assert f"**{np.count_nonzero(conv_same(middle, kernel))}**" in two  # 25
    assert f"**{np.count_nonzero(conv_same(corner, kernel))}**" in two  # 9
    assert f"**{np.count_nonzero(convolution_matrix(kernel)):,}**" in two  # 17,956


def test_page_shows_the_numbers_and_figures(book, glued):
    html = (book.html / "book" / f"{PAGE}.html").read_text()
    assert "615,440" in html and "19,694,080" in html
    assert f"{glued['unchanged_2']:.1%}" in html
    alts = re.findall(r'<img alt="([^"]+)"', html)
    for start in ("An 84 by 84 corner", "Five panels", "A bar chart"):
        assert any(a.startswith(start) for a in alts), (start, alts)
    # sphinx-exercise: one admonition per exercise, its solution a dropdown closed by default
    exercises = re.findall(r'id="(why-convolutions-ex-\d+)"', html)
    assert len(exercises) >= 3 and html.count('class="exercise admonition"') == len(exercises)
    assert html.count("solution dropdown") == len(exercises)
