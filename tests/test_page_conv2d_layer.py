"""book/conv2d-layer.md: every number the page glues, checked against formulas and TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow
PAGE = "conv2d-layer"


def test_weights_are_created_on_first_call(glued):
    assert glued["weights_before"] == 0
    assert glued["weights_after"] == 2
    assert glued["first_call_kernel_shape"] == [2, 2, 1, 3]
    assert glued["first_call_bias_shape"] == [3]


def test_seed_three_filters_match_tf_nn_conv2d(glued):
    import tensorflow as tf

    image = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)
    kernel = np.ones((2, 2, 1, 3), np.float32) * np.array([1, 10, -1], np.float32)
    expected = tf.nn.conv2d(image, kernel, 1, "VALID").numpy()[0].transpose(2, 0, 1)
    np.testing.assert_allclose(glued["seed_three_filters"], expected)
    # the seed's printed numbers
    np.testing.assert_allclose(glued["seed_three_filters"][0], [[12, 16], [24, 28]])
    np.testing.assert_allclose(glued["seed_three_filters"][1], [[120, 160], [240, 280]])
    np.testing.assert_allclose(glued["seed_three_filters"][2], [[-12, -16], [-24, -28]])


def test_filters_and_kernel_size_shapes(glued):
    assert glued["shapes_filters"] == {
        "1, 2": [1, 4, 4, 1],
        "4, 2": [1, 4, 4, 4],
        "4, 3": [1, 3, 3, 4],
        "4, (2, 3)": [1, 4, 3, 4],
    }


def test_stride_and_padding_sizes(glued):
    sizes = glued["shapes_stride_padding"]
    n, k = 28, 3
    for s in (1, 2):
        assert sizes[f"valid, stride {s}"] == (n - k) // s + 1
        assert sizes[f"same, stride {s}"] == -(-n // s)
    assert sizes == {
        "valid, stride 1": 26,
        "same, stride 1": 28,
        "valid, stride 2": 13,
        "same, stride 2": 14,
    }


def test_dilation(glued):
    x7 = np.arange(49, dtype=np.float64).reshape(7, 7)
    assert glued["dilated_shape"] == [3, 3]
    assert glued["dilated_top_left_by_hand"] == x7[0:5:2, 0:5:2].sum() == 144.0
    assert glued["dilated_top_left"] == pytest.approx(144.0)


def test_activation_relu_zeroes_negatives(glued):
    np.testing.assert_allclose(glued["activation_linear"], [[-12, -16], [-24, -28]])
    np.testing.assert_allclose(glued["activation_relu"], np.maximum(glued["activation_linear"], 0))
    assert np.all(np.array(glued["activation_relu"]) == 0)


def test_use_bias(glued):
    assert glued["bias_params_with"] == 2 * (2 * 2 * 1 + 1) == 10
    assert glued["bias_params_without"] == 2 * 2 * 2 * 1 == 8
    np.testing.assert_allclose(glued["bias_out_without"], [[12, 16], [24, 28]])
    np.testing.assert_allclose(glued["bias_out_with"], np.array(glued["bias_out_without"]) + 0.5)


def test_glorot_uniform_stays_within_its_limit(glued):
    assert glued["glorot_limit"] == pytest.approx(np.sqrt(6 / (9 + 45)))
    assert 0 < glued["glorot_max_abs"] <= glued["glorot_limit"]


def test_regularizer_losses(glued):
    np.testing.assert_allclose(
        glued["regularizer_losses"], [0.01 * 4 * 1.0**2, 0.1 * 0.5], rtol=1e-6
    )


def test_channels_first_and_last_shapes(glued):
    assert glued["shape_channels_last"] == [1, 26, 26, 4]
    assert glued["shape_channels_first"] == [1, 4, 26, 26]
    assert glued["channels_first_via_transpose"] == [1, 4, 26, 26]
    assert isinstance(glued["channels_first_runs"], bool)


def test_seed_003_parameter_counts_by_formula(glued):
    expected = {
        "conv1": 75 * (3 * 3 * 1 + 1),
        "bn1": 4 * 75,
        "conv2": 50 * (3 * 3 * 75 + 1),
        "bn2": 4 * 50,
        "conv3": 25 * (3 * 3 * 50 + 1),
        "bn3": 4 * 25,
        "dense1": 512 * (400 + 1),
        "dense2": 25 * (512 + 1),
    }
    assert glued["formula_params"] == expected
    assert list(expected.values()) == [750, 300, 33_800, 200, 11_275, 100, 205_312, 12_825]
    assert glued["formula_total"] == sum(expected.values()) == 264_562
    assert glued["formula_trainable"] == 264_262
    assert glued["formula_non_trainable"] == 300


def test_seed_003_parameter_counts_from_keras(glued):
    # layer by layer, as the seed's summary prints them
    assert glued["keras_layer_params"] == [
        750,
        300,
        0,
        33_800,
        0,
        200,
        0,
        11_275,
        100,
        0,
        0,
        205_312,
        0,
        12_825,
    ]
    assert glued["keras_layer_shapes"] == [
        [28, 28, 75],
        [28, 28, 75],
        [14, 14, 75],
        [14, 14, 50],
        [14, 14, 50],
        [14, 14, 50],
        [7, 7, 50],
        [7, 7, 25],
        [7, 7, 25],
        [4, 4, 25],
        [400],
        [512],
        [512],
        [25],
    ]
    assert glued["keras_total"] == 264_562
    assert glued["keras_trainable"] == 264_262
    assert glued["keras_non_trainable"] == 300


def test_seed_003_model_rebuilt_independently():
    from tensorflow import keras

    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(75, 3, padding="same"),
            layers.BatchNormalization(),
            layers.MaxPool2D(2, 2, padding="same"),
            layers.Conv2D(50, 3, padding="same"),
            layers.BatchNormalization(),
            layers.MaxPool2D(2, 2, padding="same"),
            layers.Conv2D(25, 3, padding="same"),
            layers.BatchNormalization(),
            layers.MaxPool2D(2, 2, padding="same"),
            layers.Flatten(),
            layers.Dense(512),
            layers.Dense(25),
        ]
    )
    assert model.count_params() == 264_562


def test_summary_is_shown(book):
    # read the HTML: myst-nb writes jupyter_execute/*.ipynb without outputs when it serves a page
    # from its cache
    html = (book.html / "book" / f"{PAGE}.html").read_text()
    for number in ("264,562", "264,262", "205,312", "33,800", "11,275", "12,825"):
        assert number in html, f"{number} is not on the page"


def test_dilation_with_stride_is_refused(glued):
    assert glued["dilation_with_stride"].startswith(
        "`strides > 1` not supported in conjunction with `dilation_rate > 1`"
    )
