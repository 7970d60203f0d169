"""AddProbeCells: before the submission runs, plan its checks and append the grader's probe
cells."""

from __future__ import annotations

import secrets

import numpy as np
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Dict, Integer, Unicode

from cnnbook.grader.plan import PLAN_KEY, Plan, load_checks

DEFAULT_CHECKS = {
    "ps1-convolution": "cnnbook.grader.checks.ps1_convolution",
    "ps2-pooling": "cnnbook.grader.checks.ps2_pooling",
    "ps3-mnist": "cnnbook.grader.checks.ps3_mnist",
}


class AddProbeCells(NbGraderPreprocessor):
    """Load the assignment's trusted checks, draw this submission's inputs, append one probe cell
    per probe.

    The probe cells run after every cell of the student's notebook, in the same kernel: they call
    the student's functions on the grader's inputs and display the results as plain data (see
    :mod:`cnnbook.grader.wire`). Expected values stay in the grader's process. Any ``cnnbook``
    metadata a submission brings is removed first, so the grader's cells are known by a token
    drawn for this run.
    """

    checks = Dict(
        value_trait=Unicode(),
        default_value=DEFAULT_CHECKS,
        help="Trusted checks per assignment: an importable module or a .py file.",
    ).tag(config=True)
    seed = Integer(
        None,
        allow_none=True,
        help="Seed of the random cases (None: a new seed for each "
        "submission, so inputs cannot be known in advance).",
    ).tag(config=True)

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        for cell in nb.cells:
            cell.metadata.pop("cnnbook", None)
        name = self.checks.get(info["assignment"])
        if name is None:
            self.log.error(
                "No trusted checks for assignment %r (AddProbeCells.checks): its graded cells "
                "score 0",
                info["assignment"],
            )
            return nb, resources
        module = load_checks(name)
        if getattr(module, "NOTEBOOK", None) != info["notebook"]:
            self.log.error(
                "The checks of %r grade %s.ipynb, not %s.ipynb: its graded cells score 0",
                info["assignment"],
                module.NOTEBOOK,
                info["notebook"],
            )
            return nb, resources
        seed = secrets.randbits(63) if self.seed is None else self.seed
        self.log.info("Random cases of %s drawn with seed %s", info["student"], seed)
        plan = Plan(module, module.probes(np.random.default_rng(seed)))
        nb.cells.extend(plan.probe_cells())
        resources[PLAN_KEY] = plan
        return nb, resources
