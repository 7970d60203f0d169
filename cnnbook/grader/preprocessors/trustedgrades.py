"""TrustedGrades: every graded cell's points, decided in the grader's process from the probes'
data."""

from __future__ import annotations

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import is_grade, is_solution

from cnnbook.grader.plan import PLAN_KEY, Context, Verdict
from cnnbook.grader.preprocessors.readproberesults import RESULTS_KEY

NO_CHECK = "the grader has no check for this cell, so it earns no points (tell your instructor)"


def _student_outputs(outputs) -> list:
    """What the student's own run of the cell printed, which never decides points.

    nbgrader scores a cell 0 for an error or any stderr output, and reads an ``execute_result`` as
    partial credit; here those decide nothing: errors and results are dropped (the verdict says why
    the cell failed), stderr is kept as ordinary output.
    """
    kept = []
    for output in outputs:
        kind = output.get("output_type")
        if kind in ("error", "execute_result"):
            continue
        if kind == "stream" and output.get("name") == "stderr":
            output["name"] = "stdout"
        kept.append(output)
    return kept


def verdict_output(verdict: Verdict, points: float):
    """The output nbgrader reads the score from: nothing else in the cell can be an error or a
    result."""
    if verdict.fraction >= 1:
        return nbformat.v4.new_output(
            "stream", name="stdout", text=f"Graded: passed ({points:g} of {points:g} points)\n"
        )
    if verdict.fraction <= 0:
        return nbformat.v4.new_output(
            "error",
            ename="Failed",
            evalue=verdict.message,
            traceback=[f"Failed: {verdict.message}"],
        )
    earned = round(verdict.fraction * points, 3)
    return nbformat.v4.new_output(
        "execute_result", execution_count=None, data={"text/plain": f"{earned:g}"}
    )


class TrustedGrades(NbGraderPreprocessor):
    """Write each graded cell's verdict from the assignment's trusted checks; runs just before
    SaveAutoGrades.

    A check that needs a probe without data fails with the probe's reason; a check that raises (a
    bug in the grader, not the student's doing) scores 0 and is logged; a graded cell without a
    check scores 0. The student's own outputs stay below the verdict, for the student's information.
    """

    def _verdict(self, check, context: Context, reasons: dict) -> Verdict:
        if check is None:
            return Verdict.failed(NO_CHECK)
        if check.probe is not None and check.probe in reasons:
            return Verdict.failed(f"{check.probe} {reasons[check.probe]}")
        try:
            verdict = check.judge(context)
        except Exception:  # noqa: BLE001 - a grader bug must not crash the batch or give points
            self.log.exception("The check of %s raised", check.grade_id)
            return Verdict.failed("the grader could not check this cell (tell your instructor)")
        return Verdict(min(max(float(verdict.fraction), 0.0), 1.0), verdict.message)

    def preprocess(self, nb, resources):
        plan = resources.get(PLAN_KEY)
        gathered = resources.get(RESULTS_KEY, {})
        results = {name: value for name, value in gathered.items() if isinstance(value, list)}
        reasons = {name: value for name, value in gathered.items() if isinstance(value, str)}
        checks = plan.checks if plan is not None else {}
        code_cells = [
            dict(source=cell.source, metadata=dict(cell.metadata))
            for cell in nb.cells
            if cell.cell_type == "code"
        ]
        context = Context({p.name: p for p in plan.probes} if plan else {}, results, code_cells)
        for cell in nb.cells:
            if cell.cell_type != "code" or not is_grade(cell) or is_solution(cell):
                continue
            meta = cell.metadata["nbgrader"]
            verdict = self._verdict(checks.get(meta["grade_id"]), context, reasons)
            cell.outputs = [
                verdict_output(verdict, float(meta["points"])),
                *_student_outputs(cell.outputs),
            ]
        return nb, resources
