"""The plain data that crosses between the grader and the student's kernel, in both directions.

Grader to kernel: the inputs of each call (numbers, strings, tuples, lists and float64 arrays) as
JSON, arrays as base64 bytes. Kernel to grader: one JSON document per probe cell with one record per
call (the value as an int, float, bool, string or float64 array, or the name of the exception
raised). No pickle in either direction. :data:`KERNEL_SIDE` is the code the probe cells define in
the kernel; whatever the kernel sends back is untrusted, so :func:`decode_results` checks every
field and size and turns anything else into a ``malformed`` record: it can cost the student points,
never add them.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass

import numpy as np

MIME = "application/vnd.cnnbook.probe.v1"  # not "+json": nbformat keeps the payload as a string
MAX_PAYLOAD_CHARS = 8_000_000  # per probe cell
MAX_ARRAY_VALUES = 200_000  # per returned array
MAX_TEXT_CHARS = 1_000_000  # per returned string (ps3's model description)
MAX_DIMS = 8
KINDS = ("none", "bool", "int", "float", "str", "array", "raised", "other", "too_big")


def encode_value(value):
    """A call argument as JSON-ready data (tuples and arrays tagged, so the kernel rebuilds
    them)."""
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value, dtype=np.float64)
        return {"$array": [list(data.shape), base64.b64encode(data.tobytes()).decode("ascii")]}
    if isinstance(value, tuple):
        return {"$tuple": [encode_value(v) for v in value]}
    if isinstance(value, list):
        return [encode_value(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    raise TypeError(f"cannot send {type(value).__name__} to the kernel")


def encode_calls(name: str, calls, value: bool = False, serialiser: str = "numbers") -> str:
    """The probe's instructions for the kernel: base64 of JSON, to paste into the probe cell's
    source."""
    spec = {
        "name": name,
        "value": value,
        "serialiser": serialiser,
        "calls": [
            {
                "args": [encode_value(a) for a in call.args],
                "kwargs": {k: encode_value(v) for k, v in call.kwargs.items()},
            }
            for call in calls
        ],
    }
    return base64.b64encode(json.dumps(spec).encode()).decode("ascii")


# The code each probe cell runs in the student's kernel. It only turns the student's results into
# data: the student can change anything here (patch json, numpy, display), which changes only the
# data sent. A line that ends in a backslash goes on at the start of the next (the code the kernel
# gets keeps it whole).
KERNEL_SIDE = """
def _cnnbook_probe(spec_b64, mime, max_values=%(max_values)d, max_text=%(max_text)d):
    import base64, json
    import numpy
    spec = json.loads(base64.b64decode(spec_b64))

    def decode(value):
        if isinstance(value, dict) and "$array" in value:
            shape, data = value["$array"]
            return numpy.frombuffer(base64.b64decode(data), \
dtype=numpy.float64).reshape(shape).copy()
        if isinstance(value, dict) and "$tuple" in value:
            return tuple(decode(v) for v in value["$tuple"])
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value

    def type_name(result):
        return f"{type(result).__module__}.{type(result).__qualname__}"

    def numbers(result):
        if result is None:
            return {"kind": "none"}
        if isinstance(result, bool):
            return {"kind": "bool", "value": result}
        if type(result) is int or isinstance(result, numpy.integer):
            return {"kind": "int", "value": int(result), "type": type_name(result)}
        if isinstance(result, (float, numpy.floating)):
            return {"kind": "float", "value": float(result), "type": type_name(result)}
        if isinstance(result, str):
            return {"kind": "str", "value": result[:max_text]}
        try:
            array = numpy.asarray(result, dtype=numpy.float64)
        except BaseException:
            return {"kind": "other", "type": type_name(result)}
        if array.size > max_values:
            return {"kind": "too_big", "shape": list(array.shape)}
        data = base64.b64encode(numpy.ascontiguousarray(array).tobytes()).decode("ascii")
        return {"kind": "array", "shape": list(array.shape), "data": data, "type": \
type_name(result)}

    def keras_model(model):
        if not hasattr(model, "to_json"):
            return {"kind": "other", "type": type_name(model)}
        text = json.dumps({"config": model.to_json(), "compile": \
json.dumps(model.get_compile_config())})
        return {"kind": "str", "value": text} if len(text) <= max_text else {"kind": "too_big", \
"shape": [len(text)]}

    serialise = {"numbers": numbers, "keras_model": keras_model}[spec["serialiser"]]
    records = []
    target = globals().get(spec["name"], _cnnbook_probe)
    for call in spec["calls"]:
        try:
            if target is _cnnbook_probe:
                raise NameError(f"name {spec['name']!r} is not defined")
            if spec["value"]:
                result = target
            else:
                args = [decode(a) for a in call["args"]]
                kwargs = {k: decode(v) for k, v in call["kwargs"].items()}
                result = target(*args, **kwargs)
            records.append(serialise(result))
        except BaseException as error:
            records.append({"kind": "raised", "type": type(error).__name__, "message": \
str(error)[:300]})
    from IPython.display import display
    display({mime: json.dumps({"results": records})}, raw=True)
""" % {"max_values": MAX_ARRAY_VALUES, "max_text": MAX_TEXT_CHARS}


@dataclass
class Result:
    """What one call returned, as the grader read it. ``kind`` is one of :data:`KINDS` or
    ``malformed``."""

    kind: str
    value: object = None  # int, float, bool, str, or a float64 numpy array
    type: str = ""  # the type the kernel reported (informational: the kernel can claim anything)
    message: str = ""  # the exception's message, for kind "raised"

    def is_int(self) -> bool:
        return self.kind == "int"

    def array(self):
        """The value as a float64 array, or None when it is not numbers."""
        if self.kind == "array":
            return self.value
        if self.kind in ("int", "float", "bool"):
            return np.asarray(float(self.value))
        return None


MALFORMED = Result("malformed", message="the kernel sent no usable result")


def _text(value, limit=300) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _array(record: dict) -> Result:
    shape, data = record.get("shape"), record.get("data")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMS
        or not isinstance(data, str)
        or not all(type(n) is int and 0 <= n <= MAX_ARRAY_VALUES for n in shape)
        or math.prod(shape) > MAX_ARRAY_VALUES
    ):
        return MALFORMED
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return MALFORMED
    if len(raw) != 8 * math.prod(shape):
        return MALFORMED
    array = np.frombuffer(raw, dtype=np.float64).reshape(shape).copy()
    return Result("array", array, _text(record.get("type")))


def decode_record(record) -> Result:
    """One record from the kernel, checked field by field."""
    if not isinstance(record, dict) or record.get("kind") not in KINDS:
        return MALFORMED
    kind, value = record["kind"], record.get("value")
    if kind == "array":
        return _array(record)
    if kind == "int" and type(value) is int and abs(value) < 10**18:
        return Result("int", value, _text(record.get("type")))
    if kind == "float" and type(value) in (int, float):
        return Result("float", float(value), _text(record.get("type")))
    if kind == "bool" and type(value) is bool:
        return Result("bool", value)
    if kind == "str" and isinstance(value, str) and len(value) <= MAX_TEXT_CHARS:
        return Result("str", value)
    if kind in ("none", "too_big", "other"):
        return Result(kind, None, _text(record.get("type")))
    if kind == "raised":
        return Result("raised", None, _text(record.get("type"), 100), _text(record.get("message")))
    return MALFORMED


def decode_results(payload, expected: int) -> list[Result] | None:
    """The records of one probe cell, or None when the payload is not a document of ``expected``
    records."""
    if not isinstance(payload, str) or len(payload) > MAX_PAYLOAD_CHARS:
        return None
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    records = document.get("results") if isinstance(document, dict) else None
    if not isinstance(records, list) or len(records) != expected:
        return None
    return [decode_record(record) for record in records]
