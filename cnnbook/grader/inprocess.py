"""Run an assignment's probes and checks in this process, on functions defined here.

For maintainers and tests only: the functions run with the grader's rights and nothing is sandboxed.
It exercises the same path as grading (the probe code of :mod:`cnnbook.grader.wire`, its data
format, the checks), without a kernel.
"""

from __future__ import annotations

from unittest import mock

import numpy as np

from cnnbook.grader import wire
from cnnbook.grader.plan import Context, Plan, Verdict


def _run_probe(cell, namespace: dict) -> str | None:
    shown = {}
    scope = dict(namespace)
    with mock.patch("IPython.display.display", lambda obj, raw=False: shown.update(obj)):
        exec(cell.source, scope)  # noqa: S102 - trusted code: the maintainer's own functions
    return shown.get(wire.MIME)


def judge_namespace(
    module, namespace: dict, code_cells: list[dict] | None = None, seed: int = 0
) -> dict[str, Verdict]:
    """Each graded cell's verdict for the functions in ``namespace``; ``code_cells`` feed the source
    checks."""
    plan = Plan(module, module.probes(np.random.default_rng(seed)))
    results = {}
    for probe, cell in zip(plan.probes, plan.probe_cells()):
        records = wire.decode_results(_run_probe(cell, namespace), len(probe.calls))
        results[probe.name] = (
            records if records is not None else [wire.MALFORMED] * len(probe.calls)
        )
    context = Context({p.name: p for p in plan.probes}, results, code_cells or [])
    return {check.grade_id: check.judge(context) for check in module.CHECKS}
