"""The figures of both experiments: Pr[y > 0] per layer (relu.layers) and convergence time
against Pr[y > 0], theory and simulation (relu.single_unit)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from creditlab.methods.relu.theory import ConvergenceTimes, linearised_convergence_time
from creditlab.plots import DPI, line_plot


def plot_layers(
    path: Path, trained: dict[str, np.ndarray], init: dict[str, np.ndarray], protocol: str
) -> None:
    """Pr[y > 0] per layer, plain and residual: the mean over seeds after training with a band
    from the lowest to the highest seed, and the mean at init (dashed); ``protocol`` names the
    data in the title."""
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    for i, net in enumerate(("plain", "residual")):
        values = trained[net]
        layers = np.arange(1, values.shape[1] + 1)
        color = f"C{i}"
        ax.plot(layers, values.mean(0), "o-", color=color, label=f"{net}, trained (mean)")
        ax.fill_between(
            layers, values.min(0), values.max(0), color=color, alpha=0.2, label=f"{net}, seed range"
        )
        ax.plot(layers, init[net].mean(0), "--", color=color, alpha=0.7, label=f"{net}, init")
    ax.axhline(0.5, linestyle=":", color="gray", label="Pr = 0.5")
    ax.set_xlabel("ReLU layer (input -> output)")
    ax.set_ylabel("Pr[y > 0] over the test set")
    n_seeds = len(trained["plain"])
    ax.set_title(
        f"{protocol}, {n_seeds} seeds: activation probability per layer",
        fontsize=10,
    )
    ax.grid(True, alpha=0.35)
    ax.legend(fontsize=8, frameon=False)
    fig.savefig(path, dpi=DPI)


def plot_layer_training(plots: Path, seed_result: dict[str, Any]) -> None:
    """Pr[y > 0] of up to 8 layers over the epochs of one seed's training, one figure per net
    (``activation_probability_training[_residual].png`` in ``plots``), from ``seed_result``:
    one seed's record (its ``seed`` and per-epoch ``history``); none with fewer than 3 epochs."""
    for net, suffix in (("plain", ""), ("residual", "_residual")):
        history = seed_result["history"][net]
        if len(history) < 3:  # a curve over epochs needs a few of them
            continue
        depth = len(history[0])
        curve = list(range(1, len(history) + 1))
        per_layer = list(zip(*history, strict=True))
        shown = sorted({round(i) for i in np.linspace(1, depth, min(depth, 8))})
        line_plot(
            plots / f"activation_probability_training{suffix}.png",
            {f"layer {k}": (curve, per_layer[k - 1]) for k in shown},
            xlabel="epoch",
            ylabel="Pr[y > 0] over the epoch's training batches",
            title=f"{net} net, seed {seed_result['seed']}: activation probability during training",
        )


def plot_convergence(
    path: Path,
    times: ConvergenceTimes,
    *,
    mu: float,
    tolerance: float,
    runs: int,
    dim: int,
    far_target_probability: float,
) -> None:
    """Convergence time against Pr[y > 0], log-log, theory lines and simulated points: near the
    optimum (Eq. 5) on the left, from far initialisations (Eq. 6, the teacher's Pr[y* > 0] =
    ``far_target_probability``) on the right; ``runs`` simulated runs per init of dimension
    ``dim``, step size ``mu``, converged at ``tolerance``."""
    p, predicted_far = times.p, times.predicted_far
    fig = Figure(figsize=(10.0, 4.0), layout="constrained")
    near, far = fig.subplots(1, 2)
    grid = torch.logspace(math.log10(p.min()), math.log10(p.max()), 100, dtype=p.dtype)
    near.plot(grid, linearised_convergence_time(grid, mu, tolerance), label="theory (5)")
    near.plot(p, times.sim_near, "o", label=f"simulated mean of {runs} runs")
    near.plot(p, times.median_near, "x", label="simulated median run")
    near.set_title(f"near the optimum (Pr[y*>0] = p), mu = {mu}, d = {dim}", fontsize=10)
    far.plot(p, predicted_far, "-", label="theory: iterated expected update (6)")
    far.plot(p, times.sim_far, "o", label=f"simulated mean of {runs} runs")
    far.plot(p, times.median_far, "x", label="simulated median run")
    below = (p < far_target_probability).nonzero().flatten()
    if len(below):  # a 1/p0 law through the most active init that starts below the teacher
        i = below[p[below].argmax()]
        reference = predicted_far[i] * p[i] / p[below]
        far.plot(p[below], reference, ":", color="gray", label="1/p0, for reference")
    far.set_title(f"far init (Pr[y*>0] = {far_target_probability})", fontsize=10)
    for ax, xlabel in ((near, "Pr[y > 0] = p"), (far, "initial Pr[y > 0] = p0")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"steps to shrink the error {1 / tolerance:g}x")
        ax.grid(True, which="major", alpha=0.35)
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle("single ReLU unit: convergence time vs activation probability")
    fig.savefig(path, dpi=DPI)
