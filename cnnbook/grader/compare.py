"""The trusted comparison: a student's results (plain data) against the grader's own expected
values.

Each function returns ``None`` when the results are right, or a message in fixed words that names
the mistake when it is one the grader knows (what a known mistake would have returned is computed
here, in the grader's process). Messages name the call by its inputs and never show an expected
value.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from cnnbook.grader.wire import Result

ATOL = 1e-4


def describe(result: Result) -> str:
    """What the student's call gave, in words (for a failed check)."""
    if result.kind == "raised":
        message = f": {result.message}" if result.message else ""
        return f"raised {result.type or 'an exception'}{message}"
    if result.kind == "none":
        return "returned None (did you forget `return`?)"
    if result.kind == "too_big":
        return "returned an array far larger than the answer"
    if result.kind == "other":
        return f"returned a {result.type or 'value'} that is not numbers"
    if result.kind == "malformed":
        return "returned nothing the grader could read"
    if result.kind == "str":
        return "returned a string, not numbers"
    return "returned a wrong result"


def close(result: Result, expected) -> bool:
    """``result`` holds numbers of ``expected``'s shape, each within :data:`ATOL` (NaN never
    matches)."""
    got = result.array()
    expected = np.asarray(expected, dtype=float)
    return (
        got is not None
        and got.shape == expected.shape
        and bool(np.allclose(got, expected, atol=ATOL))
    )


class Named(str):
    """A message that names a known mistake (``mistake``, its fixed words): :func:`first_failure`
    shows one of these, when a call gave one, before a bare "wrong values" or an exception."""

    mistake = ""


def _named(text: str, mistake: str) -> Named:
    named = Named(text)
    named.mistake = mistake
    return named


def array_mistake(result: Result, expected, mistakes=(), call: str = "your function") -> str | None:
    """None when ``result`` equals ``expected``; else a message naming the mistake.

    ``mistakes``: (message, value) pairs, value being what that mistake returns (an array) or the
    shape it returns (a tuple) when the shape alone gives it away.
    """
    if close(result, expected):
        return None
    got = result.array()
    if got is None:
        return f"{call} {describe(result)}"
    expected = np.asarray(expected, dtype=float)
    for message, value in mistakes:
        if isinstance(value, tuple):
            if got.shape == value:
                return _named(f"{call}: wrong output shape {got.shape}: {message}", message)
        elif close(result, value):
            return _named(f"{call}: {message}", message)
    return _layout_mistake(got, expected, call) or _generic(got, expected, call)


CHANNELS_FIRST = "channels last: the output is (N, H_out, W_out, C), yours is channels-first"
HW_SWAPPED = "height and width are swapped (arrays are (N, H, W, C): rows first, then columns)"


def _layout_mistake(got, expected, call) -> str | None:
    if expected.ndim != 4:
        return None
    first = expected.transpose(0, 3, 1, 2)
    if got.shape == first.shape != expected.shape and np.allclose(got, first, atol=ATOL):
        return _named(f"{call}: {CHANNELS_FIRST}", CHANNELS_FIRST)
    swapped = expected.transpose(0, 2, 1, 3)
    if got.shape == swapped.shape != expected.shape:
        return _named(f"{call}: wrong output shape {got.shape}: {HW_SWAPPED}", HW_SWAPPED)
    # A square output shows the swap in its values only.
    if got.shape == swapped.shape and np.allclose(got, swapped, atol=ATOL):
        return _named(f"{call}: {HW_SWAPPED}", HW_SWAPPED)
    return None


def _generic(got, expected, call) -> str:
    if got.shape != expected.shape:
        return f"{call}: wrong output shape {got.shape}"
    wrong = int(np.sum(~np.isclose(got, expected, atol=ATOL)))
    return f"{call}: wrong values ({wrong} of {expected.size} differ)"


def int_mistake(result: Result, expected: int, call: str, rule: str = "") -> str | None:
    """None when ``result`` is the int ``expected``; else why not (the rule, never the expected
    value)."""
    if result.kind == "int" and result.value == expected:
        return None
    if result.kind in ("float", "bool", "array", "str"):
        if result.kind != "array" and result.value == expected:
            return f"{call} should return an int, not a {result.type or result.kind}"
        return f"{call} returned a wrong value" + (f": {rule}" if rule else "")
    if result.kind == "int":
        return f"{call} returned a wrong value" + (f": {rule}" if rule else "")
    return f"{call} {describe(result)}"


def raised(result: Result, exception: str) -> bool:
    return result.kind == "raised" and result.type == exception


def first_failure(pairs, mistake_of, many: bool = False):
    """A Verdict for a group of calls: passed when ``mistake_of(call, result)`` is None for each.

    Otherwise the first failing call's message that names a mistake (:class:`Named`; with
    ``many``, random cases, the mistake most calls name), else the first failing call's message;
    with ``many`` it also says how many failed.
    """
    from cnnbook.grader.plan import Verdict

    if not pairs:
        return Verdict.failed("the grader found no calls to check (tell your instructor)")
    failures = [message for call, result in pairs if (message := mistake_of(call, result))]
    if not failures:
        return Verdict.passed()
    count = f" ({len(failures)} of {len(pairs)} cases were wrong)" if many else ""
    # A message that names the mistake, when any call's does: a case that only shows "wrong
    # values" must not hide the one that says why. The visible tests' cases come in the order the
    # student reads them (the first named one); random cases, drawn in any order, give the mistake
    # most of them name, so that one whose wrong shape happens to be another mistake's does not.
    named = [message for message in failures if isinstance(message, Named)]
    if named and many:
        most = Counter(message.mistake for message in named).most_common(1)[0][0]
        named = [message for message in named if message.mistake == most]
    return Verdict.failed((named or failures)[0] + count)
