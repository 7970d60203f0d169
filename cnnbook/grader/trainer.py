"""ps3's graded training, run by the grader: the student's model arrives as data and is rebuilt
here.

The student's kernel sends ``build_model()``'s Keras configuration as JSON (see ``keras_model`` in
:data:`cnnbook.grader.wire.KERNEL_SIDE`): no weights, no pickled code. :func:`validate` reads that
JSON without Keras and lets through only Keras's own classes and functions;
:func:`train_and_evaluate` then rebuilds, inspects, trains and evaluates the model in a child
process (``python -m cnnbook.grader.trainer``: one JSON document on stdin, one JSON line per phase
on stdout) under resource limits, so that a configuration built to exhaust memory or time costs the
student the points and nothing else. The child runs only Keras's code; it checks every class again
with Keras at hand before Keras instantiates anything.

The graded training is fixed: real MNIST (pixels / 255, shape (28, 28, 1)), seed 1234, deterministic
ops, one epoch, batch 128, shuffled, stopped after :data:`TRAIN_SECONDS`; then accuracy on the
10,000 test images.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time

MAX_CONFIG_CHARS = 300_000  # the reference model's description has 9,231 characters
MAX_DEPTH = 32  # the reference model's configuration is 7 levels deep
MAX_OBJECTS = 5_000  # objects with a "class_name" in one description
MAX_PARAMS = 500_000
INPUT_SHAPE, OUTPUT_SHAPE = (28, 28, 1), (10,)
SEED = 1234
EPOCHS, BATCH_SIZE = 1, 128
TRAIN_SECONDS = 150  # wall clock of model.fit
EVALUATE_SECONDS = 150  # wall clock of the predictions on the test images
BUDGET_NOTE = "1 epoch, batch 128"

# Limits of the child process. The wall clock covers TensorFlow's import, the rebuild, both capped
# phases and one long last step each; CPU seconds are that wall clock on every core.
DEFAULT_LIMITS = {
    "address_space_mb": 8192,  # RLIMIT_AS: TensorFlow alone reserves about 2.3 GB
    "wall_seconds": 420,
    "cpu_seconds": None,  # None: wall_seconds x the number of cores
    "file_size_mb": 64,
    # Threads of TensorFlow, OpenMP and BLAS (cnnbook.grader.plan.thread_env); None: the grading
    # process's setting, SandboxedExecute.threads (cnnbook.grader.plan.grader_threads), the kernel's
    # limit too; 0: no limit.
    "threads": None,
}

# Objects Keras's own serialisation writes without a module; none of them runs code.
PLAIN_SPECIALS = {
    "__keras_tensor__",
    "__numpy__",
    "__tensor__",
    "__bytes__",
    "__ellipsis__",
    "__slice__",
}
# Keras's one class that its serialisation names by an internal module.
INTERNAL_CLASSES = {("keras.src.models.functional", "Functional")}
FUNCTION_MODULES = {"builtins", "keras.activations", "keras.losses", "keras.metrics"}
NO_CODE = "the grader rebuilds your model from its configuration, which carries no Python code"
REJECTED_LAYERS = {
    "Lambda": (
        f"Lambda layers cannot be graded: {NO_CODE}; use Keras's own layers instead "
        "(Rescaling, Activation, ReLU, Reshape, ...)"
    ),
    "TFSMLayer": "TFSMLayer cannot be graded: it loads a saved model from a file",
    "TorchModuleWrapper": f"TorchModuleWrapper cannot be graded: {NO_CODE}",
    "JaxLayer": f"JaxLayer cannot be graded: {NO_CODE}",
    "FlaxLayer": f"FlaxLayer cannot be graded: {NO_CODE}",
    "StringLookup": (
        "StringLookup cannot be graded: it can read a vocabulary file (and MNIST has no text)"
    ),
    "IntegerLookup": "IntegerLookup cannot be graded: it can read a vocabulary file",
    "TextVectorization": "TextVectorization cannot be graded: it can read a vocabulary file",
}
LAMBDA = (
    f"Python lambdas cannot be graded: {NO_CODE}; name an activation by its string "
    '("relu") or use a Keras layer'
)


def not_keras(name: str) -> str:
    return (
        f"{name} cannot be graded: it is not one of Keras's own classes or functions ({NO_CODE}, "
        "so custom layers, models, functions and registered objects cannot be rebuilt)"
    )


# --------------------------------------------------------------------------- validation, no Keras


def parse(description) -> tuple[dict | None, dict | None, str | None]:
    """The model configuration and compile configuration, or a problem in words."""
    if not isinstance(description, str):
        return None, None, "the model's description is not text"
    if len(description) > MAX_CONFIG_CHARS:
        return (
            None,
            None,
            (
                f"the model's configuration has {len(description):,} characters or more; the "
                f"grader accepts at most {MAX_CONFIG_CHARS:,} (far more than a model under the "
                "parameter cap needs)"
            ),
        )
    try:
        outer = json.loads(description)
        model = json.loads(outer["config"])
        compiled = json.loads(outer["compile"]) if outer.get("compile") is not None else None
    except RecursionError:
        return None, None, f"the model's configuration is nested more than {MAX_DEPTH} levels deep"
    except (ValueError, TypeError, KeyError):
        return (
            None,
            None,
            "the model's configuration is not the JSON that keras.Model.to_json() writes",
        )
    if not isinstance(model, dict) or not isinstance(compiled, (dict, type(None))):
        return (
            None,
            None,
            "the model's configuration is not the JSON that keras.Model.to_json() writes",
        )
    return model, compiled or None, None


def _is_function_dump(node: dict) -> bool:
    """Keras writes a lambda activation as {"value": [base64 bytecode, defaults, closure]}, no class
    name."""
    value = node.get("value")
    return (
        set(node) == {"value"}
        and isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], str)
    )


def keras_objects(tree) -> tuple[list[dict], str | None]:
    """Every object (dict with a "class_name") in ``tree``, or a problem: too deep, too many, or
    code."""
    found, stack = [], [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return [], f"the model's configuration is nested more than {MAX_DEPTH} levels deep"
        if isinstance(node, dict):
            if _is_function_dump(node):
                return [], LAMBDA
            if "class_name" in node:
                found.append(node)
            stack.extend((value, depth + 1) for value in node.values())
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node)
        if len(found) > MAX_OBJECTS:
            return [], f"the model's configuration holds more than {MAX_OBJECTS:,} objects"
    return found, None


def object_problem(obj: dict) -> str | None:
    """Why one serialised object cannot be rebuilt safely, judged from its names alone."""
    class_name, module = obj.get("class_name"), obj.get("module")
    registered = obj.get("registered_name")
    if not isinstance(class_name, str) or not isinstance(module, (str, type(None))):
        return "the model's configuration is not the JSON that keras.Model.to_json() writes"
    if class_name == "__lambda__":
        return LAMBDA
    if class_name in PLAIN_SPECIALS:
        return None
    if class_name == "function":
        name = obj.get("config")
        known = module in FUNCTION_MODULES and isinstance(name, str)
        if not known or registered not in (None, "function", name):
            return not_keras(f"the function {name if isinstance(name, str) else '?'}")
        return None
    label = f"{module}.{class_name}" if module else class_name
    if class_name in REJECTED_LAYERS:
        return REJECTED_LAYERS[class_name]
    if module is None or not (module == "keras" or module.startswith("keras.")):
        return not_keras(label)
    if registered not in (None, class_name):
        return not_keras(f"{label} (registered as {registered!r})")
    return None


def validate(description) -> str | None:
    """None when ``description`` names only Keras's own classes and functions, else the problem."""
    model, compiled, problem = parse(description)
    if problem:
        return problem
    for tree in (model, compiled):
        objects, problem = keras_objects(tree)
        for obj in objects:
            problem = problem or object_problem(obj)
        if problem:
            return problem
    return None


def compile_problems(compiled: dict | None) -> list[str]:
    """What the compile configuration lacks: an optimizer, a loss, the accuracy metric."""
    how = (
        'call model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", '
        'metrics=["accuracy"])'
    )
    if not compiled:
        return [f"the model is not compiled: {how} before returning it"]
    problems = []
    if compiled.get("optimizer") is None or compiled.get("loss") is None:
        problems.append(f"the model is not compiled with an optimizer and a loss: {how}")
    if not _has_accuracy(compiled.get("metrics")):
        problems.append(
            'the model is compiled without the accuracy metric: pass metrics=["accuracy"]'
        )
    return problems


def _has_accuracy(metrics) -> bool:
    if isinstance(metrics, str):
        return metrics in ("accuracy", "acc", "sparse_categorical_accuracy")
    if isinstance(metrics, dict):
        if "class_name" in metrics:
            return metrics["class_name"] == "SparseCategoricalAccuracy"
        return any(_has_accuracy(value) for value in metrics.values())
    if isinstance(metrics, list):
        return any(_has_accuracy(value) for value in metrics)
    return False


# --------------------------------------------------------------------------- the grader's side


def train_and_evaluate(description: str, *, train: bool = True, limits: dict | None = None) -> dict:
    """Rebuild, inspect and (when the model qualifies) train the model in a limited child process.

    Returns plain data: ``problem`` (the model could not be rebuilt: every check fails),
    ``model_problems`` (what keeps it from being a small compiled CNN), ``params``, and after
    training ``accuracy``, ``seconds``, ``stopped_at_cap`` or ``training_problem``.
    """
    result = {
        "problem": validate(description),
        "model_problems": [],
        "params": None,
        "accuracy": None,
        "seconds": None,
        "stopped_at_cap": False,
        "training_problem": None,
    }
    if result["problem"]:
        return result
    limits = {**DEFAULT_LIMITS, **(limits or {})}
    if limits["threads"] is None:
        from cnnbook.grader.plan import grader_threads

        limits["threads"] = grader_threads()
    phases, ended = _run_child({"description": description, "train": train}, limits)
    for phase in phases:
        result.update({k: v for k, v in phase.items() if k in result})
    if "model" not in {phase.get("phase") for phase in phases}:
        result["problem"] = result["problem"] or ended
    elif (
        train
        and not result["problem"]
        and not result["model_problems"]
        and result["accuracy"] is None
    ):
        result["training_problem"] = result["training_problem"] or ended
    return result


def _run_child(request: dict, limits: dict) -> tuple[list[dict], str]:
    """The child's phase records, and in words how it ended when it did not finish."""
    with tempfile.TemporaryDirectory(prefix="cnnbook-trainer-") as folder:
        # The child sets its own limits before TensorFlow loads (a preexec_fn is unsafe in a grader
        # that runs threads); its own session lets the wall clock kill it with anything it started.
        proc = subprocess.Popen(
            [sys.executable, "-m", "cnnbook.grader.trainer"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=folder,
            env=_child_env(folder, limits["threads"]),
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(
                json.dumps({**request, "limits": limits}).encode(), timeout=limits["wall_seconds"]
            )
            ended = _how_it_ended(proc.returncode, limits)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            ended = f"the graded training did not finish within {limits['wall_seconds']} s"
    return _records(out), ended


def _how_it_ended(code: int, limits: dict) -> str:
    if code == -signal.SIGXCPU:
        return "the graded training used more CPU time than the grader allows"
    if code != 0:
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        return (
            f"the grader's training process stopped ({how}): the model probably needs more memory "
            f"than the {limits['address_space_mb'] // 1024} GB the grader allows"
        )
    return "the grader's training process ended without a result (tell your instructor)"


def _records(out: bytes) -> list[dict]:
    records = []
    for line in out.decode("utf-8", "replace").splitlines()[:10]:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _child_env(folder: str, threads: int = 0) -> dict:
    """The grader's environment minus its secrets, with the project's TensorFlow settings and,
    unless ``threads`` is 0, the thread limits the student's kernel gets."""
    from cnnbook.grader.plan import thread_env

    keep = (
        "LANG",
        "LC_ALL",
        "TZ",
        "PATH",
        "PYTHONPATH",
        "CNNBOOK_DATA_DIR",
        "CNNBOOK_MNIST_SOURCE",
    )
    env = {k: os.environ[k] for k in keep if k in os.environ}
    # As the Makefile: quiet logs, and no oneDNN, whose sums in another order would move the last
    # digits of an accuracy right at a threshold depending on how the grader was started.
    env.update(
        HOME=folder,
        TF_CPP_MIN_LOG_LEVEL="2",
        TF_ENABLE_ONEDNN_OPTS="0",
        PYTHONDONTWRITEBYTECODE="1",
        MPLBACKEND="Agg",
        **thread_env(threads),
    )
    return env


def limit_this_process(limits: dict) -> None:
    """The child's resource limits, set by itself before it imports TensorFlow."""
    mb = 1024 * 1024
    cpu = limits["cpu_seconds"] or limits["wall_seconds"] * (os.cpu_count() or 1)
    for which, value in (
        (resource.RLIMIT_AS, limits["address_space_mb"] * mb),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_FSIZE, limits["file_size_mb"] * mb),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(which, (int(value), int(value)))
    _die_with_parent()


def _die_with_parent() -> None:
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# --------------------------------------------------------------------------- the child process


def _resolve_problem(obj: dict) -> str | None:
    """With Keras imported: the object must resolve to a Keras class or function that runs no user
    code."""
    import keras
    from keras.src import api_export

    class_name, module = obj["class_name"], obj.get("module")
    if class_name in PLAIN_SPECIALS:
        return None
    if class_name == "function":
        return _function_problem(obj["config"], module)
    target = api_export.get_symbol_from_name(f"{module}.{class_name}")
    if target is None and (module, class_name) in INTERNAL_CLASSES:
        target = keras.Model
    bases = (
        keras.layers.Layer,
        keras.initializers.Initializer,
        keras.regularizers.Regularizer,
        keras.constraints.Constraint,
        keras.optimizers.Optimizer,
        keras.losses.Loss,
        keras.metrics.Metric,
        keras.optimizers.schedules.LearningRateSchedule,
        keras.DTypePolicy,
    )
    if not isinstance(target, type) or not issubclass(target, bases):
        return not_keras(f"{module}.{class_name}")
    for name, message in REJECTED_LAYERS.items():
        rejected = getattr(keras.layers, name, None)
        if isinstance(rejected, type) and issubclass(target, rejected):
            return message
    return None


def _function_problem(name: str, module: str) -> str | None:
    """Keras finds a "builtins" function by name in several of its modules: each match must be a
    function."""
    import types

    from keras.src import api_export
    from keras.src.saving.serialization_lib import BUILTIN_MODULES

    names = (
        [f"keras.{mod}.{name}" for mod in sorted(BUILTIN_MODULES)]
        if module == "builtins"
        else [f"{module}.{name}"]
    )
    found = [api_export.get_symbol_from_name(full) for full in names]
    found = [target for target in found if target is not None]
    if not found or not all(
        isinstance(t, types.FunctionType) and t.__module__.startswith("keras.") for t in found
    ):
        return not_keras(f"the function {name}")
    return None


def _rebuild(model_config: dict, compiled: dict | None):
    """The model from its configuration (safe mode, no custom objects), compiled by the grader's
    rules."""
    import keras
    from keras.src.saving.serialization_lib import SafeModeScope

    model_config = _without_compile_configs(model_config)
    with SafeModeScope(True):
        model = keras.models.model_from_json(json.dumps(model_config), custom_objects=None)
        if isinstance(model, keras.Model) and compiled:
            keys = ("optimizer", "loss", "loss_weights", "metrics", "weighted_metrics")
            fixed = {k: compiled.get(k) for k in keys}
            # The graded training is the same for everyone: graph mode, no XLA, one step per call.
            model.compile_from_config(
                {**fixed, "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}
            )
    return model


def _without_compile_configs(tree):
    """A configuration without its own compile settings: the grader compiles from the checked
    copy."""
    if isinstance(tree, dict):
        return {k: _without_compile_configs(v) for k, v in tree.items() if k != "compile_config"}
    if isinstance(tree, list):
        return [_without_compile_configs(v) for v in tree]
    return tree


def _shape(model, which: str) -> tuple | None:
    """``model.input_shape`` or ``output_shape`` without the batch axis; None when Keras has none to
    give."""
    try:
        return tuple(getattr(model, which)[1:])
    except Exception:  # noqa: BLE001 - an unbuilt or multi-input model has no single shape
        return None


def _params(model) -> int | None:
    try:
        return int(model.count_params())
    except Exception:  # noqa: BLE001 - an unbuilt model has no parameters to count
        return None


def model_problems(model, compiled: dict | None) -> list[str]:
    """What keeps the rebuilt model from being a small compiled CNN (the first graded cell's
    rules)."""
    import keras

    if not isinstance(model, keras.Model):
        return [f"build_model() must return a keras.Model, not a {type(model).__name__}"]
    problems = []
    if _shape(model, "input_shape") != INPUT_SHAPE:
        problems.append(
            f"the input shape is {_shape(model, 'input_shape')}, expected (28, 28, 1): start with "
            "keras.Input(shape=(28, 28, 1))"
        )
    if _shape(model, "output_shape") != OUTPUT_SHAPE:
        problems.append(
            f"the output shape is {_shape(model, 'output_shape')}, expected (10,): end with "
            "Dense(10, ...)"
        )
    if not any(isinstance(layer, keras.layers.Conv2D) for layer in model._flatten_layers()):
        problems.append(
            "the model has no Conv2D layer: this problem set asks for a convolutional network"
        )
    params = _params(model)
    if params is None or params > MAX_PARAMS:
        counted = "an unknown number of" if params is None else f"{params:,}"
        problems.append(
            f"the model has {counted} parameters, the cap is {MAX_PARAMS:,}: use fewer filters or "
            "pool before Flatten"
        )
    return problems + compile_problems(compiled)


def _evaluate_problem(model) -> str | None:
    import numpy as np

    try:
        model.evaluate(np.zeros((4, *INPUT_SHAPE), "float32"), np.array([0, 1, 2, 9]), verbose=0)
    except Exception as error:  # noqa: BLE001 - any failure is the student's model's
        return (
            "the model could not be evaluated on 4 images with integer labels 0-9 (use "
            f'loss="sparse_categorical_crossentropy"): {_error_text(error)}'
        )
    return None


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error)[:200]}"


def _is_memory_error(error: BaseException) -> bool:
    name, text = type(error).__name__, str(error)[:500]
    return isinstance(error, MemoryError) or "ResourceExhausted" in name or "OOM" in text


def _failure(error: BaseException, doing: str, limits: dict) -> str:
    if _is_memory_error(error):
        return (
            f"{doing} ran out of memory (the grader allows {limits['address_space_mb'] // 1024} "
            "GB): the model, or what it computes for a batch of 128 images, is far too large"
        )
    return f"{doing} failed: {_error_text(error)}"


def _mnist():
    import numpy as np

    from cnnbook.data import load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist()
    scale = np.float32(255.0)
    return (
        (x_train.astype("float32") / scale)[..., None],
        y_train.astype("int64"),
        (x_test.astype("float32") / scale)[..., None],
        y_test.astype("int64"),
    )


def _cap_callback(seconds: float):
    import keras

    class WallTimeCap(keras.callbacks.Callback):
        """Stops training after ``seconds`` of wall clock (checked after each step)."""

        def __init__(self):
            super().__init__()
            self.stopped = False

        def on_train_begin(self, logs=None):
            self.start = time.monotonic()

        def on_train_batch_end(self, batch, logs=None):
            if time.monotonic() - self.start > seconds:
                self.model.stop_training, self.stopped = True, True

    return WallTimeCap()


def _accuracy(model, x_test, y_test) -> float | None:
    """Share of test images whose largest output is the label; None past
    :data:`EVALUATE_SECONDS`."""
    import numpy as np

    start, correct = time.monotonic(), 0
    for first in range(0, len(x_test), 500):
        scores = np.asarray(model.predict_on_batch(x_test[first : first + 500]))
        correct += int(
            np.sum(
                np.argmax(scores.reshape(len(scores), -1), axis=1) == y_test[first : first + 500]
            )
        )
        if time.monotonic() - start > EVALUATE_SECONDS and first + 500 < len(x_test):
            return None
    return correct / len(x_test)


def _train(model_config: dict, compiled: dict | None) -> dict:
    import keras
    import tensorflow as tf

    x_train, y_train, x_test, y_test = _mnist()
    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    model = _rebuild(model_config, compiled)
    cap = _cap_callback(TRAIN_SECONDS)
    start = time.monotonic()
    model.fit(
        x_train,
        y_train,
        epochs=EPOCHS,
        batch_size=BATCH_SIZE,
        shuffle=True,
        verbose=0,
        callbacks=[cap],
    )
    seconds = time.monotonic() - start
    accuracy = _accuracy(model, x_test, y_test)
    if accuracy is None:
        return {
            "training_problem": (
                f"the predictions on the 10,000 test images took more than {EVALUATE_SECONDS} s"
            )
        }
    return {"accuracy": accuracy, "seconds": round(seconds, 1), "stopped_at_cap": cap.stopped}


def _model_phase(model_config: dict, compiled: dict | None, limits: dict) -> dict:
    """Check every object with Keras at hand, rebuild the model, and list what keeps it from the
    rules."""
    import keras

    objects = keras_objects(model_config)[0] + keras_objects(compiled)[0]
    problem = next(filter(None, map(_resolve_problem, objects)), None)
    if problem:
        return {"problem": problem}
    try:
        model = _rebuild(model_config, compiled)
    except Exception as error:  # noqa: BLE001 - the configuration is the student's
        return {"problem": _failure(error, "rebuilding the model from its configuration", limits)}
    problems = model_problems(model, compiled)
    params = _params(model) if isinstance(model, keras.Model) else None
    if not problems:
        problems = list(filter(None, [_evaluate_problem(model)]))
    return {"model_problems": problems, "params": params}


def child_main(request: dict, out) -> None:
    """Write one JSON line per phase: "model" (rebuilt and checked), then "trained"."""

    def emit(phase: str, record: dict) -> None:
        out.write(json.dumps({"phase": phase, **record}) + "\n")
        out.flush()

    description, limits = (
        request.get("description"),
        {**DEFAULT_LIMITS, **request.get("limits", {})},
    )
    problem = validate(description)
    if problem:
        return emit("model", {"problem": problem})
    model_config, compiled, _ = parse(description)
    try:
        record = _model_phase(model_config, compiled, limits)
    except Exception as error:  # noqa: BLE001 - the model is the student's
        record = {"problem": _failure(error, "checking the rebuilt model", limits)}
    emit("model", record)
    if record.get("problem") or record["model_problems"] or not request.get("train"):
        return None
    try:
        record = _train(model_config, compiled)
    except Exception as error:  # noqa: BLE001 - the model is the student's
        record = {"training_problem": _failure(error, "the graded training", limits)}
    return emit("trained", record)


def main() -> int:
    # Results go to a private copy of stdout; TensorFlow and Keras may print on the real one.
    out = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    request = json.loads(sys.stdin.read())  # from the grader, which checked the description's size
    limit_this_process({**DEFAULT_LIMITS, **request.get("limits", {})})
    import warnings

    warnings.simplefilter("ignore")
    child_main(request, out)
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
