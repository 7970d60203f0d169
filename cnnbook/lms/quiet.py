"""Warnings in every student's grading log that no instructor can act on, removed at their cause.

* ``Config option `display_data_priority` not recognized by `TextAndImagesOnly``` (and by
  ``SanitiseMarkdown``, ``HideTracebacks``), once per student in ``nbgrader generate_feedback``:
  nbconvert's HTML exporter configures ``NbConvertBase.display_data_priority`` for every
  preprocessor, and nbgrader's base class ``NbGraderPreprocessor`` redeclares that trait without
  ``config=True``, so traitlets reports the setting as unknown for each subclass. nbgrader's own
  GetGrades redeclares it configurable; :func:`quiet_nbgrader` makes the base class's trait
  configurable too, which is what nbconvert expects of it.
* SQLAlchemy's ``SAWarning: Object of type <SubmittedAssignment> not in session, add operation
  along 'Assignment.submissions' will not proceed`` (three per student in ``nbgrader autograde``):
  nbgrader's ``Gradebook.add_submission`` builds a new submission's notebooks and grades before
  adding it to the session, and SQLAlchemy 2 warns about the backrefs on the way; nbgrader adds the
  whole submission right after, so nothing is lost. The warning is filtered by its text.
"""

from __future__ import annotations

import warnings


def quiet_nbgrader() -> None:
    from nbgrader.preprocessors import NbGraderPreprocessor

    NbGraderPreprocessor.class_traits()["display_data_priority"].tag(config=True)
    warnings.filterwarnings("ignore", message=r"Object of type <Submitted\w+> not in session")
