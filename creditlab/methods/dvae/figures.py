"""The figures of dvae.bmnist: the validation curves, decoded prior samples, and the
posterior of a few test digits under each posterior family (with its structure metrics).

Drawn on a bare :class:`matplotlib.figure.Figure` like :mod:`creditlab.plots` (which has
no image-grid helper; image_grids and posterior_figure could move there if another method
needs them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from creditlab.methods.dvae.model import DVAE, posterior_structure
from creditlab.methods.dvae.training import spread_subset
from creditlab.plots import DPI, line_plot

LABELS = {
    "rbm_posterior": "RBM posterior",
    "rbm_uncoupled": "RBM posterior, J = 0",
    "factorial": "factorial",
    "directed": "directed",
}


def _tile(images: np.ndarray, columns: int) -> np.ndarray:
    """``(N, H, W)`` images as one ``(rows*H, columns*W)`` mosaic with 1-pixel gaps."""
    n, h, w = images.shape
    rows = math.ceil(n / columns)
    mosaic = np.ones((rows * (h + 1) - 1, columns * (w + 1) - 1))
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        mosaic[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = image
    return mosaic


def image_grids(path: Path, panels: Mapping[str, np.ndarray], title: str = "") -> Path:
    """One mosaic of ``(N, H, W)`` images in [0, 1] per panel, side by side, saved as a PNG."""
    fig = Figure(figsize=(3.4 * len(panels), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (name, images) in zip(axes, panels.items(), strict=True):
        columns = math.ceil(math.sqrt(len(images)))
        ax.imshow(_tile(images, columns), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(LABELS.get(name, name), fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def posterior_figure(
    path: Path,
    digits: np.ndarray,
    structures: Mapping[str, Mapping[str, np.ndarray]],
    top: int = 24,
) -> Path:
    """For each test digit (a row): the image; ``q(z_i = 1 | x)`` for every unit under each
    posterior; and the probabilities of the ``top`` most likely states of the first group
    ``q(z1 | x)`` (sorted), with the number of modes and the entropy in the legend."""
    n = len(digits)
    fig = Figure(figsize=(13.0, 2.5 * n), layout="constrained")
    axes = fig.subplots(n, 3, squeeze=False, width_ratios=[1, 4, 4])
    for row in range(n):
        ax_img, ax_marg, ax_top = axes[row]
        ax_img.imshow(digits[row], cmap="gray_r", vmin=0, vmax=1)
        ax_img.set_xticks([])
        ax_img.set_yticks([])
        for i, (name, s) in enumerate(structures.items()):
            marg = s["marginals"][row]
            ax_marg.plot(np.arange(len(marg)), marg, "o", ms=3, color=f"C{i}", label=LABELS[name])
            probs = np.sort(s["probs"][row])[::-1][:top]
            label = (
                f"{LABELS[name]}: {int(s['modes'][row])} mode(s), "
                f"H={s['entropy'][row]:.2f}, TC={s['total_correlation'][row]:.2f}"
            )
            ax_top.plot(np.arange(1, len(probs) + 1), probs, "o-", ms=3, color=f"C{i}", label=label)
        n1 = len(next(iter(structures.values()))["probs"][row]).bit_length() - 1
        ax_marg.axvline(n1 - 0.5, color="0.6", lw=0.8)
        ax_marg.set_ylim(-0.03, 1.03)
        ax_marg.set_ylabel("q(z_i = 1 | x)")
        ax_top.set_yscale("log")
        ax_top.set_ylabel("q(z1 | x)")
        ax_top.legend(fontsize=7, frameon=False)
        for ax in (ax_marg, ax_top):
            ax.grid(True, alpha=0.35)
        if row == 0:
            ax_marg.set_title("marginals (left of the line: z1, right: z2)", fontsize=9)
            shown = min(top, len(next(iter(structures.values()))["probs"][row]))
            ax_top.set_title(f"the {shown} most likely states of z1, exact", fontsize=9)
            ax_marg.legend(fontsize=7, frameon=False)
        if row == n - 1:
            ax_marg.set_xlabel("latent unit")
            ax_top.set_xlabel("rank")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


@torch.no_grad()
def draw_figures(
    cfg: Any,
    plots: Path,
    models: Mapping[str, DVAE],
    curve: list,
    x_test: torch.Tensor,
    exact: bool,
) -> dict[str, float]:
    """nll_over_iterations.png, prior_samples.png and (with an enumerable first group)
    posterior_modes.png; returns the structure metrics of the digits it shows (mean posterior
    entropy, total correlation and number of modes of each posterior), none without it.
    ``cfg`` is the run's BmnistConfig."""
    steps = [step for step, _ in curve]
    line_plot(
        plots / "nll_over_iterations.png",
        {LABELS[kind]: (steps, [row[f"valid_nll_{kind}"] for _, row in curve]) for kind in models},
        xlabel="iteration",
        ylabel=f"validation NLL (nats, K={cfg.valid_samples})",
        title="Importance-weighted NLL on the validation subset",
    )
    panels = {}
    for kind, m in models.items():
        m.eval()
        z = m.prior.sample(36, cfg.exact_max_units)
        panels[kind] = torch.sigmoid(m.decoder(z)).reshape(-1, 28, 28).cpu().numpy()
    how = "exact samples" if exact else "persistent chains + 1000 sweeps"
    image_grids(plots / "prior_samples.png", panels, f"decoded prior samples ({how})")
    metrics: dict[str, float] = {}
    if cfg.latents[0] > cfg.exact_max_units or cfg.structure_digits < 1:
        return metrics
    x = spread_subset(x_test, cfg.structure_digits)  # different digits, not 20 zeros
    structures = {}
    for kind, m in models.items():
        s = posterior_structure(m, x)
        structures[kind] = {k: v.cpu().numpy() for k, v in s.items()}
        metrics[f"{kind}_posterior_entropy"] = float(s["entropy"].mean())
        metrics[f"{kind}_total_correlation"] = float(s["total_correlation"].mean())
        metrics[f"{kind}_posterior_modes"] = float(s["modes"].mean())
    shown = {k: {n: v[: cfg.show_digits] for n, v in s.items()} for k, s in structures.items()}
    digits = x[: cfg.show_digits].reshape(-1, 28, 28).cpu().numpy()
    posterior_figure(plots / "posterior_modes.png", digits, shown)
    for m in models.values():
        m.train()
    return metrics
