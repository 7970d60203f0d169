"""The trusted comparison of each assignment, one module per assignment
(see :mod:`cnnbook.grader.plan`).

These modules run only in the grader's process: the sandboxed kernel does not see this package.
"""

from dataclasses import replace

import numpy as np


def with_other_values(calls, rng, groups):
    """Each call, then each call of ``groups`` again with its input's values shuffled by ``rng``.

    The visible tests show their inputs and expected values, so a function could recognise those
    inputs and return the remembered answers; the same case on shuffled input costs such a function
    its points. Only the first argument (the image) is shuffled, within each channel: the filters,
    the shapes and each channel's values (signs included) stay, so a variant tests what its visible
    case tests.
    """

    def shuffled(x: np.ndarray) -> np.ndarray:
        channels = x.reshape(-1, x.shape[-1])
        return np.stack(
            [rng.permutation(channels[:, c]) for c in range(x.shape[-1])], axis=1
        ).reshape(x.shape)

    variants = [
        replace(
            call,
            args=(shuffled(call.args[0]), *call.args[1:]),
            label=f"{call.label}, on the same image shuffled",
        )
        for call in calls
        if call.group in groups
    ]
    return list(calls) + variants
