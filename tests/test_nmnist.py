"""Tests for creditlab.data.nmnist: the event format, stabilisation, binning and the loaders.

Every recording here is written by the test itself (`encode`, byte by byte from the format's
description, sharing no code with the reader), into zip archives laid out as the official ones
(``Train/<digit>/<id>.bin``) whose md5s are patched into the catalog. The events and frames are
also checked against tonic, the library users read these files with.
"""

from __future__ import annotations

import dataclasses
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tonic
import torch
from conftest import SAMPLES_PER_DIGIT, encode, random_events, write_archive

from creditlab import cli
from creditlab.data import DATASETS, fetch, load, loaders, nmnist, store, verify
from creditlab.errors import UserError

# every test here runs with a private HOME and no CREDITLAB_DATA (conftest.py's `home`)
pytestmark = pytest.mark.usefixtures("home")


def one_line(error: pytest.ExceptionInfo[UserError]) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    return message


def orchard_stabilize(x, y, t):
    """Orchard's stabilize.m as written (MATLAB, 1-based pixels, round half away from zero),
    then HM2-BP's removal of pixels beyond 34: returns 0-based (x, y, kept mask)."""
    xs, ys, t = np.asarray(x, float) + 1, np.asarray(y, float) + 1, np.asarray(t, float)
    s1, s2, s3 = t <= 105e3, (t > 105e3) & (t <= 210e3), t > 210e3
    xs[s1] -= 3.5 * t[s1] / 105e3
    ys[s1] -= 7 * t[s1] / 105e3
    xs[s2] += -3.5 - 3.5 * (t[s2] - 105e3) / 105e3
    ys[s2] += -7 + 7 * (t[s2] - 105e3) / 105e3
    xs[s3] += -7 + 7 * (t[s3] - 210e3) / 105e3

    def matlab_round(v):
        return np.sign(v) * np.floor(np.abs(v) + 0.5)

    xs, ys = matlab_round(xs), matlab_round(ys)
    keep = (xs >= 1) & (ys >= 1) & (xs <= 34) & (ys <= 34)
    return xs.astype(int) - 1, ys.astype(int) - 1, keep


def count_frames(x, y, t, p, n_steps: int, bin_us: int) -> np.ndarray:
    """Event counts (n_steps, 2, 34, 34) by a plain loop, independent of the module."""
    frames = np.zeros((n_steps, 2, 34, 34), dtype=np.int64)
    for xi, yi, ti, pi in zip(x, y, t, p, strict=True):
        if ti // bin_us < n_steps:
            frames[ti // bin_us, pi, yi, xi] += 1
    return frames


@pytest.fixture
def nmnist_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Both fake archives in ``<root>/nmnist``, their md5s in the catalog; (folder, events)."""
    folder = tmp_path / "data" / "nmnist"
    events = {**write_archive(folder, "train", 1), **write_archive(folder, "test", 2)}
    files = tuple(
        dataclasses.replace(f, md5=store.file_md5(folder / f.name))
        for f in DATASETS["nmnist"].files
    )
    monkeypatch.setitem(DATASETS, "nmnist", dataclasses.replace(DATASETS["nmnist"], files=files))
    monkeypatch.setenv("CREDITLAB_DATA", str(folder.parent))
    return folder, events


# ---------------------------------------------------------------------------------------------
# the event format
# ---------------------------------------------------------------------------------------------


def test_read_events_decodes_every_field(tmp_path: Path) -> None:
    # the extremes of each field, then random events
    ev = {"x": [0, 33, 17], "y": [33, 0, 5], "t": [0, 2**23 - 1, 0x5A5A5], "p": [1, 0, 1]}
    more = random_events(np.random.default_rng(0), 500)
    ev = {k: ev[k] + more[k] for k in ev}
    path = tmp_path / "00001.bin"
    path.write_bytes(encode(**ev))
    events = nmnist.read_events(path)
    assert events.dtype == tonic.datasets.NMNIST.dtype
    assert events.dtype.names == ("x", "y", "t", "p") and len(events) == 503
    for field in "xytp":
        assert events[field].tolist() == ev[field], field


def test_events_equal_tonics_reader(tmp_path: Path) -> None:
    path = tmp_path / "00002.bin"
    path.write_bytes(encode(**random_events(np.random.default_rng(1), 2000)))
    theirs = tonic.io.read_mnist_file(str(path), dtype=tonic.datasets.NMNIST.dtype)
    ours = nmnist.read_events(path)
    assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)


@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda raw: raw[:-2], "not a multiple of 5"),  # truncated mid-event
        (lambda raw: b"", "is empty"),
        (lambda raw: raw[:5] + bytes([34]) + raw[6:], "x=34"),  # off the sensor
        (lambda raw: raw[:6] + bytes([240]) + raw[7:], "y=240"),  # ATIS overflow byte
    ],
)
def test_corrupt_file_is_one_line_naming_it(tmp_path: Path, damage, says: str) -> None:
    path = tmp_path / "7" / "00003.bin"
    path.parent.mkdir()
    path.write_bytes(damage(encode(**random_events(np.random.default_rng(2), 20))))
    with pytest.raises(UserError) as error:
        nmnist.read_events(path)
    message = one_line(error)
    assert str(path) in message and says in message and "corrupt" in message


def test_out_of_order_timestamps_are_read_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "00004.bin"
    path.write_bytes(encode([1, 2, 3], [4, 5, 6], [900, 100, 500], [0, 1, 0]))
    assert nmnist.read_events(path)["t"].tolist() == [900, 100, 500]


def test_label_is_the_parent_folder() -> None:
    assert nmnist.label_of("Train/7/00012.bin") == 7
    assert nmnist.label_of(Path("/data/nmnist/Test/0/01234.bin")) == 0
    with pytest.raises(UserError, match="not in a digit folder"):
        nmnist.label_of("Train/seven/00012.bin")


# ---------------------------------------------------------------------------------------------
# stabilisation and binning
# ---------------------------------------------------------------------------------------------


def structured(ev: dict[str, list]) -> np.ndarray:
    out = np.empty(len(ev["t"]), dtype=tonic.datasets.NMNIST.dtype)
    for field in "xytp":
        out[field] = ev[field]
    return out


def test_stabilize_is_orchards_method_as_hm2bp_used_it() -> None:
    ev = random_events(np.random.default_rng(3), 3000, t_max=330_000)
    ev["t"][:4] = [15_000, 7_500, 45_000, 217_500]  # exact half-pixel shifts: rounding matters
    events = structured(ev)
    x, y, keep = orchard_stabilize(ev["x"], ev["y"], ev["t"])
    ours = nmnist.stabilize(events)
    assert 0 < keep.sum() < len(events)  # some events really leave the sensor
    assert ours["x"].tolist() == x[keep].tolist() and ours["y"].tolist() == y[keep].tolist()
    assert ours["t"].tolist() == events["t"][keep].tolist()
    assert ours["p"].tolist() == events["p"][keep].tolist()
    assert np.array_equal(events, structured(ev))  # the input is left as it was


def test_stabilize_with_tonics_offset_agrees_with_tonic() -> None:
    rng = np.random.default_rng(4)
    ev = random_events(rng, 3000, t_max=330_000)
    # distinct odd times: events matched by time; no exact half-pixel, where roundings differ
    ev["t"] = (2 * np.sort(rng.choice(165_000, 3000, replace=False)) + 1).tolist()
    events = structured(ev)
    theirs = tonic.datasets.nmnist.stabilize(events.copy())
    ours = nmnist.stabilize(events, offset=(4, 2))
    # tonic tests the sensor bounds before rounding: it also drops the events Orchard's code
    # rounds onto an edge pixel from less than half a pixel outside; everything else is equal
    mine = {int(row["t"]): row for row in ours}
    assert all(mine[int(row["t"])] == row for row in theirs)
    extra = ours[~np.isin(ours["t"], theirs["t"])]
    assert 0 < len(extra) < 0.1 * len(ours)
    assert np.all(np.isin(extra["x"], [0, 33]) | np.isin(extra["y"], [0, 33]))


def test_binning_counts_every_event_once() -> None:
    ev = random_events(np.random.default_rng(5), 4000, t_max=60_000)
    events = structured(ev)
    counts = count_frames(**ev, n_steps=90, bin_us=600)  # 54 ms: later events fall off
    assert 0 < counts.sum() < len(events)
    frames = nmnist.bin_events(events, n_steps=90, bin_us=600, binary=False)
    assert frames.shape == (90, 2312) and frames.dtype == np.uint8
    assert np.array_equal(frames.reshape(90, 2, 34, 34), counts)
    binary = nmnist.bin_events(events, n_steps=90, bin_us=600)
    assert np.array_equal(binary.reshape(90, 2, 34, 34), np.minimum(counts, 1))
    assert counts.max() > 1  # so binary and counts really differ


def test_frames_equal_tonics_to_frame() -> None:
    ev = random_events(np.random.default_rng(6), 5000)
    events = structured(ev)
    to_frame = tonic.transforms.ToFrame(
        sensor_size=nmnist.SENSOR_SIZE, time_window=600, start_time=0, end_time=540 * 600
    )
    theirs = to_frame(events)
    assert theirs.shape == (540, 2, 34, 34)
    ours = nmnist.bin_events(events, binary=False)
    assert np.array_equal(ours.reshape(540, 2, 34, 34), theirs)


# ---------------------------------------------------------------------------------------------
# the loaders
# ---------------------------------------------------------------------------------------------


def expected_frames(ev: dict[str, list], n_steps: int, bin_us: int) -> np.ndarray:
    x, y, keep = orchard_stabilize(ev["x"], ev["y"], ev["t"])
    t, p = np.asarray(ev["t"])[keep], np.asarray(ev["p"])[keep]
    counts = count_frames(x[keep], y[keep], t, p, n_steps, bin_us)
    return np.minimum(counts, 1).reshape(n_steps, 2312)


def test_load_nmnist_reads_the_archive(nmnist_root) -> None:
    folder, events = nmnist_root
    frames, labels = nmnist.load_nmnist("train", n_steps=300, bin_us=600)
    n = 10 * SAMPLES_PER_DIGIT
    assert frames.shape == (n, 300, 2312) and frames.dtype == torch.uint8
    assert labels.dtype == torch.int64 and labels.tolist() == list(range(10)) * SAMPLES_PER_DIGIT
    names = [
        f"Train/{d}/{10 * k + d + 1:05d}.bin" for k in range(SAMPLES_PER_DIGIT) for d in range(10)
    ]
    for i, name in enumerate(names):  # the k-th file of each digit in turn
        assert np.array_equal(frames[i].numpy(), expected_frames(events[name], 300, 600)), name

    first, first_labels = nmnist.load_nmnist("train", n_steps=300, limit=10)  # one of each digit
    assert torch.equal(first, frames[:10]) and first_labels.tolist() == list(range(10))
    test_frames, test_labels = nmnist.load_nmnist("test", limit=12)  # the defaults: T = 540
    assert test_frames.shape == (12, 540, 2312) and test_labels[:10].tolist() == list(range(10))
    assert test_frames.max() == 1 and int(test_frames.sum()) > 0


def test_unpacked_folder_gives_the_same_frames(
    nmnist_root, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _ = nmnist_root
    from_zip, labels = nmnist.load_nmnist("train", n_steps=100)
    unpacked = tmp_path / "unpacked" / "nmnist"
    with zipfile.ZipFile(folder / "train.zip") as zf:
        zf.extractall(unpacked, [n for n in zf.namelist() if n.startswith("Train/")])
    monkeypatch.setenv("CREDITLAB_DATA", str(unpacked.parent))
    assert nmnist.locate("train") == unpacked / "Train"
    from_folder, folder_labels = nmnist.load_nmnist("train", n_steps=100)
    assert torch.equal(from_folder, from_zip) and torch.equal(folder_labels, labels)


def test_sparse_spikes_make_the_same_frames_a_batch_at_a_time(nmnist_root) -> None:
    spikes = nmnist.load_nmnist_spikes("train", n_steps=200)
    dense = spikes.frames()
    assert len(spikes) == 30 and int(dense.sum()) == len(spikes.spikes)
    assert torch.equal(spikes.frames([7, 2, 29]), dense[[7, 2, 29]])
    assert torch.equal(spikes.frames(slice(3, 9)), dense[3:9])
    assert torch.equal(spikes.frames(4), dense[4:5])
    raw = nmnist.load_nmnist_spikes("train", n_steps=200, stabilized=False)
    assert not torch.equal(raw.frames(), dense)


def test_a_corrupt_archive_or_recording_is_one_line(
    nmnist_root, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _ = nmnist_root
    assert cli.main(["data", "verify", "nmnist"]) == 0
    data = bytearray((folder / "test.zip").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "test.zip").write_bytes(bytes(data))
    with pytest.raises(UserError) as error:
        nmnist.load_nmnist("test")
    message = one_line(error)
    assert str(folder / "test.zip") in message and "md5" in message
    assert cli.main(["data", "verify", "nmnist"]) == 2
    assert "BAD" in capsys.readouterr().out

    # an archive whose md5 is right but which holds a truncated recording
    with zipfile.ZipFile(folder / "test.zip", "w") as zf:
        zf.writestr("Test/3/00004.bin", encode([1], [2], [3], [0])[:-1])
    spec = DATASETS["nmnist"]
    files = (
        spec.files[0],
        dataclasses.replace(spec.files[1], md5=store.file_md5(folder / "test.zip")),
    )
    monkeypatch.setitem(DATASETS, "nmnist", dataclasses.replace(spec, files=files))
    with pytest.raises(UserError) as error:
        nmnist.load_nmnist("test")
    assert "test.zip:Test/3/00004.bin" in one_line(error) and "not a multiple of 5" in str(
        error.value
    )


def test_missing_data_says_where_to_put_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CREDITLAB_DATA", str(tmp_path / "empty"))
    with pytest.raises(UserError) as error:
        nmnist.load_nmnist("train")
    message = one_line(error)
    assert "train.zip" in message and str(tmp_path / "empty" / "nmnist") in message
    assert "`creditlab data fetch nmnist`" in message
    with pytest.raises(UserError, match="choose 'train' or 'test'"):
        nmnist.load_nmnist("valid")
    with pytest.raises(UserError, match="creditlab.data.nmnist"):
        load("nmnist")

    assert cli.main(["data", "list"]) == 0
    listing = [line for line in capsys.readouterr().out.splitlines() if line.startswith("nmnist")]
    assert listing and "missing: run `creditlab data fetch nmnist`" in listing[0]

    def no_generation(cache: bool = True) -> None:
        raise UserError("not generated in this test")

    monkeypatch.setattr(loaders, "mnist1d_arrays", no_generation)
    cli.main(["data", "verify"])  # other data sets are missing too: only nmnist's row matters
    rows = [line for line in capsys.readouterr().out.splitlines() if " nmnist " in line]
    assert len(rows) == 1 and rows[0].startswith("ABSENT")  # optional: not a failure
    assert cli.main(["data", "verify", "nmnist"]) == 2  # asked for by name: missing


def test_fetch_from_a_mirror_then_load(nmnist_root, tmp_path: Path, http_mirror) -> None:
    folder, _ = nmnist_root
    mirror, url = http_mirror
    for name in ("train.zip", "test.zip"):
        shutil.copy(folder / name, mirror / name)
    lines: list[str] = []
    got = fetch("nmnist", mirror=url, dest=tmp_path / "dest", log=lines.append)
    assert sorted(p.name for p in got.iterdir()) == ["test.zip", "train.zip"]
    assert len(lines) == 2 and all("fetched from http://" in line for line in lines)
    assert all(ok for _, ok, _ in verify("nmnist"))
    spec = DATASETS["nmnist"]  # the public source: Mendeley Data, as tonic downloads from
    assert spec.mirrors[0].startswith("https://data.mendeley.com/")
    assert {f.name: f.source_name.split("/")[0] for f in spec.files} == {
        "train.zip": tonic.datasets.NMNIST.train_url.split("/")[-2],
        "test.zip": tonic.datasets.NMNIST.test_url.split("/")[-2],
    }


def test_catalog_md5s_are_the_official_ones() -> None:
    from creditlab.data.catalog import DATASETS as catalog

    md5 = {f.name: f.md5 for f in catalog["nmnist"].files}
    assert md5 == {
        "train.zip": tonic.datasets.NMNIST.train_md5,
        "test.zip": tonic.datasets.NMNIST.test_md5,
    }
    assert Counter(f.required for f in catalog["nmnist"].files) == Counter({True: 2})


def test_dense_frames_that_cannot_fit_are_refused_up_front(
    nmnist_root, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nmnist, "available_memory", lambda: 10 * 540 * 2312)  # ten samples' worth
    assert len(nmnist.load_nmnist("train", limit=10)[1]) == 10
    read = []
    monkeypatch.setattr(nmnist, "decode_events", lambda raw, where: read.append(where))
    with pytest.raises(UserError) as error:
        nmnist.load_nmnist("train", limit=11)
    message = one_line(error)
    assert "11 dense N-MNIST train samples" in message and "load_nmnist_spikes" in message
    assert read == []  # refused before any recording was read
