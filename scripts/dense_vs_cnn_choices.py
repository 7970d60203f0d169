"""Re-run the experiments behind the choices that book/dense-vs-cnn.md makes in its prose, and
record their validation accuracies in scripts/dense_vs_cnn_choices.json.

The page trains only what it shows; the alternatives it compares them with (net2 on scaled pixels
for 5 epochs, the two-block CNN for 5 and 6 epochs, net1 and net2 from another random seed) are
trained here, on the same validation split, with the page's own code: the first cell, the data
cell and the page's function definitions are read from the page and executed, not copied.
tests/test_page_dense_vs_cnn.py checks that every figure the prose quotes is the recorded one.

Usage (about 10 minutes on 2 cores): .venv/bin/python scripts/dense_vs_cnn_choices.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "book" / "dense-vs-cnn.md"
OUT = Path(__file__).with_suffix(".json")
FUNCTIONS = ("train", "make_net1", "make_net2", "conv_block", "make_improved")


def page_code() -> str:
    """The page's set-up (first cell, data cell) and its function definitions, as one program."""
    text = PAGE.read_text()
    cells = re.findall(r"```\{code-cell\} ipython3\n(.*?)```", text, flags=re.S)
    setup = [cells[0], next(c for c in cells if "load_fashion_mnist()" in c)]
    definitions = []
    for name in FUNCTIONS:
        found = re.search(rf"^def {name}\(.*?(?=^\S)", text, flags=re.S | re.M)
        assert found, f"book/dense-vs-cnn.md defines no {name}"
        definitions.append(found.group())
    return "\n".join(setup + definitions)


def two_block(keras, layers, conv_block):
    """The improved network with two blocks of 32 and 64 filters instead of three."""
    return keras.Sequential(
        [keras.Input(shape=(28, 28, 1)), *conv_block(32), *conv_block(64), layers.Flatten()]
        + [layers.Dropout(0.3), layers.Dense(128, activation="relu"), layers.Dropout(0.3)]
        + [layers.Dense(10, activation="softmax")],
        name="two_block",
    )


def improved_training(page, model, epochs):
    """The page's training of the improved network (Adam, cosine decay, batches of 128)."""
    keras, np = page["keras"], page["np"]
    steps = epochs * int(np.ceil(len(page["X"]) / 128))
    schedule = keras.optimizers.schedules.CosineDecay(0.003, decay_steps=steps)
    optimizer = keras.optimizers.Adam(schedule)
    x = page["X"] / 255.0
    return page["train"](model, x, epochs=epochs, batch_size=128, optimizer=optimizer)


def run(page, seed, make, scaled=False, epochs=5):
    page["keras"].utils.set_random_seed(seed)
    x = page["X"] / 255.0 if scaled else page["X"]
    return round(float(page["train"](make(), x, epochs=epochs)[0]), 4)


def main() -> None:
    page: dict = {}
    exec(compile(page_code(), str(PAGE), "exec"), page)  # the project's own page, not input
    keras, layers, seed = page["keras"], page["layers"], page["SEED"]
    results = {
        "net2_scaled_5_epochs": run(page, seed, page["make_net2"], scaled=True),
        "net1_seed_1_raw": run(page, 1, page["make_net1"]),
        "net2_seed_1_raw": run(page, 1, page["make_net2"]),
        "net1_seed_1_scaled": run(page, 1, page["make_net1"], scaled=True),
        "net2_seed_1_scaled": run(page, 1, page["make_net2"], scaled=True),
    }
    for epochs in (5, 6):
        keras.utils.set_random_seed(seed)
        model = two_block(keras, layers, page["conv_block"])
        accuracy = improved_training(page, model, epochs)[0]
        results[f"two_block_{epochs}_epochs"] = round(float(accuracy), 4)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
