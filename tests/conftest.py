"""Shared fixtures: the built book (built once per test session), the values its pages glue, a
headless browser and a PostgreSQL server."""

from __future__ import annotations

import json
import os
from pathlib import Path

# As the Makefile does, before anything imports TensorFlow: quiet logs, and no oneDNN kernels,
# which reorder sums: the tests compare TensorFlow's results with numpy's digit by digit.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import pytest
from helpers import CHROMIUM, CHROMIUM_ARGS

from cnnbook import build as book_build

ROOT = Path(__file__).resolve().parent.parent


class BuiltBook:
    """The result of one ``jupyter-book build`` of the whole book."""

    def __init__(self, returncode: int):
        self.returncode = returncode
        self.html = book_build.HTML
        self.executed = book_build.EXECUTED
        self.cache = book_build.BUILD / ".jupyter_cache"

    def notebook(self, page: str) -> dict:
        """The executed notebook of ``book/<page>.md``, outputs included, from the build's
        jupyter-cache.

        The cache, not ``_build/jupyter_execute``, is read: a rebuild served from the cache
        rewrites the notebooks there without their outputs.
        """
        import jupytext
        from jupyter_cache import get_cache

        source = ROOT / "book" / f"{page}.md"
        assert source.is_file(), f"book/{page}.md does not exist"
        try:
            _, nb = get_cache(self.cache).merge_match_into_notebook(jupytext.read(source))
        except KeyError:
            raise AssertionError(
                f"book/{page}.md as it is now has no executed result in {self.cache}: "
                "it failed to execute or the book was not rebuilt (run `make book`)"
            ) from None
        errors = [
            o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"
        ]
        assert not errors, f"book/{page}.md raised {errors[0]['ename']}: {errors[0]['evalue']}"
        return nb

    def glued(self, page: str) -> dict:
        """Every value the page stored with ``myst_nb.glue(name, value)``, parsed back to Python.

        myst-nb 1.x moves glued outputs out of the executed notebook into ``<page>.glue.json``;
        both places are read.
        """
        outputs = [o for c in self.notebook(page)["cells"] for o in c.get("outputs", [])]
        glue_file = self.executed / "book" / f"{page}.glue.json"
        if glue_file.is_file():
            outputs += json.loads(glue_file.read_text()).values()
        return book_build.glued_values(outputs)

    def text(self, page: str) -> str:
        """All text a page's code cells printed or displayed, joined."""
        parts = []
        for cell in self.notebook(page)["cells"]:
            for out in cell.get("outputs", []):
                if out.get("output_type") == "stream":
                    parts.append("".join(out["text"]))
                elif "data" in out and "text/plain" in out["data"]:
                    parts.append("".join(out["data"]["text/plain"]))
        return "\n".join(parts)


@pytest.fixture(scope="session")
def book() -> BuiltBook:
    """Build the book once (executing only pages that changed, thanks to jupyter-cache)."""
    return BuiltBook(book_build.build(quiet=True))


@pytest.fixture(scope="module")
def glued(book, request) -> dict:
    """Every value glued by the page of the requesting test module (its ``PAGE``); a page that glues
    nothing fails here."""
    page = request.module.PAGE
    values = book.glued(page)
    assert values, f"book/{page}.md glued no values"
    return values


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for the tests of one module (module scope: while Playwright's sync API is
    open, its event loop is the thread's running loop, which the other tests must not inherit)."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"Chromium not found at {CHROMIUM}: "
            "run scripts/install-system-packages.sh (or set CNNBOOK_CHROMIUM)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for the whole session (tests/pg.py), stopped and removed at the end.
    Fails, not skips, when PostgreSQL is not installed: CI installs it."""
    from pg import PostgresNotInstalled, PostgresServer

    try:
        server = PostgresServer()
    except PostgresNotInstalled as missing:
        pytest.fail(str(missing), pytrace=False)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh, empty database for each test (dropped and created again, which is cheap), as the URL
    postgresql://grader:secret@127.0.0.1:PORT/cnn_course."""
    return postgres_server.fresh_database()
