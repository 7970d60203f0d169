"""Accessibility: every page of the built site passes axe-core's WCAG 2 A and AA rules.

axe-core comes from the npm registry (package.json, pinned exactly; `npm install` puts it in
node_modules) and is injected into each page, opened in Debian's headless Chromium as
tests/test_site_browser.py opens it. The rules run are those tagged wcag2a and wcag2aa (colour
contrast, alt text, form labels, ...); a violation fails the page's test with the rule, what it
says, and the first elements it names, so the fix is findable from the test's output alone.

The same window also checks that the chapter pages' code (wrapped at 88 characters) fits its
code box at 1280 px, so that a reader need not scroll sideways to read a line.
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

from cnnbook.build import toc_files

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
RULE_TAGS = ["wcag2a", "wcag2aa"]
# Chapter pages whose code lines (shown or collapsed) are wrapped at 88 characters, which must fit
# their code box (book/_static/a11y.css sizes the boxes) at a 1280 px wide window.
WRAPPED_PAGES = [
    f"book/{name}.html"
    for name in (
        "why-convolutions conv-by-hand padding-and-stride many-filters pooling conv2d-layer"
        " receptive-field one-by-one-and-cost transposed-convolution feature-maps"
        " how-a-network-learns mnist-cnn lenet5 dense-vs-cnn tf1-to-tf2"
    ).split()
]
# Every page of _toc.yml, and the pages the theme adds around them.
PAGES = [f"{page}.html" for page in toc_files()] + ["genindex.html", "search.html"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Waits for MathJax (when the page has it) so that its rendered formulas are what axe checks,
# then runs axe with only the WCAG 2 A/AA rules; returns each violation, its elements shortened.
_RUN_AXE = """async (tags) => {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
        await MathJax.startup.promise;
    }
    const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
    return result.violations.map(v => ({
        id: v.id, impact: v.impact, help: v.help, count: v.nodes.length,
        nodes: v.nodes.slice(0, 3).map(n => ({
            target: n.target.join(' '), html: n.html.slice(0, 160), why: n.failureSummary,
        })),
    }));
}"""


# The longest line of each code-cell box wider than its box (one that scrolls sideways), once every
# collapsed cell (hide-input) and answer is opened as a reader would open it.
_OVERFLOWING_CODE = """() => {
    document.querySelectorAll('article details').forEach(d => { d.open = true; });
    return [...document.querySelectorAll('article div.cell_input pre')]
    .filter(pre => pre.checkVisibility() && pre.scrollWidth > pre.clientWidth + 1)
    .map(pre => pre.innerText.split('\\n').reduce((a, b) => (b.length > a.length ? b : a), ''));
}"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture(scope="module")
def site(book):
    """The built html served on 127.0.0.1 at an ephemeral port: yields the base url."""
    assert (book.html / "index.html").is_file(), f"the book was not built into {book.html}"
    handler = functools.partial(QuietHandler, directory=str(book.html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(browser):
    """The shared browser, once axe-core is known to be installed."""
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `npm install` (package.json pins axe-core)")
    return browser


def describe(violation: dict) -> str:
    lines = [
        f"{violation['id']} ({violation['impact']}, {violation['count']}x): {violation['help']}"
    ]
    for node in violation["nodes"]:
        lines.append(f"    at {node['target']}: {node['html']}")
    return "\n".join(lines)


def open_page(browser, url: str):
    """A new 1280 px wide desktop window showing ``url`` once loaded: (context, page)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    origin = urlparse(url).netloc

    def only_the_site(route):
        # as for a reader offline: other hosts are unreachable, so fail fast instead of waiting
        request_url = route.request.url
        if urlparse(request_url).netloc == origin or request_url.startswith("data:"):
            route.continue_()
        else:
            route.abort()

    context.route("**/*", only_the_site)
    try:
        page = context.new_page()
        response = page.goto(url, wait_until="load")
        assert response is not None and response.status == 200, f"{url} was not served"
        page.wait_for_load_state("networkidle")
    except BaseException:
        context.close()
        raise
    return context, page


def axe_violations(browser, url: str) -> list[dict]:
    """axe-core's WCAG 2 A/AA violations on one page, read at a 1280 px wide desktop window."""
    context, page = open_page(browser, url)
    try:
        page.add_script_tag(path=str(AXE))
        return page.evaluate(_RUN_AXE, RULE_TAGS)
    finally:
        context.close()


def test_axe_is_the_pinned_version():
    """package.json pins the axe-core that node_modules holds (a stale install fails here)."""
    import json

    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]["axe-core"]
    assert AXE.is_file(), f"{AXE} is missing: run `npm install` (package.json pins axe-core)"
    installed = json.loads((AXE.parent / "package.json").read_text())["version"]
    assert pinned == installed and pinned.startswith("4."), (pinned, installed)


def test_axe_reports_a_known_violation(browser):
    """The harness sees what it must: a page with an unlabelled slider and an image without alt."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_content(
            '<html lang="en"><title>t</title><main><img src="data:,">'
            '<input type="range"></main></html>'
        )
        page.add_script_tag(path=str(AXE))
        found = {v["id"] for v in page.evaluate(_RUN_AXE, RULE_TAGS)}
    finally:
        context.close()
    assert {"image-alt", "label"} <= found, found


@pytest.mark.parametrize("page", PAGES)
def test_page_passes_wcag2_a_and_aa(browser, site, page):
    violations = axe_violations(browser, urljoin(site, page))
    assert not violations, f"{page}: {len(violations)} WCAG 2 A/AA rules fail:\n" + "\n".join(
        describe(v) for v in violations
    )


@pytest.mark.parametrize("page", WRAPPED_PAGES)
def test_code_lines_fit_their_box_at_1280px(browser, site, page):
    context, opened = open_page(browser, urljoin(site, page))
    try:
        too_wide = opened.evaluate(_OVERFLOWING_CODE)
    finally:
        context.close()
    assert not too_wide, f"{page}: code boxes scroll sideways at 1280 px; longest lines: {too_wide}"
