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
Tuning is a sweep (`creditlab.sweep`) over the tuning seeds: the same trials, backends
(``--backend local|ray``), retries and resume. An interrupted tuning run resumes with the same
command plus ``--out FOLDER``: finished trials are kept, interrupted ones resume from their
checkpoints.

The seeds 0-99 are refused: they are for reporting (`creditlab.seeds.REPORTING_SEEDS`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from creditlab import seeds as seeds_
from creditlab.errors import UserError
from creditlab.registry import Experiment
from creditlab.rundir import TUNE_FILE
from creditlab.sweep import sweep


def check_tuning_seeds(chosen: Sequence[int]) -> None:
    """Refuse reporting seeds (below `creditlab.seeds.TUNING_SEEDS`) in one line."""
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
    **options: Any,
) -> dict[str, Any]:
    """Sweep ``grid`` over tuning ``seeds`` into a tuning folder (``tune.json``, never
    reported) and return the table with the best point per metric; ``options`` are
    :func:`creditlab.sweep.sweep`'s (scale, overrides, minimize, out, backend, ...)."""
    check_tuning_seeds(seeds)
    if not metrics:
        raise UserError("creditlab tune needs --metric NAME (the result metric to choose by)")
    if not grid:
        raise UserError("creditlab tune needs at least one --grid key=v1,v2,...")
    return sweep(
        exp, grid, seeds, metrics=metrics, plan_file=TUNE_FILE, folder_suffix="tune", **options
    )
