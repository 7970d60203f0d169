"""Every page's downloadable notebook runs as a student runs it: in a clean venv that holds only the
packages of requirements-student.txt (no myst_nb, no cnnbook), top to bottom, with no network.

The notebooks are the ones the website offers (``_build/html/_sources/<page>.ipynb``). The venv is
new for each run; its wheels are downloaded once into a wheelhouse (``CNNBOOK_STUDENT_WHEELS``,
by default ~/.cache/cnnbook/student-wheels/<hash of the requirements>), because pip's own cache is
not enough on every machine (a proxy that marks downloads uncacheable defeats it).

The pages that need MNIST or Fashion-MNIST fall back to ``keras.datasets`` without cnnbook. Its
download is served from a local copy made from cnnbook.data and put into the kernel's KERAS_HOME
before the run; that copy holds the first TRAIN_IMAGES and TEST_IMAGES images only, so the training
pages take fewer steps here (the pages themselves are not changed). Keras checks ``mnist.npz``
against the sha256 of Google's file, which a copy rebuilt from the same arrays cannot match (other
zip bytes): the test puts the local copy's digest in place of Google's in the new venv's Keras.

Each notebook is executed by ``jupyter nbconvert --execute`` from that venv, inside a network
namespace of its own (``unshare -n``, only loopback up for the kernel's sockets); where unshare is
not allowed, every proxy variable points to a closed port instead, and the test says so.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from cnnbook import build
from cnnbook.build import BuildError, clean_notebook, strip_plumbing, toc_files

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements-student.txt"
WHEELHOUSE_ROOT = Path(
    os.environ.get("CNNBOOK_STUDENT_WHEELS", Path.home() / ".cache" / "cnnbook" / "student-wheels")
)
TRAIN_IMAGES, TEST_IMAGES = 3000, 1000
KERAS_MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
CELL_TIMEOUT = 600
PAGES = [  # the markdown pages with code (the others' notebooks have nothing to run)
    p
    for p in toc_files()
    if (ROOT / f"{p}.md").is_file() and "{code-cell}" in (ROOT / f"{p}.md").read_text()
]
TIMINGS: dict[str, float] = {}


def run(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)


def wheelhouse(pip: Path) -> Path:
    """The folder of every wheel the student requirements need, downloaded on the first run only.

    Written to a temporary folder and renamed when complete, so an interrupted download is redone.
    """
    pins = [line for line in REQUIREMENTS.read_text().splitlines() if not line.startswith("#")]
    digest = hashlib.sha256("\n".join(pins).encode()).hexdigest()[:12]  # comments do not count
    folder = WHEELHOUSE_ROOT / digest
    if folder.is_dir():
        return folder
    WHEELHOUSE_ROOT.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=WHEELHOUSE_ROOT))
    started = time.monotonic()
    done = run([str(pip), "download", "-q", "-d", str(partial), "-r", str(REQUIREMENTS)], 3600)
    if done.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        pytest.fail(f"pip could not download the student packages:\n{done.stderr[-3000:]}")
    TIMINGS["download wheels (first run only)"] = time.monotonic() - started
    partial.rename(folder)
    return folder


@pytest.fixture(scope="module")
def report_timings():
    """After the module: the seconds each step took, in test-artifacts/ for the record."""
    yield
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "student-notebooks-timings.json").write_text(json.dumps(TIMINGS, indent=1) + "\n")


@pytest.fixture(scope="module")
def student_venv(tmp_path_factory, student_home, report_timings) -> Path:
    """A new venv with only requirements-student.txt installed; returns its folder."""
    venv = tmp_path_factory.mktemp("student") / "venv"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = venv / "bin" / "pip"
    wheels = wheelhouse(pip)
    installed = time.monotonic()
    done = run(
        [str(pip), "install", "-q", "--no-index", "--find-links", str(wheels)]
        + ["-r", str(REQUIREMENTS)],
        1800,
    )
    assert done.returncode == 0, f"pip install -r requirements-student.txt failed:\n{done.stderr}"
    TIMINGS["pip install from the wheelhouse"] = time.monotonic() - installed
    TIMINGS["venv ready"] = time.monotonic() - started
    local_copy = student_home / ".keras" / "datasets" / "mnist.npz"
    accept_local_mnist(venv, hashlib.sha256(local_copy.read_bytes()).hexdigest())
    return venv


def accept_local_mnist(venv: Path, digest: str) -> None:
    """Make the venv's Keras accept the local mnist.npz (see the module docstring)."""
    (loader,) = venv.glob("lib/python3*/site-packages/keras/src/datasets/mnist.py")
    text = loader.read_text()
    assert text.count(KERAS_MNIST_SHA256) == 1, (
        f"{loader} no longer checks mnist.npz against {KERAS_MNIST_SHA256}: update this test"
    )
    loader.write_text(text.replace(KERAS_MNIST_SHA256, digest))


def _idx(array: np.ndarray) -> bytes:
    """``array`` (uint8) in the IDX format of the original MNIST files, gzipped."""
    magic = 2049 if array.ndim == 1 else 2051
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def write_local_datasets(datasets: Path) -> None:
    """``mnist.npz`` and the four Fashion-MNIST files where Keras looks for its downloads."""
    from cnnbook.data import load_fashion_mnist, load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist()
    npz = datasets / "mnist.npz"
    np.savez_compressed(
        npz,
        x_train=x_train[:TRAIN_IMAGES],
        y_train=y_train[:TRAIN_IMAGES],
        x_test=x_test[:TEST_IMAGES],
        y_test=y_test[:TEST_IMAGES],
    )
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    fashion = datasets / "fashion-mnist"
    fashion.mkdir()
    for name, array in {
        "train-labels-idx1-ubyte.gz": y_train[:TRAIN_IMAGES],
        "train-images-idx3-ubyte.gz": x_train[:TRAIN_IMAGES],
        "t10k-labels-idx1-ubyte.gz": y_test[:TEST_IMAGES],
        "t10k-images-idx3-ubyte.gz": x_test[:TEST_IMAGES],
    }.items():
        (fashion / name).write_bytes(_idx(array))


@pytest.fixture(scope="module")
def student_home(tmp_path_factory) -> Path:
    """An empty home folder whose KERAS_HOME holds the local copies of the datasets."""
    home = tmp_path_factory.mktemp("home")
    datasets = home / ".keras" / "datasets"
    datasets.mkdir(parents=True)
    write_local_datasets(datasets)
    return home


@functools.cache
def offline_prefix() -> tuple[list[str], dict]:
    """The command prefix and extra environment that take the network away from a process."""
    up = 'ip link set lo up && exec "$@"'
    for unshare in (["unshare", "-n"], ["unshare", "-rn"]):
        probe = [*unshare, "sh", "-c", up, "sh", "true"]
        if shutil.which("unshare") and shutil.which("ip") and run(probe, 30).returncode == 0:
            return [*unshare, "sh", "-c", up, "sh"], {}
    closed = "http://127.0.0.1:9"
    print("unshare is not allowed here: the network is blocked through closed proxies only")
    names = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
    return [], {name: closed for name in names} | {"no_proxy": "", "NO_PROXY": ""}


def student_run(venv: Path, home: Path, cwd: Path, *args: str, timeout: float):
    """``args`` run with the venv's bin/ first, ``home`` as HOME and no network."""
    prefix, extra = offline_prefix()
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin",
        "HOME": str(home),
        "KERAS_HOME": str(home / ".keras"),
        "MPLBACKEND": "Agg",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "LANG": "C.UTF-8",
        **extra,
    }
    return run([*prefix, *args], timeout, cwd=cwd, env=env)


@pytest.mark.slow
def test_student_venv_has_only_the_student_packages_and_no_network(
    student_venv, student_home, tmp_path
):
    probe = """
import importlib.util, urllib.request
print([m for m in ("cnnbook", "myst_nb", "jupytext", "nbgrader") if importlib.util.find_spec(m)])
try:
    urllib.request.urlopen("https://storage.googleapis.com/", timeout=10)
    print("online")
except OSError:
    print("offline")
"""
    done = student_run(student_venv, student_home, tmp_path, "python", "-c", probe, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[]", "offline"], done.stdout
    freeze = run([str(student_venv / "bin" / "pip"), "freeze"], 120).stdout.lower().split()
    for pin in REQUIREMENTS.read_text().split():
        if "==" in pin:
            name, version = pin.lower().split("==")
            assert f"{name}=={version}" in freeze, f"{pin} is not what the venv holds"


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_downloaded_notebook_runs_with_only_the_student_packages(
    book, student_venv, student_home, tmp_path, page
):
    published = book.html / "_sources" / f"{page}.ipynb"
    assert published.is_file(), (
        f"the website offers no {page}.ipynb (build result {book.returncode})"
    )
    notebook = tmp_path / published.name
    shutil.copy(published, notebook)
    source = published.read_text()
    assert "myst_nb" not in source and "glue(" not in source, f"{page}.ipynb has build plumbing"

    started = time.monotonic()
    done = student_run(
        student_venv,
        student_home,
        tmp_path,
        "jupyter",
        "nbconvert",
        "--to",
        "notebook",
        "--execute",
        "--inplace",
        f"--ExecutePreprocessor.timeout={CELL_TIMEOUT}",
        notebook.name,
        timeout=1800,
    )
    TIMINGS[page] = time.monotonic() - started
    assert done.returncode == 0, f"{page}.ipynb failed in the student venv:\n{done.stderr[-4000:]}"
    executed = nbformat.read(notebook, as_version=4)
    code = [cell for cell in executed.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), (
        f"{page}.ipynb did not run every cell once, in order"
    )
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{page}.ipynb raised {errors[0].ename}: {errors[0].evalue}"


# The build's plumbing, as the download step removes it (fast: no venv, no build).
PLUMBED = """import numpy as np
from myst_nb import glue

x = np.ones(3)
for i in range(2):
    print(i)
    glue(f"row{i}", i, display=False)
glue("total",
     float(x.sum()),
     display=False)  # a comment goes with it
print(x)
"""


def test_strip_plumbing_removes_glue_and_keeps_the_rest_as_written():
    assert strip_plumbing(PLUMBED) == (
        "import numpy as np\n\nx = np.ones(3)\nfor i in range(2):\n    print(i)\nprint(x)"
    )
    assert strip_plumbing("%matplotlib inline\nglue('a', 1)") == "%matplotlib inline\nglue('a', 1)"


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        ("x = 1; glue('x', x)", "shares its line"),
        ("for i in range(2):\n    glue(f'r{i}', i)", "only glue calls"),
    ],
)
def test_strip_plumbing_refuses_what_it_cannot_remove_cleanly(code, problem):
    with pytest.raises(BuildError, match=problem):
        strip_plumbing(code)


def test_clean_notebook_drops_plumbing_cells(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "---\nkernelspec:\n  name: python3\n  display_name: Python 3\n---\n# A page\n\n"
        "```{code-cell} ipython3\nfrom myst_nb import glue\nx = 2\n```\n\n"
        "```{code-cell} ipython3\n:tags: [remove-cell]\nimport secret_build_helper\n```\n\n"
        "```{code-cell} ipython3\nglue('x', x, display=False)\n```\n\n"
        "```{code-cell} ipython3\nprint(x)\n```\n"
    )
    code = [c.source for c in clean_notebook(page).cells if c.cell_type == "code"]
    assert code == ["x = 2", "print(x)"]


def test_install_mathjax_copies_it_whole_or_says_how_to_get_it(tmp_path, monkeypatch):
    source = tmp_path / "node_modules" / "mathjax" / "es5"
    monkeypatch.setattr(build, "MATHJAX_SOURCE", source)
    target = tmp_path / "html" / "_static" / "mathjax"
    with pytest.raises(BuildError, match="run `make setup`"):
        build.install_mathjax(target)
    assert not target.exists()
    (source / "output" / "chtml" / "fonts").mkdir(parents=True)
    (source / "tex-mml-chtml.js").write_text("/* MathJax */")
    (source / "output" / "chtml" / "fonts" / "a.woff").write_bytes(b"font")
    (source / "tex-svg.js").write_text("/* not used */")
    target.mkdir(parents=True)
    (target / "stale.js").write_text("old")
    assert build.install_mathjax(target) == target
    copied = sorted(str(f.relative_to(target)) for f in target.rglob("*") if f.is_file())
    assert copied == ["output/chtml/fonts/a.woff", "tex-mml-chtml.js"]
    assert sorted(f.name for f in target.parent.iterdir()) == ["mathjax"]


@pytest.mark.parametrize(
    ("markdown", "plain"),
    [
        ("took {glue:text}`port_seconds:.0f` s", "took 84 s"),
        ("accuracy {glue:text}`acc:.4f`.", "accuracy 0.9929."),
        ("{glue:text}`params:,` weights", "615,440 weights"),
        ("{glue:}`params`", "615440"),
        ("not glued: {glue:text}`missing:.2f`", "not glued: `missing`"),
        ("see {doc}`the pooling page <pooling>`", "see the pooling page"),
        ("see {doc}`pooling`", "see pooling"),
        ("as {ref}`the table <rf-table>` shows", "as the table shows"),
    ],
)
def test_downloaded_markdown_shows_values_and_link_texts_not_myst_roles(markdown, plain):
    glued = {"port_seconds": 83.6, "acc": 0.99291, "params": 615440}
    assert build.plain_markdown(markdown, glued) == plain
