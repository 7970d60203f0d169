"""Files as bytes: a submission read safely by the client, and folders replaced only when
complete."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

from cnnbook.grader.submission import file_problem

MAX_FILE_BYTES = 20 * 2**20  # as a notebook's cap: a larger file is left out, with a note
MAX_FILES = 200


def read_submission(
    folder: Path, max_bytes: int = MAX_FILE_BYTES
) -> tuple[dict[str, bytes], dict[str, str]]:
    """The regular files under ``folder`` as {relative path: bytes}, and {relative path: note} for
    what was left out.

    Symbolic links and special files (named pipes, devices, sockets) are never followed or opened:
    the client may run as root, and a link could point at the gradebook or at another student's
    work.
    """
    files, left_out = {}, {}
    for path in _walk(folder):
        rel = path.relative_to(folder).as_posix()
        problem = file_problem(path, max_bytes)
        if problem is None and len(files) >= MAX_FILES:
            problem = f"is one file more than the {MAX_FILES} the grader reads"
        data = None if problem else _read_regular(path, max_bytes)
        if data is None:
            left_out[rel] = f"{rel!r} {problem or 'changed while it was read'}: left out"
        else:
            files[rel] = data
    return files, left_out


def _walk(folder: Path):
    """Every entry under ``folder`` but the folders themselves (a folder named like a notebook is an
    entry too); links to folders are not followed."""
    for path in sorted(folder.iterdir()):
        if path.is_dir() and not path.is_symlink() and not path.name.endswith(".ipynb"):
            yield from _walk(path)
        else:
            yield path


def _read_regular(path: Path, max_bytes: int) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = f.read(max_bytes + 1)
    return data if len(data) <= max_bytes else None


def content_hash(files: dict[str, bytes], *extra: bytes) -> str:
    """One hash of the files' names and contents (and ``extra``, e.g. the assignment's own hash)."""
    digest = hashlib.sha256()
    for name in sorted(files):
        for part in (name.encode(), files[name]):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    for part in extra:
        digest.update(part)
    return digest.hexdigest()


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    """Write {relative path: bytes} under ``root``; paths that leave ``root`` are refused."""
    base = root.resolve()
    for name, data in files.items():
        path = (base / name).resolve()
        if base not in path.parents:
            raise ValueError(f"refusing to write {name!r} outside {root}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def read_tree(root: Path) -> dict[str, bytes]:
    """The regular files under ``root`` as {relative path: bytes} (links are not followed)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def replace_folder(folder: Path, files: dict[str, bytes]) -> None:
    """Make ``folder`` hold exactly ``files``; the old contents stay until the new ones are
    complete.

    The new folder is written beside the old one, then the two are swapped by renames: an
    interrupted run leaves the old folder or the new one, never a half-written one.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=f".{folder.name}.new-", dir=folder.parent))
    try:
        write_tree(new, files)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    old = folder.parent / f".{folder.name}.old-{new.name.rsplit('-', 1)[-1]}"
    if folder.exists():
        folder.rename(old)
    try:
        new.rename(folder)
    except BaseException:
        if old.exists():
            old.rename(folder)
        shutil.rmtree(new, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_file(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (a temporary file beside it, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):  # not when Ctrl-C came just after the rename
            os.unlink(tmp)
        raise
