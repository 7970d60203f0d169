"""What a submitted notebook may change: :func:`sanitise` restores the assignment's own cells and
metadata.

A submission is untrusted data. Before nbgrader reads it, every cell that the assignment locks comes
back from the assignment (its text and its nbgrader metadata, whatever the student did to either,
even when the student deleted the metadata or the cell), forged or unknown nbgrader metadata is
removed, a copied test cell is graded once, stored outputs are dropped and the kernelspec is the
assignment's. ``python -m cnnbook.grade_batch`` calls :func:`sanitise` before nbgrader (its report
says what was changed), and the ``RestoreNbgraderMetadata`` preprocessor calls it in plain
``nbgrader autograde``.

Fields of the wrong JSON type (:func:`type_problems` names them; the batch rejects such a notebook)
are retyped or dropped, and a notebook that has no list of cells raises :class:`MalformedNotebook`,
so in plain ``nbgrader autograde`` a hand-edited notebook fails alone instead of stopping the run.
"""

from __future__ import annotations

import copy
import json
import reprlib
from collections import Counter
from dataclasses import dataclass, field

# The nbgrader metadata that decides how a cell is graded (the rest, e.g. the checksum, nbgrader
# recomputes).
GRADING_KEYS = ("grade_id", "grade", "solution", "locked", "task", "points", "schema_version")
CELL_TYPES = ("code", "markdown", "raw")
MAX_NOTES = 20  # a notebook of a million odd cells gets a short report, not a million lines

_short = (
    reprlib.Repr()
)  # bounded in depth and length: a submission's metadata may nest deeply or be huge
_short.maxlevel, _short.maxstring, _short.maxother = 3, 40, 40


class MalformedNotebook(ValueError):
    """The submission is not a notebook that can be sanitised (e.g. its cells are not a list)."""


def _type(value) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
    }.get(type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _is_text(source) -> bool:
    return isinstance(source, str) or (
        isinstance(source, list) and all(isinstance(s, str) for s in source)
    )


def cell_problems(cell) -> list[str]:
    """The fields of one cell that have the wrong JSON type for nbformat 4, in words."""
    if not isinstance(cell, dict):
        return [f"is {_type(cell)}, not an object"]
    problems = []
    if cell.get("cell_type") not in CELL_TYPES:
        problems.append(
            f"cell_type {_short.repr(cell.get('cell_type'))} is not code, markdown or raw"
        )
    metadata = cell.get("metadata", {})
    if not isinstance(metadata, dict):
        problems.append(f"metadata is {_type(metadata)}, not an object")
    elif not isinstance(metadata.get("nbgrader", {}), dict):
        problems.append(f"nbgrader metadata is {_type(metadata['nbgrader'])}, not an object")
    if not _is_text(cell.get("source", "")):
        problems.append(f"source is {_type(cell.get('source'))}, not text")
    for key, kind in (("outputs", list), ("attachments", dict)):
        if key in cell and not isinstance(cell[key], kind):
            problems.append(f"{key} is {_type(cell[key])}, not {_type(kind())}")
    return problems


def type_problems(nb) -> list[str]:
    """What in ``nb`` has the wrong JSON type for nbformat 4, in words (empty when its structure is
    sound)."""
    if not isinstance(nb, dict):
        return [f"the notebook is {_type(nb)}, not an object"]
    problems = []
    if not isinstance(nb.get("cells"), list):
        problems.append(f"cells is {_type(nb.get('cells'))}, not a list")
    metadata = nb.get("metadata", {})
    if not isinstance(metadata, dict):
        problems.append(f"notebook metadata is {_type(metadata)}, not an object")
    elif not isinstance(metadata.get("kernelspec", {}), dict):
        problems.append(f"kernelspec is {_type(metadata['kernelspec'])}, not an object")
    for index, cell in enumerate(nb.get("cells") if isinstance(nb.get("cells"), list) else ()):
        problems += [f"cell {index}: {problem}" for problem in cell_problems(cell)]
    return problems


@dataclass
class SourceCell:
    """One cell of the assignment: its nbgrader metadata, and its type and text when it is
    locked."""

    meta: dict
    cell_type: str = "code"
    source: str | None = None  # the text of a locked cell, which no submission may change


@dataclass
class Reference:
    """What a submission must agree with: the assignment's cells in order (by grade_id), and the
    kernelspec."""

    cells: dict[str, SourceCell]
    kernelspec: dict | None
    order: list[str] = field(default_factory=list)

    @classmethod
    def from_notebook(cls, nb: dict) -> Reference:
        """From the notebook as released to students (or its source)."""
        cells = {}
        for cell in nb["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader")
            if meta and "grade_id" in meta:
                text = "".join(cell["source"]) if meta.get("locked") else None
                cells[meta["grade_id"]] = SourceCell(meta, cell["cell_type"], text)
        return cls(cells, nb.get("metadata", {}).get("kernelspec"), list(cells))

    @classmethod
    def from_gradebook(cls, gradebook, notebook_id: str, assignment_id: str) -> Reference:
        """From what ``nbgrader generate_assignment`` recorded, which is what nbgrader grades
        against."""
        from nbgrader.nbgraderformat import SCHEMA_VERSION

        notebook = gradebook.find_notebook(notebook_id, assignment_id)
        grade_points = {c.name: c.max_score for c in notebook.grade_cells}
        task_points = {c.name: c.max_score for c in notebook.task_cells}
        solutions = {c.name for c in notebook.solution_cells}
        cells = {}
        for source in notebook.source_cells:
            meta = {
                "grade_id": source.name,
                "grade": source.name in grade_points,
                "solution": source.name in solutions,
                "locked": source.locked,
                "schema_version": SCHEMA_VERSION,
                "cell_type": source.cell_type,
                "checksum": source.checksum,
            }
            if source.name in grade_points:
                meta["points"] = grade_points[source.name]
            if source.name in task_points:
                meta.update(task=True, points=task_points[source.name])
            text = source.source if source.locked else None
            cells[source.name] = SourceCell(meta, source.cell_type, text)
        spec = json.loads(notebook.kernelspec) if notebook.kernelspec else None
        return cls(cells, spec, list(cells))


def _grade_id(cell: dict) -> str | None:
    meta = cell["metadata"].get("nbgrader")
    grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
    return grade_id if isinstance(grade_id, str) else None


def _grading(meta: dict) -> dict:
    return {key: meta.get(key) for key in GRADING_KEYS}


def _new_cell(grade_id: str, source: SourceCell) -> dict:
    cell = {
        "cell_type": source.cell_type,
        "metadata": {"nbgrader": copy.deepcopy(source.meta)},
        "source": source.source or "",
    }
    if source.cell_type == "code":
        cell.update(outputs=[], execution_count=None)
    return cell


def _restore_missing_locked_cells(nb: dict, reference: Reference, notes: list[str]) -> None:
    """Put back every locked cell of the assignment that the submission lacks, after its
    predecessor."""
    present = {_grade_id(cell) for cell in nb["cells"]}
    for position, grade_id in enumerate(reference.order):
        source = reference.cells[grade_id]
        if grade_id in present or not source.meta.get("locked"):
            continue
        index = 0
        for earlier in reversed(reference.order[:position]):
            found = [i for i, cell in enumerate(nb["cells"]) if _grade_id(cell) == earlier]
            if found:
                index = found[-1] + 1
                break
        nb["cells"].insert(index, _new_cell(grade_id, source))
        present.add(grade_id)
        notes.append(
            f"locked cell {grade_id!r} was missing or had lost its nbgrader metadata: restored"
        )


def _sanitise_cell(
    cell: dict,
    index: int,
    graded_copy: dict,
    copies: Counter,
    reference: Reference,
    notes: list[str],
) -> None:
    if "nbgrader" in cell["metadata"]:
        meta, grade_id = cell["metadata"]["nbgrader"], _grade_id(cell)
        if grade_id not in reference.cells:
            notes.append(
                f"cell with unknown nbgrader metadata {_short.repr(meta)[:80]}: metadata removed"
            )
            del cell["metadata"]["nbgrader"]
        elif graded_copy[grade_id] != index:
            notes.append(
                f"cell {grade_id!r} appears {copies[grade_id]} times: the last copy is graded, "
                f"the others run as plain cells"
            )
            del cell["metadata"]["nbgrader"]
        else:
            source = reference.cells[grade_id]
            if _grading(meta) != _grading(source.meta):
                notes.append(
                    f"cell {grade_id!r}: nbgrader metadata differed from the assignment's; restored"
                )
            cell["metadata"]["nbgrader"] = copy.deepcopy(source.meta)
            if source.source is not None and "".join(cell.get("source") or "") != source.source:
                notes.append(f"locked cell {grade_id!r} was edited: restored")
                cell["source"] = source.source
            if cell.get("cell_type") != source.cell_type:
                notes.append(f"locked cell {grade_id!r} changed type: restored")
                cell["cell_type"] = source.cell_type
    if cell.get("cell_type") == "code":
        if cell.get("outputs"):
            notes.append("stored outputs removed")
        cell["outputs"], cell["execution_count"] = [], None
    else:
        cell.pop("outputs", None)
        cell.pop("execution_count", None)


def _repair_cell(cell: dict, index: int, notes: list[str]) -> None:
    """Give each field of a kept cell the type nbformat 4 asks for (the wrong ones are noted)."""
    if not isinstance(cell.get("metadata", {}), dict):
        notes.append(f"cell {index}: metadata was {_type(cell['metadata'])}: cleared")
        cell["metadata"] = {}
    cell.setdefault("metadata", {})
    source = cell.setdefault("source", "")
    if isinstance(source, list) and _is_text(source):
        cell["source"] = "".join(source)
    elif not isinstance(source, str):
        notes.append(f"cell {index}: source was {_type(source)}, not text: emptied")
        cell["source"] = ""
    if "attachments" in cell and not isinstance(cell["attachments"], dict):
        notes.append(f"cell {index}: attachments were {_type(cell['attachments'])}: removed")
        del cell["attachments"]
    if "id" in cell and not isinstance(cell["id"], str):
        del cell["id"]


def _repair(nb, notes: list[str]) -> None:
    """Drop what cannot be a cell and retype the fields that can be fixed; raise MalformedNotebook
    otherwise."""
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise MalformedNotebook(f"not a Jupyter notebook: {'; '.join(type_problems(nb))}")
    kept = []
    for index, cell in enumerate(nb["cells"]):
        if not isinstance(cell, dict) or cell.get("cell_type") not in CELL_TYPES:
            notes.append(f"cell {index}: {cell_problems(cell)[0]}: removed")
            continue
        _repair_cell(cell, index, notes)
        kept.append(cell)
    nb["cells"][:] = kept
    if not isinstance(nb.get("metadata", {}), dict):
        notes.append(f"notebook metadata was {_type(nb['metadata'])}: cleared")
        nb["metadata"] = {}
    nb.setdefault("metadata", {})


def _summary(notes: list[str]) -> list[str]:
    unique = list(dict.fromkeys(notes))
    if len(unique) <= MAX_NOTES:
        return unique
    return unique[:MAX_NOTES] + [f"... and {len(unique) - MAX_NOTES} more changes"]


def sanitise(nb: dict, reference: Reference) -> list[str]:
    """Make ``nb`` safe to grade against ``reference`` (in place); returns what was changed, for the
    instructor.

    A cell whose grade_id the assignment has gets the assignment's nbgrader metadata back (so forged
    points, schema versions or flags count for nothing), and a locked one its text too; nbgrader
    metadata with an unknown grade_id is removed. A grade_id that appears more than once (a copied
    test cell) is graded once, in its last copy as nbgrader's DeduplicateIds would; the other copies
    become plain cells. Locked cells that are missing (deleted, or stripped of their metadata) are
    put back.

    Fields of the wrong type are retyped or dropped first (cells that are not cells are removed), so
    that one hand-edited notebook cannot crash the run for the others; a notebook whose cells are
    not a list raises :class:`MalformedNotebook`.
    """
    notes: list[str] = []
    _repair(nb, notes)
    copies = Counter(_grade_id(cell) for cell in nb["cells"])
    graded_copy = {_grade_id(cell): index for index, cell in enumerate(nb["cells"])}
    for index, cell in enumerate(nb["cells"]):
        _sanitise_cell(cell, index, graded_copy, copies, reference, notes)
    _restore_missing_locked_cells(nb, reference, notes)
    spec = reference.kernelspec
    if spec and nb["metadata"].get("kernelspec") != spec:
        notes.append("kernelspec differed from the assignment's; restored")
        nb["metadata"]["kernelspec"] = copy.deepcopy(spec)
    elif not isinstance(nb["metadata"].get("kernelspec", {}), dict):
        notes.append(f"kernelspec was {_type(nb['metadata']['kernelspec'])}: removed")
        del nb["metadata"]["kernelspec"]
    return _summary(notes)
