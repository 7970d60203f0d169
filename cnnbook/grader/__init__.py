"""Grading that a student cannot forge: every point is decided outside the student's process.

The student's notebook runs in a sandboxed kernel (:mod:`cnnbook.sandbox`) that holds nothing
secret. After the student's cells, the grader's probe cells call the student's functions on inputs
the grader chose and send the results back as plain data (:mod:`cnnbook.grader.wire`). The grader's
own process compares them with its expected values (:mod:`cnnbook.grader.checks`, one module per
assignment) and writes each graded cell's verdict, which is all nbgrader reads the score from.

One entry point, :func:`configure`, called once from ``nbgrader_config.py``, puts the steps in
place:

before anything is read
    :func:`cnnbook.grader.submission.screen_submission` (no named pipes, devices or huge files).
autograde, sanitising pass
    :class:`RestoreNbgraderMetadata` (locked cells and nbgrader metadata back from the gradebook),
    then nbgrader's own steps.
autograde, grading pass
    :class:`AddProbeCells` -> :class:`SandboxedExecute` (outputs capped as they arrive) ->
    :class:`ReadProbeResults` -> :class:`TextAndImagesOnly` -> :class:`SanitiseMarkdown` ->
    nbgrader's output limits -> :class:`CapOutputs` (per output, cell and notebook) ->
    :class:`TrustedGrades` -> nbgrader's SaveAutoGrades and the rest.
feedback
    grades, text and images only, sanitised markdown, one-line errors.
"""

from __future__ import annotations

from pathlib import Path


def configure(
    c,
    course_root,
    *,
    require_sandbox: bool = True,
    limits: dict | None = None,
    max_output_bytes: int = 20_000,
) -> None:
    """Set nbgrader up for untrusted submissions. Call once from nbgrader_config.py.

    ``limits`` overrides entries of :data:`cnnbook.sandbox.DEFAULT_LIMITS`. With
    ``require_sandbox=False`` and no usable bubblewrap, grading runs unsandboxed (trusted
    submissions only); with the default, autograding stops with the reason.
    """
    from cnnbook import sandbox
    from cnnbook.grader.feedback_page import configure_feedback_page

    sandbox.configure_limits(Path(course_root), limits)
    _set_limits(c, require_sandbox, max_output_bytes)
    _keep_work(c)
    _autograde_steps(c)
    _feedback_steps(c)
    # The page itself: named score rows, long lines wrapped (cnnbook/grader/feedback_page/).
    configure_feedback_page(c)


def _set_limits(c, require_sandbox: bool, max_output_bytes: int) -> None:
    from cnnbook.grader.submission import screen_submission

    c.SandboxedExecute.require_sandbox = require_sandbox
    c.CapOutputBytes.max_bytes = max_output_bytes
    c.TextAndImagesOnly.max_image_bytes = max_output_bytes
    c.OverwriteCells.add_missing_cells = True
    # nbclient keeps every widget message a kernel sends, without a cap: none is needed for grading.
    c.SandboxedExecute.store_widget_state = False
    # A named pipe or a huge file in place of a notebook: rejected before nbgrader opens it.
    c.Autograde.pre_convert_hook = screen_submission


def _keep_work(c) -> None:
    """A release or a grading that fails keeps the previous one; a gradebook URL that does not work
    stops the command, in one line, before anything is removed (cnnbook/grader/keepwork.py)."""
    from cnnbook.grader.keepwork import KeepWorkExporter

    c.GenerateAssignment.exporter_class = KeepWorkExporter
    c.Autograde.exporter_class = KeepWorkExporter


def _autograde_steps(c) -> None:
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        IgnorePattern,
        LimitOutput,
        SaveAutoGrades,
    )

    from cnnbook.grader.preprocessors import (
        AddProbeCells,
        CapOutputs,
        ReadProbeResults,
        RestoreNbgraderMetadata,
        SandboxedExecute,
        SanitiseMarkdown,
        TextAndImagesOnly,
        TrustedGrades,
    )

    sanitising = list(Autograde.class_traits()["sanitize_preprocessors"].default())
    c.Autograde.sanitize_preprocessors = [RestoreNbgraderMetadata, *sanitising]
    c.Autograde.autograde_preprocessors = [
        AddProbeCells,
        SandboxedExecute,
        ReadProbeResults,
        TextAndImagesOnly,
        SanitiseMarkdown,
        IgnorePattern,
        ClearMetadataPreprocessor,
        LimitOutput,
        CapOutputs,
        TrustedGrades,
        SaveAutoGrades,
        AssignLatePenalties,
        CheckCellMetadata,
    ]


def _feedback_steps(c) -> None:
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades

    from cnnbook.grader.preprocessors import HideTracebacks, SanitiseMarkdown, TextAndImagesOnly

    c.GenerateFeedback.preprocessors = [
        GetGrades,
        TextAndImagesOnly,
        SanitiseMarkdown,
        HideTracebacks,
        CSSHTMLHeaderPreprocessor,
    ]
