"""Many trials of one experiment, spread over a process pool or a Ray cluster, in one table.

``creditlab sweep bp.digits --grid lr=0.003,0.1 --seeds 5 --backend ray`` runs every
(setting, seed) pair as a trial (:mod:`creditlab.sweep.trial`) on a backend
(:mod:`creditlab.sweep.executors`) and writes::

    runs/<experiment>/<UTC timestamp>-sweep/
        sweep.json          the plan (grid, seeds, metrics, overrides) and, once gathered,
                            per setting mean/std/interval/n and the best setting per metric
        <key=value,...>/    one multi-seed folder per setting: seeds.json, s<seed>/ (an
                            ordinary run folder each), aggregate.json once every seed finished

A trial's folder is named from its setting and seed alone, so the same command again (with
``--out FOLDER``) finds its work: finished trials are skipped, interrupted ones (a checkpoint:
Ctrl-C, a worker killed with kill -9, a node lost) resume from it, the rest run. A trial that
fails is retried (``--retries``, default 2) and then reported, and the sweep goes on. The same
seed gives the same metrics whichever backend ran it: every trial runs in a fresh worker with
one torch thread (`creditlab.sweep.trial.TRIAL_THREADS`).

`creditlab.tuning` is a sweep over tuning seeds (its plan file is ``tune.json``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from creditlab import registry, runner
from creditlab import seeds as seeds_
from creditlab.errors import UserError
from creditlab.registry import Experiment
from creditlab.rundir import (
    AGGREGATE_FILE,
    RESULT_FILE,
    SEEDS_FILE,
    SWEEP_FILE,
    read_json,
    write_json,
)
from creditlab.sweep.executors import make_executor
from creditlab.sweep.trial import Trial, point_label, run_trial, trial_name

DEFAULT_RETRIES = 2


def parse_grid(items: Sequence[str], zipped: bool = False) -> list[dict[str, str]]:
    """``["lr=1,2", "h=8,16"]`` -> the product (or, zipped, the pairs) as override dicts; no
    items: the one setting of the defaults (``[{}]``).

    >>> parse_grid(["lr=1,2", "h=8"])
    [{'lr': '1', 'h': '8'}, {'lr': '2', 'h': '8'}]
    """
    axes: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        choices = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key or not choices:
            raise UserError(f"--grid expects key=v1,v2,..., got {item!r}")
        if key in axes:
            raise UserError(f"--grid {key} is given twice")
        if any("/" in v for v in choices):  # a value names a folder
            raise UserError(f"--grid {item!r}: a value may not contain '/'")
        axes[key] = choices
    keys = list(axes)
    if zipped:
        if len({len(v) for v in axes.values()}) > 1:
            raise UserError("--zip needs every --grid key to list the same number of values")
        rows = zip(*axes.values(), strict=True)
    else:
        rows = itertools.product(*axes.values())
    return [dict(zip(keys, row, strict=True)) for row in rows]


def sweep(
    exp: Experiment,
    grid: Sequence[Mapping[str, str]],
    seeds: Sequence[int],
    *,
    metrics: Sequence[str] = (),
    minimize: bool = False,
    scale: str = "quick",
    overrides: Mapping[str, str] | None = None,
    out: Path | None = None,
    runs_root: Path = Path("runs"),
    device: str = "cpu",
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    retries: int = DEFAULT_RETRIES,
    tensorboard: bool = False,
    plan_file: str = SWEEP_FILE,
    folder_suffix: str = "sweep",
    say: Callable[[str], None] = print,
    trial_fn: Callable[[Trial], dict[str, Any]] = run_trial,
) -> dict[str, Any]:
    """Run every (setting, seed) trial on ``backend``, skipping finished ones; return (and
    write to ``out/plan_file``) the table: per setting, each metric's mean, std, 95%
    interval and n, and the best setting per metric. Everything a user can get wrong is
    refused before a trial starts: settings, device, metric names, a folder holding
    another plan, a backend that cannot start."""
    grid = [dict(p) for p in grid] or [{}]
    seeds = list(seeds)
    fixed = dict(overrides or {})
    if retries < 0:
        raise UserError(f"--retries {retries}: expected 0 or more")
    for point in grid:
        clash = set(point) & set(fixed)
        if clash:
            raise UserError(f"{', '.join(sorted(clash))}: given both in --grid and --set")
        exp.make_config(scale, fixed)  # every setting parses, up front, naming its flag
        exp.make_config(scale, {**fixed, **point}, flag="--grid")
    runner.resolve_device(device, exp)
    if out is None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        out = runs_root / exp.name / f"{stamp}-{folder_suffix}"
    out = Path(out).resolve()
    plan = {
        "experiment": exp.name,
        "scale": scale,
        "seeds": seeds,
        "overrides": fixed,
        "grid": grid,
        "metrics": list(metrics),
        "minimize": minimize,
    }
    saved = read_json(out / plan_file)
    if saved is not None and {k: saved.get(k) for k in plan} != plan:
        changed = ", ".join(k for k in plan if saved.get(k) != plan[k])
        raise UserError(f"{out} holds a sweep with other {changed}; choose another --out")

    trials = [
        Trial(
            exp.name,
            scale,
            seed,
            point,
            {**fixed, **point},
            device,
            str(out / trial_name(point, seed)),
            tensorboard,
        )
        for point in grid
        for seed in seeds
    ]
    finished = {
        t: read_json(Path(t.folder) / RESULT_FILE) for t in trials if t.state() == "finished"
    }
    _check_metrics(exp, metrics, scale, trials[0], next(iter(finished.values()), None))
    to_run = [t for t in trials if t not in finished]
    executor = make_executor(backend, workers, address) if to_run else None

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / plan_file, plan)
    for point in grid:
        folder = out / point_label(point)
        folder.mkdir(exist_ok=True)
        point_plan = {"experiment": exp.name, "scale": scale, "seeds": seeds, "device": device}
        write_json(folder / SEEDS_FILE, {**point_plan, "overrides": {**fixed, **point}})
    say(
        f"{exp.name} ({scale}): {len(trials)} trials, {len(finished)} finished before, "
        f"{len(to_run)} to run" + (f" on {backend}" if to_run else "") + f" -> {out}"
    )
    failed = _drive(executor, to_run, finished, retries, say, trial_fn) if executor else {}
    table = _gather(exp, plan, out, trials, finished, failed)
    write_json(out / plan_file, table)
    return table


def _check_metrics(
    exp: Experiment,
    metrics: Sequence[str],
    scale: str,
    first: Trial,
    result: Mapping[str, Any] | None,
) -> None:
    """Refuse metric names the experiment does not report, before any trial starts: checked
    on a finished trial's result if there is one, else on a smoke-scale run of the first
    setting in a temporary folder (seconds: the settings that the smoke scale sets itself,
    such as a budget of iterations, keep their smoke values there)."""
    if not metrics:
        return
    if result is None:
        with tempfile.TemporaryDirectory() as tmp, _quiet():
            result = runner.run(
                exp,
                scale="smoke",
                seed=first.seed,
                overrides=_structural(exp, scale, first.overrides),
                out=Path(tmp),
            )
    missing = [m for m in metrics if m not in result["metrics"]]
    if missing:
        raise UserError(
            f"{exp.name} reports no metric {', '.join(missing)}; it reports "
            + ", ".join(result["metrics"])
        )


def _structural(exp: Experiment, scale: str, overrides: Mapping[str, str]) -> dict[str, str]:
    """The overrides of fields on which ``scale`` and the smoke scale agree (the model, the
    methods, the options that name metrics); an override of a field the scales set
    differently (iterations, epochs, sizes) is a budget, and is left out."""
    smoke, chosen = exp.make_config("smoke"), exp.make_config(scale)
    return {k: v for k, v in overrides.items() if getattr(smoke, k) == getattr(chosen, k)}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No progress output while the metric names are checked."""
    before = os.environ.get("CREDITLAB_QUIET")
    os.environ["CREDITLAB_QUIET"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["CREDITLAB_QUIET"]
        else:
            os.environ["CREDITLAB_QUIET"] = before


def _drive(
    executor: Any,
    trials: Sequence[Trial],
    finished: dict[Trial, dict[str, Any]],
    retries: int,
    say: Callable[[str], None],
    trial_fn: Callable[[Trial], dict[str, Any]],
) -> dict[Trial, str]:
    """Submit every trial, retry failures up to ``retries`` times, and collect results into
    ``finished``; return the trials that failed for good, each with its last error."""
    attempts = dict.fromkeys(trials, 0)
    failed: dict[Trial, str] = {}
    try:
        for trial in trials:
            if trial.state() == "interrupted":
                say(f"  {trial.name}: resuming from its checkpoint")
            executor.submit(trial_fn, trial)
        running, done = len(trials), len(finished)
        total = done + len(trials)
        while running:
            trial, result, error = executor.next_finished()
            running -= 1
            if error is None:
                finished[trial], done = result, done + 1
                say(f"  [{done}/{total}] {trial.name}: finished")
                continue
            attempts[trial] += 1
            reason = _one_line(error)
            if attempts[trial] <= retries:
                say(f"  {trial.name}: failed ({reason}); retry {attempts[trial]} of {retries}")
                executor.submit(trial_fn, trial)
                running += 1
            else:
                failed[trial] = reason
                say(f"  {trial.name}: failed {attempts[trial]} times ({reason}); going on")
    finally:
        executor.close()
    return failed


def _one_line(error: BaseException) -> str:
    text = (str(error).strip().splitlines() or [""])[0]
    return text if isinstance(error, UserError) else f"{type(error).__name__}: {text}"


def _gather(
    exp: Experiment,
    plan: Mapping[str, Any],
    out: Path,
    trials: Sequence[Trial],
    finished: Mapping[Trial, dict[str, Any]],
    failed: Mapping[Trial, str],
) -> dict[str, Any]:
    """The table: per setting the summary of its finished seeds; a setting whose every seed
    finished also gets its aggregate.json (and learning-curve plot), as `creditlab run
    --seeds` writes it."""
    points, columns = [], list(plan["metrics"])
    for point in plan["grid"]:
        results = [finished[t] for t in trials if t.point == point and t in finished]
        folder = out / point_label(point)
        if len(results) == len(plan["seeds"]) and not (folder / AGGREGATE_FILE).exists():
            seeds_.resume_seeds(folder, say=lambda line: None)  # all kept: aggregates only
        if not columns and results:
            columns = [m for m in results[0]["metrics"] if not registry.is_timing_metric(m)]
        stats = {}
        for m in columns:
            values = [r["metrics"][m] for r in results if m in r["metrics"]]
            if values:
                summary = seeds_.summarise(values)
                stats[m] = {k: summary[k] for k in ("mean", "std", "ci95", "n")}
        points.append({"point": point, "seeds": [r["seed"] for r in results], "metrics": stats})
    choose = min if plan["minimize"] else max
    best = {}
    for m in plan["metrics"]:
        measured = [p for p in points if m in p["metrics"]]
        if measured:
            best[m] = choose(measured, key=lambda p, m=m: p["metrics"][m]["mean"])["point"]
    return {
        **plan,
        "columns": columns,
        "points": points,
        "best": best,
        "failed": {t.name: reason for t, reason in failed.items()},
    }


def format_table(table: Mapping[str, Any]) -> list[str]:
    """The lines `creditlab sweep` and `creditlab tune` print: one row per setting (each
    metric's mean +- std, 95% interval, n), the best setting per ``--metric``, failures."""
    columns = table["columns"]
    labels = [point_label(p["point"]) for p in table["points"]]
    width = max(len("setting"), *(len(label) for label in labels))
    lines = [
        f"{table['experiment']} ({table['scale']}), seeds {seeds_.seeds_label(table['seeds'])}",
        f"  {'setting':{width}s}  " + "  ".join(f"{m:>40s}" for m in columns),
    ]
    for label, p in zip(labels, table["points"], strict=True):
        cells = []
        for m in columns:
            s = p["metrics"].get(m)
            if s is None:
                cells.append("-")
                continue
            low, high = s["ci95"]
            cells.append(f"{s['mean']:.4g} +- {s['std']:.3g} [{low:.4g}, {high:.4g}] n={s['n']}")
        lines.append(f"  {label:{width}s}  " + "  ".join(f"{c:>40s}" for c in cells))
    sense = "smallest" if table["minimize"] else "largest"
    for m, point in table["best"].items():
        lines.append(f"  best {m} ({sense} mean): {point_label(point)}")
    for name, reason in table["failed"].items():
        lines.append(f"  FAILED {name}: {reason}")
    return lines
