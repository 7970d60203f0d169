"""Measure the book build and the training pages on this machine.

Usage (from the project folder, after `make book` has set up .venv and the datasets):

    .venv/bin/python benchmarks/book_build.py            # cold + warm build into a temporary folder
    .venv/bin/python benchmarks/book_build.py --keep     # keep that folder (its path is printed)

It measures

* a cold build: `make book` into an empty temporary CNNBOOK_BUILD_PATH, so the jupyter execution
  cache is empty and every page executes (the set-up it starts with is already done: a no-op);
* a warm rebuild: `make book` again with nothing changed (jupyter-cache serves every page);
* for each training page: the seconds its notebook took to execute (as jupyter-cache recorded
  them in the cold build) and the accuracies the page glued (test, and validation where the
  page chooses on it).

and writes benchmarks/results.md (a small table) and benchmarks/results.json, both with the date
and the machine (nproc, CPU model, load average before the run). This is a measurement, not a
test: nothing here passes or fails on time. Timings are meaningful only on an otherwise idle
machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from cnnbook import build as cnnbook_build

ROOT = Path(__file__).resolve().parent.parent
OUT_MD = ROOT / "benchmarks" / "results.md"
OUT_JSON = ROOT / "benchmarks" / "results.json"

# The build's budgets on the 2-core machine class: a cold build within 10 minutes, a warm
# rebuild within 20 s.
TARGET_SECONDS = {"cold": 600, "warm": 20}

# Training pages and the glued values that report their accuracies.
TRAINING_PAGES = {
    "mnist-cnn": ["port_accuracy", "improved_accuracy"],
    "dense-vs-cnn": [
        "net1_test_accuracy",
        "net2_test_accuracy",
        "net2_scaled_test_accuracy",
        "improved_test_accuracy",
        "improved_val_accuracy",
    ],
    "lenet5": ["lenet_error_percent", "dense_error_percent"],
    "feature-maps": ["trained_accuracy"],
}


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "loadavg_before": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
    }


def timed_build(build_path: Path) -> tuple[float, int]:
    env = dict(os.environ, CNNBOOK_BUILD_PATH=str(build_path))
    start = time.perf_counter()
    code = subprocess.call(["make", "--no-print-directory", "book"], cwd=ROOT, env=env)
    return time.perf_counter() - start, code


def glued_values(notebook: Path) -> dict:
    """The values a page stored with myst_nb.glue: myst-nb 1.x keeps them in ``<page>.glue.json``
    beside the executed notebook (older versions left them in the notebook's outputs)."""
    outputs = [o for c in json.loads(notebook.read_text())["cells"] for o in c.get("outputs", [])]
    glue_file = notebook.with_suffix(".glue.json")
    if glue_file.is_file():
        outputs += json.loads(glue_file.read_text()).values()
    return cnnbook_build.glued_values(outputs)


def execution_seconds(build_dir: Path) -> dict[str, float]:
    """Seconds each page took to execute, as jupyter-cache recorded them (keyed by page name)."""
    from jupyter_cache import get_cache

    cache_path = build_dir / ".jupyter_cache"
    if not cache_path.is_dir():
        return {}
    seconds = {}
    for record in get_cache(cache_path).list_cache_records():
        value = (record.data or {}).get("execution_seconds")
        if value is not None:
            seconds[Path(record.uri).stem] = float(value)
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary build folder")
    args = parser.parse_args(argv)

    info = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
    }
    build_path = Path(tempfile.mkdtemp(prefix="cnnbook-bench-"))
    build_dir = build_path / "_build"
    try:
        print(f"cold build into {build_path} (empty execution cache) ...", flush=True)
        cold, cold_code = timed_build(build_path)
        print("warm rebuild (nothing changed) ...", flush=True)
        warm, warm_code = timed_build(build_path)
        info["cold_build_seconds"] = round(cold, 1)
        info["cold_build_exit_code"] = cold_code
        info["warm_build_seconds"] = round(warm, 1)
        info["warm_build_exit_code"] = warm_code

        seconds = execution_seconds(build_dir)
        pages = {}
        for page, names in TRAINING_PAGES.items():
            notebook = build_dir / "jupyter_execute" / "book" / f"{page}.ipynb"
            entry = {"execution_seconds": seconds.get(page), "accuracies": {}}
            if notebook.is_file():
                glued = glued_values(notebook)
                entry["accuracies"] = {name: glued.get(name) for name in names}
                entry["training_seconds"] = {
                    k: v for k, v in glued.items() if k.endswith("_seconds")
                }
            else:
                entry["error"] = f"{notebook} does not exist: the page did not execute"
            pages[page] = entry
        info["training_pages"] = pages
    finally:
        if args.keep:
            print(f"build kept in {build_path}")
        else:
            shutil.rmtree(build_path, ignore_errors=True)

    OUT_JSON.write_text(json.dumps(info, indent=2) + "\n")
    OUT_MD.write_text(markdown(info))
    print(OUT_MD.read_text())
    return 0 if cold_code == 0 and warm_code == 0 else 1


def markdown(info: dict) -> str:
    m = info["machine"]
    load = ", ".join(f"{x:.2f}" for x in m["loadavg_before"]) if m["loadavg_before"] else "n/a"
    lines = [
        "# Benchmark results",
        "",
        f"Measured {info['date']} with `benchmarks/book_build.py` on {m['nproc']} CPU(s), "
        f"{m['cpu']} (load average before the run: {load}).",
        "",
        "| what | seconds | target | result |",
        "| --- | ---: | ---: | --- |",
        f"| cold build (empty execution cache) | {info['cold_build_seconds']:.0f} | "
        f"{TARGET_SECONDS['cold']} | exit code {info['cold_build_exit_code']} |",
        f"| warm rebuild (nothing changed) | {info['warm_build_seconds']:.0f} | "
        f"{TARGET_SECONDS['warm']} | exit code {info['warm_build_exit_code']} |",
    ]
    for page, entry in info["training_pages"].items():
        secs = entry.get("execution_seconds")
        shown = f"{secs:.0f}" if secs is not None else "n/a"
        if "error" in entry:
            result = entry["error"]
        else:
            result = ", ".join(
                f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                for k, v in entry["accuracies"].items()
            )
        lines.append(f"| page `{page}` (execution) | {shown} | | {result} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
