"""book/tf1-to-tf2.md: the TF1 names are gone, the bugs' demonstrations, the Keras model's size."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow
PAGE = "tf1-to-tf2"


def test_tf1_names_are_gone(glued):
    import tensorflow as tf

    names = glued["tf1_names_present"]
    assert set(names) == {
        "Session",
        "placeholder",
        "global_variables_initializer",
        "reset_default_graph",
        "random_normal",
        "get_variable",
        "contrib",
    }
    assert not any(names.values())
    assert all(not hasattr(tf, n) for n in names)


def test_bug_a_unpooled_reshape(glued):
    assert glued["bug_a_rows"] == 2 * 14 * 14 * 64 // (7 * 7 * 64) == 8
    assert glued["bug_a_fixed_rows"] == 2
    assert glued["bug_a_rows_are_quarters"] is True
    assert glued["bug_a_loss_error"] == "InvalidArgumentError"


def test_bug_a_independently():
    import tensorflow as tf

    x = tf.reshape(tf.range(2 * 14 * 14 * 64, dtype=tf.float32), (2, 14, 14, 64))
    assert tf.reshape(x, [-1, 7 * 7 * 64]).shape == (8, 3136)


def test_bug_b_name_error(glued):
    assert glued["bug_b_error"] == "NameError: name 'batch_Y' is not defined"


def test_dropout_only_in_training(glued):
    assert glued["dropout_test_unchanged"] is True
    assert glued["dropout_train_scale"] == pytest.approx(1 / 0.75, rel=1e-5)
    # 1000 Bernoulli(0.25) draws: within 5 standard deviations of 25 %
    assert abs(glued["dropout_train_zero_fraction"] - 0.25) < 5 * np.sqrt(0.25 * 0.75 / 1000)


def test_bug_d_relu_before_argmax(glued):
    logits = np.array(glued["bug_d_logits"])
    assert np.all(logits < 0)
    assert glued["bug_d_true_argmax"] == int(np.argmax(logits)) == 2
    assert glued["bug_d_relu_argmax"] == int(np.argmax(np.maximum(logits, 0))) == 0


def test_init_scale(glued):
    assert glued["init_std_normal1"] > 10 * glued["init_std_glorot"]
    assert glued["init_std_normal1"] > 1.0 > glued["init_std_glorot"] > 0


def init_scale_recomputed():
    """The page's two standard deviations, recomputed with the same seeded initializers."""
    import tensorflow as tf
    from tensorflow import keras

    from cnnbook.data import load_mnist

    (x_train, _), _ = load_mnist()
    digits = x_train[:16].reshape(-1, 28, 28, 1).astype(np.float32) / 255.0

    def std(init):
        c1 = keras.layers.Conv2D(
            32, 3, padding="same", activation="relu", kernel_initializer=init, bias_initializer=init
        )
        c2 = keras.layers.Conv2D(
            64, 3, padding="same", activation="relu", kernel_initializer=init, bias_initializer=init
        )
        p = keras.layers.MaxPool2D(2, padding="same")
        return float(tf.math.reduce_std(p(c2(p(c1(digits))))))

    return std(keras.initializers.RandomNormal(stddev=1.0, seed=1)), std(
        keras.initializers.GlorotUniform(seed=1)
    )


def test_init_scale_matches_page(glued):
    normal1, glorot = init_scale_recomputed()
    assert glued["init_std_normal1"] == pytest.approx(normal1, rel=1e-4)
    assert glued["init_std_glorot"] == pytest.approx(glorot, rel=1e-4)


def test_parameter_counts(glued):
    formula = {"conv1": 320, "conv2": 18_496, "dense1": 803_072, "dense2": 65_792, "logits": 2_570}
    assert glued["param_formula"] == formula
    assert formula["dense1"] == 3136 * 256 + 256
    assert glued["param_keras_layers"] == list(formula.values())
    assert glued["param_formula_total"] == glued["param_keras_total"] == 890_250
    assert glued["param_seed_tf1_total"] == 890_250 - 96


def test_model_rebuilt_independently():
    from tensorflow import keras

    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Conv2D(32, 3, padding="same"),
            keras.layers.MaxPool2D(2, padding="same"),
            keras.layers.Conv2D(64, 3, padding="same"),
            keras.layers.MaxPool2D(2, padding="same"),
            keras.layers.Flatten(),
            keras.layers.Dense(256),
            keras.layers.Dense(256),
            keras.layers.Dense(10),
        ]
    )
    assert model.count_params() == 890_250


def test_forward_pass_shapes(glued):
    assert glued["forward_logits_shape"] == [5, 10]
    assert glued["forward_flatten_shape"] == [5, 3136]
