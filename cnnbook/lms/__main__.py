"""``python -m cnnbook.lms roster|export|formgrader ...`` (``--help`` on each)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnnbook.lms.course import LmsError, load_course


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m cnnbook.lms",
        description="The term with Canvas or Moodle: roster in, grades and feedback out, "
        "manual grading. Imports are `nbgrader zip_collect` (book/instructors.md).",
    )
    top.add_argument("--course", type=Path, default=Path("."), help="course folder (default: .)")
    sub = top.add_subparsers(dest="command", required=True)
    roster = sub.add_parser(
        "roster",
        help="students (names, LMS ids) into the gradebook",
        description="Add or update every student of the LMS's roster export in the gradebook "
        "and keep a copy in roster/<lms>.csv for the export. Canvas: Grades > Export (CSV); "
        "Moodle: the assignment's grading worksheet.",
    )
    roster.add_argument("file", type=Path, help="the CSV file the LMS exported")
    export = sub.add_parser(
        "export",
        help="grades and feedback in the LMS's import formats",
        description="Write exports/<assignment>/: the LMS's grade CSV, a zip of feedback files "
        "laid out for the LMS's upload, and report.csv (every student's status). Ungraded "
        "submissions get an empty grade, never 0; students without a submission get 0.",
    )
    export.add_argument("assignment")
    export.add_argument("--to", choices=("canvas", "moodle"), required=True)
    export.add_argument("--column", help="Canvas: the gradebook column, e.g. 'PS 1 (48213)'")
    export.add_argument("--worksheet", type=Path, help="Moodle: the grading worksheet CSV")
    formgrader = sub.add_parser(
        "formgrader",
        help="nbgrader's formgrader on 127.0.0.1 (manual grading)",
        description="Start nbgrader's formgrader for this course on http://127.0.0.1:PORT, as "
        "your own user (never root); stop it with Ctrl-C.",
    )
    formgrader.add_argument("--port", type=int, default=8890)
    return top


def run(args) -> int:
    if args.command == "formgrader":
        from cnnbook.lms.formgrader import run_formgrader

        return run_formgrader(args.course, args.port)
    course = load_course(args.course)
    if args.command == "roster":
        from cnnbook.lms.roster import import_roster

        lms, count = import_roster(course, args.file)
        print(f"roster: {count} students from {args.file.name} ({lms}) in the gradebook")
        return 0
    from cnnbook.lms import export

    if args.to == "canvas":
        warnings = export.export_canvas(course, args.assignment, args.column)
    else:
        warnings = export.export_moodle(course, args.assignment, args.worksheet)
    out = course.exports(args.assignment)
    for warning in warnings:
        print(f"warning: {warning}")
    print(f"export: {', '.join(sorted(p.name for p in out.iterdir()))} in {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args)
    except LmsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
