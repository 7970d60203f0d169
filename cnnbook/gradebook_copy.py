"""Copy a whole nbgrader gradebook into another database, e.g. the SQLite file into PostgreSQL.

Run from anywhere::

    python -m cnnbook.gradebook_copy sqlite:///gradebook.db \\
        postgresql://grader:secret@dbhost/cnn_course

The target gets nbgrader's own tables (created by :class:`nbgrader.api.Gradebook`, which also
records nbgrader's schema version), then every row of the source, table by table in foreign-key
order, in one transaction: either everything is copied or nothing is. A target that already holds
grading data, a source that is not an nbgrader gradebook of this nbgrader version, and a malformed
or unreachable URL are refused with one line saying what to do (exit code 2).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

GRADING_TABLES = (
    "student",
    "assignment",
    "submitted_assignment",
)  # any row here: the target is in use


class Refused(Exception):
    """A reason not to copy, as one line for the user."""


def first_line(error: BaseException) -> str:
    """The first line of a database error's message, without SQLAlchemy's links and SQL."""
    message = str(getattr(error, "orig", None) or error).strip()
    return message.splitlines()[0] if message else type(error).__name__


def open_engine(url: str, role: str) -> Engine:
    """An engine for ``url`` whose server answers; refuses malformed URLs, missing drivers and
    files."""
    try:
        parsed = make_url(url)
        if (
            parsed.get_backend_name() == "sqlite"
            and parsed.database not in (None, "", ":memory:")
            and role == "source"
            and not Path(parsed.database).is_file()
        ):
            raise Refused(
                f"the {role} gradebook {parsed.database} does not exist: check the path "
                "(sqlite:///relative/path.db or sqlite:////absolute/path.db)"
            )
        engine = create_engine(parsed)
        with engine.connect():
            pass
        return engine
    except (ArgumentError, NoSuchModuleError, ValueError) as error:
        raise Refused(
            f"the {role} URL is not a database URL ({first_line(error)}): "
            "write it as sqlite:///gradebook.db or postgresql://user:password@host/database"
        ) from None
    except SQLAlchemyError as error:
        shown = make_url(url).render_as_string(hide_password=True)
        raise Refused(
            f"cannot connect to the {role} {shown} ({first_line(error)}): check host, port, user, "
            "password and database name, and that the server is running"
        ) from None


def nbgrader_schema_version() -> str:
    """The schema version this nbgrader writes (its alembic head, read in this process: nbgrader's
    own ``get_alembic_version`` runs ``alembic`` in a child process, which takes seconds)."""
    import nbgrader
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(Path(nbgrader.__file__).parent / "alembic")).get_current_head()


def check_source(engine: Engine) -> None:
    """Refuse a source that lacks nbgrader's tables or columns, or was made by another nbgrader
    version."""
    from nbgrader.api import Base

    found = inspect(engine)
    tables = set(found.get_table_names())
    for table in Base.metadata.sorted_tables:
        columns = (
            {c["name"] for c in found.get_columns(table.name)} if table.name in tables else set()
        )
        if not {c.name for c in table.columns} <= columns:
            raise Refused(
                f"the source is not an nbgrader gradebook (table {table.name!r} is missing or "
                "incomplete): give the URL of the gradebook nbgrader writes, e.g. "
                "sqlite:///gradebook.db"
            )
    with engine.connect() as conn:
        version = (
            conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            if "alembic_version" in tables
            else None
        )
    current = nbgrader_schema_version()
    if version != current:
        raise Refused(
            f"the source gradebook has schema version {version}, this nbgrader writes {current}: "
            "run `nbgrader db upgrade` on the source first"
        )


def create_tables(url: str) -> None:
    """nbgrader's tables in the target, as nbgrader creates them (an empty course id adds no course
    row)."""
    from nbgrader.api import Gradebook

    Gradebook(url, course_id="").close()


def source_rows(conn: Connection, table) -> list[dict]:
    """Every row of ``table`` in the source, typed by nbgrader's own column definitions."""
    return [dict(row._mapping) for row in conn.execute(select(table))]


def course_rows(
    target: Connection, course, rows: list[dict], assignments: list[dict]
) -> list[dict]:
    """The source's courses plus any course id its assignments name (gradebooks made with an empty
    course id have none: SQLite does not enforce the key), minus those the target already has."""
    present = {row.id for row in target.execute(select(course.c.id))}
    wanted = [row["id"] for row in rows] + [row["course_id"] for row in assignments]
    return [{"id": course_id} for course_id in dict.fromkeys(wanted) if course_id not in present]


def copy_rows(source: Engine, target: Engine) -> dict[str, int]:
    """Copy every table in foreign-key order in one transaction of the target; {table: rows
    copied}."""
    from nbgrader.api import Base

    counts = {}
    with source.connect() as src, target.begin() as dst:
        in_use = {
            name: dst.execute(text(f"SELECT count(*) FROM {name}")).scalar()
            for name in GRADING_TABLES
        }
        if any(in_use.values()):
            held = ", ".join(f"{n} {name} rows" for name, n in in_use.items() if n)
            raise Refused(
                f"the target already holds grading data ({held}): copy into an empty database "
                "(e.g. dropdb and createdb it again)"
            )
        tables = Base.metadata.tables
        for table in Base.metadata.sorted_tables:
            rows = source_rows(src, table)
            if table.name == "course":
                rows = course_rows(dst, table, rows, source_rows(src, tables["assignment"]))
            if rows:
                dst.execute(table.insert(), rows)
            counts[table.name] = len(rows)
    return counts


def copy_gradebook(from_url: str, to_url: str) -> dict[str, int]:
    """Check both databases, create nbgrader's tables in the target and copy every row; {table:
    rows}."""
    source = open_engine(from_url, "source")
    target = open_engine(to_url, "target")
    try:
        check_source(source)
        create_tables(to_url)
        return copy_rows(source, target)
    finally:
        source.dispose()
        target.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cnnbook.gradebook_copy", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "from_url", metavar="FROM_URL", help="the gradebook to copy, e.g. sqlite:///gradebook.db"
    )
    parser.add_argument(
        "to_url",
        metavar="TO_URL",
        help="an empty database, e.g. postgresql://grader:secret@dbhost/cnn_course",
    )
    args = parser.parse_args(argv)
    # nbgrader runs `alembic` from PATH to learn its schema version: this environment's, even when
    # not activated
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    try:
        counts = copy_gradebook(args.from_url, args.to_url)
    except Refused as reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    except SQLAlchemyError as error:
        print(f"error: copying failed, nothing was copied: {first_line(error)}", file=sys.stderr)
        return 1
    for name, n in counts.items():
        print(f"{name:22} {n:6} rows")
    print(
        f"copied {sum(counts.values())} rows into "
        f"{make_url(args.to_url).render_as_string(hide_password=True)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
