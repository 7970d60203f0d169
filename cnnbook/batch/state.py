"""What was graded from which content, so a rerun grades only what changed; and ``report.csv``.

``grade_batch/<assignment>/state.json`` holds one row per student: the content hash of what was
graded, the status, the score and the notes. It is rewritten whole after each student (a temporary
file, then a rename), so an interrupted batch keeps every result it had. ``report.csv`` is made from
it: grading one student updates that student's row and keeps the others.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from cnnbook.batch.files import write_file

COLUMNS = ["student", "status", "score", "max_score", "seconds", "notes"]


class State:
    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / "state.json"
        try:
            self.rows = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.rows = {}

    def up_to_date(self, student: str, digest: str) -> bool:
        """Whether ``student`` was graded from exactly this content (rejected submissions are
        retried)."""
        row = self.rows.get(student)
        return (
            bool(row)
            and row.get("hash") == digest
            and str(row.get("status", "")).startswith("graded")
        )

    def update(self, row: dict) -> None:
        self.rows[row["student"]] = row
        write_file(self.path, json.dumps(self.rows, indent=1, sort_keys=True).encode())

    def write_report(self) -> Path:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for student in sorted(self.rows):
            row = self.rows[student]
            writer.writerow(
                [
                    student,
                    row["status"],
                    _blank(row.get("score")),
                    _blank(row.get("max_score")),
                    row.get("seconds", ""),
                    " | ".join(row.get("notes", [])),
                ]
            )
        path = self.folder / "report.csv"
        write_file(path, out.getvalue().encode("utf-8"))
        return path


def _blank(value) -> str:
    return "" if value is None else value
