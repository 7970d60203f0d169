"""Write each cell kept in shared_cells/ into every source notebook that has a cell of that
grade_id.

A cell that several exercise notebooks share (``check_helpers``, say) is written once, as
``shared_cells/<grade_id>.py``; ``make cells`` copies it into solutions/*/*.ipynb, and
tests/test_shared_cells.py fails when a notebook's copy (source or release) differs. After running
it, regenerate the releases: ``nbgrader generate_assignment <ps> --force``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT / "shared_cells"


def shared_cells() -> dict[str, str]:
    """grade_id -> the cell's text (the file without its final newline)."""
    return {
        path.stem: path.read_text(encoding="utf-8").removesuffix("\n")
        for path in sorted(SHARED.glob("*.py"))
    }


def as_lines(text: str) -> list[str]:
    """A cell's source as nbformat stores it: lines that keep their newline, the last one
    without."""
    return text.splitlines(keepends=True)


def sync(notebook: Path, cells: dict[str, str]) -> bool:
    """Write the shared cells into ``notebook``; True when it changed."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    changed = False
    for cell in nb["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in cells and "".join(cell["source"]) != cells[grade_id]:
            cell["source"] = as_lines(cells[grade_id])
            changed = True
    if changed:
        notebook.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return changed


def main() -> int:
    cells = shared_cells()
    for notebook in sorted((ROOT / "solutions").glob("*/*.ipynb")):
        if sync(notebook, cells):
            print(
                f"updated {notebook.relative_to(ROOT)}: regenerate its release with "
                f"`nbgrader generate_assignment {notebook.parent.name} --force`"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
