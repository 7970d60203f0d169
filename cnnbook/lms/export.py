"""``python -m cnnbook.lms export <assignment> --to canvas|moodle``: the grades in the LMS's import
format, one feedback file per student in a zip laid out for the LMS's upload, and a report.

Written to ``exports/<assignment>/`` (each file complete or not at all):

canvas   ``canvas-grades.csv`` (Grades > Import), ``canvas-feedback.zip`` (the assignment's
         "Upload Submissions": Canvas matches ``<name>_<user id>_<file id>_...`` to the student)
moodle   ``moodle-grades.csv`` (the assignment's "Upload grading worksheet"),
         ``moodle-feedback.zip`` ("Upload multiple feedback files in a zip")
both     ``report.csv``: every student with status, raw score, late penalty, score, time handed in

A student whose submission is not graded (or waits for manual grading) gets an empty grade, which
both LMSs read as "no change"; a student on the roster with no submission gets 0.
"""

from __future__ import annotations

import csv
import io
import zipfile

from cnnbook.lms import canvas, moodle
from cnnbook.lms.course import Course, LmsError, write_whole
from cnnbook.lms.results import Result, fmt, results, scaled
from cnnbook.lms.roster import roster_path

REPORT = [
    "student_id",
    "name",
    "lms_id",
    "status",
    "raw_score",
    "late_penalty",
    "score",
    "max_score",
    "submitted_at_utc",
    "days_late",
]


def csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def report_row(result: Result, name: str, lms_id: str) -> list[str]:
    when = result.submitted_at.strftime("%Y-%m-%d %H:%M:%S") if result.submitted_at else ""
    return [
        result.student_id,
        name,
        lms_id,
        result.status,
        fmt(result.raw_score),
        fmt(result.penalty),
        fmt(result.score),
        fmt(result.max_score),
        when,
        str(result.days_late),
    ]


def feedback_files(course: Course, student: str, assignment: str) -> list:
    folder = course.feedback / student / assignment
    return sorted(folder.glob("*.html")) if folder.is_dir() else []


def zip_bytes(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            archive.writestr(name, data)
    return out.getvalue()


def export_canvas(course: Course, assignment: str, column: str | None = None) -> list[str]:
    header, rows = moodle.read_csv(roster_path(course, "canvas"))
    students = canvas.roster_rows(rows)
    found = results(course, assignment, [r["ID"].strip() for r in students])
    name = canvas.assignment_column(header, assignment, column)
    theirs = canvas.points_possible(rows, name)
    maximum = theirs or max((r.max_score for r in found.values()), default=0.0)
    grades = [[canvas.POINTS_ROW, "", "", "", "", fmt(maximum)]]
    report, files, unnamed = [], {}, []
    download = canvas.download_names(course.downloaded(assignment) / "extracted")
    for row in students:
        result = found[row["ID"].strip()]
        grades.append([row.get(c, "") for c in canvas.ID_COLUMNS] + [scaled(result, theirs)])
        report.append(report_row(result, row["Student"], row["ID"]))
        feedback = feedback_files(course, result.student_id, assignment)
        parts = download.get(result.student_id) if result.score is not None else None
        if feedback and result.score is not None and not parts:
            unnamed.append(result.student_id)
        for path in feedback if parts else []:
            prefix = f"{parts['name']}_{parts['user_id']}_{parts['file_id']}"
            files[f"{prefix}_{path.stem}-feedback.html"] = path.read_bytes()
    out = course.exports(assignment)
    write_whole(out / "canvas-grades.csv", csv_bytes(canvas.ID_COLUMNS + [name], grades))
    write_whole(out / "canvas-feedback.zip", zip_bytes(files))
    write_whole(out / "report.csv", csv_bytes(REPORT, report))
    return _unlisted(found, {r["ID"].strip() for r in students}) + [
        f"{student}'s feedback is not in canvas-feedback.zip: Canvas names an upload after its "
        f"download, which downloaded/{assignment}/extracted/ no longer holds (run nbgrader "
        f"zip_collect {assignment} on the Canvas zip, then export again)"
        for student in unnamed
    ]


def export_moodle(course: Course, assignment: str, worksheet=None) -> list[str]:
    path = worksheet or moodle.find_worksheet(course.downloaded(assignment) / "archive")
    if path is None:
        raise LmsError(
            f"no Moodle grading worksheet in downloaded/{assignment}/archive/: download it from "
            "the assignment ('Download grading worksheet') or pass --worksheet FILE"
        )
    header, rows = moodle.read_csv(path)
    moodle.read_worksheet(path)  # checks the columns
    rows = [r for r in rows if moodle.student_id(r) and moodle.participant(r["Identifier"])]
    found = results(course, assignment, [moodle.student_id(r) for r in rows])
    out_rows, report, files = [], [], {}
    for row in rows:
        result = found[moodle.student_id(row)]
        row = {**row, "Grade": scaled(result, _number(row.get("Maximum grade", "")))}
        if "Feedback comments" in row:
            row["Feedback comments"] = result.comment()
        out_rows.append([row.get(c, "") for c in header])
        report.append(report_row(result, row["Full name"], row["Identifier"]))
        folder = "{}_{}_assignfeedback_file".format(
            row["Full name"].replace("_", " "), moodle.participant(row["Identifier"])
        )
        graded = result.score is not None
        for path in feedback_files(course, result.student_id, assignment) if graded else []:
            files[f"{folder}/{path.stem}-feedback.html"] = path.read_bytes()
    out = course.exports(assignment)
    write_whole(out / "moodle-grades.csv", csv_bytes(header, out_rows))
    write_whole(out / "moodle-feedback.zip", zip_bytes(files))
    write_whole(out / "report.csv", csv_bytes(REPORT, report))
    return _unlisted(found, {moodle.student_id(r) for r in rows})


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "."))
    except ValueError:
        return None


def _unlisted(found: dict[str, Result], listed: set[str]) -> list[str]:
    """A warning for each student graded in this course whom the roster does not list."""
    return [
        f"{student} is graded but not on the roster: not exported"
        for student, result in sorted(found.items())
        if student not in listed and result.score is not None
    ]
