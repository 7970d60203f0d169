"""Keep the previous result until the new one is complete: a failed ``nbgrader generate_assignment``
or ``nbgrader autograde`` leaves the release or the graded submission it was replacing as it was.

nbgrader 0.9.6 (``BaseConverter.convert_notebooks``), for each assignment folder in turn:
``init_destination`` removes the old result (``--force``, or a submission newer than it) -> the
pre-convert hook -> ``init_assignment`` (the first use of the gradebook) -> each notebook converted
and written -> the post-convert hook. On any error ``_handle_failure`` removes what was written. So
a broken gradebook URL, a notebook that cannot be converted or a killed run left no result at all.
nbgrader's hooks cannot prevent it: the pre-convert hook runs after the removal (and its errors are
ignored), and no hook runs after a failure.

:class:`KeepWorkExporter` (``c.GenerateAssignment.exporter_class`` and
``c.Autograde.exporter_class``, set by :func:`cnnbook.grader.configure`) is nbgrader's notebook
exporter plus this. nbgrader makes it in ``BaseConverter.start``, after finding the notebooks and
before converting any, with the converter as its parent; it then wraps three steps of that one
converter (``convert_notebooks``, ``init_destination``, ``run_post_convert_hook``; nbgrader's
classes are not changed), which then:

1. open the gradebook before anything is touched: a URL that does not work stops the command with
   one line saying what is wrong and how to fix it (:func:`database_problem`);
2. just before nbgrader may remove a destination folder, move it, in one rename, to
   ``.<name>.previous-<pid>-<random>/`` beside it, and copy it back for nbgrader to decide from
   (:func:`move_aside`, :func:`copy_back`);
3. delete the previous version once the new result is complete (nbgrader's post-convert step,
   reached only on success), or put it back in place of whatever the failed conversion left
   (:func:`put_back`);
4. before starting on a folder, put back a previous version left aside by a run that was killed
   (:func:`recover`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from nbconvert.exporters import NotebookExporter

PREVIOUS = ".previous-"  # a previous version is kept in .<name>.previous-<pid>-<random>/<name>
_ACTIVE: set[Path] = set()  # the copies this process is keeping for a conversion in progress


class KeepWorkExporter(NotebookExporter):
    """nbgrader's notebook exporter; made by a converter, it makes that converter keep its previous
    results."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from nbgrader.converters.base import BaseConverter

        if isinstance(self.parent, BaseConverter):
            keep_previous_results(self.parent)


# ------------------------------------------------------------------- the gradebook, before anything


def _hide_password(text: str) -> str:
    return re.sub(r"(://[^:/@\s]*):\S*@", r"\1:***@", text)


def _one_line(error) -> str:
    """The first line of an error's message (a driver's hints and SQLAlchemy's links left out)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return re.sub(r"^\(\S+\)\s*", "", text).rstrip(".")


def database_problem(db_url: str, course_id: str = "default_course") -> str | None:
    """Why the gradebook at ``db_url`` cannot be used, in one line with the fix, or None.

    The gradebook is opened exactly as nbgrader opens it (a new one is created, as nbgrader would).
    """
    import sqlalchemy.exc
    from nbgrader.api import Gradebook

    if os.environ.get("NBGRADER_DB_URL") == db_url:
        where = "NBGRADER_DB_URL"
        fix_url = "correct NBGRADER_DB_URL (or unset it to use nbgrader_config.py's gradebook)"
    else:
        where = "nbgrader_config.py"
        fix_url = "correct c.CourseDirectory.db_url in nbgrader_config.py"
    try:
        Gradebook(db_url, course_id).close()
        return None
    except sqlalchemy.exc.ArgumentError as exc:  # unparsable, or no such kind of database
        what = f"is not a database URL ({_one_line(exc)})"
        fix = (
            f"{fix_url}: a URL reads dialect://user:password@host[:port]/database, "
            "e.g. postgresql://grader:secret@dbhost/cnn_course, or sqlite:////path/to/gradebook.db"
        )
    except ImportError as exc:  # the database's Python driver is not installed
        what = f"needs the Python package {exc.name or _one_line(exc)!r}, which is not installed"
        fix = f"install it in the environment that runs nbgrader, or {fix_url}"
    except (
        sqlalchemy.exc.DBAPIError
    ) as exc:  # the server is down, the file cannot be opened, wrong login...
        what = f"cannot be opened ({_one_line(exc.orig if exc.orig is not None else exc)})"
        fix = (
            "check that its server is running and that host, port, user, password and database "
            f"name (for SQLite, the file's folder) are right, or {fix_url}"
        )
    except (
        FileNotFoundError
    ) as exc:  # a new gradebook: nbgrader runs `alembic`, which is not on PATH
        what = f"cannot be created: the program {exc.filename!r} that nbgrader runs is not on PATH"
        fix = "run nbgrader with its environment's bin/ on PATH (activate the environment)"
    except Exception as exc:  # noqa: BLE001 - any other reason: said in one line, not as a traceback
        what = f"cannot be opened ({type(exc).__name__}: {_one_line(exc)})"
        fix = fix_url
    url = _hide_password(repr(db_url) if not db_url.strip() else db_url)
    return f"The gradebook {url} (from {where}) {_hide_password(what)}: {fix}. Nothing was changed."


# --------------------------------------------------------------------------- one destination folder


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def _owner(holder: Path) -> int | None:
    match = re.search(re.escape(PREVIOUS) + r"(\d+)-", holder.name)
    return int(match.group(1)) if match else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _holders(dest: Path) -> list[Path]:
    """The folders keeping a previous version of ``dest``, oldest first."""
    found = [
        p for p in dest.parent.glob(f".{dest.name}{PREVIOUS}*") if p.is_dir() and not p.is_symlink()
    ]
    return sorted(found, key=lambda p: p.stat().st_mtime)


def move_aside(dest: Path) -> Path | None:
    """Move ``dest`` (if it exists) into a new folder beside it, in one rename; that folder, or
    None."""
    if not dest.is_dir():
        return None
    holder = Path(tempfile.mkdtemp(prefix=f".{dest.name}{PREVIOUS}{os.getpid()}-", dir=dest.parent))
    _ACTIVE.add(holder)
    try:
        os.rename(dest, holder / dest.name)
    except BaseException:
        discard(holder)
        raise
    return holder


def copy_back(holder: Path, dest: Path) -> None:
    """Copy the version kept in ``holder`` to ``dest`` (nbgrader decides from it whether to convert
    again)."""
    shutil.copytree(holder / dest.name, dest, symlinks=True)


def discard(holder: Path | None) -> None:
    """The new result is complete: the previous version is not needed."""
    if holder is not None:
        _ACTIVE.discard(holder)
        shutil.rmtree(holder, ignore_errors=True)


def put_back(holder: Path, dest: Path) -> None:
    """Replace whatever is at ``dest`` by the previous version kept in ``holder``."""
    saved = holder / dest.name
    if os.path.lexists(
        saved
    ):  # else the process was stopped before it moved anything: dest is as it was
        _remove(dest)
        os.rename(saved, dest)
    discard(holder)


def recover(dest: Path, log=None) -> list[Path]:
    """Put back the previous version of ``dest`` that a stopped run left beside it. The folders of a
    run still going (its process exists) are left alone. Run it after killing nbgrader, too."""
    dest, used = Path(dest), []
    for holder in _holders(dest):
        pid = _owner(holder)
        if holder in _ACTIVE or (pid is not None and pid != os.getpid() and _running(pid)):
            continue
        kept = os.path.lexists(holder / dest.name)
        put_back(holder, dest)
        if kept and log is not None:
            log.warning(
                "Put back the previous version of %s, left aside by a run that was stopped", dest
            )
        used.append(holder)
    return used


# --------------------------------------------------------------------------- one converter's run


def keep_previous_results(converter) -> None:
    """Make this nbgrader converter check the gradebook first and keep each previous result until
    the new one is complete (see the module's description). Installed once per converter."""
    if getattr(converter, "_cnnbook_keepwork", False):
        return
    converter._cnnbook_keepwork = True
    keeper = _Keeper(converter)
    converter.init_destination = keeper.init_destination
    converter.run_post_convert_hook = keeper.run_post_convert_hook
    converter.convert_notebooks = keeper.convert_notebooks


class _Keeper:
    """The three wrapped steps of one converter, and what they share about its run."""

    def __init__(self, converter):
        self.converter = converter
        self.log = converter.log
        # nbgrader's own steps, called from the wrapped ones
        self._convert_notebooks = converter.convert_notebooks
        self._init_destination = converter.init_destination
        self._run_post_convert_hook = converter.run_post_convert_hook
        # the folder being converted now -> where its previous version is
        self.pending: dict[Path, Path | None] = {}
        # folders not converted because their previous version could not be kept
        self.unsafe: list[str] = []

    def settle(self) -> None:
        """The folder in progress did not complete: its previous version goes back in place."""
        for dest, holder in self.pending.items():
            if holder is None:
                continue
            try:
                put_back(holder, dest)
                self.log.warning("Kept the previous version of %s: the new one failed", dest)
            except OSError as exc:
                self.log.error(
                    "The previous version of %s is in %s: move it back by hand (%s)",
                    dest,
                    holder / dest.name,
                    exc,
                )
        self.pending.clear()

    def init_destination(self, assignment_id: str, student_id: str) -> bool:
        # nbgrader removes the destination on any error raised here: errors are caught, the folder
        # skipped.
        self.settle()
        dest = Path(os.path.normpath(self.converter._format_dest(assignment_id, student_id)))
        try:
            self.set_aside(dest)
        except OSError as exc:
            self.refuse(dest, exc)
            return False
        if self._init_destination(assignment_id, student_id):
            return True
        discard(self.pending.pop(dest))  # skipped: nothing was removed
        return False

    def set_aside(self, dest: Path) -> None:
        """Move the previous version of ``dest`` aside, and copy it back for nbgrader to decide."""
        recover(dest, self.log)
        self.pending[dest] = move_aside(dest)
        if self.pending[dest] is not None:
            copy_back(self.pending[dest], dest)
            self.log.info("The previous version of %s is kept until the new one is complete", dest)

    def refuse(self, dest: Path, exc: OSError) -> None:
        """The previous version of ``dest`` could not be kept: put it back, and skip the folder."""
        holder = self.pending.pop(dest, None)
        try:
            if holder is not None:
                put_back(holder, dest)
        except OSError:  # left where it is: the next run puts it back (recover)
            self.log.error("The previous version of %s is in %s", dest, holder / dest.name)
        self.unsafe.append(f"{dest} ({exc})")
        self.log.error(
            "Could not keep the previous version of %s (%s): not converted, left as it was",
            dest,
            exc,
        )

    def run_post_convert_hook(self) -> None:
        for holder in self.pending.values():
            discard(holder)
        self.pending.clear()
        self._run_post_convert_hook()

    def convert_notebooks(self) -> None:
        from nbgrader.converters.base import NbGraderException

        converter = self.converter
        if not getattr(converter, "no_database", False):
            problem = database_problem(converter.coursedir.db_url, converter.coursedir.course_id)
            if problem is not None:
                self.log.error(problem)
                raise NbGraderException(problem)
        try:
            self._convert_notebooks()
        finally:
            self.settle()
        if self.unsafe:
            raise NbGraderException(
                f"Not converted, their previous version could not be kept: {'; '.join(self.unsafe)}"
            )
