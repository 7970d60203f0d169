"""Build the website into ``_build/html`` (what ``make book`` runs, and what the page tests call).

Runs Jupyter Book 1 with warnings as errors. Pages execute through jupyter-cache, so a build
with nothing changed executes no notebook. When a page fails to execute, its traceback is
printed from ``_build/html/reports`` so the failure is readable in a terminal or CI log.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# CNNBOOK_BUILD_PATH puts the whole _build folder elsewhere (e.g. one per working copy).
BUILD = Path(os.environ.get("CNNBOOK_BUILD_PATH", ROOT)).resolve() / "_build"
HTML = BUILD / "html"
EXECUTED = BUILD / "jupyter_execute"


def build(quiet: bool = False) -> int:
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jupyter_book), "build", str(ROOT), "--path-output", str(BUILD.parent),
           "--nitpick", "--warningiserror", "--keep-going"]
    if quiet:
        cmd.append("--quiet")
    code = subprocess.call(cmd, cwd=ROOT)
    if code != 0:
        reports = sorted((HTML / "reports").rglob("*.err.log")) + sorted((HTML / "reports").rglob("*.log"))
        seen = set()
        for report in reports:
            if report in seen:
                continue
            seen.add(report)
            print(f"\n===== execution report: {report.relative_to(ROOT)} =====", file=sys.stderr)
            print(report.read_text(errors="replace")[-8000:], file=sys.stderr)
        print("error: the book did not build (see the warnings or execution reports above).", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(build())
