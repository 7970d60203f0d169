"""book/transposed-convolution.md: stamping by hand equals Keras, the size formula, the gradient
link."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow
PAGE = "transposed-convolution"


def stamp(x, kernel, stride):
    x, kernel = np.asarray(x, float), np.asarray(kernel, float)
    out = np.zeros(
        ((x.shape[0] - 1) * stride + kernel.shape[0], (x.shape[1] - 1) * stride + kernel.shape[1])
    )
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[
                i * stride : i * stride + kernel.shape[0], j * stride : j * stride + kernel.shape[1]
            ] += x[i, j] * kernel
    return out


EXPECTED = {
    "ones_stride1": [[1, 3, 2], [4, 10, 6], [3, 7, 4]],
    "ones_stride2": [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]],
    "1234_stride1": [[1, 4, 4], [6, 20, 16], [9, 24, 16]],
    "1234_stride2": [[1, 2, 2, 4], [3, 4, 6, 8], [3, 6, 4, 8], [9, 12, 12, 16]],
}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_hand_and_keras_agree(glued, case):
    kname, stride = case.split("_stride")
    kernel = np.ones((2, 2)) if kname == "ones" else np.array([[1, 2], [3, 4]])
    expected = stamp([[1, 2], [3, 4]], kernel, int(stride))
    np.testing.assert_allclose(expected, EXPECTED[case])
    np.testing.assert_allclose(glued[f"hand_{case}"], expected)
    np.testing.assert_allclose(glued[f"keras_{case}"], expected)


def test_tf_conv2d_transpose_independently():
    import tensorflow as tf

    x = tf.constant([[1.0, 2.0], [3.0, 4.0]], shape=(1, 2, 2, 1))
    k = tf.constant([[1.0, 2.0], [3.0, 4.0]], shape=(2, 2, 1, 1))
    for stride, case in ((1, "1234_stride1"), (2, "1234_stride2")):
        n = (2 - 1) * stride + 2
        got = tf.nn.conv2d_transpose(
            x, k, output_shape=(1, n, n, 1), strides=stride, padding="VALID"
        )
        np.testing.assert_allclose(got.numpy()[0, :, :, 0], EXPECTED[case])


def test_output_size_grid(glued):
    # n 1..5, k 1..4, s 1..3, two paddings, output_padding None or 0..s-1: 5*4*2*(2+3+4) = 360
    assert glued["grid_checked"] + glued["grid_rejected"] == 360
    assert glued["grid_mismatches"] == 0
    # rejected: 'same', even k (2 values), op = 0, every n (5) and s (3)
    assert glued["grid_rejected"] == 5 * 2 * 3 == 30
    assert glued["grid_checked"] == 330
    assert glued["grid_rejected_same_even_zero"] is True


def test_output_size_formula_spot_checks():
    from tensorflow import keras

    for n, k, s, padding, op in ((3, 3, 2, "same", 1), (4, 5, 3, "valid", 2), (5, 3, 2, "same", 0)):
        p = k // 2 if padding == "same" else 0
        layer = keras.layers.Conv2DTranspose(1, k, strides=s, padding=padding, output_padding=op)
        assert layer(np.ones((1, n, n, 1), np.float32)).shape[1] == (n - 1) * s + k - 2 * p + op


def test_decoder_shapes(glued):
    assert glued["decoder_shapes"] == [[14, 14, 8], [28, 28, 1]]


def test_matrix_view(glued):
    np.testing.assert_allclose(glued["matrix_conv"], [[37, 47], [67, 77]])
    np.testing.assert_allclose(glued["matrix_transpose"], EXPECTED["1234_stride1"])


def test_gradient_is_transposed_convolution(glued):
    assert glued["grad_shape"] == [1, 5, 5, 1]
    assert 0 <= glued["grad_max_abs_diff_op"] < 1e-5
    assert 0 <= glued["grad_max_abs_diff_layer"] < 1e-5


def test_gradient_identity_independently():
    import tensorflow as tf

    rng = np.random.default_rng(123)
    x = tf.constant(rng.normal(size=(2, 7, 6, 3)), tf.float32)
    k = tf.constant(rng.normal(size=(3, 2, 3, 4)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.nn.conv2d(x, k, strides=2, padding="SAME")
        g = tf.constant(rng.normal(size=y.shape), tf.float32)
        loss = tf.reduce_sum(y * g)
    grad = tape.gradient(loss, x)
    by_op = tf.nn.conv2d_transpose(g, k, output_shape=x.shape, strides=2, padding="SAME")
    np.testing.assert_allclose(grad.numpy(), by_op.numpy(), atol=1e-5)
