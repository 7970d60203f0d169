"""book/how-a-network-learns.md: softmax, cross-entropy, a gradient step, batches and epochs, and a
convolution kernel learned by gradient descent, each recomputed here with numpy (float64)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow
PAGE = "how-a-network-learns"
SOURCE = Path(__file__).resolve().parent.parent / "book" / f"{PAGE}.md"
LOGITS = np.array([2.0, 1.0, 0.1])
TRUE_KERNEL = np.array([[1.0, 0.0], [0.0, -1.0]])  # the edge filter of book/conv-by-hand.md
SEED = 1234


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_softmax(glued):
    np.testing.assert_allclose(glued["softmax_exps"], np.exp(LOGITS), rtol=1e-12)
    assert glued["softmax_sum"] == pytest.approx(np.exp(LOGITS).sum(), rel=1e-12)
    np.testing.assert_allclose(glued["softmax_p"], softmax(LOGITS), rtol=1e-12)
    assert [round(glued[f"softmax_p{i}"], 3) for i in range(3)] == [0.659, 0.242, 0.099]
    # the constants the prose gives for checking by hand
    text = SOURCE.read_text(encoding="utf-8")
    for value in [*np.exp(LOGITS), math.log(3)]:
        assert f"≈ {value:.3f}" in text or f"≈ {value:.4f}" in text, value


def test_cross_entropy_and_its_gradient(glued):
    p = softmax(LOGITS)
    assert glued["loss_class_0"] == pytest.approx(-math.log(p[0]), rel=1e-12)
    assert glued["loss_class_2"] == pytest.approx(-math.log(p[2]), rel=1e-12)
    assert round(glued["loss_class_0"], 3) == 0.417 and round(glued["loss_class_2"], 3) == 2.317
    assert glued["keras_loss_class_0"] == pytest.approx(glued["loss_class_0"], abs=1e-6)
    assert glued["keras_loss_class_2"] == pytest.approx(glued["loss_class_2"], abs=1e-6)
    np.testing.assert_allclose(glued["logit_gradient"], p - [1, 0, 0], atol=1e-6)


def test_one_gradient_step(glued):
    x, p = np.array([1.0, 2.0]), np.full(3, 1 / 3)
    grad_z = p - [1, 0, 0]
    assert glued["step_loss_before"] == pytest.approx(math.log(3), abs=1e-6)
    np.testing.assert_allclose(glued["step_grad_W"], np.outer(x, grad_z), atol=1e-6)
    np.testing.assert_allclose(glued["step_grad_b"], grad_z, atol=1e-6)
    w_after, b_after = -0.1 * np.outer(x, grad_z), -0.1 * grad_z
    np.testing.assert_allclose(glued["step_W_after"], w_after, atol=1e-6)
    logits = x @ w_after + b_after
    np.testing.assert_allclose(logits, [0.4, -0.2, -0.2], atol=1e-12)  # as the page works it out
    np.testing.assert_allclose(glued["step_logits_after"], logits, atol=1e-6)
    assert glued["step_loss_after"] == pytest.approx(-math.log(softmax(logits)[0]), abs=1e-6)


def test_batches_and_epochs(glued):
    x = np.array([[1, 2], [2, 1], [-1, 1], [-2, 0], [0, -2], [1, -1]], dtype=np.float64)
    y = np.eye(3)[[0, 0, 1, 1, 2, 2]]
    w, b, losses = np.zeros((2, 3)), np.zeros(3), []
    for _ in range(20):
        batch_losses = []
        for start in range(0, 6, 2):
            xb, yb = x[start : start + 2], y[start : start + 2]
            p = softmax(xb @ w + b)
            batch_losses.append(float(np.mean(-np.log((p * yb).sum(axis=1)))))
            grad_z = (p - yb) / len(xb)
            w, b = w - 0.1 * xb.T @ grad_z, b - 0.1 * grad_z.sum(axis=0)
        losses.append(np.mean(batch_losses))
    np.testing.assert_allclose(glued["six_epoch_losses"], losses, rtol=1e-5)
    assert glued["six_first_epoch_loss"] == glued["six_epoch_losses"][0]
    assert glued["six_last_epoch_loss"] == glued["six_epoch_losses"][-1] < 0.2
    assert glued["six_correct"] == int(np.sum(np.argmax(x @ w + b, axis=1) == y.argmax(axis=1)))
    assert glued["six_correct"] == 6
    assert glued["steps_per_epoch_mnist"] == math.ceil(60_000 / 128) == 469


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    from cnnbook.data import load_mnist

    (x_train, _), _ = load_mnist()
    return x_train[:512].astype(np.float64) / 255.0


def conv2x2(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """VALID cross-correlation of (n, 28, 28) images with a 2x2 kernel."""
    return (
        k[0, 0] * x[:, :-1, :-1]
        + k[0, 1] * x[:, :-1, 1:]
        + k[1, 0] * x[:, 1:, :-1]
        + k[1, 1] * x[:, 1:, 1:]
    )


def gradient_descent(x, learning_rate, epochs, batch=64):
    """The page's loop in numpy: zero start, the same shuffles (numpy's generator, seed SEED)."""
    y, k, rng, history = conv2x2(x, TRUE_KERNEL), np.zeros((2, 2)), np.random.default_rng(SEED), []
    for _ in range(epochs):
        order, losses = rng.permutation(len(x)), []
        for start in range(0, len(x), batch):
            xb = x[order[start : start + batch]]
            residual = conv2x2(xb, k) - y[order[start : start + batch]]
            losses.append(np.mean(residual**2))
            windows = [xb[:, :-1, :-1], xb[:, :-1, 1:], xb[:, 1:, :-1], xb[:, 1:, 1:]]
            gradient = np.array([np.mean(2 * residual * w) for w in windows]).reshape(2, 2)
            k = k - learning_rate * gradient
        history.append(np.mean(losses))
    return k, history


def test_kernel_is_recovered(glued, digits):
    assert (glued["kernel_epochs"], glued["kernel_batch"], glued["kernel_learning_rate"]) == (
        20,
        64,
        1.0,
    )
    learned = np.array(glued["kernel_learned"])
    assert np.abs(learned - TRUE_KERNEL).max() < 1e-3
    assert glued["kernel_largest_error"] == pytest.approx(np.abs(learned - TRUE_KERNEL).max())
    kernel, history = gradient_descent(digits, 1.0, 20)
    np.testing.assert_allclose(learned, kernel, atol=1e-5)
    curve = np.array(glued["kernel_losses"])
    assert len(curve) == 20 and np.all(np.diff(curve) < 0), "the loss must fall every epoch"
    assert glued["kernel_first_loss"] == curve[0]
    large = np.array(history) > 1e-7  # below that, float32 rounding in TensorFlow dominates
    np.testing.assert_allclose(curve[large], np.array(history)[large], rtol=1e-3)
    final = np.mean((conv2x2(digits, learned) - conv2x2(digits, TRUE_KERNEL)) ** 2)
    assert glued["kernel_final_loss"] == pytest.approx(final, rel=0.05, abs=1e-10)
    assert glued["kernel_seconds"] > 0


def solution(label: str) -> str:
    text = SOURCE.read_text(encoding="utf-8")
    found = re.search(rf"````{{solution}} {label}\n(.*?)\n````", text, flags=re.S)
    assert found, f"book/{PAGE}.md has no solution for {label}"
    return " ".join(found.group(1).split())


def test_exercise_answers(digits):
    assert len(re.findall(r"```\{exercise\}", SOURCE.read_text(encoding="utf-8"))) >= 3
    one = solution("how-a-network-learns-ex-1")
    assert softmax(np.full(4, 3.0)).tolist() == [0.25] * 4 == softmax(np.zeros(4)).tolist()
    assert "**0.25**" in one and f"**{-math.log(0.25):.4f}**" in one  # 1.3863
    two = solution("how-a-network-learns-ex-2")
    gradient = np.array([0.7, 0.2, 0.1]) - [0, 1, 0]
    assert f"**{-math.log(0.2):.4f}**" in two  # 1.6094
    assert "**({}, −{}, {})**".format(*np.abs(gradient).round(1)) in two
    three = solution("how-a-network-learns-ex-3")
    steps, last = math.ceil(60_000 / 128), 60_000 - 128 * (60_000 // 128)
    assert (steps, last) == (469, 96) and f"**{last}**" in three
    assert f"**{4 * steps:,}**" in three and f"**{4 * 60_000 // 32:,}**" in three
    four = solution("how-a-network-learns-ex-4")
    _, history = gradient_descent(digits, 3.0, 8)
    growth = np.array(history[1:]) / history[:-1]
    assert growth[0] < 1 < growth[1] < 100 and np.all(growth[2:] > 100), growth
    assert "**a hundredfold**" in four
    windows = np.stack(
        [digits[:, :-1, :-1], digits[:, :-1, 1:], digits[:, 1:, :-1], digits[:, 1:, 1:]], -1
    ).reshape(-1, 4)
    largest = np.linalg.eigvalsh(2 * windows.T @ windows / len(windows)).max()
    assert f"about {largest:.2f}" in four and f"**{2 / largest:.2f}**" in four
    assert f"1 − 3.0 · {largest:.2f} ≈ −{3 * largest - 1:.2f}" in four
    # the steepest direction is close to "all four weights alike"
    assert np.abs(np.linalg.eigh(windows.T @ windows)[1][:, -1]).min() > 0.45


def test_page_shows_the_numbers_and_figure(book, glued):
    html = (book.html / "book" / f"{PAGE}.html").read_text()
    assert f"{glued['kernel_largest_error']:.1e}" in html
    assert f"{glued['step_loss_after']:.4f}" in html and "469" in html
    alts = re.findall(r'<img alt="([^"]+)"', html)
    assert any(a.startswith("Left, the training loss per epoch") for a in alts), alts
    exercises = re.findall(r'id="(how-a-network-learns-ex-\d+)"', html)
    assert len(exercises) >= 3 and html.count("solution dropdown") == len(exercises)
