"""Tests for creditlab.data: lookup, checksums, the loaders, fetch and the `data` command.

Every test points HOME at a temporary folder (so nothing reads or writes the real
~/.cache/creditlab) and sets CREDITLAB_DATA itself. Code paths run on small files the tests
write (`fake_data`: IDX and MAT files whose checksums are patched into the catalog); only the
tests marked ``genuine_data`` read the genuine files, from wherever ``creditlab`` finds them
when the tests start ($CREDITLAB_DATA, normally ../shared/data, then ~/.cache/creditlab).
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import os
import random
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from creditlab.data import DATASETS, Dataset, data_roots, fetch, load, loaders, store, verify
from creditlab.data.catalog import MNIST1D_CHECKSUM
from creditlab.data.commands import add_parser
from creditlab.errors import UserError

MNIST_TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
BMNIST_FILES = tuple(f"binarized_mnist_{split}.mat" for split in ("train", "valid", "test"))
GENUINE = {name: store.find_folder(DATASETS[name]) for name in DATASETS}
"""Where each genuine data set was found when the tests started (None: absent)."""


def genuine(name: str) -> Path:
    """The root holding the genuine ``name`` (tests using it carry the genuine_data mark)."""
    folder = GENUINE[name]
    assert folder is not None, f"{name} absent: the genuine_data mark should have skipped"
    return folder.parent


# every test here runs with a private HOME and no CREDITLAB_DATA (conftest.py's `home`)
pytestmark = pytest.mark.usefixtures("home")


def raw_idx(path: Path, header: int) -> np.ndarray:
    """An independent reading of an IDX file: skip the header, take the bytes."""
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header)


def flip_byte(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def one_line(error: pytest.ExceptionInfo[UserError]) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    return message


def run_command(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="creditlab")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return args.func(args)


# ---------------------------------------------------------------------------------------------
# lookup
# ---------------------------------------------------------------------------------------------


def test_data_roots_order(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert data_roots() == [home / ".cache" / "creditlab"]
    monkeypatch.setenv("CREDITLAB_DATA", str(tmp_path / "d"))
    assert data_roots() == [tmp_path / "d", home / ".cache" / "creditlab"]


def test_unknown_name_is_a_user_error() -> None:
    for call in (load, verify, fetch):
        with pytest.raises(UserError, match="unknown data set 'mnst'.*digits, mnist1d"):
            call("mnst")


# ---------------------------------------------------------------------------------------------
# digits
# ---------------------------------------------------------------------------------------------


def test_digits_split_shapes_and_ranges() -> None:
    from sklearn.datasets import load_digits

    ds = load("digits")
    assert isinstance(ds, Dataset)
    assert (ds.name, ds.protocol, ds.source) == ("digits", "digits-80/20", "scikit-learn bundled")
    assert (len(ds.x_train), len(ds.x_test)) == (1438, 359)  # 1797 = 1438 + 359
    assert ds.input_shape == (1, 8, 8) and ds.x_train.dtype == torch.float32
    assert ds.y_train.dtype == torch.int64 and set(ds.y_test.tolist()) == set(range(10))
    assert ds.x_train.min() == 0 and ds.x_train.max() == 1
    raw = load_digits()
    # image i is a test image iff i % 5 == 4: test 0 is raw 4, test 1 raw 9; train 4 is raw 5
    assert np.allclose(ds.x_test[0, 0].numpy(), raw.images[4] / 16)
    assert np.allclose(ds.x_test[1, 0].numpy(), raw.images[9] / 16)
    assert np.allclose(ds.x_train[4, 0].numpy(), raw.images[5] / 16)
    assert ds.y_test[:3].tolist() == raw.target[[4, 9, 14]].tolist()
    assert ds.info()["n_train"] == 1438 and ds.info()["input_shape"] == [1, 8, 8]


# ---------------------------------------------------------------------------------------------
# MNIST
# ---------------------------------------------------------------------------------------------


@pytest.mark.genuine_data("mnist")
def test_mnist10k_protocol_from_genuine_test_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "data" / "mnist"  # the two test files alone: the mnist10k layout
    folder.mkdir(parents=True)
    for name in MNIST_TEST_FILES:
        (folder / name).symlink_to(genuine("mnist") / "mnist" / name)
    monkeypatch.setenv("CREDITLAB_DATA", str(folder.parent))
    ds = load("mnist")
    assert (ds.protocol, ds.source) == ("mnist10k", str(folder))
    assert (len(ds.x_train), len(ds.y_train), len(ds.x_test), len(ds.y_test)) == (
        8000,
        8000,
        2000,
        2000,
    )
    assert ds.input_shape == (1, 28, 28) and ds.x_train.dtype == torch.float32
    assert ds.x_train.min() == 0 and ds.x_train.max() == 1
    for labels in (ds.y_train, ds.y_test):  # every digit about a tenth of each split
        counts = torch.bincount(labels, minlength=10)
        assert len(counts) == 10 and counts.min() > 0.07 * len(labels), counts
        assert counts.max() < 0.13 * len(labels), counts

    images = raw_idx(folder / MNIST_TEST_FILES[0], 16).reshape(10000, 28, 28)
    labels = raw_idx(folder / MNIST_TEST_FILES[1], 8)
    assert labels[0] == 7  # the well-known first MNIST test label: the parse is aligned
    assert torch.equal(ds.x_test[0, 0], torch.from_numpy(images[4] / np.float32(255)))
    assert torch.equal(ds.x_train[4, 0], torch.from_numpy(images[5] / np.float32(255)))
    assert ds.y_test.tolist() == labels[4::5].tolist()
    assert ds.y_train.tolist() == labels[np.arange(10000) % 5 != 4].tolist()
    # the two halves of the test set (SD-3, SD-1) are split alike
    assert (np.arange(10000)[np.arange(10000) % 5 == 4] < 5000).sum() == 1000


def test_mnist_protocols_on_generated_files(fake_data: Callable[..., Path]) -> None:
    folder = fake_data("mnist")  # 10 test images only: mnist10k splits them 8 / 2
    ds = load("mnist")
    assert (ds.name, ds.protocol, ds.source) == ("mnist", "mnist10k", str(folder))
    images = raw_idx(folder / MNIST_TEST_FILES[0], 16).reshape(10, 28, 28)
    labels = raw_idx(folder / MNIST_TEST_FILES[1], 8)
    assert torch.equal(ds.x_test[:, 0], torch.from_numpy(images[[4, 9]] / np.float32(255)))
    assert torch.equal(
        ds.x_train[:, 0], torch.from_numpy(images[[0, 1, 2, 3, 5, 6, 7, 8]] / np.float32(255))
    )
    assert ds.y_test.tolist() == labels[[4, 9]].tolist() and len(ds.y_train) == 8

    folder = fake_data("mnist", mnist_train=True)  # with the training files: train / t10k
    ds = load("mnist")
    assert ds.protocol == "mnist60k" and (len(ds.x_train), len(ds.x_test)) == (20, 10)
    train = raw_idx(folder / "train-images-idx3-ubyte.gz", 16).reshape(20, 28, 28)
    assert torch.equal(ds.x_train[:, 0], torch.from_numpy(train / np.float32(255)))
    assert ds.y_train.tolist() == raw_idx(folder / "train-labels-idx1-ubyte.gz", 8).tolist()


def test_read_idx_parses_header_and_dims(tmp_path: Path) -> None:
    values = np.arange(12, dtype=np.uint8).reshape(3, 2, 2)
    header = bytes([0, 0, 0x08, 3]) + np.array([3, 2, 2], dtype=">u4").tobytes()
    (tmp_path / "x.gz").write_bytes(gzip.compress(header + values.tobytes()))
    assert np.array_equal(loaders.read_idx(tmp_path / "x.gz"), values)
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"\x01\x02\x03\x04rest"))
    with pytest.raises(UserError, match="not an IDX file"):
        loaders.read_idx(tmp_path / "bad.gz")


def test_corrupt_file_names_file_and_md5(fake_data: Callable[..., Path]) -> None:
    folder = fake_data("mnist")
    assert load("mnist").protocol == "mnist10k"  # the files themselves are fine
    flip_byte(folder / "t10k-labels-idx1-ubyte.gz", 20)  # changes mtime: the md5 cache notices
    with pytest.raises(UserError) as error:
        load("mnist")
    message = one_line(error)
    expected = DATASETS["mnist"].files[3].md5
    assert str(folder / "t10k-labels-idx1-ubyte.gz") in message
    assert "md5" in message and f"expected {expected}" in message
    assert "creditlab data fetch mnist" in message


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "binarized_mnist"])
def test_missing_data_set_says_where_and_how(
    name: str, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("CREDITLAB_DATA", str(tmp_path / "empty"))
    with pytest.raises(UserError) as error:
        load(name)
    message = one_line(error)
    assert f"'{name}' not found" in message
    assert str(tmp_path / "empty" / name) in message
    assert str(home / ".cache" / "creditlab" / name) in message
    assert f"creditlab data fetch {name}" in message and "CREDITLAB_DATA" in message


def test_half_present_training_files_are_refused(fake_data: Callable[..., Path]) -> None:
    folder = fake_data("mnist")
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"not really")
    with pytest.raises(UserError, match="but not train-labels-idx1-ubyte.gz"):
        load("mnist")


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST
# ---------------------------------------------------------------------------------------------

# The decompressed upstream files' md5s (Zalando's fashion-mnist), computed here independently.
FASHION_CONTENT_MD5 = {
    "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
}


@pytest.mark.genuine_data("fashion_mnist")
def test_fashion_mnist_genuine_60k_10k(monkeypatch: pytest.MonkeyPatch) -> None:
    root = genuine("fashion_mnist")
    monkeypatch.setenv("CREDITLAB_DATA", str(root))
    for name, md5 in FASHION_CONTENT_MD5.items():
        with gzip.open(root / "fashion_mnist" / name, "rb") as f:
            assert hashlib.md5(f.read()).hexdigest() == md5, name
    assert all(ok for _, ok, _ in verify("fashion_mnist"))
    ds = load("fashion_mnist")
    assert (ds.name, ds.protocol, ds.n_classes) == ("fashion_mnist", "fashion_mnist", 10)
    assert (len(ds.x_train), len(ds.x_test)) == (60000, 10000)
    assert ds.input_shape == (1, 28, 28) and ds.x_train.min() == 0 and ds.x_train.max() == 1
    # Fashion-MNIST is balanced: 6000 / 1000 images of each class
    assert torch.bincount(ds.y_train).tolist() == [6000] * 10
    assert torch.bincount(ds.y_test).tolist() == [1000] * 10
    assert ds.y_train[:4].tolist() == [9, 0, 0, 3]  # ankle boot, T-shirt, T-shirt, dress
    images = raw_idx(root / "fashion_mnist" / "t10k-images-idx3-ubyte.gz", 16)
    assert torch.equal(
        ds.x_test[-1, 0].flatten(), torch.from_numpy(images[-784:] / np.float32(255))
    )


def test_fashion_mnist_on_generated_files(fake_data: Callable[..., Path]) -> None:
    folder = fake_data("fashion_mnist")
    ds = load("fashion_mnist")
    assert (ds.protocol, ds.source, len(ds.x_train), len(ds.x_test)) == (
        "fashion_mnist",
        str(folder),
        20,
        10,
    )
    test = raw_idx(folder / "t10k-images-idx3-ubyte.gz", 16).reshape(10, 28, 28)
    assert torch.equal(ds.x_test[:, 0], torch.from_numpy(test / np.float32(255)))
    assert ds.y_train.tolist() == raw_idx(folder / "train-labels-idx1-ubyte.gz", 8).tolist()


def test_recompressed_gz_is_accepted_by_content_and_changed_content_is_not(
    fake_data: Callable[..., Path],
) -> None:
    """An OS package's recompressed copy (other .gz bytes, same IDX inside) loads; one pixel
    changed inside does not."""
    folder = fake_data("fashion_mnist")
    name = "t10k-images-idx3-ubyte.gz"
    inside = gzip.decompress((folder / name).read_bytes())
    (folder / name).write_bytes(gzip.compress(inside, compresslevel=1, mtime=0))
    spec = DATASETS["fashion_mnist"].files[2]
    assert store.file_md5(folder / name) != spec.md5
    rows = {item: (ok, message) for item, ok, message in verify("fashion_mnist")}
    assert rows[name][0] and rows[name][1].startswith("content md5 ok")
    pixels = np.frombuffer(inside, np.uint8, offset=16).reshape(10, 28, 28)
    assert torch.equal(
        load("fashion_mnist").x_test[:, 0], torch.from_numpy(pixels / np.float32(255))
    )

    changed = inside[:-1] + bytes([inside[-1] ^ 1])  # one pixel differs inside
    (folder / name).write_bytes(gzip.compress(changed, compresslevel=1, mtime=0))
    with pytest.raises(UserError, match=f"corrupt data file .*{name}.*expected {spec.md5}"):
        load("fashion_mnist")


# ---------------------------------------------------------------------------------------------
# binarized MNIST
# ---------------------------------------------------------------------------------------------


@pytest.mark.genuine_data("binarized_mnist")
def test_binarized_mnist_splits_are_binary_and_upright(monkeypatch: pytest.MonkeyPatch) -> None:
    root = genuine("binarized_mnist")
    monkeypatch.setenv("CREDITLAB_DATA", str(root))
    ds = load("binarized_mnist")
    assert (ds.protocol, ds.source, ds.n_classes) == (
        "binarized_mnist",
        str(root / "binarized_mnist"),
        0,
    )
    assert (len(ds.x_train), len(ds.x_valid), len(ds.x_test)) == (50000, 10000, 10000)
    assert ds.y_train is None and ds.y_valid is None and ds.y_test is None
    assert ds.input_shape == (1, 28, 28)
    for x in (ds.x_train, ds.x_valid, ds.x_test):
        assert x.dtype == torch.float32 and bool(((x == 0) | (x == 1)).all())
        assert 0.10 < x.mean() < 0.16  # about 13% of MNIST pixels are ink
    # digits are taller than wide: a transposed (column-major) read would swap these
    ink = ds.x_test[:, 0].mean(0) > 0.05
    assert ink.any(1).sum() > ink.any(0).sum()
    assert ds.info()["n_valid"] == 10000


def test_binarized_mnist_on_generated_files(fake_data: Callable[..., Path]) -> None:
    folder = fake_data("binarized_mnist")
    ds = load("binarized_mnist")
    assert (len(ds.x_train), len(ds.x_valid), len(ds.x_test), ds.n_classes) == (10, 10, 10, 0)
    pixels = scipy.io.loadmat(folder / BMNIST_FILES[1])["X"]
    assert torch.equal(ds.x_valid.flatten(1), torch.from_numpy(pixels.astype(np.float32)))


def test_amat_source_converts_to_verified_mat(
    fake_data: Callable[..., Path], tmp_path: Path
) -> None:
    """The public .amat text becomes a .mat whose bytes differ but whose content checks out."""
    folder = fake_data("binarized_mnist")
    spec = DATASETS["binarized_mnist"].files[2]
    pixels = loaders.read_mat(folder / spec.name)
    text = np.full((len(pixels), 2 * 784), ord(" "), dtype=np.uint8)
    text[:, 0::2], text[:, -1] = pixels + ord("0"), ord("\n")
    source = tmp_path / "source"
    source.mkdir()
    (source / spec.source_name).write_bytes(text.tobytes())
    dest = tmp_path / "dest"
    dest.mkdir()
    fetch = functools.partial(
        store.download_file,
        spec,
        "binarized_mnist",
        dest,
        [source.as_uri() + "/"],
        use_source_name=True,
        convert=loaders.amat_to_mat,
        content=loaders.content_digest_for(spec),
    )
    fetch()
    converted = dest / spec.name
    assert store.file_md5(converted) != spec.md5
    assert store.check_file(converted, spec, loaders.content_digest_for(spec))[0]
    assert np.array_equal(loaders.read_mat(converted), pixels)
    assert sorted(p.name for p in dest.iterdir()) == [spec.name]  # no temporary files left

    text[0, 0] = ord("1") if text[0, 0] == ord("0") else ord("0")  # one wrong pixel
    (source / spec.source_name).write_bytes(text.tobytes())
    converted.unlink()
    with pytest.raises(UserError, match="md5"):
        fetch()
    assert list(dest.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# MNIST-1D: generated once per module (about 3.5 s), then cached
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist1d_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Generate MNIST-1D once into a private HOME, recording the global RNG states around it."""
    home = tmp_path_factory.mktemp("mnist1d_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.delenv("CREDITLAB_DATA", raising=False)
        np.random.seed(1234)
        random.seed(1234)
        expected_np, expected_py = np.random.random(), random.random()
        np.random.seed(1234)
        random.seed(1234)
        first = load("mnist1d")
        after_np, after_py = np.random.random(), random.random()
    return {
        "home": home,
        "first": first,
        "rng_expected": (expected_np, expected_py),
        "rng_after": (after_np, after_py),
    }


def test_mnist1d_generates_verifies_and_caches(
    mnist1d_run: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    first: Dataset = mnist1d_run["first"]
    cache = mnist1d_run["home"] / ".cache" / "creditlab" / "mnist1d" / "mnist1d.npz"
    assert (first.protocol, first.source) == ("mnist1d", "generated")
    assert (len(first.x_train), len(first.x_test)) == (4000, 1000)
    assert first.input_shape == (40,) and first.x_train.dtype == torch.float32
    assert set(first.y_train.tolist()) == set(range(10))
    assert mnist1d_run["rng_after"] == mnist1d_run["rng_expected"]  # global RNGs untouched

    assert cache.is_file()
    with np.load(cache) as npz:
        arrays = {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    assert loaders.mnist1d_checksum(**arrays) == MNIST1D_CHECKSUM

    def no_generation(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache should have been used")

    monkeypatch.setenv("HOME", str(mnist1d_run["home"]))
    monkeypatch.setattr("mnist1d.data.make_dataset", no_generation)
    second = load("mnist1d")
    assert second.source == str(cache)
    assert torch.equal(second.x_train, first.x_train) and torch.equal(second.y_test, first.y_test)


def test_mnist1d_skips_a_tampered_cache(
    mnist1d_run: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = mnist1d_run["home"] / ".cache" / "creditlab" / "mnist1d" / "mnist1d.npz"
    with np.load(good) as npz:
        arrays = {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    arrays["y_train"] = np.roll(arrays["y_train"], 1)
    (tmp_path / "data" / "mnist1d").mkdir(parents=True)
    np.savez(tmp_path / "data" / "mnist1d" / "mnist1d.npz", **arrays)
    monkeypatch.setenv("CREDITLAB_DATA", str(tmp_path / "data"))  # searched first
    monkeypatch.setenv("HOME", str(mnist1d_run["home"]))
    assert load("mnist1d").source == str(good)


def test_mnist1d_wrong_generation_is_refused(
    mnist1d_run: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    first: Dataset = mnist1d_run["first"]

    def other_generator(*args: object, **kwargs: object) -> dict:
        return {
            "x": first.x_train.double().numpy() + 1e-3,
            "y": first.y_train.numpy(),
            "x_test": first.x_test.double().numpy(),
            "y_test": first.y_test.numpy(),
        }

    monkeypatch.setattr("mnist1d.data.make_dataset", other_generator)
    with pytest.raises(UserError, match="checksum .* expected " + MNIST1D_CHECKSUM):
        load("mnist1d")


def test_mnist1d_without_writable_root_is_not_cached(
    mnist1d_run: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with np.load(mnist1d_run["home"] / ".cache/creditlab/mnist1d/mnist1d.npz") as npz:
        arrays = {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    monkeypatch.setattr(loaders, "generate_mnist1d", lambda: arrays)
    locked = tmp_path / "locked"
    (locked / "home").mkdir(parents=True)
    (locked / "data").mkdir()
    for folder in (locked / "home", locked / "data"):
        folder.chmod(0o555)
    monkeypatch.setenv("HOME", str(locked / "home"))
    monkeypatch.setenv("CREDITLAB_DATA", str(locked / "data"))
    try:
        ds = load("mnist1d")
        assert ds.source == "generated" and len(ds.x_train) == 4000
        assert not any((locked / "home").iterdir()) and not any((locked / "data").iterdir())
    finally:
        for folder in (locked / "home", locked / "data"):
            folder.chmod(0o755)


# ---------------------------------------------------------------------------------------------
# fetch
# ---------------------------------------------------------------------------------------------


def test_fetch_from_file_mirror_then_load(
    fake_data: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = fake_data("binarized_mnist")
    lines: list[str] = []
    dest = tmp_path / "dest"
    folder = fetch("binarized_mnist", mirror=source.as_uri(), dest=dest, log=lines.append)
    assert folder == dest / "binarized_mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(BMNIST_FILES)  # no .part left
    assert all("fetched from file://" in line for line in lines) and len(lines) == 3
    monkeypatch.setenv("CREDITLAB_DATA", str(dest))
    ds = load("binarized_mnist")
    assert ds.source == str(folder) and len(ds.x_train) == 10

    lines.clear()  # a second fetch finds everything in place (fetch defaults to CREDITLAB_DATA)
    fetch("binarized_mnist", mirror=str(tmp_path / "nowhere"), log=lines.append)
    assert lines == [f"{f}: already present and intact" for f in BMNIST_FILES]


def test_fetch_from_http_mirror_then_load(
    fake_data: Callable[..., Path], tmp_path: Path, http_mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror, url = http_mirror
    mnist = fake_data("mnist")
    for name in MNIST_TEST_FILES:
        shutil.copy(mnist / name, mirror / name)
    dest = tmp_path / "dest"
    # `fetch mnist` wants all four official files: this mirror lacks the training ones
    with pytest.raises(UserError) as error:
        fetch("mnist", mirror=url, dest=dest)
    message = one_line(error)
    assert "train-images-idx3-ubyte.gz" in message and "404" in message

    fashion = fake_data("fashion_mnist")
    for path in fashion.iterdir():
        shutil.copy(path, mirror / path.name)
    fetch("fashion_mnist", mirror=url, dest=dest)
    monkeypatch.setenv("CREDITLAB_DATA", str(dest))
    assert len(load("fashion_mnist").x_test) == 10
    assert all(ok for _, ok, _ in verify("fashion_mnist"))


def test_fetch_rejects_a_corrupt_mirror_copy(
    fake_data: Callable[..., Path], tmp_path: Path, http_mirror
) -> None:
    mirror, url = http_mirror
    for path in fake_data("binarized_mnist").iterdir():
        shutil.copy(path, mirror / path.name)
    valid = mirror / "binarized_mnist_valid.mat"
    flip_byte(valid, offset=valid.stat().st_size // 2)
    dest = tmp_path / "dest"
    with pytest.raises(UserError) as error:
        fetch("binarized_mnist", mirror=url, dest=dest)
    message = one_line(error)
    assert "binarized_mnist_valid.mat" in message and "md5" in message
    assert f"expected {DATASETS['binarized_mnist'].files[1].md5}" in message
    # the good file before it arrived; the bad one never appears, nor any temporary file
    assert sorted(p.name for p in (dest / "binarized_mnist").iterdir()) == [BMNIST_FILES[0]]


def test_fetch_network_failure_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError) as error:
        fetch("mnist", mirror=f"http://127.0.0.1:{port}/", dest=tmp_path / "dest")
    message = one_line(error)
    assert "could not fetch train-images-idx3-ubyte.gz" in message and "--mirror" in message


@pytest.fixture
def locked(tmp_path: Path):
    """A folder whose write bits are all off (root could still write into it)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


def test_write_bits_and_read_only_mounts_count_as_read_only(
    tmp_path: Path, locked: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert store.is_writable(tmp_path / "new" / "deeper")  # nearest existing ancestor decides
    assert not store.is_writable(locked) and not store.is_writable(locked / "mnist")

    real = os.statvfs

    class ReadOnlyMount:
        def __init__(self, path: object) -> None:
            self.f_flag = real(path).f_flag | os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", ReadOnlyMount)  # a writable folder on a read-only mount
    assert not store.is_writable(tmp_path)


def test_fetch_refuses_a_read_only_destination(
    fake_data: Callable[..., Path], locked: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = fake_data("mnist", mnist_train=True)
    monkeypatch.setenv("CREDITLAB_DATA", str(locked))  # fetch must not write there
    with pytest.raises(UserError, match="read-only.*--dest") as error:
        fetch("mnist", mirror=str(source))
    one_line(error)
    assert list(locked.iterdir()) == []
    with pytest.raises(UserError, match="read-only"):
        fetch("fashion_mnist", mirror=str(source), dest=locked)


def test_fetch_digits_and_mnist1d_need_no_download(
    mnist1d_run: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines: list[str] = []
    assert (fetch("digits", log=lines.append) / "digits.csv.gz").is_file()
    assert "nothing to fetch" in lines[0]
    monkeypatch.setenv("HOME", str(mnist1d_run["home"]))  # its cache saves a generation
    folder = fetch("mnist1d", dest=tmp_path / "dest", log=lines.append)
    assert (folder / "mnist1d.npz").is_file() and "no download" in lines[1]


# ---------------------------------------------------------------------------------------------
# verify and the `data` command
# ---------------------------------------------------------------------------------------------


@pytest.mark.genuine_data("mnist", "binarized_mnist")
def test_verify_genuine_data_all_ok(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDITLAB_DATA", str(genuine("mnist")))
    rows = verify("mnist") + verify("digits")
    monkeypatch.setenv("CREDITLAB_DATA", str(genuine("binarized_mnist")))
    rows += verify("binarized_mnist")
    assert len(rows) == 4 + 1 + 3 and all(ok for _, ok, _ in rows), rows
    by_file = {item: message for item, _, message in rows}
    images = MNIST_TEST_FILES[0]
    assert by_file[images] == f"md5 ok: {genuine('mnist') / 'mnist' / images}"


def test_verify_flags_bad_and_missing(fake_data: Callable[..., Path]) -> None:
    folder = fake_data("mnist")
    flip_byte(folder / MNIST_TEST_FILES[0], 20)
    rows = {item: (ok, message) for item, ok, message in verify("mnist")}
    assert rows[MNIST_TEST_FILES[0]][0] is False and "md5" in rows[MNIST_TEST_FILES[0]][1]
    assert rows[MNIST_TEST_FILES[1]][0] is True
    assert rows["train-images-idx3-ubyte.gz"] == (True, f"optional, not present in {folder}")
    assert all(not ok and "missing" in m for _, ok, m in verify("binarized_mnist"))


def test_data_commands_exit_codes(
    fake_data: Callable[..., Path],
    tmp_path: Path,
    mnist1d_run: dict,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HOME", str(mnist1d_run["home"]))  # mnist1d cached: verify is fast
    mnist = fake_data("mnist")
    fake_data("fashion_mnist")
    bmnist = fake_data("binarized_mnist")
    assert run_command("data", "verify") == 0
    assert "all data intact" in capsys.readouterr().out
    assert run_command("data", "list") == 0
    out = capsys.readouterr().out
    assert f"found: {mnist} (mnist10k)" in out and "bundled" in out and "fashion_mnist" in out

    flip_byte(mnist / MNIST_TEST_FILES[1], 20)
    assert run_command("data", "verify", "mnist") == 2
    assert "BAD" in capsys.readouterr().out

    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("CREDITLAB_DATA", str(empty))
    assert run_command("data", "verify", "binarized_mnist") == 2
    assert "MISSING" in capsys.readouterr().out
    assert run_command("data") == 0 and "missing: run `creditlab data fetch mnist`" in (
        capsys.readouterr().out
    )

    dest = tmp_path / "dest"
    command = ("data", "fetch", "binarized_mnist", "--mirror", str(bmnist), "--dest", str(dest))
    assert run_command(*command) == 0
    assert "ready in" in capsys.readouterr().out
    assert run_command("data", "fetch", "digits") == 0
    with pytest.raises(UserError):
        run_command("data", "verify", "nope")


def test_md5_is_cached_per_file_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    calls = []
    real = store._md5_of_bytes
    monkeypatch.setattr(store, "_md5_of_bytes", lambda p: calls.append(p) or real(p))
    assert store.file_md5(path) == hashlib.md5(b"abc").hexdigest()
    assert store.file_md5(path) == hashlib.md5(b"abc").hexdigest() and len(calls) == 1
    path.write_bytes(b"abcd")
    assert store.file_md5(path) == hashlib.md5(b"abcd").hexdigest() and len(calls) == 2
