"""RestoreNbgraderMetadata: the first step of ``nbgrader autograde``, before nbgrader's own
checks."""

from __future__ import annotations

import nbformat
from nbgrader.api import Gradebook
from nbgrader.preprocessors import NbGraderPreprocessor

from cnnbook.grader.sanitise import Reference, sanitise


class RestoreNbgraderMetadata(NbGraderPreprocessor):
    """:func:`cnnbook.grader.sanitise.sanitise` the submission against the gradebook.

    nbgrader's own checks (CheckCellMetadata) raise SchemaTooNewError/SchemaTooOldError on a forged
    ``schema_version``, and nbgrader then stops autograding for every student, not just this one; a
    locked cell stripped of its metadata would otherwise run as the student wrote it.
    """

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gradebook:
            reference = Reference.from_gradebook(gradebook, info["notebook"], info["assignment"])
        notes = sanitise(nb, reference)
        if notes:
            self.log.warning(
                "Submission of %s, %s/%s.ipynb sanitised: %s",
                info["student"],
                info["assignment"],
                info["notebook"],
                "; ".join(notes),
            )
        return nbformat.from_dict(nb), resources
