"""Spike-train distances and plots shared by the spike-time methods (NormAD): the van Rossum
distance, a coincidence accuracy with a tolerance window, and a raster of desired against
produced spikes.

Trains are binned: ``(..., time)`` tensors of spike counts, step ``dt`` (any unit, the same as
``tau`` and ``window``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch


def van_rossum_distance(a: torch.Tensor, b: torch.Tensor, tau: float, dt: float) -> torch.Tensor:
    r"""D(a, b) = sqrt((1 / tau) * integral over t >= 0 of (f_a(t) - f_b(t))^2 dt), f the train
    filtered by exp(-t / tau) (van Rossum 2001), for binned trains (..., time) with spikes at the
    bins' starts. Exact for such trains: between bins f decays, so each bin contributes
    f_n^2 tau / 2 (1 - exp(-2 dt / tau)), and after the last bin f_N^2 tau / 2.

    >>> a = torch.zeros(100); a[10] = 1
    >>> round(float(van_rossum_distance(a, torch.zeros(100), tau=5.0, dt=1.0)) ** 2, 12)  # 1/2
    0.5
    """
    diff = (a - b).to(torch.float64)
    steps = diff.shape[-1]
    decay = math.exp(-dt / tau)
    lag = torch.arange(steps, dtype=torch.float64, device=diff.device)
    lower = lag[:, None] - lag[None, :]
    matrix = torch.where(lower >= 0, decay ** lower.clamp(min=0), torch.zeros_like(lower))
    f = diff @ matrix.T  # f_n = sum over m <= n of decay^(n - m) x_m
    inside = (f[..., :-1] ** 2).sum(-1) * (tau / 2) * (1 - decay**2)
    last = f[..., -1] ** 2 * (tau / 2)
    return torch.sqrt((inside + last) / tau)


def coincidence_accuracy(
    desired: torch.Tensor, produced: torch.Tensor, window: int
) -> torch.Tensor:
    """matched / (desired + produced - matched) per train of (..., time): a desired spike is
    matched by at most one produced spike at most ``window`` bins away (greedy in time, nearest
    first), so unmatched produced spikes count against it; 1 when both trains are empty.

    >>> d = torch.zeros(50); d[[10, 30]] = 1
    >>> p = torch.zeros(50); p[[12, 41, 45]] = 1
    >>> float(coincidence_accuracy(d, p, window=2))  # 1 matched of 2 desired + 2 extra
    0.25
    """
    des = desired.detach().cpu().reshape(-1, desired.shape[-1]).numpy()
    pro = produced.detach().cpu().reshape(-1, produced.shape[-1]).numpy()
    out = np.empty(len(des))
    for n, (d_row, p_row) in enumerate(zip(des, pro, strict=True)):
        d_times, p_times = np.flatnonzero(d_row), list(np.flatnonzero(p_row))
        matched = 0
        for t in d_times:
            if p_times:
                gaps = np.abs(np.asarray(p_times) - t)
                best = int(gaps.argmin())
                if gaps[best] <= window:
                    matched += 1
                    p_times.pop(best)
        total = len(d_times) + len(np.flatnonzero(p_row)) - matched
        out[n] = 1.0 if total == 0 else matched / total
    return torch.from_numpy(out).reshape(desired.shape[:-1])


def plot_raster(
    path: Path, desired: torch.Tensor, produced: torch.Tensor, dt: float, title: str = ""
) -> Path:
    """Raster of desired (rows of ``desired`` (rows, time)) against produced spikes: one row a
    train, desired as tall grey bars, produced as black ticks; x in units of ``dt`` * steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    desired, produced = desired.detach().cpu(), produced.detach().cpu()
    rows = desired.shape[0]
    fig, ax = plt.subplots(figsize=(7, 0.4 * rows + 1.2))
    for r in range(rows):
        d = (desired[r].nonzero().flatten() * dt).tolist()
        p = (produced[r].nonzero().flatten() * dt).tolist()
        ax.vlines(d, r - 0.4, r + 0.4, color="0.6", lw=3, label="desired" if r == 0 else None)
        ax.vlines(p, r - 0.25, r + 0.25, color="k", lw=1, label="produced" if r == 0 else None)
    ax.set_xlabel("time")
    ax.set_ylabel("train")
    ax.set_ylim(-0.6, rows - 0.4)
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
