"""The website as students meet it: every page of _toc.yml opened in a real (headless) Chromium.

The built site is served over http on a loopback port; requests to any other host are aborted
(nothing outside this machine is reachable here, and a page must not need it to render: the
offline test below fails on any such request, and checks that MathJax, served by the site
itself, renders every formula).
Chromium is Debian's (scripts/install-system-packages.sh); CNNBOOK_CHROMIUM points elsewhere.
Screenshots of a few key pages are written to test-artifacts/screenshots/ for reviewers.
"""

from __future__ import annotations

import functools
import http.server
import re
import threading
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import jupytext
import nbformat
import pytest

from cnnbook.build import toc_files

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
PAGES = toc_files()
SCREENSHOT_PAGES = {"book/intro", "book/conv-by-hand", "book/pooling", "book/feature-maps"}
SOLUTION_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "### BEGIN")

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def is_exercise(page: str) -> bool:
    return page.startswith("exercises/")


def source_of(page: str) -> Path:
    for suffix in (".md", ".ipynb"):
        if (ROOT / f"{page}{suffix}").is_file():
            return ROOT / f"{page}{suffix}"
    raise AssertionError(f"{page} is in _toc.yml but neither {page}.md nor {page}.ipynb exists")


def require_page(page: str) -> None:
    if page not in PAGES:
        pytest.skip(f"{page} is not in _toc.yml yet")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture(scope="module")
def site(book):
    """The built html served on 127.0.0.1 at an ephemeral port: yields the base url."""
    assert (book.html / "index.html").is_file(), f"the book was not built into {book.html}"
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(book.html))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


class Visit:
    """One page opened in a fresh browser context, with every problem the browser reported."""

    def __init__(self, browser, site: str, path: str, **context_options):
        self.site = site
        self.origin = urlparse(site).netloc
        self.problems: list[str] = []
        self.external: list[str] = []  # requests to other hosts, all aborted
        self.console_errors: list[str] = []  # every console error, wherever it is located
        self.context = browser.new_context(**context_options)
        self.context.route("**/*", self._only_local)
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on(
            "pageerror", lambda exc: self.problems.append(f"uncaught JavaScript error: {exc}")
        )
        self.page.on("requestfailed", self._failed)
        self.page.on("response", self._response)
        self.response = self.page.goto(urljoin(site, path), wait_until="load")

    def _local(self, url: str) -> bool:
        return urlparse(url).netloc == self.origin

    def _only_local(self, route):
        if self._local(route.request.url) or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            self.external.append(route.request.url)
            route.abort()  # external hosts are unreachable here; fail fast instead of timing out

    def _console(self, msg):
        if msg.type == "error":
            self.console_errors.append(f"{msg.text} ({msg.location.get('url')})")
        if msg.type == "error" and self._local(msg.location.get("url", "") or self.site):
            # an aborted external request logs "Failed to load resource" located at that
            # external url
            self.problems.append(f"console error: {msg.text} ({msg.location.get('url')})")

    def _failed(self, request):
        if self._local(request.url):
            self.problems.append(f"request failed: {request.url} ({request.failure})")

    def _response(self, response):
        if self._local(response.url) and response.status >= 400:
            self.problems.append(f"HTTP {response.status} for {response.url}")

    def close(self):
        self.context.close()


@pytest.fixture
def visit(browser, site):
    opened = []

    def open_page(path: str, **context_options) -> Visit:
        opened.append(Visit(browser, site, path, **context_options))
        return opened[-1]

    yield open_page
    for v in opened:
        v.close()


_fetched: dict[str, tuple[int, str]] = {}


def fetch(v: Visit, url: str) -> tuple[int, str]:
    """Status and text of a same-origin url (cached: the navigation repeats on every page)."""
    if url not in _fetched:
        response = v.context.request.get(url)
        _fetched[url] = (response.status, response.text() if response.ok else "")
    return _fetched[url]


def screenshot(v: Visit, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    v.page.screenshot(path=str(SCREENSHOTS / f"{name.replace('/', '__')}.png"), full_page=True)


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_renders_and_links(visit, page):
    v = visit(f"{page}.html")
    assert v.response is not None and v.response.status == 200, (
        f"{page}.html: HTTP {v.response and v.response.status}"
    )
    v.page.wait_for_load_state("networkidle")

    # Every image in the article is decoded with a real size (not a broken-image icon).
    broken = v.page.evaluate("""async () => {
        const imgs = [...document.querySelectorAll('main img, article img')];
        imgs.forEach(img => { img.loading = 'eager'; });
        await Promise.all(imgs.map(img => img.complete ? null
            : new Promise(done => { img.onload = img.onerror = done; })));
        return imgs.filter(img => !(img.naturalWidth > 0)).map(img => img.getAttribute('src'));
    }""")
    if page in SCREENSHOT_PAGES or page == next((p for p in PAGES if is_exercise(p)), None):
        screenshot(v, page)  # before the checks, so a reviewer sees the page even when one fails
    assert not broken, f"{page}: images that do not render: {broken}"

    # Executed pages show their outputs; every output area shown has something in it.
    outputs = v.page.evaluate("""() => ({
        cells: document.querySelectorAll('article div.cell').length,
        outputs: [...document.querySelectorAll('article div.cell_output')].map(
            o => o.innerText.trim().length + o.querySelectorAll('img, svg, table, iframe').length),
    })""")
    if outputs["cells"] and not is_exercise(page):
        assert outputs["outputs"], f"{page} has {outputs['cells']} code cells but shows no output"
        assert all(outputs["outputs"]), f"{page}: an output area is empty ({outputs['outputs']})"

    # Every same-origin link resolves; every fragment names an element of its target page.
    hrefs = v.page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
    here = v.page.url.split("#")[0]
    html_here = v.page.content()
    for href in sorted(set(hrefs)):
        if not v._local(href):
            continue
        target, fragment = urldefrag(href)
        if target == here:
            status, text = 200, html_here
        else:
            status, text = fetch(v, target)
        assert status == 200, f"{page}: link {href} returns HTTP {status}"
        if fragment and target.endswith(".html"):
            assert re.search(rf'id="{re.escape(fragment)}"', text), (
                f"{page}: link {href} names no element #{fragment}"
            )

    assert not v.problems, f"{page}: " + "\n".join(v.problems)


# Every formula's state once MathJax has finished (or null when MathJax never started), and the
# article's text outside code, where no TeX delimiter may be left.
_MATH_STATE = """async () => {
    if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) return null;
    await MathJax.startup.promise;
    const article = document.querySelector('article').cloneNode(true);
    article.querySelectorAll('pre, code, script, mjx-container').forEach(e => e.remove());
    return {
        formulas: document.querySelectorAll('article .math').length,
        rendered: document.querySelectorAll('article .math mjx-container').length,
        errors: document.querySelectorAll('article mjx-merror').length,
        text: article.textContent,
        mathjax: document.querySelector('script[src*="tex-mml-chtml"]').src,
    };
}"""


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_offline_and_renders_its_formulas(visit, page):
    v = visit(f"{page}.html")
    assert v.response is not None and v.response.status == 200, f"{page}.html was not built"
    v.page.wait_for_load_state("networkidle")
    has_math = v.page.locator("article .math").count() > 0
    if has_math:
        state = v.page.evaluate(_MATH_STATE)
        assert state is not None, f"{page}: MathJax did not start (external: {v.external})"
        assert state["mathjax"].startswith(urljoin(v.site, "_static/mathjax/")), (
            f"{page}: MathJax is loaded from {state['mathjax']}, not from the site"
        )
        assert state["formulas"] > 0 and state["rendered"] == state["formulas"], (
            f"{page}: MathJax rendered {state['rendered']} of {state['formulas']} formulas"
        )
        assert state["errors"] == 0, f"{page}: {state['errors']} formulas have TeX errors"
        for delimiter in ("\\(", "\\)", "\\[", "\\]", "$$"):
            assert delimiter not in state["text"], f"{page}: raw TeX {delimiter!r} in the text"
    assert not v.external, f"{page} requests other hosts: {v.external}"
    assert not v.console_errors, f"{page}: console errors: {v.console_errors}"
    assert not v.problems, f"{page}: " + "\n".join(v.problems)


def test_formulas_render_on_the_pages_that_have_them(visit):
    """The offline test above checks math only where the page has some: the pages that must."""
    for page in ("book/padding-and-stride", "book/conv2d-layer"):
        require_page(page)
        v = visit(f"{page}.html")
        v.page.wait_for_load_state("networkidle")
        state = v.page.evaluate(_MATH_STATE)
        assert state is not None and state["rendered"] >= 3, f"{page}: {state}"


def test_formulas_render_when_the_site_is_opened_from_disk(browser, book):
    """As the README says to read it: _build/html opened as files, no server, no network."""
    page = "book/padding-and-stride"
    require_page(page)
    context = browser.new_context()
    external: list[str] = []

    def only_files(route):
        if route.request.url.startswith(("file:", "data:", "blob:")):
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort()

    context.route("**/*", only_files)
    try:
        tab = context.new_page()
        tab.goto((book.html / f"{page}.html").as_uri(), wait_until="load")
        state = tab.evaluate(_MATH_STATE)
    finally:
        context.close()
    assert state is not None, f"{page} from disk: MathJax did not start"
    assert state["formulas"] >= 3 and state["rendered"] == state["formulas"], state
    assert not external, f"{page} from disk requests other hosts: {external}"


@pytest.mark.parametrize("page", PAGES)
def test_download_button_offers_source_and_clean_notebook(visit, book, page):
    source = source_of(page)
    v = visit(f"{page}.html")
    menu = v.page.locator(".dropdown-download-buttons")
    assert menu.count() == 1, f"{page} has no download button"
    menu.locator("button.dropdown-toggle").click()
    source_link = menu.locator("a.btn-download-source-button")
    source_link.wait_for(state="visible")
    assert source_link.inner_text().strip() == source.suffix
    # A markdown page offers its notebook beside it; an .ipynb page (an exercise) is its own
    # notebook.
    notebook_link = (
        menu.locator("a.btn-download-notebook-button") if source.suffix == ".md" else source_link
    )
    assert notebook_link.count() == 1, (
        f"{page}'s download menu offers no .ipynb (cnnbook.build adds it after a successful build; "
        f"this build returned {book.returncode})"
    )
    assert notebook_link.inner_text().strip() == ".ipynb"

    status, served_source = fetch(v, urljoin(v.page.url, source_link.get_attribute("href")))
    assert status == 200 and served_source.strip(), (
        f"{page}: the source download is missing or empty"
    )
    assert served_source == source.read_text(), (
        f"{page}: the source download is not {source.relative_to(ROOT)}"
    )

    status, served_notebook = fetch(v, urljoin(v.page.url, notebook_link.get_attribute("href")))
    assert status == 200, f"{page}: the .ipynb download returns HTTP {status}"
    nb = nbformat.reads(served_notebook, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs for c in code), f"{page}: the downloaded notebook carries outputs"
    if source.suffix == ".md":
        # Every code cell of the page but those tagged remove-cell (the build's plumbing).
        expected = [
            c
            for c in jupytext.read(source, fmt="md:myst").cells
            if c.cell_type == "code" and "remove-cell" not in c.metadata.get("tags", [])
        ]
        assert len(code) == len(expected), (
            f"{page}: notebook has {len(code)} code cells, the page {len(expected)} to show"
        )
        assert nb.metadata["kernelspec"]["name"] == "python3"
    assert "myst_nb" not in served_notebook and "glue(" not in served_notebook, (
        f"{page}: the downloaded notebook carries the build's glue plumbing"
    )
    prose = "".join(c.source for c in nb.cells if c.cell_type == "markdown")
    roles = re.findall(r"\{(?:glue[:a-z]*|doc|ref)\}`[^`]*`", prose)
    assert not roles, f"{page}: the downloaded notebook shows MyST roles as raw text: {roles[:3]}"
    for marker in SOLUTION_MARKERS:
        if is_exercise(page):
            assert marker not in served_notebook, (
                f"{page}: the downloaded exercise contains {marker!r}"
            )


@pytest.mark.parametrize(
    "page",
    [
        p
        for p in PAGES
        if (ROOT / f"{p}.md").is_file() and "kernelspec:" in (ROOT / f"{p}.md").read_text()
    ],
)
def test_launch_buttons_open_the_page_from_the_repository(visit, page):
    v = visit(f"{page}.html")
    links = v.page.eval_on_selector_all(".dropdown-launch-buttons a", "els => els.map(a => a.href)")
    binder = [u for u in links if "mybinder.org" in u]
    assert binder, f"{page} has no Binder launch button ({links})"
    path = re.search(r"urlpath=lab/tree/([^&]+)", binder[0])
    assert path and (ROOT / path.group(1)).is_file(), (
        f"{page}: Binder opens {path and path.group(1)}, not a repository file"
    )


@pytest.mark.parametrize(
    ("query", "page"), [("padding", "book/padding-and-stride"), ("MaxPool2D", "book/pooling")]
)
def test_search_finds_the_page(visit, book, query, page):
    require_page(page)
    v = visit(f"search.html?q={query}")
    assert (book.html / f"{page}.html").is_file(), f"{page} is in _toc.yml but was not built"
    results = v.page.locator("#search-results ul.search li a")
    results.first.wait_for(timeout=20_000)
    found = [
        urlparse(h).path.lstrip("/") for h in results.evaluate_all("els => els.map(a => a.href)")
    ]
    assert f"{page}.html" in found, f"searching {query!r} does not find {page}.html: {found}"
    assert not v.problems, "\n".join(v.problems)


def test_exercise_pages_show_student_versions(visit, book):
    exercises = [p for p in PAGES if is_exercise(p)]
    if not exercises:
        pytest.skip("no exercise page in _toc.yml yet")
    for page in exercises:
        v = visit(f"{page}.html")
        shown = v.page.locator("article").inner_text()
        for marker in SOLUTION_MARKERS:
            assert marker not in shown, f"{page}.html shows {marker!r}"
            assert marker not in v.page.content(), f"{page}.html contains {marker!r} in its html"


def test_no_solution_is_published(book):
    published = [p for p in book.html.rglob("*") if "solutions" in p.relative_to(book.html).parts]
    assert not published, f"files from solutions/ in the site: {published[:5]}"
    for html in book.html.rglob("*.html"):
        text = html.read_text(errors="replace")
        for marker in ("BEGIN SOLUTION", "HIDDEN TESTS", "BEGIN HIDDEN"):
            assert marker not in text, f"{html.relative_to(book.html)} contains {marker!r}"


def test_phone_viewport_has_no_horizontal_scroll(visit):
    page = "book/conv-by-hand"
    require_page(page)
    v = visit(
        f"{page}.html",
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        device_scale_factor=2,
    )
    assert v.response is not None and v.response.status == 200, f"{page}.html was not built"
    v.page.wait_for_load_state("networkidle")
    widths = v.page.evaluate("""() => ({
        page: document.scrollingElement.scrollWidth, viewport: window.innerWidth,
        article: document.querySelector('article').getBoundingClientRect().right,
    })""")
    assert widths["viewport"] == 390
    assert widths["page"] <= widths["viewport"] + 1, f"{page} scrolls sideways on a phone: {widths}"
    assert widths["article"] <= widths["viewport"] + 1, (
        f"{page}'s text is wider than a phone: {widths}"
    )
    screenshot(v, f"{page}-phone")
    assert not v.problems, "\n".join(v.problems)
