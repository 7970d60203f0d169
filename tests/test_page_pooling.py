"""book/pooling.md: every number the page glues, checked against the seeds and TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow
PAGE = "pooling"


def grid(n, h, w, channels=1, batch=1):
    return np.arange(n, dtype=np.float32).reshape(batch, h, w, channels)


def tf_max_pool(x, k, s, padding):
    import tensorflow as tf

    return tf.nn.max_pool2d(x, ksize=k, strides=s, padding=padding).numpy()


def test_seed_002_max_pooling(glued):
    assert glued["pool_params"] == 0
    np.testing.assert_array_equal(glued["max_4x4"], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(glued["max_6x6"], [[7, 9, 11], [19, 21, 23], [31, 33, 35]])
    np.testing.assert_array_equal(glued["max_6x6_pool3"], [[14, 17], [32, 35]])
    np.testing.assert_array_equal(glued["max_5x5_valid"], [[6, 8], [16, 18]])
    np.testing.assert_array_equal(glued["max_5x5_same"], [[6, 8, 9], [16, 18, 19], [21, 23, 24]])


def test_seed_002_max_pooling_with_tensorflow(glued):
    np.testing.assert_array_equal(
        glued["max_4x4"], tf_max_pool(grid(16, 4, 4), 2, 2, "VALID")[0, :, :, 0]
    )
    np.testing.assert_array_equal(
        glued["max_6x6"], tf_max_pool(grid(36, 6, 6), 2, 2, "VALID")[0, :, :, 0]
    )
    np.testing.assert_array_equal(
        glued["max_6x6_pool3"], tf_max_pool(grid(36, 6, 6), 3, 3, "VALID")[0, :, :, 0]
    )
    np.testing.assert_array_equal(
        glued["max_5x5_valid"], tf_max_pool(grid(25, 5, 5), 2, 2, "VALID")[0, :, :, 0]
    )
    np.testing.assert_array_equal(
        glued["max_5x5_same"], tf_max_pool(grid(25, 5, 5), 2, 2, "SAME")[0, :, :, 0]
    )


def test_seed_002_batch_and_channels(glued):
    np.testing.assert_array_equal(glued["max_batch"], [[[5, 7], [13, 15]], [[21, 23], [29, 31]]])
    assert glued["max_channels_shape"] == [1, 2, 2, 3]
    np.testing.assert_array_equal(glued["max_channel0"], [[15, 21], [39, 45]])
    expected = tf_max_pool(grid(48, 4, 4, channels=3), 2, 2, "VALID")[0].transpose(2, 0, 1)
    np.testing.assert_array_equal(glued["max_channels_all"], expected)


def test_seed_004_stride_one(glued):
    np.testing.assert_array_equal(glued["seed004_valid"], [[4]])
    np.testing.assert_array_equal(glued["seed004_same"], [[4, 3], [2, 1]])
    small = np.array([[4, 3], [2, 1]], np.float32).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(
        glued["seed004_same"], tf_max_pool(small, 2, 1, "SAME")[0, :, :, 0]
    )


def test_seed_001_conv_then_same_max_pool(glued):
    np.testing.assert_array_equal(
        glued["seed001_conv"], [[[12, 120, -12], [16, 160, -16]], [[24, 240, -24], [28, 280, -28]]]
    )
    np.testing.assert_array_equal(
        glued["seed001_pooled"],
        [[[28, 280, -12], [28, 280, -16]], [[28, 280, -24], [28, 280, -28]]],
    )


def test_seed_001_same_pads_with_minus_infinity(glued):
    import tensorflow as tf

    # zero padding would turn every window touching the padding into 0
    np.testing.assert_array_equal(glued["seed001_zero_padding"], [[-12, 0], [0, 0]])
    np.testing.assert_array_equal(glued["seed001_inf_padding"], [[-12, -16], [-24, -28]])
    assert glued["seed001_inf_matches_tf"] is True
    # independent: an all-negative map pooled with SAME padding keeps its negative values
    negative = -np.arange(1, 5, dtype=np.float32).reshape(1, 2, 2, 1)
    pooled = tf.nn.max_pool2d(negative, 2, 1, "SAME").numpy()[0, :, :, 0]
    assert (pooled < 0).all()
    np.testing.assert_array_equal(pooled, [[-1, -2], [-3, -4]])


def test_average_pooling(glued):
    from tensorflow import keras

    np.testing.assert_allclose(glued["avg_4x4"], [[2.5, 4.5], [10.5, 12.5]])
    np.testing.assert_allclose(
        glued["avg_5x5_same"], [[3, 5, 6.5], [13, 15, 16.5], [20.5, 22.5, 24]]
    )
    assert glued["avg_5x5_same"][2][2] == 24  # the real cell only, not 24 / 4
    np.testing.assert_allclose(glued["avg_5x5_if_zeros_counted"][2][2], 6.0)
    independent = keras.layers.AveragePooling2D(2, padding="same")(grid(25, 5, 5)).numpy()[
        0, :, :, 0
    ]
    np.testing.assert_allclose(glued["avg_5x5_same"], independent)


def test_page_has_figures(book):
    import re

    nb = book.notebook(PAGE)
    pngs = [
        o for c in nb["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    ]
    html = (book.html / "book" / f"{PAGE}.html").read_text()
    # the PNG in the executed notebook, and the same figure in the built page with its alt text
    shown = re.findall(r'<img alt="([^"]+)"[^>]*src="[^"]+\.png"', html)
    assert pngs or shown, f"book/{PAGE}.md shows no figure"
    assert any(a.startswith("Left, a 4 by 4 grid holding 0 to 15") for a in shown), shown
    assert "minus infinity" in html
