"""The assignment as a worker needs it, made once per batch on the client and sent as bytes.

A worker shares no folder with the client. It gets a small course: the course's ``nbgrader_config.py``,
the assignment's source folder, its release (generated here by ``nbgrader generate_assignment``) and a
SQLite gradebook that knows the assignment. Each task unpacks it into a private temporary folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
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
    files = {f"source/{name}": data for name, data in read_tree(source).items()
             if ".ipynb_checkpoints" not in name and "__pycache__" not in name}
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
        shutil.copytree(source, root / folders["source_directory"] / assignment,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        _generate(root, assignment)
        if not (root / folders["release_directory"] / assignment).is_dir():
            raise SystemExit(f"error: generating {assignment} in a temporary copy of the course made no release "
                             f"folder {folders['release_directory']}/{assignment}; check nbgrader_config.py")
        return Template(read_tree(root), source_digest(course, folders, assignment), folders)


def _source_folder(course: Path, folders: dict[str, str], assignment: str) -> Path:
    source = course / folders["source_directory"] / assignment
    if not source.is_dir():
        raise SystemExit(f"error: no source folder {source} for assignment {assignment!r}. "
                         f"Fix: run in the course folder and give an assignment that exists there.")
    return source


def _generate(root: Path, assignment: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NBGRADER_DB_URL"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--force",
                           f"--CourseDirectory.root={root}", f"--CourseDirectory.db_url=sqlite:///{root / GRADEBOOK}"],
                          cwd=root, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: nbgrader generate_assignment {assignment} failed in a temporary copy of "
                         f"the course, so nothing was graded:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def _digest(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()
