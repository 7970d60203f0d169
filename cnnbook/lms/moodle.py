"""Moodle: its assignment download (for ``nbgrader zip_collect --collector=...``) and its grading
worksheet, which is both the roster and the grade import.

**Download.** "Download all submissions" (Moodle >= 4.1, mod/assign/classes/downloader.php) puts
each student's files in a folder ``<Full name>_<participant id>_assignsubmission_file/``; with
"Download submissions in folders" off, in flat names
``<Full name>_<participant id>_assignsubmission_file_<uploaded name>`` (Moodle < 4.1 added a
trailing ``_`` to the folder). Underscores in names become spaces. The participant id belongs to
this assignment only, so the student's id in the gradebook comes from the grading worksheet (in
the same ``archive/`` folder): their email address, lower-cased.

**Grading worksheet** (Assignment > "Download grading worksheet"): the columns ``Identifier``
("Participant 10234"), ``Full name``, ``Email address``, ``Status``, ``Grade``, ``Maximum grade``,
``Grade can be changed``, ``Last modified (submission)``, ``Last modified (grade)`` and, with the
comments feedback, ``Feedback comments``. Its submission times are in the Moodle user's time zone,
without the zone: set ``c.MoodleCollector.timezone``. The upload (Assignment > "Upload grading
worksheet", mod/assign/feedback/offline) reads ``Identifier``, ``Grade``, ``Last modified (grade)``
and the feedback columns; an empty grade changes nothing.

**Feedback files** (Assignment > "Upload multiple feedback files in a zip",
mod/assign/feedback/file/importziplib.php): a folder
``<Full name>_<participant id>_assignfeedback_file`` per student; Moodle reads the participant id
from the second ``_``-separated part.
"""

from __future__ import annotations

import csv
import re
from datetime import timezone
from pathlib import Path

from dateutil import parser as dateparser
from dateutil import tz
from traitlets import Unicode

from cnnbook.lms.collect import Found, LmsCollector

PART = re.compile(r"^(?P<name>[^_]*)_(?P<participant>\d+)_assignsubmission_file(?:_(?P<rest>.*))?$")
IDENTIFIER = "Identifier"
PARTICIPANT = re.compile(r"^\D*(\d+)$")
WORKSHEET_COLUMNS = [
    "Identifier",
    "Full name",
    "Email address",
    "Status",
    "Grade",
    "Maximum grade",
    "Grade can be changed",
    "Last modified (submission)",
    "Last modified (grade)",
    "Feedback comments",
]


class WorksheetError(ValueError):
    """A grading worksheet that cannot be used."""


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    """Header and rows of a CSV file as Moodle and Canvas write it (UTF-8, maybe with a BOM)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def participant(identifier: str) -> str | None:
    match = PARTICIPANT.match(identifier.strip())
    return match.group(1) if match else None


def student_id(row: dict) -> str:
    return row.get("Email address", "").strip().lower()


def read_worksheet(path: Path) -> dict[str, dict]:
    """{participant id: row} of a grading worksheet; WorksheetError when it is not one."""
    header, rows = read_csv(path)
    missing = [c for c in ("Identifier", "Full name", "Email address") if c not in header]
    if missing:
        raise WorksheetError(
            f"{path.name} is not a Moodle grading worksheet with email addresses (no "
            f"{', '.join(missing)} column): download it from the assignment's 'View all "
            "submissions' page with the email address shown"
        )
    return {participant(row["Identifier"]): row for row in rows if participant(row["Identifier"])}


def find_worksheet(folder: Path) -> Path | None:
    """The grading worksheet among the CSV files in ``folder`` (searched recursively)."""
    for path in sorted(folder.rglob("*.csv")) if folder.is_dir() else []:
        header, _ = read_csv(path)
        if IDENTIFIER in header:
            return path
    return None


def parse_path(path: Path, extracted: Path) -> tuple[str, str, str] | None:
    """(full name, participant id, uploaded name) of a file in an extracted Moodle download."""
    parts = path.relative_to(extracted).parts
    for index, part in enumerate(parts):
        match = PART.match(part)
        if match:
            rest = [match["rest"]] if match["rest"] else []
            uploaded = "/".join(rest + list(parts[index + 1 :]))
            if uploaded:
                return match["name"], match["participant"], uploaded
    return None


class MoodleCollector(LmsCollector):
    """``nbgrader zip_collect <ps> --collector=cnnbook.lms.moodle.MoodleCollector``."""

    timezone = Unicode(
        "UTC", help="The time zone of the worksheet's dates (the Moodle user's, e.g. Europe/Berlin)"
    ).tag(config=True)

    def parse(self, path: Path, extracted: Path) -> Found | None:
        parsed = parse_path(path, extracted)
        if parsed is None:
            return None
        name, number, uploaded = parsed
        row = self._worksheet(extracted).get(number)
        if row is None or not student_id(row):
            self.log.warning(
                "Skipped %s: participant %s is not in the grading worksheet", name, number
            )
            return None
        return Found(student_id(row), uploaded, self._submitted_at(row), 0)

    def _worksheet(self, extracted: Path) -> dict[str, dict]:
        if getattr(self, "_rows", None) is None:
            path = find_worksheet(extracted)
            if path is None:
                self.parent.fail(
                    "No Moodle grading worksheet (a CSV file with an 'Identifier' column) in "
                    f"downloaded/{self.assignment}/archive/: download it from the assignment "
                    "('Download grading worksheet') and put it beside the zip"
                )
            try:
                self._rows = read_worksheet(path)
            except WorksheetError as error:
                self.parent.fail(str(error))
        return self._rows

    def _submitted_at(self, row: dict):
        text = row.get("Last modified (submission)", "").strip()
        if not text or text == "-":
            return None
        zone = tz.gettz(self.timezone)
        if zone is None:
            self.parent.fail(f"c.MoodleCollector.timezone = {self.timezone!r} is not a time zone")
        when = dateparser.parse(text).replace(tzinfo=zone)
        return when.astimezone(timezone.utc).replace(tzinfo=None)
