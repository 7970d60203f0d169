"""ps3-mnist (mnist_cnn.ipynb): the grader rebuilds, trains and evaluates the student's model.

The student's kernel only turns ``build_model()``'s model into its Keras configuration (JSON); the
grader's child process (:mod:`cnnbook.grader.trainer`) rebuilds it from Keras's own classes, checks
it, trains it once with the fixed budget and measures test accuracy. The three graded cells share
that one training.
"""

from __future__ import annotations

from cnnbook.grader import trainer
from cnnbook.grader.compare import describe
from cnnbook.grader.plan import Call, Check, Context, Probe, Verdict

NOTEBOOK = "mnist_cnn"
HIDDEN_PACKAGES = ()  # the student's model needs TensorFlow
# The graded training runs in the grader's process, after the notebook: time the batch runner
# allows.
GRADER_SECONDS = trainer.DEFAULT_LIMITS["wall_seconds"]
# The notebook only builds the model (read by cnnbook.grader.plan.Plan). Its slowest cell, the
# import of TensorFlow, took 2.5-3.6 s in the sandbox on 2 busy cores, the whole reference notebook
# 5-8 s; 60 s per cell leaves room for a cold disk cache and a busy machine. The notebook's 240 s
# hold three cells that loop (or train a model of the student's own), the kernel restarts after
# them, each re-importing TensorFlow, and the probe cell.
CELL_SECONDS = 60
NOTEBOOK_SECONDS = 240
CALL = "build_model()"
CACHE_KEY = "ps3_graded_training"
# The visible test of build_model() gives the same two sentences (solutions/ps3-mnist).
LOGITS_WITH_PROBABILITY_LOSS = (
    'the output layer gives logits (no softmax) but loss="sparse_categorical_crossentropy" expects '
    'probabilities: end with Dense(10, activation="softmax"), or compile with '
    "loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)"
)
SOFTMAX_WITH_LOGITS_LOSS = (
    "the output layer applies softmax but the loss is compiled with from_logits=True, which "
    'expects logits: compile with loss="sparse_categorical_crossentropy", or end with Dense(10) '
    "and no softmax"
)


def probes(rng) -> list[Probe]:
    return [Probe("build_model", [Call(label=CALL)], serialiser="keras_model")]


def _kernel_problem(result) -> str | None:
    """Why the kernel sent no model description, in words; None when it sent one."""
    if result.kind == "str":
        return None
    if result.kind == "raised" and result.type == "AttributeError" and "to_json" in result.message:
        return f"{CALL} must return a keras.Model"  # the kernel's serialiser calls model.to_json()
    if result.kind == "other":
        return f"{CALL} must return a keras.Model, not a {result.type or 'value of another type'}"
    if result.kind == "too_big":
        return (
            "the model's configuration is larger than the grader accepts "
            f"({trainer.MAX_CONFIG_CHARS:,} characters)"
        )
    return f"{CALL} {describe(result)}"


def _config(node) -> dict:
    """A serialised object's "config" (an empty dict when it has none or is not an object)."""
    config = node.get("config") if isinstance(node, dict) else None
    return config if isinstance(config, dict) else {}


def _last_layer(model: dict) -> dict | None:
    """The serialised layer that gives a Sequential or functional model's output (None: unknown)."""
    layers = [layer for layer in _config(model).get("layers") or [] if isinstance(layer, dict)]
    if model.get("class_name") == "Sequential":
        layers = [layer for layer in layers if layer.get("class_name") != "InputLayer"]
        return layers[-1] if layers else None
    outputs = _config(model).get("output_layers")
    if isinstance(outputs, list) and len(outputs) == 1 and isinstance(outputs[0], list):
        outputs = outputs[0]
    name = outputs[0] if isinstance(outputs, list) and outputs else None
    named = [layer for layer in layers if (layer.get("name") or _config(layer).get("name")) == name]
    return named[0] if name is not None and len(named) == 1 else None


def output_gives(model: dict, depth: int = 0) -> str | None:
    """ "probabilities" when the model's last layer applies softmax, "logits" when it applies no
    activation, None otherwise (another activation, or a layer this reading does not know)."""
    layer = _last_layer(model)
    if layer is None or depth > 8:
        return None
    if layer.get("class_name") in ("Sequential", "Functional"):
        return output_gives(layer, depth + 1)
    if layer.get("class_name") == "Softmax":
        return "probabilities"
    activation = _config(layer).get("activation")
    if isinstance(activation, dict):  # a function serialised as an object
        activation = activation.get("config")
    return {"softmax": "probabilities", "linear": "logits"}.get(activation)


def loss_expects(loss) -> str | None:
    """What the sparse cross-entropy loss, as serialised, expects: "probabilities" or "logits"."""
    name = "sparse_categorical_crossentropy"
    if loss == name or (isinstance(loss, dict) and loss.get("config") == name):
        return "probabilities"  # the string, or the function: from_logits=False
    if isinstance(loss, dict) and loss.get("class_name") == "SparseCategoricalCrossentropy":
        from_logits = _config(loss).get("from_logits")
        return "logits" if from_logits is True else "probabilities"
    return None


def output_loss_problem(description: str) -> str | None:
    """Why the output layer and the loss disagree, or None (also when the description is unreadable:
    the grader's rebuild says why)."""
    config, compiled, problem = trainer.parse(description)
    if problem or not compiled:
        return None
    gives, expects = output_gives(config), loss_expects(compiled.get("loss"))
    if gives == "logits" and expects == "probabilities":
        return LOGITS_WITH_PROBABILITY_LOSS
    if gives == "probabilities" and expects == "logits":
        return SOFTMAX_WITH_LOGITS_LOSS
    return None


def _rebuild_and_train(description: str) -> dict:
    """The trainer's run; a model whose output and loss disagree is rebuilt and checked, not
    trained."""
    mismatch = output_loss_problem(description)
    run = trainer.train_and_evaluate(description, train=mismatch is None)
    if mismatch and not run.get("problem"):
        run["model_problems"] = [*run.get("model_problems", []), mismatch]
    return run


def graded(context: Context) -> dict:
    """The trusted rebuild and training of this submission's model, done once for all three
    cells."""
    if CACHE_KEY not in context.cache:
        results = context.results.get("build_model") or []
        problem = (
            _kernel_problem(results[0])
            if results
            else f"{CALL} returned no result the grader could read"
        )
        context.cache[CACHE_KEY] = (
            {"problem": problem} if problem else _rebuild_and_train(results[0].value)
        )
    return context.cache[CACHE_KEY]


def _model_problem(run: dict) -> str | None:
    """Why the model is not a small compiled CNN the grader can rebuild, as one sentence."""
    if run.get("problem"):
        return run["problem"]
    if run.get("model_problems"):
        return f"{CALL}: " + "; ".join(run["model_problems"])
    return None


def model_is_small_compiled_cnn(context: Context) -> Verdict:
    problem = _model_problem(graded(context))
    return Verdict.failed(problem) if problem else Verdict.passed()


def accuracy_at_least(threshold: float):
    def judge(context: Context) -> Verdict:
        run = graded(context)
        problem = _model_problem(run)
        if problem:
            return Verdict.failed(
                f"the grader trains only a model that passes the first test: {problem}"
            )
        if run.get("training_problem") or run.get("accuracy") is None:
            return Verdict.failed(
                run.get("training_problem") or "the graded training gave no accuracy"
            )
        if run["accuracy"] >= threshold:
            return Verdict.passed()
        cap = f", stopped at the {trainer.TRAIN_SECONDS} s cap" if run.get("stopped_at_cap") else ""
        return Verdict.failed(
            f"test accuracy {run['accuracy']:.4f} after the graded training "
            f"({trainer.BUDGET_NOTE}{cap}) is below {threshold:g}"
        )

    return judge


CHECKS = [
    Check("test_build_model_is_small_compiled_cnn", model_is_small_compiled_cnn, "build_model"),
    Check("test_mnist_accuracy_at_least_97", accuracy_at_least(0.97), "build_model"),
    Check("test_mnist_accuracy_at_least_975", accuracy_at_least(0.975), "build_model"),
]
