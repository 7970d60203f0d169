"""A worker's result, written by the client alone: the gradebook, ``autograded/`` and the log.

The scores come as plain data (each graded cell's automatic score, each comment); they are written
with nbgrader's own gradebook API, so the gradebook may be SQLite or PostgreSQL. A manual score an
instructor set earlier is kept, and the cell is marked for review, as nbgrader's SaveAutoGrades
does.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from cnnbook.batch.files import replace_folder, write_file


def record(
    result: dict, assignment: str, db_url: str, course_id: str, autograded: Path, log: Path
) -> None:
    """Write one student's result. The graded folder is replaced only after the gradebook took the
    scores."""
    write_file(log, _log_text(result).encode("utf-8", "replace"))
    if result["grades"] is None:
        return  # rejected before grading: nothing to record, earlier grades stay
    save_grades(
        db_url, course_id, assignment, result["student"], result["grades"], result["timestamp"]
    )
    replace_folder(autograded / result["student"] / assignment, result["autograded"])


def save_grades(
    db_url: str, course_id: str, assignment: str, student: str, grades: dict, timestamp: str | None
) -> None:
    """Each cell's automatic score and comment into the gradebook (one commit at the end)."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url, course_id) as gb, quiet_autoflush():
        gb.update_or_create_student(student)
        when = {"timestamp": datetime.fromisoformat(timestamp)} if timestamp else {}
        submission = gb.update_or_create_submission(assignment, student, **when)
        for notebook in submission.notebooks:
            graded = grades.get(notebook.name, {})
            scores, comments = graded.get("scores", {}), graded.get("comments", {})
            for grade in notebook.grades:
                grade.auto_score = scores.get(grade.name, 0.0)
                grade.needs_manual_grade = (
                    grade.manual_score is not None or grade.auto_score is None
                )
            for comment in notebook.comments:
                comment.auto_comment = comments.get(comment.name)
            notebook.late_submission_penalty = graded.get("late_submission_penalty")
        gb.db.commit()


@contextmanager
def quiet_autoflush():
    """Without SQLAlchemy's "Object of type <SubmittedAssignment> not in session" warnings:
    nbgrader's gradebook reads a new submission's notebooks before adding it (autoflush), which is
    harmless and which no instructor can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Object of type <Submitted\w+> not in session")
        yield


def read_scores(
    db_url: str, course_id: str, assignment: str, student: str
) -> tuple[float | None, float | None]:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url, course_id) as gb:
        try:
            submission = gb.find_submission(assignment, student)
        except MissingEntry:
            return None, None
        return float(submission.score), float(submission.max_score)


def _log_text(result: dict) -> str:
    lines = [
        f"student: {result['student']}",
        f"status: {result['status']}",
        f"worker: {result.get('worker', '?')}, {result.get('seconds', '?')} s",
    ]
    lines += [f"note: {note}" for note in result["notes"]]
    return "\n".join(lines) + "\n\n" + (result.get("log") or "")
