"""Submissions that attack the grader through their form rather than their code.

A. Malformed files (a named pipe, a device, a socket or a directory in place of the notebook, a huge
   file, JSON nested 100,000 deep, fields of the wrong type) are rejected with their reason, and
   neither ``python -m cnnbook.grade_batch`` nor plain ``nbgrader autograde`` stops or hangs: the
   honest student beside them is graded.
B. Output floods (100,000 prints, 10,000 images just under the per-output cap, many cells each
   printing the most it may, one 100 MB message) leave the graded notebook and its feedback page
   under 2 MB and the grader's memory bounded, while the grader's own probe payload and verdict
   survive.
C. Markup attacks (script, event handlers, javascript: and data: URLs, iframes, SVG, a mermaid
   block, attachments, raw cells) are gone from the autograded notebook and the feedback page, and
   an ordinary heading, link and attached PNG are kept.

The unit tests come first; the end-to-end ones grade a tiny numpy assignment (trusted checks in the
format of :mod:`cnnbook.grader.plan`) in temporary course folders under /var/tmp.
"""

from __future__ import annotations

import base64
import collections
import csv
import json
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
from tiny_course import answer, folder, make_course, nbgrader, source_notebook, submit, tiny_cell
from traitlets.config import Configurable

from cnnbook import grade_batch, sandbox
from cnnbook.batch import task
from cnnbook.batch.record import read_scores
from cnnbook.grader import wire
from cnnbook.grader.preprocessors.capoutputs import ArrivalCaps, CapOutputs, text_cost
from cnnbook.grader.preprocessors.sanitisemarkdown import (
    SanitiseMarkdown,
    render,
    sanitise_markdown,
)
from cnnbook.grader.sanitise import (
    MalformedNotebook,
    Reference,
    sanitise,
    type_problems,
)
from cnnbook.grader.submission import _read_notebook

ROOT = Path(__file__).resolve().parent.parent
MALFORMED = ROOT / "tests" / "files" / "malformed"
TWO_MB = 2 * 2**20
PNG_1X1 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kg"
    "AAAABJRU5ErkJggg=="
)
WORDS = ("<script", "onerror=", "javascript:")  # what no student markup may leave in a page


# --------------------------------------------------------------------------- A: unit tests


def test_type_problems_name_each_wrong_field():
    expected = {
        "cells-not-a-list": "cells is an object, not a list",
        "cell-metadata-a-list": "cell 1: metadata is a list, not an object",
        "nbgrader-metadata-a-string": "cell 3: nbgrader metadata is a string, not an object",
        "source-a-number": "cell 1: source is a number, not text",
        "source-list-of-numbers": "cell 2: source is a list, not text",
        "outputs-not-a-list": "cell 1: outputs is a string, not a list",
        "notebook-metadata-a-list": "notebook metadata is a list, not an object",
        "kernelspec-a-string": "kernelspec is a string, not an object",
    }
    for name, problem in expected.items():
        nb = json.loads((MALFORMED / f"{name}.ipynb").read_text())
        assert type_problems(nb) == [problem], name
    assert type_problems(source_notebook()) == []


def test_sanitise_repairs_wrong_types_and_rejects_what_it_cannot():
    reference = Reference.from_notebook(source_notebook())
    for path in sorted(MALFORMED.glob("*.ipynb")):
        nb = json.loads(path.read_text())
        if path.stem == "cells-not-a-list":
            with pytest.raises(MalformedNotebook, match="cells is an object, not a list"):
                sanitise(nb, reference)
            continue
        notes = sanitise(nb, reference)
        assert notes and type_problems(nb) == [], path.stem
        assert nb["metadata"]["kernelspec"]["name"] == "python3"
        grade_ids = [c["metadata"].get("nbgrader", {}).get("grade_id") for c in nb["cells"]]
        assert grade_ids.count("test_double") == grade_ids.count("double") == 1, path.stem
    for junk in ([], "notebook", {"cells": 3}):
        with pytest.raises(ValueError):
            sanitise(junk, reference)


def test_sanitise_of_a_huge_odd_notebook_is_quick_and_its_report_short():
    nb = source_notebook()
    nb["cells"] += [
        tiny_cell(f"x = {i}", {"grade_id": f"forged{i}", "points": i}) for i in range(200_000)
    ]
    nb["cells"] += [7, "cell", tiny_cell("x", kind="heading")]
    start = time.monotonic()
    notes = sanitise(nb, Reference.from_notebook(source_notebook()))
    assert time.monotonic() - start < 20
    assert len(notes) == 21 and notes[-1].startswith("... and ")
    assert all(
        isinstance(c, dict) and c["cell_type"] in ("code", "markdown", "raw") for c in nb["cells"]
    )


@pytest.fixture
def bad_files(tmp_path):
    """One file of each hostile kind, named as the notebook would be."""
    made = {}
    fifo = tmp_path / "fifo" / "tiny.ipynb"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    made["a named pipe (FIFO)"] = fifo
    if os.geteuid() == 0:
        device = tmp_path / "device" / "tiny.ipynb"
        device.parent.mkdir()
        os.mknod(device, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero: reading never ends
        made["a character device"] = device
    sock = tmp_path / "socket" / "tiny.ipynb"
    sock.parent.mkdir()
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock))
    made["a unix socket"] = sock
    folder = tmp_path / "dir" / "tiny.ipynb"
    folder.mkdir(parents=True)
    made["a directory"] = folder
    huge = tmp_path / "huge" / "tiny.ipynb"
    huge.parent.mkdir()
    with open(huge, "wb") as f:
        f.truncate(200 * 2**20)  # sparse: 200 MB that take no disk
    made["more than the cap"] = huge
    nested = tmp_path / "nested" / "tiny.ipynb"
    nested.parent.mkdir()
    nested.write_text("[" * 100_000 + "]" * 100_000)
    made["nested more than 100 levels"] = nested
    return made


def test_read_notebook_rejects_each_bad_file_without_opening_it(bad_files):
    for reason, path in bad_files.items():
        start = time.monotonic()
        nb, problem, _ = _read_notebook(path)
        assert nb is None and reason in problem, (reason, problem)
        assert time.monotonic() - start < 5, reason


def test_checks_that_hang_or_crash_are_stopped(monkeypatch, tmp_path):
    monkeypatch.setattr(task, "prepare", lambda *args: time.sleep(60))
    start = time.monotonic()
    status, notes = task.prepare_within(1.0, tmp_path, {})
    assert status == "timed out" and "took more than 1 s" in notes[0]
    assert time.monotonic() - start < 10
    monkeypatch.setattr(task, "prepare", lambda *args: os._exit(3))
    assert task.prepare_within(10.0, tmp_path, {}) == (
        "unreadable notebook",
        ["checking the submission crashed (exit code 3)"],
    )


# --------------------------------------------------------------------------- B: unit tests


class FakeClient(Configurable):
    """The parts of nbclient's NotebookClient that ArrivalCaps uses, delivering as nbclient does."""

    def __init__(self, nb, plan=None):
        super().__init__()
        self.nb, self._plan = nb, plan
        self.clear_before_next_output = False
        self.output_hook_stack = collections.defaultdict(list)

    def clear_display_id_mapping(self, index):
        pass

    def deliver(self, outs, msg, display_id, index):
        if self.clear_before_next_output:
            outs[:] = []
            self.clear_before_next_output = False
        out = nbformat.v4.output_from_msg(msg)
        outs.append(out)
        return out

    def send(self, index, kind, **content):
        msg = {
            "msg_type": kind,
            "content": content,
            "parent_header": {"msg_id": "m"},
            "header": {"msg_type": kind},
        }
        return ArrivalCaps.of(self).output(
            self.deliver, self.nb.cells[index].outputs, msg, None, index
        )


def _code_notebook(cells: int):
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("pass") for _ in range(cells)])


def test_arrival_caps_keep_a_flooded_cell_small_and_say_how_much_was_dropped():
    client = FakeClient(_code_notebook(1))
    for i in range(100_000):
        client.send(0, "stream", name="stdout", text=f"{i}\n")
    for _ in range(2_000):
        client.send(
            0, "display_data", data={"image/png": "A" * 19_900, "text/plain": "img"}, metadata={}
        )
    outs = client.nb.cells[0].outputs
    caps = CapOutputs()
    assert len(outs) <= caps.max_cell_outputs + 1
    assert sum(len(json.dumps(o)) for o in outs) < caps.max_cell_bytes + 10_000
    assert outs[0]["text"].startswith("0\n1\n2\n")  # the prints joined into one output
    [note] = [o for o in outs if o.get("text", "").startswith("[the grader dropped")]
    assert re.fullmatch(
        r"\[the grader dropped \d+ more outputs \(\d+ bytes\) of this cell: .*\]\n", note["text"]
    ), note
    dropped = int(note["text"].split()[3])
    nb, _ = CapOutputs().preprocess(client.nb, {})
    [again] = [
        o for o in nb.cells[0].outputs if o.get("text", "").startswith("[the grader dropped")
    ]
    assert nb.cells[0].outputs[-1] is again and int(again["text"].split()[3]) == dropped


def test_arrival_caps_per_notebook_give_one_note_for_the_rest():
    client = FakeClient(_code_notebook(300))
    for index in range(300):
        for _ in range(10):
            client.send(
                index, "stream", name="stderr" if index % 2 else "stdout", text="y" * 19_000
            )
            client.send(
                index,
                "execute_result",
                data={"text/plain": "z" * 19_000},
                metadata={},
                execution_count=1,
            )
    outputs = [o for c in client.nb.cells for o in c.outputs]
    notes = [o for o in outputs if o.get("text", "").startswith("[the grader dropped")]
    assert sum(len(json.dumps(o)) for o in outputs) < CapOutputs().max_notebook_bytes + 100_000
    assert len(notes) <= 10 and "from this cell on" in notes[-1]["text"]


def test_arrival_caps_free_the_budget_of_cleared_outputs():
    client = FakeClient(_code_notebook(1))
    for i in range(5_000):  # a progress display: clear_output(wait=True), then the new state
        client.clear_before_next_output = True
        client.send(0, "display_data", data={"text/plain": f"step {i} " + "x" * 5_000}, metadata={})
    [out] = client.nb.cells[0].outputs
    assert out["data"]["text/plain"].startswith("step 4999")


def test_probe_payload_is_exempt_in_probe_cells_only():
    from cnnbook.grader.plan import Plan, Probe

    plan = Plan(object(), [Probe("double", [])])
    nb = _code_notebook(1)
    nb.cells += plan.probe_cells()
    client = FakeClient(nb, plan)
    payload = json.dumps({"results": [{"kind": "str", "value": "p" * 5_000_000}]})
    for index in (0, 1):
        for _ in range(300):  # the student's own function fills the cell first
            client.send(index, "display_data", data={"text/plain": "q" * 19_000}, metadata={})
        for _ in range(3):
            client.send(index, "display_data", data={wire.MIME: payload}, metadata={})
    kept = [[o for o in c.outputs if wire.MIME in o.get("data", {})] for c in nb.cells]
    assert kept[0] == [] and len(kept[1]) == 1 and kept[1][0]["data"][wire.MIME] == payload
    assert sum(len(json.dumps(o)) for o in nb.cells[1].outputs) < len(payload) + 400_000


def test_cap_outputs_counts_again_after_the_other_steps():
    nb = _code_notebook(20)
    for cell in nb.cells:
        cell.outputs = [
            nbformat.v4.new_output("stream", name="stdout", text="x<&>" * 4_000) for _ in range(100)
        ]
        cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text="\x1b[1m" * 5_000))
    nb, _ = CapOutputs().preprocess(nb, {})
    kept = [o for c in nb.cells for o in c.outputs]
    assert sum(text_cost(o["text"]) for o in kept) < CapOutputs().max_notebook_bytes + 10_000
    notes = [o for o in kept if o["text"].startswith("[the grader dropped")]
    assert len(notes) <= 6 and sum("from this cell on" in note["text"] for note in notes) == 1


# --------------------------------------------------------------------------- C: unit tests

ORDINARY = [
    "# Heading\n\nSome *emphasis*, **bold**, `code < x`, $a<b$ and $$\\sum_i x_i > 0$$.",
    (
        "[a link](https://numpy.org/doc/?a=1&b=2), [mail](mailto:me@example.org), "
        "[anchor](#heading), ![image](https://example.org/a.png)"
    ),
    "```python\nif a < b:\n    print('<script>')\n```",
    "- item\n- [ ] task\n\n1. one\n\n| a | b |\n|:--|--:|\n| 1 | 2 |\n\n> quoted\n\n---\n\n"
    "~~old~~ <b>bold</b> <br>",
    "![attached](attachment:pixel.png)",
    "<details><summary>More</summary>Text with <sub>sub</sub> and <span "
    "class='x'>span</span></details>",
]
ATTACKS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "[x](javascript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](javascript\\:alert(1))",
    "[r]: javascript:alert(1)\n\n[x][r]",
    "<a href='data:text/html,<script>alert(1)</script>'>x</a>",
    '<a href="java&#x09;script:alert(1)">x</a>',
    "<a href='files/javascript:alert(1)'>x</a>",
    "<iframe src=https://example.org></iframe>",
    "<object data=x></object><embed src=x>",
    "<svg><script>alert(1)</script></svg>",
    "<svg onload=alert(1)>",
    "```mermaid\n<img src=x onerror=alert(1)>\n```",
    "<body onload=alert(1)>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<img src='data:image/svg+xml;base64,PHN2Zz4='>",
    "<form action=https://example.org><button formaction=javascript:alert(1)>go</button></form>",
    "<div style='background:url(javascript:alert(1))'>x</div>",
    "![x](attachment:missing.png)",
    "<div class='modal navbar-fixed-top'>a layer over the formgrader</div>",
    (
        '<a href="&#0000106&#0000097&#0000118&#0000097&#0000115'
        "&#0000099&#0000114&#0000105&#0000112&#0000116"
        '&#0000058alert(1)">x</a>'
    ),
]


def _html_problems(markup: str) -> list[str]:
    lowered = markup.lower()
    return [
        word
        for word in (*WORDS, "<iframe", "<object", "<embed", "<svg", " onload=", "data:text")
        if word in lowered
    ]


def test_ordinary_markdown_is_kept_exactly():
    attachments = {"pixel.png": {"image/png": PNG_1X1}}
    for source in ORDINARY:
        assert sanitise_markdown(source, attachments) == (source, []), source


def test_markdown_attacks_are_removed_from_the_source_and_the_page():
    for attack in ATTACKS:
        for source in (attack, f"# Kept heading\n\n[kept link](https://numpy.org)\n\n{attack}\n"):
            cleaned, reasons = sanitise_markdown(source, {})
            assert reasons, source
            assert _html_problems(cleaned) == [] and _html_problems(render(cleaned, {})) == [], (
                source,
                cleaned,
            )
            assert sanitise_markdown(cleaned, {})[1] == [], cleaned
            if source.startswith("# Kept heading") and "mermaid" not in source:
                assert '<a href="https://numpy.org">kept link</a>' in render(cleaned, {}), cleaned


def test_raw_cells_and_attachments_are_cleaned():
    svg = base64.b64encode(
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    ).decode()
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_raw_cell(
                "<b>bold</b><script>alert(1)</script><img src=x onerror=alert(1)>",
                metadata={"raw_mimetype": "text/html"},
            ),
            nbformat.v4.new_raw_cell("\\section{Kept} $a < b$"),
            nbformat.v4.new_markdown_cell(
                "![p](attachment:p.png) ![s](attachment:s.svg)",
                attachments={
                    "p.png": {"image/png": PNG_1X1},
                    "s.svg": {"image/svg+xml": svg},
                    "h": {"text/html": "<script>"},
                },
            ),
        ]
    )
    nb.cells[1].metadata.update(
        raw_mimetype=["text/html"], tags="x"
    )  # types nbconvert's templates crash on
    nb, _ = SanitiseMarkdown().preprocess(nb, {})
    raw, latex, markdown = nb.cells
    assert raw.source == '<b>bold</b>alert(1)<img src="x">'
    assert latex.source == "\\section{Kept} $a < b$" and latex.metadata == {}
    assert markdown.attachments == {"p.png": {"image/png": PNG_1X1}}
    assert "data:image/png;base64," in render(markdown.source, markdown.attachments)
    assert _html_problems(json.dumps(nb)) == []


# --------------------------------------------------------------------------- the course


def submit_malformed(root: Path) -> dict[str, str]:
    """One student per malformed submission; returns student -> the reason the report must give."""
    expected = {}
    for path in sorted(MALFORMED.glob("*.ipynb")):
        shutil.copy(path, folder(root, path.stem) / "tiny.ipynb")
        expected[path.stem] = type_problems(json.loads(path.read_text()))[0]
    os.mkfifo(folder(root, "fifo") / "tiny.ipynb")
    expected["fifo"] = "is a named pipe (FIFO), not a file"
    if os.geteuid() == 0:
        os.mknod(folder(root, "device") / "tiny.ipynb", stat.S_IFCHR | 0o600, os.makedev(1, 5))
        expected["device"] = "is a character device, not a file"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(folder(root, "socket") / "tiny.ipynb"))
    expected["socket"] = "is a unix socket, not a file"
    (folder(root, "directory") / "tiny.ipynb").mkdir()
    expected["directory"] = "is a directory, not a file"
    with open(folder(root, "huge") / "tiny.ipynb", "wb") as f:
        f.truncate(200 * 2**20)
    expected["huge"] = f"is {200 * 2**20} bytes, more than the cap"
    (folder(root, "nested") / "tiny.ipynb").write_text("[" * 100_000 + "]" * 100_000)
    expected["nested"] = "JSON nested more than 100 levels deep"
    return expected


def _report(root: Path) -> dict[str, dict]:
    with open(root / "grade_batch" / "tiny" / "report.csv", newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def course():
    if sandbox.bwrap_problem():
        pytest.skip(sandbox.bwrap_problem())
    root = Path(tempfile.mkdtemp(prefix="cnnbook-inputs-", dir="/var/tmp"))
    try:
        yield make_course(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- A: end to end


@pytest.mark.slow
def test_batch_rejects_each_malformed_submission_and_grades_the_honest_one(course):
    submit(course, "aa-honest", answer(course))
    (folder(course, "aa-honest") / "pipe").parent.mkdir(exist_ok=True)
    os.mkfifo(folder(course, "aa-honest") / "pipe")  # beside the notebook: removed, the rest graded
    expected = submit_malformed(course)
    start = time.monotonic()
    results = grade_batch.grade(course, "tiny", ["aa-honest", *expected], workers=1)
    took = time.monotonic() - start
    report = _report(course)
    assert sorted(r["student"] for r in results) == sorted(report)
    honest = report["aa-honest"]
    assert (honest["status"], honest["score"], honest["max_score"]) == ("graded", "2.0", "2.0"), (
        honest
    )
    assert "'pipe' is a named pipe (FIFO), not a file: left out" in honest["notes"]
    for student, reason in expected.items():
        row = report[student]
        assert row["status"] == "unreadable notebook" and reason in row["notes"], row
    assert took < 120, f"the batch took {took:.0f} s"


@pytest.mark.slow
def test_plain_autograde_finishes_and_grades_the_honest_student():
    if sandbox.bwrap_problem():
        pytest.skip(sandbox.bwrap_problem())
    root = make_course(Path(tempfile.mkdtemp(prefix="cnnbook-plain-", dir="/var/tmp")))
    try:
        submit(root, "aa-honest", answer(root))
        expected = submit_malformed(root)
        done = nbgrader(root, "autograde", "tiny", timeout=600)
        log = done.stdout + done.stderr
        scores = {
            student: read_scores(
                f"sqlite:///{root / 'gradebook.db'}", "default_course", "tiny", student
            )[0]
            for student in ["aa-honest", *expected]
        }
        assert scores["aa-honest"] == 2, log[-3000:]
        for student in ("fifo", "device", "socket", "huge", "directory"):
            if student in expected:
                assert f"{student}/tiny/tiny.ipynb" in log and scores[student] in (None, 0), student
        for student in ("fifo", "device", "socket", "huge"):
            if student in expected:
                assert (folder(root, student) / "tiny.ipynb.rejected").exists(), student
        # nbformat refuses some of the wrong types itself (that student fails, the run goes on);
        # sanitise repairs those it lets through, and the notebook is graded.
        for student in ("source-a-number", "kernelspec-a-string", "nbgrader-metadata-a-string"):
            assert scores[student] is not None, (student, log[-3000:])
        assert (
            "source-a-number, tiny/tiny.ipynb sanitised: cell 1: source was a number, not text: "
            "emptied" in log
        )
        for student in (
            "cells-not-a-list",
            "cell-metadata-a-list",
            "outputs-not-a-list",
            "source-list-of-numbers",
            "notebook-metadata-a-list",
            "nested",
        ):
            assert f"error processing assignment 'tiny' for student '{student}'" in log, student
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- B: end to end

PNG_NEAR_CAP = PNG_1X1 + "A" * (19_900 - len(PNG_1X1))  # just under the 20,000-byte cap per output
FLOOD_SOLUTION = f"""
from IPython.display import display
PNG = {PNG_NEAR_CAP!r}

def double(x):
    for i in range(3_000):  # runs in the grader's probe cell: its payload must still get through
        print("noise from double", i)
    for i in range(300):
        display({{"image/png": PNG}}, raw=True)
    return 2 * np.asarray(x)
"""
FLOODS = [
    "for i in range(100_000):\n    print(i)",
    "for i in range(10_000):\n    display({'image/png': PNG}, raw=True)",
    *["print('y' * 30_000)\nfor i in range(150):\n    display({'image/png': PNG}, raw=True)"] * 30,
    "print('\\x1b[1m<&>' * 200_000)",
]
# Runs nbgrader and reports the grader process's peak memory (VmHWM: of this program alone, not of
# the test process it was started from, which getrusage would count too; nor of its children, the
# kernels).
PEAK_RSS = (
    "import re, runpy, sys\nsys.argv = ['nbgrader', *sys.argv[1:]]\ntry:\n"
    "    runpy.run_module('nbgrader', run_name='__main__')\nfinally:\n"
    "    peak = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1]\n"
    "    print('PEAK_RSS_KB', peak, file=sys.stderr)\n"
)


def autograde_measured(course: Path, student: str) -> dict:
    """Autograde one student, then make the feedback; the files, the time and the grader's peak
    memory."""
    start = time.monotonic()
    done = nbgrader(course, "autograde", "tiny", "--student", student, "--force", wrapper=PEAK_RSS)
    took = time.monotonic() - start
    assert done.returncode == 0, "\n".join(
        line for line in done.stderr.splitlines() if "rror" in line
    )[-3000:]
    feedback = nbgrader(course, "generate_feedback", "tiny", "--student", student, "--force")
    assert feedback.returncode == 0, feedback.stderr[-3000:]
    peak = int(re.search(r"PEAK_RSS_KB (\d+)", done.stderr)[1]) * 1024
    return {
        "seconds": took,
        "peak_rss": peak,
        "notebook": course / "autograded" / student / "tiny" / "tiny.ipynb",
        "feedback": course / "feedback" / student / "tiny" / "tiny.html",
        "log": done.stderr,
    }


@pytest.fixture(scope="module")
def flood(course):
    submit(course, "flood", answer(course, FLOOD_SOLUTION, [tiny_cell(code) for code in FLOODS]))
    return autograde_measured(course, "flood")


@pytest.mark.slow
def test_flooded_notebook_and_feedback_stay_under_2_mb(flood):
    notebook, feedback = flood["notebook"].stat().st_size, flood["feedback"].stat().st_size
    print(
        f"\nflood: graded notebook {notebook} bytes, feedback {feedback} bytes, grader peak RSS "
        f"{flood['peak_rss'] / 2**20:.0f} MiB, {flood['seconds']:.0f} s"
    )
    assert notebook < TWO_MB and feedback < TWO_MB
    nb = json.loads(flood["notebook"].read_text())
    texts = ["".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", [])]
    assert any(t.startswith("[the grader dropped") for t in texts)


@pytest.mark.slow
def test_flood_keeps_the_probe_payload_and_the_verdict(flood):
    nb = json.loads(flood["notebook"].read_text())
    [test_cell] = [
        c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == "test_double"
    ]
    assert "".join(test_cell["outputs"][0]["text"]) == "Graded: passed (2 of 2 points)\n"
    assert "Graded: passed (2 of 2 points)" in flood["feedback"].read_text()


@pytest.mark.slow
def test_flood_leaves_the_graders_memory_bounded(flood):
    assert flood["peak_rss"] < 400 * 2**20, f"grader peak RSS {flood['peak_rss'] / 2**20:.0f} MiB"


@pytest.mark.slow
def test_one_oversized_message_never_reaches_the_graders_memory(course):
    # Without the cap, the grader's peak is about 420 MiB for this 100 MB message.
    submit(
        course,
        "oversized",
        answer(
            course, extra_cells=[tiny_cell("print('z' * 100_000_000)"), tiny_cell("print('after')")]
        ),
    )
    graded = autograde_measured(course, "oversized")
    print(
        f"\noversized: grader peak RSS {graded['peak_rss'] / 2**20:.0f} MiB, "
        f"{graded['seconds']:.0f} s"
    )
    assert graded["peak_rss"] < 300 * 2**20
    assert (
        graded["notebook"].stat().st_size < 100_000 and graded["feedback"].stat().st_size < TWO_MB
    )
    # zmq closes the kernel's output channel for good: the rest of the notebook, probes included,
    # sends nothing, so the student gets no points (never more).
    nb = json.loads(graded["notebook"].read_text())
    [test_cell] = [
        c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == "test_double"
    ]
    assert "".join(test_cell["outputs"][0]["traceback"]) == (
        "Failed: double returned no result the grader could read"
    )


# --------------------------------------------------------------------------- C: end to end

SVG_SCRIPT = base64.b64encode(
    b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'
).decode()
MARKUP_CELLS = [
    tiny_cell(
        "# Student heading\n\nSee [the numpy docs](https://numpy.org/doc/) and ![a "
        "pixel](attachment:pixel.png)",
        kind="markdown",
        attachments={"pixel.png": {"image/png": PNG_1X1}},
    ),
    *[tiny_cell(attack, kind="markdown") for attack in ATTACKS if "missing.png" not in attack],
    tiny_cell(
        "![evil](attachment:evil.svg)",
        kind="markdown",
        attachments={
            "evil.svg": {"image/svg+xml": SVG_SCRIPT},
            "page.html": {"text/html": "<script>alert(3)</script>"},
        },
    ),
    tiny_cell(
        "<script>alert('raw')</script><img src=x onerror=alert('raw')>",
        kind="raw",
        metadata={"raw_mimetype": "text/html"},
    ),
    tiny_cell("<a href='javascript:alert(1)'>raw link</a>", kind="raw"),
]


@pytest.fixture(scope="module")
def markup(course):
    submit(course, "markup", answer(course, extra_cells=MARKUP_CELLS))
    submit(course, "plain", answer(course))
    results = grade_batch.grade(course, "tiny", ["markup", "plain"], workers=1)
    assert [r["status"] for r in results] == ["graded", "graded"], results
    for student in ("markup", "plain"):
        done = nbgrader(course, "generate_feedback", "tiny", "--student", student, "--force")
        assert done.returncode == 0, done.stderr[-3000:]
    return {
        student: (
            json.loads((course / "autograded" / student / "tiny" / "tiny.ipynb").read_text()),
            (course / "feedback" / student / "tiny" / "tiny.html").read_text(),
        )
        for student in ("markup", "plain")
    }


@pytest.mark.slow
def test_autograded_notebook_keeps_no_student_markup_that_runs(markup):
    nb, _ = markup["markup"]
    text = json.dumps([c for c in nb["cells"] if c["cell_type"] in ("markdown", "raw")])
    assert [word for word in WORDS if word in text.lower()] == []
    assert [
        problem
        for c in nb["cells"]
        if c["cell_type"] == "markdown"
        for problem in _html_problems(render("".join(c["source"]), c.get("attachments", {})))
    ] == []
    heading = nb["cells"][3]
    assert "".join(heading["source"]).startswith(
        "# Student heading\n\nSee [the numpy docs](https://numpy.org/doc/)"
    )
    assert heading["attachments"] == {"pixel.png": {"image/png": PNG_1X1}}
    [evil] = [c for c in nb["cells"] if "![evil]" in "".join(c["source"])]
    assert "attachments" not in evil  # the SVG (with script) and the HTML attachment both removed


@pytest.mark.slow
def test_feedback_page_runs_no_student_markup(markup):
    _, page = markup["markup"]
    _, plain = markup["plain"]
    # The template has a few of these words of its own (its scripts, a CSS rule about javascript:
    # links): the page of the student with the attacks has just as many as a plain student's.
    for word in (*WORDS, " onload=", "<iframe", "<embed", "<object", "<svg", "data:text"):
        assert page.lower().count(word) == plain.lower().count(word), word
    assert (
        'id="Student-heading"' in page
        and '<a href="https://numpy.org/doc/">the numpy docs</a>' in page
    )
    assert f"data:image/png;base64,{PNG_1X1}" in page
    assert "Graded: passed (2 of 2 points)" in page


def test_the_batch_reads_only_the_regular_files_of_a_submission(tmp_path):
    """The batch's client may run as root: a link (to a file or a folder of secrets), a named pipe
    or a huge file beside the notebook is left out unread, with a note; the notebook and a nested
    data file are read. A worker's tree with a path that leaves its folder is refused."""
    from cnnbook.batch.files import read_submission, write_tree

    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "solutions.txt").write_text("SOLUTIONS")
    folder = tmp_path / "submitted" / "s1" / "tiny"
    (folder / "data").mkdir(parents=True)
    (folder / "tiny.ipynb").write_text("{}")
    (folder / "data" / "x.csv").write_text("1,2\n")
    (folder / "link.txt").symlink_to(secrets_dir / "solutions.txt")
    (folder / "linked-dir").symlink_to(secrets_dir)
    os.mkfifo(folder / "pipe")
    with open(folder / "huge.bin", "wb") as f:
        f.truncate(2 * 2**20 + 1)
    files, left_out = read_submission(folder, max_bytes=2 * 2**20)
    assert files == {"data/x.csv": b"1,2\n", "tiny.ipynb": b"{}"}
    assert left_out == {
        "huge.bin": (
            f"'huge.bin' is {2 * 2**20 + 1} bytes, more than the cap of {2 * 2**20} bytes: left out"
        ),
        "link.txt": "'link.txt' is a symbolic link, not a file: left out",
        "linked-dir": "'linked-dir' is a symbolic link, not a file: left out",
        "pipe": "'pipe' is a named pipe (FIFO), not a file: left out",
    }
    with pytest.raises(ValueError, match="outside"):
        write_tree(tmp_path / "out", {"../escaped.txt": b"x"})
    assert not (tmp_path / "escaped.txt").exists()
