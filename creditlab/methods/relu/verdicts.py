"""The verdicts of both experiments: pure functions of the measured numbers that say whether
the paper's claims hold (claim 1: Pr[y > 0] per layer; claim 2: convergence time against
Pr[y > 0])."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from creditlab.methods.relu.theory import ConvergenceTimes, activation_spectrum

# --- relu.layers: claim 1 ----------------------------------------------------------------------


def depth_trend(probabilities: Sequence[float]) -> tuple[float, float]:
    """Spearman's rank correlation of Pr[y > 0] with the layer index, and its p-value
    (0 and 1 when the values are constant)."""
    if len(probabilities) < 3 or np.ptp(probabilities) == 0:
        return 0.0, 1.0
    result = stats.spearmanr(np.arange(len(probabilities)), probabilities)
    return float(result.statistic), float(result.pvalue)


def spread(values: np.ndarray) -> np.ndarray:
    """Sample standard deviation over seeds (axis 0); 0 for a single seed."""
    return values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1:])


@dataclass(frozen=True)
class ClaimVerdicts:
    """Claim 1 of the paper, judged on per-layer Pr[y > 0] from every seed together.

    1a (below 0.5 without skips): a plain-net layer counts as below when its mean over the seeds
    is < 0.5; the claim *holds* when every layer is below, *holds in most layers, not all* when
    more than half are, and *does not hold* otherwise. 1b (falls with depth): Spearman's rho of
    the seed-mean Pr[y > 0] against the layer index; *holds* when rho < 0 with p < 0.05, *is not
    supported* when rho < 0 but p >= 0.05, *does not hold* when rho >= 0."""

    layers: int
    below: int
    """plain-net layers whose seed-mean Pr[y > 0] is below 0.5"""
    below_every_seed: int
    """plain-net layers below 0.5 in every seed"""
    rho: float
    pvalue: float
    seeds_falling: int
    """seeds whose own Spearman rho is negative"""

    @classmethod
    def measure(cls, plain: np.ndarray) -> ClaimVerdicts:
        """From ``plain`` of shape (seeds, layers)."""
        mean = plain.mean(axis=0)
        rho, pvalue = depth_trend(mean)
        return cls(
            layers=plain.shape[1],
            below=int((mean < 0.5).sum()),
            below_every_seed=int((plain < 0.5).all(axis=0).sum()),
            rho=rho,
            pvalue=pvalue,
            seeds_falling=sum(depth_trend(row)[0] < 0 for row in plain),
        )

    @property
    def below_half(self) -> str:
        if self.below == self.layers:
            return "holds"
        if self.below > self.layers / 2:
            return "holds in most layers, not all"
        return "does not hold"

    @property
    def falls_with_depth(self) -> str:
        if self.rho < 0 and self.pvalue < 0.05:
            return "holds"
        if self.rho < 0:
            return "is not supported (a negative but non-significant trend)"
        return "does not hold"


def claim_notes(
    plain: np.ndarray, residual: np.ndarray, skips: list[bool], plain_init: np.ndarray
) -> list[str]:
    """Sentences saying whether the paper's layer claims hold in the measured numbers: each
    argument is Pr[y > 0] of shape (seeds, layers) (``skips``: per residual-net layer, whether
    its input carries the skip)."""
    v = ClaimVerdicts.measure(plain)
    seeds, mean, sd = len(plain), plain.mean(axis=0), spread(plain)
    notes = [
        f"Claim 1a (Pr[y>0] < 0.5 in layers without skips, after training) {v.below_half} "
        f"here: {v.below} of {v.layers} plain-net layers have a mean Pr[y>0] over {seeds} seeds "
        f"below 0.5 ({v.below_every_seed} in every seed); layer means from {mean.min():.3f} to "
        f"{mean.max():.3f} (mean {mean.mean():.3f}, largest spread over seeds sd "
        f"{sd.max():.3f}; at init mean {plain_init.mean():.3f})."
    ]
    notes.append(
        f"Claim 1b (Pr[y>0] decreases with depth) {v.falls_with_depth} in the plain net: "
        f"Spearman rho of the seed-mean Pr[y>0] against layer index = {v.rho:+.2f} "
        f"(p = {v.pvalue:.3f}, {v.layers} layers); {v.seeds_falling} of {seeds} seeds have a "
        f"negative rho of their own; first layer {mean[0]:.3f}, last layer {mean[-1]:.3f}."
    )
    skip = np.asarray(skips, dtype=bool)
    if not skip.any():
        notes.append("The residual net has no skips at this size (convs_per_stage = 1).")
        return notes
    rho_res, p_res = depth_trend(residual.mean(axis=0))
    notes.append(
        f"Residual net: Spearman rho = {rho_res:+.2f} (p = {p_res:.3f}); mean Pr[y>0] "
        f"{residual[:, skip].mean():.3f} at the {skip.sum()} ReLUs whose input carries the skip "
        f"(y = x + F(x)) vs {residual[:, ~skip].mean():.3f} at its {(~skip).sum()} other ReLUs "
        f"and {plain.mean():.3f} over the plain net."
    )
    return notes


# --- relu.single_unit: claim 2 -----------------------------------------------------------------


def single_unit_notes(
    times: ConvergenceTimes, far_angle: float, far_target_probability: float
) -> list[str]:
    """Sentences for the report, with verdicts computed from the measured times (the far
    family started at ``far_angle`` to a teacher with Pr[y* > 0] = ``far_target_probability``)."""
    p, sim_near, sim_far = times.p, times.sim_near, times.sim_far
    gap_near, gap_far = times.gap_near.max().item(), times.gap_far.max().item()
    slope, slope_theory = times.exponent(sim_near), times.exponent(times.predicted_near)
    if slope < -0.8 and gap_near < 0.1:
        verdict = "holds, and the 1/p law (5) predicts it"
    elif slope < 0:
        verdict = f"holds, but the 1/p law (5) misses by up to {gap_near:.0%}"
    else:
        verdict = "does not hold"
    probabilities = ", ".join(f"{x:g}" for x in p.tolist())
    notes = [
        f"Claim 2 (a unit converges more slowly as Pr[y>0] -> 0) {verdict} near the optimum: "
        f"simulated convergence time scales as p^{slope:.2f} (theory p^{slope_theory:.2f}) over "
        f"p = {probabilities}; predicted and simulated times differ by at most {gap_near:.1%}. "
        f"The median single run takes up to {(times.median_near / sim_near).max().item() - 1:.0%} "
        "longer than the mean trajectory (multiplicative noise, of order mu d): (5) is a law "
        "for the mean."
    ]
    below = p < far_target_probability
    if below.sum() >= 2:
        slope_far = times.exponent(sim_far, below)
        lo, hi = int(below.nonzero()[0]), int(below.nonzero()[-1])
        if slope_far >= 0:
            trend = "does not grow as p0 falls"
        elif slope_far > -0.8:
            trend = (
                f"grows only as p0^{slope_far:.2f}, more slowly than 1/p0: far from theta* the "
                "in-plane entries of H (3), p - a phi(a) ~ a^2 p and phi(a) ~ |a| p, exceed p, so "
                "a nearly dead unit with a large error escapes faster than its p0 suggests"
            )
        else:
            trend = f"grows as p0^{slope_far:.2f}, close to the 1/p0 law"
        notes.append(
            f"From far initialisations (angle {far_angle} rad to a teacher with Pr[y>0] = "
            f"{far_target_probability}): starting less active costs time, "
            f"{sim_far[lo].item():.0f} steps at p0 = {p[lo].item():g} vs "
            f"{sim_far[hi].item():.0f} at p0 = {p[hi].item():g}; the time {trend}. The iterated "
            f"expected update (6) predicts these times within {gap_far:.1%} (it neglects the "
            "spread across runs, which makes the simulation slower)."
        )
    lam_plus, lam_minus = activation_spectrum(p[-1:])
    notes.append(
        f"Slowest of all are in-plane errors (w length vs bias): at p = {p[-1].item():g}, "
        f"H's eigenvalues (4) are lambda_- = {lam_minus.item():.2e} and lambda_+ = "
        f"{lam_plus.item():.3f} against p; near the optimum started off-plane they enter only "
        "at second order."
    )
    return notes
