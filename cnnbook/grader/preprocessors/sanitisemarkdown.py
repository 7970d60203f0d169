"""SanitiseMarkdown: a submission's markdown, raw cells and attachments never run script in a
browser.

The formgrader and feedback pages render markdown with nbconvert (mistune, raw HTML passed through,
``javascript:`` links allowed, a ``mermaid`` code block pasted unescaped) and paste raw cells into
the page as they are: a student's ``<img onerror=...>`` would run in the instructor's browser. Each
markdown cell is rendered as nbconvert renders it and every tag of the HTML checked against an
allowlist (with bleach's HTML tokenizer, which reads tags as browsers do). A cell that passes is
kept exactly as written, so ordinary markdown (headings, emphasis, code, math, tables, https links
and images, PNG/JPEG attachments) is untouched. Otherwise its HTML is cleaned with bleach and its
unsafe link targets replaced, and if even that does not pass, the cell is shown as plain text in a
code block. Raw cells are cleaned as HTML. Locked cells (the assignment's own, restored from the
gradebook) are kept.
"""

from __future__ import annotations

import html
import re

import bleach
from bleach import html5lib_shim
from bleach.css_sanitizer import CSSSanitizer
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbconvert.filters.strings import strip_files_prefix
from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import is_locked

TAGS = frozenset(
    {
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "caption",
        "cite",
        "code",
        "col",
        "colgroup",
        "dd",
        "del",
        "details",
        "div",
        "dl",
        "dt",
        "em",
        "figcaption",
        "figure",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "input",
        "ins",
        "kbd",
        "li",
        "mark",
        "ol",
        "p",
        "pre",
        "q",
        "s",
        "samp",
        "small",
        "span",
        "strike",
        "strong",
        "sub",
        "summary",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "u",
        "ul",
        "var",
    }
)
COMMON = frozenset({"class", "title", "lang", "dir"})
ATTRIBUTES = {
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "ol": {"start", "type"},
    "li": {"value"},
    "td": {"colspan", "rowspan", "align", "style"},
    "th": {"colspan", "rowspan", "align", "style"},
    "col": {"span"},
    "colgroup": {"span"},
    "details": {"open"},
    "input": {"type", "checked", "disabled"},
    **{f"h{level}": {"id"} for level in range(1, 7)},
}
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif")
MAX_CLEANED_CHARS = 100_000  # longer unsafe markdown is shown as text rather than cleaned
_DATA_IMAGE = re.compile(r"data:image/(png|jpeg|gif);base64,[a-z0-9+/=]*")
_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
_TEXT_ALIGN = re.compile(r"\s*text-align\s*:\s*(left|right|center)\s*;?\s*", re.IGNORECASE)
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")
# The classes nbconvert's markdown writes (pygments' short token names, anchor links, task lists),
# not the page's own (a fixed or hidden layer over the formgrader would be a way to fool the
# instructor).
_CLASS = re.compile(
    r"[a-z][a-z0-9]{0,3}|anchor-link|highlight|task-list-item(-checkbox)?|language-[\w+-]{1,30}"
)
_START_TAG = html5lib_shim.constants.tokenTypes["StartTag"]

# Markdown that bleach must not touch when it cleans a cell: code (rendered escaped), math (escaped
# by nbconvert, and MathJax runs with its Safe extension), blockquote markers and autolinks (which
# bleach would escape as text).
_PROTECTED = re.compile(
    r"^(?P<fence>`{3,}|~{3,})(?P<info>[^\n]*)\n.*?^(?P=fence)[`~]*[ \t]*$"  # fenced code
    r"|(?P<ticks>`+)(?!`).+?(?<!`)(?P=ticks)(?!`)"  # inline code
    r"|\$\$.+?\$\$|\$[^$\n]+\$"  # math
    r"|^[ \t]*(?:>[ \t]?)+"  # blockquote markers
    r"|<https?://[^<>\s]+>",  # autolinks
    re.MULTILINE | re.DOTALL,
)
# A markdown link or image target: [text](target ...) or a reference definition [label]: target.
_LINK_TARGET = re.compile(
    r"(\]\(\s*<?|^[ \t]{0,3}\[[^\]\n]+\]:[ \t]*<?)((?:[^\s()<>]|\([^\s()<>]*\))*)", re.MULTILINE
)
# What a removed attack leaves as text (in code, or escaped) is broken up too, so that no other
# program that shows the notebook (or searches it) meets a tag, a handler or a script URL.
_DEFANG = (
    (
        re.compile(
            r"<(/?)(script|iframe|object|embed|svg|style|math|frame|base|meta|link)", re.IGNORECASE
        ),
        r"&lt;\1\2",
    ),
    (re.compile(r"\b(on[a-z]+)(\s*)=", re.IGNORECASE), r"\1\2 ="),
    (re.compile(r"\b(javascript|vbscript|livescript)(\s*):", re.IGNORECASE), r"\1\2 :"),
    (re.compile(r"\bdata(\s*):(\s*)(text|application)/", re.IGNORECASE), r"data\1 :\2\3/"),
)


def safe_url(value: str, tag: str = "a", attachments: dict | None = None) -> bool:
    """Whether a link (``tag`` "a") or image ("img") target may stay: http(s), mailto, relative or
    an anchor; for images also PNG/JPEG/GIF data and, in markdown, an attachment the cell has."""
    url = re.sub(r"[`\x00-\x20\x7f-\xa0\s\\]+", "", html.unescape(value)).lower()
    url = re.sub(r"[^\x00-\x7f]", "", url)
    url = re.sub(r"^/?files/", "", url)  # nbconvert's strip_files_prefix removes it after rendering
    scheme = _SCHEME.match(url)
    if scheme is None:
        return True  # relative (a path, or #anchor): no scheme, no script
    if scheme[1] in ("http", "https") or (scheme[1] == "mailto" and tag == "a"):
        return True
    if tag != "img":
        return False
    if scheme[1] == "data":
        return _DATA_IMAGE.fullmatch(url) is not None
    return (
        scheme[1] == "attachment" and attachments is not None and value.strip()[11:] in attachments
    )


def allowed_attribute(tag: str, name: str, value: str) -> bool:
    """bleach's attribute filter (also the check's): the allowlist, safe URLs, inert values only."""
    if name not in COMMON and name not in ATTRIBUTES.get(tag, ()):
        return False
    if name in ("href", "src"):
        return safe_url(value, tag)
    if name == "style":
        return (
            _TEXT_ALIGN.fullmatch(value) is not None
        )  # table column alignment, as mistune writes it
    if tag == "input" and name == "type":
        return value.strip().lower() == "checkbox"  # a task list's box; no form can be made
    if name == "class":
        return all(_CLASS.fullmatch(word) for word in value.split())
    return True


def unsafe_markup(markup: str) -> list[str]:
    """What in ``markup`` (HTML) is not allowed, in words; empty when it is safe to show.

    Every start tag the HTML tokenizer meets is checked, wherever it stands: the page around the
    cell is a whole document, where ``<body onload=...>`` adds its handler to the page's own body.
    """
    reasons = []
    for token in html5lib_shim.HTMLTokenizer(markup):
        if token["type"] != _START_TAG:
            continue
        tag = token["name"]
        if tag not in TAGS:
            reasons.append(f"{_word(tag)} element")
            continue
        for name, value in token["data"].items():
            if not allowed_attribute(tag, name, value):
                reasons.append(
                    f"{_word(name)} attribute on {tag}"
                    if name not in ("href", "src")
                    else f"{_word(_scheme(value))} {name} on {tag}"
                )
    return list(dict.fromkeys(reasons))


def _word(text: str) -> str:
    """A name from the submission, reduced to letters and digits (it goes into a note in
    markdown)."""
    return re.sub(r"[^a-z0-9-]", "", str(text).lower())[:20] or "unnamed"


def _scheme(url: str) -> str:
    url = re.sub(
        r"^/?files/", "", re.sub(r"[`\x00-\x20\x7f-\xa0\s\\]+", "", html.unescape(url)).lower()
    )
    match = _SCHEME.match(url)
    return match[1] if match else "unknown"


def clean_html(markup: str) -> str:
    """``markup`` with every element, attribute and URL off the allowlist removed (bleach)."""
    return bleach.clean(
        markup,
        tags=TAGS,
        attributes=allowed_attribute,
        protocols={"http", "https", "mailto", "data"},
        strip=True,
        strip_comments=True,
        css_sanitizer=CSSSanitizer(allowed_css_properties=["text-align"]),
    )


def render(source: str, attachments: dict) -> str:
    """The HTML of a markdown cell, as nbconvert's HTMLExporter (formgrader, feedback) makes it."""
    renderer = IPythonRenderer(
        escape=False,
        attachments=attachments,
        embed_images=False,
        path="",
        anchor_link_text="¶",
        exclude_anchor_links=False,
    )
    return strip_files_prefix(MarkdownWithMath(renderer=renderer).render(source))


def markdown_problems(source: str, attachments: dict) -> list[str]:
    try:
        return unsafe_markup(render(source, attachments))
    except Exception as exc:  # noqa: BLE001 - e.g. a missing attachment: nbconvert cannot show the cell
        return [f"markdown that nbconvert cannot render ({type(exc).__name__})"]


def _clean_segment(text: str, attachments: dict) -> str:
    text = clean_html(text)
    return _LINK_TARGET.sub(
        lambda m: m[0] if safe_url(m[2], "a") or safe_url(m[2], "img", attachments) else m[1] + "#",
        text,
    )


def _keep_protected(match: re.Match) -> str:
    if match["fence"] and match["info"].strip().lower().startswith("mermaid"):
        return match[0].replace(match["info"], "", 1)  # nbconvert pastes a mermaid block unescaped
    return match[0]


def clean_markdown(source: str, attachments: dict) -> str:
    """``source`` with its HTML cleaned by bleach and unsafe link targets replaced by ``#``."""
    parts, start = [], 0
    for match in _PROTECTED.finditer(source):
        parts += [
            _clean_segment(source[start : match.start()], attachments),
            _keep_protected(match),
        ]
        start = match.end()
    parts.append(_clean_segment(source[start:], attachments))
    return "".join(parts)


def defang(text: str) -> str:
    """``text`` with the traces of a removed attack broken up (see :data:`_DEFANG`)."""
    for pattern, replacement in _DEFANG:
        text = pattern.sub(replacement, text)
    return text


def as_text(source: str) -> str:
    """``source`` in a code block: shown as it was written, never rendered."""
    longest = max((len(run) for run in re.findall(r"`+", source)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{source}\n{fence}\n"


def sanitise_markdown(source: str, attachments: dict) -> tuple[str, list[str]]:
    """(safe source, reasons it was changed); the source comes back unchanged when it was safe."""
    reasons = markdown_problems(source, attachments)
    if not reasons:
        return source, []
    note = (
        f"*[The grader removed markup that is not allowed here: {', '.join(reasons[:5])}"
        f"{' and more' if len(reasons) > 5 else ''}.]*\n\n"
    )
    # The cleaning's patterns are not linear in the worst case: a long cell is shown as text at
    # once.
    cleaned = (
        [note + defang(clean_markdown(source, attachments))]
        if len(source) <= MAX_CLEANED_CHARS
        else []
    )
    for candidate in (*cleaned, note + as_text(defang(source))):
        if not markdown_problems(candidate, attachments):
            return candidate, reasons
    return "*[The grader removed this cell: it could not be shown safely.]*\n", reasons


def _images(bundle) -> dict:
    if not isinstance(bundle, dict):
        return {}
    return {
        mime: data
        for mime, data in bundle.items()
        if mime in IMAGE_TYPES and isinstance(data, str) and _BASE64.fullmatch(data)
    }


def sanitise_attachments(cell) -> list[str]:
    """Keep PNG, JPEG and GIF attachments only (an SVG or HTML attachment could carry script)."""
    attachments = cell.get("attachments")
    if attachments is None:
        return []
    if not isinstance(attachments, dict):
        del cell["attachments"]
        return ["attachments that were not an object"]
    kept = {name: _images(bundle) for name, bundle in attachments.items() if _images(bundle)}
    reasons = [
        f"attachment {_word(name)} (only PNG, JPEG and GIF images are kept)"
        for name, bundle in attachments.items()
        if kept.get(name) != bundle
    ]
    if kept:
        cell["attachments"] = kept
    else:
        del cell["attachments"]
    return reasons


def _template_metadata(cell) -> None:
    """Drop the metadata nbconvert's templates read, when it has a type they would crash on."""
    for key, kind in (("raw_mimetype", str), ("transient", dict), ("tags", list)):
        if key in cell.metadata and not isinstance(cell.metadata[key], kind):
            del cell.metadata[key]


class SanitiseMarkdown(NbGraderPreprocessor):
    """Make each markdown and raw cell of a submission safe to show in a browser (see the
    module)."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type not in ("markdown", "raw") or (
            "nbgrader" in cell.metadata and is_locked(cell)
        ):
            return cell, resources
        _template_metadata(cell)
        source = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        if cell.cell_type == "raw":
            reasons = unsafe_markup(source)
            if reasons:
                cell.source = defang(clean_html(source))
        else:
            reasons = sanitise_attachments(cell)
            cell.source, problems = sanitise_markdown(source, cell.get("attachments", {}))
            reasons += problems
        if reasons:
            info = resources.get("nbgrader", {})
            self.log.warning(
                "%s, cell %s: %s sanitised: %s",
                info.get("student", "submission"),
                index,
                cell.cell_type,
                "; ".join(reasons[:10]),
            )
        return cell, resources
