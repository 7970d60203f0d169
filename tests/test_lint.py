"""The project passes `ruff check` (the rules are in pyproject.toml's [tool.ruff]; `make lint` runs the same)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (f"ruff check found problems (fix them, or `make setup` if ruff is missing):\n"
                                  f"{done.stdout}{done.stderr}")
