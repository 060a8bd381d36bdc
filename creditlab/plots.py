"""Figures as PNG files: learning curves from a run's ``metrics.jsonl``, and a line-plot helper.

Everything draws on a bare :class:`matplotlib.figure.Figure` (the Agg canvas), never through
``pyplot``: no window opens and no global backend is switched under the caller.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from creditlab.rundir import is_number, read_metrics

DPI = 110
PANEL_SIZE = (4.8, 3.4)  # inches per panel
MAX_COLUMNS = 3
MARKER_BELOW = 40  # series with fewer points get a marker on every point
NOT_SERIES = {"step", "epoch"}


def metric_series(records: list[dict]) -> dict[str, tuple[list[float], list[float]]]:
    """Metric name -> (steps, values), from records that carry an int ``step``."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    for record in records:
        step = record.get("step")
        if not is_number(step):
            continue
        for name, value in record.items():
            if name not in NOT_SERIES and is_number(value):
                xs, ys = series.setdefault(name, ([], []))
                xs.append(step)
                ys.append(float(value))
    return series


def _panel(name: str) -> str:
    """The panel a metric is drawn on: accuracies share one, losses/errors another."""
    lowered = name.lower()
    if "accuracy" in lowered or lowered.endswith("_acc"):
        return "accuracy"
    if any(word in lowered for word in ("loss", "error", "mse", "nll")):
        return "loss"
    return name


def _spans_decades(values: Sequence[float]) -> bool:
    """True when all finite values are positive and span more than one decade."""
    finite = [v for v in values if math.isfinite(v)]
    return bool(finite) and min(finite) > 0 and max(finite) / min(finite) > 10


def draw_lines(
    ax: Axes,
    series: dict[str, tuple[Sequence, Sequence]],
    bands: dict[str, Sequence[float]] | None = None,
) -> None:
    """Lines, each with a shaded band of half-width ``bands[label]`` where given (the std
    over seeds)."""
    for label, (xs, ys) in series.items():
        marker = "o" if len(xs) < MARKER_BELOW else None
        (line,) = ax.plot(xs, ys, label=label, marker=marker, markersize=3, linewidth=1.4)
        if bands and label in bands:
            low = [y - s for y, s in zip(ys, bands[label], strict=True)]
            high = [y + s for y, s in zip(ys, bands[label], strict=True)]
            ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)


def mean_and_std(
    runs: list[dict[str, tuple[list[float], list[float]]]],
) -> tuple[dict[str, tuple[list[float], list[float]]], dict[str, list[float]]]:
    """Per metric, the mean and std over runs at the steps every run logged it."""
    means, stds = {}, {}
    for name in [n for n in runs[0] if all(n in run for run in runs)]:
        by_step = [dict(zip(*run[name], strict=True)) for run in runs]
        steps = sorted(set.intersection(*(set(values) for values in by_step)))
        if not steps:
            continue
        values = [[values[s] for values in by_step] for s in steps]
        means[name] = (steps, [sum(v) / len(v) for v in values])
        stds[name] = [
            math.sqrt(sum((x - m) ** 2 for x in v) / max(1, len(v) - 1))
            for v, m in zip(values, means[name][1], strict=True)
        ]
    return means, stds


def finish_axis(ax: Axes, *, xlabel: str, ylabel: str, title: str, logy: bool) -> None:
    """Labels, grid, legend and scale: the same look on every axis creditlab draws."""
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.35)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, frameon=False)


def save_figure(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def plot_learning_curves(
    metrics_jsonl: Path | Sequence[Path], out_dir: Path, title: str = ""
) -> list[Path]:
    """Draw every numeric metric in ``metrics_jsonl`` against ``step`` as one multi-panel PNG.

    Accuracies share a panel with the y-axis fixed to [0, 1]; losses and errors share a panel,
    on a log axis when they are positive and span more than a decade; every other metric gets a
    small panel of its own. Given several files (one per seed), each line is the mean over them
    with a band of one standard deviation, at the steps all of them logged. Returns the written
    paths: ``[out_dir / "learning_curves.png"]``, or ``[]`` when there is no numeric metric.
    """
    paths = [metrics_jsonl] if isinstance(metrics_jsonl, str | Path) else list(metrics_jsonl)
    runs = [metric_series(read_metrics(path)) for path in paths]
    if len(runs) == 1:
        merged, bands = runs[0], {}
    else:
        merged, bands = mean_and_std(runs) if runs else ({}, {})
    grouped: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    for name, xy in merged.items():
        grouped.setdefault(_panel(name), {})[name] = xy
    if not grouped:
        return []
    order = sorted(grouped, key=lambda p: (p != "accuracy", p != "loss", p))
    ncols = min(MAX_COLUMNS, len(order))
    nrows = math.ceil(len(order) / ncols)
    fig = Figure(figsize=(PANEL_SIZE[0] * ncols, PANEL_SIZE[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, panel in zip(axes, order, strict=False):
        series = grouped[panel]
        draw_lines(ax, series, bands)
        values = [v for _, ys in series.values() for v in ys]
        if panel == "accuracy" and all(0 <= v <= 1 for v in values if math.isfinite(v)):
            ax.set_ylim(-0.02, 1.02)
        single = panel not in ("accuracy", "loss")
        finish_axis(
            ax,
            xlabel="step",
            ylabel=panel,
            title=panel if single else f"{panel} ({len(series)} series)",
            logy=panel == "loss" and _spans_decades(values),
        )
        if single and ax.get_legend():
            ax.get_legend().remove()  # the title already names the one series
    for ax in axes[len(order) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title if len(runs) == 1 else f"{title}: mean and std over {len(runs)} seeds")
    return [save_figure(fig, Path(out_dir) / "learning_curves.png")]


def line_plot(
    path: Path | str,
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logy: bool = False,
    hlines: dict[str, float] | None = None,
) -> Path:
    """Draw labelled lines (``label -> (xs, ys)``) on one axis and save them as a PNG at ``path``.

    ``hlines`` adds labelled horizontal reference lines, e.g. ``{"paper": 0.982}``.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "fig.png"
    >>> line_plot(out, {"theory": ([0, 1, 2], [1.0, 0.5, 0.25])}, xlabel="t", ylabel="p",
    ...           hlines={"paper": 0.3}).read_bytes()[:4]
    b'\\x89PNG'
    """
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.subplots()
    draw_lines(ax, series)
    for i, (label, value) in enumerate((hlines or {}).items()):
        ax.axhline(
            value,
            linestyle="--",
            linewidth=1.1,
            color=f"C{(len(series) + i) % 10}",
            label=f"{label} ({value:.4g})",
        )
    finish_axis(ax, xlabel=xlabel, ylabel=ylabel, title=title, logy=logy)
    return save_figure(fig, Path(path))
