"""Shared helpers of the grading tests: a temporary course made from this course's own files,
nbgrader and the batch runner run as an instructor runs them, submissions made from the release, and
what the gradebook and the graded notebooks say afterwards.

The course folder is made outside /tmp (under /var/tmp): the sandboxed kernel gets a private /tmp of
its own, so only hiding the course folder itself keeps its gradebook and solutions out of reach, and
that is what these tests should exercise.
"""

from __future__ import annotations

import copy
import csv
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COURSE_PARENT = Path("/var/tmp")
KEEP = "CNNBOOK_KEEP_TEST_COURSES"  # set it to keep the temporary course folders after the tests


def _env() -> dict:
    """The environment nbgrader and the batch runner get: this venv's bin/ first (nbgrader runs
    `alembic` from PATH), and no NBGRADER_DB_URL (the copied nbgrader_config.py would grade into
    that database)."""
    env = {k: v for k, v in os.environ.items() if k != "NBGRADER_DB_URL"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def nbgrader(
    course: Course | Path, *args: str, timeout: float = 1800
) -> subprocess.CompletedProcess:
    """``nbgrader <args>`` in the course folder, as an instructor runs it."""
    root = course.root if isinstance(course, Course) else Path(course)
    return subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=root,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def grade_batch(
    course: Course | Path, assignment: str, *args: str, timeout: float = 3600
) -> subprocess.CompletedProcess:
    """``python -m cnnbook.grade_batch <assignment> --course <course> <args>``, run from the course
    folder."""
    root = course.root if isinstance(course, Course) else Path(course)
    return subprocess.run(
        [sys.executable, "-m", "cnnbook.grade_batch", assignment, "--course", str(root), *args],
        cwd=root,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --------------------------------------------------------------------------- notebooks and cells


def grade_id(cell: dict) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta.get("grade_id") if isinstance(meta, dict) else None


def find_cell(nb: dict, wanted: str) -> dict:
    """The one cell of ``nb`` whose nbgrader grade_id is ``wanted``."""
    found = [cell for cell in nb["cells"] if grade_id(cell) == wanted]
    assert len(found) == 1, f"{len(found)} cells with grade_id {wanted!r}"
    return found[0]


def cell_index(nb: dict, wanted: str) -> int:
    return nb["cells"].index(find_cell(nb, wanted))


def source_text(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def code_cell(source: str, nbgrader_meta: dict | None = None, **metadata) -> dict:
    """A new code cell (plain, or with the given nbgrader metadata)."""
    meta = dict(metadata)
    if nbgrader_meta is not None:
        meta["nbgrader"] = nbgrader_meta
    return {
        "cell_type": "code",
        "metadata": meta,
        "source": source,
        "outputs": [],
        "execution_count": None,
    }


def solution_body(cell: dict) -> str:
    """A source notebook's solution cell as a student who solved it would hand it in (markers
    removed)."""
    lines = source_text(cell).splitlines(keepends=True)
    return "".join(
        line for line in lines if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")
    )


def text_of_outputs(nb: dict) -> str:
    """Everything the notebook's outputs show as text (streams, text/plain, error names and
    values)."""
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if "text" in out:
                parts.append(source_text({"source": out["text"]}))
            parts.append(source_text({"source": out.get("data", {}).get("text/plain", "")}))
            if out.get("output_type") == "error":
                parts.append(f"{out.get('ename')}: {out.get('evalue')}")
    return "\n".join(parts)


def html_text(page: str) -> str:
    """The text a browser shows of an HTML page (tags dropped, entities decoded)."""
    page = re.sub(r"<(script|style)\b.*?</\1>", "", page, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", "", page))


# --------------------------------------------------------------------------- the course


@dataclass
class Course:
    """A temporary course folder: this course's nbgrader_config.py (plus ``extra_config``) and
    solutions/."""

    root: Path

    # folder names from nbgrader_config.py
    source = property(lambda self: self.root / "solutions")
    release = property(lambda self: self.root / "exercises")
    submitted = property(lambda self: self.root / "submitted")
    autograded_dir = property(lambda self: self.root / "autograded")
    feedback_dir = property(lambda self: self.root / "feedback")
    gradebook = property(lambda self: self.root / "gradebook.db")

    def source_notebook(self, assignment: str, notebook: str) -> dict:
        return json.loads(
            (self.source / assignment / f"{notebook}.ipynb").read_text(encoding="utf-8")
        )

    def release_notebook(self, assignment: str, notebook: str) -> dict:
        return json.loads(
            (self.release / assignment / f"{notebook}.ipynb").read_text(encoding="utf-8")
        )

    def submission(
        self,
        assignment: str,
        notebook: str,
        solutions: dict[str, str] | None = None,
        honest: bool = False,
    ) -> dict:
        """The release notebook with these solution cells' sources replaced
        (``{grade_id: source}``).

        ``honest``: every solution cell not named in ``solutions`` gets the source notebook's
        solution.
        """
        nb = self.release_notebook(assignment, notebook)
        solutions = dict(solutions or {})
        if honest:
            reference = self.source_notebook(assignment, notebook)
            for cell in reference["cells"]:
                meta = cell["metadata"].get("nbgrader", {})
                if meta.get("solution") and meta["grade_id"] not in solutions:
                    solutions[meta["grade_id"]] = solution_body(cell)
        for wanted, source in solutions.items():
            cell = find_cell(nb, wanted)
            assert cell["metadata"]["nbgrader"].get("solution"), f"{wanted} is not a solution cell"
            cell["source"] = source
        return nb

    def submit(
        self,
        student: str,
        assignment: str,
        content,
        name: str | None = None,
        files: dict[str, str] | None = None,
        notebook: str | None = None,
    ) -> Path:
        """Put a submission in submitted/<student>/<assignment>/: a notebook (dict, raw bytes, or
        None for none at all) saved as ``name`` (default ``<notebook>.ipynb``), and any other
        ``files``."""
        folder = self.submitted / student / assignment
        folder.mkdir(parents=True, exist_ok=True)
        if content is not None:
            name = name or f"{notebook}.ipynb"
            data = content if isinstance(content, bytes) else json.dumps(content, indent=1).encode()
            (folder / name).write_bytes(data)
        for file_name, text in (files or {}).items():
            (folder / file_name).write_text(text)
        return folder

    def autograded(self, student: str, assignment: str, notebook: str) -> dict:
        path = self.autograded_dir / student / assignment / f"{notebook}.ipynb"
        return json.loads(path.read_text(encoding="utf-8"))

    def feedback_html(self, student: str, assignment: str, notebook: str) -> str:
        return (self.feedback_dir / student / assignment / f"{notebook}.html").read_text(
            encoding="utf-8"
        )

    def cell_scores(self, student: str, assignment: str, notebook: str) -> dict[str, float]:
        """Each graded cell's score in the gradebook: {grade_id: score} (manual score if an
        instructor set one)."""
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{self.gradebook}") as gb:
            submitted = gb.find_submission_notebook(notebook, assignment, student)
            return {grade.name: float(grade.score) for grade in submitted.grades}

    def score(self, student: str, assignment: str) -> tuple[float, float]:
        """(score, max_score) of a student's submission in the gradebook."""
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{self.gradebook}") as gb:
            submission = gb.find_submission(assignment, student)
            return float(submission.score), float(submission.max_score)

    def report(self, assignment: str) -> dict[str, dict]:
        """grade_batch's report.csv: {student: row}."""
        path = self.root / "grade_batch" / assignment / "report.csv"
        with open(path, newline="", encoding="utf-8") as f:
            return {row["student"]: row for row in csv.DictReader(f)}

    def batch_log(self, assignment: str, student: str) -> str:
        path = self.root / "grade_batch" / assignment / "logs" / f"{student}.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""

    def remove(self) -> None:
        """Delete the course folder (kept, for a look after a failure, when
        CNNBOOK_KEEP_TEST_COURSES is set)."""
        if not os.environ.get(KEEP):
            shutil.rmtree(self.root, ignore_errors=True)


def make_course(
    assignments: tuple[str, ...] = ("ps1-convolution",),
    extra_config: str = "",
    prefix: str = "cnnbook-course-",
) -> Course:
    """A course folder under /var/tmp with this course's nbgrader_config.py and solutions/,
    ``extra_config`` appended to the config, and ``nbgrader generate_assignment`` run for each of
    ``assignments``."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=COURSE_PARENT))
    try:
        config = (ROOT / "nbgrader_config.py").read_text(encoding="utf-8")
        (root / "nbgrader_config.py").write_text(
            config + "\n\n# --- added by the tests\n" + extra_config + "\n", encoding="utf-8"
        )
        shutil.copytree(
            ROOT / "solutions",
            root / "solutions",
            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"),
        )
        course = Course(root)
        for assignment in assignments:
            done = nbgrader(course, "generate_assignment", assignment, "--force")
            assert done.returncode == 0, done.stderr[-3000:]
        return course
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def nbformat3(nb: dict) -> dict:
    """``nb`` as an old Jupyter (nbformat 3) saves it."""
    import nbformat

    old = nbformat.convert(nbformat.from_dict(copy.deepcopy(nb)), 3)
    old.pop("orig_nbformat", None)  # only a downgrade writes these
    old.pop("orig_nbformat_minor", None)
    return old


def nbgrader_db(
    course: Course | Path, db_url: str, *args: str, timeout: float = 1800
) -> subprocess.CompletedProcess:
    """``nbgrader <args>`` in the course folder with NBGRADER_DB_URL=``db_url``: the gradebook in
    that database."""
    root = course.root if isinstance(course, Course) else Path(course)
    return subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=root,
        env={**_env(), "NBGRADER_DB_URL": db_url},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --------------------------------------------------------------------------- mistakes, browsers


def with_mistake(
    course: Course, assignment: str, notebook: str, wanted: str, old: str, new: str
) -> dict:
    """The reference solution of every cell, with ``old`` replaced by ``new`` in solution cell
    ``wanted``: one plausible mistake, made in the solution as it is today."""
    body = solution_body(find_cell(course.source_notebook(assignment, notebook), wanted))
    assert old in body, (
        f"{assignment}: the solution cell {wanted!r} no longer contains {old!r}; update the case"
    )
    return course.submission(assignment, notebook, {wanted: body.replace(old, new, 1)}, honest=True)


# Debian's Chromium (scripts/install-system-packages.sh); CNNBOOK_CHROMIUM points elsewhere. The
# conftest's ``browser`` fixture launches it; nothing it does may reach the network.
CHROMIUM = Path(os.environ.get("CNNBOOK_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
