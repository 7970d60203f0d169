"""Due dates from the course configuration and late penalties, through nbgrader's own mechanism.

nbgrader computes how late a submission is from the assignment's due date in the gradebook and the
submission's ``timestamp.txt``; its ``AssignLatePenalties`` step asks a ``LateSubmissionPlugin`` for
the penalty and stores it per notebook, and ``nbgrader export`` shows it. :class:`DueDates` is that
step, writing the due date of ``c.DueDates.due_dates`` (``nbgrader_config.py``) into the gradebook
first, so the configuration is the one place where due dates live; :class:`PenaltyPerDay` is the
plugin: a percentage of the score per started day late, capped.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from dateutil import parser as dateparser
from nbgrader.api import Gradebook
from nbgrader.plugins import LateSubmissionPlugin
from nbgrader.preprocessors import AssignLatePenalties
from traitlets import Dict, Float

DAY = 86_400


class DueDateError(ValueError):
    """A due date in the configuration that cannot be read."""


def parse_due(assignment: str, text: str | None) -> datetime | None:
    """The due date as naive UTC (nbgrader's convention), or None for "no due date"."""
    if text is None or not str(text).strip():
        return None
    try:
        when = dateparser.parse(str(text))
    except (ValueError, OverflowError):
        when = None
    if when is None or when.tzinfo is None:
        raise DueDateError(
            f"due date {text!r} of {assignment} in c.DueDates.due_dates is not a date with a time "
            "zone: write it like '2026-10-16 23:59 +02:00' (or '... Z' for UTC)"
        )
    return when.astimezone(timezone.utc).replace(tzinfo=None)


def due_dates(config) -> dict:
    """``c.DueDates.due_dates`` of a loaded configuration: {assignment: naive UTC or None}."""
    section = config.get("DueDates", {}) if config is not None else {}
    raw = section.get("due_dates", {}) or {}
    return {name: parse_due(name, text) for name, text in dict(raw).items()}


def late_mark_time(config, assignment: str) -> datetime | None:
    """When a submission the LMS marked late, without a time, counts as handed in: the first
    second after the due date and the grace period (one started day late), or None without a due
    date."""
    due = due_dates(config).get(assignment)
    if due is None:
        return None
    grace = float(config.get("PenaltyPerDay", {}).get("grace_minutes", 0) or 0)
    return due + timedelta(minutes=grace, seconds=1)


def days_late(seconds: float, grace_minutes: float = 0.0) -> int:
    """Started days late after the grace period (0 when on time)."""
    if seconds <= grace_minutes * 60:
        return 0
    return math.ceil(seconds / DAY)


class PenaltyPerDay(LateSubmissionPlugin):
    """A late notebook loses ``percent_per_day`` % of its score per started day late, at most
    ``max_percent`` %; nothing within ``grace_minutes`` of the due date."""

    percent_per_day = Float(10.0, help="Percent of the score lost per started day late.").tag(
        config=True
    )
    max_percent = Float(100.0, help="The largest penalty, in percent of the score.").tag(
        config=True
    )
    grace_minutes = Float(0.0, help="Minutes after the due date that count as on time.").tag(
        config=True
    )

    def percent(self, seconds_late: float) -> float:
        days = days_late(seconds_late, self.grace_minutes)
        return min(self.max_percent, days * self.percent_per_day)

    def late_submission_penalty(self, student_id, score, total_seconds_late):
        penalty = round(float(score or 0) * self.percent(total_seconds_late) / 100, 2)
        self.log.info(
            "%s is %.1f h late: penalty %.0f%% of %s = %s points",
            student_id,
            total_seconds_late / 3600,
            self.percent(total_seconds_late),
            score,
            penalty,
        )
        return penalty


class DueDates(AssignLatePenalties):
    """nbgrader's AssignLatePenalties, with the assignment's due date taken from
    ``c.DueDates.due_dates`` (written into the gradebook before the lateness is computed).

    An assignment not named there keeps the due date the gradebook has (``nbgrader db assignment
    add <ps> --duedate=...``); one named with ``None`` has none.
    """

    due_dates = Dict(
        help="{assignment: 'YYYY-MM-DD HH:MM +HH:MM' or None}: each assignment's due date."
    ).tag(config=True)

    def preprocess(self, nb, resources):
        assignment = resources["nbgrader"]["assignment"]
        if assignment in self.due_dates:
            due = parse_due(assignment, self.due_dates[assignment])
            with Gradebook(resources["nbgrader"]["db_url"]) as gradebook:
                gradebook.find_assignment(assignment).duedate = due
                gradebook.db.commit()
        return super().preprocess(nb, resources)


def configure_late_work(c) -> None:
    """Put :class:`DueDates` in place of nbgrader's AssignLatePenalties (after
    ``cnnbook.grader.configure``) and make :class:`PenaltyPerDay` the penalty."""
    steps = list(c.Autograde.autograde_preprocessors)
    c.Autograde.autograde_preprocessors = [
        DueDates if step is AssignLatePenalties else step for step in steps
    ]
    c.AssignLatePenalties.plugin_class = PenaltyPerDay
