"""nbgrader's configuration for this course (read by every `nbgrader ...` command run from this
folder).

Course folders (nbgrader's names -> this project's names):
  source     -> solutions/   source notebooks: reference solutions, visible and hidden tests
  release    -> exercises/   student notebooks, made by `nbgrader generate_assignment <ps> --force`
  submitted/, autograded/, feedback/   nbgrader's default names (not in git)
See book/instructors.md for the one command per step.
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

ROOT = Path(__file__).resolve().parent
c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
# PostgreSQL enforces the assignments' foreign key to the course table, which an empty course id
# breaks.
c.CourseDirectory.course_id = "cnn-course"

# The gradebook: SQLite in the course folder by default. For a shared server, put any SQLAlchemy URL
# in the environment, e.g. NBGRADER_DB_URL=postgresql://grader:secret@dbhost/cnn_course (works as
# written: psycopg 3, SQLAlchemy's default PostgreSQL driver, is installed). book/instructors.md has
# the set-up.
c.CourseDirectory.db_url = os.environ.get("NBGRADER_DB_URL", f"sqlite:///{ROOT / 'gradebook.db'}")

# `nbgrader generate_assignment <ps> --force` records a new assignment in the gradebook, and
# `nbgrader autograde <ps>` adds students it has not seen (their folder name in submitted/ is their
# id).
c.GenerateAssignment.create_assignment = True
c.Autograde.create_student = True

# Grading runs each notebook top to bottom, then the grader's probe cells. Each assignment's checks
# module sets its own limits (cnnbook/grader/checks/: 30 s per cell and 110 s per notebook for ps1
# and ps2, 60 s and 240 s for ps3, whose training runs in the grader's own process); this is the cap
# for every cell, and the limit for an assignment without checks.
c.Execute.timeout = 300


# Grading that a student cannot forge (cnnbook/grader/__init__.py): students' code runs in a sandbox
# (bubblewrap, user nobody, no network, resource limits, only the Python environment, the dataset
# cache and a private working folder visible) and decides nothing. After the student's cells, the
# grader calls the student's functions on inputs it draws for each submission; the results come back
# as plain data, and the grader's own checks (cnnbook/grader/checks/) decide every graded cell's
# points and name the mistake in the feedback. Autograding refuses to run without bubblewrap unless
# you pass require_sandbox=False (trusted submissions only).
from cnnbook.grader import configure  # noqa: E402

configure(c, ROOT)


# --- The term with an LMS (book/instructors.md, "A term with Canvas or Moodle"; cnnbook/lms/).
# Import: `nbgrader zip_collect <ps>` reads the zip in downloaded/<ps>/archive/ with Canvas's file
# names (Moodle: add --collector=cnnbook.lms.moodle.MoodleCollector, and set the time zone of its
# grading worksheet's dates below). Due dates: one per assignment, with its time zone; None means
# no due date. A late notebook loses percent_per_day % of its score per started day late, at most
# max_percent %, applied by nbgrader's AssignLatePenalties and shown by `nbgrader export`.
c.DueDates.due_dates = {
    "ps1-convolution": None,  # e.g. "2026-10-16 23:59 +02:00"
    "ps2-pooling": None,
    "ps3-mnist": None,
}
c.PenaltyPerDay.percent_per_day = 10.0
c.PenaltyPerDay.max_percent = 50.0
c.PenaltyPerDay.grace_minutes = 15.0
c.MoodleCollector.timezone = "UTC"

from cnnbook.lms import configure_lms  # noqa: E402

configure_lms(c)
