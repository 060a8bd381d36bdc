"""N-MNIST (Orchard, Jayawant, Cohen & Thakor 2015): the event files, saccade stabilisation, and
spike frames for the spiking methods.

N-MNIST shows each MNIST digit to an ATIS event camera that makes three ~100 ms saccades, so a
recording is a list of events (x, y, t, p) on a 34x34 sensor with two polarities. HM2-BP (Jin,
Zhang & Li 2018) trains a 2312-800-10 network on it, T = 540 steps of 600 us. With the
genuine files in a data root (they are not on the CI machine, so this is not a doctest)::

    spikes, labels = load_nmnist("test", limit=100)
    spikes.shape, spikes.dtype  # (torch.Size([100, 540, 2312]), torch.uint8)

**File format** (one ``.bin`` file a recording): 5 bytes an event, byte 0 = x (0..33), byte 1 =
y (0..33), bit 7 of byte 2 = polarity (1 ON, 0 OFF), bits 6..0 of byte 2 then bytes 3 and 4 = a
23-bit big-endian timestamp in microseconds. `read_events` returns tonic's structured array
(``tonic.datasets.NMNIST.dtype``: int64 fields x, y, t, p), equal to ``tonic.io.read_mnist_file``.
A file is refused as corrupt (one-line `UserError` naming it) when its length is not a whole
number of events, it holds no event, or an event lies off the 34x34 sensor. Two things are
deliberately *not* refused:

- timestamps out of order: the format does not require time order (neither Orchard's readers
  nor tonic's check it) and binning here does not depend on it;
- nothing is read as a timestamp-overflow marker: tonic's reader, ported from the ATIS tools,
  treats y == 240 as one, but 23-bit microsecond stamps cover 8.4 s and an N-MNIST recording
  lasts ~0.3 s, so a y of 240 is an off-sensor byte, i.e. corruption, here.

**Saccade stabilisation** (`stabilize`, on by default in the loaders): the sensor's motion in
each saccade is subtracted, exactly as Garrick Orchard's ``stabilize.m`` published with the data
set: the image drifts linearly by (+3.5, +7) px over 0-105 ms, by (+3.5, -7) px over 105-210 ms
and by (-7, 0) px, back to the start, after 210 ms; coordinates are rounded (halves up: MATLAB's
round on its 1-based pixel numbers) and events that fall off the sensor are dropped. This is
what HM2-BP did: the authors' converter (``nmnist/NMNIST_Converter.m`` in jinyyy666/mm-bp-snn)
calls Orchard's ``stabilize(TD)``, drops events beyond pixel 34 and names its output folder
``<channels>_<window>_stable``.
tonic's ``NMNIST(stabilize=True)`` ports the same function but shifts the result by (+4, +2) px
to re-centre the digit, and it tests the sensor bounds before rounding, so it also drops the
events that Orchard's code rounds onto an edge pixel from less than half a pixel outside;
``stabilize(events, offset=(4, 2))`` equals tonic's but for those.

**Spike frames** (`bin_events`): step k holds the events with ``k*bin_us <= t < (k+1)*bin_us``
(tonic's ``ToFrame(time_window=bin_us, start_time=0, end_time=n_steps*bin_us)``, which wants
the events in time order; here order does not matter); events at or after ``n_steps*bin_us``
are dropped (540 x 600 us = 324 ms holds a whole recording). Channel ``p*1156 + y*34 + x``,
so ``frames.reshape(T, 2, 34, 34)`` is tonic's (T, P, H, W) frame. A frame is binary (a channel
spikes at most once a step), as HM2-BP's converter made it (``mat(...) = 1``; the rare second
event of a pixel in one 600 us bucket is lost there too). HM2-BP's converter differs in two
ways that do not matter to a rate-based rule: step ``ceil(t/600) + 1`` instead of
``floor(t/600)`` (spikes 1-2 steps later), and channel order (p, x, y) instead of (p, y, x).

**Where the data live**: ``<root>/nmnist/`` for each data root (``$CREDITLAB_DATA``, then
``~/.cache/creditlab``), holding the official archives ``train.zip`` / ``test.zip`` as
``creditlab data fetch nmnist`` downloads them (md5-checked on every load, then read in place:
never unpacked, so a read-only data folder works and no second copy fills the disk), or, instead
of an archive, its unpacked ``Train/`` / ``Test/`` folder (``<digit>/<id>.bin``, as tonic leaves
it), which has no checksum and is checked file by file by `read_events` only. The first root
holding either wins; an archive wins over a folder in the same root. A recording's label is the
name of its parent folder (`label_of`), inside an archive as in a folder.

**Order and memory**: samples come in a fixed, interleaved order, the k-th file (by name) of each
digit in turn, so any prefix (``limit``) is class-balanced; shuffle for training anyway. Dense
frames take ``n_steps * 2312`` bytes a sample (1.25 MB at T = 540): the full training set would be
75 GB, the test set 12.5 GB. `load_nmnist` is for what fits (``limit``); for the full set use
`load_nmnist_spikes`, which keeps each sample's spikes as a list of (step, channel) indices
(4 bytes a spike, about 1 GB for the 60k training set) and builds dense frames a batch at a time
with `NMNISTSpikes.frames`. `load_nmnist` refuses, in one line and before reading a file, dense
frames larger than the memory available.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath

import numpy as np
import torch

from creditlab.data.catalog import DATASETS
from creditlab.data.store import data_roots, require_intact, searched
from creditlab.errors import UserError

NAME = "nmnist"
SENSOR_SIZE = (34, 34, 2)
"""(width x, height y, polarities), as tonic's ``NMNIST.sensor_size``."""
N_CHANNELS = 34 * 34 * 2
"""2312 input channels: ``p * 1156 + y * 34 + x``."""
EVENT_DTYPE = np.dtype([("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])
"""tonic's ``NMNIST.dtype``: the structured array `read_events` returns."""
SPLITS = {"train": ("train.zip", "Train"), "test": ("test.zip", "Test")}
"""split -> (official archive, the folder it unpacks to)."""

SACCADE_US = 105_000
"""Each of the three saccades lasts 105 ms in Orchard's stabilisation."""
HM2BP_STEPS = 540
HM2BP_BIN_US = 600

_FIX = "delete it and unpack the official archive again, or run `creditlab data fetch nmnist`"


# ---------------------------------------------------------------------------------------------
# the event format
# ---------------------------------------------------------------------------------------------


def decode_events(raw: bytes | np.ndarray, source: str | PurePath) -> np.ndarray:
    """`read_events` on bytes already read (from a file or an archive member); ``source`` names
    the recording in errors. Vectorised: no Python loop over events."""
    data = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, bytes | bytearray) else raw
    if data.size == 0 or data.size % 5:
        what = "is empty" if data.size == 0 else f"has {data.size} bytes, not a multiple of 5"
        raise UserError(f"corrupt N-MNIST file {source}: it {what} (5 bytes an event); {_FIX}")
    b = data.reshape(-1, 5).astype(np.int64)
    events = np.empty(len(b), dtype=EVENT_DTYPE)
    events["x"] = b[:, 0]
    events["y"] = b[:, 1]
    events["p"] = b[:, 2] >> 7
    events["t"] = (b[:, 2] & 0x7F) << 16 | b[:, 3] << 8 | b[:, 4]
    off = (b[:, 0] >= SENSOR_SIZE[0]) | (b[:, 1] >= SENSOR_SIZE[1])
    if off.any():
        i = int(np.argmax(off))
        raise UserError(
            f"corrupt N-MNIST file {source}: event {i} of {len(b)} is at x={b[i, 0]}, "
            f"y={b[i, 1]}, off the 34x34 sensor; {_FIX}"
        )
    return events


def read_events(path: str | Path) -> np.ndarray:
    """The events of one N-MNIST ``.bin`` file as tonic's structured array (fields x, y, t, p).

    A truncated or corrupt file raises a one-line `UserError` naming it (see the module notes).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read N-MNIST file {path}: {error.strerror}") from None
    return decode_events(raw, path)


def label_of(path: str | PurePath) -> int:
    """The digit a recording shows: the name of its parent folder (``Train/7/00012.bin`` -> 7)."""
    parent = PurePosixPath(str(path).replace("\\", "/")).parent.name
    if len(parent) != 1 or not parent.isdigit():
        raise UserError(
            f"N-MNIST file {path} is not in a digit folder (0..9): the archives unpack to "
            "Train/<digit>/<id>.bin and Test/<digit>/<id>.bin"
        )
    return int(parent)


# ---------------------------------------------------------------------------------------------
# stabilisation and binning
# ---------------------------------------------------------------------------------------------


def saccade_motion(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image displacement (dx, dy) in pixels at time ``t`` (us) that Orchard's ``stabilize.m``
    subtracts: piecewise linear over the three 105 ms saccades, a triangle back to the start."""
    t = np.asarray(t, dtype=np.float64)
    first, second = t <= SACCADE_US, (t > SACCADE_US) & (t <= 2 * SACCADE_US)
    dx = np.select(
        [first, second],
        [3.5 * t / SACCADE_US, 3.5 + 3.5 * (t - SACCADE_US) / SACCADE_US],
        7 - 7 * (t - 2 * SACCADE_US) / SACCADE_US,
    )
    dy = np.select([first, second], [7 * t / SACCADE_US, 7 - 7 * (t - SACCADE_US) / SACCADE_US], 0)
    return dx, dy


def stabilize(events: np.ndarray, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Subtract the saccades' image motion (Orchard's ``stabilize.m``, as HM2-BP used it).

    Coordinates become ``round(x - dx(t)) + offset[0]`` and ``round(y - dy(t)) + offset[1]``
    (halves rounded up, as MATLAB's round on 1-based pixels); events off the sensor are dropped.
    The default offset (0, 0) is Orchard's and HM2-BP's; (4, 2) is tonic's re-centred variant.
    Returns a new array; ``events`` is left unchanged.
    """
    dx, dy = saccade_motion(events["t"])
    x = np.floor(events["x"] - dx + 0.5).astype(np.int64) + offset[0]
    y = np.floor(events["y"] - dy + 0.5).astype(np.int64) + offset[1]
    keep = (x >= 0) & (x < SENSOR_SIZE[0]) & (y >= 0) & (y < SENSOR_SIZE[1])
    out = events[keep].copy()
    out["x"], out["y"] = x[keep], y[keep]
    return out


def spike_indices(events: np.ndarray, n_steps: int, bin_us: int) -> np.ndarray:
    """Flat indices ``step * 2312 + channel`` of the events that fall in the first ``n_steps``
    steps of ``bin_us`` (one entry per event, repeats kept)."""
    step = events["t"] // bin_us
    keep = (step >= 0) & (step < n_steps)
    channel = events["p"] * (34 * 34) + events["y"] * 34 + events["x"]
    return (step * N_CHANNELS + channel)[keep]


def bin_events(
    events: np.ndarray, n_steps: int = HM2BP_STEPS, bin_us: int = HM2BP_BIN_US, binary: bool = True
) -> np.ndarray:
    """Spike frames (n_steps, 2312) uint8 of one recording: 1 where a channel has an event in a
    step (``binary``), else the event count (capped at 255). Step and channel as in the module
    notes; ``frames.reshape(n_steps, 2, 34, 34)`` is tonic's ToFrame layout (T, P, H, W)."""
    counts = np.bincount(spike_indices(events, n_steps, bin_us), minlength=n_steps * N_CHANNELS)
    counts = np.minimum(counts, 1 if binary else 255).astype(np.uint8)
    return counts.reshape(n_steps, N_CHANNELS)


# ---------------------------------------------------------------------------------------------
# locating and reading a split
# ---------------------------------------------------------------------------------------------


def _split_files(split: str) -> tuple[str, str]:
    if split not in SPLITS:
        raise UserError(f"unknown N-MNIST split '{split}'; choose 'train' or 'test'")
    return SPLITS[split]


def locate(split: str) -> Path:
    """The archive (``<root>/nmnist/train.zip``) or unpacked folder (``<root>/nmnist/Train``)
    of ``split`` in the first data root holding one; a one-line `UserError` where none does."""
    archive, folder = _split_files(split)
    roots = data_roots()
    for root in roots:
        if (root / NAME / archive).is_file():
            return root / NAME / archive
        if (root / NAME / folder).is_dir():
            return root / NAME / folder
    raise UserError(
        f"N-MNIST {split} split not found: looked for {archive} (or its unpacked {folder}/ "
        f"folder) in {searched(NAME, roots)}; run `creditlab data fetch nmnist`, or put the "
        f"official {archive} into {roots[0] / NAME}/"
    )


def status() -> str:
    """For `creditlab data list`: where each split was found, without hashing anything."""
    found = {}
    for split in SPLITS:
        try:
            found[split] = locate(split)
        except UserError:
            continue
    if not found:
        return f"missing: run `creditlab data fetch {NAME}`"
    where = ", ".join(f"{split} {path}" for split, path in found.items())
    return f"found: {where}" if len(found) == len(SPLITS) else f"incomplete: only {where}"


def _interleaved(names: Sequence[str], source: Path) -> list[tuple[str, int]]:
    """(name, label) of every recording: the k-th (by name) of each digit in turn."""
    if not names:
        raise UserError(f"{source} holds no N-MNIST .bin files; {_FIX}")
    by_label: dict[int, list[str]] = {}
    for name in sorted(names):
        by_label.setdefault(label_of(name), []).append(name)
    order = sorted(
        (rank, label, name)
        for label, members in by_label.items()
        for rank, name in enumerate(members)
    )
    return [(name, label) for _, label, name in order]


def _recording(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return name.endswith(".bin") and not parts[-1].startswith("._") and "__MACOSX" not in parts


def _read_split(
    split: str, limit: int | None
) -> tuple[Path, list[tuple[str, int]], zipfile.ZipFile | None]:
    path = locate(split)
    if path.is_dir():
        names = [str(p.relative_to(path)) for p in path.glob("*/*.bin")]
        return path, _interleaved(names, path)[:limit], None
    archive = SPLITS[split][0]
    spec = next(f for f in DATASETS[NAME].files if f.name == archive)
    require_intact(path, spec, NAME)
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise UserError(f"corrupt N-MNIST archive {path}: not a zip file; {_FIX}") from None
    names = [n for n in zf.namelist() if _recording(n)]
    return path, _interleaved(names, path)[:limit], zf


@dataclass
class NMNISTSpikes:
    """A split's spike frames kept sparse: each sample's spikes as flat indices into its
    (n_steps, 2312) frame, ``step * 2312 + channel`` (int32, each spike once, sorted).

    Sample i's indices are ``spikes[offsets[i]:offsets[i + 1]]``; `frames` makes dense uint8
    frames for a batch. Four bytes a spike: the 60k training set in about 1 GB.
    """

    spikes: np.ndarray
    offsets: np.ndarray
    labels: torch.Tensor
    """int64 (N,) digit of each sample."""
    n_steps: int
    bin_us: int
    source: str
    """The archive or folder read."""

    def __len__(self) -> int:
        return len(self.labels)

    def frames(self, index: int | slice | Sequence[int] | np.ndarray | None = None) -> torch.Tensor:
        """Dense uint8 spike frames (B, n_steps, 2312) of the samples ``index`` (an int gives B = 1;
        None: all)."""
        rows = np.arange(len(self))[index if index is not None else slice(None)]
        rows = np.atleast_1d(rows)
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        lengths = ends - starts
        # gather every chosen sample's segment at once: position j of segment s is starts[s] + j
        first = np.cumsum(lengths) - lengths
        at = np.arange(int(lengths.sum())) + np.repeat(starts - first, lengths)
        sample = np.repeat(np.arange(len(rows)), lengths)
        size = self.n_steps * N_CHANNELS
        out = torch.zeros(len(rows) * size, dtype=torch.uint8)
        out[torch.from_numpy(sample * size + self.spikes[at].astype(np.int64))] = 1
        return out.reshape(len(rows), self.n_steps, N_CHANNELS)


def _check_sizes(n_steps: int, bin_us: int, limit: int | None) -> None:
    for name, value in (("n_steps", n_steps), ("bin_us", bin_us)):
        if not isinstance(value, int) or value < 1:
            raise UserError(f"N-MNIST {name} must be a positive integer, got {value!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise UserError(f"N-MNIST limit must be a positive integer or None, got {limit!r}")


def load_nmnist_spikes(
    split: str,
    n_steps: int = HM2BP_STEPS,
    bin_us: int = HM2BP_BIN_US,
    limit: int | None = None,
    stabilized: bool = True,
) -> NMNISTSpikes:
    """Read a split (``"train"``: 60k, ``"test"``: 10k; the first ``limit`` samples of the
    interleaved order) into sparse binary spike frames, saccade-stabilised unless told not to.

    Where the files are looked for, how archives are checked, the order and the binning: see the
    module notes. Missing or corrupt data raise a one-line `UserError`. About 2 ms a recording
    on one CPU core (two minutes for the training set).
    """
    return _load_spikes(split, n_steps, bin_us, limit, stabilized)


def _load_spikes(
    split: str,
    n_steps: int,
    bin_us: int,
    limit: int | None,
    stabilized: bool,
    check_count: Callable[[int], None] | None = None,
) -> NMNISTSpikes:
    _check_sizes(n_steps, bin_us, limit)
    source, recordings, zf = _read_split(split, limit)
    pieces, labels = [], []
    try:
        if check_count is not None:
            check_count(len(recordings))
        for name, label in recordings:
            where = f"{source}:{name}" if zf is not None else source / name
            raw = zf.read(name) if zf is not None else (source / name).read_bytes()
            events = decode_events(raw, where)
            if stabilized:
                events = stabilize(events)
            pieces.append(np.unique(spike_indices(events, n_steps, bin_us)).astype(np.int32))
            labels.append(label)
    except (zipfile.BadZipFile, OSError) as error:  # a damaged member of an intact-looking zip
        raise UserError(f"cannot read N-MNIST data from {source}: {error}; {_FIX}") from None
    finally:
        if zf is not None:
            zf.close()
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in pieces], out=offsets[1:])
    return NMNISTSpikes(
        spikes=np.concatenate(pieces),
        offsets=offsets,
        labels=torch.tensor(labels, dtype=torch.int64),
        n_steps=n_steps,
        bin_us=bin_us,
        source=str(source),
    )


def available_memory() -> int | None:
    """Bytes of memory available now (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def load_nmnist(
    split: str, n_steps: int = 540, bin_us: int = 600, limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """N-MNIST as HM2-BP reads it: (spike frames uint8 (N, n_steps, 2312) of 0/1, labels int64).

    Saccade-stabilised (Orchard's method, as HM2-BP), 600 us steps, 540 of them by default; the
    first ``limit`` samples of a fixed class-interleaved order. Dense: 1.25 MB a sample at
    T = 540 (75 GB for the training set), so pass ``limit``, or use `load_nmnist_spikes` and
    make frames a batch at a time; frames that would not fit in the memory available raise a
    one-line `UserError` before any file is read.
    """

    def fits(n: int) -> None:
        need, have = n * n_steps * N_CHANNELS, available_memory()
        if have is not None and need > have:
            raise UserError(
                f"{n} dense N-MNIST {split} samples of {n_steps} steps need {need / 1e9:.1f} GB, "
                f"more than the {have / 1e9:.1f} GB of memory available; pass a smaller limit, "
                "or use creditlab.data.nmnist.load_nmnist_spikes and its frames(batch)"
            )

    spikes = _load_spikes(split, n_steps, bin_us, limit, stabilized=True, check_count=fits)
    return spikes.frames(), spikes.labels
