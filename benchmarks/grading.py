"""Measure what autograding with nbgrader costs on this machine.

Usage (from the project folder, with .venv set up and the datasets in place):

    .venv/bin/python benchmarks/grading.py          # full run (run it on an idle machine)
    .venv/bin/python benchmarks/grading.py --quick  # smoke run: 8 in parallel, 1 per assignment,
                                                    # batch of 6

It measures, each time in a fresh temporary course made by the tests' own builder
(tests/helpers.py: this project's nbgrader_config.py and solutions/, the release generated):

1. parallel grading: N reference submissions of ps1-convolution (40 by default) graded in one
   course by plain `nbgrader autograde` (every student in one process), then by
   `python -m cnnbook.grade_batch --force` with 1 and with 2 Dask workers: totals, the speedup and
   the throughput against plain autograde; Dask's own cost per task (no-op tasks on a 2-worker
   LocalCluster); and a projection (stated as one) of the hours a class of 300 and 1,000 takes on 8,
   32 and 128 worker cores, from the measured seconds per submission;
2. seconds per submission for ps1-convolution, ps2-pooling and ps3-mnist: the wall time of one
   `nbgrader autograde <ps> --student <id> --force` per student (kernel start-up included), in the
   bubblewrap sandbox, and for ps1 also without it (the sandbox overhead in %);
3. a batch of students on ps1 with hostile submissions among them (an infinite loop, a memory bomb,
   an output flood), graded by `python -m cnnbook.grade_batch ps1-convolution --workers 2`: total
   seconds and the status counts of its report.csv.

Results go to benchmarks/grading-results.md (a small table) and benchmarks/grading-results.json,
with the date and the machine (nproc, CPU model, load average before the run). This is a
measurement, not a test: nothing here passes or fails on time.
"""

from __future__ import annotations

import argparse
import collections
import copy
import csv
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from book_build import machine  # benchmarks/book_build.py

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from helpers import Course  # noqa: E402 - the tests' course builder
from helpers import make_course as make_test_course  # noqa: E402

BIN = ROOT / ".venv" / "bin"
OUT_MD = ROOT / "benchmarks" / "grading-results.md"
OUT_JSON = ROOT / "benchmarks" / "grading-results.json"
NOTEBOOKS = {"ps1-convolution": "convolution", "ps2-pooling": "pooling", "ps3-mnist": "mnist_cnn"}
# Seconds per submission before grading moved out of the student's kernel (2026-11-25, this machine
# class), and the most the trusted grading may cost (issue 12: +20 % for ps1/ps2, 60 s for ps3).
BASELINE = {"ps1-convolution": 5.1, "ps2-pooling": 5.3, "ps3-mnist": 40.9}
TARGET = {"ps1-convolution": 5.1 * 1.2, "ps2-pooling": 5.3 * 1.2, "ps3-mnist": 60.0}

# Hostile code put in front of the first solution cell (the rest of the submission is the
# reference).
HOSTILE = {
    "hostile-loop": "while True:\n    pass\n",
    "hostile-membomb": "blocks = []\nwhile True:\n    blocks.append(bytearray(10**8))\n",
    "hostile-flood": "print('x' * 20_000_000)\n",
}

# Appended to the copied nbgrader_config.py for the unsandboxed comparison: the course's own
# unsandboxed path (require_sandbox=False when bubblewrap is unusable), forced.
NO_SANDBOX = """
# --- benchmarks/grading.py: grade WITHOUT the sandbox, for comparison only ---
import cnnbook.sandbox as _sandbox  # noqa: E402
_sandbox.bwrap_problem = lambda: "sandbox switched off by benchmarks/grading.py"
c.SandboxedExecute.require_sandbox = False
"""


def env() -> dict:
    e = dict(
        os.environ,
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        TF_CPP_MIN_LOG_LEVEL="2",
        TF_ENABLE_ONEDNN_OPTS="0",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    e.pop("NBGRADER_DB_URL", None)  # the temporary course's own SQLite gradebook
    return e


def run(
    course: Course, *cmd: str, timeout: float = 1800
) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(
        list(cmd), cwd=course.root, env=env(), capture_output=True, text=True, timeout=timeout
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0 and cmd[1:2] != ("-m",):
        raise SystemExit(
            f"error: {' '.join(cmd)} failed in {course.root}:\n"
            f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    return seconds, done


def nbgrader(course: Course, *args: str) -> float:
    return run(course, str(BIN / "nbgrader"), *args)[0]


def make_course(ps: str, sandbox: bool = True) -> Course:
    """The tests' temporary course (this course's config and solutions, the release generated), with
    the sandbox switched off for the comparison run."""
    return make_test_course(
        (ps,), extra_config="" if sandbox else NO_SANDBOX, prefix="cnnbook-grading-bench-"
    )


def reference_submission(course: Course, ps: str) -> dict:
    """The release notebook with the reference solution cells filled in."""
    return course.submission(ps, NOTEBOOKS[ps], honest=True)


def first_solution_cell(nb: dict) -> dict:
    return next(c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("solution"))


def submit(course: Course, ps: str, student: str, nb: dict) -> None:
    course.submit(student, ps, nb, notebook=NOTEBOOKS[ps])


def scores(course: Course, ps: str) -> dict:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course.gradebook}") as gb:
        return {
            s.student.id: [float(s.score), float(s.max_score)]
            for s in gb.assignment_submissions(ps)
        }


def per_submission(courses: list, ps: str, students: int, sandbox: bool) -> dict:
    course = make_course(ps, sandbox)
    courses.append(course)
    nb = reference_submission(course, ps)
    times = []
    for i in range(students):
        student = f"student{i + 1:02d}"
        submit(course, ps, student, nb)
        seconds, done = run(
            course, str(BIN / "nbgrader"), "autograde", ps, "--student", student, "--force"
        )
        if ("grading without a sandbox" in done.stderr.lower()) == sandbox:
            raise SystemExit(
                f"error: expected grading {'with' if sandbox else 'without'} the sandbox:\n"
                f"{done.stderr[-2000:]}"
            )
        times.append(round(seconds, 2))
        print(
            f"  {ps} {'sandbox' if sandbox else 'no sandbox'} {student}: {seconds:.1f} s",
            flush=True,
        )
    got = scores(course, ps)
    return {
        "assignment": ps,
        "sandbox": sandbox,
        "students": students,
        "seconds": times,
        "mean_seconds": round(statistics.mean(times), 2),
        "scores": got,
    }


def batch(courses: list, students: int, hostile: list[str], workers: int) -> dict:
    ps = "ps1-convolution"
    course = make_course(ps)
    courses.append(course)
    good = reference_submission(course, ps)
    names = [f"student{i + 1:02d}" for i in range(students - len(hostile))]
    for name in names:
        submit(course, ps, name, good)
    for name in hostile:
        nb = copy.deepcopy(good)
        cell = first_solution_cell(nb)
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        cell["source"] = HOSTILE[name] + src
        submit(course, ps, name, nb)
    seconds, done = run(
        course,
        str(BIN / "python"),
        "-m",
        "cnnbook.grade_batch",
        ps,
        "--workers",
        str(workers),
        timeout=600 * students,
    )
    report = course.root / "grade_batch" / ps / "report.csv"
    if not report.is_file():
        raise SystemExit(
            f"error: grade_batch wrote no report:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    rows = list(csv.DictReader(report.open()))
    print(done.stdout, end="", flush=True)
    return {
        "assignment": ps,
        "students": students,
        "hostile": hostile,
        "workers": workers,
        "total_seconds": round(seconds, 1),
        "exit_code": done.returncode,
        "status_counts": dict(collections.Counter(r["status"] for r in rows)),
        "rows": [
            {k: r[k] for k in ("student", "status", "score", "max_score", "seconds")} for r in rows
        ],
    }


def parallel(courses: list, students: int) -> dict:
    """The same ``students`` reference submissions of ps1 graded three ways in one course: plain
    ``nbgrader autograde`` (every student in one process), then ``grade_batch --force`` with 1 and
    with 2 workers."""
    ps = "ps1-convolution"
    course = make_course(ps)
    courses.append(course)
    good = reference_submission(course, ps)
    for i in range(students):
        submit(course, ps, f"student{i + 1:03d}", good)
    times = {"plain": nbgrader(course, "autograde", ps, "--force")}
    print(f"  plain nbgrader autograde: {times['plain']:.1f} s", flush=True)
    for workers in (1, 2):
        seconds, done = run(
            course,
            str(BIN / "python"),
            "-m",
            "cnnbook.grade_batch",
            ps,
            "--force",
            "--workers",
            str(workers),
            timeout=600 * students,
        )
        if done.returncode != 0:
            raise SystemExit(
                f"error: grade_batch --workers {workers} failed:\n"
                f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
            )
        rows = list(csv.DictReader((course.root / "grade_batch" / ps / "report.csv").open()))
        times[f"workers_{workers}"] = seconds
        times[f"task_seconds_{workers}"] = statistics.mean(float(r["seconds"]) for r in rows)
        print(
            f"  grade_batch --workers {workers}: {seconds:.1f} s "
            f"(mean task {times[f'task_seconds_{workers}']:.2f} s)",
            flush=True,
        )
    got = scores(course, ps)
    return {
        "students": students,
        **{k: round(v, 2) for k, v in times.items()},
        "speedup": round(times["workers_1"] / times["workers_2"], 2),
        "vs_plain": round(times["plain"] / times["workers_2"], 2),
        "scores": sorted({f"{a:g}/{b:g}" for a, b in got.values()}),
    }


def scheduler_overhead(tasks: int = 500) -> dict:
    """Seconds per task that Dask itself costs: no-op tasks on a 2-worker LocalCluster as
    grade_batch starts it (one thread per worker), submitted and gathered one by one."""
    from cnnbook.batch.cluster import connect

    with connect(2) as client:
        client.submit(int, 0).result()
        start = time.perf_counter()
        for i in range(tasks):
            client.submit(int, i, pure=False).result()
        sequential = (time.perf_counter() - start) / tasks
        start = time.perf_counter()
        client.gather(client.map(int, range(tasks), pure=False))
        batched = (time.perf_counter() - start) / tasks
    return {
        "tasks": tasks,
        "round_trip_ms": round(sequential * 1000, 2),
        "throughput_ms": round(batched * 1000, 3),
    }


PROJECTED_CORES = (8, 32, 128)
PROJECTED_STUDENTS = (300, 1000)


def projection(per_submission: dict[str, float], fixed_seconds: float) -> list[dict]:
    """Hours to grade a class: ``fixed_seconds`` (template, cluster start) + students x the measured
    seconds per submission on one core / cores. A projection from single-machine measurements, not a
    measurement: it assumes tasks scale linearly, as they did from 1 to 2 workers here."""
    rows = []
    for ps, seconds in per_submission.items():
        for students in PROJECTED_STUDENTS:
            rows.append(
                {
                    "assignment": ps,
                    "students": students,
                    "seconds_each": seconds,
                    **{
                        f"cores_{c}": round((fixed_seconds + students * seconds / c) / 3600, 2)
                        for c in PROJECTED_CORES
                    },
                }
            )
    return rows


def write_results(result: dict) -> None:
    OUT_JSON.write_text(json.dumps(result, indent=1) + "\n")
    lines = per_submission_lines(result) + batch_lines(result["batch"]) + parallel_lines(result)
    OUT_MD.write_text("\n".join(lines))


def per_submission_lines(result: dict) -> list[str]:
    m = result["machine"]
    lines = [
        "# Autograding cost (benchmarks/grading.py)",
        "",
        f"Measured {result['date']} on {m['nproc']} CPU(s), {m['cpu']}, Python {m['python']}; "
        f"load average before: {', '.join(f'{x:.2f}' for x in m['loadavg_before'])}"
        + (" (**--quick** smoke run)" if result["quick"] else "")
        + ".",
        "",
        "## Seconds per submission (`nbgrader autograde <ps> --student <id>`, kernel start-up "
        "included)",
        "",
        "| assignment | sandbox | students | mean s | each s | scores | before (2026-11-25) | "
        "target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["per_submission"]:
        sc = ", ".join(sorted({f"{s:g}/{mx:g}" for s, mx in r["scores"].values()}))
        ps = r["assignment"]
        lines.append(
            f"| {ps} | {'yes' if r['sandbox'] else 'no'} | {r['students']} | "
            f"{r['mean_seconds']:.1f} | {', '.join(f'{s:.1f}' for s in r['seconds'])} | {sc} | "
            f"{BASELINE[ps]:.1f} | at most {TARGET[ps]:.1f} |"
        )
    return lines + short_marks_lines(result)


def short_marks_lines(result: dict) -> list[str]:
    """A warning when the reference solution lost points, and the sandbox's overhead."""
    lines = []
    short = [
        f"{r['assignment']} ({s}: {sc:g}/{mx:g})"
        for r in result["per_submission"]
        for s, (sc, mx) in r["scores"].items()
        if sc < mx
    ]
    if short:
        lines += [
            "",
            "**Warning:** the reference solution did not get full marks in "
            + ", ".join(short)
            + ": look at the autograded notebook (run with --keep); nbgrader gives 0 points to a "
            "test cell with an error or any stderr output.",
        ]
    if result.get("sandbox_overhead_percent") is not None:
        lines += [
            "",
            f"Sandbox overhead on ps1-convolution: {result['sandbox_overhead_percent']:+.1f} % "
            "(mean with sandbox vs without).",
        ]
    return lines


def batch_lines(b: dict) -> list[str]:
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(b["status_counts"].items()))
    return [
        "",
        "## Batch with hostile students: `python -m cnnbook.grade_batch ps1-convolution --workers "
        f"{b['workers']}`",
        "",
        "| students | hostile | total s | s per student | statuses |",
        "|---|---|---|---|---|",
        f"| {b['students']} | {', '.join(b['hostile'])} | {b['total_seconds']:.1f} | "
        f"{b['total_seconds'] / b['students']:.1f} | {counts} |",
        "",
        "Per hostile student: "
        + "; ".join(
            f"{r['student']}: {r['status']} ({r['score'] or '-'}/{r['max_score'] or '-'}) "
            f"in {float(r['seconds']):.1f} s"
            for r in b["rows"]
            if r["student"] in b["hostile"]
        )
        + ".",
        "",
    ]


def parallel_lines(result: dict) -> list[str]:
    p, o = result["parallel"], result["scheduler_overhead"]
    n = p["students"]
    lines = [
        f"## Parallel: {n} ps1-convolution submissions (the reference solution), one course",
        "",
        "| how | total s | students per minute |",
        "|---|---|---|",
        f"| plain `nbgrader autograde ps1-convolution --force` (one process) | {p['plain']:.1f} | "
        f"{60 * n / p['plain']:.1f} |",
        f"| `grade_batch --force --workers 1` | {p['workers_1']:.1f} | "
        f"{60 * n / p['workers_1']:.1f} |",
        f"| `grade_batch --force --workers 2` | {p['workers_2']:.1f} | "
        f"{60 * n / p['workers_2']:.1f} |",
        "",
        f"Speedup from 1 to 2 workers: **{p['speedup']:.2f}x** (goal: at least 1.6x on 2 cores). "
        f"`--workers 2` against plain autograde: **{p['vs_plain']:.2f}x** its throughput (goal: at "
        f"least 1.5x). Mean seconds per task on a worker: {p['task_seconds_1']:.2f} (1 worker), "
        f"{p['task_seconds_2']:.2f} (2 workers). Scores: {', '.join(p['scores'])}.",
        "",
        f"Dask's own cost per task ({o['tasks']} no-op tasks, 2-worker LocalCluster): "
        f"{o['round_trip_ms']:.2f} ms for one submitted and awaited at a time, "
        f"{o['throughput_ms']:.3f} ms each when submitted together.",
        "",
        "## Projected time for a class (hours; a projection, not a measurement)",
        "",
        "From the seconds per submission measured above on one worker, plus "
        f"{result['fixed_seconds']:.0f} s fixed per batch (template and cluster start), assuming "
        "linear scaling across worker cores:",
        "",
        "| assignment | students | s per submission | "
        + " | ".join(f"{c} cores" for c in PROJECTED_CORES)
        + " |",
        "|---|---|---|" + "---|" * len(PROJECTED_CORES),
    ]
    for r in result["projection"]:
        lines.append(
            f"| {r['assignment']} | {r['students']} | {r['seconds_each']:.1f} | "
            + " | ".join(f"{r[f'cores_{c}']:.2f}" for c in PROJECTED_CORES)
            + " |"
        )
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not (BIN / "nbgrader").is_file():
        print(
            f"error: {BIN / 'nbgrader'} not found. Fix: set up the project's .venv first (make "
            "book).",
            file=sys.stderr,
        )
        return 2
    if args.quick:
        counts = {"ps1-convolution": 1, "ps2-pooling": 1, "ps3-mnist": 1}
        batch_students, hostile, parallel_students = 6, ["hostile-membomb"], 8
    else:
        counts = {"ps1-convolution": 3, "ps2-pooling": 3, "ps3-mnist": 1}
        batch_students, hostile, parallel_students = 30, list(HOSTILE), args.students
    result = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
    }
    print(f"machine: {result['machine']}", flush=True)
    courses = []
    try:
        measure(result, courses, counts, parallel_students, batch_students, hostile)
    finally:
        for course in courses:
            if args.keep:
                print(f"kept: {course.root}")
            else:
                shutil.rmtree(course.root, ignore_errors=True)
    write_results(result)
    print(OUT_MD.read_text())
    print(f"wrote {OUT_MD} and {OUT_JSON}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 student per assignment, a batch of 6 with 1 hostile, 8 in the parallel comparison",
    )
    parser.add_argument(
        "--students",
        type=int,
        default=40,
        help="submissions in the parallel comparison (default: %(default)s)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary course folders (path printed)"
    )
    return parser


def measure(
    result: dict,
    courses: list,
    counts: dict[str, int],
    parallel_students: int,
    batch_students: int,
    hostile: list[str],
) -> None:
    """Every measurement into ``result``; each course made for one is added to ``courses``."""
    print(f"parallel: {parallel_students} ps1-convolution submissions", flush=True)
    result["parallel"] = parallel(courses, parallel_students)
    runs = []
    for ps, n in counts.items():
        runs.append(per_submission(courses, ps, n, sandbox=True))
        if ps == "ps1-convolution":
            runs.append(per_submission(courses, ps, n, sandbox=False))
    result["per_submission"] = runs
    derive(result)
    print(
        f"batch of {batch_students} on ps1-convolution ({', '.join(hostile)} hostile), 2 workers:",
        flush=True,
    )
    result["batch"] = batch(courses, batch_students, hostile, workers=2)
    # Last: the LocalCluster it starts in this process leaves threads behind that would slow the
    # measurements after it (ps3's training took 57 s instead of 36 s).
    result["scheduler_overhead"] = scheduler_overhead()


def derive(result: dict) -> None:
    """The sandbox's overhead and the projection for a class, from the parallel and per-submission
    measurements."""
    p, runs = result["parallel"], result["per_submission"]
    with_sb = next(r for r in runs if r["assignment"] == "ps1-convolution" and r["sandbox"])
    without = next(r for r in runs if r["assignment"] == "ps1-convolution" and not r["sandbox"])
    result["sandbox_overhead_percent"] = round(
        100 * (with_sb["mean_seconds"] / without["mean_seconds"] - 1), 1
    )
    # ps1 from the batch on one worker; ps2 and ps3 from one `nbgrader autograde` process per
    # student (nbgrader's start-up included, so an upper bound).
    each = {
        "ps1-convolution": p["task_seconds_1"],
        **{
            r["assignment"]: r["mean_seconds"]
            for r in runs
            if r["sandbox"] and r["assignment"] != "ps1-convolution"
        },
    }
    result["fixed_seconds"] = round(
        max(0.0, p["workers_1"] - p["students"] * p["task_seconds_1"]), 1
    )
    result["projection"] = projection(each, result["fixed_seconds"])


if __name__ == "__main__":
    sys.exit(main())
