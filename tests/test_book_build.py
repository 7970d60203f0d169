"""The website builds with no warning, from the table of contents only, and a rebuild executes
nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cnnbook.build import toc_files

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_book_builds_without_warnings(book):
    assert book.returncode == 0, (
        "jupyter-book build -n -W failed: run `make book` to see the warnings"
    )
    assert (book.html / "index.html").is_file()


def test_every_toc_page_is_in_the_site(book):
    for page in toc_files():
        html = book.html / f"{page}.html"
        assert html.is_file(), f"{page} is in _toc.yml but {html} was not built"


def test_nothing_outside_the_toc_is_built(book):
    for folder in ("solutions", "tests", "benchmarks", "cnnbook", "node_modules", "scripts"):
        assert not (book.html / folder).exists(), f"{folder}/ must not be part of the website"


def test_pages_offer_download_buttons(book):
    html = (book.html / "book" / "intro.html").read_text()
    assert "dropdown-download-buttons" in html
    assert re.search(r'href="[^"]*_sources/book/intro\.md"', html), (
        "no download link to the page source"
    )


def test_second_build_executes_nothing(book):
    """Run after the session's first build: jupyter-cache must serve every page."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "cnnbook.build"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    executed = re.findall(r"Executing notebook.*", proc.stdout + proc.stderr)
    assert not executed, f"a rebuild with nothing changed executed notebooks: {executed}"
