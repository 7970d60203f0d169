"""HideTracebacks: feedback shows an error's one-line message, not its traceback."""

from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor


class HideTracebacks(NbGraderPreprocessor):
    """Feedback shows ``ename: evalue`` for an error, not the traceback (long, and full of ANSI
    codes)."""

    def preprocess_cell(self, cell, resources, index):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["traceback"] = [f"{output['ename']}: {output['evalue']}"]
        return cell, resources
