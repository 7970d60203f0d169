"""The project passes ruff's lint and format checks (rules in pyproject.toml's [tool.ruff];
`make lint` runs the same two commands)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff_finds_nothing(command):
    done = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "--no-cache", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, (
        f"ruff {' '.join(command)} found problems (`ruff format .` fixes layout; "
        f"`make setup` if ruff is missing):\n{done.stdout}{done.stderr}"
    )
