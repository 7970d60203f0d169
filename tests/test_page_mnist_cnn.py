"""book/mnist-cnn.md: seed 001's CNN ported to Keras 3 and an improved CNN, trained on real
MNIST."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow

PAGE = "mnist-cnn"

# Seed 001's network: conv 3x3x1x32, conv 3x3x32x64, dense 3136-256, 256-256, 256-10.
EXPECTED_PARAMS = {
    "params_conv1": 3 * 3 * 1 * 32 + 32,
    "params_conv2": 3 * 3 * 32 * 64 + 64,
    "params_dense1": 7 * 7 * 64 * 256 + 256,
    "params_dense2": 256 * 256 + 256,
    "params_logits": 256 * 10 + 10,
}


def test_parameter_counts(glued):
    assert EXPECTED_PARAMS == {
        "params_conv1": 320,
        "params_conv2": 18_496,
        "params_dense1": 803_072,
        "params_dense2": 65_792,
        "params_logits": 2_570,
    }
    for name, count in EXPECTED_PARAMS.items():
        assert glued[name] == count, name
    assert glued["params_total"] == 890_250 == sum(EXPECTED_PARAMS.values())


def test_parameter_counts_match_keras_directly():
    """Independent check: Keras builds the same network with the same counts."""
    keras = pytest.importorskip("keras")
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            L.Conv2D(32, 3, padding="same", activation="relu"),
            L.MaxPooling2D(2, padding="same"),
            L.Conv2D(64, 3, padding="same", activation="relu"),
            L.MaxPooling2D(2, padding="same"),
            L.Flatten(),
            L.Dense(256, activation="relu"),
            L.Dropout(0.25),
            L.Dense(256, activation="relu"),
            L.Dropout(0.25),
            L.Dense(10),
        ]
    )
    counts = [layer.count_params() for layer in model.layers if layer.count_params()]
    assert counts == list(EXPECTED_PARAMS.values())
    assert model.count_params() == 890_250


def test_port_reaches_990(glued):
    assert glued["port_accuracy"] >= 0.990, f"the port reached only {glued['port_accuracy']:.4f}"
    assert glued["port_epochs"] == 4


def test_improved_reaches_993(glued):
    assert glued["improved_accuracy"] >= 0.993, (
        f"the improved network reached only {glued['improved_accuracy']:.4f}"
    )
    assert glued["improved_accuracy"] > glued["port_accuracy"]


@pytest.mark.parametrize("model", ["port", "improved"])
def test_misclassified_count_matches_accuracy(glued, model):
    errors = glued[f"{model}_errors"]
    assert errors == round((1 - glued[f"{model}_accuracy"]) * 10_000)
    matrix = np.array(glued[f"{model}_confusion"])
    assert matrix.shape == (10, 10)
    assert matrix.sum() - np.trace(matrix) == errors
    # Each row counts the test images of one digit: MNIST's test set has these many per digit.
    np.testing.assert_array_equal(
        matrix.sum(axis=1), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    )


def test_training_budget_is_reported(glued):
    for model in ("port", "improved"):
        assert glued[f"{model}_seconds"] > 0
        curve = glued[f"{model}_loss_curve"]
        assert len(curve) == glued[f"{model}_epochs"]
        assert curve[-1] < curve[0], f"the {model}'s training loss did not fall"


def test_page_shows_the_numbers(book, glued):
    # The built web page, not book.text(): on a warm rebuild the executed notebooks that
    # jupyter-cache serves are written to jupyter_execute/ without their outputs.
    text = (book.html / "book" / f"{PAGE}.html").read_text()
    assert "890,250" in text
    assert f"{glued['port_accuracy']:.4f}" in text
    assert f"{glued['improved_accuracy']:.4f}" in text
    assert "0.9851" in text  # seed 001's reported accuracy, in the summary table


def conv_multiplications(size, filters_in, filters_out, kernel=3):
    """Multiplications of one SAME convolution on a size x size map, per image."""
    return size * size * kernel * kernel * filters_in * filters_out


def test_improved_network_is_the_cheaper_shape_the_page_describes(book, glued):
    # Three conv (no bias) + batch-norm blocks of 16, 32, 64 filters, one dense (no bias) + BN of
    # 128.
    blocks = (3 * 3 * 1 * 16 + 4 * 16) + (3 * 3 * 16 * 32 + 4 * 32) + (3 * 3 * 32 * 64 + 4 * 64)
    assert (
        glued["improved_params_total"]
        == blocks + (3 * 3 * 64 * 128 + 4 * 128) + (128 * 10 + 10)
        == 99_162
    )
    improved = (
        conv_multiplications(28, 1, 16)
        + conv_multiplications(14, 16, 32)
        + conv_multiplications(7, 32, 64)
        + 3 * 3 * 64 * 128
        + 128 * 10
    )
    port = (
        conv_multiplications(28, 1, 32)
        + conv_multiplications(14, 32, 64)
        + 7 * 7 * 64 * 256
        + 256 * 256
        + 256 * 10
    )
    assert conv_multiplications(14, 16, 32) == conv_multiplications(7, 32, 64) == 903_168
    assert round(improved / 1e6, 1) == 2.0 and round(port / 1e6, 1) == 4.7
    assert round(conv_multiplications(14, 32, 64) / 1e6, 1) == 3.6
    text = (book.html / "book" / f"{PAGE}.html").read_text()
    assert (
        "903" in text and "2.0 million" in text and "4.7 million" in text and "3.6 million" in text
    )
