"""CapOutputBytes: every text output of a cell is cut to a number of bytes."""

from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer


class CapOutputBytes(NbGraderPreprocessor):
    """Cap every text output of a cell to ``max_bytes`` (nbgrader's LimitOutput caps lines, not
    bytes)."""

    max_bytes = Integer(
        20_000, help="Bytes kept of each text output; the rest is cut with a note."
    ).tag(config=True)

    def _cap(self, text):
        joined = "".join(text) if isinstance(text, list) else text
        data = joined.encode("utf-8", "replace")
        if len(data) <= self.max_bytes:
            return text
        return data[: self.max_bytes].decode("utf-8", "ignore") + (
            f"\n... [output truncated by the grader: {len(data)} bytes, {self.max_bytes} kept]\n"
        )

    def preprocess_cell(self, cell, resources, index):
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = self._cap(out["text"])
            for mime, value in list(out.get("data", {}).items()):
                if isinstance(value, (str, list)):
                    out["data"][mime] = self._cap(value)
            if "traceback" in out:
                out["traceback"] = [self._cap(line) for line in out["traceback"][:100]]
            if "evalue" in out:
                out["evalue"] = self._cap(out["evalue"])
        return cell, resources
