"""Hostile submissions of the real ps1-convolution (18 points), graded by `python -m
cnnbook.grade_batch` in one batch run, each beside an honest submission and beside the plain wrong
work it hides.

The grading design (cnnbook/grader/__init__.py): the student's notebook runs in a sandboxed kernel
that holds nothing secret; the grader's probe cells call the student's functions on the grader's
inputs and send the results back as plain data; the grader's process compares them with its own
references and writes every graded cell's verdict. So whatever a trick does in the kernel, it can
only change the data that describes the student's own functions: each trick below is built on a
WRONG conv2d (zeros of the right shape, or left unimplemented), and must score exactly what that
wrong work scores without the trick (graded in the same batch), never more. The honest students keep
18.

Then plain ``nbgrader autograde`` and ``nbgrader generate_feedback`` on a course of their own: a
forged schema_version no longer stops the run for everyone, and feedback names the mistake in fixed
words without showing what the grader expected.

The course is a copy of this one (nbgrader_config.py and solutions/) in /var/tmp, with a 10 s cell
timeout and a 2 GB address-space limit per kernel so that the hanging and memory-hungry submissions
end fast.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    code_cell,
    find_cell,
    grade_batch,
    grade_id,
    html_text,
    make_course,
    nbformat3,
    nbgrader,
    solution_body,
    source_text,
    text_of_outputs,
)

from cnnbook import sandbox
from cnnbook.grader import wire
from cnnbook.grader.checks import ps1_convolution as ps1

pytestmark = pytest.mark.slow

ASSIGNMENT = "ps1-convolution"
NOTEBOOK = "convolution"
FULL = 18.0
CELL_TIMEOUT = 10
EXTRA_CONFIG = f"""
c.Execute.timeout = {CELL_TIMEOUT}  # the hanging submissions below end fast
configure(c, ROOT, limits={{"address_space_mb": 2048}})  # and so do the memory bombs
"""

# --------------------------------------------------------------------------- the wrong work

ZEROS_CONV2D = '''
def conv2d(x, w, stride=1, padding="valid"):
    """Wrong on purpose: zeros of the right shape."""
    (n, h, wd, _), (kh, kw, _, c_out) = np.shape(x), np.shape(w)
    sh, sw = (stride, stride) if np.ndim(stride) == 0 else stride
    if str(padding).lower() == "same":
        return np.zeros((n, -(-h // sh), -(-wd // sw), c_out))
    return np.zeros((n, (h - kh) // sh + 1, (wd - kw) // sw + 1, c_out))
'''

UNIMPLEMENTED_CONV2D = """
def conv2d(x, w, stride=1, padding="valid"):
    raise NotImplementedError()
"""

# Every function wrong: only edge_map's shape and "conv2d returns an array" earn points.
ALL_WRONG = {
    "edge_map": "edge_map = np.zeros((5, 5))\n",
    "output_size": 'def output_size(n, k, stride=1, padding="valid"):\n    return 0\n',
    "conv2d": ZEROS_CONV2D,
    "conv2d_params": (
        "def conv2d_params(kernel_size, in_channels, filters, use_bias=True):\n    return 0\n"
    ),
}

# --------------------------------------------------------------------------- 1. IPython machinery

IPYTHON_MACHINERY = """
import sys

_shell = get_ipython()


def _before(info):
    _shell.last_execution_succeeded = True


def _after(result):
    # Every cell "succeeded": no error in the result, so none in the reply to the grader.
    result.error_before_exec = None
    result.error_in_exec = None
    _shell.last_execution_succeeded = True


def _displayhook(value):
    if value is not None:
        print("3.0")  # what partial credit looks like


_shell.events.register("pre_run_cell", _before)
_shell.events.register("post_run_cell", _after)
sys.displayhook = _displayhook
_shell.showtraceback = lambda *args, **kwargs: None
_shell.set_custom_exc((BaseException,), lambda shell, etype, value, tb, tb_offset=None: None)
"""

AST_TRANSFORMER = '''
import ast


class _NoFailures(ast.NodeTransformer):
    """Every assert and raise of the cells run after this one becomes `pass`."""

    def visit_Assert(self, node):
        return ast.copy_location(ast.Pass(), node)

    def visit_Raise(self, node):
        return ast.copy_location(ast.Pass(), node)


get_ipython().ast_transformers.append(_NoFailures())
'''

SESSION_SEND = '''
_kernel = get_ipython().kernel
_real_send = _kernel.session.send


def _no_errors(stream, msg_or_type, content=None, *args, **kwargs):
    """Errors never leave the kernel: replies say ok, tracebacks are dropped, stderr becomes \
stdout."""
    kind = msg_or_type if isinstance(msg_or_type, str) else msg_or_type["header"]["msg_type"]
    if kind == "error":
        return None
    if kind == "execute_reply" and isinstance(content, dict) and content.get("status") == "error":
        content = {"status": "ok", "execution_count": content.get("execution_count"),
                   "user_expressions": {}, "payload": []}
    if kind == "stream" and isinstance(content, dict) and content.get("name") == "stderr":
        content = dict(content, name="stdout")
    return _real_send(stream, msg_or_type, content, *args, **kwargs)


_kernel.session.send = _no_errors
'''

ERROR_CELL = 'raise RuntimeError("TRICK-CHECK: this error reached the grader")\n'
ASSERT_CELL = 'assert False, "TRICK-CHECK: this assert reached the grader"\n'

# --------------------------------------------------------------------------- 2. partial credit

NAN_CONV2D = """
def conv2d(x, w, stride=1, padding="valid"):
    return float("nan")  # a bare `conv2d(...)` at the end of a test cell would show `nan`
"""

DISPLAYS_A_RESULT = """
from IPython.display import display, publish_display_data


def conv2d(x, w, stride=1, padding="valid"):
    # What nbgrader reads as partial credit: a result whose text is a number, in the cell being \
graded.
    publish_display_data({"text/plain": "2"})
    display({"text/plain": "3"}, raw=True)
    kernel = get_ipython().kernel
    kernel.session.send(kernel.iopub_socket, "execute_result",
                        {"data": {"text/plain": "11"}, "metadata": {}, "execution_count": 1},
                        parent=kernel.get_parent("shell"))
    return -1
"""

# -------------------------------------------------------------------------- 3. the test's own names

CHECK_RESULT_ALWAYS_PASSES = '''

def check_result(*args, **kwargs):
    """Every comparison of the test cells passes."""
    return None
'''

SCANS_FOR_ANSWERS = '''
import gc
import sys
import types

_WANTED = ("expect", "reference", "answer", "solution", "correct", "want")
_swept = {}


def _as_answer(value, shape):
    try:
        array = np.array(value, dtype=float)
    except Exception:
        return None
    return array if array.shape == shape else None


def _sweep():
    """Everything in memory that could hold an answer: functions named like a conv2d, values under \
telling
    names (swept once per cell: the whole heap is large)."""
    cell = get_ipython().execution_count
    if cell not in _swept:
        found = []
        for thing in gc.get_objects():
            kind = type(thing)
            if kind is types.FunctionType and "conv2d" in thing.__name__:
                found.append((thing.__name__, thing))
            elif kind is dict:
                found += [(key, value) for key, value in list(thing.items())
                          if type(key) is str and any(word in key.lower() for word in _WANTED)]
        _swept.clear()
        _swept[cell] = found
    return _swept[cell]


def _search(x, w, stride, padding, shape):
    """Anything that looks like the answer: in the callers' frames and their globals, or anywhere \
in memory."""
    candidates, frame = [], sys._getframe(1)
    while frame is not None:
        for space in (frame.f_locals, frame.f_globals):
            candidates += [(str(name), value) for name, value in list(space.items())
                           if any(word in str(name).lower() for word in _WANTED)]
        frame = frame.f_back
    for name, value in candidates + _sweep():
        if callable(value):
            if "conv" not in name.lower() or value is conv2d or value is _zeros:
                continue
            try:
                value = value(x, w, stride, padding)
            except Exception:
                continue
        found = _as_answer(value, shape)
        if found is not None:
            return found
    return None


_zeros = conv2d


def conv2d(x, w, stride=1, padding="valid"):
    zeros = _zeros(x, w, stride, padding)
    found = _search(x, w, stride, padding, zeros.shape)
    return zeros if found is None else found
'''

# Remembers what the visible test cells expected (read from check_result's frame while it compares),
# and returns it when the grader calls conv2d on the same inputs.
REMEMBERS_VISIBLE_ANSWERS = '''
import sys

_remembered = {}


def _key(x, w, stride, padding):
    x, w = np.array(x, dtype=float), np.array(w, dtype=float)
    return (x.shape, x.tobytes(), w.shape, w.tobytes(), str(stride), str(padding).lower())


class _Peek:
    """Stands in for the result; when a test turns it into an array, it becomes what the test \
expected."""

    def __init__(self, key, zeros):
        self.key, self.zeros = key, zeros
        self.shape = zeros.shape

    def __array__(self, dtype=None, copy=None):
        expected = sys._getframe(1).f_locals.get("expected")
        try:
            value = np.array(expected, dtype=float)
        except Exception:
            value = None
        if value is not None and value.shape == self.shape:
            _remembered[self.key] = value
            return value.astype(dtype or float)
        return self.zeros.astype(dtype or float)


_zeros = conv2d


def conv2d(x, w, stride=1, padding="valid"):
    key = _key(x, w, stride, padding)
    if key in _remembered:
        return _remembered[key]
    return _Peek(key, _zeros(x, w, stride, padding))
'''

# The grader's own reference, if the kernel can reach the grader's package.
IMPORTS_THE_GRADER = """
import sys


def _grader_reference():
    try:
        from cnnbook.grader.checks.ps1_convolution import conv2d as reference
        return reference
    except Exception as error:
        print("IMPORT-GRADER", type(error).__name__)
    for folder in sys.path + ["/work/main", "/work"]:
        path = f"{folder}/cnnbook/grader/checks/ps1_convolution.py"
        try:
            text = open(path).read()
        except OSError:
            continue
        print("READ-GRADER", path)
        scope = {}
        try:
            exec(compile(text.replace("from cnnbook", "#"), path, "exec"), scope)
            return scope["conv2d"]
        except Exception as error:
            print("RUN-GRADER", type(error).__name__)
    return None


_reference_conv2d = _grader_reference()


def conv2d(x, w, stride=1, padding="valid"):
    if _reference_conv2d is None:
        raise NotImplementedError()
    return _reference_conv2d(x, w, stride, padding)
"""

# --------------------------------------------------------------------------- 4. objects that lie

LIARS = '''
import sys


class Liar:
    """Agrees with every comparison, and turns into whatever its caller expects when it can find \
that."""

    __module__ = "numpy"

    def __init__(self, shape=()):
        self.shape, self.ndim, self.dtype = tuple(shape), len(shape), np.dtype(float)

    @staticmethod
    def _expected():
        frame = sys._getframe(2)
        for name in ("expected", "_expected", "answer", "want"):
            if name in frame.f_locals:
                return frame.f_locals[name]
        return None

    def __array__(self, dtype=None, copy=None):
        try:
            value = np.array(self._expected(), dtype=dtype or float)
            if value.shape == self.shape:
                return value
        except Exception:
            pass
        return np.zeros(self.shape, dtype=dtype or float)

    def __int__(self):
        value = self._expected()
        return value if type(value) is int else 0

    __index__ = __int__

    def __float__(self):
        value = self._expected()
        return float(value) if type(value) in (int, float) else 0.0

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = object.__hash__

    def __bool__(self):
        return True

    def all(self, *args, **kwargs):
        return True

    any = all


Liar.__name__ = Liar.__qualname__ = "ndarray"


class LyingInt(int):
    __module__ = "numpy"

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = int.__hash__

    def __index__(self):
        return 0


class LyingInt64(np.int64):
    __module__ = "numpy"

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = np.int64.__hash__

    def __int__(self):
        return 0

    __index__ = __int__


_zeros = conv2d


def conv2d(x, w, stride=1, padding="valid"):
    return Liar(_zeros(x, w, stride, padding).shape)


def output_size(n, k, stride=1, padding="valid"):
    return LyingInt(0)


edge_map = Liar((5, 5))
'''
LYING_PARAMS = """
def conv2d_params(kernel_size, in_channels, filters, use_bias=True):
    return LyingInt64(0)
"""

AGREEABLE_NDARRAY = '''

class Agreeable(np.ndarray):
    """An array that equals everything."""

    __module__ = "numpy"

    def __eq__(self, other):
        return np.ones(self.shape, dtype=bool)

    def __ne__(self, other):
        return np.zeros(self.shape, dtype=bool)

    def all(self, *args, **kwargs):
        return True


Agreeable.__name__ = Agreeable.__qualname__ = "ndarray"
_zeros = conv2d


def conv2d(x, w, stride=1, padding="valid"):
    return _zeros(x, w, stride, padding).view(Agreeable)
'''

# --------------------------------------------------------------------------- 5. patched libraries

PATCHED_LIBRARIES = '''
import base64
import json

_real = {"asarray": np.asarray, "dumps": json.dumps, "b64encode": base64.b64encode}
_seen = []


class _Same(np.ndarray):
    def __eq__(self, other):
        return np.ones(self.shape, dtype=bool)


def _asarray(a, *args, **kwargs):
    return _real["asarray"](a, *args, **kwargs).view(_Same)


def _dumps(obj, *args, **kwargs):
    """Whatever the grader sends itself says that everything passed."""
    if isinstance(obj, dict) and isinstance(obj.get("results"), list):
        obj = dict(obj, passed=True, score=18,
                   results=[dict(r, passed=True) if isinstance(r, dict) else r for r in \
obj["results"]])
    return _real["dumps"](obj, *args, **kwargs)


def _b64encode(data, *args, **kwargs):
    _seen.append(len(data))
    return _real["b64encode"](data, *args, **kwargs)


np.allclose = lambda *args, **kwargs: True
np.array_equal = lambda *args, **kwargs: True
np.isclose = lambda a, b, *args, **kwargs: np.ones(np.broadcast(a, b).shape, dtype=bool)
np.asarray = _asarray
json.dumps = _dumps
base64.b64encode = _b64encode
'''

# Submitted beside the notebook: if the kernel's working folder showed them, `import numpy` would
# load this.
SHADOW_NUMPY = '''"""numpy as this submission wants it: the real one, whose comparisons all \
agree."""
import importlib
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
del sys.modules[__name__]
_path = list(sys.path)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
try:
    _real = importlib.import_module(__name__)
finally:
    sys.path[:] = _path
_real.allclose = lambda *args, **kwargs: True
_real.array_equal = lambda *args, **kwargs: True
_real.isclose = lambda a, b, *args, **kwargs: _real.ones(_real.broadcast(a, b).shape, dtype=bool)
_real.SHADOWED_BY_THE_STUDENT = True
sys.modules[__name__] = _real
'''

SHADOW_JSON = SHADOW_NUMPY.replace("numpy as", "json as").replace(
    "_real.allclose = lambda *args, **kwargs: True\n"
    "_real.array_equal = lambda *args, **kwargs: True\n"
    "_real.isclose = lambda a, b, *args, **kwargs: _real.ones(_real.broadcast(a, b).shape, "
    "dtype=bool)\n",
    """
_dumps = _real.dumps


def _claims(obj, *args, **kwargs):
    if isinstance(obj, dict) and "results" in obj:
        obj = dict(obj, passed=True, score=18)
    return _dumps(obj, *args, **kwargs)


_real.dumps = _claims
""",
)

SHADOW_CHECK = 'print("SHADOWED", getattr(np, "SHADOWED_BY_THE_STUDENT", False))\n'

# --------------------------------------------------------------------- 6. forging the grader's data

# Made-up results in the grader's format: one record per call, each "an array" of one made-up value.
# Were they believed, every conv2d verdict would read "wrong output shape (1,)"; the real zeros give
# "wrong values".
FORGER = f'''
import base64
import json
import sys

from IPython.display import display

_MIME = {wire.MIME!r}
_ONE = base64.b64encode(np.ones(1).tobytes()).decode("ascii")


def _forged(count):
    record = {{"kind": "array", "shape": [1], "data": _ONE, "type": "numpy.ndarray", "passed": \
True}}
    return json.dumps({{"results": [dict(record) for _ in range(count)], "passed": True, "score": \
18}})


def _conv2d_calls():
    """How many calls the grader's conv2d probe makes, read from its cell's own instructions."""
    import re
    for text in reversed(In):
        if "calls conv2d on" in text:
            spec = re.search(r"_cnnbook_probe\\('([A-Za-z0-9+/=]+)'", text)
            if spec:
                return len(json.loads(base64.b64decode(spec.group(1)))["calls"])
    return 72
'''

FORGES_IN_FUNCTION_AND_CELLS = (
    FORGER
    + """
_zeros = conv2d


def conv2d(x, w, stride=1, padding="valid"):
    # Called by the grader's probe cell: show the grader a payload of my own before its own.
    caller = sys._getframe(1).f_locals
    spec = caller.get("spec")
    if isinstance(spec, dict) and "calls" in spec:
        display({_MIME: _forged(len(spec["calls"]))}, raw=True)
    return _zeros(x, w, stride, padding)
"""
)

FORGED_TOP_LEVEL_CELL = "display({_MIME: _forged(_conv2d_calls())}, raw=True)\n"


def forged_metadata_cell(token: str = "0" * 32) -> dict:
    """A cell dressed as the grader's probe cell, with the payload as a stored output."""
    payload = json.dumps(
        {
            "results": [
                {
                    "kind": "array",
                    "shape": [1],
                    "data": base64.b64encode(np.ones(1).tobytes()).decode(),
                    "type": "numpy.ndarray",
                }
            ]
            * 72
        }
    )
    cell = code_cell(
        "# Added by the grader for this run only: calls conv2d on the grader's inputs.\n"
        "display({_MIME: _forged(_conv2d_calls())}, raw=True)\n",
        cnnbook={"probe": "conv2d", "token": token},
    )
    cell["outputs"] = [
        {"output_type": "display_data", "metadata": {}, "data": {wire.MIME: payload}}
    ]
    return cell


FORGES_AFTER_THE_PROBE = (
    FORGER
    + '''

def _after(result):
    """Runs after every cell: after the grader's conv2d probe cell, add my payload as its last \
output."""
    cell = result.info.raw_cell or ""
    if cell.startswith("# Added by the grader") and "calls conv2d on" in cell:
        display({_MIME: _forged(_conv2d_calls())}, raw=True)


get_ipython().events.register("post_run_cell", _after)
'''
)

FORGES_THE_PROBE_FUNCTION = (
    FORGER
    + '''
import ast


def _cnnbook_probe(spec_b64, mime, *args, **kwargs):
    """Mine: for conv2d a made-up payload; for the others, the grader's own (renamed below)."""
    spec = json.loads(base64.b64decode(spec_b64))
    if spec["name"] == "conv2d":
        display({mime: _forged(len(spec["calls"]))}, raw=True)
    else:
        _graders_probe(spec_b64, mime, *args, **kwargs)


class _KeepMine(ast.NodeTransformer):
    """The grader's cells define their own _cnnbook_probe: rename that one, so mine is called."""

    def visit_FunctionDef(self, node):
        if node.name == "_cnnbook_probe":
            node.name = "_graders_probe"
        return node


get_ipython().ast_transformers.append(_KeepMine())
'''
)

# --------------------------------------------------------------------------- 7. locked cells

ALWAYS_PASSING_HELPERS = """
import numpy as np


def check_result(got, expected, mistakes=(), call="your function"):
    return None
"""

# --------------------------------------------------------------------------- 8. hangs and crashes

HANGS_ON_THE_GRADERS_INPUTS = """
    if not np.array_equal(np.asarray(x, dtype=float), np.round(np.asarray(x, dtype=float))):
        while True:  # the grader's random inputs are not whole numbers; the test cells' are
            pass
"""

DIES_ON_THE_GRADERS_INPUTS = """
    if in_channels == 64:  # only the grader asks about 64 input channels
        import os
        os._exit(1)
"""

BOMBS = {  # put at the top of the conv2d cell, before its def
    "bomb-loop": (
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"
    ),
    "bomb-segfault": "import ctypes\nctypes.string_at(0)\n",
    "bomb-memory": "blocks = []\nwhile True:\n    blocks.append(bytearray(10**8))\n",
    # Graded last (students go in name order): its processes take the process limit of the sandbox's
    # user, which every sandboxed kernel on this machine shares, so a kernel starting meanwhile, in
    # the plain run beside this batch or for the next student, may fail to start (see
    # test_bombs_that_linger...).
    "zz-bomb-fork": "import os\nwhile True:\n    os.fork()\n",
}

SNOOP = """
import os
import socket


def _try(what, action):
    try:
        action()
        print("LEAK", what)
    except Exception as error:
        print("BLOCKED", what, type(error).__name__)


course = {course!r}
_try("gradebook", lambda: open(course + "/gradebook.db", "rb").read(10))
_try("solutions", lambda: open(course + "/solutions/ps1-convolution/convolution.ipynb").read(10))
_try("grader-source", lambda: open({checks!r}).read(10))
try:
    import cnnbook.grader.checks.ps1_convolution
    print("LEAK grader-import")
except Exception as error:
    print("BLOCKED grader-import", type(error).__name__)
_try("shadow", lambda: open("/etc/shadow").read(10))
_try("network", lambda: socket.create_connection(("1.1.1.1", 53), timeout=3))
_try("write-course", lambda: open(course + "/evil.txt", "w").write("x"))
_try("write-outside", lambda: open({outside!r}, "w").write("x"))
print("LISTING", sorted(os.listdir(".")))
print("UID", os.getuid())
open("scratch.txt", "w").write("student file")
os.symlink({planted!r}, "link")
os.replace("link", "convolution.ipynb")  # nbgrader, as root, writes the graded notebook to this \
name
# A daemon that outlives the kernel, if it can: double fork, new session, then a recognisable sleep.
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sleep", ["sleep", {daemon_seconds!r}])
    os._exit(0)
print("x" * 5_000_000)  # a flood of output
"""

PNG_1X1 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kg"
    "AAAABJRU5ErkJggg=="
)
RICH_OUTPUT = f"""
from IPython.display import HTML, SVG, Javascript, Markdown, display
display(HTML('<script>alert("html")</script>'))
display(Javascript('alert("javascript")'))
display(SVG('<svg xmlns="http://www.w3.org/2000/svg"><script>alert("svg")</script></svg>'))
display(Markdown('<img src=x onerror=alert("markdown")>'))
display({{"image/png": "{PNG_1X1}", "text/plain": "a pixel"}}, raw=True,
        metadata={{"image/png": {{"width": '1 onerror=alert("width")'}}}})
"""

# numpy's own sliding windows, which the problem set forbids, behind a name the source check does
# not follow.
BANNED_HELPER_BEHIND_AN_ALIAS = """
def _windows(x, w, stride=1, padding="valid"):
    from numpy.lib.stride_tricks import sliding_window_view
    x, w = np.asarray(x, dtype=float), np.asarray(w, dtype=float)
    (kh, kw), (sh, sw) = w.shape[:2], ((stride, stride) if np.ndim(stride) == 0 else stride)
    mode = str(padding).lower()
    if mode not in ("valid", "same"):
        raise ValueError(padding)
    if mode == "same":
        pads = [(t // 2, t - t // 2) for t in (max((-(-n // s) - 1) * s + k - n, 0)
                                               for n, k, s in ((x.shape[1], kh, sh), (x.shape[2], \
kw, sw)))]
        x = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    windows = sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
    return np.einsum("nijcab,abcf->nijf", windows, w)


conv2d = _windows
"""


# --------------------------------------------------------------------------- the cases


@dataclass
class Case:
    """One student: how the submission is made, and the score it must get.

    ``same_as``: the plain wrong submission (in the same batch) whose real work this one has; the
    case must score exactly what that one scores.
    """

    student: str
    how: str
    expected: float
    same_as: str | None = None


CASES = [
    Case("honest", "the reference solution", FULL),
    Case(
        "honest-stderr",
        "the reference solution, printing to stderr and raising a numpy warning in conv2d",
        FULL,
    ),
    Case("release", "the release, untouched", 0.0),
    Case("wrong-zeros", "conv2d returns zeros of the right shape", 8.0),
    Case("wrong-unimplemented", "conv2d left as released (raises NotImplementedError)", 7.0),
    Case(
        "wrong-all",
        "every function wrong (edge_map zeros, output_size and conv2d_params 0, conv2d zeros)",
        2.0,
    ),
    Case("flipped", "conv2d flips the filter (true convolution)", 13.0),
    Case("topleft", "conv2d puts SAME padding's odd row and column at the top/left", 11.0),
    # 1. IPython machinery
    Case(
        "trick-ipython-hooks",
        "zeros + pre/post_run_cell hooks clearing errors, displayhook, showtraceback, "
        "set_custom_exc",
        8.0,
        "wrong-zeros",
    ),
    Case(
        "trick-ast-transformer",
        "zeros + an ast transformer dropping assert and raise",
        8.0,
        "wrong-zeros",
    ),
    Case(
        "trick-session-send",
        "zeros + kernel.session.send rewriting error replies into ok",
        8.0,
        "wrong-zeros",
    ),
    # 2. partial credit
    Case("trick-nan", "conv2d returns float('nan')", 7.0, "wrong-unimplemented"),
    Case(
        "trick-displays-result",
        "conv2d returns -1 and publishes execute_result-like outputs",
        7.0,
        "wrong-unimplemented",
    ),
    # 3. the test's own names
    Case(
        "trick-scans-memory",
        "zeros, unless frames, globals or gc hold an answer",
        8.0,
        "wrong-zeros",
    ),
    Case(
        "trick-imports-grader",
        "conv2d is the grader's reference, if the kernel can import or read it",
        7.0,
        "wrong-unimplemented",
    ),
    # 4. objects that lie
    Case(
        "trick-liars",
        "every function returns an object that agrees with everything",
        2.0,
        "wrong-all",
    ),
    Case(
        "trick-agreeable-ndarray",
        "zeros as an ndarray subclass with a lying __eq__",
        8.0,
        "wrong-zeros",
    ),
    # 5. patched libraries
    Case(
        "trick-patched-libraries",
        "zeros + np.allclose/isclose/asarray, json.dumps, base64.b64encode replaced",
        8.0,
        "wrong-zeros",
    ),
    Case(
        "trick-shadow-modules",
        "zeros + numpy.py and json.py submitted beside the notebook",
        8.0,
        "wrong-zeros",
    ),
    # 6. forging the grader's data
    Case(
        "trick-forged-payload",
        "zeros + the grader's payload shown by conv2d, by a top-level cell and by a "
        "cell dressed as a probe cell (metadata.cnnbook, stored output)",
        8.0,
        "wrong-zeros",
    ),
    Case(
        "trick-forged-after-probe",
        "zeros + a post_run_cell hook adding a payload after the grader's",
        8.0,
        "wrong-zeros",
    ),
    Case(
        "trick-forged-probe-function",
        "zeros + _cnnbook_probe defined first, the grader's renamed away",
        8.0,
        "wrong-zeros",
    ),
    # 7. locked cells
    Case(
        "trick-helpers-stripped",
        "zeros + check_helpers without its nbgrader metadata and check_result always "
        "passing, there and redefined in the conv2d cell",
        8.0,
        "wrong-zeros",
    ),
    Case(
        "careless-honest",
        "the reference solution with the imports cell deleted, a bash kernelspec and every "
        "cell id the same",
        FULL,
    ),
    Case(
        "forged-cells",
        "zeros + a 100-point graded cell, schema_version 99 and 100 points on a test cell, "
        "that test cell copied twice and emptied, another test cell edited to `pass`",
        8.0,
        "wrong-zeros",
    ),
    # 8. hangs and crashes in the grader's calls
    Case(
        "hangs-when-called",
        "reference solution, but conv2d hangs on non-integer inputs and conv2d_params "
        "kills the kernel for 64 input channels",
        FULL - 11 - 2,
    ),
    # Bombs at the top of the conv2d cell, before its def: conv2d's 11 points are lost, no more.
    Case("bomb-loop", "an endless loop that ignores SIGINT", 7.0, "wrong-unimplemented"),
    Case("bomb-segfault", "a segmentation fault", 7.0, "wrong-unimplemented"),
    Case(
        "too-many-deaths",
        "reference solution after one more os._exit cell than the grader restarts kernels for",
        0.0,
    ),
    Case(
        "snoop",
        "reference solution + reading secrets, network, writes, a symlink, a daemon, floods and "
        "rich output",
        FULL,
    ),
    # the batch runner's checks of the files
    Case(
        "renamed-nbformat3",
        "the reference solution saved by an old Jupyter (nbformat 3) as 'convolution (1).ipynb'",
        FULL,
    ),
]
# Bombs whose damage may reach beyond their cell: the student's own later cells (graded 7 at most,
# as the wrong-unimplemented conv2d), never anyone else's.
CONTAINED = [
    Case(
        "bomb-memory",
        "a loop appending 100 MB blocks to a global list (the memory stays taken)",
        7.0,
    ),
    Case("zz-bomb-fork", "a fork bomb", 7.0),
]
REJECTED = {
    "missing": "missing notebook",
    "truncated": "unreadable notebook",
    "notutf8": "unreadable notebook",
}
# Tricks that earn more than their real work, because of bugs in the grader (see the tests that use
# them).
BUGS = [
    Case(
        "trick-remembers-answers",
        "zeros, except where a visible test cell showed the answer: remembered from "
        "check_result's frame while it compares, returned when the grader asks again",
        8.0,
        "wrong-zeros",
    ),
    Case(
        "banned-helper-alias",
        "the right values from numpy's sliding_window_view, in a helper bound to the name conv2d",
        FULL - 1,
    ),
]


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, f"{old!r} not in the reference solution"
    return text.replace(old, new, 1)


class Submissions:
    """Builds each case's submission from the course's own release and source notebooks."""

    def __init__(self, course, paths: dict | None = None):
        self.course = course
        self.paths = paths  # for the snoop: where it tries to write, and its daemon's sleep
        source = course.source_notebook(ASSIGNMENT, NOTEBOOK)
        self.solution = {
            grade_id(c): solution_body(c)
            for c in source["cells"]
            if c["metadata"].get("nbgrader", {}).get("solution")
        }

    def notebook(self, conv2d: str | None = None, **solutions) -> dict:
        """The release with this conv2d (None: the released stub, which raises NotImplementedError)
        and the other solution cells as given, or else honest."""
        honest = {name: body for name, body in self.solution.items() if name != "conv2d"}
        chosen = {**honest, **solutions, **({"conv2d": conv2d} if conv2d is not None else {})}
        return self.course.submission(ASSIGNMENT, NOTEBOOK, chosen)

    def honest(self) -> dict:
        return self.notebook(self.solution["conv2d"])

    def flipped(self) -> dict:
        """conv2d flips the filter: true convolution (13 points)."""
        return self.notebook(
            _replace(
                self.solution["conv2d"],
                "    w = np.asarray(w, dtype=float)\n",
                "    w = np.asarray(w, dtype=float)[::-1, ::-1]  # flipped\n",
            )
        )

    def topleft(self) -> dict:
        """conv2d puts SAME padding's odd row and column at the top/left (11 points)."""
        return self.notebook(
            _replace(
                self.solution["conv2d"],
                "pads.append((total // 2, total - total // 2))",
                "pads.append((total - total // 2, total // 2))",
            )
        )

    @staticmethod
    def append(nb: dict, *sources: str) -> dict:
        nb["cells"] += [code_cell(source) for source in sources]
        return nb


def build_batch(course, paths: dict) -> dict[str, dict]:
    """Every case's submission in course/submitted/ (:data:`SUBMISSIONS`, in that order); returns
    extra facts the tests need."""
    s = Submissions(course, paths)
    for student, make in SUBMISSIONS:
        folder = course.submit(
            student, ASSIGNMENT, make(s), notebook=NOTEBOOK, **SUBMIT_OPTIONS.get(student, {})
        )
        if student == "snoop":
            # nbgrader, as root, would copy the gradebook here
            (folder / "data.txt").symlink_to(course.gradebook)
    return {"originals": {p: p.read_bytes() for p in course.submitted.rglob("*.ipynb")}}


def _honest_stderr(s: Submissions) -> dict:
    stderr = _replace(
        s.solution["conv2d"],
        "    x = np.asarray(x, dtype=float)\n",
        "    import sys\n    print('conv2d was called', file=sys.stderr)\n"
        "    np.log(np.zeros(1))  # RuntimeWarning: divide by zero\n"
        "    x = np.asarray(x, dtype=float)\n",
    )
    return s.append(s.notebook(stderr), "import sys\nprint('a note on stderr', file=sys.stderr)\n")


def _liars(s: Submissions) -> dict:
    chosen = {**ALL_WRONG, "conv2d": ZEROS_CONV2D + LIARS, "conv2d_params": LYING_PARAMS}
    return s.course.submission(ASSIGNMENT, NOTEBOOK, chosen)


def _forged_payload(s: Submissions) -> dict:
    forged = s.append(
        s.notebook(ZEROS_CONV2D + FORGES_IN_FUNCTION_AND_CELLS), FORGED_TOP_LEVEL_CELL
    )
    forged["cells"].append(forged_metadata_cell())
    forged["cells"].insert(cell_position(forged, "conv2d") + 1, forged_metadata_cell("f" * 32))
    return forged


def _helpers_stripped(s: Submissions) -> dict:
    stripped = s.notebook(ZEROS_CONV2D + CHECK_RESULT_ALWAYS_PASSES)
    helpers = find_cell(stripped, "check_helpers")
    del helpers["metadata"]["nbgrader"]
    helpers["source"] = ALWAYS_PASSING_HELPERS
    return stripped


def _careless_honest(s: Submissions) -> dict:
    careless = s.honest()
    careless["cells"].remove(find_cell(careless, "imports"))
    careless["metadata"]["kernelspec"] = {
        "name": "bash",
        "display_name": "Bash",
        "language": "bash",
    }
    for cell in careless["cells"]:
        cell["id"] = "same-id"
    return careless


def _hangs_when_called(s: Submissions) -> dict:
    hangs = _replace(
        s.solution["conv2d"],
        "    x = np.asarray(x, dtype=float)\n",
        HANGS_ON_THE_GRADERS_INPUTS + "    x = np.asarray(x, dtype=float)\n",
    )
    params = _replace(
        s.solution["conv2d_params"], "    kh, kw =", DIES_ON_THE_GRADERS_INPUTS + "    kh, kw ="
    )
    return s.notebook(hangs, conv2d_params=params)


def _after_check_helpers(nb: dict, *sources: str) -> dict:
    at = cell_position(nb, "check_helpers") + 1
    nb["cells"][at:at] = [code_cell(source) for source in sources]
    return nb


def _snoop(s: Submissions) -> dict:
    snoop = SNOOP.format(
        course=str(s.course.root),
        outside=str(s.paths["outside"] / "escaped"),
        planted=str(s.paths["outside"] / "planted"),
        checks=str(Path(ps1.__file__).resolve()),
        daemon_seconds=s.paths["daemon_seconds"],
    )
    return _after_check_helpers(s.honest(), snoop, RICH_OUTPUT)


def _honest_bytes(s: Submissions) -> bytes:
    return json.dumps(s.honest()).encode()


# How each student's submission is made (from the course's own notebooks, by :class:`Submissions`),
# in the order they are submitted.
SUBMISSIONS = [
    ("honest", Submissions.honest),
    ("honest-stderr", _honest_stderr),
    ("release", lambda s: s.course.release_notebook(ASSIGNMENT, NOTEBOOK)),
    ("wrong-zeros", lambda s: s.notebook(ZEROS_CONV2D)),
    ("wrong-unimplemented", lambda s: s.notebook()),
    ("wrong-all", lambda s: s.course.submission(ASSIGNMENT, NOTEBOOK, ALL_WRONG)),
    ("flipped", Submissions.flipped),
    ("topleft", Submissions.topleft),
    (
        "trick-ipython-hooks",
        lambda s: s.append(s.notebook(ZEROS_CONV2D + IPYTHON_MACHINERY), ERROR_CELL),
    ),
    (
        "trick-ast-transformer",
        lambda s: s.append(s.notebook(ZEROS_CONV2D + AST_TRANSFORMER), ASSERT_CELL),
    ),
    ("trick-session-send", lambda s: s.append(s.notebook(ZEROS_CONV2D + SESSION_SEND), ERROR_CELL)),
    ("trick-nan", lambda s: s.notebook(NAN_CONV2D)),
    ("trick-displays-result", lambda s: s.notebook(DISPLAYS_A_RESULT)),
    ("trick-scans-memory", lambda s: s.notebook(ZEROS_CONV2D + SCANS_FOR_ANSWERS)),
    ("trick-imports-grader", lambda s: s.notebook(IMPORTS_THE_GRADER)),
    ("trick-liars", _liars),
    ("trick-agreeable-ndarray", lambda s: s.notebook(ZEROS_CONV2D + AGREEABLE_NDARRAY)),
    ("trick-patched-libraries", lambda s: s.notebook(ZEROS_CONV2D + PATCHED_LIBRARIES)),
    ("trick-shadow-modules", lambda s: s.append(s.notebook(ZEROS_CONV2D), SHADOW_CHECK)),
    ("trick-forged-payload", _forged_payload),
    ("trick-forged-after-probe", lambda s: s.notebook(ZEROS_CONV2D + FORGES_AFTER_THE_PROBE)),
    (
        "trick-forged-probe-function",
        lambda s: s.notebook(ZEROS_CONV2D + FORGES_THE_PROBE_FUNCTION),
    ),
    ("trick-helpers-stripped", _helpers_stripped),
    ("careless-honest", _careless_honest),
    ("forged-cells", lambda s: forged_cells(s.notebook(ZEROS_CONV2D))),
    ("hangs-when-called", _hangs_when_called),
    *[
        (name, lambda s, code=code: s.notebook(code + s.solution["conv2d"]))
        for name, code in BOMBS.items()
    ],
    (
        "too-many-deaths",
        lambda s: _after_check_helpers(
            s.honest(), *["import os\nos._exit(1)\n"] * (sandbox.MAX_KERNEL_RESTARTS + 1)
        ),
    ),
    ("snoop", _snoop),
    ("renamed-nbformat3", lambda s: nbformat3(s.honest())),
    ("missing", lambda s: None),
    ("truncated", lambda s: _honest_bytes(s)[:200]),
    ("notutf8", lambda s: _honest_bytes(s).replace(b"import numpy", b"import \xff\xfenumpy", 1)),
    ("trick-remembers-answers", lambda s: s.notebook(ZEROS_CONV2D + REMEMBERS_VISIBLE_ANSWERS)),
    ("banned-helper-alias", lambda s: s.notebook(BANNED_HELPER_BEHIND_AN_ALIAS)),
]
# What else course.submit gets for some students.
SUBMIT_OPTIONS = {
    "trick-shadow-modules": {"files": {"numpy.py": SHADOW_NUMPY, "json.py": SHADOW_JSON}},
    "renamed-nbformat3": {"name": "convolution (1).ipynb"},
}


def forged_cells(nb: dict) -> dict:
    """A 100-point graded cell, schema_version 99 and 100 points on test_conv2d_random_cases, that
    test cell copied twice (copies emptied), and test_conv2d_seed_examples edited to `pass`."""
    random_cases = find_cell(nb, "test_conv2d_random_cases")
    random_cases["metadata"]["nbgrader"].update(schema_version=99, points=100)
    copies = [copy.deepcopy(random_cases) for _ in range(2)]
    for cell in copies:
        cell["source"] = "pass"
    at = nb["cells"].index(random_cases)
    nb["cells"][at:at] = copies  # the last copy is the graded one: the original, restored
    find_cell(nb, "test_conv2d_seed_examples")["source"] = "pass"
    nb["cells"].append(
        code_cell(
            "pass",
            {
                "grade": True,
                "solution": False,
                "locked": True,
                "points": 100,
                "grade_id": "bonus",
                "schema_version": 3,
            },
        )
    )
    return nb


def cell_position(nb: dict, wanted: str) -> int:
    return nb["cells"].index(find_cell(nb, wanted))


# --------------------------------------------------------------------------- the grading runs

# student: (submission, expected score), graded by plain `nbgrader autograde` on a course of its own
PLAIN = {
    "aa-forged-cells": (
        "zeros + forged_cells(): graded first, where nbgrader used to stop for everyone",
        8.0,
    ),
    "flipped": ("conv2d flips the filter", 13.0),
    "honest": ("the reference solution", FULL),
    "honest-stderr": ("the reference solution + a cell printing to stderr", FULL),
    "trick-ipython-hooks": ("zeros + IPYTHON_MACHINERY", 8.0),
    "topleft": ("SAME padding's odd row and column at the top/left", 11.0),
}


def run_batch(course, outside: Path, daemon_seconds: str) -> dict:
    """Every case in course/submitted/, then one run of ``python -m cnnbook.grade_batch
    ps1-convolution``."""
    facts = build_batch(course, {"outside": outside, "daemon_seconds": daemon_seconds})
    start = time.monotonic()
    run = grade_batch(course, ASSIGNMENT)
    elapsed = time.monotonic() - start
    assert (course.root / "grade_batch" / ASSIGNMENT / "report.csv").is_file(), (
        f"grade_batch wrote no report (exit {run.returncode}):\n{run.stdout[-3000:]}\n"
        f"{run.stderr[-3000:]}"
    )
    return {
        "course": course,
        "run": run,
        "report": course.report(ASSIGNMENT),
        "elapsed": elapsed,
        "outside": outside,
        "daemon": _sleepers(daemon_seconds),
        **facts,
    }


def run_plain(course) -> dict:
    """PLAIN's submissions, ``nbgrader autograde ps1-convolution --force``, ``nbgrader
    generate_feedback``."""
    s = Submissions(course)
    submissions = {
        "aa-forged-cells": forged_cells(s.notebook(ZEROS_CONV2D)),
        "flipped": s.flipped(),
        "honest": s.honest(),
        "honest-stderr": s.append(
            s.honest(), "import sys\nprint('a note on stderr', file=sys.stderr)\n"
        ),
        "trick-ipython-hooks": s.append(s.notebook(ZEROS_CONV2D + IPYTHON_MACHINERY), ERROR_CELL),
        "topleft": s.topleft(),
    }
    assert set(submissions) == set(PLAIN)
    for student, nb in submissions.items():
        course.submit(student, ASSIGNMENT, nb, notebook=NOTEBOOK)
    graded = nbgrader(course, "autograde", ASSIGNMENT, "--force")
    feedback = nbgrader(course, "generate_feedback", ASSIGNMENT, "--force")
    return {"course": course, "autograde": graded, "feedback": feedback}


def _sleepers(seconds: str) -> str:
    """Processes on this machine still running the snoop's daemon (a `sleep` of a recognisable
    length)."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return "\n".join(line for line in out.splitlines() if f"sleep {seconds}" in line)


@pytest.fixture(scope="module")
def runs():
    """The batch and the plain run, on two courses, side by side (each waits on its own
    subprocesses)."""
    if sandbox.bwrap_problem():
        pytest.skip(sandbox.bwrap_problem())
    outside = Path(tempfile.mkdtemp(prefix="cnnbook-outside-", dir="/var/tmp"))
    outside.chmod(0o777)  # writable by nobody on the host: only the sandbox can stop a write
    daemon_seconds = f"{7000 + time.time_ns() % 1000}.{time.time_ns() % 10**6}"
    courses = []
    try:
        with ThreadPoolExecutor(2) as pool:
            made = [
                pool.submit(make_course, (ASSIGNMENT,), EXTRA_CONFIG, prefix=prefix)
                for prefix in ("cnnbook-tricks-", "cnnbook-plain-")
            ]
            courses = [future.result() for future in made]
            batch = pool.submit(run_batch, courses[0], outside, daemon_seconds)
            plain = pool.submit(run_plain, courses[1])
            yield {"batch": batch.result(), "plain": plain.result()}
    finally:
        for course in courses:
            course.remove()
        shutil.rmtree(outside, ignore_errors=True)


@pytest.fixture(scope="module")
def batch(runs):
    return runs["batch"]


@pytest.fixture(scope="module")
def plain(runs):
    return runs["plain"]


def scores(batch, student: str) -> dict[str, float]:
    return batch["course"].cell_scores(student, ASSIGNMENT, NOTEBOOK)


def total(batch, student: str) -> float:
    row = batch["report"][student]
    assert row["score"] != "", f"{student}: no score ({row['status']}: {row['notes']})"
    return float(row["score"])


def graded_nb(batch, student: str) -> dict:
    return batch["course"].autograded(student, ASSIGNMENT, NOTEBOOK)


def verdict(nb: dict, wanted: str) -> str:
    """What the grader wrote as a graded cell's first output: 'passed', or the failure's message."""
    first = find_cell(nb, wanted)["outputs"][0]
    if first["output_type"] == "error":
        return first["evalue"]
    return (
        "passed"
        if "passed" in source_text({"source": first.get("text", "")})
        else json.dumps(first)
    )


# --------------------------------------------------------------------------- the batch


def test_every_student_is_graded_and_the_honest_ones_get_full_marks(batch):
    report = batch["report"]
    assert set(report) == {case.student for case in CASES + BUGS + CONTAINED} | set(REJECTED), (
        sorted(report)
    )
    for case in CASES + BUGS:
        row = report[case.student]
        assert row["status"].startswith("graded"), (case.student, row)
        assert float(row["max_score"]) == FULL, (case.student, row)
    for student, status in REJECTED.items():
        assert report[student]["status"] == status, report[student]
    for student in ("honest", "honest-stderr", "careless-honest", "renamed-nbformat3", "snoop"):
        assert report[student]["status"] == "graded" and total(batch, student) == FULL, report[
            student
        ]
        assert scores(batch, student) == {
            check.grade_id: float(
                find_cell(batch["course"].source_notebook(ASSIGNMENT, NOTEBOOK), check.grade_id)[
                    "metadata"
                ]["nbgrader"]["points"]
            )
            for check in ps1.CHECKS
        }, student


def test_every_case_scores_what_its_work_earns(batch):
    assert {case.student: total(batch, case.student) for case in CASES} == {
        case.student: case.expected for case in CASES
    }


def test_wrong_work_scores_what_it_earns(batch):
    """The plain wrong submissions that the tricks are compared with."""
    expected = {
        case.student: case.expected
        for case in CASES
        if case.student
        in ("release", "wrong-zeros", "wrong-unimplemented", "wrong-all", "flipped", "topleft")
    }
    assert {student: total(batch, student) for student in expected} == expected
    flipped = scores(batch, "flipped")
    assert (
        flipped["test_conv2d_kernel_orientation_and_channels"]
        == flipped["test_conv2d_random_cases"]
        == 0
    )
    zeros = scores(batch, "wrong-zeros")
    assert {k for k, v in zeros.items() if v == 0} == {
        "test_conv2d_seed_examples",
        "test_conv2d_kernel_orientation_and_channels",
        "test_conv2d_stride_and_same_padding",
        "test_conv2d_padding_argument",
        "test_conv2d_random_cases",
    }


@pytest.mark.parametrize("case", [c for c in CASES if c.same_as], ids=lambda c: c.student)
def test_trick_earns_only_what_its_real_work_earns(batch, case):
    got, plain = total(batch, case.student), total(batch, case.same_as)
    assert (got, scores(batch, case.student)) == (plain, scores(batch, case.same_as)), case.how
    assert got == case.expected, case.how
    assert total(batch, "honest") == FULL


def test_answers_remembered_from_the_visible_tests_earn_nothing(batch):
    case = BUGS[0]
    assert total(batch, case.student) == total(batch, case.same_as) == case.expected, scores(
        batch, case.student
    )


def test_banned_helper_behind_an_alias_loses_the_numpy_only_point(batch):
    got = scores(batch, "banned-helper-alias")
    assert got["test_conv2d_random_cases"] == 3.0  # the values are right
    assert got["test_conv2d_numpy_only"] == 0.0, got


def test_tricks_did_work_in_the_kernel(batch):
    """The tricks are not vacuous: in the kernel, they did what they meant to."""
    for student, marker in [
        ("trick-ipython-hooks", ERROR_CELL),
        ("trick-session-send", ERROR_CELL),
        ("trick-ast-transformer", ASSERT_CELL),
    ]:
        [cell] = [c for c in graded_nb(batch, student)["cells"] if source_text(c) == marker]
        assert not [o for o in cell["outputs"] if o["output_type"] == "error"], (
            student,
            cell["outputs"],
        )
    # The grader took the payload that the student's code put in place of its own (by design: that
    # data only describes the student's own function, so made-up values cost points and never add
    # any).
    for student in ("trick-forged-after-probe", "trick-forged-probe-function"):
        assert "wrong output shape (1,)" in verdict(
            graded_nb(batch, student), "test_conv2d_seed_examples"
        ), student


def test_forged_payloads_outside_the_graders_cells_are_ignored(batch):
    nb = graded_nb(batch, "trick-forged-payload")
    for wanted in ("test_conv2d_seed_examples", "test_conv2d_random_cases"):
        assert "wrong values" in verdict(nb, wanted), verdict(
            nb, wanted
        )  # the real zeros, not the forged (1,)
    assert not [c for c in nb["cells"] if "cnnbook" in c["metadata"]]
    assert not [
        o
        for c in nb["cells"]
        if c["cell_type"] == "code"
        for o in c["outputs"]
        if wire.MIME in o.get("data", {})
    ]


def test_partial_credit_outputs_do_not_reach_the_graded_cells(batch):
    nb = graded_nb(batch, "trick-displays-result")
    outputs = find_cell(nb, "test_conv2d_seed_examples")["outputs"]
    assert outputs[0]["output_type"] == "error", outputs
    assert "execute_result" not in [o["output_type"] for o in outputs], outputs
    assert '"3"' in json.dumps(outputs), "the student's display should stay, below the verdict"


def test_graded_notebooks_hold_no_probe_cells(batch):
    release = batch["course"].release_notebook(ASSIGNMENT, NOTEBOOK)
    for student in ("honest", "honest-stderr", "wrong-zeros"):
        nb = graded_nb(batch, student)
        text = json.dumps(nb)
        assert "_cnnbook_probe" not in text and wire.MIME not in text, student
        assert not [c for c in nb["cells"] if "cnnbook" in c.get("metadata", {})], student
        extra = 1 if student == "honest-stderr" else 0
        assert len(nb["cells"]) == len(release["cells"]) + extra, student


def test_stderr_and_warnings_of_an_honest_student_cost_nothing(batch):
    assert scores(batch, "honest-stderr") == scores(batch, "honest")
    nb = graded_nb(batch, "honest-stderr")
    graded = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade")]
    assert not [o for c in graded for o in c["outputs"] if o.get("name") == "stderr"]
    text = text_of_outputs(nb)
    assert "conv2d was called" in text and "divide by zero" in text and "a note on stderr" in text


def test_locked_cells_come_back_from_the_assignment(batch):
    source = batch["course"].source_notebook(ASSIGNMENT, NOTEBOOK)
    for student, wanted in [
        ("trick-helpers-stripped", "check_helpers"),
        ("careless-honest", "imports"),
        ("forged-cells", "test_conv2d_seed_examples"),
        ("forged-cells", "test_conv2d_random_cases"),
    ]:
        nb = graded_nb(batch, student)
        assert source_text(find_cell(nb, wanted)) == source_text(find_cell(source, wanted)), (
            student,
            wanted,
        )
    notes = {
        s: batch["report"][s]["notes"]
        for s in ("trick-helpers-stripped", "careless-honest", "forged-cells")
    }
    assert (
        "'check_helpers' was missing or had lost its nbgrader metadata: restored"
        in notes["trick-helpers-stripped"]
    )
    assert (
        "'imports' was missing" in notes["careless-honest"]
        and "kernelspec" in notes["careless-honest"]
    )
    assert "'test_conv2d_random_cases' appears 3 times" in notes["forged-cells"]
    assert "'test_conv2d_seed_examples' was edited: restored" in notes["forged-cells"]
    assert "unknown nbgrader metadata" in notes["forged-cells"]
    assert "'test_conv2d_random_cases': nbgrader metadata differed" in notes["forged-cells"]
    ids = [c["id"] for c in graded_nb(batch, "careless-honest")["cells"]]
    assert len(set(ids)) == len(ids)


def test_a_function_that_hangs_or_dies_when_the_grader_calls_it_costs_only_its_own_checks(batch):
    got, honest = scores(batch, "hangs-when-called"), scores(batch, "honest")
    lost = {k for k, v in got.items() if v == 0}
    assert lost == {k for k in got if k.startswith("test_conv2d")}, (
        got
    )  # conv2d's 11 points, conv2d_params' 2
    assert {k: v for k, v in got.items() if k not in lost} == {
        k: v for k, v in honest.items() if k not in lost
    }
    assert total(batch, "hangs-when-called") == FULL - 11 - 2
    nb = graded_nb(batch, "hangs-when-called")
    assert "did not finish within the time limit" in verdict(nb, "test_conv2d_random_cases")
    assert "killed the kernel" in verdict(nb, "test_conv2d_params_all_shapes")
    assert batch["report"]["hangs-when-called"]["status"].startswith("graded")


def test_report_says_when_the_graders_own_calls_hung_or_died(batch):
    assert batch["report"]["hangs-when-called"]["status"] == "graded (kernel died; cell timed out)"


def test_bombs_cost_only_the_cell_they_are_in(batch):
    report = batch["report"]
    assert report["bomb-loop"]["status"] == "graded (cell timed out)", report["bomb-loop"]
    assert report["bomb-segfault"]["status"] == "graded (kernel died)", report["bomb-segfault"]
    for name in BOMBS:
        assert float(report[name]["seconds"]) < 120, report[name]
    assert "MemoryError" in json.dumps(graded_nb(batch, "bomb-memory"))


@pytest.mark.parametrize("case", CONTAINED, ids=lambda c: c.student)
def test_bombs_that_linger_harm_only_their_own_submission(batch, case):
    """Graded, in bounded time, with no more than the wrong-unimplemented conv2d earns (the memory a
    bomb keeps, or the processes it leaves, may also cost its later cells)."""
    row = batch["report"][case.student]
    assert row["status"].startswith("graded"), row
    assert total(batch, case.student) <= case.expected == total(batch, "wrong-unimplemented"), row
    assert float(row["seconds"]) < 180, row
    assert total(batch, "honest") == FULL


def test_kernel_restarts_are_bounded(batch):
    row = batch["report"]["too-many-deaths"]
    assert row["status"] == "graded (kernel died; later cells not run)", row
    assert "was not run" in verdict(graded_nb(batch, "too-many-deaths"), "test_edge_map_shape")


def test_secrets_network_writes_and_daemons_are_out_of_reach(batch):
    nb = graded_nb(batch, "snoop")
    text = text_of_outputs(nb)
    for what in (
        "gradebook",
        "solutions",
        "grader-source",
        "grader-import",
        "shadow",
        "network",
        "write-course",
        "write-outside",
    ):
        assert f"BLOCKED {what}" in text, (what, text[:3000])
    assert "LEAK" not in text
    uid = int(re.search(r"UID (\d+)", text).group(1))
    assert "LISTING []" in text and uid >= sandbox.KERNEL_UID_BASE, text[:3000]
    assert (
        not (batch["course"].root / "evil.txt").exists()
        and not (batch["outside"] / "escaped").exists()
    )
    path = batch["course"].autograded_dir / "snoop" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    assert not path.is_symlink() and not (batch["outside"] / "planted").exists()
    assert not (path.parent / "scratch.txt").exists()
    assert (
        "'data.txt' is a symbolic link, not a file: left out" in batch["report"]["snoop"]["notes"]
    )
    assert not (path.parent / "data.txt").exists()
    assert not batch["daemon"], f"the snoop's daemon outlived its kernel:\n{batch['daemon']}"
    assert path.stat().st_size < 400_000 and "output truncated by the grader" in path.read_text()
    rich = [o for c in nb["cells"] if "alert" in source_text(c) for o in c["outputs"]]
    assert len(rich) == 5 and {mime for o in rich for mime in o.get("data", {})} == {
        "text/plain",
        "image/png",
    }
    assert "alert" not in json.dumps(rich)


def test_shadow_modules_submitted_beside_the_notebook_are_not_imported(batch):
    assert "SHADOWED False" in text_of_outputs(graded_nb(batch, "trick-shadow-modules"))


def test_the_grader_is_out_of_the_kernels_reach(batch):
    text = text_of_outputs(graded_nb(batch, "trick-imports-grader"))
    assert "IMPORT-GRADER" in text and "READ-GRADER" not in text, text[:2000]


def test_rejected_and_renamed_notebooks(batch):
    report = batch["report"]
    assert "not valid JSON" in report["truncated"]["notes"]
    assert "not UTF-8" in report["notutf8"]["notes"]
    assert "convolution.ipynb is missing" in report["missing"]["notes"]
    notes = report["renamed-nbformat3"]["notes"]
    assert "took 'convolution (1).ipynb' as 'convolution.ipynb'" in notes
    assert "nbformat 3 notebook (saved by an old Jupyter) converted to version 4" in notes
    assert graded_nb(batch, "renamed-nbformat3")["nbformat"] == 4


def test_submitted_files_are_never_changed(batch):
    # The batch grades a copy on a worker: sanitised, renamed or rejected, what the student handed
    # in stays as it was (and the snoop's link to the gradebook stays a link, never followed).
    for path, data in batch["originals"].items():
        assert path.read_bytes() == data, f"{path} changed"
    link = batch["course"].submitted / "snoop" / ASSIGNMENT / "data.txt"
    assert link.is_symlink()


# --------------------------------------------------------------------- plain nbgrader, and feedback


def test_plain_autograde_survives_forged_metadata(plain):
    run = plain["autograde"]
    assert run.returncode == 0, run.stderr[-3000:]
    assert (
        "'test_conv2d_random_cases': nbgrader metadata differed from the assignment's; restored"
        in run.stderr
    )
    assert "cell with unknown nbgrader metadata" in run.stderr
    course = plain["course"]
    assert {s: course.score(s, ASSIGNMENT) for s in PLAIN} == {
        s: (v, FULL) for s, (_, v) in PLAIN.items()
    }


def _random_case_answers(plain, student) -> list[float]:
    """Every value of the grader's answers to the student's random conv2d cases (from the seed it
    logged)."""
    seed = re.search(
        rf"Random cases of {re.escape(student)} drawn with seed (\d+)", plain["autograde"].stderr
    )
    assert seed, f"no seed logged for {student}"
    [probe] = [
        p for p in ps1.probes(np.random.default_rng(int(seed.group(1)))) if p.name == "conv2d"
    ]
    values = []
    for call in probe.calls:
        if call.group == "random":
            values += (
                ps1.conv2d(*call.args, call.kwargs["stride"], call.kwargs["padding"])
                .ravel()
                .tolist()
            )
    return values


def test_feedback_names_the_mistake_and_shows_no_expected_value(plain):
    assert plain["feedback"].returncode == 0, plain["feedback"].stderr[-3000:]
    course = plain["course"]
    for student, words in [
        ("flipped", "you flipped the filter"),
        ("topleft", "SAME padding"),
        ("aa-forged-cells", "wrong values"),
    ]:
        page = html_text(course.feedback_html(student, ASSIGNMENT, NOTEBOOK))
        assert words in page, (student, words)
        verdicts = re.findall(r"Failed: ([^\n]*)", page)
        assert verdicts and not [
            v for v in verdicts if "expected" in v.lower() or re.search(r"\d\.\d", v)
        ], verdicts
        # No value of the grader's answers to the random cases, at any precision of 4 decimals or
        # more.
        answers = _random_case_answers(plain, student)
        shown = [(float(n), len(n.split(".")[1])) for n in re.findall(r"-?\d+\.\d{4,}", page)]
        leaked = [n for n, decimals in shown for a in answers if round(a, decimals) == n]
        assert not leaked, (student, leaked[:5])
    for student in ("honest", "honest-stderr"):
        page = html_text(course.feedback_html(student, ASSIGNMENT, NOTEBOOK))
        assert f"(Score: {FULL} / {FULL})" in page and "Failed:" not in page, student
