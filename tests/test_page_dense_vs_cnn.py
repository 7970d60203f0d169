"""book/dense-vs-cnn.md: seed 002's dense net1 and convolutional net2 on Fashion-MNIST, and a better
CNN."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow

PAGE = "dense-vs-cnn"


def test_parameter_counts_as_in_seed(glued):
    assert (
        glued["net1_params"] == 1_149_010 == 784 * 500 + 500 + 3 * (500 * 500 + 500) + 500 * 10 + 10
    )
    assert (
        glued["net2_params"]
        == 14_590
        == (2 * 2 * 1 * 30 + 30) + (2 * 2 * 30 * 30 + 30) + (1080 * 10 + 10)
    )


def test_parameter_ratio(glued):
    np.testing.assert_allclose(glued["param_ratio"], 14590 / 1149010, rtol=1e-12)
    np.testing.assert_allclose(
        glued["param_ratio"], 0.0127, atol=5e-5
    )  # the seed prints 0.012697887746842934


def test_layer_by_layer_shapes(glued):
    assert glued["net2_shapes"] == [
        [28, 28, 1],
        [27, 27, 30],
        [13, 13, 30],
        [12, 12, 30],
        [6, 6, 30],
        [1080],
        [10],
    ]


def test_shapes_directly_in_tensorflow():
    """Independent check: the same layers on a small batch give the seed's shapes."""
    keras = pytest.importorskip("keras")
    L = keras.layers
    x = np.zeros((2, 28, 28, 1), dtype="float32")
    shapes = []
    for layer in (
        L.Conv2D(30, (2, 2)),
        L.MaxPool2D(),
        L.Conv2D(30, (2, 2)),
        L.MaxPool2D(),
        L.Flatten(),
        L.Dense(10),
    ):
        x = layer(x)
        shapes.append(tuple(x.shape))
    assert shapes == [
        (2, 27, 27, 30),
        (2, 13, 13, 30),
        (2, 12, 12, 30),
        (2, 6, 6, 30),
        (2, 1080),
        (2, 10),
    ]


def test_accuracies(glued):
    assert glued["net1_accuracy"] >= 0.80, glued["net1_accuracy"]
    assert glued["net2_accuracy"] >= 0.85, glued["net2_accuracy"]
    # net2 on scaled pixels trains for one epoch; the page compares it with net2's own first epoch.
    assert glued["net2_scaled_accuracy"] >= 0.85, glued["net2_scaled_accuracy"]
    assert glued["net2_scaled_accuracy"] > glued["net2_epoch1_accuracy"], (
        glued["net2_scaled_accuracy"],
        glued["net2_epoch1_accuracy"],
    )
    assert 0.5 < glued["net2_epoch1_accuracy"] <= glued["net2_accuracy"] + 0.02
    assert glued["improved_accuracy"] >= 0.91, glued["improved_accuracy"]
    assert glued["improved_errors"] == round((1 - glued["improved_accuracy"]) * 10_000)


def test_page_shows_the_numbers(book, glued):
    # The built web page, not book.text(): on a warm rebuild the executed notebooks that
    # jupyter-cache serves are written to jupyter_execute/ without their outputs.
    text = (book.html / "book" / f"{PAGE}.html").read_text()
    for shape in (
        "(8, 27, 27, 30)",
        "(8, 13, 13, 30)",
        "(8, 12, 12, 30)",
        "(8, 6, 6, 30)",
        "(8, 1080)",
        "(8, 10)",
    ):
        assert shape in text
    assert "1,149,010" in text and "14,590" in text
    assert "0.0127" in text
    assert f"{glued['net2_accuracy']:.4f}" in text and f"{glued['improved_accuracy']:.4f}" in text
    assert (
        f"{glued['net2_epoch1_accuracy']:.4f}" in text
        and f"{glued['net2_scaled_accuracy']:.4f}" in text
    )


def test_improved_network_is_the_three_block_cnn_the_page_describes(book, glued):
    # Three conv (no bias) + batch-norm blocks of 16, 32, 64 filters, then dense 128 and dense 10.
    blocks = (3 * 3 * 1 * 16 + 4 * 16) + (3 * 3 * 16 * 32 + 4 * 32) + (3 * 3 * 32 * 64 + 4 * 64)
    assert glued["improved_params"] == blocks + (3 * 3 * 64 * 128 + 128) + (128 * 10 + 10) == 98_778
    three_blocks = (
        28 * 28 * 9 * 16 + 14 * 14 * 9 * 16 * 32 + 7 * 7 * 9 * 32 * 64 + 576 * 128 + 128 * 10
    )
    two_blocks = 28 * 28 * 9 * 32 + 14 * 14 * 9 * 32 * 64 + 7 * 7 * 64 * 128 + 128 * 10
    assert 14 * 14 * 9 * 16 * 32 == 7 * 7 * 9 * 32 * 64 == 903_168
    assert (
        round(three_blocks / 1e6) == 2
        and round(two_blocks / 1e6, 1) == 4.2
        and three_blocks < two_blocks / 2
    )
    text = (book.html / "book" / f"{PAGE}.html").read_text()
    assert "903" in text and "4.2 million" in text
