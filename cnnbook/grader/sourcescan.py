"""The "numpy only" rule, checked by reading the submitted source in the grader's process.

TensorFlow, Keras, SciPy and the like cannot even be imported in the grading sandbox of a numpy-only
assignment (``HIDDEN_PACKAGES``); what numpy itself offers is checked here: the banned helpers
(``sliding_window_view``, ``as_strided``) used by a function, by a function it calls, or by code at
the top level of any cell the student wrote. Code that builds names at run time (``getattr`` with a
computed name, ``eval``, ``exec``, ``__import__``, ``importlib``) is reported too: it would hide a
banned call from this reading.
"""

from __future__ import annotations

import ast

BANNED_NAMES = {
    "sliding_window_view": "numpy's sliding_window_view",
    "as_strided": "numpy's as_strided",
    "stride_tricks": "numpy's stride_tricks",
    "_stride_tricks_impl": "numpy's stride_tricks",
}
BANNED_MODULES = ("tensorflow", "keras", "scipy", "torch", "jax", "cv2", "skimage", "numba")
DYNAMIC = {
    "eval",
    "exec",
    "compile",
    "__import__",
    "importlib",
    "import_module",
    "globals",
    "vars",
    "__builtins__",
    "__dict__",
    "__getattribute__",
    "attrgetter",
    "methodcaller",
    "modules",
}


def _python(source: str) -> ast.Module | None:
    """The cell's code as Python (IPython magics translated), or None when it does not parse."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        source = TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - keep the raw text
        pass
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _constant_getattrs(node: ast.AST) -> set[int]:
    """ids of ``getattr`` names called with a literal attribute name (those hide nothing)."""
    return {
        id(sub.func)
        for sub in ast.walk(node)
        if isinstance(sub, ast.Call)
        and isinstance(sub.func, ast.Name)
        and sub.func.id == "getattr"
        and len(sub.args) >= 2
        and isinstance(sub.args[1], ast.Constant)
        and isinstance(sub.args[1].value, str)
    }


def _import_uses(stmt: ast.Import | ast.ImportFrom) -> set[str]:
    modules = (
        [alias.name for alias in stmt.names]
        if isinstance(stmt, ast.Import)
        else [stmt.module or ""]
    )
    found = {f"the {m.split('.')[0]} package" for m in modules if m.split(".")[0] in BANNED_MODULES}
    parts = {part for m in modules for part in m.split(".")} | {a.name for a in stmt.names}
    return found | {BANNED_NAMES[part] for part in parts if part in BANNED_NAMES}


def _uses(node: ast.AST) -> set[str]:
    """What ``node`` uses that the rule forbids, in words."""
    found, literal_getattrs = set(), _constant_getattrs(node)
    for sub in ast.walk(node):
        name = (
            sub.id
            if isinstance(sub, ast.Name)
            else sub.attr
            if isinstance(sub, ast.Attribute)
            else None
        )
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            found |= {words for banned, words in BANNED_NAMES.items() if banned in sub.value}
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            found |= _import_uses(sub)
        if name in BANNED_NAMES:
            found.add(BANNED_NAMES[name])
        elif name in DYNAMIC or (name == "getattr" and id(sub) not in literal_getattrs):
            found.add(f"{name} (names built at run time hide what is called)")
    return found


def _bound_names(stmt: ast.stmt) -> set[str]:
    """The names a top-level statement binds (a def, a class, an assignment, an import...)."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {(alias.asname or alias.name).split(".")[0] for alias in stmt.names}
    return {
        n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }


def _statements(cells: list[dict]) -> list[ast.stmt]:
    """The top-level statements of the cells the student wrote (locked cells are the
    assignment's)."""
    statements = []
    for cell in cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("locked"):
            continue
        tree = _python("".join(cell.get("source", "")))
        if tree is not None:
            statements += tree.body
    return statements


def banned_uses(cells: list[dict], function: str) -> dict[str, set[str]]:
    """Where ``function`` breaks the numpy-only rule: {where: what}, empty when it does not.

    ``cells`` are the submission's code cells (``source`` and ``metadata``). "Where" is "top-level
    code" or a name: ``function``, or anything it or the top-level code reaches, following every
    name from the statements that bind it (a helper it calls, an alias ``conv2d = helper``, a dict
    or class of helpers).
    """
    statements = _statements(cells)
    binders: dict[str, list[ast.stmt]] = {}
    for stmt in statements:
        for name in _bound_names(stmt):
            binders.setdefault(name, []).append(stmt)
    found: dict[str, set[str]] = {}
    top = [
        s
        for s in statements
        if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    ]
    uses = set().union(*(_uses(stmt) for stmt in top)) if top else set()
    if uses:
        found["top-level code"] = uses
    # Top-level code runs too, and can rebind the function (``conv2d.__code__ = helper.__code__``):
    # whatever it names is followed as well.
    todo = [function] + [
        n.id for stmt in top for n in ast.walk(stmt) if isinstance(n, ast.Name) and n.id in binders
    ]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for stmt in binders.get(name, []):
            uses = _uses(stmt)
            if uses:
                found.setdefault(name, set()).update(uses)
            todo += [n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and n.id in binders]
    return found


def numpy_only_message(cells: list[dict], function: str) -> str | None:
    """None when ``function`` keeps to numpy; else what it uses, for the feedback."""
    found = banned_uses(cells, function)
    if not found:
        return None
    parts = [f"{where} uses {', '.join(sorted(what))}" for where, what in sorted(found.items())]
    return (
        f"{function} must be written with numpy indexing and loops only: "
        + "; ".join(parts)
        + " (not allowed in this problem set)"
    )
