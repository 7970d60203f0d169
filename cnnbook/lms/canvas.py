"""Canvas: its submission download (for ``nbgrader zip_collect``), its roster and its gradebook CSV.

**Download.** Canvas's "Download Submissions" zip names each file (canvas-lms, ContentZipper)
``<sortable name>[_LATE]_<user id>_<file id>_<uploaded name>``, e.g.
``kimmina_LATE_104233_9021871_convolution-1.ipynb``: the sortable name lower-cased with everything
but letters, digits and ``_`` removed, ``LATE`` when Canvas counted the submission late, the Canvas
user id (the student's id in this course's gradebook), the id of the uploaded file (a later upload
has a larger one) and the name the student uploaded, with ``-1``, ``-2``... when the student
re-uploaded a file of the same name. The zip has no submission times: a file marked LATE is
recorded as handed in one second after the due date and its grace period (one started day
late, see :mod:`cnnbook.lms.late`); put the real time in ``submitted/<id>/<ps>/timestamp.txt``
before grading for a larger penalty.

**Roster and grades.** The gradebook export (Grades > Export > CSV) has the columns ``Student``
("Last, First"), ``ID``, ``SIS User ID``, ``SIS Login ID``, ``Section``, then one column per
assignment named ``<title> (<assignment id>)``, and a second row "Points Possible". The import
(Grades > Import) takes the same layout and matches students by ``ID``; an empty cell changes
nothing, which is how a submission that is not graded yet stays ungraded.
"""

from __future__ import annotations

import re
from pathlib import Path

from cnnbook.lms.collect import Found, LmsCollector
from cnnbook.lms.late import late_mark_time

FILE_NAME = re.compile(
    r"^(?P<name>[^_]*(?:_[^_]+)*?)_(?:(?P<late>LATE)_)?(?P<user_id>\d+)_(?P<file_id>\d+)_"
    r"(?P<uploaded>.+)$"
)
ID_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
POINTS_ROW = "    Points Possible"


def parse_name(file_name: str) -> dict | None:
    """{name, late, user_id, file_id, uploaded} of a Canvas download's file name, or None."""
    match = FILE_NAME.match(file_name)
    return match.groupdict() if match else None


class CanvasCollector(LmsCollector):
    """The collector ``nbgrader zip_collect`` uses in this course (``nbgrader_config.py``)."""

    def parse(self, path: Path, extracted: Path) -> Found | None:
        parts = parse_name(path.name)
        if parts is None:
            return None
        when = late_mark_time(self.config, self.assignment) if parts["late"] else None
        if parts["late"] and when is None:
            self.log.warning(
                "%s is marked LATE but %s has no due date in c.DueDates.due_dates: no penalty",
                path.name,
                self.assignment,
            )
        return Found(parts["user_id"], parts["uploaded"], when, int(parts["file_id"]))


def download_names(extracted: Path) -> dict[str, dict]:
    """{user id: parse_name(...) of the student's newest file} in an extracted Canvas download."""
    names: dict[str, dict] = {}
    for path in sorted(extracted.rglob("*")) if extracted.is_dir() else []:
        parts = parse_name(path.name) if path.is_file() else None
        if parts and int(parts["file_id"]) >= int(names.get(parts["user_id"], parts)["file_id"]):
            names[parts["user_id"]] = parts
    return names


def roster_rows(rows: list[dict]) -> list[dict]:
    """The students of a gradebook export: not the "Points Possible" row, not Canvas's own
    "Student, Test" (the instructor's student view)."""
    return [
        row
        for row in rows
        if row.get("ID", "").strip().isdigit() and row.get("Student", "").strip() != "Student, Test"
    ]


def points_possible(rows: list[dict], column: str) -> float | None:
    """The Canvas assignment's points, from the export's "Points Possible" row."""
    for row in rows:
        if row.get("Student", "").strip() == POINTS_ROW.strip():
            try:
                return float(row.get(column, ""))
            except ValueError:
                return None
    return None


def split_sortable(name: str) -> tuple[str, str]:
    """Canvas's "Last, First" -> (first, last)."""
    last, _, first = name.partition(",")
    return first.strip(), last.strip()


def assignment_column(header: list[str], assignment: str, given: str | None) -> str:
    """The gradebook column of ``assignment``: ``given``, or the roster's column that starts with
    the assignment's name (``ps1-convolution (48213)``), or the bare name (Canvas then creates a
    new assignment on import)."""
    if given:
        return given
    found = [c for c in header if re.fullmatch(re.escape(assignment) + r" \(\d+\)", c)]
    return found[0] if found else assignment
