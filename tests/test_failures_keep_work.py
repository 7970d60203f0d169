"""A failed release or grading keeps the previous result (cnnbook/grader/keepwork.py): plain
``nbgrader generate_assignment --force`` and ``nbgrader autograde --force``, run with this course's
nbgrader_config.py, replace the old result only when the new one is complete, and a gradebook URL
that does not work stops them with one line, before anything is removed."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_course, nbgrader, solution_body

ASSIGNMENT, NOTEBOOK, STUDENT = "ps1-convolution", "convolution", "kim"
BROKEN_URLS = {  # what NBGRADER_DB_URL says -> what the message must name
    "closed port": (
        "postgresql://x:hunter2@127.0.0.1:1/nope",
        "postgresql://x:***@127.0.0.1:1/nope",
    ),
    "not a URL": ("notaurl://", "is not a database URL"),
}


def nbgrader_with_db(course, db_url: str, *args: str) -> subprocess.CompletedProcess:
    """``nbgrader <args>`` in the course folder with NBGRADER_DB_URL=``db_url``."""
    env = dict(os.environ, NBGRADER_DB_URL=db_url, TF_CPP_MIN_LOG_LEVEL="2")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def tree(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder``: its bytes and permission bits, by relative path."""
    assert folder.is_dir(), f"{folder} is missing"
    return {
        str(p.relative_to(folder)): (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def leftovers(folder: Path) -> list[str]:
    """Folders a run keeps previous versions in, left beside ``folder``'s entries."""
    return sorted(p.name for p in folder.iterdir() if ".previous-" in p.name)


def assert_one_line_db_message(done: subprocess.CompletedProcess, expected: str) -> None:
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-3000:]
    assert "Traceback" not in out and 'File "' not in out, out[-3000:]
    lines = [line for line in out.splitlines() if "The gradebook" in line]
    assert len(lines) == 1, out[-3000:]
    line = lines[0]
    assert (
        expected in line and "(from NBGRADER_DB_URL)" in line and "correct NBGRADER_DB_URL" in line
    ), line
    assert line.rstrip().endswith("Nothing was changed."), line
    assert "hunter2" not in out


# --------------------------------------------------------------------------- fast: the pieces


def test_configure_sets_the_exporter_and_keeps_the_submission_screen(monkeypatch, tmp_path):
    from traitlets.config import Config

    from cnnbook import sandbox
    from cnnbook.grader import configure
    from cnnbook.grader.keepwork import KeepWorkExporter
    from cnnbook.grader.submission import screen_submission

    monkeypatch.setenv(sandbox.ENV_COURSE, "restored after the test")
    c = Config()
    configure(c, tmp_path)
    assert c.GenerateAssignment.exporter_class is KeepWorkExporter
    assert c.Autograde.exporter_class is KeepWorkExporter
    assert c.Autograde.pre_convert_hook is screen_submission
    assert "post_convert_hook" not in c.Autograde and "pre_convert_hook" not in c.GenerateAssignment


@pytest.mark.parametrize("case", ["closed port", "not a URL", "no driver", "empty"])
def test_a_broken_gradebook_url_is_one_line_with_the_fix(monkeypatch, case):
    from cnnbook.grader.keepwork import database_problem

    url, expected, fix = {
        "closed port": (*BROKEN_URLS["closed port"], "check that its server is running"),
        "not a URL": (
            *BROKEN_URLS["not a URL"],
            "a URL reads dialect://user:password@host[:port]/database",
        ),
        "no driver": (
            "mysql://x:hunter2@127.0.0.1:1/nope",
            "needs the Python package 'MySQLdb', which is not installed",
            "install it in the environment that runs nbgrader",
        ),
        "empty": (
            "",
            "The gradebook '' (from NBGRADER_DB_URL) is not a database URL",
            "correct NBGRADER_DB_URL",
        ),
    }[case]
    monkeypatch.setenv("NBGRADER_DB_URL", url)
    message = database_problem(url)
    assert "\n" not in message and expected in message and fix in message, message
    assert "hunter2" not in message and message.endswith("Nothing was changed.")
    monkeypatch.delenv("NBGRADER_DB_URL")
    assert "c.CourseDirectory.db_url in nbgrader_config.py" in database_problem(url)


def test_a_working_gradebook_is_no_problem(monkeypatch, tmp_path):
    from nbgrader.api import Gradebook

    from cnnbook.grader.keepwork import database_problem

    monkeypatch.setenv(
        "PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    Gradebook(url).close()  # made once (nbgrader runs `alembic` for a new one)
    assert database_problem(url) is None


def test_a_stopped_runs_previous_version_is_put_back(tmp_path):
    from cnnbook.grader.keepwork import PREVIOUS, move_aside, recover

    dest = tmp_path / "autograded" / STUDENT / ASSIGNMENT
    dest.mkdir(parents=True)
    (dest / "convolution.ipynb").write_bytes(b'{"graded": "first run"}')
    (dest / "data").mkdir()
    (dest / "data" / "kernel.txt").write_bytes(b"1 0 -1")
    before = tree(dest)
    dead = subprocess.Popen(["true"])
    dead.wait()
    # A run that was killed while it converted: the previous version aside, half a new one in place.
    holder = move_aside(dest)
    stopped = holder.rename(holder.with_name(f".{ASSIGNMENT}{PREVIOUS}{dead.pid}-x1"))
    dest.mkdir()
    (dest / "convolution.ipynb").write_bytes(b'{"half')
    # A run still going (its process exists) and one stopped before it moved anything.
    alive = dest.parent / f".{ASSIGNMENT}{PREVIOUS}{os.getppid()}-x2"
    (alive / ASSIGNMENT).mkdir(parents=True)
    (alive / ASSIGNMENT / "convolution.ipynb").write_bytes(b"someone else's")
    empty = dest.parent / f".{ASSIGNMENT}{PREVIOUS}{dead.pid}-x3"
    empty.mkdir()

    used = recover(dest)

    assert sorted(used) == sorted([stopped, empty])
    assert tree(dest) == before
    assert leftovers(dest.parent) == [alive.name]
    assert (alive / ASSIGNMENT / "convolution.ipynb").read_bytes() == b"someone else's"


def test_a_previous_version_that_cannot_be_kept_is_not_replaced(monkeypatch, tmp_path):
    """No room for the copy nbgrader decides from: the folder is not converted (nbgrader would
    remove it), it is left as it was, and the command fails."""
    import logging

    from nbgrader.converters.base import NbGraderException

    from cnnbook.grader import keepwork

    dest = tmp_path / "exercises" / ASSIGNMENT
    dest.mkdir(parents=True)
    (dest / "convolution.ipynb").write_bytes(b'{"released": 1}')
    before = tree(dest)

    class Converter:  # the steps of nbgrader's BaseConverter that keepwork wraps
        log, no_database, converted = logging.getLogger("test"), True, []

        def _format_dest(self, assignment_id, student_id):
            return str(tmp_path / "exercises" / student_id / assignment_id)

        def init_destination(self, assignment_id, student_id):
            shutil.rmtree(dest)  # as --force does
            return True

        def run_post_convert_hook(self):
            pass

        def convert_notebooks(self):
            if self.init_destination(ASSIGNMENT, "."):
                self.converted.append(ASSIGNMENT)

    def no_room(holder, dest):
        (dest / "half").mkdir(parents=True)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keepwork, "copy_back", no_room)
    converter = Converter()
    keepwork.keep_previous_results(converter)
    with pytest.raises(NbGraderException, match="No space left on device"):
        converter.convert_notebooks()
    assert converter.converted == []
    assert tree(dest) == before and sorted(p.name for p in dest.parent.iterdir()) == [ASSIGNMENT]


# --------------------------------------------------------------------------- slow: real nbgrader


@pytest.mark.slow
def test_autograde_keeps_the_graded_submission_when_it_fails():
    course = make_course(prefix="cnnbook-keepwork-")
    try:
        graded, first = _grade_ann_and_kim(course)
        _broken_gradebook_urls_remove_nothing(course, graded, first)
        # Without --force nothing is graded again, and nothing is left behind.
        done = nbgrader(course, "autograde", ASSIGNMENT)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Skipping existing assignment" in done.stderr, done.stderr[-3000:]
        _assert_unchanged(graded, first)
        _an_unreadable_notebook_keeps_its_result(course, graded, first)
        _a_new_submission_that_grades_replaces_the_result(course, graded, first)
    finally:
        course.remove()


def _grade_ann_and_kim(course) -> tuple[dict, dict]:
    """ann and kim (graded in this order) graded with full marks: {student: graded folder} and
    {student: its tree}."""
    students = ("ann", STUDENT)
    for student in students:
        course.submit(
            student,
            ASSIGNMENT,
            course.submission(ASSIGNMENT, NOTEBOOK, honest=True),
            notebook=NOTEBOOK,
        )
    done = nbgrader(course, "autograde", ASSIGNMENT)
    assert done.returncode == 0, done.stderr[-3000:]
    graded = {student: course.autograded_dir / student / ASSIGNMENT for student in students}
    first = {student: tree(folder) for student, folder in graded.items()}
    for student in students:
        assert course.score(student, ASSIGNMENT) == (18.0, 18.0)
        notebook = first[student][f"{NOTEBOOK}.ipynb"][0]
        assert b'"grade_id": "test_conv2d_random_cases"' in notebook
    return graded, first


def _assert_nothing_left_behind(graded: dict) -> None:
    for folder in graded.values():
        assert sorted(p.name for p in folder.parent.iterdir()) == [ASSIGNMENT]


def _assert_unchanged(graded: dict, first: dict) -> None:
    assert {student: tree(folder) for student, folder in graded.items()} == first
    _assert_nothing_left_behind(graded)


def _broken_gradebook_urls_remove_nothing(course, graded: dict, first: dict) -> None:
    """A gradebook URL that does not work: one line, nothing removed."""
    for url, expected in BROKEN_URLS.values():
        done = nbgrader_with_db(course, url, "autograde", ASSIGNMENT, "--force")
        assert_one_line_db_message(done, expected)
        assert "Removing existing assignment" not in done.stderr
        _assert_unchanged(graded, first)


def _an_unreadable_notebook_keeps_its_result(course, graded: dict, first: dict) -> None:
    """ann's notebook replaced by one nbgrader cannot read, everyone graded again: nbgrader removes
    ann's result and fails; it is put back before kim's grading starts, and kim is graded anew."""
    submitted = course.submitted / "ann" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    submitted.write_bytes(b'{"cells": [')
    done = nbgrader(course, "autograde", ASSIGNMENT, "--force")
    assert done.returncode != 0
    log = done.stderr
    # nbgrader did remove it, and it came back
    assert f"Removing existing assignment: {graded['ann']}" in log
    kept = log.index(f"Kept the previous version of {graded['ann']}: the new one failed")
    assert kept < log.index(f"Removing existing assignment: {graded[STUDENT]}")
    assert f"Kept the previous version of {graded[STUDENT]}" not in log
    assert re.search(
        rf"Writing \d+ bytes to {re.escape(str(graded[STUDENT]))}/{NOTEBOOK}\.ipynb", log[kept:]
    )
    assert tree(graded["ann"]) == first["ann"]
    assert course.score(STUDENT, ASSIGNMENT) == (18.0, 18.0)
    _assert_nothing_left_behind(graded)


def _a_new_submission_that_grades_replaces_the_result(course, graded: dict, first: dict) -> None:
    """A new submission of ann's that grades: it replaces her old result, nothing is left behind."""
    conv2d = next(
        c
        for c in course.source_notebook(ASSIGNMENT, NOTEBOOK)["cells"]
        if c["metadata"].get("nbgrader", {}).get("grade_id") == "conv2d"
    )
    second_try = solution_body(conv2d) + "\n# ann's second try\n"
    course.submit(
        "ann",
        ASSIGNMENT,
        course.submission(ASSIGNMENT, NOTEBOOK, {"conv2d": second_try}, honest=True),
        notebook=NOTEBOOK,
    )
    done = nbgrader(course, "autograde", ASSIGNMENT, "--student", "ann", "--force")
    assert done.returncode == 0, done.stderr[-3000:]
    second = tree(graded["ann"])
    assert second != first["ann"] and list(second) == list(first["ann"])
    assert "# ann's second try" in json.dumps(course.autograded("ann", ASSIGNMENT, NOTEBOOK))
    assert "# ann's second try" not in first["ann"][f"{NOTEBOOK}.ipynb"][0].decode()
    assert course.score("ann", ASSIGNMENT) == (18.0, 18.0)
    _assert_nothing_left_behind(graded)


@pytest.mark.slow
def test_generate_assignment_keeps_the_release_when_it_fails():
    course = make_course(prefix="cnnbook-keepwork-")
    try:
        release = course.release / ASSIGNMENT
        first = tree(release)
        assert list(first) == [f"{NOTEBOOK}.ipynb"]
        assert b"BEGIN SOLUTION" not in first[f"{NOTEBOOK}.ipynb"][0]

        # A gradebook URL that does not work: one line, the release untouched.
        for url, expected in BROKEN_URLS.values():
            done = nbgrader_with_db(course, url, "generate_assignment", ASSIGNMENT, "--force")
            assert_one_line_db_message(done, expected)
            assert tree(release) == first and leftovers(course.release) == []

        # A second notebook that cannot be read: nbgrader writes the first, fails on the second and
        # removes the folder; the previous release comes back.
        broken = course.source / ASSIGNMENT / "zz_broken.ipynb"
        broken.write_bytes(b'{"cells": [')
        done = nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
        assert done.returncode != 0
        assert re.search(
            rf"Writing \d+ bytes to \S+/exercises/(\./)?{ASSIGNMENT}/{NOTEBOOK}\.ipynb", done.stderr
        )
        assert "Removing failed assignment" in done.stderr
        assert f"Kept the previous version of {release}: the new one failed" in done.stderr
        assert tree(release) == first
        assert sorted(p.name for p in course.release.iterdir()) == [ASSIGNMENT]

        # Fixed, with a revised source: the new release replaces the old, nothing is left behind.
        broken.unlink()
        source = course.source / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
        nb = json.loads(source.read_text(encoding="utf-8"))
        intro = next(
            c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == "intro"
        )
        intro["source"] = "".join(intro["source"]) + "\n\nRevised for this term.\n"
        source.write_text(json.dumps(nb, indent=1), encoding="utf-8")
        done = nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
        assert done.returncode == 0, done.stderr[-3000:]
        second = tree(release)
        assert list(second) == list(first) and second != first
        intro = next(
            c
            for c in course.release_notebook(ASSIGNMENT, NOTEBOOK)["cells"]
            if c["metadata"].get("nbgrader", {}).get("grade_id") == "intro"
        )
        assert "".join(intro["source"]).endswith("Revised for this term.\n")
        assert sorted(p.name for p in course.release.iterdir()) == [ASSIGNMENT]
    finally:
        course.remove()
