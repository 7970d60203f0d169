"""CapOutputs: what a student's code may display, capped per output, per cell and per notebook.

The caps apply twice. As outputs arrive from the kernel, :class:`ArrivalCaps` (called by
SandboxedExecute's ``output`` hook) counts and drops whatever is past them, so a kernel that floods
output never fills the grader's memory; :class:`CappedKernelClient` makes zmq refuse any single
message larger than ``max_message_bytes`` before it is read (which ends that kernel's output for
the rest of the notebook: see the class). After the other output steps,
:class:`CapOutputs` applies the same caps to the notebook as it will be saved (outputs replaced
through a display id after they arrived, and notes added by other steps, are counted again), so
the graded notebook and its feedback page stay small whatever the student displays.

Sizes are counted as the graded notebook or the feedback page spends them, whichever spends more:
a character that HTML escapes (``<`` is ``&lt;``) counts five bytes, a control character (an ANSI
escape becomes a ``<span class=...>``) a hundred, a line break thirteen (the notebook stores each
line as an indented JSON string), and every output a fixed overhead for its markup.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import zmq
import zmq.asyncio
from jupyter_client.asynchronous import AsyncKernelClient
from nbformat.notebooknode import NotebookNode
from traitlets import Integer, default

from cnnbook.grader import wire
from cnnbook.grader.preprocessors.capoutputbytes import CapOutputBytes

OUTPUT_OVERHEAD = 400  # bytes of markup around one output in the feedback page
NOTE_COST = (
    OUTPUT_OVERHEAD + 300
)  # a note about dropped outputs, counted against the notebook's caps
_ESCAPED = dict.fromkeys(map(ord, "<>&\"'"))  # five to six bytes each in HTML
_CONTROL = dict.fromkeys(
    [*range(9), *range(11, 32), 127]
)  # \u00XX in JSON, ANSI colour spans in HTML
_NOTE = re.compile(
    r"\[the grader dropped (\d{1,12}) more outputs? \((\d{1,15}) bytes\)[^\]\n]*\]\n"
)
OUTPUT_TYPES = ("stream", "display_data", "execute_result", "error")


def text_cost(text: str) -> int:
    """Bytes ``text`` may take in the graded notebook or its feedback page (an upper estimate)."""
    return (
        _size(text)
        + 4 * (len(text) - len(text.translate(_ESCAPED)))
        + 100 * (len(text) - len(text.translate(_CONTROL)))
        + 12 * text.count("\n")
    )


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _value_cost(value) -> int:
    if isinstance(value, str):
        return text_cost(value)
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return sum(text_cost(part) for part in value)
    try:
        return len(json.dumps(value, default=str))
    except (RecursionError, ValueError):  # nested too deeply to be shown: as if it were huge
        return 2**62


def output_cost(out: dict, exempt: str | None = None) -> int:
    """What one output (or one output message's content) costs; the ``exempt`` mime type costs
    nothing."""
    fields = [out.get(key) for key in ("text", "ename", "evalue") if key in out]
    fields += [line for line in out.get("traceback") or () if isinstance(line, str)]
    data = out.get("data") if isinstance(out.get("data"), dict) else {}
    fields += [value for mime, value in data.items() if mime != exempt]
    fields += [out["metadata"]] if out.get("metadata") else []
    return OUTPUT_OVERHEAD + sum(_value_cost(value) for value in fields if value is not None)


def note_text(dropped: int, cost: int, caps: CapOutputs, notebook_wide: bool) -> str:
    where = "from this cell on" if notebook_wide else "of this cell"
    return (
        f"[the grader dropped {dropped} more output{'s' * (dropped != 1)} ({cost} bytes) {where}: "
        f"a cell keeps at most {caps.max_cell_outputs} outputs and {caps.max_cell_bytes} bytes, "
        f"a notebook {caps.max_notebook_outputs} outputs and {caps.max_notebook_bytes} bytes]\n"
    )


@dataclass
class CellTally:
    """What one cell displays so far, what it dropped, and its note about the drops."""

    outputs: int = 0
    cost: int = 0
    dropped: int = 0
    dropped_cost: int = 0
    note: NotebookNode | None = None
    notebook_wide: bool = False
    stream: NotebookNode | None = None  # the stream output that more text of the same stream joins
    stream_bytes: int = 0


class Budget:
    """The caps of one notebook: what it still may display, and one note per cell that dropped
    outputs.

    Once an output does not fit the notebook's own caps, the note of the cell where that happened
    counts the drops of every later cell ("from this cell on"), so a notebook of many cells gets one
    note, not one per cell.
    """

    def __init__(self, caps: CapOutputs):
        self.caps = caps
        self.outputs = self.cost = 0
        self.full: CellTally | None = (
            None  # the cell whose note speaks for the rest of the notebook
        )

    def admits(self, cell: CellTally, cost: int) -> bool:
        caps = self.caps
        return (
            self._notebook_admits(cost)
            and cell.outputs < caps.max_cell_outputs
            and cell.cost + cost <= caps.max_cell_bytes
        )

    def _notebook_admits(self, cost: int) -> bool:
        return (
            self.outputs < self.caps.max_notebook_outputs
            and self.cost + cost <= self.caps.max_notebook_bytes
        )

    def fits_bytes(self, cell: CellTally, grown: int) -> bool:
        """Whether an output of ``cell`` may grow by ``grown`` bytes (a stream that gets more
        text)."""
        return (
            cell.cost + grown <= self.caps.max_cell_bytes
            and self.cost + grown <= self.caps.max_notebook_bytes
        )

    def grow(self, cell: CellTally, grown: int) -> None:
        cell.cost, self.cost = cell.cost + grown, self.cost + grown

    def take(self, cell: CellTally, cost: int) -> None:
        cell.outputs, cell.cost = cell.outputs + 1, cell.cost + cost
        self.outputs, self.cost = self.outputs + 1, self.cost + cost

    def forget(self, cell: CellTally) -> None:
        """The cell's outputs were cleared (IPython's clear_output): their budget is free again."""
        self.outputs, self.cost = self.outputs - cell.outputs, self.cost - cell.cost
        if self.full is cell:
            self.full = None
        cell.__init__()  # back to an empty cell

    def drop(self, cell: CellTally, cost: int) -> NotebookNode | None:
        """Count one dropped output; returns a new note to append to this cell's outputs, if one is
        due.

        Notes cost like outputs: once the notebook cannot afford another, its last note (the one of
        the cell where that happened) counts for every later cell.
        """
        holder = cell
        if not self._notebook_admits(cost) or (
            cell.note is None and not self._notebook_admits(NOTE_COST)
        ):
            if self.full is None or self.full.note is None:
                self.full, cell.notebook_wide = cell, True
            holder = self.full
        holder.dropped, holder.dropped_cost = holder.dropped + 1, holder.dropped_cost + cost
        text = note_text(holder.dropped, holder.dropped_cost, self.caps, holder.notebook_wide)
        if holder.note is not None:
            holder.note["text"] = text
            return None
        holder.note = NotebookNode(output_type="stream", name="stdout", text=text)
        self.take(holder, NOTE_COST)
        return holder.note


class CapOutputs(CapOutputBytes):
    """Cap each output (``max_bytes``), each cell and the whole notebook (outputs and bytes).

    Past a cap, outputs are dropped and one note per cell says how many. Runs after nbgrader's
    LimitOutput and before TrustedGrades, whose verdict output is therefore never dropped.
    """

    max_cell_outputs = Integer(100, help="Outputs kept per cell.").tag(config=True)
    max_cell_bytes = Integer(
        200_000,
        help="Bytes of output kept per cell (as counted for the feedback "
        "page: HTML escapes count extra).",
    ).tag(config=True)
    max_notebook_outputs = Integer(1_000, help="Outputs kept per notebook.").tag(config=True)
    max_notebook_bytes = Integer(
        1_000_000, help="Bytes of output kept per notebook (counted as per cell)."
    ).tag(config=True)

    def cap_output(self, out: dict, exempt: str | None = None) -> None:
        """One output (or an output message's content) within ``max_bytes``, in place.

        Text is cut with a note; any other value over the cap (a cut image would only show as
        broken) is removed, with a note in its text/plain. The ``exempt`` mime type is left alone.
        """
        if isinstance(out.get("text"), (str, list)):
            out["text"] = self._cap(out["text"])
        for key in ("ename", "evalue"):
            if isinstance(out.get(key), str):
                out[key] = self._cap(out[key][: 4 * self.max_bytes])
        if isinstance(out.get("traceback"), list):
            out["traceback"] = self._cap_lines(out["traceback"])
        if isinstance(out.get("data"), dict):
            self._cap_data(out["data"], exempt)
        if out.get("metadata") and _value_cost(out["metadata"]) > self.max_bytes:
            out["metadata"] = {}

    def _cap_lines(self, lines: list) -> list:
        kept, size = [], 0
        for line in lines[:100]:
            line = self._cap(line) if isinstance(line, str) else ""
            size += len(line)
            if size > self.max_bytes:
                kept.append(f"... [traceback cut by the grader at {self.max_bytes} bytes]")
                break
            kept.append(line)
        return kept

    def _cap_data(self, data: dict, exempt: str | None) -> None:
        removed = []
        for mime, value in list(data.items()):
            if mime == exempt or mime == "text/plain":
                continue
            size = _value_cost(value)
            if size > self.max_bytes:
                del data[mime]
                removed.append(f"{mime[:60]} ({size} bytes)")
        if isinstance(data.get("text/plain"), (str, list)):
            data["text/plain"] = self._cap(data["text/plain"])
        if removed:
            note = (
                f"[{', '.join(removed)} output removed by the grader: larger than {self.max_bytes} "
                f"bytes]"
            )
            text = data.get("text/plain") if isinstance(data.get("text/plain"), str) else ""
            data["text/plain"] = f"{text}\n{note}" if text else note

    def preprocess(self, nb, resources):
        budget = Budget(self)
        for cell in nb.cells:
            if cell.cell_type == "code" and isinstance(cell.get("outputs"), list):
                cell.outputs = self._cap_cell(cell.outputs, budget)
        return nb, resources

    def _cap_cell(self, outputs: list, budget: Budget) -> list:
        tally, kept = CellTally(), []
        for out in outputs:
            text = out.get("text") if out.get("output_type") == "stream" else None
            note = _NOTE.fullmatch(text) if isinstance(text, str) else None
            if note:  # a note made on arrival: its count goes on in this pass's note
                tally.dropped += int(note[1]) - 1
                tally.dropped_cost += int(note[2])
                tally.notebook_wide = tally.notebook_wide or "from this cell on" in note[0]
                budget.drop(tally, 0)
                continue
            self.cap_output(out)
            cost = output_cost(out)
            if budget.admits(tally, cost):
                budget.take(tally, cost)
                kept.append(out)
            else:
                budget.drop(tally, cost)
        return kept + (
            [tally.note] if tally.note is not None else []
        )  # the note last, after what it is about


class ArrivalCaps:
    """The caps applied to one notebook's outputs as they arrive from the kernel.

    A stream message joins the stream output before it when it can (as Jupyter shows them), so many
    small prints cost bytes, not outputs. In the grader's probe cells, the last probe payload
    (mime :data:`cnnbook.grader.wire.MIME`, up to :data:`~cnnbook.grader.wire.MAX_PAYLOAD_CHARS`) is
    exempt: it is the grader's data, and its size is checked again when it is read.
    """

    def __init__(self, client):
        self.client, self.nb = client, client.nb
        self.caps = CapOutputs(parent=client)
        self.budget = Budget(self.caps)
        self.cells: dict[int, CellTally] = {}
        self.seen: dict[int, int] = {}  # outputs each cell held after the last message
        self.payloads: dict[int, NotebookNode] = {}  # the probe payload kept per probe cell

    @classmethod
    def of(cls, client) -> ArrivalCaps:
        """The caps of the notebook ``client`` is running now (new ones for each notebook)."""
        caps = client.__dict__.get("_cnnbook_arrival_caps")
        if caps is None or caps.nb is not client.nb:
            caps = client.__dict__["_cnnbook_arrival_caps"] = cls(client)
        return caps

    def _tally(self, outs: list, index: int) -> CellTally:
        tally = self.cells.setdefault(index, CellTally())
        if len(outs) < self.seen.get(index, 0) or (self.client.clear_before_next_output and outs):
            self._clear(outs, index, tally)
        return tally

    def _clear(self, outs: list, index: int, tally: CellTally) -> None:
        if (
            self.client.clear_before_next_output
        ):  # done here, so the count matches what the cell holds
            outs[:] = []
            self.client.clear_display_id_mapping(index)
            self.client.clear_before_next_output = False
        self.budget.forget(tally)
        self.payloads.pop(index, None)

    def _probe_payload(self, msg: dict, index: int) -> bool:
        plan = getattr(self.client, "_plan", None)
        data = msg["content"].get("data")
        if (
            plan is None
            or msg["msg_type"] != "display_data"
            or not isinstance(data, dict)
            or wire.MIME not in data
            or not plan.is_probe_cell(self.nb.cells[index])
        ):
            return False
        if isinstance(data[wire.MIME], str) and len(data[wire.MIME]) <= wire.MAX_PAYLOAD_CHARS:
            return True
        del data[wire.MIME]  # unreadable anyway: ReadProbeResults would reject it
        return False

    def output(self, deliver, outs: list, msg: dict, display_id, index: int):
        """Deliver ``msg`` to the cell's outputs through nbclient (``deliver``), or count and drop
        it."""
        if msg["msg_type"] not in OUTPUT_TYPES:
            return deliver(outs, msg, display_id, index)
        tally = self._tally(outs, index)
        payload = self._probe_payload(msg, index)
        self.caps.cap_output(msg["content"], exempt=wire.MIME if payload else None)
        out = self._join_stream(outs, msg, tally) if not payload else None
        if out is None:
            out = self._admit(deliver, outs, msg, display_id, index, tally, payload)
        self.seen[index] = len(outs)
        return out

    def _admit(self, deliver, outs, msg, display_id, index, tally, payload):
        cost = output_cost(msg["content"], exempt=wire.MIME if payload else None)
        if not payload and not self.budget.admits(tally, cost):
            note = self.budget.drop(tally, cost)
            if note is not None:
                outs.append(note)
            return None
        self.budget.take(tally, cost)
        out = deliver(outs, msg, display_id, index)
        if msg["msg_type"] == "stream" and out is not None:
            tally.stream, tally.stream_bytes = out, _size(out["text"])
        if payload and out is not None:
            earlier = self.payloads.get(index)
            if (
                earlier is not None
            ):  # ReadProbeResults reads the last payload: keep one per probe cell
                earlier["data"].pop(wire.MIME, None)
            self.payloads[index] = out
        return out

    def _join_stream(self, outs: list, msg: dict, tally: CellTally):
        """Append a stream message's text to the cell's last output when that is the same stream.

        The output grows to ``max_bytes`` at most (the post-hoc cap then leaves it alone); what does
        not fit is cut with a note, and later text of that stream counts as dropped.
        """
        last, content = (outs[-1] if outs else None), msg["content"]
        if (
            msg["msg_type"] != "stream"
            or last is None
            or last is not tally.stream
            or last.get("name") != content.get("name")
            or not isinstance(content.get("text"), str)
            or self.client.output_hook_stack[msg["parent_header"].get("msg_id")]
        ):
            return None
        text, room = content["text"], self.caps.max_bytes - tally.stream_bytes
        full = _size(text) > room
        if full:
            cut = f"\n... [output truncated by the grader at {self.caps.max_bytes} bytes]\n"
            keep = room - len(cut)
            text = (
                text.encode("utf-8", "surrogatepass")[:keep].decode("utf-8", "ignore") + cut
                if keep > 0
                else ""
            )
        grown = text_cost(text)
        if not text or not self.budget.fits_bytes(tally, grown):
            note = self.budget.drop(tally, output_cost(content))
            if note is not None:
                outs.append(note)
            return last
        last["text"] += text
        tally.stream_bytes = self.caps.max_bytes if full else tally.stream_bytes + _size(text)
        self.budget.grow(tally, grown)
        return last


class CappedKernelClient(AsyncKernelClient):
    """A kernel client whose sockets refuse a message larger than ``max_message_bytes``.

    zmq reads the size first and refuses the message before any of it is kept, so the grader's
    memory never holds it. It takes the refusal as a protocol error and closes that connection for
    good: everything the kernel sends after it on that channel is lost too, so the later cells show
    no output and the probes return no result (the student loses those points, never gains any; each
    later cell waits nbclient's ``iopub_timeout``). The cap leaves room for a probe payload of
    :data:`cnnbook.grader.wire.MAX_PAYLOAD_CHARS` characters, JSON-escaped once more in the message.
    """

    max_message_bytes = Integer(
        4 * wire.MAX_PAYLOAD_CHARS, help="Largest message (one zmq frame) accepted from the kernel."
    ).tag(config=True)

    @default("context")
    def _context_default(
        self,
    ) -> zmq.asyncio.Context:  # the name AsyncKernelClient's own default has
        self._created_context = True
        context = zmq.asyncio.Context()
        context.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        return context
