"""book/padding-and-stride.md: the seed's SAME/VALID numbers, TF's padding, size rules, stride,
dilation."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = pytest.mark.slow
PAGE = "padding-and-stride"


def _conv(x, k, stride=1, padding="VALID", dilations=1):
    import tensorflow as tf

    x = np.asarray(x, np.float32)[None, :, :, None]
    w = np.asarray(k, np.float32)[:, :, None, None]
    return tf.nn.conv2d(x, w, strides=stride, padding=padding, dilations=dilations).numpy()[
        0, :, :, 0
    ]


IMAGE = np.arange(1, 10, dtype=np.float32).reshape(3, 3)
X5 = np.arange(25, dtype=np.float32).reshape(5, 5)


def test_seed_valid_and_same(glued):
    assert glued["valid_3x3"] == [[12, 16], [24, 28]]
    assert glued["same_3x3"] == [[12, 16, 9], [24, 28, 15], [15, 17, 9]]
    np.testing.assert_array_equal(glued["same_3x3"], _conv(IMAGE, np.ones((2, 2)), padding="SAME"))
    np.testing.assert_array_equal(glued["valid_3x3"], _conv(IMAGE, np.ones((2, 2))))


def test_where_tensorflow_puts_the_zeros(glued):
    assert glued["pad_k2"] == [0, 1]  # odd total: the extra zero at the bottom/right
    assert glued["pad_k3"] == [1, 1]  # 3x3 kernel: one on each side
    assert glued["explicit_pad_matches_same"] is True
    # independent check: zeros at the bottom/right reproduce SAME, zeros at the top/left do not
    same = _conv(IMAGE, np.ones((2, 2)), padding="SAME")
    np.testing.assert_array_equal(_conv(np.pad(IMAGE, (0, 1)), np.ones((2, 2))), same)
    assert not np.array_equal(_conv(np.pad(IMAGE, (1, 0)), np.ones((2, 2))), same)


def test_output_size_rules(glued):
    # 13 sizes x 5 kernels x 3 strides: 2 SAME checks each, plus 2 VALID checks where k <= n
    sizes = [*range(1, 13), 28]
    expected_cases = sum(
        2 + (2 if k <= n else 0) for n in sizes for k in range(1, 6) for s in range(1, 4)
    )
    assert glued["size_cases_checked"] == expected_cases == 720
    assert glued["size_mismatches"] == 0
    assert glued["seed_formula_28"] == 28 == (28 - 3 + 2 * 1) // 1 + 1
    for n, k, s, tf_valid, rule_valid, tf_same, rule_same, p_total in glued["size_table"]:
        assert tf_valid == rule_valid == (n - k) // s + 1
        assert tf_same == rule_same == math.ceil(n / s)
        assert p_total == max((math.ceil(n / s) - 1) * s + k - n, 0)
    assert [r[:3] for r in glued["size_table"]][-3:] == [[28, 3, 1], [28, 3, 2], [28, 5, 1]]
    # a few shapes straight from TensorFlow
    assert _conv(np.zeros((28, 28)), np.zeros((3, 3)), padding="SAME").shape == (28, 28)
    assert _conv(np.zeros((28, 28)), np.zeros((3, 3)), stride=2).shape == (13, 13)
    assert _conv(np.zeros((7, 7)), np.zeros((3, 3)), stride=2, padding="SAME").shape == (4, 4)


def test_stride_2(glued):
    assert glued["stride2_valid"] == [[12, 20], [52, 60]]
    assert glued["stride2_same"] == [[12, 20, 13], [52, 60, 33], [41, 45, 24]]
    assert glued["stride2_same_pad"] == [0, 1]
    np.testing.assert_array_equal(glued["stride2_valid"], _conv(X5, np.ones((2, 2)), stride=2))
    np.testing.assert_array_equal(
        glued["stride2_same"], _conv(X5, np.ones((2, 2)), stride=2, padding="SAME")
    )


def test_dilation(glued):
    assert glued["effective_k2_d2"] == 3
    assert glued["effective_k3_d2"] == 5
    assert glued["dilated_output"] == [[24, 28, 32], [44, 48, 52], [64, 68, 72]]
    assert glued["dilated_output"][0][0] == 0 + 2 + 10 + 12
    np.testing.assert_array_equal(glued["dilated_output"], _conv(X5, np.ones((2, 2)), dilations=2))
    assert glued["dilated_matches_by_hand"] is True


def test_stride_with_dilation_is_refused(glued):
    from tensorflow import keras

    assert glued["stride_dilation_raises"] is True
    assert "dilation_rate" in glued["stride_dilation_message"]
    assert "strides" in glued["stride_dilation_message"]
    with pytest.raises(ValueError, match="dilation_rate"):
        keras.layers.Conv2D(1, 2, strides=2, dilation_rate=2)
    assert glued["raw_stride_dilation_subsamples"] is True


def test_page_has_a_figure_and_the_animation(book, glued):
    outputs = [o for c in book.notebook(PAGE)["cells"] for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure on the page"
    html = ["".join(o["data"]["text/html"]) for o in outputs if "text/html" in o.get("data", {})]
    players = [h for h in html if "new Animation(" in h and "data:image/png;base64" in h]
    assert len(players) == 1, "the page should hold exactly one jshtml animation player"
    assert players[0].count("data:image/png;base64") == glued["animation_frames"] == 9
    # the figure of the animation is closed: no extra static image of its last frame
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 1
    # and the player reaches the website
    page = (book.html / "book" / f"{PAGE}.html").read_text()
    assert "new Animation(" in page
