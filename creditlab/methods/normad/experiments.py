"""Experiments of Anwani & Rajendran: NormAD on one neuron against ReSuMe, and multilayer
NormAD (our derivation of the hidden-layer rule, see normad.py) on spike-time XOR and on a
3-layer spike-train mapping.

* ``normad.single``: ``problems`` independent one-neuron mappings (random Poisson inputs to a
  random desired train) in one batched call, trained by NormAD and by ReSuMe from the same
  initial weights; ``epochs_to_converge`` median and quartiles for each, and their ratio.
* ``normad.xor``: spike-time XOR, input -> hidden -> output; ``test_accuracy`` (first output
  spike nearer the right target time) and ``epochs_to_converge``.
* ``normad.mapping``: input -> hidden -> output, several input patterns per problem mapped to
  random desired trains; ``fraction_converged``, ``final_van_rossum``.

A problem has converged when every desired spike of every pattern is matched by a produced one
within +-``window`` and no produced spike is unmatched (coincidence accuracy 1), read from the
training trial; a problem that never converges counts ``epochs`` (censored). No figure of the
multilayer paper is declared: none was retrievable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from creditlab.methods.normad import figures
from creditlab.methods.normad.neuron import Neuron
from creditlab.methods.normad.tasks import mapping_task, xor_task
from creditlab.methods.normad.training import (
    Rates,
    forward,
    multilayer_epoch,
    precompute,
    scores,
    single_epoch,
)
from creditlab.registry import experiment
from creditlab.runner import RunContext

PAPER = (
    "Anwani & Rajendran, 'Training multilayer spiking neural networks using NormAD based "
    "spatio-temporal error backpropagation' (Neurocomputing 380, 2020; arXiv 1811.10678)"
)


@dataclass
class TrialConfig:
    """The trials and the training every NormAD experiment shares."""

    steps: int = 1000
    """trial length in 0.1 ms steps"""
    in_rate: float = 20.0
    """input Poisson rate (Hz)"""
    out_rate: float = 40.0
    """desired train rate (Hz)"""
    min_gap: int = 50
    """least interval between desired spikes (steps)"""
    rate: float = 2e-10
    """NormAD r of the output layer (the group's code: 2e-10)"""
    epochs: int = 200
    """most training epochs (every trial once an epoch)"""
    window: float = 1e-3
    """coincidence window (s)"""
    tau_vr: float = 5e-3
    """van Rossum time constant (s)"""
    threads: int = 1
    """torch threads"""


@dataclass
class SingleConfig(TrialConfig):
    """One-neuron mappings, NormAD against ReSuMe."""

    problems: int = 20
    """independent problems trained in one batched call"""
    n_in: int = 100
    """input afferents"""
    w_mean: float = 1e-9
    """initial weight mean (A)"""
    w_std: float = 1e-9
    """initial weight standard deviation (A)"""
    resume_rate: float = 2e-10
    """ReSuMe r * A (A)"""
    resume_a: float = 0.0
    """ReSuMe non-Hebbian term a, relative to A"""


def _weights(ctx: RunContext, key: str, shape, mean: float, std: float) -> torch.Tensor:
    gen = ctx.generator("init", key)
    return torch.randn(shape, generator=gen, dtype=torch.float64) * std + mean


def _converged_at(acc: torch.Tensor) -> torch.Tensor:
    """a problem's trials all exact (P,)"""
    return (acc >= 1.0).flatten(1).all(1)


def _spread(x: torch.Tensor) -> tuple[float, float, float]:
    q = torch.quantile(x.double(), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
    return float(q[0]), float(q[1]), float(q[2])


@experiment(
    "normad.single",
    config=SingleConfig,
    paper_title=PAPER,
    scales={
        "smoke": {"problems": 3, "steps": 300, "n_in": 40, "epochs": 4},
        "quick": {"problems": 20, "epochs": 200},
    },
)
def single(cfg: SingleConfig, ctx: RunContext) -> dict[str, float]:
    """NormAD vs ReSuMe: epochs to learn one neuron's random spike-train mapping."""
    cell = Neuron()
    task = mapping_task(
        cfg.problems,
        1,
        cfg.steps,
        cfg.n_in,
        1,
        cfg.in_rate,
        cfg.out_rate,
        cfg.min_gap,
        cell.dt,
        ctx.generator("task"),
    )
    c, d = precompute(task.inputs, cell)
    w0 = _weights(ctx, "w", (cfg.problems, cfg.n_in, 1), cfg.w_mean, cfg.w_std)
    rules = {
        "normad": Rates(rule="normad", rate=cfg.rate),
        "resume": Rates(rule="resume", rate=cfg.resume_rate, resume_a=cfg.resume_a),
    }
    s = {name: {"w": w0.clone(), "conv": torch.full((cfg.problems,), -1)} for name in rules}
    last = {}

    def restore(saved):
        s.update(saved)

    for epoch in ctx.loop(cfg.epochs, lambda: s, restore):
        logs = {}
        for name, rates in rules.items():
            st = s[name]
            active = st["conv"] < 0
            out = single_epoch(task.inputs, c, d, task.desired, st["w"], rates, cell, active)
            acc, vr = scores(task.desired, out, cell, cfg.window, cfg.tau_vr)
            st["conv"] = torch.where(active & _converged_at(acc), epoch, st["conv"])
            logs[f"{name}_van_rossum"] = float(vr.mean())
            logs[f"{name}_converged"] = float((st["conv"] >= 0).double().mean())
            last[name] = out
        ctx.log(epoch, **logs)
    result = {}
    for name in rules:
        conv = s[name]["conv"]
        epochs = torch.where(conv >= 0, conv, cfg.epochs)
        q1, med, q3 = _spread(epochs)
        result[f"{name}_epochs_to_converge"] = med
        result[f"{name}_epochs_q1"], result[f"{name}_epochs_q3"] = q1, q3
        result[f"{name}_fraction_converged"] = float((conv >= 0).double().mean())
    result["resume_over_normad_epochs"] = result["resume_epochs_to_converge"] / max(
        result["normad_epochs_to_converge"], 1.0
    )
    out = figures.final_trains(task.inputs, c, task.desired, s["normad"]["w"], cell)
    figures.raster(ctx.plots / "raster_normad.png", task.desired, out, cell, "NormAD")
    return result


@dataclass
class MultiConfig(TrialConfig):
    """Input -> hidden -> output networks trained by multilayer NormAD."""

    problems: int = 5
    """independent networks trained in one batched call"""
    patterns: int = 3
    """input patterns per problem (mapping)"""
    n_in: int = 50
    """input afferents (mapping)"""
    hidden: int = 20
    """hidden neurons"""
    n_out: int = 1
    """output neurons (mapping)"""
    w1_mean: float = 1.5e-9
    """initial input -> hidden weight mean (A)"""
    w1_std: float = 1e-9
    """initial input -> hidden weight std (A)"""
    w2_mean: float = 1.5e-9
    """initial hidden -> output weight mean (A)"""
    w2_std: float = 1e-9
    """initial hidden -> output weight std (A)"""
    rate_hidden: float = 2e-10
    """hidden NormAD r_h"""
    silent_gain: float = 0.1
    """weight of a silent hidden neuron's pseudo-spike"""
    per_input: int = 10
    """XOR: afferents per logical input and for the bias"""
    jitter: float = 5e-3
    """XOR: spread of the afferents' fixed offsets (s)"""
    target_true: float = 20e-3
    """XOR: output spike time for XOR = 1 (s)"""
    target_false: float = 30e-3
    """XOR: output spike time for XOR = 0 (s)"""


def _train_multilayer(cfg: MultiConfig, ctx: RunContext, task, cell: Neuron):
    c, _ = precompute(task.inputs, cell)
    n_in, n_out = task.inputs.shape[-1], task.desired.shape[-1]
    s = {
        "w1": _weights(ctx, "w1", (cfg.problems, n_in, cfg.hidden), cfg.w1_mean, cfg.w1_std),
        "w2": _weights(ctx, "w2", (cfg.problems, cfg.hidden, n_out), cfg.w2_mean, cfg.w2_std),
        "conv": torch.full((cfg.problems,), -1),
    }
    rates = Rates(rate=cfg.rate, rate_hidden=cfg.rate_hidden, silent_gain=cfg.silent_gain)

    def restore(saved):
        s.update(saved)

    for epoch in ctx.loop(cfg.epochs, lambda: s, restore):
        active = s["conv"] < 0
        out = multilayer_epoch(c, task.desired, s["w1"], s["w2"], rates, cell, active)
        acc, vr = scores(task.desired, out, cell, cfg.window, cfg.tau_vr)
        s["conv"] = torch.where(active & _converged_at(acc), epoch, s["conv"])
        ctx.log(
            epoch, van_rossum=float(vr.mean()), converged=float((s["conv"] >= 0).double().mean())
        )
    _, _, out = forward(c, s["w1"], s["w2"], cell)
    return s, out


@experiment(
    "normad.xor",
    config=MultiConfig,
    paper_title=PAPER,
    scales={
        "smoke": {"problems": 2, "hidden": 6, "steps": 400, "epochs": 4},
        "quick": {"problems": 5, "hidden": 10, "steps": 400, "epochs": 100},
        "paper": {"steps": 400},
    },
)
def xor(cfg: MultiConfig, ctx: RunContext) -> dict[str, float]:
    """Multilayer NormAD on spike-time encoded XOR."""
    cell = Neuron()
    task = xor_task(
        cfg.problems,
        cfg.per_input,
        cfg.steps,
        1e-3,
        1e-3,
        6e-3,
        cfg.jitter,
        cfg.target_true,
        cfg.target_false,
        cell.dt,
        ctx.generator("task"),
    )
    s, out = _train_multilayer(cfg, ctx, task, cell)
    steps = torch.arange(cfg.steps, dtype=torch.float64)
    first = torch.where(out[..., 0] > 0, steps, float("inf")).amin(-1)  # (P, 4)
    target = task.desired[..., 0].argmax(-1).double()
    other = (
        torch.where(target == round(cfg.target_true / cell.dt), cfg.target_false, cfg.target_true)
        / cell.dt
    )
    correct = (first - target).abs() < (first - other).abs()
    conv = torch.where(s["conv"] >= 0, s["conv"], cfg.epochs).double()
    figures.raster(ctx.plots / "raster_xor.png", task.desired, out, cell, "XOR, NormAD")
    return {
        "test_accuracy": float(correct.double().mean()),
        "epochs_to_converge": float(conv.median()),
        "fraction_converged": float((s["conv"] >= 0).double().mean()),
    }


@experiment(
    "normad.mapping",
    config=MultiConfig,
    paper_title=PAPER,
    scales={
        "smoke": {"problems": 2, "patterns": 2, "steps": 300, "n_in": 30, "hidden": 6, "epochs": 4},
        "quick": {"problems": 5, "epochs": 100},
    },
)
def mapping(cfg: MultiConfig, ctx: RunContext) -> dict[str, float]:
    """Multilayer NormAD on a 3-layer spike-train mapping of several patterns."""
    cell = Neuron()
    task = mapping_task(
        cfg.problems,
        cfg.patterns,
        cfg.steps,
        cfg.n_in,
        cfg.n_out,
        cfg.in_rate,
        cfg.out_rate,
        cfg.min_gap,
        cell.dt,
        ctx.generator("task"),
    )
    s, out = _train_multilayer(cfg, ctx, task, cell)
    acc, vr = scores(task.desired, out, cell, cfg.window, cfg.tau_vr)
    figures.raster(ctx.plots / "raster_mapping.png", task.desired, out, cell, "mapping, NormAD")
    return {
        "fraction_converged": float((s["conv"] >= 0).double().mean()),
        "final_van_rossum": float(vr.mean()),
        "final_coincidence_accuracy": float(acc.mean()),
    }
