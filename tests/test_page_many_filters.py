"""book/many-filters.md: the seeds' three filters, the feature-map axes, and multi-channel sums."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow
PAGE = "many-filters"

IMAGE = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)
KERNEL = np.ones((2, 2, 1, 3), np.float32) * np.array([1, 10, -1], np.float32)


def test_three_filters_valid(glued):
    import tensorflow as tf

    assert glued["kernel_shape"] == [2, 2, 1, 3]
    assert glued["valid_shape"] == [1, 2, 2, 3]
    assert glued["valid_three_filters"] == [
        [[12, 120, -12], [16, 160, -16]],
        [[24, 240, -24], [28, 280, -28]],
    ]
    np.testing.assert_array_equal(
        glued["valid_three_filters"], tf.nn.conv2d(IMAGE, KERNEL, 1, "VALID")[0]
    )


def test_three_filters_same(glued):
    import tensorflow as tf

    base = [[12, 16, 9], [24, 28, 15], [15, 17, 9]]
    assert glued["same_shape"] == [1, 3, 3, 3]
    assert glued["same_filter0"] == base
    assert glued["same_filter1"] == (10 * np.array(base)).tolist()
    assert glued["same_filter2"] == (-np.array(base)).tolist()
    same = tf.nn.conv2d(IMAGE, KERNEL, 1, "SAME").numpy()[0]
    for i in range(3):
        np.testing.assert_array_equal(glued[f"same_filter{i}"], same[:, :, i])


def test_feature_map_axes(glued):
    assert glued["swapaxes_shape"] == [3, 3, 3, 1]
    assert list(np.swapaxes(np.zeros((1, 3, 3, 3)), 0, 3).shape) == glued["swapaxes_shape"]
    assert glued["moveaxis_shape"] == [3, 3, 3]
    assert glued["maps_agree"] is True


def test_multichannel_shapes(glued):
    assert glued["rgb_kernel_shape"] == [2, 2, 3, 2]
    assert glued["rgb_output_shape"] == [1, 3, 3, 2]


def test_all_ones_input_sums_the_weights(glued):
    import tensorflow as tf

    kernel = np.array(glued["kernel4"], np.float32)
    assert kernel.shape == (2, 2, 3, 4)
    assert np.abs(kernel).max() > 0.01  # really random weights, not zeros
    assert glued["ones_max_abs_diff"] < 1e-5
    np.testing.assert_allclose(glued["weight_sums"], kernel.sum(axis=(0, 1, 2)), atol=1e-6)
    np.testing.assert_allclose(glued["ones_output"], glued["weight_sums"], atol=1e-5)
    # independent: TensorFlow's convolution of ones with the page's kernel (zero bias)
    ones = np.ones((1, 2, 2, 3), np.float32)
    np.testing.assert_allclose(
        glued["ones_output"], tf.nn.conv2d(ones, kernel, 1, "VALID").numpy().ravel(), atol=1e-5
    )


def test_channel_by_channel_by_hand(glued):
    import tensorflow as tf

    kernel = np.array(glued["kernel4"], np.float32)
    x = np.arange(1, 13, dtype=np.float32).reshape(1, 2, 2, 3)
    expected = [float((x[0, :, :, c] * kernel[:, :, c, 0]).sum()) for c in range(3)]
    np.testing.assert_allclose(glued["rgb_per_channel"], expected, rtol=1e-5, atol=1e-5)
    assert glued["rgb_by_hand"] == pytest.approx(sum(glued["rgb_per_channel"]), abs=1e-5)
    assert glued["rgb_from_layer"] == pytest.approx(glued["rgb_by_hand"], abs=1e-4)
    out = tf.nn.conv2d(x, kernel, 1, "VALID").numpy().ravel()
    np.testing.assert_allclose(glued["rgb_layer_output"], out, rtol=1e-5, atol=1e-4)
    assert glued["rgb_layer_output"][0] == pytest.approx(glued["rgb_from_layer"], abs=1e-6)


def test_page_has_figures(book):
    outputs = [o for c in book.notebook(PAGE)["cells"] for o in c.get("outputs", [])]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2
