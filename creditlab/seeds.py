"""Several seeds of one experiment: one run folder per seed, and an aggregate over them.

``creditlab run NAME --seeds 5`` (seeds 0-4), ``--seeds 0-4`` or ``--seeds 3,7,9`` writes::

    runs/<experiment>/<UTC timestamp>-seeds0-4/
        seeds.json        experiment, scale, seeds, overrides, device (what --resume needs)
        s0/ s1/ ...       one ordinary run folder per seed (config.json, result.json, ...)
        aggregate.json    per metric: mean, std, min, max, 95% bootstrap interval, n, values
        plots/            learning curves: the mean over seeds with a band of one std

Headline numbers are aggregates: a setting is chosen on tuning seeds (>= 100, see
`TUNING_SEEDS`) and reported on seeds 0-4, never the seeds it was chosen on.

An interrupted multi-seed run resumes with ``creditlab run --resume FOLDER``: finished seeds
are kept, the interrupted seed resumes from its checkpoint, the rest run.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from creditlab import runner
from creditlab.errors import UserError
from creditlab.plots import plot_learning_curves
from creditlab.registry import Experiment
from creditlab.rundir import (
    AGGREGATE_FILE,
    CHECKPOINT_FILE,
    METRICS_FILE,
    RESULT_FILE,
    SEEDS_FILE,
    read_json,
    write_json,
)

REPORTING_SEEDS = range(0, 5)
"""The seeds headline numbers are reported on."""
TUNING_SEEDS = range(100, 105)
"""The seeds settings are chosen on (never the reporting seeds)."""
BOOTSTRAP_RESAMPLES = 10_000


MAX_SEED_COUNT = 20
"""A bare count (``--seeds 5``) may name at most this many seeds: ``--seeds 100`` is refused
(the seed 100 is ``--seed 100``; a hundred seeds is ``--seeds 0-99``): never 100 runs by
accident."""


def parse_seeds(text: str, flag: str = "--seeds") -> list[int]:
    """``"5"`` -> [0..4] (a count, at most `MAX_SEED_COUNT`); ``"100-104"`` -> [100..104];
    ``"3,7,9"`` -> [3, 7, 9]."""
    text = text.strip()
    count = None
    try:
        if "," in text:
            seeds = [int(part) for part in text.split(",") if part.strip()]
        elif "-" in text.lstrip("-"):
            first, last = (int(part) for part in text.split("-", 1))
            seeds = list(range(first, last + 1))
        else:
            count = int(text)
            seeds = list(range(count))
    except ValueError:
        seeds = []
    if count is not None and count > MAX_SEED_COUNT:
        raise UserError(
            f"{flag} {text} would run {count} seeds (0-{count - 1}); for the one seed {count} "
            f"use --seed {count} (or {flag} {count},), for that many write {flag} 0-{count - 1}"
        )
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise UserError(
            f"{flag} {text!r}: expected a count up to {MAX_SEED_COUNT} (5), a range (0-4) or a "
            "list (3,7,9) of distinct seeds >= 0"
        )
    return seeds


def bootstrap_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (10,000 resamples, fixed generator)."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 1:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(0)
    means = x[rng.integers(0, len(x), (BOOTSTRAP_RESAMPLES, len(x)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def summarise(values: Sequence[float]) -> dict[str, Any]:
    """mean, std (sample, ddof=1; 0 for one seed), min, max, ci95, n and the values."""
    x = [float(v) for v in values]
    mean = sum(x) / len(x)
    std = math.sqrt(sum((v - mean) ** 2 for v in x) / (len(x) - 1)) if len(x) > 1 else 0.0
    return {
        "mean": mean,
        "std": std,
        "min": min(x),
        "max": max(x),
        "ci95": list(bootstrap_interval(x)),
        "n": len(x),
        "values": x,
    }


def aggregate(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The aggregate.json of finished seeds' result.json contents (same experiment and scale)."""
    first = results[0]
    names = [m for m in first["metrics"] if all(m in r["metrics"] for r in results)]
    return {
        "experiment": first["experiment"],
        "title": first.get("title", ""),
        "paper_title": first.get("paper_title", ""),
        "scale": first["scale"],
        "seeds": [r["seed"] for r in results],
        "config": first["config"],
        "metrics": {m: summarise([r["metrics"][m] for r in results]) for m in names},
        "paper": first.get("paper", {}),
        "data": first.get("data", {}),
        "notes": [f"seed {r['seed']}: {note}" for r in results for note in r.get("notes", [])],
        "wall_seconds": sum(r["wall_seconds"] for r in results),
        "peak_memory_mb": max(r["peak_memory_mb"] for r in results),
        "machine": first.get("machine"),
        "versions": first.get("versions"),
        "git_commit": first.get("git_commit"),
        "finished_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def seeds_label(seeds: Sequence[int]) -> str:
    """``0-4`` for consecutive seeds, else ``3_7_9``: the folder names' part for the seeds."""
    if list(seeds) == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return "_".join(map(str, seeds))


def default_seeds_dir(root: Path, name: str, seeds: Sequence[int]) -> Path:
    label = seeds_label(seeds)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return root / name / f"{stamp}-seeds{label}"


def run_seeds(
    exp: Experiment,
    seeds: Sequence[int],
    *,
    scale: str = "quick",
    overrides: Mapping[str, str] | None = None,
    out: Path | None = None,
    runs_root: Path = Path("runs"),
    device: str = "cpu",
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run ``exp`` once per seed into ``out/s<seed>/`` and write ``out/aggregate.json``."""
    exp.make_config(scale, overrides)  # a bad --set fails before any folder is made
    out = Path(out) if out is not None else default_seeds_dir(runs_root, exp.name, seeds)
    if (out / SEEDS_FILE).exists():
        raise UserError(f"{out} already holds a multi-seed run; --resume it or choose another")
    out.mkdir(parents=True, exist_ok=True)
    plan = {
        "experiment": exp.name,
        "scale": scale,
        "seeds": list(seeds),
        "overrides": dict(overrides or {}),
        "device": device,
    }
    write_json(out / SEEDS_FILE, plan)
    return _finish_seeds(exp, plan, out, say)


def resume_seeds(folder: Path, device: str | None = None, say: Callable = print) -> dict[str, Any]:
    """Finish an interrupted multi-seed run: keep finished seeds, resume the interrupted one."""
    from creditlab import registry

    plan = read_json(Path(folder) / SEEDS_FILE)
    if device:
        plan["device"] = device
    return _finish_seeds(registry.get(plan["experiment"]), plan, Path(folder), say)


def _finish_seeds(
    exp: Experiment, plan: Mapping[str, Any], out: Path, say: Callable[[str], None]
) -> dict[str, Any]:
    results = []
    for seed in plan["seeds"]:
        folder = out / f"s{seed}"
        if (folder / RESULT_FILE).exists():
            say(f"seed {seed}: finished before, kept ({folder})")
            results.append(read_json(folder / RESULT_FILE))
            continue
        if (folder / CHECKPOINT_FILE).exists():
            say(f"seed {seed}: resuming from its checkpoint ({folder})")
            results.append(runner.resume(folder, device=plan["device"]))
            continue
        say(f"seed {seed}: running -> {folder}")
        results.append(
            runner.run(
                exp,
                scale=plan["scale"],
                seed=seed,
                overrides=plan["overrides"],
                out=folder,
                device=plan["device"],
            )
        )
    summary = aggregate(results)
    metrics_files = [out / f"s{seed}" / METRICS_FILE for seed in plan["seeds"]]
    plot_learning_curves(metrics_files, out / "plots", title=exp.name)
    write_json(out / AGGREGATE_FILE, summary)
    return read_json(out / AGGREGATE_FILE)
