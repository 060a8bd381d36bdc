"""Douglas & Yu, "Why ReLU Units Sometimes Die: Analysis of Single-Unit Error Backpropagation in
Neural Networks" (Asilomar 2018, arXiv 1812.05981): the two experiments.

``relu.layers``       Pr[y > 0] of every ReLU layer of a plain (VGG-style) and a residual CNN,
                      at initialisation and after training to a plateau of the training loss,
                      over several seeds (Fashion-MNIST by default; the paper: CIFAR-10): claim 1
                      of the paper (below 0.5 without skips, falling with depth).
``relu.single_unit``  the single ReLU unit y = w^T x + b trained by w <- w + mu e 1[y > 0] x:
                      the expected update and the convergence time as a function of Pr[y > 0],
                      derived in closed form and checked against simulation (claim 2).

Pr[y > 0] is measured by :class:`creditlab.diagnostics.relu.ReluMonitor` (y is the ReLU's input).
The folder reads model -> rule -> experiments: :mod:`.nets` (the plain and residual CNNs),
:mod:`.learners` (training them side by side to a loss plateau), :mod:`.theory` (the single
unit in closed form, Eqs. 1-6) and :mod:`.simulation` (its rule simulated), then
:mod:`.verdicts` and :mod:`.figures`; this module holds the configs and the experiments.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from creditlab.data import ClassifierData
from creditlab.diagnostics.relu import DEFAULT_DEAD_THRESHOLD, too_dead
from creditlab.errors import UserError
from creditlab.methods.relu.figures import plot_convergence, plot_layer_training, plot_layers
from creditlab.methods.relu.learners import train_twins
from creditlab.methods.relu.simulation import simulate_single_unit
from creditlab.methods.relu.theory import (
    ConvergenceTimes,
    activation_spectrum,
    linearised_convergence_time,
    mean_field_convergence_time,
    truncated_gaussian_terms,
)
from creditlab.methods.relu.verdicts import (
    ClaimVerdicts,
    claim_notes,
    depth_trend,
    single_unit_notes,
    spread,
)
from creditlab.registry import experiment
from creditlab.runner import RunContext, StageContext, finished_stages
from creditlab.train import TrainingConfig, load_split

PAPER_TITLE = (
    "Douglas & Yu, 'Why ReLU Units Sometimes Die: Analysis of Single-Unit Error "
    "Backpropagation in Neural Networks' (Asilomar 2018, arXiv 1812.05981)"
)

# =====================================================================================
# relu.layers: activation probability per layer in a plain and a residual CNN
# =====================================================================================


@dataclass
class LayersConfig(TrainingConfig):
    """relu.layers. Each seed trains a plain and a residual net side by side until **both** have
    converged by the plateau criterion (:func:`.learners.plateaued`): with L_e the epoch
    training loss (the mean minibatch loss of epoch e), training stops after the first epoch at
    which, for both nets, the best L over the last ``plateau_epochs`` (k) epochs improves on the
    best before them by less than ``plateau_tolerance`` (x) times the first epoch's loss,
    min(L[:-k]) - min(L[-k:]) < x L[0]. ``epochs`` caps the run; a seed that reaches the cap
    first is reported as not converged.

    Scales (3 seeds unless said): ``paper`` is Fashion-MNIST 60k/10k, the 15-conv net of widths
    32-128 and up to 100 epochs: about 12 minutes per epoch for the two nets on one core of a
    2-core x86_64 CPU (5 ms per image and net for a training step), so 10 to 20 hours for three
    seeds, a run for a GPU. ``quick`` trains on the first 1000 training images and measures on
    the first 1000 test images, with a 9-conv net of widths 8-32, up to 60 epochs: it reaches
    the plateau (a memorised training set, loss ~0.005) after about 30 epochs per seed, about
    5 minutes on a shared 2-core CPU. ``smoke`` is 300 images, 2 seeds and at most 3 epochs.
    """

    dataset: ClassifierData = "fashion_mnist"
    """data set (the paper's CIFAR-10 is not available here; fashion_mnist, 60k/10k, is the
    hardest of these)"""
    widths: tuple[int, ...] = (32, 64, 128)
    """output channels of each stage of 3x3 convs (each stage ends in a 2x2 max-pool)"""
    convs_per_stage: int = 5
    """conv layers per stage (odd): one that sets the width, then (n-1)/2 two-conv blocks,
    which carry an identity skip in the residual net"""
    batch_norm: bool = False
    """batch normalisation between each conv and its ReLU (off: the ReLU sees the conv output)"""
    epochs: int = 100
    """the cap: at most this many epochs per seed (training stops earlier at the plateau)"""
    lr: float = 1e-3
    """learning rate, held constant (training ends at the plateau, not at a schedule's end)"""
    plateau_epochs: int = 5
    """k of the plateau criterion: the window of epochs over which the loss must improve"""
    plateau_tolerance: float = 0.01
    """x of the plateau criterion: an improvement over k epochs below x times the first
    epoch's loss counts as none"""
    seeds: int = 3
    """independent seeds run inside the experiment: ctx.seed, ctx.seed + 1, ... (init and
    minibatch order); every verdict is given from all of them together"""
    n_test: int = 0
    """measure on only the first n_test test examples (0: all)"""
    dead_threshold: float = DEFAULT_DEAD_THRESHOLD
    """warn when this fraction of a layer's units never fires (keras-contrib: 10%)"""


@experiment(
    "relu.layers",
    config=LayersConfig,
    paper_title=PAPER_TITLE,
    demo=True,
    scales={
        "smoke": {
            "widths": (4, 8),
            "convs_per_stage": 3,
            "epochs": 3,
            "batch_size": 25,
            "lr": 3e-3,
            "n_train": 300,
            "n_test": 300,
            "plateau_epochs": 1,
            "seeds": 2,
        },
        "quick": {
            "widths": (8, 16, 32),
            "convs_per_stage": 3,
            "epochs": 60,
            "batch_size": 50,
            "n_train": 1000,
            "n_test": 1000,
        },
    },
)
def relu_layers(cfg: LayersConfig, ctx: RunContext) -> dict[str, float]:
    """Pr[y>0] per ReLU layer of a plain and a residual CNN, at init and at a loss plateau.

    For each of ``cfg.seeds`` seeds, both nets are built from one spec
    (:class:`.nets.StageCNN`), start from the same weights (:func:`.nets.twin_nets`) and see the
    same minibatches (:class:`.learners.TwinLearner` under the shared ``fit`` loop, Adam at a
    constant learning rate), so the identity skips are the only difference; they train until
    both epoch training losses plateau (see :class:`LayersConfig`). Pr[y > 0] and the dead
    fraction of every ReLU layer are counted over the test set by :class:`ReluMonitor` before
    and after training (a conv unit is a channel, pooled over positions); during training the
    monitors log the epoch's mean and worst layer as ``train_relu_*``. The paper's claims are
    judged on the per-layer values of all seeds together (:class:`.verdicts.ClaimVerdicts`:
    below 0.5, and falling with depth by Spearman's rho), and the notes say plainly when they do
    not hold. Metrics: per layer k the mean over seeds (``activation_probability_layer_k``) and
    its spread (``activation_probability_std_layer_k``); every seed's values are in
    ``seeds.json``.
    """
    if cfg.seeds < 1 or cfg.plateau_epochs < 1 or not 0.0 <= cfg.plateau_tolerance < 1.0:
        raise UserError("need seeds >= 1, plateau_epochs >= 1 and 0 <= plateau_tolerance < 1")
    ds, (x_train, y_train, x_test, y_test) = load_split(cfg.dataset, cfg.n_train, ctx)
    x_test, y_test = x_test[: cfg.n_test or None], y_test[: cfg.n_test or None]
    split = (x_train, y_train, x_test, y_test)
    spec = {
        "widths": tuple(cfg.widths),
        "convs_per_stage": cfg.convs_per_stage,
        "batch_norm": cfg.batch_norm,
        "in_channels": ds.input_shape[0],
        "input_size": ds.input_shape[-1],
        "n_classes": ds.n_classes,
        "mean": x_train.mean().item(),
        "std": x_train.std().item(),
    }
    done: list[dict[str, Any]] = finished_stages(ctx, [])
    for index in range(len(done), cfg.seeds):
        # seed by seed; steps continue after the earlier seeds', so metrics.jsonl reads as
        # the seeds one after another
        offset = sum(result["steps"] for result in done)
        seed_ctx = StageContext(ctx, index, done, step_offset=offset, seed=ctx.seed + index)
        done.append(train_twins(cfg, seed_ctx, spec, split))

    nets = ("plain", "residual")
    trained = {net: np.array([r["trained"][net][0] for r in done]) for net in nets}
    dead = {net: np.array([r["trained"][net][1] for r in done]) for net in nets}
    init = {net: np.array([r["init"][net][0] for r in done]) for net in nets}
    final = {
        net: {k: np.array([r["final"][net][k] for r in done]) for k in done[0]["final"][net]}
        for net in nets
    }
    epochs = np.array([r["epochs"] for r in done])
    converged = sum(r["converged"] for r in done)
    depth = trained["plain"].shape[1]
    seeds = [r["seed"] for r in done]

    protocol = ctx.data.get("protocol", cfg.dataset)
    plot_layers(ctx.plots / "activation_probability.png", trained, init, protocol)
    first = done[0]
    plot_layer_training(ctx.plots, first)
    (ctx.out / "seeds.json").write_text(json.dumps(done, indent=1) + "\n")

    def mean_sd(values: np.ndarray) -> str:
        return f"{values.mean():.3f} +/- {spread(values[:, None])[0]:.3f}"

    cap = (
        ""
        if converged == len(done)
        else (
            f" {len(done) - converged} of {len(done)} seeds hit the cap of {cfg.epochs} epochs "
            "before the plateau: they are NOT converged, and the paper measures at convergence."
        )
    )
    ctx.note(
        f"Measured on {protocol} ({len(x_train)} training / "
        f"{len(x_test)} test images), {len(done)} seeds ({', '.join(map(str, seeds))}), each "
        f"trained until both nets' epoch training losses improved by less than "
        f"{cfg.plateau_tolerance:.1%} of their first epoch's over {cfg.plateau_epochs} "
        f"epoch(s): {', '.join(map(str, epochs))} epochs.{cap} Test accuracy (mean +/- sd over "
        f"seeds): plain {mean_sd(final['plain']['test_accuracy'])}, residual "
        f"{mean_sd(final['residual']['test_accuracy'])}; the paper measures on CIFAR-10."
    )
    skips = first["skips"]
    for note in claim_notes(trained["plain"], trained["residual"], skips, init["plain"]):
        ctx.note(note)
    for net in nets:
        bad = [
            k for k, d in enumerate(dead[net].mean(axis=0), 1) if too_dead(d, cfg.dead_threshold)
        ]
        if bad:
            ctx.note(
                f"{net} net: layers {bad} have, on average over the seeds, at least "
                f"{cfg.dead_threshold:.0%} dead units (never active on the test set) after "
                "training."
            )
    ctx.note(
        f"Parameters: plain {first['parameters']['plain']}, residual "
        f"{first['parameters']['residual']} (identity skips add none; both nets start from the "
        "same weights)."
    )

    verdicts = ClaimVerdicts.measure(trained["plain"])
    out: dict[str, float] = {}
    for net, suffix in (("plain", ""), ("residual", "_residual")):
        for key, values in final[net].items():
            out[f"{key}{suffix}"] = float(values.mean())
        out[f"test_accuracy_std{suffix}"] = float(spread(final[net]["test_accuracy"][:, None])[0])
        out[f"parameters{suffix}"] = first["parameters"][net]
        mean, sd, dead_mean = trained[net].mean(0), spread(trained[net]), dead[net].mean(0)
        for k in range(1, depth + 1):
            out[f"activation_probability_layer_{k}{suffix}"] = float(mean[k - 1])
            out[f"activation_probability_std_layer_{k}{suffix}"] = float(sd[k - 1])
            out[f"dead_fraction_layer_{k}{suffix}"] = float(dead_mean[k - 1])
        out[f"activation_probability_init_mean{suffix}"] = float(init[net].mean())
        out[f"activation_probability_mean{suffix}"] = float(mean.mean())
        rho, pvalue = depth_trend(mean)
        out[f"depth_spearman_rho{suffix}"] = rho
        out[f"depth_spearman_pvalue{suffix}"] = pvalue
    out["layers_below_half"] = float(verdicts.below)
    out["seeds"] = float(len(done))
    out["seeds_converged"] = float(converged)
    out["epochs_trained_mean"] = float(epochs.mean())
    return out


# =====================================================================================
# relu.single_unit: expected update and convergence time as a function of Pr[y > 0]
# =====================================================================================


@dataclass
class SingleUnitConfig:
    dim: int = 10
    """input dimension d (x ~ N(0, I_d))"""
    mu: float = 0.01
    """step size mu of the rule w <- w + mu e 1[y>0] x"""
    runs: int = 2000
    """independent runs per initialisation (simulated in parallel)"""
    probabilities: tuple[float, ...] = (0.5, 0.3, 0.15, 0.07, 0.03, 0.01, 0.005)
    """the initial activation probabilities Pr[y > 0] = Phi(b / ||w||) to start from"""
    perturbation: float = 0.05
    """near-optimum family: initial distance ||w_0 - w*|| (with ||w*|| = 1), off the
    (w*, bias) plane, so Pr[y > 0] at the start is close to the optimum's"""
    far_angle: float = 0.5
    """far family: angle (radians) between w_0 and w* (both unit norm)"""
    far_target_probability: float = 0.5
    """far family: the teacher's Pr[y > 0] = Phi(b*), the same for every initialisation"""
    tolerance: float = 0.1
    """converged when ||theta_t - theta*|| <= tolerance * ||theta_0 - theta*||"""
    horizon: float = 4.0
    """simulate at most this many times the largest predicted convergence time"""


@experiment(
    "relu.single_unit",
    config=SingleUnitConfig,
    paper_title=PAPER_TITLE,
    demo=True,
    scales={
        "smoke": {"dim": 5, "mu": 0.05, "runs": 200, "probabilities": (0.5, 0.2, 0.05)},
        "quick": {"mu": 0.01, "runs": 300, "probabilities": (0.5, 0.3, 0.15, 0.07, 0.03, 0.01)},
    },
)
def relu_single_unit(cfg: SingleUnitConfig, ctx: RunContext) -> dict[str, float]:
    r"""Single ReLU unit: convergence time vs Pr[y>0], theory against simulation.

    The model, the rule (1) and its analysis, Eqs. (2)-(6), are derived in
    :mod:`creditlab.methods.relu.theory`: near the optimum the expected error off the
    (w*, bias) plane decays as (1 - mu p)^t, so the convergence time is the 1/p law (5); from
    far away the expected update is iterated numerically (6).

    **Experiment.** Two families of initialisations, one per initial p, R runs each. *Near
    optimum*: a teacher with Pr[y* > 0] = p, the student started at theta* + r (v, 0) with
    v _|_ w*: predicted by (5). *Far*: one teacher (Pr[y* > 0] = far_target_probability), the
    student at an angle from w* with its bias set so that Pr[y > 0] = p at the start: predicted
    by (6). Simulated convergence time: the first step at which the run-averaged parameters
    are within ``tolerance`` (relative) of theta*; the median run's own time is plotted too.
    """
    d, dt = cfg.dim, torch.float64
    if not cfg.probabilities or any(not 0.0 < p < 1.0 for p in cfg.probabilities):
        raise UserError(f"probabilities must lie in (0, 1), got {cfg.probabilities}")
    if not 0.0 < cfg.far_target_probability < 1.0 or not 0.0 < cfg.tolerance < 1.0:
        raise UserError("far_target_probability and tolerance must lie in (0, 1)")
    if d < 2 or cfg.runs < 1 or cfg.mu <= 0:
        raise UserError(f"need dim >= 2, runs >= 1 and mu > 0 (got {d}, {cfg.runs}, {cfg.mu})")
    generator = ctx.generator()
    # Two orthonormal directions: the teacher's w* and the direction of the initial error.
    basis = torch.linalg.qr(torch.randn(d, 2, generator=generator, dtype=dt)).Q.T
    w_star_dir, v = basis[0], basis[1]
    p = torch.tensor(cfg.probabilities, dtype=dt)
    n = len(p)

    # Near-optimum family: teacher with Pr[y>0] = p (b* = Phi^-1(p), ||w*|| = 1), student
    # started off the (w*, bias) plane: theta_0 = theta* + r (v, 0), v _|_ w*.
    near_star = torch.cat([w_star_dir.expand(n, d), torch.special.ndtri(p)[:, None]], dim=1)
    near_0 = near_star + cfg.perturbation * torch.cat([v, torch.zeros(1, dtype=dt)])
    # Far family: one teacher with Pr[y>0] = far_target_probability; students at angle
    # far_angle from w*, with biases giving Pr[y>0] = p at the start.
    b_far = torch.special.ndtri(torch.tensor(cfg.far_target_probability, dtype=dt))
    far_star = torch.cat([w_star_dir, b_far[None]]).expand(n, d + 1)
    w0 = math.cos(cfg.far_angle) * w_star_dir + math.sin(cfg.far_angle) * v
    far_0 = torch.cat([w0.expand(n, d), torch.special.ndtri(p)[:, None]], dim=1)

    predicted_near = linearised_convergence_time(p, cfg.mu, cfg.tolerance)  # Eq. (5)
    # The far family ends on the teacher's slowest (in-plane) mode, lambda_- of Eq. (4).
    _, lam_minus_far = activation_spectrum(torch.special.ndtr(b_far).reshape(1))
    slowest_far = linearised_convergence_time(lam_minus_far, cfg.mu, cfg.tolerance)
    budget = int(cfg.horizon * max(predicted_near.max().item(), slowest_far.item()))
    predicted_far = mean_field_convergence_time(far_0, far_star, cfg.mu, cfg.tolerance, budget)
    mean_field_near = mean_field_convergence_time(near_0, near_star, cfg.mu, cfg.tolerance, budget)
    max_steps = int(cfg.horizon * max(predicted_near.max().item(), predicted_far.max().item()))

    sim_mean, sim_median = simulate_single_unit(
        torch.cat([near_0, far_0]),
        torch.cat([near_star, far_star]),
        cfg.mu,
        cfg.runs,
        cfg.tolerance,
        max_steps,
        generator,
        ctx,
    )
    times = ConvergenceTimes(
        p,
        predicted_near,
        sim_mean[:n],
        sim_median[:n],
        predicted_far,
        sim_mean[n:],
        sim_median[n:],
    )
    sim_near, sim_far = times.sim_near, times.sim_far
    p0_near = truncated_gaussian_terms(near_0[:, :d], near_0[:, d])["p"]

    gap_near, gap_far = times.gap_near, times.gap_far
    for i in range(n):
        ctx.log(
            i + 1,
            activation_probability=p[i].item(),
            convergence_time_predicted=predicted_near[i].item(),
            convergence_time_simulated=sim_near[i].item(),
            convergence_time_far_predicted=predicted_far[i].item(),
            convergence_time_far_simulated=sim_far[i].item(),
        )

    plot_convergence(
        ctx.plots / "convergence_time.png",
        times,
        mu=cfg.mu,
        tolerance=cfg.tolerance,
        runs=cfg.runs,
        dim=cfg.dim,
        far_target_probability=cfg.far_target_probability,
    )
    for note in single_unit_notes(times, cfg.far_angle, cfg.far_target_probability):
        ctx.note(note)
    if bool((sim_mean >= max_steps).any()) or bool((predicted_far >= budget).any()):
        ctx.note(
            f"Some inits did not converge within the step budget ({budget} for theory (6), "
            f"{max_steps} for the simulation): their times are lower bounds."
        )
    below_target = p < cfg.far_target_probability
    exponent_far = times.exponent(sim_far, below_target)
    out = {
        "max_relative_gap_convergence_time": max(gap_near.max().item(), gap_far.max().item()),
        "max_relative_gap_convergence_time_near_optimum": gap_near.max().item(),
        "max_relative_gap_convergence_time_far_init": gap_far.max().item(),
        "max_relative_gap_mean_field_near_optimum": (
            ((sim_near - mean_field_near) / mean_field_near).abs().max().item()
        ),
        "convergence_time_exponent": times.exponent(sim_near),
    }
    if math.isfinite(exponent_far):
        out["convergence_time_exponent_far_init"] = exponent_far
    for i in range(n):
        out[f"initial_activation_probability_{i + 1}"] = p0_near[i].item()
        out[f"convergence_time_predicted_{i + 1}"] = predicted_near[i].item()
        out[f"convergence_time_simulated_{i + 1}"] = sim_near[i].item()
    return out
