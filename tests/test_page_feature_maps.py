"""book/feature-maps.md: shapes, the first digit, and the maps recomputed here with tf.nn."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow
PAGE = "feature-maps"


@pytest.fixture(scope="module")
def img():
    from cnnbook.data import load_mnist

    (x_train, y_train), _ = load_mnist()
    return x_train[0].astype(np.float32).reshape(1, 28, 28, 1) / 255.0, int(y_train[0])


def test_first_digit(glued, img):
    image, label = img
    assert glued["label"] == label == 5
    assert glued["digit_sum"] == pytest.approx(float(image.sum()), rel=1e-6)


def test_shapes(glued):
    assert glued["conv_shape"] == [1, 14, 14, 5]
    assert glued["pool_shape_same"] == [1, 7, 7, 5]
    assert glued["pool_shape_valid"] == [1, 7, 7, 5]
    assert glued["pool_same_vs_valid"] == 0.0
    assert glued["hand_shape"] == [1, 14, 14, 4]
    assert glued["hand_pooled_shape"] == [1, 7, 7, 4]


def test_random_maps_match_tf_nn(glued, img):
    import tensorflow as tf

    kernel = np.array(glued["random_kernel"], np.float32)
    assert kernel.shape == (3, 3, 1, 5)
    assert 0 < kernel.std() < 0.02, "the seeds' initializer has stddev 0.01"
    maps = tf.nn.conv2d(img[0], kernel, strides=2, padding="SAME").numpy()  # zero bias
    np.testing.assert_allclose(glued["random_maps"], maps, atol=1e-6)
    pooled = tf.nn.max_pool2d(maps, 2, 2, "VALID").numpy()
    np.testing.assert_allclose(glued["random_pooled"], pooled, atol=1e-6)


def test_hand_made_filters(glued, img):
    import tensorflow as tf

    vertical = np.array([[1, 0, -1]] * 3, np.float32)
    kernel = np.stack(
        [
            vertical,
            vertical.T,
            np.full((3, 3), 1 / 9, np.float32),
            np.array([[0, 1, 1], [-1, 0, 1], [-1, -1, 0]], np.float32),
        ],
        -1,
    )[:, :, None, :]
    np.testing.assert_allclose(glued["hand_kernel"], kernel)
    maps = tf.nn.conv2d(img[0], kernel, strides=2, padding="SAME").numpy()
    np.testing.assert_allclose(glued["vertical_map"], maps[0, :, :, 0], atol=1e-5)
    np.testing.assert_allclose(
        glued["hand_pooled"], tf.nn.max_pool2d(maps, 2, 2, "SAME").numpy(), atol=1e-5
    )
    names = ["vertical edge", "horizontal edge", "blur", "diagonal edge"]
    for i, name in enumerate(names):
        lo, hi = glued["hand_min_max"][name]
        assert lo == pytest.approx(maps[0, :, :, i].min(), abs=1e-4)
        assert hi == pytest.approx(maps[0, :, :, i].max(), abs=1e-4)
    assert glued["hand_min_max"]["blur"][0] >= 0


def test_vertical_edge_map_by_hand(glued, img):
    """One cell of the vertical-edge map from the definition: sum over the padded window."""
    image = np.pad(
        img[0][0, :, :, 0], ((0, 1), (0, 1))
    )  # SAME, stride 2, even size: pad bottom/right
    vertical = np.array([[1, 0, -1]] * 3, np.float32)
    vmap = np.array(glued["vertical_map"])
    for r, c in ((3, 4), (6, 7), (10, 5)):
        window = image[2 * r : 2 * r + 3, 2 * c : 2 * c + 3]
        assert vmap[r, c] == pytest.approx(float((window * vertical).sum()), abs=1e-5)
