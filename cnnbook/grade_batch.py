"""Autograde every submission of one assignment, one student at a time, so one student cannot stop the batch.

Run in the course folder::

    python -m cnnbook.grade_batch ps1-convolution [--wall-seconds 1500] [--student ID ...] [--max-notebook-mb 20]

For each student in ``submitted/`` the files are checked first, in a child process under the
student's wall-clock limit: symbolic links and special files (named pipes, devices, sockets) are
removed; a notebook that is not a regular file, is larger than the cap, is not UTF-8 JSON, nests
too deeply or has fields of the wrong type is rejected unread or unchanged, with the reason; one
saved by an old Jupyter (nbformat 3) is converted to version 4; forged, unknown or copied nbgrader
cells, a changed kernelspec and stored outputs are sanitised by :func:`cnnbook.grader.sanitise.sanitise`,
which plain ``nbgrader autograde`` applies too; a notebook saved under another name is taken when it
is the only one. The original file is copied to ``grade_batch/<assignment>/originals/<student>/``
before anything is changed. Then ``nbgrader autograde <assignment> --student <id> --force`` runs in
its own process group for the rest of the wall-clock limit. A status per student (graded, timed out,
kernel died, unreadable notebook, missing notebook, no submission, error) goes to stdout and to
``grade_batch/<assignment>/report.csv``, the reasons in its notes; nbgrader's log per student to
``grade_batch/<assignment>/logs/<student>.log``.

:func:`cnnbook.grader.submission.screen_submission` does the file checks for plain
``nbgrader autograde``, as its ``pre_convert_hook``.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


from cnnbook.grader.preprocessors.readproberesults import STOPPED
from cnnbook.grader.sanitise import Reference, sanitise
from cnnbook.grader.submission import (MAX_NOTEBOOK_BYTES, _read_notebook,  # noqa: F401 - used by tests
                                       _remove_links_and_special_files, file_problem, screen_submission)

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


def grader_seconds(assignment: str) -> float:
    """The time the assignment's trusted checks may take in the grader's own process (ps3 trains a model
    there), on top of the notebook's cell timeouts."""
    from cnnbook.grader.plan import load_checks
    from cnnbook.grader.preprocessors.addprobecells import DEFAULT_CHECKS

    name = DEFAULT_CHECKS.get(assignment)
    return float(getattr(load_checks(name), "GRADER_SECONDS", 0)) if name else 0.0


def source_notebooks(course: Path, dirs: dict, assignment: str) -> dict[str, dict]:
    """The assignment's notebooks as released to students (their nbgrader metadata is the reference)."""
    folder = course / dirs["release_directory"] / assignment
    if not folder.is_dir():
        folder = course / dirs["source_directory"] / assignment
    if not folder.is_dir():
        raise SystemExit(f"error: no source folder {folder} for assignment {assignment!r}. "
                         f"Fix: run in the course folder and give an assignment that exists there.")
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.ipynb"))}


def _find_notebook(student_dir: Path, name: str, sources: dict, originals: Path,
                   max_bytes: int) -> tuple[Path | None, list[str]]:
    """The student's notebook ``name``, or the only other notebook renamed to it; (None, notes) if none."""
    path = student_dir / name
    if os.path.lexists(path):
        return path, []
    present = sorted(p.name for p in student_dir.glob("*.ipynb"))
    others = [p for p in present if p not in sources]
    if len(sources) == 1 and len(others) == 1:
        problem = file_problem(student_dir / others[0], max_bytes)
        if problem is not None:
            return None, [f"{name} is missing, and {others[0]!r} {problem}"]
        originals.mkdir(parents=True, exist_ok=True)
        shutil.copy2(student_dir / others[0], originals / others[0])
        shutil.move(student_dir / others[0], path)
        return path, [f"took {others[0]!r} as {name!r} (the only notebook; original kept in {originals})"]
    return None, [f"{name} is missing (found: {', '.join(map(repr, present)) or 'no notebooks'})"]


def prepare(student_dir: Path, sources: dict[str, dict], originals: Path,
            max_bytes: int = MAX_NOTEBOOK_BYTES) -> tuple[str | None, list[str]]:
    """Check and sanitise one student's notebooks. Returns (rejection status or None, notes)."""
    notes = _remove_links_and_special_files(student_dir, set(sources))
    for name, source in sources.items():
        path, found = _find_notebook(student_dir, name, sources, originals, max_bytes)
        notes += found
        if path is None:
            return "missing notebook", notes
        nb, problem, changes = _read_notebook(path, max_bytes)
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


def _prepare_in_child(conn, *args) -> None:
    try:
        conn.send(prepare(*args))
    except Exception as exc:  # noqa: BLE001 - whatever the submission does to the checks, report it
        conn.send(("unreadable notebook", [f"the submission could not be checked: {exc!r}"[:500]]))


def prepare_within(seconds: float, *args) -> tuple[str | None, list[str]]:
    """:func:`prepare` in a child process, stopped after ``seconds``: no submission can hang the batch
    (or exhaust its memory) while its files are checked."""
    receive, send = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(target=_prepare_in_child, args=(send, *args))
    child.start()
    send.close()
    ended = False
    try:
        ended = receive.poll(max(seconds, 0.1))
        if ended:
            return receive.recv()
    except EOFError:  # the child died before it could answer
        pass
    finally:
        child.kill()
        child.join()
        receive.close()
    if ended:
        return "unreadable notebook", [f"checking the submission crashed (exit code {child.exitcode})"]
    return "timed out", [f"checking the submission took more than {seconds:.0f} s; it was not graded"]


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


def _troubles(nb: dict) -> set[str]:
    """What stopped cells of a graded notebook: the sandbox's errors in the student's cells, and the
    grader's verdicts on its own probe cells (removed from the notebook), in the grader's fixed words."""
    found = set()
    for output in (o for c in nb.get("cells", []) for o in c.get("outputs", []) if o.get("output_type") == "error"):
        if output.get("ename") in STOPPED:
            found.add(output["ename"])
        elif output.get("ename") == "Failed":
            found |= {ename for ename, words in STOPPED.items() if words in str(output.get("evalue", ""))}
    return found


def _kernel_trouble(folder: Path) -> str | None:
    for path in sorted(folder.glob("*.ipynb")):
        try:
            found = _troubles(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
        trouble = [what for ename, what in (("DeadKernelError", "kernel died"),
                                            ("CellTimeoutError", "cell timed out")) if ename in found]
        if trouble:
            # The sandbox grades on in a fresh kernel; only past its restart limit are later cells not run.
            return "; ".join(trouble + (["later cells not run"] if "NotRun" in found else []))
    return None


@dataclass
class Batch:
    """What every student of one run shares: the course, its folders, the assignment and the limits."""

    course: Path
    assignment: str
    dirs: dict
    sources: dict[str, dict]
    wall_seconds: float
    max_bytes: int

    @property
    def out_dir(self) -> Path:
        return self.course / "grade_batch" / self.assignment


def grade_student(batch: Batch, student: str) -> Result:
    """Check, sanitise and autograde one student within ``batch.wall_seconds`` all told."""
    start = time.monotonic()
    res = Result(student)
    folder = batch.course / batch.dirs["submitted_directory"] / student / batch.assignment
    if not folder.is_dir():
        res.status, res.notes = "no submission", [f"no folder {folder}"]
    else:
        originals = batch.out_dir / "originals" / student
        rejected, res.notes = prepare_within(batch.wall_seconds, folder, batch.sources, originals, batch.max_bytes)
        if rejected:
            res.status = rejected
        else:
            res.status, notes = _autograde(batch, student, batch.wall_seconds - (time.monotonic() - start))
            res.notes += notes
    res.score, res.max_score = read_scores(batch.dirs["db_url"], batch.assignment, student)
    res.seconds = round(time.monotonic() - start, 1)
    return res


def _autograde(batch: Batch, student: str, seconds: float) -> tuple[str, list[str]]:
    """``nbgrader autograde`` for the rest of the student's time: (status, notes)."""
    log = batch.out_dir / "logs" / f"{student}.log"
    status = run_autograde(batch.course, batch.assignment, student, max(seconds, 1.0), log)
    if status == "graded":
        trouble = _kernel_trouble(batch.course / batch.dirs["autograded_directory"] / student / batch.assignment)
        return (f"graded ({trouble})" if trouble else status), []
    if status == "timed out":
        return status, [f"stopped after {batch.wall_seconds:.0f} s wall-clock; scores of an earlier run, if any, kept"]
    return status, [f"nbgrader failed: see {log}"]


def write_report(out_dir: Path, results: list[Result]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", "status", "score", "max_score", "seconds", "notes"])
        for r in results:
            w.writerow([r.student, r.status, "" if r.score is None else r.score,
                        "" if r.max_score is None else r.max_score, r.seconds, " | ".join(r.notes)])
    return path


def grade(course: Path, assignment: str, students: list[str] | None = None, wall_seconds: float | None = None,
          echo=print, max_notebook_bytes: int = MAX_NOTEBOOK_BYTES) -> list[Result]:
    """Grade ``students`` (default: everyone in submitted/) one by one; ``wall_seconds`` per student
    defaults to what the course's cell timeout and kernel restarts call for (see :func:`course_dirs`);
    a notebook larger than ``max_notebook_bytes`` is rejected unread."""
    course = course.resolve()
    dirs = course_dirs(course)
    wall_seconds = wall_seconds or dirs["wall_seconds"] + grader_seconds(assignment)
    batch = Batch(course, assignment, dirs, source_notebooks(course, dirs, assignment), wall_seconds,
                  max_notebook_bytes)
    submitted = course / dirs["submitted_directory"]
    if students is None:
        students = sorted(p.name for p in submitted.iterdir() if p.is_dir()) if submitted.is_dir() else []
    results = []
    for student in students:
        res = grade_student(batch, student)
        results.append(res)
        score = "-" if res.score is None else f"{res.score:g}/{res.max_score:g}"
        echo(f"{student:20s} {res.status:30s} {score:>10s} {res.seconds:6.1f}s  {' | '.join(res.notes)}")
    echo(f"report: {write_report(batch.out_dir, results)}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnbook.grade_batch", description=__doc__.split("\n")[0])
    parser.add_argument("assignment")
    parser.add_argument("--student", action="append", help="grade only this student (repeatable)")
    parser.add_argument("--wall-seconds", type=float, help="wall-clock limit per student (default: (kernel restarts "
                        "+ 2) x the cell timeout in nbgrader_config.py, at least 300)")
    parser.add_argument("--course", type=Path, default=Path.cwd(), help="course folder (default: current folder)")
    parser.add_argument("--max-notebook-mb", type=float, default=MAX_NOTEBOOK_BYTES / 2**20,
                        help="largest notebook file read, in MiB (default: %(default)g); larger ones are "
                        "rejected unread")
    args = parser.parse_args(argv)
    results = grade(args.course, args.assignment, args.student, args.wall_seconds,
                    max_notebook_bytes=int(args.max_notebook_mb * 2**20))
    bad = [r for r in results if not r.status.startswith("graded")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
