"""The nbgrader preprocessors of the course's grading, one class a module (as in nbgrader's own
package)."""

from cnnbook.grader.preprocessors.addprobecells import AddProbeCells
from cnnbook.grader.preprocessors.capoutputbytes import CapOutputBytes
from cnnbook.grader.preprocessors.capoutputs import CapOutputs
from cnnbook.grader.preprocessors.hidetracebacks import HideTracebacks
from cnnbook.grader.preprocessors.readproberesults import ReadProbeResults
from cnnbook.grader.preprocessors.restoremetadata import RestoreNbgraderMetadata
from cnnbook.grader.preprocessors.sandboxedexecute import SandboxedExecute
from cnnbook.grader.preprocessors.sanitisemarkdown import SanitiseMarkdown
from cnnbook.grader.preprocessors.textandimagesonly import TextAndImagesOnly
from cnnbook.grader.preprocessors.trustedgrades import TrustedGrades

__all__ = [
    "AddProbeCells",
    "CapOutputBytes",
    "CapOutputs",
    "HideTracebacks",
    "ReadProbeResults",
    "RestoreNbgraderMetadata",
    "SandboxedExecute",
    "SanitiseMarkdown",
    "TextAndImagesOnly",
    "TrustedGrades",
]
