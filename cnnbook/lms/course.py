"""The course as the LMS commands see it: folders, gradebook and due dates from nbgrader_config.py,
one-line errors, and files written whole (a temporary file renamed into place)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cnnbook.batch.files import write_file


class LmsError(Exception):
    """Bad input: printed as one line (what is wrong, how to fix it), exit code 2."""


@dataclass
class Course:
    root: Path
    db_url: str
    course_id: str
    submitted: Path
    feedback: Path
    release: Path
    config: object = field(repr=False, default=None)

    def downloaded(self, assignment: str) -> Path:
        return self.root / "downloaded" / assignment

    def exports(self, assignment: str) -> Path:
        return self.root / "exports" / assignment


def load_course(root: Path) -> Course:
    """Read ``root/nbgrader_config.py`` as nbgrader does (its defaults where it says nothing)."""
    from traitlets.config.loader import PyFileConfigLoader

    root = Path(root).resolve()
    if not (root / "nbgrader_config.py").is_file():
        raise LmsError(
            f"{root} has no nbgrader_config.py: run the command in the course folder "
            "(the project root) or pass --course"
        )
    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    section = config.get("CourseDirectory", {})
    base = Path(section.get("root", root))
    return Course(
        root=base,
        db_url=section.get("db_url", f"sqlite:///{base / 'gradebook.db'}"),
        course_id=section.get("course_id", "default_course"),
        submitted=base / section.get("submitted_directory", "submitted"),
        feedback=base / section.get("feedback_directory", "feedback"),
        release=base / section.get("release_directory", "release"),
        config=config,
    )


def write_whole(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (the batch runner's writer)."""
    write_file(path, data)
