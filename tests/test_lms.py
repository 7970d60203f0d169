"""The instructor's term with Canvas and Moodle (issue 17), run as the instructor runs it.

A class of 8 hands in the tiny course's notebook (tests/tiny_course.py: ``double``, 2 points)
through each LMS: a download zip with the LMS's real file names (cnnbook/lms/canvas.py and
moodle.py cite the code that makes them), one student late, one who re-uploaded, one whose
notebook has another name, one whose notebook is broken, one with no submission. The documented
commands then run in order (roster, ``nbgrader zip_collect``, grading with ``nbgrader autograde``
for Canvas and ``python -m cnnbook.grade_batch`` for Moodle, ``nbgrader generate_feedback``,
``python -m cnnbook.lms export``), with the course's own nbgrader_config.py, and the exported CSV
files are compared with the expected rows: names, ids, scores and late penalties.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
from helpers import grade_batch, nbgrader
from tiny_course import CHECKS, source_notebook

from cnnbook.lms import canvas, moodle
from cnnbook.lms.late import DueDateError, PenaltyPerDay, days_late, parse_due

ROOT = Path(__file__).resolve().parent.parent
FILES = Path(__file__).resolve().parent / "files" / "lms"
DUE = "2026-10-16 23:59 +02:00"
WRONG = "def double(x):\n    return x + 1\n"
EXTRA = """
c.AddProbeCells.checks = {{"tiny": {checks!r}}}
c.DueDates.due_dates = {{"tiny": {due!r}}}
c.MoodleCollector.timezone = "Europe/Berlin"
"""
QUIET = ("has changed!", "SAWarning", "not recognized by", "exchange directory")


# --------------------------------------------------------------------------- fast: names and rules


def test_canvas_file_names_are_read_as_canvas_writes_them():
    late = canvas.parse_name("leejun_LATE_104202_9000012_tiny.ipynb")
    assert late == {
        "name": "leejun",
        "late": "LATE",
        "user_id": "104202",
        "file_id": "9000012",
        "uploaded": "tiny.ipynb",
    }
    again = canvas.parse_name("parksora_104203_9000013_my_tiny-1.ipynb")
    assert (again["late"], again["user_id"], again["uploaded"]) == (
        None,
        "104203",
        "my_tiny-1.ipynb",
    )
    assert canvas.parse_name("tiny.ipynb") is None


def test_moodle_paths_are_read_in_both_layouts(tmp_path):
    folder = tmp_path / "Mina Kim_5501_assignsubmission_file" / "tiny.ipynb"
    flat = tmp_path / "Jun Lee_5502_assignsubmission_file_tiny (1).ipynb"
    assert moodle.parse_path(folder, tmp_path) == ("Mina Kim", "5501", "tiny.ipynb")
    assert moodle.parse_path(flat, tmp_path) == ("Jun Lee", "5502", "tiny (1).ipynb")
    assert moodle.parse_path(tmp_path / "notes.ipynb", tmp_path) is None


def test_penalty_is_a_percentage_per_started_day_capped():
    plugin = PenaltyPerDay(percent_per_day=10, max_percent=50, grace_minutes=15)
    assert plugin.late_submission_penalty("s", 18.0, 14 * 60) == 0  # within the grace period
    assert plugin.late_submission_penalty("s", 18.0, 3600) == 1.8  # one started day
    assert plugin.late_submission_penalty("s", 18.0, 86_400 + 1) == 3.6  # two
    assert plugin.late_submission_penalty("s", 18.0, 30 * 86_400) == 9.0  # capped at 50 %
    assert days_late(0) == 0 and days_late(86_400) == 1


def test_a_due_date_without_a_time_zone_is_refused_with_the_fix():
    assert parse_due("ps1", "2026-10-16 23:59 +02:00").isoformat() == "2026-10-16T21:59:00"
    assert parse_due("ps1", None) is None
    with pytest.raises(DueDateError, match=r"ps1 .* time zone: write it like '2026-10-16 23:59"):
        parse_due("ps1", "2026-10-16 23:59")


def test_bad_roster_and_missing_worksheet_are_one_line_errors(tmp_path):
    course = tmp_path  # the course's configuration is all these errors need
    shutil.copyfile(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    bad = course / "students.csv"
    bad.write_text("name,mail\nKim,kim@uni.example\n")
    done = lms(course, "roster", str(bad))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: the roster is neither a Canvas gradebook export")
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    done = lms(course, "export", "tiny", "--to", "moodle")
    assert done.returncode == 2 and "no Moodle grading worksheet" in done.stderr
    assert lms(course, "export", "--help").returncode == 0


# --------------------------------------------------------------------------- the course


def make_course(parent: Path) -> Path:
    """A course folder with the project's own nbgrader_config.py, the tiny notebook as
    solutions/tiny/, its due date, and the release generated."""
    root = Path(tempfile.mkdtemp(prefix="cnnbook-lms-", dir="/var/tmp"))
    (root / "solutions" / "tiny").mkdir(parents=True)
    (root / "solutions" / "tiny" / "tiny.ipynb").write_text(json.dumps(source_notebook()))
    (root / "tiny_checks.py").write_text(CHECKS)
    config = (ROOT / "nbgrader_config.py").read_text()
    extra = EXTRA.format(checks=str(root / "tiny_checks.py"), due=DUE)
    (root / "nbgrader_config.py").write_text(config + "\n# --- added by the tests\n" + extra)
    (parent / "course").symlink_to(root)
    done = nbgrader(root, "generate_assignment", "tiny", "--force")
    assert done.returncode == 0, done.stderr[-3000:]
    return root


@pytest.fixture
def course(tmp_path):
    root = make_course(tmp_path)
    yield root
    if not os.environ.get("CNNBOOK_KEEP_TEST_COURSES"):
        shutil.rmtree(root, ignore_errors=True)


def lms(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NBGRADER_DB_URL"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [sys.executable, "-m", "cnnbook.lms", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def notebook(root: Path, code: str) -> bytes:
    """The released notebook (this course releases into exercises/) with ``double`` answered."""
    nb = json.loads((root / "exercises" / "tiny" / "tiny.ipynb").read_text())
    nb["cells"][2]["source"] = code
    return json.dumps(nb).encode()


def write_zip(path: Path, files: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def run_ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done.stdout + done.stderr


def grade(root: Path, broken: str, batch: bool = False) -> str:
    """Grading (the broken notebook fails alone: exit 1) and feedback; both logs, checked quiet.
    ``batch``: ``python -m cnnbook.grade_batch`` (its workers use the same nbgrader_config.py)."""
    graded = (
        grade_batch(root, "tiny", "--workers", "1")
        if batch
        else nbgrader(root, "autograde", "tiny")
    )
    log = graded.stdout + graded.stderr
    assert graded.returncode == 1 and f"{broken}" in log, log[-4000:]
    log += run_ok(nbgrader(root, "generate_feedback", "tiny"))
    noisy = [line for line in log.splitlines() if any(q in line for q in QUIET)]
    assert not noisy, noisy
    return log


# --------------------------------------------------------------------------- Canvas


def canvas_download(root: Path) -> None:
    good, wrong = notebook(root, answer_source()), notebook(root, WRONG)
    files = {
        "kimmina_104201_9000011_tiny.ipynb": good,
        "leejun_LATE_104202_9000012_tiny.ipynb": good,  # late
        "parksora_104203_9000003_tiny.ipynb": wrong,  # first upload ...
        "parksora_104203_9000013_tiny-1.ipynb": good,  # ... and the re-upload Canvas renamed
        "choihana_104204_9000014_Tiny assignment final.ipynb": good,  # another name
        "jungmin_104205_9000015_tiny.ipynb": wrong,
        "yoonseo_104207_9000017_tiny.ipynb": b"{not a notebook",  # cannot be graded
        "hanjoon_104208_9000018_tiny.ipynb": good,
    }  # Kang Yuri (104206) handed in nothing
    write_zip(root / "downloaded" / "tiny" / "archive" / "CNN-2026-tiny submissions.zip", files)


def answer_source() -> str:
    return "def double(x):\n    return 2 * np.asarray(x)\n"


@pytest.mark.slow
def test_canvas_term_from_download_to_gradebook_csv(course):
    canvas_download(course)
    log = run_ok(nbgrader(course, "zip_collect", "tiny"))
    assert "kept the later upload, skipped parksora_104203_9000003_tiny.ipynb" in log
    assert "104204 handed in 'Tiny assignment final.ipynb': collected as tiny.ipynb" in log
    stamp = course / "submitted" / "104202" / "tiny" / "timestamp.txt"
    assert stamp.read_text() == "2026-10-16 22:14:01"  # LATE: after due date + 15 min grace
    assert not (course / "submitted" / "104201" / "tiny" / "timestamp.txt").exists()
    out = run_ok(lms(course, "roster", str(FILES / "canvas-gradebook.csv")))
    assert "8 students" in out
    grade(course, broken="104207")
    out = run_ok(lms(course, "export", "tiny", "--to", "canvas"))
    exports = course / "exports" / "tiny"
    assert read_rows(exports / "canvas-grades.csv") == [
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "tiny (48213)"],
        ["    Points Possible", "", "", "", "", "2"],
        ["Kim, Mina", "104201", "S2026001", "mina.kim@uni.example", "CNN Course 2026", "2"],
        ["Lee, Jun", "104202", "S2026002", "jun.lee@uni.example", "CNN Course 2026", "1.8"],
        ["Park, Sora", "104203", "S2026003", "sora.park@uni.example", "CNN Course 2026", "2"],
        ["Choi, Hana", "104204", "S2026004", "hana.choi@uni.example", "CNN Course 2026", "2"],
        ["Jung, Min", "104205", "S2026005", "min.jung@uni.example", "CNN Course 2026", "0"],
        ["Kang, Yuri", "104206", "S2026006", "yuri.kang@uni.example", "CNN Course 2026", "0"],
        ["Yoon, Seo", "104207", "S2026007", "seo.yoon@uni.example", "CNN Course 2026", ""],
        ["Han, Joon", "104208", "S2026008", "joon.han@uni.example", "CNN Course 2026", "2"],
    ]
    report = {row[0]: row[3:8] for row in read_rows(exports / "report.csv")[1:]}
    assert report["104202"] == ["graded, 1 day(s) late", "2", "0.2", "1.8", "2"]
    assert report["104206"] == ["no submission", "0", "0", "0", "2"]
    assert report["104207"] == ["not graded", "", "0", "", "2"]
    with zipfile.ZipFile(exports / "canvas-feedback.zip") as archive:
        names = sorted(archive.namelist())
    assert len(names) == 6 and "leejun_104202_9000012_tiny-feedback.html" in names
    assert "parksora_104203_9000013_tiny-feedback.html" in names  # the re-upload's file id
    nbgrader_export = run_ok(nbgrader(course, "export", "--to", "grades.csv"))
    assert nbgrader_export
    rows = {
        r["student_id"]: r for r in csv.DictReader(io.StringIO((course / "grades.csv").read_text()))
    }
    assert (rows["104202"]["late_submission_penalty"], rows["104202"]["score"]) == ("0.2", "1.8")
    assert (rows["104202"]["first_name"], rows["104202"]["last_name"]) == ("Jun", "Lee")
    # Without the extracted download Canvas's upload names are unknown: the export says whose
    # feedback it leaves out, instead of writing an empty zip in silence.
    shutil.rmtree(course / "downloaded" / "tiny" / "extracted")
    out = run_ok(lms(course, "export", "tiny", "--to", "canvas"))
    assert out.count("feedback is not in canvas-feedback.zip") == 6, out
    assert "warning: 104202's feedback is not in canvas-feedback.zip" in out


# --------------------------------------------------------------------------- Moodle


def moodle_download(root: Path) -> None:
    good, wrong = notebook(root, answer_source()), notebook(root, WRONG)
    files = {
        "Mina Kim_5501_assignsubmission_file/tiny.ipynb": good,
        "Jun Lee_5502_assignsubmission_file/tiny.ipynb": good,  # late: see the worksheet
        "Sora Park_5503_assignsubmission_file/tiny (1).ipynb": good,  # re-uploaded
        "Hana Choi_5504_assignsubmission_file/Tiny_final.ipynb": good,  # another name
        "Min Jung_5505_assignsubmission_file_tiny.ipynb": wrong,  # Moodle < 3.1's flat layout
        "Seo Yoon_5507_assignsubmission_file/tiny.ipynb": b"{not a notebook",
        "Joon Han_5508_assignsubmission_file/tiny.ipynb": good,  # 11 min late: grace period
    }  # Yuri Kang (5506) handed in nothing
    archive = root / "downloaded" / "tiny" / "archive"
    write_zip(archive / "CNN2026-tiny-1234.zip", files)
    shutil.copyfile(FILES / "moodle-worksheet.csv", archive / "tiny-grading-worksheet.csv")


@pytest.mark.slow
def test_moodle_term_from_download_to_grading_worksheet(course):
    moodle_download(course)
    collector = "--collector=cnnbook.lms.moodle.MoodleCollector"
    log = run_ok(nbgrader(course, "zip_collect", "tiny", collector))
    assert "hana.choi@uni.example handed in 'Tiny_final.ipynb': collected as tiny.ipynb" in log
    stamps = {
        student: (course / "submitted" / student / "tiny" / "timestamp.txt").read_text()
        for student in ("mina.kim@uni.example", "jun.lee@uni.example", "joon.han@uni.example")
    }  # the worksheet's times, Europe/Berlin (CEST, +02:00), kept in UTC
    assert stamps == {
        "mina.kim@uni.example": "2026-10-16 20:15:00",
        "jun.lee@uni.example": "2026-10-18 07:30:00",
        "joon.han@uni.example": "2026-10-16 22:10:00",
    }
    worksheet = course / "downloaded" / "tiny" / "archive" / "tiny-grading-worksheet.csv"
    assert "8 students" in run_ok(lms(course, "roster", str(worksheet)))
    grade(course, broken="seo.yoon@uni.example", batch=True)  # Canvas's test: plain autograde
    run_ok(lms(course, "export", "tiny", "--to", "moodle"))
    exports = course / "exports" / "tiny"
    rows = read_rows(exports / "moodle-grades.csv")
    assert rows[0] == read_rows(FILES / "moodle-worksheet.csv")[0]  # Moodle's own header
    # Identifier, Full name, Grade (Moodle's maximum grade is 10: the 2 points scaled), comment
    assert [[r[0], r[1], r[4], r[9]] for r in rows[1:]] == [
        ["Participant 5501", "Mina Kim", "10", "Autograded: 2 of 2 points."],
        [
            "Participant 5502",
            "Jun Lee",
            "8",
            "Autograded: 2 of 2 points. Handed in 2 day(s) late: -0.4 points, 1.6 of 2.",
        ],
        ["Participant 5503", "Sora Park", "10", "Autograded: 2 of 2 points."],
        ["Participant 5504", "Hana Choi", "10", "Autograded: 2 of 2 points."],
        ["Participant 5505", "Min Jung", "0", "Autograded: 0 of 2 points."],
        ["Participant 5506", "Yuri Kang", "0", "No submission."],
        ["Participant 5507", "Seo Yoon", "", ""],
        ["Participant 5508", "Joon Han", "10", "Autograded: 2 of 2 points."],
    ]
    report = {row[0]: row[3:8] for row in read_rows(exports / "report.csv")[1:]}
    assert report["jun.lee@uni.example"] == ["graded, 2 day(s) late", "2", "0.4", "1.6", "2"]
    assert report["joon.han@uni.example"] == ["graded", "2", "0", "2", "2"]
    assert report["seo.yoon@uni.example"] == ["not graded", "", "0", "", "2"]
    with zipfile.ZipFile(exports / "moodle-feedback.zip") as archive:
        names = sorted(archive.namelist())
    assert len(names) == 6  # the graded students with a submission
    assert "Jun Lee_5502_assignfeedback_file/tiny-feedback.html" in names
