"""The tiny course of the grading tests: one notebook, a numpy ``double`` worth 2 points, and a
checks module of its own loaded from a path (``c.AddProbeCells.checks``); it grades in about 2 s a
student.

Used by tests/test_grader_inputs.py (malformed submissions) and tests/test_grade_batch_dask.py (the
batch on Dask), as nbgrader's own tests share their course builders.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CELL_TIMEOUT = 60
SOLUTION = "def double(x):\n    return 2 * np.asarray(x)\n"


def tiny_cell(src, meta=None, kind="code", **extra):
    cell = {
        "cell_type": kind,
        "metadata": {"nbgrader": meta} if meta else {},
        "source": src,
        **extra,
    }
    if kind == "code":
        cell.update(outputs=[], execution_count=None)
    return cell


def source_notebook() -> dict:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "cells": [
            tiny_cell("# Tiny assignment\n\nDouble an array.", kind="markdown"),
            tiny_cell("import numpy as np"),
            tiny_cell(
                "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * np.asarray(x)\n"
                "    ### END SOLUTION",
                {
                    "grade": False,
                    "solution": True,
                    "locked": False,
                    "grade_id": "double",
                    "schema_version": 3,
                },
            ),
            tiny_cell(
                "# The grader checks double() on its own inputs.",
                {
                    "grade": True,
                    "solution": False,
                    "locked": True,
                    "points": 2,
                    "grade_id": "test_double",
                    "schema_version": 3,
                },
            ),
        ],
    }


CHECKS = """
import numpy as np

from cnnbook.grader.compare import array_mistake
from cnnbook.grader.plan import Call, Check, Probe, Verdict

NOTEBOOK = "tiny"
HIDDEN_PACKAGES = ()


def probes(rng):
    return [Probe("double", [Call((np.array([1.0, 2.0]),), label="double([1, 2])")])]


def judge(context):
    [result] = context.results["double"]
    mistake = array_mistake(result, [2.0, 4.0], call="double([1, 2])")
    return Verdict.failed(mistake) if mistake else Verdict.passed()


CHECKS = [Check("test_double", judge, probe="double")]
"""

CONFIG = """
from cnnbook.grader.submission import screen_submission
from cnnbook.grader import configure

c = get_config()
c.CourseDirectory.root = {root!r}
c.Execute.timeout = {timeout}
c.Autograde.create_student = True
c.AddProbeCells.checks = {{"tiny": {checks!r}}}
configure(c, {root!r}, limits={limits!r})
# The batch's file checks for plain `nbgrader autograde` (which would wait for ever on a named \
pipe).
c.Autograde.pre_convert_hook = screen_submission
"""


def nbgrader(
    root: Path, *args: str, timeout: float = 600, wrapper: str | None = None
) -> subprocess.CompletedProcess:
    """``nbgrader <args>`` in the course folder, as an instructor runs it."""
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = (
        [sys.executable, "-c", wrapper, *args]
        if wrapper
        else [sys.executable, "-m", "nbgrader", *args]
    )
    return subprocess.run(
        command, check=False, cwd=root, env=env, capture_output=True, text=True, timeout=timeout
    )


def make_course(root: Path) -> Path:
    (root / "source" / "tiny").mkdir(parents=True)
    (root / "source" / "tiny" / "tiny.ipynb").write_text(json.dumps(source_notebook()))
    (root / "tiny_checks.py").write_text(CHECKS)
    limits = {"cpu_seconds": 120, "processes": 256, "address_space_mb": 4096}
    (root / "nbgrader_config.py").write_text(
        CONFIG.format(
            root=str(root), timeout=CELL_TIMEOUT, limits=limits, checks=str(root / "tiny_checks.py")
        )
    )
    for cmd in (["db", "assignment", "add", "tiny"], ["generate_assignment", "tiny", "--force"]):
        done = nbgrader(root, *cmd)
        assert done.returncode == 0, done.stdout + done.stderr
    return root


def released(root: Path) -> dict:
    return json.loads((root / "release" / "tiny" / "tiny.ipynb").read_text())


def answer(root: Path, code: str = SOLUTION, extra_cells=()) -> dict:
    nb = released(root)
    nb["cells"][2]["source"] = code
    nb["cells"][3:3] = list(extra_cells)
    return nb


def folder(root: Path, student: str) -> Path:
    path = root / "submitted" / student / "tiny"
    path.mkdir(parents=True, exist_ok=True)
    return path


def submit(root: Path, student: str, nb: dict) -> None:
    (folder(root, student) / "tiny.ipynb").write_text(json.dumps(nb))
