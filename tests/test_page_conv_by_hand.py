"""book/conv-by-hand.md: every number the page glues, checked against the seeds and TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow
PAGE = "conv-by-hand"

IMAGE = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)
SEED_3X3 = [[12, 16], [24, 28]]


def test_three_ways_give_the_seed_numbers(glued):
    for name in ("by_hand", "tf_nn", "keras"):
        np.testing.assert_array_equal(glued[name], SEED_3X3, err_msg=name)
    assert glued["three_ways_agree"] is True
    assert glued["tf_nn_shape"] == [1, 2, 2, 1]
    assert glued["keras_kernel_shape"] == [2, 2, 1, 1]


def test_seed_3x3_example_with_tensorflow():
    import tensorflow as tf

    out = tf.nn.conv2d(IMAGE, np.ones((2, 2, 1, 1), np.float32), 1, "VALID").numpy()[0, :, :, 0]
    np.testing.assert_array_equal(out, SEED_3X3)


def test_missing_batch_axis_is_refused_with_a_message(glued):
    message = glued["missing_batch_axis"]
    assert message != "accepted"
    assert "expected min_ndim=4, found ndim=3" in message


def test_tensorflow_does_not_flip_the_kernel(glued):
    import tensorflow as tf

    asym = np.array([[1, 2], [3, 4]], np.float32)
    expected = tf.nn.conv2d(IMAGE, asym.reshape(2, 2, 1, 1), 1, "VALID").numpy()[0, :, :, 0]
    np.testing.assert_array_equal(glued["asym_tf"], expected)
    # 1*1 + 2*2 + 4*3 + 5*4 = 37 without the flip; 1*4 + 2*3 + 4*2 + 5*1 = 23 with it
    np.testing.assert_array_equal(glued["asym_tf"], [[37, 47], [67, 77]])
    np.testing.assert_array_equal(glued["asym_flipped"], [[23, 33], [53, 63]])


def test_seed_002_mean_filter_with_bias(glued):
    import tensorflow as tf

    expected = [[5.5, 6.5, 7.5], [9.5, 10.5, 11.5], [13.5, 14.5, 15.5]]
    np.testing.assert_allclose(glued["mean_filter"], expected)
    x16 = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    independent = (
        tf.nn.conv2d(x16, np.full((2, 2, 1, 1), 0.25, np.float32), 1, "VALID").numpy()[0, :, :, 0]
        + 3
    )
    np.testing.assert_allclose(glued["mean_filter"], independent)


def test_seed_002_3x3_kernel_on_5x5(glued):
    import tensorflow as tf

    x5 = np.array(
        [[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3], [2, 0, 0, 2, 2], [2, 0, 0, 0, 1]],
        np.float32,
    )
    k3 = np.array([[0, 1, 2], [2, 2, 0], [0, 1, 2]], np.float32)
    np.testing.assert_array_equal(glued["kernel3_on_5x5"], [[12, 12, 17], [10, 17, 19], [9, 6, 14]])
    independent = tf.nn.conv2d(x5.reshape(1, 5, 5, 1), k3.reshape(3, 3, 1, 1), 1, "VALID").numpy()[
        0, :, :, 0
    ]
    np.testing.assert_array_equal(glued["kernel3_on_5x5"], independent)


def test_seed_002_batch_of_two(glued):
    assert glued["batch_shape"] == [2, 4, 4, 1]
    first = np.arange(25).reshape(5, 5)[:4, :4] + 6  # mean of each 2x2 window of arange(25), plus 3
    np.testing.assert_allclose(glued["batch_first"], first)
    np.testing.assert_allclose(
        glued["batch_first"], [[6, 7, 8, 9], [11, 12, 13, 14], [16, 17, 18, 19], [21, 22, 23, 24]]
    )
    np.testing.assert_allclose(glued["batch_second"], np.array(glued["batch_first"]) + 25)
    np.testing.assert_allclose(glued["batch_second"][0], [31, 32, 33, 34])
    np.testing.assert_allclose(glued["batch_second"][-1], [46, 47, 48, 49])


def test_seeds(glued):
    assert glued["unseeded_equal"] is False
    assert glued["tf_seed_equal"] is False  # Keras 3 initializers ignore tf.random.set_seed
    assert glued["seeded_equal"] is True
    assert glued["random_first_matches"] is True


def test_keras_set_random_seed_makes_layers_equal():
    from tensorflow import keras

    outputs = []
    for _ in range(2):
        keras.utils.set_random_seed(7)
        outputs.append(keras.layers.Conv2D(1, 2)(IMAGE).numpy())
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_page_has_a_figure(book):
    import re

    nb = book.notebook(PAGE)
    pngs = [
        o for c in nb["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    ]
    html = (book.html / "book" / f"{PAGE}.html").read_text()
    # the PNG in the executed notebook, and the same figure in the built page with its alt text
    shown = re.findall(r'<img alt="([^"]+)"[^>]*src="[^"]+\.png"', html)
    assert pngs or shown, f"book/{PAGE}.md shows no figure"
    assert any(a.startswith("Four copies of the 3 by 3 grid") for a in shown), shown
