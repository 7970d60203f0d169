"""ReadProbeResults: after the submission ran, read the probe cells' data and remove those cells."""

from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor

from cnnbook.grader import wire
from cnnbook.grader.plan import PLAN_KEY

RESULTS_KEY = "cnnbook_results"

# Errors that SandboxedExecute records when it stops a cell (a student can raise exceptions of the same
# names, but not in the grader's probe cells' place: these are read from the cells the grader added).
STOPPED = {
    "CellTimeoutError": "did not finish within the time limit (an endless loop?)",
    "DeadKernelError": "killed the kernel (memory or CPU limit, os._exit, or a crash)",
    "NotRun": "was not run: the grader stopped after too many kernel restarts",
}


def _payload(cell):
    # The last one: the grader's own display comes after every call returned (a student's function
    # may display things of its own while it runs).
    for output in reversed(cell.outputs):
        data = output.get("data", {})
        if output.get("output_type") == "display_data" and wire.MIME in data:
            return data[wire.MIME]
    return None


def _why_no_result(cell) -> str:
    for output in cell.outputs:
        if output.get("output_type") == "error" and output.get("ename") in STOPPED:
            return STOPPED[output["ename"]]
    return "returned no result the grader could read"


class ReadProbeResults(NbGraderPreprocessor):
    """Turn each probe cell's output into :class:`cnnbook.grader.wire.Result` records, then drop the cell.

    Results go to ``resources`` for :class:`TrustedGrades`; a probe without readable data gets the
    reason instead (timed out, killed the kernel, or sent nothing usable). The graded notebook keeps
    only the student's cells.
    """

    def preprocess(self, nb, resources):
        plan = resources.get(PLAN_KEY)
        results = {}
        if plan is not None:
            by_name = {probe.name: probe for probe in plan.probes}
            for cell in nb.cells:
                if plan.is_probe_cell(cell):
                    probe = by_name[cell.metadata["cnnbook"]["probe"]]
                    records = wire.decode_results(_payload(cell), len(probe.calls))
                    results[probe.name] = records if records is not None else _why_no_result(cell)
            nb.cells = [cell for cell in nb.cells if not plan.is_probe_cell(cell)]
        resources[RESULTS_KEY] = results
        return nb, resources
