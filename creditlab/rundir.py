"""The run folder on the ground floor: its file names, the result schema, reading and
finding runs, and the paper-vs-measured comparison every command shows.

Written once here and used by the runner (writer), the multi-seed and tuning folders, the
report (which only renders) and the CLI. A run folder::

    config.json     experiment, scale, seed, device and the full config (CONFIG_KEYS)
    metrics.jsonl   one JSON object a line, each with an integer ``step``
    result.json     RESULT_KEYS (+ RESULT_OPTIONAL_KEYS)
    plots/          PNG figures
    checkpoint.pt   while running, and after an interruption, a crash or a divergence

A multi-seed folder holds ``seeds.json`` (the plan), ``s<seed>/`` run folders and
``aggregate.json`` (the result keys, each metric summarised over seeds); a tuning folder
holds ``tune.json`` and one multi-seed folder per grid point, never reported.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"
CHECKPOINT_FILE = "checkpoint.pt"
PLOTS_DIR = "plots"
SEEDS_FILE = "seeds.json"
AGGREGATE_FILE = "aggregate.json"
TUNE_FILE = "tune.json"
SWEEP_FILE = "sweep.json"

CONFIG_KEYS = ("experiment", "scale", "seed", "device", "config")
"""What config.json holds."""
RESULT_KEYS = (
    "experiment",
    "title",
    "paper_title",
    "scale",
    "seed",
    "device",
    "config",
    "metrics",
    "paper",
    "data",
    "notes",
    "wall_seconds",
    "peak_memory_mb",
    "versions",
    "machine",
    "git_commit",
    "finished_utc",
)
"""What every result.json holds, in this order (the runner writes exactly these)."""
VERSION_KEYS = ("python", "torch", "creditlab")
PAPER_FIGURE_KEYS = ("value", "source", "protocol")
"""A paper figure: value and source, and the data protocol where the experiment names it."""


# ----------------------------------------------------------------------------- reading, writing


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (a reader never sees half a file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    """A JSON object from ``path``, or None when it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_metrics(path: Path | str) -> list[dict]:
    """Read a ``metrics.jsonl`` file: one dict per well-formed line.

    Lines that are not JSON objects (such as a last line cut short by an interrupted run) are
    skipped; a missing file reads as no records.
    """
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def saved_experiment(folder: Path) -> str | None:
    """The experiment a run or multi-seed folder holds, from its config.json or seeds.json."""
    for name in (CONFIG_FILE, SEEDS_FILE):
        saved = read_json(Path(folder) / name)
        if saved and isinstance(saved.get("experiment"), str):
            return saved["experiment"]
    return None


def is_seeds_folder(folder: Path) -> bool:
    return (Path(folder) / SEEDS_FILE).is_file()


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ----------------------------------------------------------------------------- finding runs

EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass
class Run:
    """One run folder (its config.json and, once finished, its result.json), or one
    multi-seed folder (its seeds.json and aggregate.json)."""

    folder: Path
    config: dict
    result: dict | None

    def get(self, key: str, default: object = None) -> object:
        """A top-level field of result.json, falling back to config.json."""
        return (self.result or {}).get(key, self.config.get(key, default))

    @property
    def experiment(self) -> str:
        return str(self.get("experiment", self.folder.parent.name))

    @property
    def is_aggregate(self) -> bool:
        """A multi-seed folder (seeds.json + aggregate.json), not a single run."""
        return "seeds" in self.config

    @property
    def seeds(self) -> str:
        """The seed column: "0" for one run, "0-4 (5 seeds)" for an aggregate."""
        if not self.is_aggregate:
            return str(self.get("seed", "—"))
        seeds = list(self.config["seeds"])
        consecutive = seeds == list(range(seeds[0], seeds[0] + len(seeds)))
        label = f"{seeds[0]}-{seeds[-1]}" if consecutive else ",".join(map(str, seeds))
        return f"{label} ({len(seeds)} seeds)"

    @property
    def metrics_files(self) -> list[Path]:
        """metrics.jsonl of the run, or of every seed of an aggregate."""
        if self.is_aggregate:
            return [self.folder / f"s{seed}" / METRICS_FILE for seed in self.config["seeds"]]
        return [self.folder / METRICS_FILE]

    @cached_property
    def finished(self) -> datetime:
        """``finished_utc`` as an aware datetime; the distant past when absent or malformed."""
        try:
            when = datetime.fromisoformat(str(self.get("finished_utc")))
        except ValueError:
            return EPOCH
        return when if when.tzinfo else when.replace(tzinfo=UTC)


def find_runs(runs_dir: Path) -> list[Run]:
    """Every run folder below ``runs_dir`` (holding a result.json or config.json), and every
    multi-seed folder (holding a seeds.json; its result is the aggregate.json). Runs inside a
    tuning folder (`creditlab tune`, on tuning seeds) or a sweep over a grid of settings
    (`creditlab sweep --grid`) are left out: they choose settings and are never reported."""
    runs_dir = Path(runs_dir)
    hidden = {p.parent for p in runs_dir.rglob(TUNE_FILE)}
    # a sweep over settings explores them; a sweep of the defaults (no grid) is reported
    for plan in runs_dir.rglob(SWEEP_FILE):
        if any((read_json(plan) or {}).get("grid", [])):  # [{}]: the defaults alone
            hidden.add(plan.parent)

    def reported(folder: Path) -> bool:
        return not hidden.intersection(folder.parents)

    folders = {p.parent for name in (RESULT_FILE, CONFIG_FILE) for p in runs_dir.rglob(name)}
    runs = [
        Run(f, read_json(f / CONFIG_FILE) or {}, read_json(f / RESULT_FILE))
        for f in sorted(folders)
        if reported(f)
    ]
    runs += [
        Run(p.parent, read_json(p) or {}, read_json(p.parent / AGGREGATE_FILE))
        for p in sorted(runs_dir.rglob(SEEDS_FILE))
        if reported(p.parent)
    ]
    return runs


def latest_runs(runs: list[Run]) -> dict[str, tuple[Run, int]]:
    """Label -> (what the report shows for it, how many finished runs it has), one entry per
    experiment and data protocol: the latest finished multi-seed aggregate if there is one,
    else the latest finished run. The label is the experiment's name, followed by the protocol
    in brackets when the experiment was run on more than one ("bp.mnist [fashion_mnist]")."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        if run.result is not None:
            protocol = str(data_protocol(run.result) or "")
            groups.setdefault((run.experiment, protocol), []).append(run)
    protocols: dict[str, int] = {}
    for name, _ in groups:
        protocols[name] = protocols.get(name, 0) + 1
    return {
        (f"{name} [{protocol}]" if protocols[name] > 1 and protocol else name): (
            max(group, key=lambda r: (r.is_aggregate, r.finished)),
            len(group),
        )
        for (name, protocol), group in sorted(groups.items())
    }


# ----------------------------------------------------------------------------- paper vs measured

# Words in a metric's name that say which direction is better; anything else gets no verdict.
HIGHER_IS_BETTER = ("accuracy", "_acc", "per_second", "alignment", "cosine")
LOWER_IS_BETTER = ("loss", "error", "mse", "nll", "seconds", "memory", "_mb")
SHORT, MEETS = "falls short of paper", "matches or beats paper"
NOT_COMPARABLE = "not comparable"
NOT_MEASURED = "not measured here"


def higher_is_better(name: str) -> bool | None:
    """True or False where the metric's name says which direction is better, else None."""
    lowered = name.lower()
    if any(word in lowered for word in HIGHER_IS_BETTER):
        return True
    if any(word in lowered for word in LOWER_IS_BETTER):
        return False
    return None


def fmt(name: str, value: object, signed: bool = False) -> str:
    """A metric value for people: accuracies to 4 decimals, large numbers with separators,
    "—" for a value that is not there."""
    if value is None:
        return "—"
    if not is_number(value) or not math.isfinite(value):
        return str(value)
    sign = "+" if signed else ""
    if isinstance(value, int):
        return f"{value:{sign},}"
    if "accuracy" in name.lower() and abs(value) <= 1:
        return f"{value:{sign}.4f}"
    if abs(value) >= 1000:
        return f"{value:{sign},.0f}"
    return f"{value:{sign}.4g}"


@dataclass
class Comparison:
    """One metric as measured, beside the paper's value for it where the paper gives one.
    ``measured`` is None for a paper figure the run does not measure (e.g. a figure of
    another data set)."""

    metric: str
    measured: float | None
    paper: float | None = None
    source: str = ""
    protocol: str = ""
    """the run's data protocol (result.json's data.protocol), e.g. "mnist10k"."""
    paper_protocol: str = ""
    """the protocol the paper's figure was measured on, where the experiment declares it."""
    std: float | None = None
    """the standard deviation over seeds, for an aggregate (``measured`` is then the mean)."""
    n: int = 1
    """how many seeds ``measured`` summarises."""

    @property
    def comparable(self) -> bool:
        """False when the run and the paper used different data protocols (never compared)."""
        return not (self.protocol and self.paper_protocol and self.protocol != self.paper_protocol)

    @property
    def difference(self) -> float | None:
        if is_number(self.measured) and is_number(self.paper):
            return self.measured - self.paper
        return None

    @property
    def verdict(self) -> str:
        """SHORT or MEETS where the metric has a known better direction, NOT_COMPARABLE (with
        both protocols named) where the data protocols differ, NOT_MEASURED for a paper
        figure the run has no value for, else ''."""
        if self.paper is not None and not self.comparable:
            return f"{NOT_COMPARABLE} ({self.protocol} here, {self.paper_protocol} in the paper)"
        if self.paper is not None and self.measured is None:
            return NOT_MEASURED
        better = higher_is_better(self.metric)
        if self.difference is None or better is None or math.isnan(self.difference):
            return ""
        return MEETS if (self.difference >= 0) == better or self.difference == 0 else SHORT

    def cells(self) -> list[str]:
        """Plain-text cells: metric, measured, paper, difference, verdict, source."""
        diff = fmt(self.metric, self.difference, signed=True) if self.comparable else "—"
        if self.comparable and self.difference is not None and is_number(self.paper) and self.paper:
            diff += f" ({self.difference / abs(self.paper):+.1%})"
        measured = fmt(self.metric, self.measured)
        if self.std is not None:
            measured += f" ± {fmt(self.metric, self.std)} (n={self.n})"
        return [
            self.metric,
            measured,
            fmt(self.metric, self.paper),
            diff,
            self.verdict,
            self.source,
        ]

    def short(self) -> str:
        """``metric=value`` for one line of terminal output ("—" when not measured)."""
        return f"{self.metric}={fmt(self.metric, self.measured)}"


COMPARISON_HEADER = ["metric", "measured", "paper", "difference", "vs paper", "source"]


def comparisons(result: Mapping[str, Any]) -> list[Comparison]:
    """Every measured metric, then any metric the paper reports that the run did not measure."""
    metrics = result.get("metrics") or {}
    paper = result.get("paper") or {}
    protocol = str(data_protocol(result) or "")
    out = []
    for name in [*metrics, *(n for n in paper if n not in metrics)]:
        entry = paper.get(name)
        if not isinstance(entry, dict):
            entry = {"value": entry}
        measured = metrics.get(name)
        stats = measured if isinstance(measured, dict) else {}  # an aggregate's summary
        out.append(
            Comparison(
                name,
                stats.get("mean", measured if not stats else None),
                entry.get("value"),
                str(entry.get("source", "")),
                protocol,
                str(entry.get("protocol", "")),
                stats.get("std"),
                int(stats.get("n", 1)),
            )
        )
    return out


def headline(result: Mapping[str, Any]) -> list[Comparison]:
    """The metrics the paper reports that the run measured; failing that, the first test
    accuracy (or accuracy), or the first metric. Never a figure the run has no value for."""
    rows = [c for c in comparisons(result) if c.measured is not None]
    with_paper = [c for c in rows if c.paper is not None]
    accuracies = sorted(
        (c for c in rows if "accuracy" in c.metric.lower()),
        key=lambda c: not c.metric.startswith("test"),  # a test accuracy first
    )
    return with_paper or accuracies[:1] or rows[:1]


def data_protocol(result: Mapping[str, Any]) -> str | None:
    """The run's data protocol from result.json (e.g. "mnist10k", "fashion_mnist"), if any."""
    data = result.get("data")
    return data.get("protocol") if isinstance(data, dict) else None


def data_cell(result: Mapping[str, Any]) -> str:
    """The data column: protocol and training-set size, e.g. "mnist10k (8,000 train)"."""
    data = result.get("data")
    if not isinstance(data, dict) or not data.get("protocol"):
        return "—"
    n = data.get("n_train")
    return f"{data['protocol']} ({n:,} train)" if isinstance(n, int) and n else data["protocol"]
