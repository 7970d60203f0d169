"""Build the website into ``_build/html`` (what ``make book`` runs, and what the page tests call).

Runs Jupyter Book 1 with warnings as errors. Pages execute through jupyter-cache, so a build
with nothing changed executes no notebook. When a page fails to execute, its traceback is
printed from ``_build/html/reports`` so the failure is readable in a terminal or CI log.

After a successful build every page in ``_toc.yml`` written from markdown is also published as a
clean notebook (no outputs) at ``_build/html/_sources/<page>.ipynb``, and its download button
offers it: students can open any page in Jupyter. (sphinx-book-theme alone offers an .ipynb only
for MyST-NB pages, and then the executed one with all its outputs; plain markdown pages get none.)
That notebook runs with only the packages of ``requirements-student.txt``: the build's plumbing
(``from myst_nb import glue``, every ``glue(...)`` call, cells tagged ``remove-cell``) is left out.

MathJax is served by the site itself: before the build, ``node_modules/mathjax`` (npm, pinned in
package.json) is copied to ``_build/html/_static/mathjax``, which ``_config.yml``'s
``mathjax_path`` names, so formulas render without any request outside the site.
"""

from __future__ import annotations

import ast
import html
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# CNNBOOK_BUILD_PATH puts the whole _build folder elsewhere (e.g. one per working copy).
BUILD = Path(os.environ.get("CNNBOOK_BUILD_PATH", ROOT)).resolve() / "_build"
HTML = BUILD / "html"
EXECUTED = BUILD / "jupyter_execute"
MATHJAX_SOURCE = ROOT / "node_modules" / "mathjax" / "es5"
# tex-mml-chtml.js is the component _config.yml names; the folders hold what it loads on demand
# (TeX extensions, CHTML fonts, the menu, accessibility and speech), all relative to itself.
MATHJAX_PARTS = ("tex-mml-chtml.js", "input", "output", "ui", "a11y", "sre", "adaptors")


class BuildError(Exception):
    """A problem that stops the build, said in one line (what is wrong, how to fix it)."""


def build(quiet: bool = False) -> int:
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    cmd = [
        str(jupyter_book),
        "build",
        str(ROOT),
        "--path-output",
        str(BUILD.parent),
        "--nitpick",
        "--warningiserror",
        "--keep-going",
    ]
    if quiet:
        cmd.append("--quiet")
    try:
        install_mathjax()
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    code = subprocess.call(cmd, cwd=ROOT)
    if code != 0:
        reports = sorted((HTML / "reports").rglob("*.err.log")) + sorted(
            (HTML / "reports").rglob("*.log")
        )
        seen = set()
        for report in reports:
            if report in seen:
                continue
            seen.add(report)
            shown = (
                report.relative_to(ROOT) if report.is_relative_to(ROOT) else report
            )  # CNNBOOK_BUILD_PATH
            print(f"\n===== execution report: {shown} =====", file=sys.stderr)
            print(report.read_text(errors="replace")[-8000:], file=sys.stderr)
        print(
            "error: the book did not build (see the warnings or execution reports above).",
            file=sys.stderr,
        )
    else:
        remove_repeated_inline_scripts()
        remove_matplotlib_font_awesome()
        try:
            publish_notebooks()
        except BuildError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    return code


def install_mathjax(target: Path | None = None) -> Path:
    """Copy MathJax from ``node_modules`` to ``_static/mathjax`` of the site; return that folder.

    The copy is written beside the target and then renamed, so a failed copy never leaves a
    half-written MathJax in the site.
    """
    target = target or HTML / "_static" / "mathjax"
    if not (MATHJAX_SOURCE / MATHJAX_PARTS[0]).is_file():
        raise BuildError(
            f"MathJax is not installed ({MATHJAX_SOURCE / MATHJAX_PARTS[0]} is missing): "
            "run `make setup` (it runs `npm ci`), then build again"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mathjax-", dir=target.parent))
    try:
        for part in MATHJAX_PARTS:
            source = MATHJAX_SOURCE / part
            if source.is_dir():
                shutil.copytree(source, staging / part)
            elif source.is_file():
                shutil.copy2(source, staging / part)
        old = target.with_name(f".{target.name}-old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


_INLINE_SCRIPT = re.compile(r"^[ \t]*<script>(?P<body>[^<]*)</script>\n", re.M)


def remove_repeated_inline_scripts() -> int:
    """Drop the second copy of each inline ``<script>`` in every page; return how many pages
    changed.

    Sphinx 7.4 writes an inline script that an extension registers after the builder starts twice
    (once as registered, once more when writing begins). sphinx-thebe's is ``const THEBE_JS_URL =
    ...``, so its second copy is a JavaScript error in the console of every page.
    """
    changed = 0
    for page in HTML.rglob("*.html"):
        text = page.read_text()
        seen = set()

        def keep_first(match):
            if match["body"] in seen:
                return ""
            seen.add(match["body"])
            return match.group(0)

        new = _INLINE_SCRIPT.sub(keep_first, text)
        if new != text:
            page.write_text(new)
            changed += 1
    return changed


# matplotlib's to_jshtml() (the animation player on padding-and-stride) links Font Awesome 4 from
# a CDN for its buttons' icons.
_CDN_FONT_AWESOME = re.compile(
    r'<link rel="stylesheet"\s+href="https://maxcdn\.bootstrapcdn\.com/font-awesome/[^"]*">\n?'
)


def remove_matplotlib_font_awesome() -> int:
    """Drop the CDN link of matplotlib's animation player from every page; return how many changed.

    The theme serves Font Awesome itself (its fontawesome.js keeps the ``fa fa-play`` names of
    version 4), so the buttons keep their icons and no page asks a host outside the site for it.
    """
    changed = 0
    for page in HTML.rglob("*.html"):
        text = page.read_text()
        new = _CDN_FONT_AWESOME.sub("", text)
        if new != text:
            page.write_text(new)
            changed += 1
    return changed


def glued_values(outputs) -> dict:
    """The values stored with ``myst_nb.glue(name, value)`` among notebook ``outputs``, parsed
    back to Python.

    Used by the page tests and the build benchmark. myst-nb 1.x moves glued outputs out of the
    executed notebook into ``<page>.glue.json``; pass the outputs of either.
    """
    import ast

    values = {}
    for out in outputs:
        meta = out.get("metadata", {}).get("scrapbook")
        if not meta:
            continue
        data = out.get("data", {})
        text = data.get(meta["mime_prefix"] + "text/plain", data.get("text/plain"))
        if text is None:
            continue
        text = "".join(text) if isinstance(text, list) else text
        try:
            values[meta["name"]] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            values[meta["name"]] = text
    return values


def toc_files(toc: Path = ROOT / "_toc.yml") -> list[str]:
    """Every file named in ``_toc.yml`` (root first, then in reading order), without suffix."""
    import yaml

    files = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    name = node[key]
                    files.append(
                        name.rsplit(".", 1)[0] if name.endswith((".md", ".ipynb")) else name
                    )
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load(toc.read_text()))
    return files


# The theme's download dropdown: one <li> per entry; the .md entry links ``_sources/<page>.md``.
_SOURCE_ENTRY = re.compile(
    r'<li><a href="(?P<prefix>[^"]*_sources/)(?P<page>[^"]+)\.md"'
    r'[^>]*class="[^"]*btn-download-source-button[^"]*".*?</li>',
    re.S,
)
_NOTEBOOK_ENTRY = """<li><a href="{href}" target="_blank"
   class="btn btn-sm btn-download-notebook-button dropdown-item"
   title="Download notebook file"
   data-bs-placement="left" data-bs-toggle="tooltip"
>
<span class="btn__icon-container">
  <i class="fas fa-code"></i>
  </span>
<span class="btn__text-container">.ipynb</span>
</a>
</li>
"""


# MyST roles a plain notebook shows as raw text: ``{glue:text}`name:.4f```, ``{doc}`text <page>```.
_GLUE_ROLE = re.compile(r"\{glue(?::text|:)?\}`(?P<name>[^`:]+)(?::(?P<spec>[^`]*))?`")
_OTHER_ROLE = re.compile(r"\{(?:doc|ref|numref|download|term)\}`(?P<body>[^`]+)`")


def executed_glue(source: Path) -> dict:
    """The values ``source``'s last build glued, from the jupyter-cache ({} when it has none)."""
    import jupytext
    from jupyter_cache import get_cache

    try:
        _, nb = get_cache(BUILD / ".jupyter_cache").merge_match_into_notebook(jupytext.read(source))
    except KeyError:  # not executed (an exercise page) or changed since the build
        return {}
    return glued_values(o for cell in nb.cells for o in cell.get("outputs", []))


def plain_markdown(text: str, glued: dict) -> str:
    """``text`` with the MyST roles a notebook cannot render replaced: a glued value by the value
    the build computed (or the variable's name), a cross-reference by its text."""

    def value(match) -> str:
        name, spec = match["name"], match["spec"]
        if name not in glued:
            return f"`{name}`"
        try:
            return format(glued[name], spec or "")
        except (TypeError, ValueError):
            return str(glued[name])

    def reference(match) -> str:
        body = match["body"]
        shown = re.match(r"(?P<text>.*?)\s*<[^>]*>$", body, re.S)
        return shown["text"] if shown else body

    return _OTHER_ROLE.sub(reference, _GLUE_ROLE.sub(value, text))


def clean_notebook(source: Path):
    """``source`` (a MyST markdown page) as a notebook with no outputs, validated by nbformat."""
    import jupytext
    import nbformat

    glued = executed_glue(source)

    # Every page is MyST: only {code-cell} blocks are code (a plain ```bash block stays text).
    nb = jupytext.read(source, fmt="md:myst")
    nb.metadata.pop("jupytext", None)  # a plain notebook, not one paired with a text file
    nb.metadata.setdefault(
        "kernelspec", {"display_name": "Python 3", "language": "python", "name": "python3"}
    )
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            if "remove-cell" in cell.metadata.get("tags", []):
                continue  # build plumbing by the page's own word
            try:
                cell.source = strip_plumbing(cell.source)
            except BuildError as error:
                raise BuildError(f"{source.name}: {error}") from None
            if not cell.source.strip():
                continue  # the cell held only plumbing
            cell.outputs, cell.execution_count = [], None
        elif cell.cell_type == "markdown":
            cell.source = plain_markdown(cell.source, glued)
        cells.append(cell)
    nb.cells = cells
    nbformat.validate(nb)
    return nb


def _is_plumbing(statement: ast.stmt) -> bool:
    """Whether ``statement`` is ``from myst_nb import ...``, ``import myst_nb`` or ``glue(...)``."""
    if isinstance(statement, ast.ImportFrom):
        return (statement.module or "").split(".")[0] == "myst_nb"
    if isinstance(statement, ast.Import):
        return any(alias.name.split(".")[0] == "myst_nb" for alias in statement.names)
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
        func = statement.value.func
        return (isinstance(func, ast.Name) and func.id == "glue") or (
            isinstance(func, ast.Attribute) and func.attr == "glue"
        )
    return False


def strip_plumbing(code: str) -> str:
    """``code`` without the build's plumbing statements (see ``_is_plumbing``), at any depth.

    Whole lines are removed, so the rest of the cell keeps its layout. Raises BuildError when a
    plumbing statement shares a line with other code or is the only statement of a block (its
    removal would change or break what is left).
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code  # IPython syntax (a magic): not Python, and never plumbing here
    lines = code.splitlines(keepends=True)
    drop: set[int] = set()
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if not isinstance(block, list) or not block or not isinstance(block[0], ast.stmt):
                continue
            plumbing = [s for s in block if _is_plumbing(s)]
            if plumbing and len(plumbing) == len(block) and not isinstance(node, ast.Module):
                raise BuildError(
                    f"line {block[0].lineno}: a block holds only glue calls; "
                    "move them to a cell tagged remove-cell"
                )
            for s in plumbing:
                first, last = lines[s.lineno - 1], lines[s.end_lineno - 1]
                if first[: s.col_offset].strip() or last[s.end_col_offset :].split("#")[0].strip():
                    raise BuildError(
                        f"line {s.lineno}: build plumbing shares its line with other code; "
                        "give it a line of its own"
                    )
                drop.update(range(s.lineno - 1, s.end_lineno))
    kept = [line for number, line in enumerate(lines) if number not in drop]
    return "".join(kept).strip("\n")


def publish_notebooks() -> list[Path]:
    """Write ``_sources/<page>.ipynb`` for every markdown page of the built site; link it from
    the page."""
    import nbformat

    written = []
    for page in toc_files():
        source = ROOT / f"{page}.md"
        page_html = HTML / f"{page}.html"
        if not source.is_file() or not page_html.is_file():
            # an .ipynb page offers itself already; a page the build did not write has no button
            continue
        target = HTML / "_sources" / f"{page}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(clean_notebook(source), target)
        written.append(target)
        text = page_html.read_text()
        if "btn-download-notebook-button" in text:
            # the theme linked _sources/<page>.ipynb itself (MyST-NB pages): now the clean one
            continue
        match = _SOURCE_ENTRY.search(text)
        if match is None:
            print(
                f"warning: {page_html} has no download button for its .md source; "
                "not adding the .ipynb",
                file=sys.stderr,
            )
            continue
        href = html.escape(f"{match['prefix']}{match['page']}.ipynb")
        page_html.write_text(
            text[: match.start()] + _NOTEBOOK_ENTRY.format(href=href) + text[match.start() :]
        )
    return written


if __name__ == "__main__":
    raise SystemExit(build())
