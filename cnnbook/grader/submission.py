"""Reading a submitted file safely: its type and size before it is opened, then its JSON.

A submission is untrusted: a named pipe in place of the notebook would block a reader for ever, a
device would never end, a huge file or deeply nested JSON would exhaust memory or the stack.
:func:`file_problem` and :func:`_read_notebook` check all of that with bounded work;
:func:`screen_submission` applies the file checks in plain ``nbgrader autograde`` (its
``pre_convert_hook``), and ``cnnbook.grade_batch`` uses them before grading each student.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import nbformat

from cnnbook.grader.sanitise import type_problems

MAX_NOTEBOOK_BYTES = (
    20 * 2**20
)  # a notebook is rejected unread above this (stored outputs count too)
MAX_JSON_DEPTH = 100  # a notebook nests about 8 levels; far deeper JSON is rejected


def file_problem(path: Path, max_bytes: int) -> str | None:
    """Why the file at ``path`` cannot be read as a notebook without risk, or None.

    Only ``lstat`` is used: opening a named pipe would wait for a writer forever, and reading a
    device or a huge file would never end or fill the memory.
    """
    try:
        info = path.lstat()
    except OSError as exc:
        return f"cannot be examined ({exc.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return f"is {_file_kind(info.st_mode)}, not a file"
    if info.st_size > max_bytes:
        return f"is {info.st_size} bytes, more than the cap of {max_bytes} bytes"
    return None


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a unix socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return kind
    return "a special file"


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    """At most ``max_bytes`` + 1 bytes of a regular file (checked again once open: it may have
    changed)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path.name} is no longer a regular file")
        return f.read(max_bytes + 1)


def _depth(value) -> int:
    """How deeply ``value`` nests (without recursion: it may nest deeper than Python's stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if deepest > MAX_JSON_DEPTH:
                return deepest
            stack.extend(
                (child, level + 1) for child in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


def _parse(data: bytes) -> tuple[object, str | None]:
    """(JSON value, None) or (None, why not)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (bad byte at offset {exc.start})"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return (
            None,
            f"not valid JSON (truncated or edited by hand?): {exc.msg} at line {exc.lineno}",
        )
    except RecursionError:
        return None, f"JSON nested more than {MAX_JSON_DEPTH} levels deep"
    if _depth(value) > MAX_JSON_DEPTH:
        return None, f"JSON nested more than {MAX_JSON_DEPTH} levels deep"
    return value, None


def _read_notebook(
    path: Path, max_bytes: int = MAX_NOTEBOOK_BYTES
) -> tuple[dict | None, str | None, list[str]]:
    """(notebook, None, notes) or (None, why it cannot be graded, []).

    A notebook saved by an old Jupyter (nbformat 3 or older) is converted to version 4, as nbgrader
    itself would on reading it: an old client is not cheating. Fields of the wrong type (metadata
    that is a list, a source that is a number...) reject the notebook, with each one named.
    """
    problem = file_problem(path, max_bytes)
    if problem is not None:
        return None, problem, []
    data = _read_bytes(path, max_bytes)
    if len(data) > max_bytes:  # it grew after it was examined
        return None, f"is more than the cap of {max_bytes} bytes", []
    nb, problem = _parse(data)
    if problem is not None:
        return None, problem, []
    notes = []
    version = nb.get("nbformat") if isinstance(nb, dict) else None
    if isinstance(version, int) and 1 <= version < 4:
        try:
            nb = nbformat.convert(nbformat.from_dict(nb), 4)
        except Exception as exc:  # noqa: BLE001 - any malformed old notebook: reject it with the reason
            return (
                None,
                f"an nbformat {version} notebook that cannot be converted to version 4 ({exc!r})",
                [],
            )
        notes.append(
            f"nbformat {version} notebook (saved by an old Jupyter) converted to version 4"
        )
    if not isinstance(nb, dict) or nb.get("nbformat") != 4:
        return None, "not a Jupyter notebook (nbformat 4)", []
    problems = type_problems(nb)
    if problems:
        more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
        return None, f"not a well-formed notebook: {'; '.join(problems[:5])}{more}", []
    return nb, None, notes


def _remove_links_and_special_files(student_dir: Path, keep: set[str]) -> list[str]:
    """Remove symbolic links, and special files other than the notebooks (``keep``), from a
    submission.

    nbgrader copies a submission as root and follows symbolic links: a link to the gradebook or to
    solutions/ would arrive in the graded folder as a readable copy. It copies the other files too:
    a named pipe would stop it, a device would be read for ever. A submission is regular files.
    """
    notes = []
    for folder, dirs, files in os.walk(student_dir):
        for name in sorted(dirs + files):
            path = Path(folder) / name
            mode = path.lstat().st_mode
            shown = str(path.relative_to(student_dir))
            if stat.S_ISLNK(mode):
                notes.append(
                    f"symbolic link {shown!r} -> {os.readlink(path)!r} removed "
                    f"(a submission may not link to files outside it)"
                )
                path.unlink()
            elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)) and not (
                folder == str(student_dir) and name in keep
            ):
                notes.append(
                    f"{shown!r}, {_file_kind(mode)}, removed (a submission is regular files)"
                )
                path.unlink()
    return notes


def screen_submission(
    assignment=None, student=None, notebooks=(), max_bytes: int = MAX_NOTEBOOK_BYTES
) -> None:
    """nbgrader's ``pre_convert_hook`` (``c.Autograde.pre_convert_hook``): the file checks of the
    batch for plain ``nbgrader autograde``, which would otherwise wait for ever on a named pipe.

    Links and special files beside the notebooks are removed; a notebook that is not a regular file
    or is larger than ``max_bytes`` is renamed ``<name>.rejected``, so that nbgrader fails that
    student (file not found) and grades the others. nbgrader ignores what the hook raises.
    """
    folders = {Path(path).parent for path in notebooks}
    for folder in folders:
        for note in _remove_links_and_special_files(folder, {Path(p).name for p in notebooks}):
            print(f"[cnnbook] {folder}: {note}", file=sys.stderr)
    for path in map(Path, notebooks):
        problem = file_problem(path, max_bytes) if os.path.lexists(path) else None
        if problem is not None:
            path.rename(path.with_name(path.name + ".rejected"))
            print(
                f"[cnnbook] {path} {problem}: renamed {path.name}.rejected, not graded",
                file=sys.stderr,
            )
