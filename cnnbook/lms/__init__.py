"""The instructor's term with a learning management system (Canvas or Moodle).

One command per step, from the course folder (``book/instructors.md``, "A term with Canvas or
Moodle"):

=====================  ==========================================================================
step                   command
=====================  ==========================================================================
roster                 ``python -m cnnbook.lms roster <the LMS's roster export>.csv``
import (Canvas)        ``nbgrader zip_collect <ps>`` (the zip in ``downloaded/<ps>/archive/``)
import (Moodle)        ``nbgrader zip_collect <ps> --collector=cnnbook.lms.moodle.MoodleCollector``
grade                  ``nbgrader autograde <ps>`` or ``python -m cnnbook.grade_batch <ps>``
feedback               ``nbgrader generate_feedback <ps>``
export                 ``python -m cnnbook.lms export <ps> --to canvas|moodle``
manual grading         ``python -m cnnbook.lms formgrader``
=====================  ==========================================================================

Modules, one job each: :mod:`~cnnbook.lms.canvas` and :mod:`~cnnbook.lms.moodle` (the LMSs' file
names and CSV layouts), :mod:`~cnnbook.lms.collect` (resubmissions and misnamed notebooks),
:mod:`~cnnbook.lms.late` (due dates and penalties), :mod:`~cnnbook.lms.roster`,
:mod:`~cnnbook.lms.results` (each student's status), :mod:`~cnnbook.lms.export`,
:mod:`~cnnbook.lms.formgrader`, :mod:`~cnnbook.lms.quiet` (warnings removed at their cause).
"""

from __future__ import annotations


def configure_lms(c) -> None:
    """Call from nbgrader_config.py after ``cnnbook.grader.configure``: Canvas's file names for
    ``nbgrader zip_collect``, due dates and late penalties for ``nbgrader autograde``, quiet
    logs."""
    from cnnbook.lms.late import configure_late_work
    from cnnbook.lms.quiet import quiet_nbgrader

    c.ZipCollectApp.collector_plugin = "cnnbook.lms.canvas.CanvasCollector"
    configure_late_work(c)
    quiet_nbgrader()
