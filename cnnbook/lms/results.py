"""Each student's result for one assignment, from the gradebook and the submitted folder: the one
place that decides what the exports say.

status               exported score   when
graded               score            every graded cell has a score
graded, N day(s) late score - penalty  the same, handed in after the due date
needs manual grading (empty)          a cell waits for a score in the formgrader
not graded           (empty)          a submission is in submitted/ but grading gave it no score
no submission        0                the roster lists the student, nothing was handed in
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cnnbook.lms.course import Course
from cnnbook.lms.late import days_late, due_dates


@dataclass
class Result:
    student_id: str
    status: str
    score: float | None  # None: leave the LMS's cell empty (never 0 for "not graded")
    raw_score: float | None = None
    penalty: float = 0.0
    max_score: float = 0.0
    submitted_at: datetime | None = None  # UTC
    days_late: int = 0

    def comment(self) -> str:
        """One line for the student (Moodle's feedback comments)."""
        if self.status == "no submission":
            return "No submission."
        if self.score is None:
            return ""
        text = f"Autograded: {self.raw_score:g} of {self.max_score:g} points."
        if self.days_late:
            text += (
                f" Handed in {self.days_late} day(s) late: -{self.penalty:g} points,"
                f" {self.score:g} of {self.max_score:g}."
            )
        return text


def fmt(value: float | None) -> str:
    return "" if value is None else f"{round(value, 2):g}"


def scaled(result: Result, lms_maximum: float | None) -> str:
    """The score on the LMS's scale (its maximum grade may differ from the assignment's points)."""
    if result.score is None or not lms_maximum or not result.max_score:
        return fmt(result.score)
    return fmt(result.score * lms_maximum / result.max_score)


def _ungraded(submission) -> bool:
    return any(
        grade.auto_score is None and grade.manual_score is None
        for notebook in submission.notebooks
        for grade in notebook.grades
    )


def _graded(submission, assignment: str, due, grace_minutes: float) -> Result:
    raw = float(submission.score)
    penalty = float(submission.late_submission_penalty or 0)
    late_seconds = (
        (submission.timestamp - due).total_seconds() if due and submission.timestamp else 0
    )
    days = days_late(late_seconds, grace_minutes)
    status = f"graded, {days} day(s) late" if days else "graded"
    return Result(
        submission.student_id,
        status,
        max(0.0, raw - penalty),
        raw,
        penalty,
        float(submission.max_score),
        submission.timestamp,
        days,
    )


def results(course: Course, assignment: str, students: list[str]) -> dict[str, Result]:
    """{student id: Result} for ``students`` and for every student the gradebook has a
    submission of."""
    from nbgrader.api import Gradebook, MissingEntry

    due = due_dates(course.config).get(assignment)
    grace = float(course.config.get("PenaltyPerDay", {}).get("grace_minutes", 0) or 0)
    found: dict[str, Result] = {}
    with Gradebook(course.db_url, course.course_id) as gradebook:
        try:
            maximum = float(gradebook.find_assignment(assignment).max_score)
        except MissingEntry:
            from cnnbook.lms.course import LmsError

            raise LmsError(
                f"the gradebook has no assignment {assignment!r}: run "
                f"`nbgrader generate_assignment {assignment} --force`, then grade it"
            ) from None
        for submission in gradebook.assignment_submissions(assignment):
            if _ungraded(submission):  # checked first: nbgrader flags those cells for review too
                found[submission.student_id] = Result(submission.student_id, "not graded", None)
            elif submission.needs_manual_grade:
                found[submission.student_id] = Result(
                    submission.student_id, "needs manual grading", None
                )
            else:
                found[submission.student_id] = _graded(submission, assignment, due, grace)
    for student in students:
        if student not in found:
            folder = course.submitted / student / assignment
            handed_in = folder.is_dir() and any(folder.glob("*.ipynb"))
            found[student] = (
                Result(student, "not graded", None)
                if handed_in
                else Result(student, "no submission", 0.0, 0.0)
            )
        found[student].max_score = maximum
    return found
