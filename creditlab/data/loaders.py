"""One loader per data set, their file formats, and the entry points `load`, `verify`, `fetch`.

Fixed splits (documented, never random):

- digits: the 1797 images of scikit-learn's bundled set; image i is a test image iff
  ``i % 5 == 4`` (359 test, 1438 train; protocol "digits-80/20").
- mnist, "mnist10k" protocol (only the official *test* files present): the 10,000 test images
  split by the same rule, image i to test iff ``i % 5 == 4``: 8,000 train / 2,000 test. The
  MNIST test set's first 5,000 images come from the cleaner SD-3 writers and the last 5,000 from
  the harder SD-1 (high-school) writers; taking every fifth image keeps that mix equal in both
  halves, which a contiguous cut would not.
- mnist, "mnist60k" protocol (the train files present too): the standard 60,000 / 10,000.
- fashion_mnist: the published 60,000 / 10,000 train / test files (protocol "fashion_mnist").
- mnist1d: the package's own 4000 / 1000 split of its default generation (seed 42).
- binarized_mnist: the published 50,000 / 10,000 / 10,000 train / valid / test files.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import math
import os
import random
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from creditlab.data.catalog import DATASETS, MNIST1D_CHECKSUM, DataFile, DatasetSpec
from creditlab.data.dataset import Dataset
from creditlab.data.store import (
    ContentDigest,
    as_base_url,
    check_file,
    data_roots,
    download_file,
    find_folder,
    is_writable,
    missing_error,
    require_intact,
    searched,
)
from creditlab.errors import UserError

MNIST1D_CACHE = "mnist1d.npz"
_MNIST1D_KEYS = ("x_train", "y_train", "x_test", "y_test")


def heldout_mask(n: int) -> np.ndarray:
    """The fixed split rule: sample i is a test sample iff i % 5 == 4."""
    return np.arange(n) % 5 == 4


def spec_of(name: str) -> DatasetSpec:
    """The catalog entry for ``name``; a one-line UserError for an unknown name."""
    if name not in DATASETS:
        raise UserError(f"unknown data set '{name}'; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name]


# ---------------------------------------------------------------------------------------------
# file formats
# ---------------------------------------------------------------------------------------------

_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Parse a gzipped IDX file (the MNIST format) into an array, vectorised.

    Header: two zero bytes, a type code, the number of dimensions, then each dimension as a
    big-endian uint32; the data follow in C order.
    """
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise UserError(f"{path} is not an IDX file (bad magic number); delete it and fetch again")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, np.dtype(_IDX_DTYPES[raw[2]]), offset=4 + 4 * ndim)
    if data.size != math.prod(dims):
        raise UserError(
            f"{path} holds {data.size} values but its header says {dims}; delete it and fetch again"
        )
    return data.reshape(dims).copy()  # own, writable memory (torch.from_numpy wants it)


def read_mat(path: Path) -> np.ndarray:
    """The uint8 (N, 784) array under key 'X' of a binarized-MNIST MATLAB file."""
    import scipy.io

    return np.ascontiguousarray(scipy.io.loadmat(path)["X"], dtype=np.uint8)


def read_amat(path: Path) -> np.ndarray:
    """Parse Larochelle's .amat text ("0 1 0 ... 0", one 784-pixel image a line) into uint8."""
    raw = np.fromfile(path, dtype=np.uint8)
    bits = raw[(raw == ord("0")) | (raw == ord("1"))] - ord("0")
    lines = int(np.count_nonzero(raw == ord("\n")))
    if bits.size % 784 or (lines and bits.size != 784 * lines):
        raise ValueError(f"{path} is not a 784-pixel .amat file")
    return bits.reshape(-1, 784)


def amat_to_mat(source: Path, target: Path) -> None:
    """Convert an .amat download to the .mat layout the loader reads (key 'X', uint8)."""
    import scipy.io

    with open(target, "wb") as f:
        scipy.io.savemat(f, {"X": read_amat(source)}, do_compression=True)


def _array_md5(array: np.ndarray) -> str:
    return hashlib.md5(np.ascontiguousarray(array).tobytes()).hexdigest()


def _mat_content(path: Path) -> str:
    return _array_md5(read_mat(path))


def _gunzipped_content(path: Path) -> str:
    digest = hashlib.md5()
    with gzip.open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _digits_content(path: Path) -> str:
    return _array_md5(np.loadtxt(path, delimiter=",").astype(np.uint8))


def content_digest_for(spec: DataFile) -> ContentDigest | None:
    """How to decode ``spec`` for its content md5 (None where only the bytes are checked)."""
    if spec.name.endswith(".mat"):
        return _mat_content
    if spec.name == "digits.csv.gz":
        return _digits_content
    if spec.name.endswith(".gz") and spec.content_md5:
        return _gunzipped_content
    return None


def _converter_for(spec: DataFile) -> Callable[[Path, Path], None] | None:
    if spec.source_name and spec.source_name.endswith(".amat"):
        return amat_to_mat
    return None


def _images(pixels: np.ndarray, side: int, scale: float) -> torch.Tensor:
    """(N, side*side) or (N, side, side) pixel values -> float32 (N, 1, side, side) in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(pixels)).reshape(-1, 1, side, side)
    x = x.to(torch.float32)
    return x.div_(scale) if scale != 1 else x


def _labels(y: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(y, dtype=np.int64).copy())


# ---------------------------------------------------------------------------------------------
# digits (scikit-learn, bundled)
# ---------------------------------------------------------------------------------------------


def digits_csv_path() -> Path:
    """scikit-learn's bundled digits.csv.gz (what `sklearn.datasets.load_digits` reads)."""
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    spec = DATASETS["digits"].files[0]
    path = digits_csv_path()
    if not path.is_file():
        raise UserError(
            f"scikit-learn's bundled digits file is missing at {path}; "
            "reinstall scikit-learn (pip install --force-reinstall scikit-learn)"
        )
    require_intact(path, spec, "digits", _digits_content)
    bunch = load_digits()
    x = _images(bunch.images, 8, 16.0)  # pixel counts 0..16
    y = _labels(bunch.target)
    test = torch.from_numpy(heldout_mask(len(y)))
    return Dataset(
        "digits", "digits-80/20", "scikit-learn bundled", x[~test], y[~test], x[test], y[test]
    )


# ---------------------------------------------------------------------------------------------
# MNIST (official IDX files)
# ---------------------------------------------------------------------------------------------


def _mnist_train_files(spec: DatasetSpec, folder: Path) -> list[DataFile]:
    """The optional 60k training files present in ``folder``: none or both."""
    optional = [f for f in spec.files if not f.required]
    present = [f for f in optional if (folder / f.name).is_file()]
    if present and len(present) != len(optional):
        absent = [f.name for f in optional if f not in present]
        raise UserError(
            f"{folder} holds {present[0].name} but not {', '.join(absent)}; run "
            "`creditlab data fetch mnist` to complete the 60k training set, or remove "
            f"{present[0].name} to use the 10k-image mnist10k protocol"
        )
    return present


def mnist_protocol(folder: Path) -> str:
    """ "mnist60k" when ``folder`` holds the training files too, else "mnist10k" (no hashing)."""
    return "mnist60k" if _mnist_train_files(DATASETS["mnist"], folder) else "mnist10k"


def _intact_folder(spec: DatasetSpec) -> Path:
    """The folder holding ``spec``'s required files, each checked (one-line UserError if not)."""
    folder = find_folder(spec)
    if folder is None:
        raise missing_error(spec)
    for f in spec.files:
        if f.required:
            require_intact(folder / f.name, f, spec.name, content_digest_for(f))
    return folder


def _read_idx_split(folder: Path, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [0, 1] and labels of ``<prefix>-images-idx3-ubyte.gz`` and its labels file."""
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
    return _images(images, 28, 255.0), _labels(labels)


def _load_mnist() -> Dataset:
    spec = DATASETS["mnist"]
    folder = _intact_folder(spec)
    train_files = _mnist_train_files(spec, folder)
    for f in train_files:
        require_intact(folder / f.name, f, spec.name)
    x_all, y_all = _read_idx_split(folder, "t10k")
    if train_files:
        return Dataset(
            "mnist", "mnist60k", str(folder), *_read_idx_split(folder, "train"), x_all, y_all
        )
    test = torch.from_numpy(heldout_mask(len(y_all)))
    return Dataset(
        "mnist", "mnist10k", str(folder), x_all[~test], y_all[~test], x_all[test], y_all[test]
    )


def _load_fashion_mnist() -> Dataset:
    folder = _intact_folder(DATASETS["fashion_mnist"])
    return Dataset(
        "fashion_mnist",
        "fashion_mnist",
        str(folder),
        *_read_idx_split(folder, "train"),
        *_read_idx_split(folder, "t10k"),
    )


# ---------------------------------------------------------------------------------------------
# statically binarized MNIST (MATLAB files, no labels)
# ---------------------------------------------------------------------------------------------


def _load_binarized_mnist() -> Dataset:
    spec = DATASETS["binarized_mnist"]
    folder = _intact_folder(spec)
    splits = {}
    for f in spec.files:
        split = f.name.removeprefix("binarized_mnist_").removesuffix(".mat")
        splits[split] = _images(read_mat(folder / f.name), 28, 1.0)
    return Dataset(
        "binarized_mnist",
        "binarized_mnist",
        str(folder),
        splits["train"],
        None,
        splits["test"],
        None,
        x_valid=splits["valid"],
        y_valid=None,
        n_classes=0,
    )


# ---------------------------------------------------------------------------------------------
# MNIST-1D (generated by the mnist1d package, cached as .npz)
# ---------------------------------------------------------------------------------------------


def mnist1d_checksum(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> str:
    """md5 of MNIST-1D: labels exactly (int64), inputs rounded to 4 decimals as float32.

    The rounding makes the checksum indifferent to last-bit float differences between numpy
    builds while still catching any real change in the generator.
    """
    digest = hashlib.md5()
    for y in (y_train, y_test):
        digest.update(np.ascontiguousarray(y, dtype="<i8").tobytes())
    for x in (x_train, x_test):
        digest.update(np.round(np.asarray(x, dtype=np.float64), 4).astype("<f4").tobytes())
    return digest.hexdigest()


def generate_mnist1d() -> dict[str, np.ndarray]:
    """Run mnist1d's procedural generator with its default arguments (never its download).

    `make_dataset` seeds numpy's and Python's global RNGs; both states are restored after.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return {
        "x_train": data["x"],
        "y_train": data["y"],
        "x_test": data["x_test"],
        "y_test": data["y_test"],
    }


def mnist1d_cache_paths() -> list[Path]:
    """Where a cached generation may be: ``<root>/mnist1d/mnist1d.npz`` for each root."""
    return [root / "mnist1d" / MNIST1D_CACHE for root in data_roots()]


def _read_mnist1d_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays at ``path`` if present and matching the checksum, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as npz:
            arrays = {key: npz[key] for key in _MNIST1D_KEYS}
    except Exception:  # a truncated or foreign file is just a stale cache
        return None
    return arrays if mnist1d_checksum(**arrays) == MNIST1D_CHECKSUM else None


def _write_mnist1d_cache(arrays: dict[str, np.ndarray], folder: Path) -> Path:
    """Write the arrays atomically to ``folder/mnist1d.npz``; OSError if that fails."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".mnist1d.", suffix=".npz.part")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache is for everyone to read
        os.replace(tmp, folder / MNIST1D_CACHE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return folder / MNIST1D_CACHE


def mnist1d_arrays(cache: bool = True) -> tuple[dict[str, np.ndarray], str]:
    """MNIST-1D arrays and their source: a verified cache file, else a fresh generation.

    A fresh generation is checked against MNIST1D_CHECKSUM and (with ``cache``) written to the
    first writable root's ``mnist1d/`` folder; when no root is writable it is silently not cached.
    """
    for path in mnist1d_cache_paths():
        arrays = _read_mnist1d_cache(path)
        if arrays is not None:
            return arrays, str(path)
    arrays = generate_mnist1d()
    actual = mnist1d_checksum(**arrays)
    if actual != MNIST1D_CHECKSUM:
        version = importlib.metadata.version("mnist1d")
        raise UserError(
            f"MNIST-1D generated by mnist1d {version} has checksum {actual}, expected "
            f"{MNIST1D_CHECKSUM}; install the generator creditlab was checked with: "
            "pip install mnist1d==0.0.2.post1"
        )
    if cache:
        for path in mnist1d_cache_paths():
            if not is_writable(path.parent):
                continue
            try:
                _write_mnist1d_cache(arrays, path.parent)
                break
            except OSError:
                continue
    return arrays, "generated"


def _load_mnist1d() -> Dataset:
    arrays, source = mnist1d_arrays()
    return Dataset(
        "mnist1d",
        "mnist1d",
        source,
        torch.from_numpy(arrays["x_train"].astype(np.float32)),
        _labels(arrays["y_train"]),
        torch.from_numpy(arrays["x_test"].astype(np.float32)),
        _labels(arrays["y_test"]),
    )


# ---------------------------------------------------------------------------------------------
# public entry points
# ---------------------------------------------------------------------------------------------

_LOADERS: dict[str, Callable[[], Dataset]] = {
    "digits": _load_digits,
    "mnist1d": _load_mnist1d,
    "mnist": _load_mnist,
    "fashion_mnist": _load_fashion_mnist,
    "binarized_mnist": _load_binarized_mnist,
}


def load(name: str) -> Dataset:
    """Load data set ``name`` (see DATASETS), checksum-verified.

    Missing or corrupt files raise a one-line `UserError` saying how to fix it.
    """
    spec = spec_of(name)
    if spec.name not in _LOADERS:  # nmnist: event recordings, read by creditlab.data.nmnist
        raise UserError(f"'{name}' is read by creditlab.data.{name}, not by load()")
    return _LOADERS[spec.name]()


def verify(name: str) -> list[tuple[str, bool, str]]:
    """Check every file (or generated item) of ``name``: a list of (item, ok, message).

    Files are checked in the folder `load` would use; a missing required file is not ok, a
    missing optional one (MNIST's training files) is ok and says so.
    """
    spec = spec_of(name)
    if spec.kind == "bundled":
        f = spec.files[0]
        path = digits_csv_path()
        if not path.is_file():
            return [(f.name, False, f"missing: {path}; reinstall scikit-learn")]
        ok, message = check_file(path, f, content_digest_for(f))
        return [(f.name, ok, f"{message}: {path}")]
    if spec.kind == "generated":
        try:
            _, source = mnist1d_arrays()
        except UserError as error:
            return [("generated arrays", False, str(error))]
        return [("generated arrays", True, f"checksum {MNIST1D_CHECKSUM} ok: {source}")]

    folder = find_folder(spec)
    rows = []
    for f in spec.files:
        if folder is not None:
            path: Path | None = folder / f.name
        else:
            path = next(
                (
                    r / spec.name / f.name
                    for r in data_roots()
                    if (r / spec.name / f.name).is_file()
                ),
                None,
            )
        if path is None or not path.is_file():
            if folder is not None and not f.required:
                rows.append((f.name, True, f"optional, not present in {folder}"))
            else:
                rows.append(
                    (
                        f.name,
                        False,
                        f"missing; searched {searched(spec.name)}; run "
                        f"`creditlab data fetch {spec.name}`",
                    )
                )
            continue
        ok, message = check_file(path, f, content_digest_for(f))
        rows.append((f.name, ok, f"{message}: {path}"))
    return rows


def fetch(
    name: str,
    mirror: str | None = None,
    dest: str | Path | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Download data set ``name`` into ``<dest>/<name>/`` and return that folder.

    ``dest`` defaults to ``$CREDITLAB_DATA`` if set, else ``~/.cache/creditlab``. ``mirror``
    (an http(s):// or file:// URL, or a folder path) replaces the data set's public sources and
    must serve the files under their local names. Files already present and intact are
    skipped; each download is md5-checked before it is renamed into place. ``digits`` needs no
    fetch; ``mnist1d`` is generated and cached there. ``log`` receives one line per file.
    """
    spec = spec_of(name)
    say = log or (lambda line: None)
    if spec.kind == "bundled":
        say(f"{name} ships with scikit-learn; nothing to fetch")
        return digits_csv_path().parent
    root = Path(dest).expanduser().absolute() if dest is not None else data_roots()[0]
    folder = root / spec.name
    fix = "pass --dest DIR or set CREDITLAB_DATA to a writable folder"
    if not is_writable(folder):
        raise UserError(f"cannot write to {folder}: it is read-only; {fix}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create {folder}: {error.strerror}; {fix}") from None

    if spec.kind == "generated":
        if _read_mnist1d_cache(folder / MNIST1D_CACHE) is not None:
            say(f"{name}: {folder / MNIST1D_CACHE} already present and intact")
            return folder
        arrays, _ = mnist1d_arrays(cache=False)
        try:
            path = _write_mnist1d_cache(arrays, folder)
        except OSError as error:
            raise UserError(f"cannot write {folder / MNIST1D_CACHE}: {error}; {fix}") from None
        say(f"{name}: generated locally (no download) and cached at {path}")
        return folder

    use_public = mirror is None
    bases: Sequence[str] = spec.mirrors if use_public else (as_base_url(mirror),)
    for f in spec.files:
        target = folder / f.name
        content = content_digest_for(f)
        if target.is_file() and check_file(target, f, content)[0]:
            say(f"{f.name}: already present and intact")
            continue
        url = download_file(
            f,
            spec.name,
            folder,
            bases,
            use_source_name=use_public,
            convert=_converter_for(f),
            content=content,
        )
        say(f"{f.name}: fetched from {url}")
    return folder
