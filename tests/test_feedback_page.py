"""The feedback page a student reads (cnnbook/grader/feedback_page/): each mistake the visible
tests name is named by the grader in every cell it fails, random-case cells included; each score
row is named after its task; long lines wrap from 360 to 1280 px (Chromium; screenshots in
test-artifacts/).

The verdicts are checked twice: in this process on three draws of random cases (fast), and through
real nbgrader, with one course and one `nbgrader autograde` and `nbgrader generate_feedback` per
assignment for all cases. The wrong submissions are the current reference solutions, one edit each.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import (
    ROOT,
    grade_id,
    html_text,
    make_course,
    nbgrader,
    solution_body,
    source_text,
    with_mistake,
)

from cnnbook import sandbox
from cnnbook.grader.checks import ps1_convolution, ps2_pooling
from cnnbook.grader.feedback_page import score_row_names
from cnnbook.grader.inprocess import judge_namespace

ASSIGNMENTS = {"ps1-convolution": "convolution", "ps2-pooling": "pooling"}
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
SAME_PADS = "pads.append((total // 2, total - total // 2))"
MAX_CELL = "out[:, i, j, :] = x[:, r0:r1, c0:c1, :].max(axis=(1, 2))"
AVG_CELL = "x[:, r0:r1, c0:c1, :].mean(axis=(1, 2))"


@dataclass(frozen=True)
class Mistake:
    student: str
    assignment: str
    cell: str  # the solution cell that gets the mistake
    old: str
    new: str
    names: tuple[str, ...]  # every failed verdict of this submission says one of these
    nbgrader: bool = True  # also graded by real nbgrader (False: in this process only)


CASES = [
    Mistake(
        "flipped-kernel",
        "ps1-convolution",
        "conv2d",
        "np.tensordot(window, w,",
        "np.tensordot(window, w[::-1, ::-1],",
        ("you flipped the filter",),
    ),
    Mistake(
        "kernel-height-width-swapped",
        "ps1-convolution",
        "conv2d",
        "np.tensordot(window, w,",
        "np.tensordot(window, w.transpose(1, 0, 2, 3),",
        ("height and width are swapped",),
    ),
    Mistake(
        "output-height-width-swapped",
        "ps1-convolution",
        "conv2d",
        "    return out\n",
        "    return out.transpose(0, 2, 1, 3)\n",
        ("height and width are swapped",),
        nbgrader=False,  # in this process only: its words are the kernel swap's
    ),
    Mistake(
        "channels-first",
        "ps1-convolution",
        "conv2d",
        "    return out\n",
        "    return out.transpose(0, 3, 1, 2)\n",
        ("yours is channels-first",),
    ),
    Mistake(
        "same-top-left",
        "ps1-convolution",
        "conv2d",
        SAME_PADS,
        "pads.append((total - total // 2, total // 2))",
        ("yours went on the top/left",),
    ),
    Mistake(
        "same-both-sides",
        "ps1-convolution",
        "conv2d",
        SAME_PADS,
        "pads.append((k // 2, k // 2))",
        # Where both-sides padding gives TensorFlow's size, its values are top/left padding's.
        ("not the same number on every side", "yours went on the top/left"),
    ),
    Mistake(
        "stride-off-by-one",
        "ps1-convolution",
        "conv2d",
        "// sh + 1\n    out_w = (x.shape[2] - kw) // sw + 1",
        "// sh\n    out_w = (x.shape[2] - kw) // sw",
        ("you stopped one window early",),
    ),
    Mistake(
        "max-pool-zero-padding",
        "ps2-pooling",
        "max_pool2d",
        MAX_CELL,
        MAX_CELL.replace(
            "x[:, r0:r1, c0:c1, :].max(axis=(1, 2))",
            "np.maximum(x[:, r0:r1, c0:c1, :].max(axis=(1, 2)), "
            "0 if (r1 - r0, c1 - c0) != (kh, kw) else -np.inf)",
        ),
        ("yours padded with 0",),
    ),
    Mistake(
        "avg-pool-counts-padding",
        "ps2-pooling",
        "avg_pool2d",
        AVG_CELL,
        "x[:, r0:r1, c0:c1, :].sum(axis=(1, 2)) / (kh * kw)",
        ("yours also counted the padded cells",),
    ),
    Mistake(
        "pool-same-top-left",
        "ps2-pooling",
        "max_pool2d",  # the cell with _windows, which both pooling functions use
        "before = max((count - 1) * s + k - n, 0) // 2",
        "before = -(-max((count - 1) * s + k - n, 0) // 2)",
        ("yours is at the top/left",),
        nbgrader=False,  # ps1's top/left case goes through nbgrader
    ),
]
GRADED = [case for case in CASES if case.nbgrader]
PAGE_STUDENT = "same-both-sides"  # the page the browser opens: long messages in several cells


CHECKS = {"ps1-convolution": ps1_convolution, "ps2-pooling": ps2_pooling}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.student)
def test_the_grader_names_the_mistake_on_any_random_cases(case):
    """In this process (cnnbook.grader.inprocess), on three draws of random cases: the verdicts the
    feedback pages below show, without nbgrader."""
    source = json.loads(
        (ROOT / "solutions" / case.assignment / f"{ASSIGNMENTS[case.assignment]}.ipynb").read_text()
    )
    cells = [cell for cell in source["cells"] if cell["cell_type"] == "code"]
    namespace, code_cells = {}, []
    for cell in cells:
        body = solution_body(cell) if cell["metadata"].get("nbgrader", {}).get("solution") else ""
        if grade_id(cell) == case.cell:
            assert case.old in body, f"{case.cell} no longer contains {case.old!r}"
            body = body.replace(case.old, case.new, 1)
        if body or grade_id(cell) == "imports":
            exec(body or source_text(cell), namespace)  # noqa: S102 - the course's own solution
        code_cells.append({"source": body or source_text(cell), "metadata": cell["metadata"]})
    for seed in (1, 2, 3):
        verdicts = judge_namespace(CHECKS[case.assignment], namespace, code_cells, seed)
        failed = {gid: v.message for gid, v in verdicts.items() if v.fraction < 1}
        assert any("random" in gid for gid in failed), (seed, failed)
        unnamed = {gid: m for gid, m in failed.items() if not any(n in m for n in case.names)}
        assert not unnamed, (seed, unnamed)


@pytest.fixture(scope="module")
def course():
    """Every case and an honest submission per assignment, autograded, with their feedback pages."""
    if sandbox.bwrap_problem():
        pytest.skip(sandbox.bwrap_problem())
    course = make_course(tuple(ASSIGNMENTS), prefix="cnnbook-feedback-")
    try:
        start = time.monotonic()
        for assignment, notebook in ASSIGNMENTS.items():
            honest = course.submission(assignment, notebook, honest=True)
            course.submit("honest", assignment, honest, notebook=notebook)
            for case in (c for c in GRADED if c.assignment == assignment):
                nb = with_mistake(course, assignment, notebook, case.cell, case.old, case.new)
                course.submit(case.student, assignment, nb, notebook=notebook)
            for step in ("autograde", "generate_feedback"):
                run = nbgrader(course, step, assignment, "--force")
                assert run.returncode == 0, f"{step} {assignment}:\n{run.stderr[-3000:]}"
        seconds = time.monotonic() - start
        print(f"\n{len(GRADED) + 2} submissions graded, feedback included, in {seconds:.0f} s")
        yield course
    finally:
        course.remove()


def failed_verdicts(course, student: str, assignment: str) -> dict[str, str]:
    """{grade_id: the grader's message} of each graded cell that earned nothing."""
    nb = course.autograded(student, assignment, ASSIGNMENTS[assignment])
    return {
        grade_id(cell): cell["outputs"][0]["evalue"]
        for cell in nb["cells"]
        if cell["metadata"].get("nbgrader", {}).get("grade")
        and cell.get("outputs")
        and cell["outputs"][0]["output_type"] == "error"
    }


@pytest.mark.slow
@pytest.mark.parametrize("case", GRADED, ids=lambda case: case.student)
def test_feedback_names_the_mistake_in_every_cell_it_fails(course, case):
    verdicts = failed_verdicts(course, case.student, case.assignment)
    raw = course.feedback_html(case.student, case.assignment, ASSIGNMENTS[case.assignment])
    page = html_text(raw)
    random_cells = [gid for gid in verdicts if "random" in gid]
    assert random_cells, f"{case.student}: no random-case cell failed: {sorted(verdicts)}"
    for gid, message in verdicts.items():
        assert any(name in message for name in case.names), f"{case.student}, {gid}: {message}"
        assert f"Failed: {message}" in page, f"{case.student}, {gid}: not in the feedback page"
        assert "expected" not in message.lower(), message
    # Every error shown is a verdict of the grader: the student's own failed asserts are not.
    shown = re.findall(r'output_error">\s*<pre>\s*([^<]{0,20})', raw)
    assert len(shown) == len(verdicts) and all(s.startswith("Failed: ") for s in shown), shown


def score_rows(page: str) -> list[tuple[str, str, float, float]]:
    """(grade_id, name, score, points) of each row of a feedback page's score list."""
    rows = re.findall(
        r'<li class="score-row[^"]*"><a href="#([^"]+)">([^<]*)</a> '
        r'<span class="row-score">\(Score: ([\d.]+) / ([\d.]+)\)</span>',
        page,
    )
    return [(gid, name, float(score), float(points)) for gid, name, score, points in rows]


@pytest.mark.slow
@pytest.mark.parametrize("assignment", list(ASSIGNMENTS))
def test_each_score_row_is_named_after_its_task(course, assignment):
    notebook = ASSIGNMENTS[assignment]
    source = course.source_notebook(assignment, notebook)
    graded, task = {}, ""
    for cell in source["cells"]:  # the task number above each graded cell, read independently
        if cell["cell_type"] == "markdown":
            found = re.match(r"#+\s*(Task \d+:)", source_text(cell))
            task = found.group(1) if found else task
        if cell["metadata"].get("nbgrader", {}).get("grade"):
            graded[grade_id(cell)] = (task, float(cell["metadata"]["nbgrader"]["points"]))
    rows = score_rows(course.feedback_html("honest", assignment, notebook))
    assert [gid for gid, *_ in rows] == list(graded), rows
    for gid, name, score, points in rows:
        tail = gid.split("_")[-1]  # e.g. "cases" of test_conv2d_random_cases
        assert name.startswith(graded[gid][0]) and name.endswith(tail), (gid, name)
        assert score == points == graded[gid][1], (gid, score, points)
    assert len({name for _, name, *_ in rows}) == len(rows), "two rows have the same name"
    assert "Test cell" not in course.feedback_html("honest", assignment, notebook)


def test_score_row_names_come_from_the_locked_task_headings():
    def markdown(source, locked=True):
        return {
            "cell_type": "markdown",
            "source": source,
            "metadata": {"nbgrader": {"locked": locked}},
        }

    def test(name):
        meta = {"grade": True, "grade_id": name, "locked": True, "points": 1}
        return {"cell_type": "code", "source": "", "metadata": {"nbgrader": meta}}

    nb = {
        "cells": [
            test("test_intro_check"),
            markdown("## Task 1: `max_pool2d` (10 points)\nText."),
            test("test_max_pool_seed_example"),
            markdown("## Task 2: `conv2d` with numpy (1 point)"),
            markdown("Not a heading: the task stays."),
            markdown("## Renamed by the student", locked=False),
            test("test_conv2d_random_cases"),
        ]
    }
    assert score_row_names(nb) == {
        "test_intro_check": "intro check",
        "test_max_pool_seed_example": "Task 1: max_pool2d \N{EN DASH} max pool seed example",
        "test_conv2d_random_cases": "Task 2: conv2d with numpy \N{EN DASH} random cases",
    }


# --------------------------------------------------------------------------- in a browser

LAYOUT = """() => {
  const width = document.documentElement.clientWidth;
  const outside = [...document.querySelectorAll('body *')].filter(e => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && r.right > width + 1;
  }).map(e => `${e.tagName}.${e.className}`);
  const scrolling = [...document.querySelectorAll('pre, code, div.output_subarea, div.input_area')]
    .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => `${e.tagName}.${e.className}`);
  const verdicts = [...document.querySelectorAll('div.output_error pre')].map(pre => ({
    text: pre.innerText.trim(),
    lines: Math.round(
      pre.getBoundingClientRect().height / parseFloat(getComputedStyle(pre).lineHeight)),
  }));
  const rows = [...document.querySelectorAll('ol.score-rows li')].map(li => li.innerText.trim());
  return {width, scrollWidth: document.documentElement.scrollWidth, outside: outside.slice(0, 5),
          scrolling: scrolling.slice(0, 5), verdicts, rows};
}"""


def open_page(browser, path: Path, width: int):
    """The page at this window width; nothing outside the file is fetched (MathJax's CDN is not)."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.route(
        "**/*",
        lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort(),
    )
    page = context.new_page()
    page.goto(path.as_uri(), wait_until="load")
    return context, page


@pytest.mark.slow
@pytest.mark.browser
def test_feedback_page_wraps_long_lines_from_360_to_1280_px(course, browser):
    assignment = "ps1-convolution"
    path = course.feedback_dir / PAGE_STUDENT / assignment / f"{ASSIGNMENTS[assignment]}.html"
    names = [name for _, name, *_ in score_rows(path.read_text(encoding="utf-8"))]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in (360, 390, 1280):
        context, page = open_page(browser, path, width)
        try:
            if width != 360:
                shot = SCREENSHOTS / f"feedback-{assignment}-{width}px"
                page.screenshot(path=f"{shot}-top.png")
                page.locator("div.output_error").last.scroll_into_view_if_needed()
                page.screenshot(path=f"{shot}-verdict.png")
            layout = page.evaluate(LAYOUT)
        finally:
            context.close()
        assert layout["scrollWidth"] <= layout["width"] == width, layout
        assert not layout["outside"] and not layout["scrolling"], layout
        assert [row.split(" (Score:")[0] for row in layout["rows"]] == names, layout["rows"]
        verdicts = layout["verdicts"]
        assert len(verdicts) >= 3, verdicts
        # A verdict longer than a line of the window is shown whole, on several lines.
        chars_per_line = width / 8
        for verdict in verdicts:
            if len(verdict["text"]) > 1.5 * chars_per_line:
                assert verdict["lines"] >= 2, (width, verdict)
