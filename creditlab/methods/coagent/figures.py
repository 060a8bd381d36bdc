"""The Four Rooms figures of Bacon et al. (2017) that a line plot cannot draw: steps to goal on
either side of the goal switch (two panels) and values on the Four Rooms map.

They draw with the shared look of :mod:`creditlab.plots` (its line drawing, axis
finish and saving), on a bare :class:`matplotlib.figure.Figure`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from creditlab.methods.coagent.four_rooms import CELLS, WALLS
from creditlab.plots import draw_lines, finish_axis, save_figure

Series = Mapping[str, tuple[Sequence[float], Sequence[float]]]


def before_and_after(
    path: Path, before: Series, after: Series, *, ylabel: str, title: str, logy: bool = False
) -> Path:
    """Two panels side by side: episodes before the goal switch, and episodes after it."""
    fig = Figure(figsize=(10.0, 4.0), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    draw_lines(left, dict(before))
    finish_axis(left, xlabel="episode", ylabel=ylabel, title="before the goal moves", logy=logy)
    draw_lines(right, dict(after))
    finish_axis(right, xlabel="episodes since the goal moved", ylabel="", title="after", logy=logy)
    if right.get_legend() is not None:  # one legend, on the left
        right.get_legend().remove()
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def on_the_map(
    path: Path, panels: Mapping[str, np.ndarray], *, label: str, title: str, goal: int
) -> Path:
    """One Four Rooms map per panel, each open cell coloured by its value (cells without a
    value, NaN, are left blank); walls black, the goal marked ``G``."""
    fig = Figure(figsize=(3.4 * len(panels) + 0.6, 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    finite = [v[np.isfinite(v)] for v in panels.values()]
    top = max([float(v.max()) for v in finite if v.size] + [1e-9])
    image = None
    for ax, (name, values) in zip(axes, panels.items(), strict=True):
        grid = np.full(WALLS.shape, np.nan)
        grid[tuple(CELLS.T)] = values
        ax.imshow(np.where(WALLS, 0.0, np.nan), cmap="gray", vmin=0, vmax=1)
        image = ax.imshow(grid, cmap="viridis", vmin=0.0, vmax=top)
        row, col = CELLS[goal]
        ax.text(col, row, "G", ha="center", va="center", color="red", fontsize=9)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if image is not None:
        fig.colorbar(image, ax=list(axes), label=label, shrink=0.85)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
