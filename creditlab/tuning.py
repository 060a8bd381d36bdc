"""Choosing a setting on tuning seeds: a small grid, each point run over seeds >= 100.

``creditlab tune coagent.cartpole --grid lr=2.5e-3,5e-3,1e-2 --metric eval_return`` runs
every grid point with the tuning seeds (`creditlab.seeds.TUNING_SEEDS` unless ``--seeds``
names others, all >= 100) and writes::

    runs/<experiment>/<UTC timestamp>-tune/
        tune.json           the plan (grid, seeds, metrics) and, per point, mean/std/n
        <key=value,...>/    one multi-seed folder per grid point (seeds.json, s100/, ...)

Several ``--grid`` keys form their Cartesian product; with ``--zip`` they are paired by
position instead (useful when one run trains two independent agents, each with its own step
size: ``--zip --grid lr=... --grid lr_bp=... --metric eval_return --metric eval_return_bp``
tunes both in one pass, since neither agent's result depends on the other's setting).
For each metric the best point (largest mean, or smallest with ``--minimize``) is printed.
An interrupted tuning run resumes with the same command plus ``--out FOLDER``: finished
points and seeds are kept.

The seeds 0-99 are refused: they are for reporting (`creditlab.seeds.REPORTING_SEEDS`).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from creditlab import seeds as seeds_
from creditlab.errors import UserError
from creditlab.registry import Experiment
from creditlab.rundir import AGGREGATE_FILE, TUNE_FILE, is_seeds_folder, read_json, write_json


def parse_grid(items: Sequence[str], zipped: bool = False) -> list[dict[str, str]]:
    """``["lr=1,2", "h=8,16"]`` -> the product (or, zipped, the pairs) as override dicts."""
    axes: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        choices = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not choices:
            raise UserError(f"--grid expects key=v1,v2,..., got {item!r}")
        if key.strip() in axes:
            raise UserError(f"--grid {key.strip()} is given twice")
        axes[key.strip()] = choices
    if not axes:
        raise UserError("creditlab tune needs at least one --grid key=v1,v2,...")
    keys = list(axes)
    if zipped:
        lengths = {len(v) for v in axes.values()}
        if len(lengths) != 1:
            raise UserError("--zip needs every --grid key to list the same number of values")
        rows = zip(*axes.values(), strict=True)
    else:
        rows = itertools.product(*axes.values())
    return [dict(zip(keys, row, strict=True)) for row in rows]


def point_label(point: Mapping[str, str]) -> str:
    """The folder name of a grid point: ``lr=0.005,lr_bp=0.01``."""
    return ",".join(f"{k}={v}" for k, v in point.items())


def check_tuning_seeds(chosen: Sequence[int]) -> None:
    floor = min(seeds_.TUNING_SEEDS)
    reserved = sorted(s for s in chosen if s < floor)
    if reserved:
        named = ", ".join(map(str, reserved[:5])) + (", ..." if len(reserved) > 5 else "")
        raise UserError(
            f"tuning seeds must be >= {floor} ({named}: reporting seeds); "
            f"use e.g. --seeds {floor}-{floor + 2}"
        )


def tune(
    exp: Experiment,
    grid: Sequence[Mapping[str, str]],
    metrics: Sequence[str],
    *,
    seeds: Sequence[int] = seeds_.TUNING_SEEDS,
    scale: str = "quick",
    overrides: Mapping[str, str] | None = None,
    minimize: bool = False,
    out: Path | None = None,
    runs_root: Path = Path("runs"),
    device: str = "cpu",
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every grid point over ``seeds``; return (and write) the table and the best points."""
    seeds = list(seeds)
    check_tuning_seeds(seeds)
    if not metrics:
        raise UserError("creditlab tune needs --metric NAME (the result metric to choose by)")
    fixed = dict(overrides or {})
    for point in grid:
        clash = set(point) & set(fixed)
        if clash:
            raise UserError(f"{', '.join(sorted(clash))}: given both in --grid and --set")
        exp.make_config(scale, fixed)  # every setting parses, up front, naming its flag
        exp.make_config(scale, {**fixed, **point}, flag="--grid")
    if out is None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        out = runs_root / exp.name / f"{stamp}-tune"
    out = Path(out)
    plan = {
        "experiment": exp.name,
        "scale": scale,
        "seeds": seeds,
        "overrides": fixed,
        "grid": [dict(p) for p in grid],
        "metrics": list(metrics),
        "minimize": minimize,
    }
    saved = out / TUNE_FILE
    if saved.exists():
        before = read_json(saved) or {}
        if {k: before.get(k) for k in plan} != plan:
            raise UserError(f"{out} holds a different tuning run; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    write_json(saved, plan)

    points = []
    for i, point in enumerate(grid, 1):
        folder = out / point_label(point)
        say(f"[{i}/{len(grid)}] {point_label(point)}")
        if (folder / AGGREGATE_FILE).exists():
            summary = read_json(folder / AGGREGATE_FILE)
        elif is_seeds_folder(folder):
            summary = seeds_.resume_seeds(folder, say=say)
        else:
            summary = seeds_.run_seeds(
                exp,
                seeds,
                scale=scale,
                overrides={**fixed, **point},
                out=folder,
                device=device,
                say=say,
            )
        missing = [m for m in metrics if m not in summary["metrics"]]
        if missing:
            raise UserError(
                f"{exp.name} reports no metric {', '.join(missing)}; it reports "
                + ", ".join(summary["metrics"])
            )
        points.append(
            {
                "point": dict(point),
                "metrics": {
                    m: {k: summary["metrics"][m][k] for k in ("mean", "std", "n")} for m in metrics
                },
            }
        )
    choose = min if minimize else max
    best = {m: choose(points, key=lambda p, m=m: p["metrics"][m]["mean"])["point"] for m in metrics}
    table = {**plan, "points": points, "best": best}
    write_json(saved, table)
    return table


def format_table(table: Mapping[str, Any]) -> list[str]:
    """The lines `creditlab tune` prints: one row per grid point, then the best per metric."""
    metrics = table["metrics"]
    labels = [point_label(p["point"]) for p in table["points"]]
    width = max(len("setting"), *(len(label) for label in labels))
    lines = [
        f"{table['experiment']} ({table['scale']}), tuning seeds {table['seeds']}",
        f"  {'setting':{width}s}  " + "  ".join(f"{m:>24s}" for m in metrics),
    ]
    for label, p in zip(labels, table["points"], strict=True):
        cells = [f"{p['metrics'][m]['mean']:.4g} +- {p['metrics'][m]['std']:.3g}" for m in metrics]
        lines.append(f"  {label:{width}s}  " + "  ".join(f"{c:>24s}" for c in cells))
    sense = "smallest" if table["minimize"] else "largest"
    for m in metrics:
        lines.append(f"  best {m} ({sense} mean): {point_label(table['best'][m])}")
    return lines
