"""ReadProbeResults: after the submission ran, read the probe cells' data and remove those cells."""

from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor

from cnnbook.grader import wire
from cnnbook.grader.plan import PLAN_KEY, STOPS_KEY

RESULTS_KEY = "cnnbook_results"

# Errors that SandboxedExecute records when it stops a cell (a student can raise exceptions of the
# same names, but not in the grader's probe cells' place: these are read from the cells the grader
# added). Every reason a stopped probe gives starts with these words; SandboxedExecute adds which
# limit stopped it (resources[STOPS_KEY]), else DETAILS does.
STOPPED = {
    "CellTimeoutError": "did not finish within the time limit",
    "DeadKernelError": "killed the kernel (memory or CPU limit, os._exit, or a crash)",
    "NotRun": "was not run",
}
DETAILS = {
    "CellTimeoutError": " (an endless loop?)",
    "NotRun": ": the grader stopped after too many kernel restarts",
}


def _payload(cell):
    # The last one: the grader's own display comes after every call returned (a student's function
    # may display things of its own while it runs).
    for output in reversed(cell.outputs):
        data = output.get("data", {})
        if output.get("output_type") == "display_data" and wire.MIME in data:
            return data[wire.MIME]
    return None


def _stopped(cell) -> str | None:
    for output in cell.outputs:
        if output.get("output_type") == "error" and output.get("ename") in STOPPED:
            return STOPPED[output["ename"]] + DETAILS.get(output["ename"], "")
    return None


class ReadProbeResults(NbGraderPreprocessor):
    """Turn each probe cell's output into :class:`cnnbook.grader.wire.Result` records, then drop the
    cell.

    Results go to ``resources`` for :class:`TrustedGrades`; a probe without readable data gets the
    reason instead (timed out, killed the kernel, not run, or sent nothing usable), in
    SandboxedExecute's words when it stopped the cell. The graded notebook keeps only the student's
    cells.
    """

    def preprocess(self, nb, resources):
        plan = resources.get(PLAN_KEY)
        stops = resources.get(STOPS_KEY, {})
        results = {}
        if plan is not None:
            by_name = {probe.name: probe for probe in plan.probes}
            for cell in nb.cells:
                if plan.is_probe_cell(cell):
                    probe = by_name[cell.metadata["cnnbook"]["probe"]]
                    # A stopped probe's reason wins over any data: the interrupt that stops it may
                    # arrive inside the student's function and come back as "raised
                    # KeyboardInterrupt".
                    stopped = stops.get(probe.name) or _stopped(cell)
                    records = (
                        None if stopped else wire.decode_results(_payload(cell), len(probe.calls))
                    )
                    results[probe.name] = (
                        records
                        if records is not None
                        else (stopped or "returned no result the grader could read")
                    )
            nb.cells = [cell for cell in nb.cells if not plan.is_probe_cell(cell)]
        resources[RESULTS_KEY] = results
        return nb, resources
