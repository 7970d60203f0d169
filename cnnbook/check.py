"""Check an exercise notebook before you submit it: ``python -m cnnbook.check NOTEBOOK``.

The notebook runs top to bottom in a fresh kernel, as the grader runs it; then, task by task, the
report says what each visible test found, and lists what would cost points at grading time: a
notebook saved under another name, an old notebook format, functions that break the numpy-only rule
(read from the source by the grader's own reading, :mod:`cnnbook.grader.sourcescan`), cells slower
than the grader allows, and for ps3 the graded training's estimated time on the grader against its
budget. The student's file is only read, never written.

The check needs only the notebook: it runs the student's code and the visible tests in it, and
imports neither the solutions nor the grader's checks (their references and expected values stay
with the grader). Passing every visible test is not a grade: the grader also calls the functions on
random cases of its own.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# The grader's graded training (cnnbook/grader/trainer.py) and its hardware
# (benchmarks/grading-results.md): the estimate of ps3 is given against these.
TRAIN_SECONDS = 150
GRADER_HARDWARE = "2 CPU cores (AMD EPYC), no GPU"
# The calibration model's epoch (ESTIMATE_CELL) on an idle grader, in seconds; the estimate scales
# it by how much slower or faster the student's model trains than that model on the student's
# machine. Measured 2026-11-30 through the grader's own trainer in the same busy minutes (load 7-9
# on 2 cores): the calibration model's epoch 91.0 s, the reference solution's 87.5 s. The
# reference's whole graded run takes 27-29 s on the idle grader (benchmarks/notes.md), its epoch
# about 22 s.
CALIBRATION_GRADER_SECONDS = 23.0
MARK = "cnnbook-check-estimate:"


@dataclass(frozen=True)
class Assignment:
    """What the check needs to know of an assignment (no expected values, no hidden tests)."""

    name: str
    notebook: str  # the file name the grader looks for, without .ipynb
    marker: str  # the grade_id of a solution cell only this assignment has
    numpy_only: tuple[str, ...]  # the functions the numpy-only rule applies to
    cell_seconds: float  # the grader's limits (cnnbook/grader/checks/<ps>.py)
    notebook_seconds: float
    trains: bool = False


ASSIGNMENTS = (
    Assignment("ps1-convolution", "convolution", "conv2d", ("conv2d",), 30, 110),
    Assignment("ps2-pooling", "pooling", "max_pool2d", ("max_pool2d", "avg_pool2d"), 30, 110),
    Assignment("ps3-mnist", "mnist_cnn", "build_model", (), 60, 240, trains=True),
)


class CheckError(Exception):
    """Bad input: one line saying what is wrong and how to fix it."""


@dataclass
class TestResult:
    grade_id: str
    points: float
    message: str | None  # None: passed
    seconds: float | None = None


def nbgrader_meta(cell: dict) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def read_notebook(path: Path) -> dict:
    """The notebook as JSON (any nbformat), or CheckError saying why it cannot be read."""
    if not path.is_file():
        raise CheckError(f"{path}: no such file; give the path of your .ipynb notebook")
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise CheckError(
            f"{path}: not a Jupyter notebook (not valid JSON: {error}); open it in JupyterLab "
            "and save it again, or download the assignment again"
        ) from None
    if not isinstance(nb, dict) or not isinstance(nb.get("nbformat"), int):
        raise CheckError(f"{path}: not a Jupyter notebook (no nbformat version)")
    return nb


def as_version_4(nb: dict) -> dict:
    """An nbformat 4 copy of ``nb`` (old notebooks converted as the grader converts them)."""
    import nbformat

    try:
        return nbformat.reads(json.dumps(nb), as_version=4)
    except Exception as error:  # noqa: BLE001 - any malformed notebook: one line, no traceback
        raise CheckError(
            f"the notebook cannot be read as a Jupyter notebook ({type(error).__name__}: "
            f"{str(error)[:200]}); download the assignment again and copy your code into it"
        ) from None


def identify(nb: dict, path: Path) -> Assignment:
    """The assignment, from the notebook's cells (or, when they lost their metadata, its name)."""
    ids = {nbgrader_meta(cell).get("grade_id") for cell in nb.get("cells", [])}
    for assignment in ASSIGNMENTS:
        if assignment.marker in ids:
            return assignment
    for assignment in ASSIGNMENTS:
        if path.stem.startswith(assignment.notebook):
            return assignment
    raise CheckError(
        f"{path}: none of the assignments' cells are in this notebook; check the notebook you "
        "downloaded from exercises/ (ps1-convolution, ps2-pooling or ps3-mnist)"
    )


def file_problems(path: Path, raw: dict, nb, assignment: Assignment) -> list[str]:
    """What about the file itself would cost points: its name, its format (``raw``: as saved), lost
    test cells (``nb``: converted to nbformat 4)."""
    problems = []
    wanted = f"{assignment.notebook}.ipynb"
    if path.name != wanted:
        problems.append(
            f'the notebook is saved as "{path.name}": the grader grades {wanted}; rename it '
            f"{wanted} (and submit only that notebook)"
        )
    if raw["nbformat"] < 4:
        problems.append(
            f"the notebook is in an old format (nbformat {raw['nbformat']}, saved by an old "
            "Jupyter): open it in JupyterLab and save it again (File > Save Notebook)"
        )
    if not any(nbgrader_meta(cell).get("grade") for cell in nb.get("cells", [])):
        problems.append(
            "the notebook has no test cells of the assignment (their metadata is gone): the "
            "grader finds nothing to grade; copy your code into the downloaded notebook"
        )
    return problems


def banned_problems(nb: dict, assignment: Assignment) -> list[str]:
    """The numpy-only rule, read from the source exactly as the grader reads it."""
    from cnnbook.grader import sourcescan

    cells = [
        {"source": cell_source(cell), "metadata": cell.get("metadata", {})}
        for cell in nb["cells"]
        if cell.get("cell_type") == "code"
    ]
    messages = [sourcescan.numpy_only_message(cells, name) for name in assignment.numpy_only]
    return [message for message in messages if message]


def cell_source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def own_training_problems(nb: dict, assignment: Assignment) -> list[str]:
    """ps3: cells of the student's own that train would run again at grading, against its limit."""
    if not assignment.trains:
        return []
    trains = [
        cell
        for cell in nb["cells"]
        if cell.get("cell_type") == "code"
        and not nbgrader_meta(cell).get("locked")
        and not nbgrader_meta(cell).get("solution")
        and re.search(r"\.fit\s*\(", cell_source(cell))
    ]
    if not trains:
        return []
    return [
        f"{len(trains)} cell(s) of your own call .fit(...): delete them before you submit (the "
        f"grader trains your model itself, and the whole notebook may take at most "
        f"{assignment.notebook_seconds:g} s)"
    ]


def run_notebook(nb, folder: Path, assignment: Assignment, timeout: float | None):
    """Execute ``nb`` (nbformat 4) in a fresh kernel, errors kept as outputs, as the grader runs it.

    Returns the seconds the notebook took, for ps3 the estimate cell run after it in the same
    kernel (not counted in those seconds), and what stopped the run early, if anything.
    """
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    client = NotebookClient(
        nb,
        timeout=timeout or 3 * assignment.cell_seconds,
        allow_errors=True,
        interrupt_on_timeout=True,
        record_timing=True,
        kernel_name=nb.get("metadata", {}).get("kernelspec", {}).get("name", "python3"),
        resources={"metadata": {"path": str(folder)}},
    )
    extra, problems, start = None, [], time.monotonic()
    try:
        # The kernel's own log (not the cells' outputs) says nothing a student needs.
        with client.setup_kernel(stderr=subprocess.DEVNULL):
            for index, cell in enumerate(list(nb.cells)):
                client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
            seconds = time.monotonic() - start
            if assignment.trains:
                extra = estimate_cell()
                nb.cells.append(extra)
                client.execute_cell(extra, len(nb.cells) - 1)
                nb.cells.pop()
    except NoSuchKernel as error:
        raise CheckError(
            f"no Jupyter kernel named {error.name!r} here: install ipykernel"
        ) from None
    except DeadKernelError:
        seconds = time.monotonic() - start
        problems.append(
            f"the kernel died in cell {index + 1} (out of memory, or os._exit?): the grader would "
            "lose that cell's tests and restart the kernel for the next ones"
        )
    return seconds, extra, problems


def cell_seconds(cell: dict) -> float | None:
    """How long a cell ran, from the timing nbclient records in its metadata."""
    from datetime import datetime

    timing = cell.get("metadata", {}).get("execution", {})
    begin, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not begin or not end:
        return None
    parse = lambda text: datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(begin)).total_seconds()


def failure(cell: dict) -> str | None:
    """The cell's error as one line (None when it raised nothing)."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            value = " ".join(str(output.get("evalue", "")).split())
            text = f"{output.get('ename', 'Error')}: {value}" if value else output.get("ename")
            return text if len(text) <= 400 else text[:397] + "..."
    return None


def task_results(nb) -> list[tuple[str, list[TestResult]]]:
    """The visible tests' outcomes, grouped under the task heading above them."""
    tasks: list[tuple[str, list[TestResult]]] = []
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type == "markdown" and str(meta.get("grade_id", "")).startswith("task_"):
            heading = next(
                (line.lstrip("# ").strip() for line in cell_source(cell).splitlines() if line),
                meta["grade_id"],
            )
            tasks.append((heading, []))
        elif cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            if not tasks:
                tasks.append(("Tests", []))
            ran = cell.get("execution_count") is not None
            message = failure(cell) if ran else "did not run (an earlier cell stopped the kernel)"
            result = TestResult(meta.get("grade_id", "?"), float(meta.get("points", 0)), message)
            result.seconds = cell_seconds(cell)
            tasks[-1][1].append(result)
    return tasks


def slow_cells(nb, assignment: Assignment, total: float) -> list[str]:
    """Cells (and the whole run) slower here than the grader allows."""
    problems = []
    for number, cell in enumerate(nb.cells, start=1):
        seconds = cell_seconds(cell) if cell.cell_type == "code" else None
        if seconds is not None and seconds > assignment.cell_seconds:
            problems.append(
                f"cell {number} ran {seconds:.0f} s here; the grader stops a cell after "
                f"{assignment.cell_seconds:g} s (that cell's points, or the tests after it, are "
                "lost)"
            )
    if total > assignment.notebook_seconds:
        problems.append(
            f"the notebook ran {total:.0f} s here; the grader allows "
            f"{assignment.notebook_seconds:g} s for the whole notebook"
        )
    return problems


# --------------------------------------------------------------------------- ps3's training time

# Runs in the student's kernel after the notebook: a few training steps of build_model()'s model and
# of a calibration model on random images, batch 128 (the first call of fit builds the graph, and
# is not timed).
ESTIMATE_CELL = """\
import json as _json, time as _time
import numpy as _np
from tensorflow import keras as _keras

def _cnnbook_step_seconds(model, steps=12, batch=128):
    rng = _np.random.default_rng(0)
    x = rng.random((batch * steps, 28, 28, 1), dtype=_np.float32)
    y = rng.integers(0, 10, batch * steps)
    model.fit(x[: 2 * batch], y[: 2 * batch], batch_size=batch, epochs=1, verbose=0)
    start = _time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
    return (_time.perf_counter() - start) / steps

def _cnnbook_calibration():
    layers = _keras.layers
    model = _keras.Sequential([
        _keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Flatten(), layers.Dense(10, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model

try:
    _student = _cnnbook_step_seconds(build_model())
    _calibration = _cnnbook_step_seconds(_cnnbook_calibration())
    print(MARK + _json.dumps({"student": _student, "calibration": _calibration}))
except Exception as _error:
    print(MARK + _json.dumps({"error": f"{type(_error).__name__}: {str(_error)[:200]}"}))
"""


def estimate_cell():
    import nbformat

    return nbformat.v4.new_code_cell(ESTIMATE_CELL.replace("MARK", repr(MARK)))


def training_estimate(cell) -> tuple[str, str | None]:
    """From the estimate cell's output: a line for the report, and a problem when the estimate is
    over the budget."""
    text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout")
    found = [line[len(MARK) :] for line in text.splitlines() if line.startswith(MARK)]
    data = json.loads(found[-1]) if found else {"error": failure(cell) or "no result"}
    if "error" in data:
        return f"the training time could not be estimated: {data['error']}", None
    seconds = data["student"] / data["calibration"] * CALIBRATION_GRADER_SECONDS
    line = (
        f"estimated graded training on the grader ({GRADER_HARDWARE}): about {seconds:.0f} s of "
        f"the {TRAIN_SECONDS} s budget (1 epoch, batch 128); here one training step took "
        f"{data['student'] * 1000:.0f} ms"
    )
    if seconds <= TRAIN_SECONDS:
        return line, None
    share = TRAIN_SECONDS / seconds
    return line, (
        f"the graded training would stop at its {TRAIN_SECONDS} s cap after about {share:.0%} of "
        "the epoch, and accuracy suffers: use fewer filters, or pool earlier"
    )


# --------------------------------------------------------------------------- the report


def report_lines(path: Path, assignment: Assignment, tasks, seconds: float) -> list[str]:
    lines = [f"{path.name}: {assignment.name}, ran top to bottom in {seconds:.1f} s", ""]
    for heading, results in tasks:
        lines.append(heading)
        for result in results:
            points = f"{result.points:g} point{'s' if result.points != 1 else ''}"
            if result.message is None:
                lines.append(f"  passed  {result.grade_id} ({points})")
            else:
                lines.append(f"  FAILED  {result.grade_id} ({points}): {result.message}")
    results = [result for _, found in tasks for result in found]
    passed = [result for result in results if result.message is None]
    lines += [
        "",
        f"Visible tests: {len(passed)} of {len(results)} passed "
        f"({sum(r.points for r in passed):g} of {sum(r.points for r in results):g} points). "
        + (
            "The grader trains your model itself: the accuracy tests are decided there."
            if assignment.trains
            else "The grader also calls your functions on random cases of its own: passing every "
            "visible test is not yet a grade."
        ),
    ]
    return lines


def check(path: Path, timeout: float | None = None) -> tuple[list[str], bool]:
    """The report's lines, and whether everything passed with nothing to fix."""
    raw = read_notebook(path)
    assignment = identify(raw, path)
    nb = as_version_4(raw)
    problems = file_problems(path, raw, nb, assignment) + banned_problems(nb, assignment)
    problems += own_training_problems(nb, assignment)
    seconds, extra, stopped = run_notebook(nb, path.resolve().parent, assignment, timeout)
    problems += stopped
    tasks = task_results(nb)
    lines = report_lines(path, assignment, tasks, seconds)
    problems += slow_cells(nb, assignment, seconds)
    if extra is not None:
        line, problem = training_estimate(extra)
        lines.append(line[0].upper() + line[1:] + ".")
        problems += [problem] if problem else []
    if problems:
        lines += ["", "Before you submit, fix what would cost points at grading time:"]
        lines += [f"  - {problem}" for problem in problems]
    failed = any(result.message for _, found in tasks for result in found)
    return lines, not problems and not failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cnnbook.check",
        description="Run an exercise notebook as the grader runs it and report what would cost "
        "points (visible tests, file name and format, the numpy-only rule, time).",
    )
    parser.add_argument("notebook", type=Path, help="your notebook, e.g. convolution.ipynb")
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds per cell (default: 3x the grader's)"
    )
    args = parser.parse_args(argv)
    try:
        lines, clean = check(args.notebook, args.timeout)
    except CheckError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
