"""``python -m cnnbook.lms roster FILE``: the class list, from the LMS's own export, into the
gradebook (id, first and last name, email, LMS id) and into ``roster/<lms>.csv``, which the export
reads to list every student, with or without a submission.

Canvas: the gradebook export (Grades > Export > CSV); a student's id is Canvas's numeric user id
(the ``ID`` column, the number in the download's file names). Moodle: the assignment's grading
worksheet; a student's id is their email address, lower-cased (Moodle's participant numbers are
different in every assignment).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cnnbook.lms import canvas, moodle
from cnnbook.lms.course import Course, LmsError


def detect(header: list[str]) -> str:
    if moodle.IDENTIFIER in header:
        return "moodle"
    if "Student" in header and "ID" in header:
        return "canvas"
    raise LmsError(
        "the roster is neither a Canvas gradebook export (columns Student, ID, ...) nor a Moodle "
        "grading worksheet (columns Identifier, Full name, Email address, ...): export it from "
        "the LMS again without editing its header"
    )


def canvas_students(rows: list[dict]) -> list[dict]:
    students = []
    for row in canvas.roster_rows(rows):
        first, last = canvas.split_sortable(row["Student"])
        sis = row.get("SIS Login ID", "").strip()
        email = sis if "@" in sis else None
        students.append(dict(id=row["ID"].strip(), first_name=first, last_name=last, email=email))
        students[-1]["lms_user_id"] = row["ID"].strip()
    return students


def moodle_students(rows: list[dict]) -> list[dict]:
    students = []
    for row in rows:
        student = moodle.student_id(row)
        if not student:
            continue
        first, _, last = row.get("Full name", "").strip().rpartition(" ")
        students.append(
            dict(
                id=student, first_name=first or last, last_name=last if first else "", email=student
            )
        )
        students[-1]["lms_user_id"] = student
    return students


def import_roster(course: Course, path: Path) -> tuple[str, int]:
    """Add or update every student of the roster; returns (LMS, number of students)."""
    from nbgrader.api import Gradebook

    if not path.is_file():
        raise LmsError(f"no roster file {path}: give the CSV file the LMS exported")
    header, rows = moodle.read_csv(path)
    lms = detect(header)
    students = canvas_students(rows) if lms == "canvas" else moodle_students(rows)
    if not students:
        raise LmsError(f"{path.name} lists no students: export the roster with the students in it")
    with Gradebook(course.db_url, course.course_id) as gradebook:
        for student in students:
            gradebook.update_or_create_student(student.pop("id"), **student)
    target = course.root / "roster" / f"{lms}.csv"
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(path, target)
    return lms, len(students)


def roster_path(course: Course, lms: str) -> Path:
    path = course.root / "roster" / f"{lms}.csv"
    if not path.is_file():
        raise LmsError(
            f"no {lms} roster in this course: run `python -m cnnbook.lms roster <the {lms} "
            "export>.csv` first"
        )
    return path
