"""What the grader asks of one submission: the probes (calls of the student's functions on inputs
the grader chose) and the checks that turn their results into each graded cell's points.

An assignment's trusted comparison is a module (see :mod:`cnnbook.grader.checks`) that defines

* ``NOTEBOOK``: the notebook it grades (its name without ``.ipynb``);
* ``HIDDEN_PACKAGES``: top-level packages the student's kernel may not import (numpy-only tasks);
* ``probes(rng)``: the :class:`Probe` list for one submission (random cases drawn from ``rng``);
* ``CHECKS``: one :class:`Check` per graded cell, whose ``judge`` gets a :class:`Context` and
  returns a :class:`Verdict`;

and may declare its time limits (read by :class:`Plan`): ``CELL_SECONDS``, the most one cell of the
student's notebook may run (probe cells included); ``NOTEBOOK_SECONDS``, the most the whole notebook
may take (every cell, probe cells, kernel starts, restarts and replays); ``GRADER_SECONDS``, what
its checks take in the grader's own process (ps3's training). Without them: the course's
``Execute.timeout`` per cell, no limit per notebook, nothing in the grader's process.

The plan lives in nbgrader's ``resources`` (the grader's memory); only the probes' inputs reach the
kernel, inside probe cells appended to the notebook for the run and removed before it is saved.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import nbformat

from cnnbook import sandbox
from cnnbook.grader import wire

PLAN_KEY = "cnnbook_plan"
# SandboxedExecute's own record of why it stopped each probe cell ({probe name: reason}), in fixed
# words.
STOPS_KEY = "cnnbook_stops"
# How SandboxedExecute passes its ``threads`` setting on to the checks that run after it in the same
# process (ps3's trainer gives its child the same thread limits as the kernel); 0 or unset: no
# limit.
ENV_THREADS = "CNNBOOK_GRADER_THREADS"


@dataclass
class Call:
    """One call of a student's function; ``label`` names it in feedback (inputs only, never
    answers)."""

    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    label: str = ""
    group: str = ""  # which check reads this call's result


@dataclass
class Probe:
    """Calls of one function (or one read of a variable, ``value=True``) in the student's kernel."""

    name: str
    calls: list[Call]
    value: bool = False
    serialiser: str = (
        "numbers"  # how the kernel turns results into data: "numbers" or "keras_model"
    )


@dataclass
class Verdict:
    """A graded cell's outcome: the share of its points earned and, unless passed, why (fixed
    text)."""

    fraction: float
    message: str = ""

    @classmethod
    def passed(cls) -> Verdict:
        return cls(1.0)

    @classmethod
    def failed(cls, message: str) -> Verdict:
        return cls(0.0, message)


@dataclass
class Context:
    """What a judge may look at: the results of each probe, and the submitted notebook's code
    cells."""

    probes: dict[str, Probe]
    results: dict[str, list[wire.Result]]
    code_cells: list[dict]  # the student's code cells, as submitted (for reading the source)
    cache: dict = field(default_factory=dict)  # for work several checks share (ps3's training)

    def pairs(self, probe: str, group: str | None = None) -> list[tuple[Call, wire.Result]]:
        """(call, result) of ``probe``'s calls in ``group`` (all calls when None)."""
        calls = self.probes[probe].calls
        return [
            (call, result)
            for call, result in zip(calls, self.results[probe])
            if group is None or call.group == group
        ]


@dataclass
class Check:
    """How one graded cell earns its points. ``probe`` names the probe it needs (None: source
    only)."""

    grade_id: str
    judge: Callable[[Context], Verdict]
    probe: str | None = None


@dataclass
class Plan:
    """One submission's probes and checks; ``token`` marks the grader's own probe cells."""

    module: object
    probes: list[Probe]
    token: str = field(default_factory=lambda: secrets.token_hex(16))

    @property
    def hidden_packages(self) -> tuple[str, ...]:
        return tuple(getattr(self.module, "HIDDEN_PACKAGES", ()))

    @property
    def cell_seconds(self) -> float | None:
        """The most one cell may run (the module's ``CELL_SECONDS``); None: the course's
        Execute.timeout."""
        return _seconds(self.module, "CELL_SECONDS")

    @property
    def notebook_seconds(self) -> float | None:
        """The most the whole notebook may take (the module's ``NOTEBOOK_SECONDS``); None: no
        limit."""
        return _seconds(self.module, "NOTEBOOK_SECONDS")

    @property
    def checks(self) -> dict[str, Check]:
        return {check.grade_id: check for check in self.module.CHECKS}

    def probe_cells(self) -> list[nbformat.NotebookNode]:
        cells = []
        for probe in self.probes:
            spec = wire.encode_calls(probe.name, probe.calls, probe.value, probe.serialiser)
            source = (
                f"# Added by the grader for this run only: calls {probe.name} on the grader's "
                "inputs.\n"
                f"{wire.KERNEL_SIDE}\n_cnnbook_probe({spec!r}, {wire.MIME!r})\n"
            )
            cell = nbformat.v4.new_code_cell(source)
            cell.metadata["cnnbook"] = {"probe": probe.name, "token": self.token}
            cells.append(cell)
        return cells

    def is_probe_cell(self, cell) -> bool:
        return cell.get("metadata", {}).get("cnnbook", {}).get("token") == self.token


def load_checks(name: str):
    """The checks module: an importable name (``cnnbook.grader.checks.ps1_convolution``) or a
    ``.py`` path."""
    if name.endswith(".py"):
        path = Path(name)
        spec = importlib.util.spec_from_file_location(f"cnnbook_checks_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(name)


def _seconds(module, name: str) -> float | None:
    """A time limit a checks module declares: a positive number of seconds, or None when it declares
    none."""
    value = getattr(module, name, None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(
            f"{getattr(module, '__name__', module)}.{name} = {value!r}: a time limit is a "
            "positive number of seconds"
        )
    return float(value)


def grader_threads() -> int:
    """The threads the grader lets students' code use (:data:`ENV_THREADS`); 0: no limit."""
    text = os.environ.get(ENV_THREADS, "").strip()
    if not text:
        return 0
    if not text.isdigit():
        raise ValueError(
            f"{ENV_THREADS}={text!r}: the number of threads is a whole number, 0 for no limit"
        )
    return int(text)


def thread_env(threads: int) -> dict[str, str]:
    """The environment variables that keep numpy's BLAS, OpenMP and TensorFlow to ``threads``
    threads (none for 0, no limit). TensorFlow's inter-op pool, which runs independent operations
    side by side, gets at most 2: the graph of a small CNN has little to run side by side."""
    if threads <= 0:
        return {}
    env = {name: str(threads) for name in sandbox.THREAD_VARIABLES}
    env["TF_NUM_INTEROP_THREADS"] = str(min(threads, 2))
    return env
