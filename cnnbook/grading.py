"""nbgrader for bad and hostile submissions: what a submitted notebook may change, and what graders and students see.

A submitted notebook is untrusted data, and the code in it runs while the tests run. This module provides

* :func:`sanitise`, the one implementation of "restore the assignment's nbgrader metadata in a submission":
  forged, unknown or duplicated grade cells, a changed kernelspec, stored outputs. ``python -m
  cnnbook.grade_batch`` calls it before nbgrader (its report says what was changed), and the
  :class:`RestoreNbgraderMetadata` preprocessor calls it first thing in plain ``nbgrader autograde``,
  where a forged ``schema_version`` would otherwise stop the run for every student;
* :class:`TextAndImagesOnly`: graded outputs keep plain text and PNG/JPEG images only, because HTML,
  JavaScript or SVG made by a student's code runs as script in the formgrader and in feedback pages;
* :class:`ClearHiddenTestsAndOutputs` and :class:`HideTracebacks`: feedback shows pass/fail for a cell with
  hidden tests and never a line of a hidden test, whatever the student's code printed or raised;
* :func:`configure`, called from ``nbgrader_config.py`` after ``cnnbook.sandbox.configure``, which puts them in place.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from dataclasses import dataclass

import nbformat
from nbgrader.api import Gradebook
from nbgrader.nbgraderformat import SCHEMA_VERSION
from nbgrader.preprocessors import ClearHiddenTests, Execute, GetGrades, NbGraderPreprocessor
from traitlets import Integer

# The nbgrader metadata that decides how a cell is graded (the rest, e.g. the checksum, nbgrader recomputes).
GRADING_KEYS = ("grade_id", "grade", "solution", "locked", "task", "points", "schema_version")


@dataclass
class Reference:
    """What a submission must agree with: the nbgrader metadata of each cell by grade_id, and the kernelspec."""

    cells: dict[str, dict]
    kernelspec: dict | None

    @classmethod
    def from_notebook(cls, nb: dict) -> Reference:
        """From the notebook as released to students (or its source)."""
        cells = {}
        for cell in nb["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader")
            if meta and "grade_id" in meta:
                cells[meta["grade_id"]] = meta
        return cls(cells, nb.get("metadata", {}).get("kernelspec"))

    @classmethod
    def from_gradebook(cls, gradebook: Gradebook, notebook_id: str, assignment_id: str) -> Reference:
        """From what ``nbgrader generate_assignment`` recorded, which is what nbgrader grades against."""
        notebook = gradebook.find_notebook(notebook_id, assignment_id)
        grade_points = {c.name: c.max_score for c in notebook.grade_cells}
        task_points = {c.name: c.max_score for c in notebook.task_cells}
        solutions = {c.name for c in notebook.solution_cells}
        cells = {}
        for source in notebook.source_cells:
            meta = {"grade_id": source.name, "grade": source.name in grade_points, "solution": source.name in solutions,
                    "locked": source.locked, "schema_version": SCHEMA_VERSION, "cell_type": source.cell_type,
                    "checksum": source.checksum}
            if source.name in grade_points:
                meta["points"] = grade_points[source.name]
            if source.name in task_points:
                meta.update(task=True, points=task_points[source.name])
            cells[source.name] = meta
        return cls(cells, json.loads(notebook.kernelspec) if notebook.kernelspec else None)


def _grade_id(cell: dict) -> str | None:
    meta = cell["metadata"].get("nbgrader")
    grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
    return grade_id if isinstance(grade_id, str) else None


def _grading(meta: dict) -> dict:
    return {key: meta.get(key) for key in GRADING_KEYS}


def sanitise(nb: dict, reference: Reference) -> list[str]:
    """Make ``nb`` safe to grade against ``reference`` (in place); returns what was changed, for the instructor.

    A cell whose grade_id the assignment has gets the assignment's nbgrader metadata back (so forged
    points, schema versions or flags count for nothing); nbgrader metadata with an unknown grade_id is
    removed. A grade_id that appears more than once (a copied test cell) is graded once, in its last
    copy as nbgrader's DeduplicateIds would; the other copies become plain cells (nbgrader's own
    deduplication leaves them with empty metadata, on which its OverwriteCells fails).
    """
    notes: list[str] = []
    for cell in nb["cells"]:
        if not isinstance(cell.get("metadata"), dict):
            cell["metadata"] = {}
    copies = Counter(_grade_id(cell) for cell in nb["cells"])
    graded_copy = {_grade_id(cell): index for index, cell in enumerate(nb["cells"])}
    for index, cell in enumerate(nb["cells"]):
        if "nbgrader" in cell["metadata"]:
            meta, grade_id = cell["metadata"]["nbgrader"], _grade_id(cell)
            if grade_id not in reference.cells:
                notes.append(f"cell with unknown nbgrader metadata {str(meta)[:80]!r}: metadata removed")
                del cell["metadata"]["nbgrader"]
            elif graded_copy[grade_id] != index:
                notes.append(f"cell {grade_id!r} appears {copies[grade_id]} times: the last copy is graded, "
                             f"the others run as plain cells")
                del cell["metadata"]["nbgrader"]
            else:
                if _grading(meta) != _grading(reference.cells[grade_id]):
                    notes.append(f"cell {grade_id!r}: nbgrader metadata differed from the assignment's; restored")
                cell["metadata"]["nbgrader"] = copy.deepcopy(reference.cells[grade_id])
        if not isinstance(cell.get("source"), (str, list)):
            cell["source"] = ""
            notes.append("a cell without text: emptied")
        if cell.get("cell_type") == "code":
            if cell.get("outputs"):
                notes.append("stored outputs removed")
            cell["outputs"], cell["execution_count"] = [], None
    spec = reference.kernelspec
    if spec and nb.get("metadata", {}).get("kernelspec") != spec:
        notes.append("kernelspec differed from the assignment's; restored")
        nb.setdefault("metadata", {})["kernelspec"] = copy.deepcopy(spec)
    return sorted(set(notes), key=notes.index)


class RestoreNbgraderMetadata(NbGraderPreprocessor):
    """First step of ``nbgrader autograde``: :func:`sanitise` the submission against the gradebook.

    nbgrader's own checks (CheckCellMetadata) raise SchemaTooNewError/SchemaTooOldError on a cell's
    ``schema_version``, and nbgrader then stops autograding for every student, not just this one.
    """

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gradebook:
            reference = Reference.from_gradebook(gradebook, info["notebook"], info["assignment"])
        notes = sanitise(nb, reference)
        if notes:
            self.log.warning("Submission of %s, %s/%s.ipynb sanitised: %s", info["student"], info["assignment"],
                             info["notebook"], "; ".join(notes))
        return nbformat.from_dict(nb), resources


KEPT_MIME_TYPES = ("text/plain", "image/png", "image/jpeg")


class TextAndImagesOnly(NbGraderPreprocessor):
    """Outputs keep plain text and PNG/JPEG images only.

    Rich outputs (HTML, JavaScript, SVG, Markdown, LaTeX, widgets) made by a student's code would run
    script in the instructor's browser (formgrader) and in feedback pages, and the HTML export puts
    image metadata such as ``width`` unquoted into the page. So the other types are dropped, with a note
    in the text/plain version of the output; image metadata is cleared; an image larger than
    ``max_image_bytes`` is dropped too (cut to the sandbox's output byte cap it would only show as broken).
    """

    max_image_bytes = Integer(20_000, help="largest PNG/JPEG (base64 characters) kept in an output").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        for output in cell.get("outputs", []):
            if "data" not in output:
                continue
            kept = {mime: value for mime, value in output["data"].items() if mime in KEPT_MIME_TYPES
                    and isinstance(value, str) and (mime == "text/plain" or len(value) <= self.max_image_bytes)}
            dropped = sorted(set(output["data"]) - set(kept))
            if dropped:
                text = kept.get("text/plain", "")
                note = (f"[{', '.join(dropped)} output removed by the grader: only text and PNG/JPEG images "
                        f"up to {self.max_image_bytes} bytes are kept]")
                kept["text/plain"] = f"{text}\n{note}" if text else note
            output["data"] = kept
            output["metadata"] = {}
        return cell, resources


# Errors that cnnbook.sandbox records when it stops a cell; a student can raise an exception of the same
# name, so feedback gives the grader's fixed words for them, never the exception's text.
STOPPED_BY_THE_GRADER = {
    "CellTimeoutError": "this cell ran longer than the time limit and was stopped",
    "DeadKernelError": "the kernel died while running this cell (memory or CPU limit, or a crash)",
    "NotRun": "this cell was not run, because an earlier cell was stopped",
}
TEST_FAILED = ("a test in this cell failed; run the visible tests in your notebook to see why "
               "(feedback does not show the output of a cell with hidden tests)")
REDACTED_LINE = "[line removed by the grader: it quoted a hidden test]"
# Hidden-test lines are compared by their letters, digits and underscores only, so that a quote made by
# repr() or json.dumps (escaped quotes, \n, other spacing) is found too. Shorter lines ("else:", "])")
# tell nothing and occur in ordinary output.
MIN_REDACTED_CHARS = 8


def _word_chars(text: str) -> str:
    return re.sub(r"\W+", "", text)


class ClearHiddenTestsAndOutputs(ClearHiddenTests):
    """nbgrader's ClearHiddenTests, and no line of a hidden test in any output either.

    Student code runs inside hidden tests and can print or raise any text, for instance the source of
    the running cell (``get_ipython().user_ns['In'][-1]``), hidden part included, or read it later from
    ``In`` or from the graded notebook file. So a cell with hidden tests shows only "passed" or why it
    failed in the grader's words, and in every other cell an output line that contains a line of a
    hidden test (or a hidden-test marker) is replaced. The markers are ClearHiddenTests' (configurable).
    """

    def preprocess(self, nb, resources):
        begin, end = self.begin_test_delimeter, self.end_test_delimeter
        cells_with_hidden_tests, hidden_lines = set(), {_word_chars(begin), _word_chars(end)}
        for index, cell in enumerate(nb.cells):
            inside = False
            for line in cell.source.splitlines():
                if begin in line:
                    inside = True
                    cells_with_hidden_tests.add(index)
                elif end in line:
                    inside = False
                elif inside and len(_word_chars(line)) >= MIN_REDACTED_CHARS:
                    hidden_lines.add(_word_chars(line))
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if index in cells_with_hidden_tests:
                cell.outputs = [_verdict(cell.outputs)]
            else:
                for output in cell.outputs:
                    _redact(output, hidden_lines)
        return super().preprocess(nb, resources)


def _verdict(outputs: list) -> nbformat.NotebookNode:
    errors = [o for o in outputs if o.output_type == "error"]
    if not errors:
        return nbformat.v4.new_output("stream", name="stdout", text="passed\n")
    reason = STOPPED_BY_THE_GRADER.get(errors[0].ename, TEST_FAILED)
    return nbformat.v4.new_output("error", ename="Failed", evalue=reason, traceback=[f"Failed: {reason}"])


def _redact_text(text, hidden_lines: set[str]) -> str:
    lines = "".join(text).splitlines(keepends=True)
    return "".join(REDACTED_LINE + ("\n" if line.endswith("\n") else "")
                   if any(hidden in _word_chars(line) for hidden in hidden_lines) else line for line in lines)


def _redact(output, hidden_lines: set[str]) -> None:
    if "text" in output:
        output.text = _redact_text(output.text, hidden_lines)
    for mime, value in list(output.get("data", {}).items()):
        if mime.startswith("text/"):
            output.data[mime] = _redact_text(value, hidden_lines)
    if output.output_type == "error":
        output.ename = _redact_text(output.ename, hidden_lines)
        output.evalue = _redact_text(output.evalue, hidden_lines)
        output.traceback = [_redact_text(line, hidden_lines) for line in output.traceback]


class HideTracebacks(NbGraderPreprocessor):
    """Feedback shows a failed test's message, not its traceback (which quotes test lines)."""

    def preprocess_cell(self, cell, resources, index):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["traceback"] = [f"{output['ename']}: {output['evalue']}"]
        return cell, resources


def configure(c) -> None:
    """Set nbgrader up for untrusted submissions. Call from nbgrader_config.py after ``cnnbook.sandbox.configure``.

    Autograde: :class:`RestoreNbgraderMetadata` before nbgrader's own sanitising steps, and
    :class:`TextAndImagesOnly` right after the cells run (before outputs are capped and grades saved).
    Feedback: grades, then no rich output, no hidden test and no traceback.
    """
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.converters import Autograde

    def current(name):
        return list(c.Autograde[name]) if name in c.Autograde else Autograde.class_traits()[name].default()

    c.Autograde.sanitize_preprocessors = [RestoreNbgraderMetadata, *current("sanitize_preprocessors")]
    steps = current("autograde_preprocessors")
    runs = [i for i, step in enumerate(steps) if isinstance(step, type) and issubclass(step, Execute)]
    if runs:  # none when cnnbook.sandbox refuses to grade (no bubblewrap): nothing runs, nothing to filter
        steps.insert(runs[0] + 1, TextAndImagesOnly)
    c.Autograde.autograde_preprocessors = steps
    if c.CapOutputBytes.get("max_bytes"):
        c.TextAndImagesOnly.max_image_bytes = c.CapOutputBytes.max_bytes
    c.GenerateFeedback.preprocessors = [GetGrades, TextAndImagesOnly, ClearHiddenTestsAndOutputs, HideTracebacks,
                                        CSSHTMLHeaderPreprocessor]
