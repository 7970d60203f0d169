"""One student graded on a worker: a private temporary course, the sandbox, plain data back.

:func:`grade_student` is the Dask task. It unpacks the assignment's template and the student's
submitted files into a temporary folder, checks and sanitises the notebooks in a child process under
a time limit (:func:`prepare_within`), then runs nbgrader's Autograde in this process with the
course's own ``nbgrader_config.py`` (the sandbox and the trusted checks of :mod:`cnnbook.grader`)
against the template's SQLite gradebook. It returns the graded files, each cell's score, the status
and the log; the folder is gone when it returns. Nothing here writes outside that folder.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
import time
from pathlib import Path

from cnnbook.batch.files import read_tree, write_tree
from cnnbook.batch.record import quiet_autoflush
from cnnbook.batch.template import GRADEBOOK, course_app
from cnnbook.grader.preprocessors.readproberesults import STOPPED
from cnnbook.grader.sanitise import Reference, sanitise
from cnnbook.grader.submission import (
    MAX_NOTEBOOK_BYTES,
    _read_notebook,
    _remove_links_and_special_files,
    file_problem,
)

PREPARE_SECONDS = 60
TEMP_PREFIX = "cnnbook-grade-"  # then the grading process's pid: see remove_stale_folders


def grade_student(template, job: dict) -> dict:
    """Grade ``job["student"]``'s ``job["files"]`` for ``job["assignment"]``: a dict of plain
    data."""
    start = time.monotonic()
    result = {
        "student": job["student"],
        "status": "graded",
        "notes": [],
        "log": "",
        "autograded": None,
        "grades": None,
        "timestamp": None,
        "worker": worker_address() or "?",
    }
    remove_stale_folders()
    with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-") as tmp:
        root = Path(tmp)
        write_tree(root, template.files)
        folders = template.folders
        folder = root / folders["submitted_directory"] / job["student"] / job["assignment"]
        folder.mkdir(parents=True)
        write_tree(folder, job["files"])
        sources = release_notebooks(root / folders["release_directory"] / job["assignment"])
        rejected, result["notes"] = prepare_within(
            job.get("prepare_seconds", PREPARE_SECONDS),
            folder,
            sources,
            job.get("max_bytes", MAX_NOTEBOOK_BYTES),
        )
        if rejected:
            result["status"] = rejected
        else:
            _autograde(root, folders, job, result)
    result["seconds"] = round(time.monotonic() - start, 1)
    return result


def _autograde(root: Path, folders: dict, job: dict, result: dict) -> None:
    from nbgrader.utils import capture_log

    threads = task_threads(job.get("thread_shares", {}))
    app = autograde_app(
        root, job["assignment"], job["student"], {"SandboxedExecute": {"threads": threads}}
    )
    with quiet_autoflush():
        outcome = capture_log(app)
    result["log"] = outcome.get("log", "") + outcome.get("error", "")
    graded = root / folders["autograded_directory"] / job["student"] / job["assignment"]
    if not outcome["success"] or not graded.is_dir():
        result["status"] = "error"
        result["notes"].append("nbgrader failed: see the log")
        return
    trouble = kernel_trouble(graded)
    result["status"] = f"graded ({trouble})" if trouble else "graded"
    result["autograded"] = read_tree(graded)
    result["grades"], result["timestamp"] = read_grades(
        f"sqlite:///{root / GRADEBOOK}", job["assignment"], job["student"]
    )


def task_threads(shares: dict[str, int]) -> int:
    """This task's share of its machine's cores (0, no limit, outside a Dask worker)."""
    address = worker_address()
    if address is None:
        return 0
    return shares.get(address.split("://")[-1].rsplit(":", 1)[0], 1)


def remove_stale_folders() -> None:
    """Remove the temporary courses of grading processes that died (a killed worker cannot clean up;
    each folder holds the assignment's solutions, readable by root only)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*-*"):
        pid = folder.name[len(TEMP_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)


def worker_address() -> str | None:
    """The address of the Dask worker running this task (None outside one), for the log."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return None


def autograde_app(root: Path, assignment: str, student: str, overrides: dict):
    """nbgrader's Autograde for one student, configured by the course's own nbgrader_config.py."""
    from nbgrader.converters import Autograde

    app = course_app(Autograde, root, assignment, student, overrides)
    app.force, app.create_student = True, True
    return app


def read_grades(db_url: str, assignment: str, student: str) -> tuple[dict, str | None]:
    """Each notebook's cell scores and comments in a gradebook, and the submission's time, as plain
    data."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb:
        submission = gb.find_submission(assignment, student)
        grades = {
            nb.name: {
                "scores": {g.name: g.auto_score for g in nb.grades},
                "comments": {c.name: c.auto_comment for c in nb.comments},
                "late_submission_penalty": nb.late_submission_penalty,
            }
            for nb in submission.notebooks
        }
        return grades, submission.timestamp.isoformat() if submission.timestamp else None


# ------------------------------------------------------------------------- checking the files first


def release_notebooks(folder: Path) -> dict[str, dict]:
    """The assignment's notebooks as released to students (their nbgrader metadata is the
    reference)."""
    return {
        p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.ipynb"))
    }


def _find_notebook(
    student_dir: Path, name: str, sources: dict, max_bytes: int
) -> tuple[Path | None, list[str]]:
    """The student's notebook ``name``, or the only other notebook renamed to it; (None, notes) if
    none."""
    path = student_dir / name
    if os.path.lexists(path):
        return path, []
    present = sorted(p.name for p in student_dir.glob("*.ipynb"))
    others = [p for p in present if p not in sources]
    if len(sources) == 1 and len(others) == 1:
        problem = file_problem(student_dir / others[0], max_bytes)
        if problem is not None:
            return None, [f"{name} is missing, and {others[0]!r} {problem}"]
        shutil.move(student_dir / others[0], path)
        return path, [f"took {others[0]!r} as {name!r} (the only notebook)"]
    return None, [f"{name} is missing (found: {', '.join(map(repr, present)) or 'no notebooks'})"]


def prepare(
    student_dir: Path, sources: dict[str, dict], max_bytes: int = MAX_NOTEBOOK_BYTES
) -> tuple[str | None, list[str]]:
    """Check and sanitise one student's notebooks in place (a copy: the submitted files stay as they
    were). Returns (rejection status or None, notes)."""
    notes = _remove_links_and_special_files(student_dir, set(sources))
    for name, source in sources.items():
        path, found = _find_notebook(student_dir, name, sources, max_bytes)
        notes += found
        if path is None:
            return "missing notebook", notes
        nb, problem, changes = _read_notebook(path, max_bytes)
        if nb is None:
            notes.append(f"{name} is unreadable: {problem}")
            return "unreadable notebook", notes
        changes += sanitise(nb, Reference.from_notebook(source))
        if changes:
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            notes.append(f"{name} sanitised before grading ({'; '.join(changes)})")
    return None, notes


def _prepare_in_child(conn, *args) -> None:
    try:
        conn.send(prepare(*args))
    except Exception as exc:  # noqa: BLE001 - whatever the submission does to the checks, report it
        conn.send(("unreadable notebook", [f"the submission could not be checked: {exc!r}"[:500]]))


def prepare_within(seconds: float, *args) -> tuple[str | None, list[str]]:
    """:func:`prepare` in a child process, stopped after ``seconds``: no submission can hang the
    grader (or exhaust its memory) while its files are checked."""
    receive, send = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(
        target=_prepare_in_child, args=(send, *args)
    )
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
        return "unreadable notebook", [
            f"checking the submission crashed (exit code {child.exitcode})"
        ]
    return "timed out", [
        f"checking the submission took more than {seconds:.0f} s; it was not graded"
    ]


# --------------------------------------------------------------------------- what stopped cells


def _troubles(nb: dict) -> set[str]:
    """What stopped cells of a graded notebook: the sandbox's errors in the student's cells, and the
    grader's verdicts on its own probe cells (removed from the notebook), in the grader's fixed
    words."""
    found = set()
    for output in (
        o
        for c in nb.get("cells", [])
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ):
        if output.get("ename") in STOPPED:
            found.add(output["ename"])
        elif output.get("ename") == "Failed":
            found |= {
                ename for ename, words in STOPPED.items() if words in str(output.get("evalue", ""))
            }
    return found


def kernel_trouble(folder: Path) -> str | None:
    """ "kernel died" / "cell timed out" (and "later cells not run") for a graded folder, or
    None."""
    for path in sorted(folder.glob("*.ipynb")):
        try:
            found = _troubles(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
        trouble = [
            what
            for ename, what in (
                ("DeadKernelError", "kernel died"),
                ("CellTimeoutError", "cell timed out"),
            )
            if ename in found
        ]
        if trouble:
            # The sandbox grades on in a fresh kernel; only past its restart limit are later cells
            # not run.
            return "; ".join(trouble + (["later cells not run"] if "NotRun" in found else []))
    return None
