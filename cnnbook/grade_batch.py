"""Autograde every submission of one assignment in parallel on Dask; no student can stop the batch.

Run in the course folder::

    python -m cnnbook.grade_batch ps1-convolution
        [--workers N | --scheduler ADDRESS | --scheduler-file FILE]
        [--student ID ...] [--force] [--max-notebook-mb 20]

The client (this command) reads each student's submitted files as bytes (regular files only: links
and special files are left out, with a note) and sends them to a Dask worker with the assignment's
template (:mod:`cnnbook.batch.template`). The worker grades in a private temporary course, in the
sandbox, with the course's own ``nbgrader_config.py`` (:mod:`cnnbook.batch.task`) and returns the
graded notebooks, the scores, a status and the log. Only the client writes: the gradebook (SQLite or
PostgreSQL), ``autograded/<student>/<assignment>/`` (replaced only when the new one is complete),
``grade_batch/<assignment>/logs/<student>.log`` and ``report.csv``.

A rerun grades only students whose submission (or the assignment's source) changed since they were
last graded; ``--force`` regrades everyone; ``--student ID`` grades that student and updates that
row of ``report.csv``. Statuses: graded (with "cell timed out" / "kernel died" when the sandbox had
to stop a cell), unreadable notebook, missing notebook, timed out (checking the files), kills
grading workers, error, no submission. The exit code is 1 when a student was not graded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnnbook.batch.cluster import (
    Progress,
    connect,
    default_workers,
    run_tasks,
    thread_shares,
    warm_up,
)
from cnnbook.batch.files import content_hash, read_submission
from cnnbook.batch.record import read_scores, record
from cnnbook.batch.state import State
from cnnbook.batch.task import grade_student
from cnnbook.batch.template import build_template, source_digest
from cnnbook.grader.submission import MAX_NOTEBOOK_BYTES

FOLDERS = {
    "source_directory": "source",
    "release_directory": "release",
    "submitted_directory": "submitted",
    "autograded_directory": "autograded",
}


def course_settings(course: Path) -> dict:
    """Folder names, gradebook URL and course id from the course's nbgrader_config.py (nbgrader's
    defaults otherwise)."""
    settings = {
        **FOLDERS,
        "db_url": f"sqlite:///{course / 'gradebook.db'}",
        "course_id": "default_course",
    }
    config = course / "nbgrader_config.py"
    if config.is_file():
        from traitlets.config.loader import PyFileConfigLoader

        section = (
            PyFileConfigLoader(config.name, path=str(course))
            .load_config()
            .get("CourseDirectory", {})
        )
        settings.update({key: section[key] for key in settings if key in section})
    return settings


def check_gradebook(settings: dict, assignment: str) -> None:
    """Stop with a clear message when the gradebook cannot be opened or lacks the assignment."""
    from nbgrader.api import Gradebook, MissingEntry

    url = settings["db_url"]
    try:
        with Gradebook(url, settings["course_id"]) as gb:
            gb.find_assignment(assignment)
    except MissingEntry:
        raise SystemExit(
            f"error: the gradebook has no assignment {assignment!r}. Fix: run "
            f"`nbgrader generate_assignment {assignment} --force` first."
        ) from None
    except Exception as exc:  # noqa: BLE001 - any driver's error: say what and how to fix it
        shown = url.split("@")[-1] if "@" in url else url
        raise SystemExit(
            f"error: cannot open the gradebook at {shown}: {str(exc).splitlines()[0][:300]}. "
            "Fix: check NBGRADER_DB_URL (or db_url in nbgrader_config.py) and that the "
            "database server is running; nothing was graded or changed."
        ) from None


class Batch:
    """One run: which students need grading, and what happens to each result as it arrives."""

    def __init__(
        self, course: Path, assignment: str, settings: dict, progress: Progress, max_bytes: int
    ):
        self.course, self.assignment, self.settings, self.progress = (
            course,
            assignment,
            settings,
            progress,
        )
        self.max_bytes = max_bytes
        self.out = course / "grade_batch" / assignment
        self.state = State(self.out)
        self.done: list[dict] = []
        self.skipped: list[str] = []
        source = course / settings["source_directory"] / assignment
        self.notebooks = {p.name for p in source.glob("*.ipynb")}

    def select(self, students: list[str], digest: str, force: bool) -> list[str]:
        """The students to grade; absent students are recorded and unchanged ones skipped on the
        way."""
        todo = []
        for student in students:
            folder = self.folder(student)
            if not folder.is_dir():
                self.finish(
                    None,
                    {
                        "student": student,
                        "status": "no submission",
                        "notes": [f"no folder {folder}"],
                        "grades": None,
                    },
                )
            elif not force and self.state.up_to_date(student, self.digest(student, digest)):
                self.skipped.append(student)
                self.progress.line(f"{student:20s} unchanged since graded, kept (--force regrades)")
            else:
                todo.append(student)
        return todo

    def folder(self, student: str) -> Path:
        return self.course / self.settings["submitted_directory"] / student / self.assignment

    def digest(self, student: str, digest: str) -> str:
        return content_hash(
            read_submission(self.folder(student), self.max_bytes)[0], digest.encode()
        )

    def jobs(self, students: list[str], digest: str, shares: dict[str, int]):
        """Each student's job, with the files read now (what is graded is what is hashed)."""
        for student in students:
            files, left_out = read_submission(self.folder(student), self.max_bytes)
            notes = list(left_out.values())
            if self.notebooks & set(
                left_out
            ):  # a named pipe, a device or a huge file in place of the notebook
                self.finish(
                    None,
                    {
                        "student": student,
                        "status": "unreadable notebook",
                        "notes": notes,
                        "grades": None,
                    },
                )
                continue
            yield {
                "student": student,
                "assignment": self.assignment,
                "files": files,
                "notes": notes,
                "digest": content_hash(files, digest.encode()),
                "max_bytes": self.max_bytes,
                "thread_shares": shares,
            }

    def failed(self, job: dict, status: str, note: str) -> None:
        self.finish(
            job, {"student": job["student"], "status": status, "notes": [note], "grades": None}
        )

    def finish(self, job: dict | None, result: dict) -> None:
        """Record one result (gradebook, graded folder, log), then its row in state.json and
        report.csv."""
        s = self.settings
        result["notes"] = (job["notes"] if job else []) + result["notes"]
        record(
            result,
            self.assignment,
            s["db_url"],
            s["course_id"],
            self.course / s["autograded_directory"],
            self.out / "logs" / f"{result['student']}.log",
        )
        score, max_score = read_scores(
            s["db_url"], s["course_id"], self.assignment, result["student"]
        )
        graded = job is not None and result["status"].startswith("graded")
        row = {
            "student": result["student"],
            "status": result["status"],
            "score": score,
            "max_score": max_score,
            "seconds": result.get("seconds", 0.0),
            "notes": result["notes"],
            "hash": job["digest"] if graded else None,
        }
        self.state.update(row)
        self.done.append(row)
        shown = "-" if score is None else f"{score:g}/{max_score:g}"
        self.progress.line(
            f"{row['student']:20s} {row['status']:30s} {shown:>10s} {row['seconds']:6.1f}s  "
            f"{' | '.join(row['notes'])}"
        )


def grade(
    course: Path,
    assignment: str,
    students: list[str] | None = None,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    scheduler_file: str | None = None,
    force: bool = False,
    max_notebook_bytes: int = MAX_NOTEBOOK_BYTES,
) -> list[dict]:
    """Grade ``students`` (default: everyone in submitted/) on Dask; returns the rows this run
    wrote."""
    course = course.resolve()
    settings = course_settings(course)
    check_gradebook(settings, assignment)
    digest = source_digest(course, settings, assignment)
    submitted = course / settings["submitted_directory"]
    if students is None:
        students = (
            sorted(p.name for p in submitted.iterdir() if p.is_dir()) if submitted.is_dir() else []
        )
    with Progress(len(students), f"grading {assignment}") as progress:
        batch = Batch(course, assignment, settings, progress, max_notebook_bytes)
        try:
            todo = batch.select(students, digest, force)
            if todo:
                with connect(workers, scheduler, scheduler_file) as client:
                    warm_up(client)
                    template = build_template(course, settings, assignment)
                    jobs = batch.jobs(todo, template.digest, thread_shares(client))
                    run_tasks(client, grade_student, template, jobs, batch.finish, batch.failed)
        finally:
            progress.line(f"report: {batch.state.write_report()}", advance=False)
    return batch.done


def _parser() -> argparse.ArgumentParser:
    """The command line: the assignment, which students, and where to grade them."""
    parser = argparse.ArgumentParser(
        prog="python -m cnnbook.grade_batch", description=__doc__.split("\n")[0]
    )
    parser.add_argument("assignment", help="the assignment to grade, e.g. ps1-convolution")
    parser.add_argument(
        "--student",
        action="append",
        help="grade only this student (repeatable); the other rows of report.csv are kept",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="regrade students whose submission has not changed since they were last graded",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        help=f"worker processes of a local Dask cluster (default: one per "
        f"core, {default_workers()} here)",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="grade on an existing Dask cluster, e.g. "
        "tcp://10.0.0.5:8786 or tls://... (see the instructors' page)",
    )
    where.add_argument(
        "--scheduler-file",
        metavar="FILE",
        help="grade on the existing Dask cluster whose "
        "scheduler wrote FILE (dask scheduler --scheduler-file FILE)",
    )
    parser.add_argument(
        "--course", type=Path, default=Path.cwd(), help="course folder (default: current folder)"
    )
    parser.add_argument(
        "--max-notebook-mb",
        type=float,
        default=MAX_NOTEBOOK_BYTES / 2**20,
        help="largest submitted file read, in MiB (default: %(default)g); larger ones are "
        "left out, and a larger notebook is rejected unread",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    try:
        rows = grade(
            args.course,
            args.assignment,
            args.student,
            workers=args.workers,
            scheduler=args.scheduler,
            scheduler_file=args.scheduler_file,
            force=args.force,
            max_notebook_bytes=int(args.max_notebook_mb * 2**20),
        )
    except KeyboardInterrupt:
        print(
            "interrupted: every result that arrived is recorded (report.csv is up to date); run "
            "the same command again to grade the rest",
            file=sys.stderr,
        )
        return 130
    return 1 if any(not row["status"].startswith("graded") for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
