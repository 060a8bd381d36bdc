"""The comparison's figures: every rule's test accuracy on one axis (mean over seeds, a band
of one std), and the cosine of each rule's update with backprop's over training, per layer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from creditlab.plots import PANEL_SIZE, finish_axis, mean_and_std, metric_series, save_figure
from creditlab.rundir import METRICS_FILE, read_json, read_metrics


def _runs(folder: Path) -> list[dict]:
    plan = read_json(folder / "seeds.json") or {"seeds": []}
    return [metric_series(read_metrics(folder / f"s{s}" / METRICS_FILE)) for s in plan["seeds"]]


def draw(folder: Path, rules: Sequence[str], title: str = "") -> list[Path]:
    """Write ``plots/learning_curves.png`` and ``plots/alignment.png`` into ``folder``."""
    folder = Path(folder)
    merged = {}
    for name in rules:
        runs = _runs(folder / name)
        merged[name] = mean_and_std(runs) if runs else ({}, {})
    paths = []
    fig = Figure(figsize=PANEL_SIZE)
    ax = fig.add_subplot()
    metric = "test_accuracy"
    for name, (means, stds) in merged.items():
        metric = next((m for m in ("test_accuracy", "test_mse") if m in means), metric)
        if metric in means:
            xs, ys = means[metric]
            (line,) = ax.plot(xs, ys, label=name, marker="o", markersize=3)
            sd = stds[metric]
            low = [y - s for y, s in zip(ys, sd, strict=True)]
            high = [y + s for y, s in zip(ys, sd, strict=True)]
            ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    label = metric.replace("_", " ").replace("mse", "MSE")
    finish_axis(ax, xlabel="step", ylabel=label, title=title, logy=metric == "test_mse")
    fig.tight_layout()
    paths.append(save_figure(fig, folder / "plots" / "learning_curves.png"))

    panels = sorted({k for means, _ in merged.values() for k in means if k.startswith("alignment")})
    if panels:
        fig = Figure(figsize=(PANEL_SIZE[0] * len(panels), PANEL_SIZE[1]))
        for i, panel in enumerate(panels):
            ax = fig.add_subplot(1, len(panels), i + 1)
            for name, (means, _) in merged.items():
                if panel in means:
                    ax.plot(*means[panel], label=name)
            label = panel.replace("alignment_cosine", "cos(update, -grad)")
            finish_axis(ax, xlabel="step", ylabel="cosine", title=label, logy=False)
        fig.tight_layout()
        paths.append(save_figure(fig, folder / "plots" / "alignment.png"))
    return paths
