"""The assignment as a worker needs it, made once per batch on the client and sent as bytes.

A worker shares no folder with the client. It gets a small course: the course's
``nbgrader_config.py``, the assignment's source folder, its release (generated here by ``nbgrader
generate_assignment``) and a SQLite gradebook that knows the assignment. Each task unpacks it into a
private temporary folder.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cnnbook.batch.files import read_tree

GRADEBOOK = "gradebook.db"


@dataclass(frozen=True)
class Template:
    files: dict[str, bytes]
    digest: str  # of the configuration and the source: a change here regrades everyone
    folders: dict[str, str]  # nbgrader's folder names in this course


def source_digest(course: Path, folders: dict[str, str], assignment: str) -> str:
    """A hash of the course's configuration and the assignment's source folder: when it changes,
    every student is regraded."""
    source = _source_folder(course, folders, assignment)
    files = {
        f"source/{name}": data
        for name, data in read_tree(source).items()
        if ".ipynb_checkpoints" not in name and "__pycache__" not in name
    }
    config = course / "nbgrader_config.py"
    if config.is_file():
        files[config.name] = config.read_bytes()
    return _digest(files)


def build_template(course: Path, folders: dict[str, str], assignment: str) -> Template:
    """Generate the assignment from ``course``'s source into a temporary course and read it back."""
    source = _source_folder(course, folders, assignment)
    with tempfile.TemporaryDirectory(prefix="cnnbook-template-") as tmp:
        root = Path(tmp)
        config = course / "nbgrader_config.py"
        if config.is_file():
            shutil.copy2(config, root / config.name)
        shutil.copytree(
            source,
            root / folders["source_directory"] / assignment,
            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"),
        )
        _generate(root, assignment)
        if not (root / folders["release_directory"] / assignment).is_dir():
            raise SystemExit(
                f"error: generating {assignment} in a temporary copy of the course made no release "
                f"folder {folders['release_directory']}/{assignment}; check nbgrader_config.py"
            )
        return Template(read_tree(root), source_digest(course, folders, assignment), folders)


def _source_folder(course: Path, folders: dict[str, str], assignment: str) -> Path:
    source = course / folders["source_directory"] / assignment
    if not source.is_dir():
        raise SystemExit(
            f"error: no source folder {source} for assignment {assignment!r}. "
            f"Fix: run in the course folder and give an assignment that exists there."
        )
    return source


def _generate(root: Path, assignment: str) -> None:
    """nbgrader's generate_assignment, in this process (no second start-up of nbgrader)."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.utils import capture_log

    new_gradebook(root / GRADEBOOK)
    app = course_app(GenerateAssignment, root, assignment)
    app.force, app.create_assignment = True, True
    outcome = capture_log(app)
    if not outcome["success"]:
        raise SystemExit(
            f"error: nbgrader generate_assignment {assignment} failed in a temporary copy of the "
            f"course, so nothing was graded:\n{outcome.get('log', '')[-2000:]}"
            f"{outcome.get('error', '')[-2000:]}"
        )


def new_gradebook(path: Path) -> None:
    """An empty nbgrader gradebook at ``path``, as nbgrader makes one, but stamped with the schema
    version read in this process: nbgrader asks a new ``alembic`` process for it, about 3 s per
    batch."""
    from alembic.script import ScriptDirectory
    from nbgrader.api import Base
    from nbgrader.dbutil import ALEMBIC_DIR
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{path}")
    try:
        Base.metadata.create_all(engine)
        with engine.begin() as db:
            db.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            db.execute(
                text("INSERT INTO alembic_version (version_num) VALUES (:head)"),
                {"head": ScriptDirectory(ALEMBIC_DIR).get_current_head()},
            )
    finally:
        engine.dispose()


def course_app(
    converter,
    root: Path,
    assignment: str,
    student: str | None = None,
    overrides: dict | None = None,
):
    """An nbgrader converter (GenerateAssignment, Autograde) for the small course at ``root``,
    configured by the course's own nbgrader_config.py, with that course's folder and SQLite
    gradebook whatever the configuration or the environment (NBGRADER_DB_URL) says."""
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = Config()
    if (root / "nbgrader_config.py").is_file():
        config.merge(PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config())
    config.merge(Config(overrides or {}))
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.db_url = f"sqlite:///{root / GRADEBOOK}"
    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id = assignment
    if student is not None:
        coursedir.student_id = student
    return converter(coursedir=coursedir, config=config)


def _digest(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()
