"""The gradebook in a real PostgreSQL server (tests/pg.py, one server per session, a fresh database
per test): nbgrader's whole workflow with the course's own config and the documented URL
postgresql://grader:secret@127.0.0.1:PORT/cnn_course, and ``python -m cnnbook.gradebook_copy``,
which copies a SQLite gradebook into PostgreSQL or refuses with one line."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import find_cell, html_text, make_course, nbgrader, nbgrader_db, solution_body
from sqlalchemy import create_engine, inspect, select

PS, NOTEBOOK, POINTS = "ps1-convolution", "convolution", 18
GRADE_CELLS = 12  # graded test cells of ps1


@pytest.fixture(autouse=True)
def alembic_on_path(monkeypatch):
    """nbgrader's Gradebook runs `alembic` from PATH when it creates a gradebook: this
    environment's."""
    monkeypatch.setenv(
        "PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )


def copy(from_url: str, to_url: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m cnnbook.gradebook_copy FROM_URL TO_URL`` as an instructor runs it."""
    env = {k: v for k, v in os.environ.items() if k != "NBGRADER_DB_URL"}
    return subprocess.run(
        [sys.executable, "-m", "cnnbook.gradebook_copy", from_url, to_url],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_refused(done: subprocess.CompletedProcess, *words: str) -> None:
    """Exit code 2, one line on stderr that starts with "error:" and says ``words``, no
    traceback."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for word in words:
        assert word in lines[0], lines[0]


def partial_submission(course) -> dict:
    """ps1 with only output_size and conv2d_params solved: 1 + 1 + 1 + 1 = 4 points."""
    source = course.source_notebook(PS, NOTEBOOK)
    return course.submission(
        PS,
        NOTEBOOK,
        {gid: solution_body(find_cell(source, gid)) for gid in ("output_size", "conv2d_params")},
    )


def rows(url: str) -> dict[str, list[tuple]]:
    """Every row of every nbgrader table, sorted: {table: [row, ...]}."""
    from nbgrader.api import Base

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table.name: sorted((tuple(r) for r in conn.execute(select(table))), key=repr)
                for table in Base.metadata.sorted_tables
            }
    finally:
        engine.dispose()


def scores(url: str) -> tuple[set, dict, dict]:
    """(students, {student: (score, max_score)}, {(student, cell): auto_score}) read through
    nbgrader's API."""
    from nbgrader.api import Gradebook

    with Gradebook(url, course_id="cnn-course") as gb:
        students = {s.id for s in gb.students}
        submissions = {
            s.student.id: (float(s.score), float(s.max_score))
            for s in gb.assignment_submissions(PS)
        }
        grades = {
            (g.student.id, g.name): g.auto_score
            for s in gb.notebook_submissions(NOTEBOOK, PS)
            for g in s.grades
        }
    return students, submissions, grades


@pytest.mark.slow
def test_nbgrader_workflow_grades_into_postgres(postgres_url):
    from nbgrader.api import Gradebook

    course = make_course(assignments=())
    try:

        def run(*args):
            done = nbgrader_db(course, postgres_url, *args)
            assert done.returncode == 0, f"nbgrader {' '.join(args)}:\n{done.stderr[-3000:]}"

        run("generate_assignment", PS, "--force")
        course.submit("kim", PS, course.submission(PS, NOTEBOOK, honest=True), notebook=NOTEBOOK)
        run("autograde", PS)
        run("generate_feedback", PS)
        run("export", "--to", "grades.csv")

        assert not course.gradebook.exists(), (
            "nbgrader wrote a SQLite gradebook instead of PostgreSQL's"
        )
        students, submissions, grades = scores(postgres_url)
        assert students == {"kim"}
        assert submissions == {"kim": (POINTS, POINTS)}
        assert len(grades) == GRADE_CELLS and sum(grades.values()) == POINTS
        with Gradebook(postgres_url, course_id="cnn-course") as gb:
            assert gb.find_assignment(PS).course_id == "cnn-course"
            assert gb.find_grade("test_conv2d_random_cases", NOTEBOOK, PS, "kim").auto_score == 3

        with open(course.root / "grades.csv", newline="", encoding="utf-8") as f:
            exported = [row for row in csv.DictReader(f) if row["student_id"] == "kim"]
        assert [
            (row["assignment"], float(row["score"]), float(row["max_score"])) for row in exported
        ] == [(PS, POINTS, POINTS)]
        assert "18.0 / 18.0" in html_text(course.feedback_html("kim", PS, NOTEBOOK))
    finally:
        course.remove()


@pytest.mark.slow
def test_copy_sqlite_gradebook_into_postgres(postgres_url, tmp_path):
    from nbgrader.api import Gradebook

    course = make_course()
    try:
        course.submit("kim", PS, course.submission(PS, NOTEBOOK, honest=True), notebook=NOTEBOOK)
        course.submit("lee", PS, partial_submission(course), notebook=NOTEBOOK)
        done = nbgrader(course, "autograde", PS)
        assert done.returncode == 0, done.stderr[-3000:]
        sqlite_url = f"sqlite:///{course.gradebook}"
        Gradebook(
            postgres_url, course_id="cnn-course"
        ).close()  # as nbgrader left it: tables, a course row

        done = copy(sqlite_url, postgres_url, tmp_path)
        assert done.returncode == 0, done.stderr
        assert "grade                      24 rows" in done.stdout
        assert "password" not in done.stdout and "secret" not in done.stdout

        copied = rows(postgres_url)
        assert copied == rows(sqlite_url)
        assert len(copied["grade"]) == 2 * GRADE_CELLS and len(copied["submitted_assignment"]) == 2
        students, submissions, grades = scores(postgres_url)
        assert (students, submissions, grades) == scores(sqlite_url)
        assert submissions == {"kim": (POINTS, POINTS), "lee": (4, POINTS)}
        assert (
            grades[("lee", "test_output_size_examples")] == 1
            and grades[("lee", "test_conv2d_seed_examples")] == 0
        )
        assert sum(score for (student, _), score in grades.items() if student == "kim") == POINTS

        again = copy(sqlite_url, postgres_url, tmp_path)
        assert_refused(
            again, "the target already holds grading data", "2 student rows", "empty database"
        )
        assert rows(postgres_url) == copied
    finally:
        course.remove()


@pytest.mark.filterwarnings(
    "ignore::sqlalchemy.exc.SAWarning"
)  # nbgrader's add_submission, not the copy
def test_copy_keeps_a_gradebook_made_without_a_course_id(postgres_url, tmp_path):
    """Gradebooks made before the course id was set name the course '' and have no course row
    (SQLite does not enforce the key); PostgreSQL gets that course row, and nbgrader reads the
    copy."""
    from nbgrader.api import Gradebook

    sqlite_url = f"sqlite:///{tmp_path / 'old.db'}"
    with Gradebook(sqlite_url, course_id="") as gb:
        gb.add_assignment(PS)
        gb.add_student("kim", first_name="Kim")
        gb.add_submission(PS, "kim")
    done = copy(sqlite_url, postgres_url, tmp_path)
    assert done.returncode == 0, done.stderr
    assert rows(postgres_url)["course"] == [("",)]
    with Gradebook(postgres_url, course_id="cnn-course") as gb:
        assert gb.find_assignment(PS).course_id == ""
        assert gb.find_student("kim").first_name == "Kim"
        assert gb.find_submission(PS, "kim").student.id == "kim"


@pytest.fixture(scope="module")
def empty_gradebook(tmp_path_factory) -> Path:
    """An nbgrader gradebook (SQLite) with no grading data, made once: nbgrader takes seconds to
    make one."""
    from nbgrader.api import Gradebook

    path = tmp_path_factory.mktemp("empty") / "gradebook.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            "PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        )
        Gradebook(f"sqlite:///{path}", course_id="cnn-course").close()
    return path


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    from pg import free_port

    return free_port()


@pytest.mark.parametrize(
    "target, words",
    [
        (
            "postgresql//grader:secret@127.0.0.1/cnn_course",
            ("the target URL", "is not a database URL", "postgresql://user:password@host/database"),
        ),
        (
            "postgres-sql://grader:secret@127.0.0.1/cnn_course",
            ("the target URL", "is not a database URL"),
        ),
        (
            "postgresql://grader:secret@127.0.0.1:{closed}/cnn_course",
            ("cannot connect to the target", "Connection refused", "***"),
        ),
        (
            "postgresql://grader:wrong@127.0.0.1:{port}/cnn_course",
            ("cannot connect to the target", "password authentication failed"),
        ),
        (
            "postgresql://grader:secret@127.0.0.1:{port}/no_such_db",
            ("cannot connect to the target", "does not exist"),
        ),
    ],
)
def test_copy_refuses_bad_targets(postgres_server, empty_gradebook, tmp_path, target, words):
    source = f"sqlite:///{empty_gradebook}"
    target = target.format(port=postgres_server.port, closed=closed_port())
    done = copy(source, target, tmp_path)
    assert_refused(done, *words)
    assert "secret" not in done.stderr and "wrong" not in done.stderr


def test_copy_refuses_bad_sources(postgres_url, tmp_path):
    missing = copy(f"sqlite:///{tmp_path / 'nope.db'}", postgres_url, tmp_path)
    assert_refused(missing, "nope.db does not exist")
    assert not (tmp_path / "nope.db").exists()

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE student (name TEXT)")
    assert_refused(
        copy(f"sqlite:///{other}", postgres_url, tmp_path), "not an nbgrader gradebook", "'course'"
    )
    assert_refused(
        copy("sqlite//gradebook.db", postgres_url, tmp_path),
        "the source URL",
        "is not a database URL",
    )

    engine = create_engine(postgres_url)
    try:
        assert inspect(engine).get_table_names() == [], (
            "a refused copy created tables in the target"
        )
    finally:
        engine.dispose()
