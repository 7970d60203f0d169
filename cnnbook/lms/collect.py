"""What the Canvas and Moodle importers share: ``nbgrader zip_collect`` collector plugins that read
every extracted file name once, then settle, per student, resubmissions and misnamed notebooks.

nbgrader's own collector matches one file name at a time with a regular expression and fails the
whole import on two files of one student with the same name and no time. Here the subclass parses a
name into a :class:`Found`; this base class then keeps, for each student and notebook, the newest
file (by submission time, then by the LMS's file id), and when the assignment has one notebook and
a student handed in one notebook under another name (``Convolution (2).ipynb``), collects it under
the assignment's name, so plain ``nbgrader autograde`` finds it. Each decision is logged once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from nbgrader.plugins import FileNameCollectorPlugin

# Canvas and Moodle rename a re-uploaded file "name-1.ipynb" / "name (1).ipynb".
COPY_SUFFIX = re.compile(r"^(?P<stem>.+?)(?:-\d+| ?\(\d+\))$")


@dataclass
class Found:
    """One submitted file as the LMS named it."""

    student_id: str
    file_id: str  # the file's name as the student uploaded it
    timestamp: datetime | None = None  # naive UTC, nbgrader's convention
    order: int = 0  # the LMS's file id: a later upload has a larger one


class LmsCollector(FileNameCollectorPlugin):
    """Base class: subclasses define :meth:`parse` (a path in the extracted folder -> Found)."""

    def parse(self, path: Path, extracted: Path) -> Found | None:
        raise NotImplementedError

    # ------------------------------------------------------------------ nbgrader's entry point

    def collect(self, submitted_file: str):
        plan = self._plan()
        found = plan.get(os.path.abspath(submitted_file))
        if found is None:
            return None
        info = {"student_id": found.student_id, "file_id": found.file_id}
        if found.timestamp is not None:
            info["timestamp"] = found.timestamp
        return info

    # ------------------------------------------------------------------ the plan, made once

    @property
    def assignment(self) -> str:
        return self.parent.coursedir.assignment_id

    def extracted_dir(self) -> Path:
        return Path(self.parent._format_collect_path(self.parent.extracted_directory))

    def released(self) -> list[str]:
        coursedir = self.parent.coursedir
        folder = Path(coursedir.format_path(coursedir.release_directory, ".", self.assignment))
        return sorted(p.name for p in folder.glob("*.ipynb"))

    def _plan(self) -> dict[str, Found]:
        if getattr(self, "_planned", None) is None:
            extracted = self.extracted_dir()
            found = {}
            for path in sorted(extracted.rglob("*")):
                if path.is_file() and path.suffix in self.valid_ext:
                    item = self.parse(path, extracted)
                    if item is None:
                        self.log.warning("Skipped %s: not a file name of this LMS", path.name)
                    else:
                        found[str(path.absolute())] = item
            self._planned = self._settle(found, self.released())
        return self._planned

    def _settle(self, found: dict[str, Found], released: list[str]) -> dict[str, Found]:
        by_student: dict[str, list[str]] = {}
        for path, item in found.items():
            item.file_id = self._notebook_name(item.file_id, released)
            by_student.setdefault(item.student_id, []).append(path)
        kept = {}
        for student, paths in by_student.items():
            only = found[paths[0]]
            if len(released) == 1 and len(paths) == 1 and only.file_id not in released:
                self.log.warning(
                    "%s handed in %r: collected as %s, the assignment's notebook",
                    student,
                    only.file_id,
                    released[0],
                )
                only.file_id = released[0]
            kept.update(self._newest(student, paths, found))
        return kept

    def _notebook_name(self, file_id: str, released: list[str]) -> str:
        """``convolution-1.ipynb`` (the LMS's name for a re-upload) -> ``convolution.ipynb``."""
        stem, ext = os.path.splitext(file_id)
        match = COPY_SUFFIX.match(stem)
        if file_id not in released and match and match["stem"] + ext in released:
            return match["stem"] + ext
        return file_id

    def _newest(self, student: str, paths: list[str], found: dict[str, Found]) -> dict:
        newest: dict[str, str] = {}
        for path in paths:
            item = found[path]
            rank = (item.timestamp or datetime.min, item.order)
            if item.file_id in newest:
                other = found[newest[item.file_id]]
                older = path if rank < (other.timestamp or datetime.min, other.order) else None
                drop = older or newest[item.file_id]
                self.log.warning(
                    "%s handed in %s twice: kept the later upload, skipped %s",
                    student,
                    item.file_id,
                    Path(drop).name,
                )
                if older:
                    continue
            newest[item.file_id] = path
        return {path: found[path] for path in newest.values()}
