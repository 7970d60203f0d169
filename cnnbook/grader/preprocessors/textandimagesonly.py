"""TextAndImagesOnly: graded outputs keep plain text and PNG/JPEG images only."""

from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer

KEPT_MIME_TYPES = ("text/plain", "image/png", "image/jpeg")


class TextAndImagesOnly(NbGraderPreprocessor):
    """Outputs keep plain text and PNG/JPEG images only.

    Rich outputs (HTML, JavaScript, SVG, Markdown, LaTeX, widgets) made by a student's code would
    run script in the instructor's browser (formgrader) and in feedback pages, and the HTML export
    puts image metadata such as ``width`` unquoted into the page. So the other types are dropped,
    with a note in the text/plain version of the output; image metadata is cleared; an image larger
    than ``max_image_bytes`` is dropped too (cut to the output byte cap it would only show as
    broken).
    """

    max_image_bytes = Integer(
        20_000, help="Largest PNG/JPEG (base64 characters) kept in an output."
    ).tag(config=True)

    def _keep(self, mime, value) -> bool:
        return (
            mime in KEPT_MIME_TYPES
            and isinstance(value, str)
            and (mime == "text/plain" or len(value) <= self.max_image_bytes)
        )

    def preprocess_cell(self, cell, resources, index):
        for output in cell.get("outputs", []):
            if "data" not in output:
                continue
            kept = {
                mime: value for mime, value in output["data"].items() if self._keep(mime, value)
            }
            dropped = sorted(set(output["data"]) - set(kept))
            if dropped:
                text = kept.get("text/plain", "")
                note = (
                    f"[{', '.join(dropped)} output removed by the grader: only text and PNG/JPEG "
                    f"images up to {self.max_image_bytes} bytes are kept]"
                )
                kept["text/plain"] = f"{text}\n{note}" if text else note
            output["data"] = kept
            output["metadata"] = {}
        return cell, resources
