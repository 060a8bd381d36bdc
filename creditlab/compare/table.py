"""The comparison table: one row per rule, from its multi-seed folder, in three forms.

Per rule: the task's headline metric (test accuracy; test MSE for the teacher-student
regression, where smaller is better) mean ± std and its 95% bootstrap interval over seeds
(:func:`creditlab.seeds.summarise`), wall time of one training step (the rule's
``train_step`` alone, mean over the run, then over seeds), peak resident memory of a run,
the cosine of the rule's update with the exact backprop gradient (overall and per weight
matrix, at the last alignment checkpoint, mean over seeds), the angle between feedback and
forward weights (FA, DFA), the probability that it beats backprop / FA (bootstrap over
seeds), and its locality: declared, and whether the property check agrees.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from creditlab.compare.locality import check_locality
from creditlab.compare.rules import Rule, get_rule
from creditlab.rundir import AGGREGATE_FILE, read_json
from creditlab.seeds import BOOTSTRAP_RESAMPLES, summarise

TIMING_COLUMNS = ("ms/step", "peak MB")


def p_beats(values: Sequence[float], reference: Sequence[float]) -> float:
    """Bootstrap probability that ``values``' mean exceeds ``reference``'s (seeds resampled
    independently, 10,000 times, fixed generator; a tie counts one half)."""
    a, b = np.asarray(values, dtype=float), np.asarray(reference, dtype=float)
    rng = np.random.default_rng(0)
    ma = a[rng.integers(0, len(a), (BOOTSTRAP_RESAMPLES, len(a)))].mean(1)
    mb = b[rng.integers(0, len(b), (BOOTSTRAP_RESAMPLES, len(b)))].mean(1)
    return float((ma > mb).mean() + 0.5 * (ma == mb).mean())


def locality_status(rule: Rule) -> str:
    """``checked``, ``VIOLATED`` or ``declared only``: the property check of
    :mod:`creditlab.compare.locality` on a small ReLU network built by the rule's adapter."""
    cfg = SimpleNamespace(
        hidden=(7, 6, 5), activation="relu", optimizer="sgd", lr=0.1, momentum=0.0,
        weight_decay=0.0,
    )  # fmt: skip
    ctx = SimpleNamespace(
        generator=lambda *key: torch.Generator().manual_seed(len(key)),
        device=torch.device("cpu"),
    )
    learner = rule.build(cfg, 8, 4, 1, ctx)
    if not hasattr(learner, "locality_probe"):
        return "declared only"
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 8, generator=generator), torch.randint(0, 4, (16,), generator=generator)
    return "VIOLATED" if check_locality(learner, rule.locality, x, y) else "checked"


def _layer_values(metrics: dict[str, Any], prefix: str) -> list[float]:
    keys = sorted(
        (k for k in metrics if re.fullmatch(rf"{prefix}_layer\d+", k)),
        key=lambda k: int(k.rsplit("layer", 1)[1]),
    )
    return [metrics[k]["mean"] for k in keys]


METRICS = (("test_accuracy", True), ("test_mse", False))
"""the task's headline metric, by what its runs report, and whether higher is better"""


def task_metric(metrics: dict[str, Any]) -> tuple[str, bool]:
    """``(name, higher_is_better)`` of the headline metric among a run's ``metrics``."""
    for name, higher in METRICS:
        if name in metrics:
            return name, higher
    raise KeyError(f"no headline metric ({', '.join(n for n, _ in METRICS)}) in {list(metrics)}")


def collect(folder: Path, rules: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of the comparison in ``folder`` (one multi-seed folder per rule)."""
    aggregates = {name: read_json(Path(folder) / name / AGGREGATE_FILE) for name in rules}
    metric, higher = task_metric(next(iter(aggregates.values()))["metrics"])
    sign = 1.0 if higher else -1.0  # "beats" is larger accuracy, smaller error
    values = {n: a["metrics"][metric]["values"] for n, a in aggregates.items()}
    rows = []
    for name, agg in aggregates.items():
        m = agg["metrics"]
        stats = summarise(values[name])
        rule = get_rule(name)
        rows.append(
            {
                "rule": name,
                "seeds": agg["seeds"],
                "metric": metric,
                "value": stats["mean"],
                "value_std": stats["std"],
                "value_ci95": stats["ci95"],
                "ms/step": 1000 * m["train_step_seconds"]["mean"],
                "peak MB": agg["peak_memory_mb"],
                "cosine": m["alignment_cosine"]["mean"] if "alignment_cosine" in m else None,
                "cosine_layers": _layer_values(m, "alignment_cosine"),
                "feedback_angle_layers": _layer_values(m, "feedback_angle"),
                "p_beats_bp": None if name == "bp" or "bp" not in values
                else p_beats([sign * v for v in values[name]], [sign * v for v in values["bp"]]),
                "p_beats_fa": None if name == "fa" or "fa" not in values
                else p_beats([sign * v for v in values[name]], [sign * v for v in values["fa"]]),
                "locality": rule.locality.describe(),
                "locality_check": locality_status(rule),
            }
        )  # fmt: skip
    return rows


def read_rows(folder: Path) -> list[dict[str, Any]]:
    """The rows a comparison folder's ``comparison.json`` holds."""
    return read_json(Path(folder) / "comparison.json")["rows"]


def _cells(row: dict[str, Any]) -> dict[str, str]:
    def num(value: float | None, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    if "metric" not in row:  # a comparison.json written before rows named their metric
        row = {**row, "metric": "test_accuracy", "value": row["test_accuracy"]}
        row |= {"value_std": row["test_accuracy_std"], "value_ci95": row["test_accuracy_ci95"]}
    low, high = row["value_ci95"]
    if row["metric"] == "test_accuracy":
        head, scale, spec = "test acc %", 100.0, ".2f"
    else:
        head, scale, spec = row["metric"].replace("_", " "), 1.0, ".4g"
    mean, std = scale * row["value"], scale * row["value_std"]
    return {
        "rule": row["rule"],
        "seeds": str(len(row["seeds"])),
        head: f"{mean:{spec}} ± {std:{spec}}",
        "95% CI": f"[{scale * low:{spec}}, {scale * high:{spec}}]",
        "ms/step": f"{row['ms/step']:.2f}",
        "peak MB": f"{row['peak MB']:.0f}",
        "cos(Δ,-∇)": num(row["cosine"], ".3f"),
        "cos per layer": "/".join(f"{c:.2f}" for c in row["cosine_layers"]) or "—",
        "B∠W °": "/".join(f"{a:.0f}" for a in row["feedback_angle_layers"]) or "—",
        "P(>bp)": num(row["p_beats_bp"], ".2f"),
        "P(>fa)": num(row["p_beats_fa"], ".2f"),
        "locality": row["locality"],
        "check": row["locality_check"],
    }


def _grid(rows: Sequence[dict[str, Any]], timing: bool) -> tuple[list[str], list[list[str]]]:
    cells = [_cells(r) for r in rows]
    header = [h for h in cells[0] if timing or h not in TIMING_COLUMNS] if cells else []
    return header, [[c[h] for h in header] for c in cells]


def terminal(rows: Sequence[dict[str, Any]], timing: bool = True) -> str:
    """Aligned plain text (``timing=False`` drops the machine-dependent columns)."""
    header, body = _grid(rows, timing)
    width = [max(len(x) for x in col) for col in zip(header, *body, strict=True)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(r, width, strict=True)) for r in [header, *body]]
    return "\n".join(line.rstrip() for line in lines)


def markdown(rows: Sequence[dict[str, Any]], timing: bool = True) -> str:
    header, body = _grid(rows, timing)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def html(rows: Sequence[dict[str, Any]], timing: bool = True) -> str:
    """An HTML fragment (one ``<table>``) to paste into a page or the report."""
    header, body = _grid(rows, timing)
    esc = html_lib.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    rows_html = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in body)
    return f'<table class="creditlab-compare"><tr>{head}</tr>{rows_html}</table>'
