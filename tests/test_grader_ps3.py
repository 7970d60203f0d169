"""ps3's grading: the grader rebuilds the student's model from its Keras configuration, checks it,
and trains and evaluates it in a limited child process (cnnbook/grader/trainer.py,
checks/ps3_mnist.py).

Descriptions are made as the student's kernel makes them: wire.KERNEL_SIDE's ``keras_model``
serialiser, run in this process on models built here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from cnnbook.grader import trainer, wire
from cnnbook.grader.checks import ps3_mnist
from cnnbook.grader.plan import Call, Context

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "solutions" / "ps3-mnist" / "mnist_cnn.ipynb"
RELEASE = ROOT / "exercises" / "ps3-mnist" / "mnist_cnn.ipynb"
POINTS = {
    "test_build_model_is_small_compiled_cnn": 2,
    "test_mnist_accuracy_at_least_97": 2,
    "test_mnist_accuracy_at_least_975": 2,
}


@pytest.fixture(scope="module")
def keras():
    import keras

    return keras


def kernel_result(build_model) -> wire.Result:
    """What the probe cell sends back for ``build_model``, read as the grader reads it."""
    import IPython.display

    sent, display = [], IPython.display.display
    IPython.display.display = lambda obj, raw=False: sent.append(obj)
    try:
        namespace = {"build_model": build_model}
        exec(wire.KERNEL_SIDE, namespace)
        namespace["_cnnbook_probe"](
            wire.encode_calls("build_model", [Call()], False, "keras_model"), wire.MIME
        )
    finally:
        IPython.display.display = display
    return wire.decode_results(sent[0][wire.MIME], 1)[0]


def describe(model) -> str:
    result = kernel_result(lambda: model)
    assert result.kind == "str", result
    return result.value


def solution_build_model(keras):
    cell = next(
        c
        for c in nbformat.read(SOURCE, as_version=4).cells
        if c.metadata["nbgrader"]["grade_id"] == "build_model"
    )
    namespace = {"keras": keras}
    exec(cell.source, namespace)
    return namespace["build_model"]


@pytest.fixture(scope="module")
def reference(keras) -> str:
    return describe(solution_build_model(keras)())


def small_model(keras, *middle, compiled=True, conv=True):
    layers = [keras.Input(shape=(28, 28, 1))]
    layers += [keras.layers.Conv2D(4, 3), keras.layers.MaxPooling2D(4)] if conv else []
    layers += [*middle, keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]
    model = keras.Sequential(layers)
    if compiled:
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def edited(description: str, edit) -> str:
    """``description`` with ``edit`` applied to its model configuration (a dict)."""
    outer = json.loads(description)
    config = json.loads(outer["config"])
    edit(config)
    return json.dumps({**outer, "config": json.dumps(config)})


def layer(config: dict, class_name: str) -> dict:
    return next(entry for entry in config["config"]["layers"] if entry["class_name"] == class_name)


def grade(result: wire.Result) -> tuple[float, dict]:
    """Points of the three graded cells from ``result`` (what the probe sent), and each verdict."""
    context = Context({p.name: p for p in ps3_mnist.probes(None)}, {"build_model": [result]}, [])
    verdicts = {check.grade_id: check.judge(context) for check in ps3_mnist.CHECKS}
    return sum(POINTS[g] * v.fraction for g, v in verdicts.items()), verdicts


# --- the validator: names only, no Keras --------------------------------------------------------


def test_the_reference_description_is_valid(reference):
    assert trainer.validate(reference) is None
    assert len(reference) < trainer.MAX_CONFIG_CHARS


def test_validator_rejects_a_lambda_layer(keras):
    model = small_model(keras, keras.layers.Lambda(lambda x: x * 2))
    assert trainer.validate(describe(model)).startswith(
        "Lambda layers cannot be graded: the grader rebuilds"
    )


@pytest.mark.filterwarnings("ignore:The object being serialized includes a `lambda`")
def test_validator_rejects_a_lambda_activation(keras):
    model = small_model(keras, keras.layers.Activation(lambda x: x))
    assert trainer.validate(describe(model)).startswith("Python lambdas cannot be graded")


def test_validator_rejects_a_custom_layer_class(keras):
    class Twice(keras.layers.Layer):
        def call(self, x):
            return 2 * x

    # A notebook's class has no module ("Twice"); this one is test_grader_ps3.Twice.
    assert "Twice cannot be graded: it is not one of Keras's own classes" in trainer.validate(
        describe(small_model(keras, Twice()))
    )


def test_validator_rejects_a_registered_custom_class(keras):
    @keras.saving.register_keras_serializable(package="student")
    class Half(keras.layers.Layer):
        def call(self, x):
            return x / 2

    problem = trainer.validate(describe(small_model(keras, Half())))
    assert "cannot be graded: it is not one of Keras's own classes" in problem


def test_validator_rejects_a_non_keras_module(reference):
    def to_os_system(config):
        layer(config, "ReLU").update(module="os", class_name="system", config={"command": "true"})

    assert trainer.validate(edited(reference, to_os_system)).startswith(
        "os.system cannot be graded"
    )


def test_validator_rejects_a_config_that_names_tfsmlayer(reference):
    def to_tfsm(config):
        layer(config, "ReLU").update(class_name="TFSMLayer", config={"filepath": "/etc"})

    assert trainer.validate(edited(reference, to_tfsm)).startswith("TFSMLayer cannot be graded")


@pytest.mark.parametrize("levels", [trainer.MAX_DEPTH + 5, 100_000])
def test_validator_rejects_deep_nesting(reference, levels):
    def nest(config):
        layer(config, "ReLU")["config"]["name"] = json.loads(
            "[" * min(levels, 500) + "]" * min(levels, 500)
        )

    description = (
        edited(reference, nest)
        if levels < 500
        else (json.dumps({"config": "[" * levels + "]" * levels, "compile": "null"}))
    )
    assert trainer.validate(description) == (
        f"the model's configuration is nested more than {trainer.MAX_DEPTH} levels deep"
    )


def test_validator_rejects_an_oversized_config(reference):
    def pad(config):
        layer(config, "ReLU")["config"]["name"] = "x" * trainer.MAX_CONFIG_CHARS

    problem = trainer.validate(edited(reference, pad))
    assert (
        problem.startswith("the model's configuration has ")
        and "the grader accepts at most 300,000" in problem
    )


def test_validator_rejects_what_is_not_a_model_description():
    for description in ("", "{}", '{"config": "[]", "compile": "null"}', "x" * 100, 42):
        assert trainer.validate(description) is not None


def test_compile_problems_name_what_is_missing():
    assert trainer.compile_problems(None)[0].startswith(
        "the model is not compiled: call model.compile("
    )
    assert trainer.compile_problems({"optimizer": "adam", "loss": "mse", "metrics": ["mae"]}) == [
        'the model is compiled without the accuracy metric: pass metrics=["accuracy"]'
    ]
    assert (
        trainer.compile_problems(
            {
                "optimizer": "adam",
                "loss": "sparse_categorical_crossentropy",
                "metrics": [{"class_name": "SparseCategoricalAccuracy"}],
            }
        )
        == []
    )


def test_a_model_that_is_not_a_keras_model_gets_a_message():
    result = kernel_result(lambda: 42)
    assert result.kind == "other"
    points, verdicts = grade(result)
    assert points == 0
    assert (
        verdicts["test_build_model_is_small_compiled_cnn"].message
        == "build_model() must return a keras.Model, not a builtins.int"
    )


def test_a_build_model_that_raises_costs_every_point_and_trains_nothing(monkeypatch):
    monkeypatch.setattr(trainer, "train_and_evaluate", lambda *a, **k: pytest.fail("trained"))

    def build_model():
        raise ValueError("no model today")

    points, verdicts = grade(kernel_result(build_model))
    assert points == 0
    assert (
        "raised ValueError: no model today" in verdicts["test_mnist_accuracy_at_least_975"].message
    )


# --- the trusted child process -------------------------------------------------------------------


@pytest.mark.slow
def test_the_reference_model_trains_to_0975_within_the_budget_and_earns_6_of_6(keras, monkeypatch):
    runs = []
    real = trainer.train_and_evaluate
    monkeypatch.setattr(
        trainer, "train_and_evaluate", lambda d, **kw: runs.append(real(d, **kw)) or runs[-1]
    )
    start = time.monotonic()
    points, verdicts = grade(kernel_result(solution_build_model(keras)))
    seconds = time.monotonic() - start
    run = runs[0]
    print(
        f"\nreference: trained {run['seconds']} s, test accuracy {run['accuracy']:.4f}, "
        f"{seconds:.1f} s in all (child process included)"
    )
    assert len(runs) == 1, "the three checks share one training"
    assert run["params"] == 35_114 and not run["stopped_at_cap"]
    assert run["seconds"] < trainer.TRAIN_SECONDS and run["accuracy"] >= 0.975
    assert points == 6, {g: v.message for g, v in verdicts.items()}


@pytest.mark.slow
def test_a_functional_model_with_keras_objects_and_functions_is_accepted(keras):
    inputs = keras.Input(shape=(28, 28, 1))
    x = keras.layers.Conv2D(
        8, 3, activation=keras.activations.relu, kernel_regularizer=keras.regularizers.L2(1e-4)
    )(inputs)
    x = keras.layers.GlobalMaxPooling2D()(keras.layers.Dropout(0.1)(x))
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-3, 100, 0.9)
    model.compile(
        keras.optimizers.SGD(schedule),
        keras.losses.sparse_categorical_crossentropy,
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )
    description = describe(model)
    assert trainer.validate(description) is None
    run = trainer.train_and_evaluate(description, train=False)
    assert (
        run["problem"] is None
        and run["model_problems"] == []
        and run["params"] == model.count_params()
    )


@pytest.mark.slow
def test_a_dense_only_model_fails_the_cnn_check_and_is_not_trained(keras):
    points, verdicts = grade(kernel_result(lambda: small_model(keras, conv=False)))
    assert points == 0
    message = verdicts["test_build_model_is_small_compiled_cnn"].message
    assert message == (
        "build_model(): the model has no Conv2D layer: this problem set asks for a "
        "convolutional network"
    )
    assert verdicts["test_mnist_accuracy_at_least_97"].message.startswith(
        "the grader trains only a model that passes the first test: build_model(): the model has "
        "no Conv2D"
    )


@pytest.mark.slow
def test_an_uncompiled_model_fails_with_not_compiled(keras):
    points, verdicts = grade(kernel_result(lambda: small_model(keras, compiled=False)))
    assert points == 0
    assert verdicts["test_build_model_is_small_compiled_cnn"].message.startswith(
        "build_model(): the model is not compiled: call model.compile("
    )


@pytest.mark.slow
def test_the_child_rejects_keras_names_that_are_not_modelling_objects(reference):
    def to_callback(config):
        layer(config, "ReLU").update(
            module="keras.callbacks",
            class_name="ModelCheckpoint",
            config={"filepath": "/tmp/x.keras"},
        )

    def to_own_function(config):
        layer(config, "Dense")["config"]["activation"] = {
            "module": "builtins",
            "class_name": "function",
            "config": "my_softmax",
            "registered_name": "function",
        }

    for edit, problem in (
        (to_callback, "keras.callbacks.ModelCheckpoint cannot be graded"),
        (to_own_function, "the function my_softmax cannot be graded"),
    ):
        description = edited(reference, edit)
        assert trainer.validate(description) is None  # the names pass; Keras's own lookup does not
        assert trainer.train_and_evaluate(description, train=False)["problem"].startswith(problem)


@pytest.mark.slow
def test_a_memory_bomb_fails_cleanly_and_the_grader_survives(reference):
    def huge(config):
        layer(config, "Dense")["config"]["units"] = 10**9

    start = time.monotonic()
    points, verdicts = grade(wire.Result("str", edited(reference, huge)))
    message = verdicts["test_build_model_is_small_compiled_cnn"].message
    print(f"\nmemory bomb: {time.monotonic() - start:.1f} s, {message}")
    assert points == 0
    assert "memory" in message and "8 GB" in message, message


@pytest.mark.slow
def test_the_wall_clock_limit_stops_the_child(reference):
    start = time.monotonic()
    run = trainer.train_and_evaluate(reference, limits={"wall_seconds": 3})
    assert time.monotonic() - start < 10
    # Whether the child was still loading TensorFlow or already training when the clock ran out
    # depends on the machine; either way the limit is named and no accuracy comes back.
    stopped = run["problem"] or run["training_problem"]
    assert stopped == "the graded training did not finish within 3 s", run
    assert run["accuracy"] is None


@pytest.mark.slow
def test_the_release_has_no_hidden_test_and_keeps_the_graded_cells():
    release, source = (nbformat.read(p, as_version=4) for p in (RELEASE, SOURCE))
    assert not any("HIDDEN" in cell.source for cell in source.cells)
    graded = {
        c.metadata.nbgrader["grade_id"]: c.metadata.nbgrader["points"]
        for c in release.cells
        if c.metadata.nbgrader.get("grade")
    }
    assert graded == POINTS
    assert {check.grade_id for check in ps3_mnist.CHECKS} == set(POINTS)


# --- end to end: real nbgrader autograde ----------------------------------------------------------

DENSE = (
    "def build_model():\n"
    "    model = keras.Sequential([keras.Input(shape=(28, 28, 1)), keras.layers.Flatten(),\n"
    "                              keras.layers.Dense(10, activation='softmax')])\n"
    "    model.compile('adam', 'sparse_categorical_crossentropy', metrics=['accuracy'])\n"
    "    return model\n"
)
# A CNN that would pass, but with a Lambda layer: Python code the grader will not rebuild.
LAMBDA = (
    "def build_model():\n"
    "    model = keras.Sequential([keras.Input(shape=(28, 28, 1)), keras.layers.Conv2D(8, 3),\n"
    "                              keras.layers.Lambda(lambda t: t * 1.0), "
    "keras.layers.Flatten(),\n"
    "                              keras.layers.Dense(10, activation='softmax')])\n"
    "    model.compile('adam', 'sparse_categorical_crossentropy', metrics=['accuracy'])\n"
    "    return model\n"
)
# The dense model, dressed up: the old hidden test's cached result, a printed "graded" accuracy, and
# a forged probe payload displayed while the grader calls build_model().
FORGER = (
    DENSE.replace(
        "    return model\n",
        (
            "    from IPython.display import display\n"
            '    display({\'application/vnd.cnnbook.probe.v1\': \'{"results": [{"kind": "str", '
            '"value": "x"}]}\'},'
            " raw=True)\n"
            "    print('graded training: 30 s, test accuracy 0.9900')\n"
            "    return model\n"
        ),
    )
    + "_GRADED = {'accuracy': 0.99, 'seconds': 30, 'note': ''}\n"
)
STUDENTS = {"reference": None, "dense": DENSE, "lambda": LAMBDA, "forger": FORGER}


@pytest.mark.slow
def test_nbgrader_autograde_gives_the_reference_6_and_tricks_nothing(tmp_path):
    """Real nbgrader: the reference 6; a dense model, a Lambda layer and a forger beside it 0
    each."""
    from nbgrader.api import Gradebook

    course = tmp_path / "course"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions", course / "solutions")
    nbgrader(course, "generate_assignment", "ps3-mnist", "--force")
    solution = next(
        c
        for c in nbformat.read(SOURCE, as_version=4).cells
        if c.metadata["nbgrader"]["grade_id"] == "build_model"
    ).source
    for student, source in STUDENTS.items():
        nb = nbformat.read(course / "exercises" / "ps3-mnist" / "mnist_cnn.ipynb", as_version=4)
        next(c for c in nb.cells if c.metadata["nbgrader"]["grade_id"] == "build_model").source = (
            source or solution
        )
        (course / "submitted" / student / "ps3-mnist").mkdir(parents=True)
        nbformat.write(nb, course / "submitted" / student / "ps3-mnist" / "mnist_cnn.ipynb")
    start = time.monotonic()
    nbgrader(course, "autograde", "ps3-mnist", "--force")
    print(f"\nautograde of {len(STUDENTS)} ps3 submissions: {time.monotonic() - start:.1f} s")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {s: gb.find_submission("ps3-mnist", s).score for s in STUDENTS}
    assert scores == {"reference": 6, "dense": 0, "lambda": 0, "forger": 0}
    graded = nbformat.read(
        course / "autograded" / "lambda" / "ps3-mnist" / "mnist_cnn.ipynb", as_version=4
    )
    first = next(
        c
        for c in graded.cells
        if c.metadata["nbgrader"]["grade_id"] == "test_build_model_is_small_compiled_cnn"
    )
    assert (
        first.outputs[0].output_type == "error"
        and "Lambda layers cannot be graded" in first.outputs[0].evalue
    )


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    bin_dir = Path(sys.executable).parent
    env = dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        TF_CPP_MIN_LOG_LEVEL="2",
        TF_ENABLE_ONEDNN_OPTS="0",
    )
    env.pop("NBGRADER_DB_URL", None)
    result = subprocess.run(
        [str(bin_dir / "nbgrader"), *args],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, (
        f"nbgrader {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    )
    return result
