"""The feedback page a student reads: nbgrader's feedback template, extended.

``nbgrader generate_feedback`` renders each graded notebook with nbgrader's ``feedback`` template
(nbgrader 0.9.6, ``server_extensions/formgrader/templates/feedback/index.html.j2``). The template in
``cnnbook_feedback/`` extends it in two ways:

* each row of the score list is named after its task (the locked task heading above the graded
  cell, and the cell's grade_id made readable), where nbgrader writes "Test cell" for every row;
* long lines wrap at every width from a phone's to a desktop's (the grader's messages, the student's
  code and output), where nbgrader's page cuts them off or scrolls sideways.

What each graded cell says is unchanged: its first output is the grader's verdict
(:mod:`cnnbook.grader.preprocessors.trustedgrades`), one line per error
(:mod:`cnnbook.grader.preprocessors.hidetracebacks`).
"""

from __future__ import annotations

import re
from pathlib import Path

# The folder beside this file, which extends nbgrader's "feedback", and its page (not index.html.j2,
# which would shadow nbgrader's own).
TEMPLATE_NAME = "cnnbook_feedback"
TEMPLATE_FILE = "cnnbook_feedback.html.j2"
_POINTS = re.compile(r"\s*\(\s*\d+(\.\d+)?\s+points?\s*\)\s*$", re.I)


def configure_feedback_page(c) -> None:
    """Make ``nbgrader generate_feedback`` use this page: only there (the settings are nested under
    GenerateFeedback), so the formgrader's own HTML pages keep nbgrader's templates."""
    import nbgrader

    nbgrader_templates = Path(nbgrader.__file__).parent / "server_extensions/formgrader/templates"
    exporter = c.GenerateFeedback.HTMLExporter
    exporter.extra_template_basedirs = [str(Path(__file__).parent), str(nbgrader_templates)]
    exporter.template_name = TEMPLATE_NAME
    exporter.template_file = TEMPLATE_FILE
    exporter.filters = {"score_row_names": f"{__name__}.score_row_names"}


def task_heading(source: str) -> str:
    """A markdown cell's heading as plain text ("## Task 3: `conv2d` (11 points)" -> "Task 3:
    conv2d"), or "" when its first line is not a heading."""
    first = source.strip().splitlines()[0] if source.strip() else ""
    if not first.startswith("#"):
        return ""
    text = first.lstrip("#").strip().replace("`", "").replace("*", "")
    return _POINTS.sub("", text).strip()


def readable(grade_id: str, heading: str = "") -> str:
    """A grade_id as words, less the names the heading's subject starts with:
    "test_conv2d_random_cases" -> "conv2d random cases", or "random cases" under "Task 3: conv2d
    with numpy" (whole names only: "max pool seed example" stays under "Task 1: max_pool2d")."""
    words = grade_id.removeprefix("test_").replace("-", "_").split("_")
    words = [word for word in words if word]
    names = re.sub(r"[^\w ]", " ", heading.split(":", 1)[-1]).lower().split()
    for count in range(len(names), 0, -1):
        start = [word for name in names[:count] for word in name.split("_") if word]
        if len(start) < len(words) and [word.lower() for word in words[: len(start)]] == start:
            return " ".join(words[len(start) :])
    return " ".join(words) or grade_id


def score_row_names(nb) -> dict[str, str]:
    """{grade_id: name} for the notebook's graded cells: the task heading above the cell, then the
    cell's grade_id in words. Only locked headings count: the grader restores those from the
    assignment, so a student's own markdown cannot rename a score row."""
    names, heading = {}, ""
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") == "markdown" and meta.get("locked"):
            heading = task_heading(str(cell.get("source", ""))) or heading
        if meta.get("grade") or meta.get("task"):
            grade_id = str(meta.get("grade_id", ""))
            part = readable(grade_id, heading)
            names[grade_id] = f"{heading} \N{EN DASH} {part}" if heading else part
    return names
