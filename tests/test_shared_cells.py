"""Cells shared by several exercise notebooks are written once, in shared_cells/, and every copy (in
the source notebooks and in their releases) is that text: `make cells` writes them, this test keeps
it honest."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("sync_cells", ROOT / "scripts" / "sync_cells.py")
sync_cells = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sync_cells)
SHARED = sync_cells.shared_cells()
NOTEBOOKS = sorted((ROOT / "solutions").glob("*/*.ipynb")) + sorted(
    (ROOT / "exercises").glob("*/*.ipynb")
)


def copies(grade_id: str) -> dict[str, str]:
    found = {}
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
                found[str(path.relative_to(ROOT))] = "".join(cell["source"])
    return found


@pytest.mark.parametrize("grade_id", sorted(SHARED))
def test_every_copy_is_the_shared_text(grade_id):
    found = copies(grade_id)
    assert len(found) >= 4, f"{grade_id} is shared by fewer than two assignments: {sorted(found)}"
    differ = [path for path, text in found.items() if text != SHARED[grade_id]]
    assert not differ, (
        f"{differ} differ from shared_cells/{grade_id}.py: run `make cells`, then "
        "`nbgrader generate_assignment <ps> --force`"
    )


def test_sync_writes_the_shared_text_into_a_notebook(tmp_path):
    grade_id = sorted(SHARED)[0]
    path = tmp_path / "nb.ipynb"
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {"nbgrader": {"grade_id": grade_id}},
                "source": ["old\n"],
                "outputs": [],
                "execution_count": None,
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb))
    assert sync_cells.sync(path, SHARED) is True
    assert "".join(json.loads(path.read_text())["cells"][0]["source"]) == SHARED[grade_id]
    assert sync_cells.sync(path, SHARED) is False
