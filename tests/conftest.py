"""Shared test set-up: where the genuine data are, no progress bars, the `genuine_data` mark,
and small generated data sets (`fake_data`) for testing code paths without the genuine files.

Code paths are tested on small files the tests generate; only a test that needs the genuine
files carries ``@pytest.mark.genuine_data("mnist")`` (or several names). Such a test is skipped,
with one line naming the fix, when the files are absent, except under ``CREDITLAB_REQUIRE_DATA=1``
(what ``.ci/run`` sets), where a missing data set fails the test instead: CI never skips for data.
"""

import dataclasses
import functools
import gzip
import http.server
import os
import threading
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from creditlab.data import DATASETS, DatasetSpec, loaders, store

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
os.environ.setdefault("CREDITLAB_DATA", str(SHARED_DATA))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ["CREDITLAB_QUIET"] = "1"
REQUIRE_DATA = os.environ.get("CREDITLAB_REQUIRE_DATA", "") not in ("", "0")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "genuine_data(*names): needs these data sets' genuine files (skip, or fail in CI)",
    )


def missing_data(names: tuple[str, ...]) -> str | None:
    """A one-line reason naming the fix when any of ``names`` cannot be found, else None."""
    from creditlab.data import DATASETS
    from creditlab.data.store import find_folder, searched

    absent = [n for n in names if DATASETS[n].kind == "files" and find_folder(DATASETS[n]) is None]
    if not absent:
        return None
    fixes = " and ".join(f"`creditlab data fetch {n}`" for n in absent)
    where = "; ".join(searched(n) for n in absent)
    return f"genuine data not found ({where}): run {fixes}"


def require_data(names: tuple[str, ...]) -> None:
    """Skip (or, with CREDITLAB_REQUIRE_DATA, fail) the running test when data are missing."""
    reason = missing_data(names)
    if reason is None:
        return
    if REQUIRE_DATA:
        pytest.fail(f"CREDITLAB_REQUIRE_DATA is set and {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(tryfirst=True)  # before any fixture of the test is set up
def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("genuine_data"):
        require_data(tuple(mark.args))


# ---------------------------------------------------------------------------------------------
# small generated data sets in the real formats, their checksums patched into the catalog
# ---------------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray, level: int = 9) -> bytes:
    """An IDX file (uint8), gzipped: magic 0 0 0x08 ndim, big-endian dims, data in C order."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    raw = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    return gzip.compress(raw, compresslevel=level, mtime=0)


# --- N-MNIST recordings, written from the format's description (shared by test_nmnist.py) ---

SAMPLES_PER_DIGIT = 3


def encode(x, y, t, p) -> bytes:
    """The N-MNIST bytes of these events: x, y, then polarity in bit 7 over 23 bits of time."""
    out = bytearray()
    for xi, yi, ti, pi in zip(x, y, t, p, strict=True):
        out += bytes([xi, yi, (pi << 7) | (ti >> 16), (ti >> 8) & 0xFF, ti & 0xFF])
    return bytes(out)


def random_events(rng: np.random.Generator, n: int, t_max: int = 316_000) -> dict[str, list]:
    """A plausible recording: n events, time-ordered, over three saccades."""
    return {
        "x": rng.integers(0, 34, n).tolist(),
        "y": rng.integers(0, 34, n).tolist(),
        "t": np.sort(rng.integers(0, t_max, n)).tolist(),
        "p": rng.integers(0, 2, n).tolist(),
    }


def write_archive(folder: Path, split: str, seed: int = 0) -> dict[str, dict[str, list]]:
    """An official-looking archive (Train/<digit>/<id>.bin) of small recordings; its events."""
    rng = np.random.default_rng(seed)
    top = {"train": "Train", "test": "Test"}[split]
    recordings = {}
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / f"{split}.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for digit in range(10):
            for k in range(SAMPLES_PER_DIGIT):
                name = f"{top}/{digit}/{10 * k + digit + 1:05d}.bin"
                recordings[name] = random_events(rng, int(rng.integers(50, 200)))
                zf.writestr(name, encode(**recordings[name]))
        zf.writestr(f"__MACOSX/{top}/0/._00001.bin", b"resource fork")  # skipped
    return recordings


def write_fake(name: str, folder: Path, n_train: int = 20, n_test: int = 10) -> None:
    """Write a small data set in ``name``'s real file formats into ``folder``."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    folder.mkdir(parents=True, exist_ok=True)
    if name == "nmnist":
        write_archive(folder, "train", 1)
        write_archive(folder, "test", 2)
        return
    if name == "binarized_mnist":
        for f in ("train", "valid", "test"):
            pixels = rng.integers(0, 2, (n_test, 784), dtype=np.uint8)
            scipy.io.savemat(
                folder / f"binarized_mnist_{f}.mat", {"X": pixels}
            )  # uncompressed, unlike fetch's
        return
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(idx_bytes(images))
        labels = np.arange(n, dtype=np.uint8) % 10
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(idx_bytes(labels))


def spec_for_files(name: str, folder: Path) -> DatasetSpec:
    """DATASETS[name] with the md5s (and content md5s) of the files in ``folder``."""
    spec = DATASETS[name]
    files = []
    for f in spec.files:
        path = folder / f.name
        content = loaders.content_digest_for(f)
        files.append(
            dataclasses.replace(
                f,
                md5=store.file_md5(path),
                content_md5=content(path) if f.content_md5 and content else f.content_md5,
            )
        )
    return dataclasses.replace(spec, files=tuple(files))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HOME (its empty ``~/.cache/creditlab`` the only data root): no CREDITLAB_DATA,
    no remembered root."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    monkeypatch.delenv("CREDITLAB_DATA", raising=False)
    # nor the root `make` remembered for this venv (`creditlab data remember`)
    monkeypatch.setattr(store, "REMEMBERED_FILE", tmp_path / "no-remembered-root")
    return path


@pytest.fixture
def fake_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """``fake_data(name)``: a small ``name`` in a fresh root (CREDITLAB_DATA points there), its
    checksums patched into the catalog; returns ``root/<name>``. For mnist the training files
    are kept only with ``mnist_train=True`` (else the mnist10k layout)."""

    def make(name: str, mnist_train: bool = False) -> Path:
        folder = tmp_path / "data" / name
        write_fake(name, folder)
        monkeypatch.setitem(DATASETS, name, spec_for_files(name, folder))
        if name == "mnist" and not mnist_train:
            for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
                (folder / f).unlink()
        monkeypatch.setenv("CREDITLAB_DATA", str(folder.parent))
        return folder

    return make


@pytest.fixture
def http_mirror(tmp_path: Path):
    """Serve ``tmp_path/mirror`` over HTTP on 127.0.0.1 from a thread; yields (folder, url)."""
    folder = tmp_path / "mirror"
    folder.mkdir()

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def reproducible(metrics: dict) -> dict:
    """The metrics a rerun must reproduce bitwise: all but the timing ones."""
    from creditlab import registry

    return {k: v for k, v in metrics.items() if not registry.is_timing_metric(k)}


@pytest.fixture
def check_resumes_exactly(monkeypatch, tmp_path):
    """``check_resumes_exactly(exp, stop_after, reference, reference_dir, **run_kwargs)``:
    runs ``exp`` (``runner.run(exp, **run_kwargs)``) into ``tmp_path / "cut"``, requesting a stop at
    its ``stop_after``-th step boundary as Ctrl-C would; checks that it stops there with
    `runner.Interrupted`, resumes it from the checkpoint and checks the same metrics and the
    same metric stream as the unbroken ``reference`` run in ``reference_dir``."""
    from creditlab import runner

    def check(exp, stop_after: int, reference: dict, reference_dir: Path, **run_kwargs) -> None:
        calls = {"n": 0}
        original = runner.RunContext.boundary

        def stop(self, state_fn):
            calls["n"] += 1
            if calls["n"] == stop_after:
                self._stop_requested = True
            return original(self, state_fn)

        cut = tmp_path / "cut"
        monkeypatch.setattr(runner.RunContext, "boundary", stop)
        with pytest.raises(runner.Interrupted):
            runner.run(exp, out=cut, **run_kwargs)
        monkeypatch.setattr(runner.RunContext, "boundary", original)
        assert calls["n"] == stop_after
        resumed = runner.resume(cut)
        assert reproducible(resumed["metrics"]) == reproducible(reference["metrics"])
        assert (cut / "metrics.jsonl").read_text() == (reference_dir / "metrics.jsonl").read_text()

    return check


# ---------------------------------------------------------------------------------------------
# the smoke runs of every experiment (seed 1), made once per session: the contract's checks
# (tests/test_contract.py) read them, and so may a method's own learning checks
# ---------------------------------------------------------------------------------------------


def optional_data_sets(exp) -> tuple[str, ...]:
    """The data sets of ``exp``'s smoke scale that a machine may lack (generated in tests)."""
    return tuple(n for n in exp.data_sets("smoke") if DATASETS[n].optional)


class Runs:
    """The two smoke runs (seed 1) of one experiment: an unbroken one, and one stopped at its
    middle step boundary (as Ctrl-C would) and resumed from its checkpoint."""

    def __init__(self, exp, root: Path, monkeypatch: pytest.MonkeyPatch):
        from creditlab import runner

        self.exp, self.root = exp, root
        self.unbroken_dir = root / exp.name / "unbroken"
        self.cut_dir = root / "cut" / exp.name
        count = {"n": 0}
        original = runner.RunContext.boundary

        def counting(ctx, state_fn):
            count["n"] += 1
            return original(ctx, state_fn)

        with monkeypatch.context() as m:
            m.setattr(runner.RunContext, "boundary", counting)
            self.unbroken = runner.run(exp, scale="smoke", seed=1, out=self.unbroken_dir)
        self.boundaries = count["n"]
        self.stop_at = max(1, self.boundaries // 2)
        self.interrupted, self.resumed = False, None
        if self.boundaries == 0:
            return
        count["n"] = 0

        def stopping(ctx, state_fn):
            count["n"] += 1
            if count["n"] == self.stop_at:
                ctx._stop_requested = True
            return original(ctx, state_fn)

        with monkeypatch.context() as m:
            m.setattr(runner.RunContext, "boundary", stopping)
            try:
                runner.run(exp, scale="smoke", seed=1, out=self.cut_dir)
            except runner.Interrupted:
                self.interrupted = True
        if self.interrupted:
            self.resumed = runner.resume(self.cut_dir)


_RUNS: dict[str, Runs] = {}


@pytest.fixture
def runs_of(tmp_path_factory, monkeypatch, fake_data) -> Callable[[str], Runs]:
    """``runs_of(name)``: the session's two smoke runs of experiment ``name`` (made on first
    use; optional data sets generated, as on a machine without them)."""
    from creditlab import registry

    def get(name: str) -> Runs:
        exp = registry.get(name)
        for data_set in optional_data_sets(exp):
            fake_data(data_set)
        if name not in _RUNS:
            _RUNS[name] = Runs(exp, tmp_path_factory.mktemp("contract"), monkeypatch)
        return _RUNS[name]

    return get
