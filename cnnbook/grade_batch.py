"""Autograde every submission of one assignment, one student at a time, so one student cannot stop the batch.

Run in the course folder::

    python -m cnnbook.grade_batch ps1-convolution [--wall-seconds 1500] [--student ID ...]

For each student in ``submitted/`` the notebooks are checked first (unreadable ones are rejected
with a reason; one saved by an old Jupyter, nbformat 3, is converted to version 4; forged, unknown
or copied nbgrader cells, a changed kernelspec and stored outputs are sanitised by
:func:`cnnbook.grading.sanitise`, which plain ``nbgrader autograde`` applies too; a notebook saved
under another name is taken when it is the only one); the original file is copied to
``grade_batch/<assignment>/originals/<student>/`` before anything is changed. Then
``nbgrader autograde <assignment> --student <id> --force`` runs in its own process group under a
wall-clock limit. A status per student (graded, timed out, kernel died, unreadable notebook,
missing notebook, no submission, error) goes to stdout and to ``grade_batch/<assignment>/report.csv``;
nbgrader's log per student to ``grade_batch/<assignment>/logs/<student>.log``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from cnnbook.grading import Reference, sanitise


NBGRADER_CELL_TIMEOUT = 30  # nbgrader's Execute.timeout when the course sets none
MIN_WALL_SECONDS = 300


@dataclass
class Result:
    student: str
    status: str = "graded"
    score: float | None = None
    max_score: float | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def course_dirs(course: Path) -> dict:
    """Folder names from the course's nbgrader_config.py (nbgrader's defaults otherwise), and the
    per-student wall-clock limit that its cell timeout and kernel restarts call for (``wall_seconds``)."""
    from cnnbook.sandbox import MAX_KERNEL_RESTARTS

    names = {"source_directory": "source", "submitted_directory": "submitted",
             "autograded_directory": "autograded",
             "release_directory": "release", "db_url": f"sqlite:///{course / 'gradebook.db'}"}
    cell_timeout, restarts = NBGRADER_CELL_TIMEOUT, MAX_KERNEL_RESTARTS
    config = course / "nbgrader_config.py"
    if config.is_file():
        from traitlets.config.loader import PyFileConfigLoader

        loaded = PyFileConfigLoader(config.name, path=str(course)).load_config()
        section = loaded.get("CourseDirectory", {})
        for key in names:
            if key in section:
                names[key] = section[key]
        cell_timeout = loaded.get("Execute", {}).get("timeout", cell_timeout)
        restarts = loaded.get("SandboxedExecute", {}).get("max_kernel_restarts", restarts)
    # Each hung cell costs a cell timeout, and the sandbox grades on in a fresh kernel up to `restarts`
    # times; one more timeout's worth is left for the cells that run normally.
    names["wall_seconds"] = max(MIN_WALL_SECONDS, (restarts + 2) * cell_timeout)
    return names


def source_notebooks(course: Path, dirs: dict, assignment: str) -> dict[str, dict]:
    """The assignment's notebooks as released to students (their nbgrader metadata is the reference)."""
    folder = course / dirs["release_directory"] / assignment
    if not folder.is_dir():
        folder = course / dirs["source_directory"] / assignment
    if not folder.is_dir():
        raise SystemExit(f"error: no source folder {folder} for assignment {assignment!r}. "
                         f"Fix: run in the course folder and give an assignment that exists there.")
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.ipynb"))}


def _read_notebook(path: Path) -> tuple[dict | None, str | None, list[str]]:
    """(notebook, None, notes) or (None, why it cannot be graded, []).

    A notebook saved by an old Jupyter (nbformat 3 or older) is converted to version 4, as nbgrader
    itself would on reading it: an old client is not cheating.
    """
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (bad byte at offset {exc.start})", []
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON (truncated or edited by hand?): {exc.msg} at line {exc.lineno}", []
    notes = []
    version = nb.get("nbformat") if isinstance(nb, dict) else None
    if isinstance(version, int) and 1 <= version < 4:
        try:
            nb = nbformat.convert(nbformat.from_dict(nb), 4)
        except Exception as exc:  # noqa: BLE001 - any malformed old notebook: reject it with the reason
            return None, f"an nbformat {version} notebook that cannot be converted to version 4 ({exc!r})", []
        notes.append(f"nbformat {version} notebook (saved by an old Jupyter) converted to version 4")
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list) or nb.get("nbformat") != 4:
        return None, "not a Jupyter notebook (version 4 with a list of cells)", []
    if not all(isinstance(c, dict) and c.get("cell_type") in ("code", "markdown", "raw") for c in nb["cells"]):
        return None, "has cells that are not code, markdown or raw cells", []
    return nb, None, notes


def prepare(student_dir: Path, sources: dict[str, dict], originals: Path) -> tuple[str | None, list[str]]:
    """Check and sanitise one student's notebooks. Returns (rejection status or None, notes)."""
    notes: list[str] = []
    # nbgrader copies a submission as root and follows symbolic links: a link to the gradebook or to
    # solutions/ would arrive in the graded folder as a readable copy. A submission is files, not links.
    for link in sorted(p for p in student_dir.rglob("*") if p.is_symlink()):
        notes.append(f"symbolic link {link.relative_to(student_dir)} -> {os.readlink(link)} removed "
                     f"(a submission may not link to files outside it)")
        link.unlink()
    present = sorted(p.name for p in student_dir.glob("*.ipynb"))
    for name, source in sources.items():
        path = student_dir / name
        if not path.exists():
            others = [p for p in present if p not in sources]
            if len(sources) == 1 and len(others) == 1:
                originals.mkdir(parents=True, exist_ok=True)
                shutil.copy2(student_dir / others[0], originals / others[0])
                shutil.move(student_dir / others[0], path)
                notes.append(f"took {others[0]!r} as {name!r} (the only notebook; original kept in {originals})")
            else:
                notes.append(f"{name} is missing (found: {', '.join(present) or 'no notebooks'})")
                return "missing notebook", notes
        nb, problem, changes = _read_notebook(path)
        if nb is None:
            notes.append(f"{name} is unreadable: {problem}")
            return "unreadable notebook", notes
        changes += sanitise(nb, Reference.from_notebook(source))
        if changes:
            originals.mkdir(parents=True, exist_ok=True)
            if not (originals / name).exists():
                shutil.copy2(path, originals / name)
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            notes.append(f"{name} sanitised ({'; '.join(changes)}); original kept in {originals / name}")
    return None, notes


def run_autograde(course: Path, assignment: str, student: str, wall_seconds: float, log: Path) -> str:
    """``nbgrader autograde`` for one student in its own process group; killed after ``wall_seconds``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "nbgrader", "autograde", assignment, "--student", student, "--force"]
    env = dict(os.environ)  # nbgrader runs `alembic` from PATH: put this environment's bin/ first
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=course, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=wall_seconds)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            try:  # whatever is left in the group (the kernel launcher also dies with nbgrader)
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    if code is None:
        return "timed out"
    return "graded" if code == 0 else "error"


def read_scores(db_url: str, assignment: str, student: str) -> tuple[float | None, float | None]:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url) as gb:
        try:
            sub = gb.find_submission(assignment, student)
        except MissingEntry:
            return None, None
        return float(sub.score), float(sub.max_score)


def _kernel_trouble(folder: Path) -> str | None:
    for path in sorted(folder.glob("*.ipynb")):
        try:
            nb = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        enames = {o.get("ename") for c in nb.get("cells", []) for o in c.get("outputs", [])
                  if o.get("output_type") == "error"}
        trouble = [what for ename, what in (("DeadKernelError", "kernel died"),
                                            ("CellTimeoutError", "cell timed out")) if ename in enames]
        if trouble:
            # The sandbox grades on in a fresh kernel; only past its restart limit are later cells not run.
            return "; ".join(trouble + (["later cells not run"] if "NotRun" in enames else []))
    return None


def grade(course: Path, assignment: str, students: list[str] | None = None, wall_seconds: float | None = None,
          echo=print) -> list[Result]:
    """Grade ``students`` (default: everyone in submitted/) one by one; ``wall_seconds`` per student
    defaults to what the course's cell timeout and kernel restarts call for (see :func:`course_dirs`)."""
    course = course.resolve()
    dirs = course_dirs(course)
    wall_seconds = wall_seconds or dirs["wall_seconds"]
    sources = source_notebooks(course, dirs, assignment)
    out_dir = course / "grade_batch" / assignment
    submitted = course / dirs["submitted_directory"]
    if students is None:
        students = sorted(p.name for p in submitted.iterdir() if p.is_dir()) if submitted.is_dir() else []
    results = []
    for student in students:
        start = time.monotonic()
        res = Result(student)
        folder = submitted / student / assignment
        if not folder.is_dir():
            res.status, res.notes = "no submission", [f"no folder {folder}"]
        else:
            try:
                rejected, res.notes = prepare(folder, sources, out_dir / "originals" / student)
            except OSError as exc:
                rejected, res.notes = "unreadable notebook", [f"could not read the submission: {exc}"]
            if rejected:
                res.status = rejected
            else:
                res.status = run_autograde(course, assignment, student, wall_seconds,
                                           out_dir / "logs" / f"{student}.log")
                if res.status == "graded":
                    trouble = _kernel_trouble(course / dirs["autograded_directory"] / student / assignment)
                    if trouble:
                        res.status = f"graded ({trouble})"
                elif res.status == "error":
                    res.notes.append(f"nbgrader failed: see {out_dir / 'logs' / (student + '.log')}")
                elif res.status == "timed out":
                    res.notes.append(f"stopped after {wall_seconds:.0f} s wall-clock; scores of an earlier run, if any, kept")
        res.score, res.max_score = read_scores(dirs["db_url"], assignment, student)
        res.seconds = round(time.monotonic() - start, 1)
        results.append(res)
        score = "-" if res.score is None else f"{res.score:g}/{res.max_score:g}"
        echo(f"{student:20s} {res.status:30s} {score:>10s} {res.seconds:6.1f}s  {' | '.join(res.notes)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "report.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", "status", "score", "max_score", "seconds", "notes"])
        for r in results:
            w.writerow([r.student, r.status, "" if r.score is None else r.score,
                        "" if r.max_score is None else r.max_score, r.seconds, " | ".join(r.notes)])
    echo(f"report: {out_dir / 'report.csv'}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnbook.grade_batch", description=__doc__.split("\n")[0])
    parser.add_argument("assignment")
    parser.add_argument("--student", action="append", help="grade only this student (repeatable)")
    parser.add_argument("--wall-seconds", type=float, help="wall-clock limit per student (default: (kernel restarts "
                        "+ 2) x the cell timeout in nbgrader_config.py, at least 300)")
    parser.add_argument("--course", type=Path, default=Path.cwd(), help="course folder (default: current folder)")
    args = parser.parse_args(argv)
    results = grade(args.course, args.assignment, args.student, args.wall_seconds)
    bad = [r for r in results if not r.status.startswith("graded")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
