"""Experiments of Sacramento, Costa, Bengio & Senn (2018): the self-predicting state, the
teacher-student regression and MNIST.

* ``dendritic.self_predicting``: from random interneuron weights, Eqs. 8-9 silence the
  apical compartments (no target); ``final_apical_rms``.
* ``dendritic.teacher``: a 30-50-10 student learns a 30-20-10 teacher in continuous time
  with fixed random top-down weights; the microcircuit against a shallow learner that
  trains only its output layer (``test_mse`` < ``test_mse_shallow`` is the paper's claim;
  ``hidden_weight_change`` shows the hidden layer learning, 0 for the shallow learner).
* ``dendritic.mnist``: 784-500-500-10 in the paper's two-sweep mode (or ``--set
  mode=continuous``) beside the backprop MLP of the same shape, started from the same
  function and trained on the same split, epochs, minibatches and optimiser; the data set
  is the ``dataset`` field (MNIST, the paper's; ``--set dataset=fashion_mnist`` and others).

Paper-scale settings follow the paper (and the spec's parameter table); the quick scales
are shortened versions whose every departure is a config field (and listed in a note).
"""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from creditlab.diagnostics.alignment import alignment
from creditlab.errors import UserError
from creditlab.methods.dendritic.learners import ContinuousClassifier, SweepsClassifier
from creditlab.methods.dendritic.microcircuit import (
    Conductances,
    Microcircuit,
    Transfer,
    backprop_reference,
    topdown_alignment,
)
from creditlab.methods.dendritic.sweeps import MixingFactors
from creditlab.models import mlp
from creditlab.registry import experiment
from creditlab.report.plots import line_plot, read_metrics
from creditlab.runner import RunContext
from creditlab.train import BackpropClassifier, DataConfig, fit, load_split, make_optimizer

PAPER = (
    "Sacramento, Costa, Bengio & Senn, 'Dendritic cortical microcircuits approximate the "
    "backpropagation algorithm' (NeurIPS 2018)"
)


@dataclass
class DynamicsConfig:
    """Settings of the continuous-time model shared by the experiments that simulate it."""

    dt: float = 0.1
    """Euler step in ms"""
    pattern_ms: float = 100.0
    """how long each pattern is shown, in ms"""
    n_circuits: int = 1
    """independent circuits simulated side by side (each its own pattern stream; weights
    shared and moved by the sum of their plasticity); the paper simulates one"""
    tau_w: float = 30.0
    """low-pass time constant of the weight updates, in ms"""
    tau_in: float = 3.0
    """low-pass time constant of the input rates, in ms"""
    noise: float = 0.1
    """somatic noise amplitude sigma"""
    prospective: bool = False
    """latent equilibrium: neurons emit phi(u + tau du/dt) (no settling transients)"""
    g_lk: float = 0.1
    """leak conductance"""
    g_B: float = 1.0
    """basal-to-soma conductance"""
    g_A: float = 0.8
    """apical-to-soma conductance"""
    g_D: float = 1.0
    """interneuron dendrite-to-soma conductance"""
    g_som: float = 0.8
    """nudging conductance (output teacher and interneuron partner)"""
    eta_PP: float = 1.2e-3
    """forward (basal) learning rate per ms, Eq. 7"""
    eta_IP: float = 2.4e-4
    """pyramidal-to-interneuron learning rate per ms, Eq. 8"""
    eta_PI: float = 5e-4
    """interneuron-to-pyramidal learning rate per ms, Eq. 9"""
    eta_scale: float = 1.0
    """multiplies every learning rate (a speed-up for short runs; 1 in the paper)"""
    threads: int = 1
    """torch CPU threads during the run (the small per-step matrix products run fastest on
    one; 0 keeps torch's default)"""

    def conductances(self) -> Conductances:
        return Conductances(self.g_lk, self.g_B, self.g_A, self.g_D, self.g_som)


def _threads(fn: Callable[[Any, RunContext], dict[str, float]]) -> Callable:
    """Run the experiment with ``cfg.threads`` torch CPU threads, then restore the setting."""

    @functools.wraps(fn)
    def run(cfg: DynamicsConfig, ctx: RunContext) -> dict[str, float]:
        if cfg.threads <= 0:
            return fn(cfg, ctx)
        before = torch.get_num_threads()
        torch.set_num_threads(cfg.threads)
        ctx.note(f"Ran with {cfg.threads} torch CPU thread(s) (setting threads).")
        try:
            return fn(cfg, ctx)
        finally:
            torch.set_num_threads(before)

    return run


def _circuit(cfg: DynamicsConfig, sizes: list[int], phi: Transfer, **kwargs: Any) -> Microcircuit:
    s = cfg.eta_scale
    return Microcircuit(
        sizes,
        phi=phi,
        conductances=cfg.conductances(),
        dt=cfg.dt,
        tau_w=cfg.tau_w,
        tau_in=cfg.tau_in,
        noise=cfg.noise,
        eta_IP=cfg.eta_IP * s,
        eta_PI=cfg.eta_PI * s,
        prospective=cfg.prospective,
        **kwargs,
    )


def _patterns(seed: int, index: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Input patterns U(-1, 1) for presentation ``index``: a function of (seed, index) only,
    so a resumed run sees the same stream."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
    return torch.rand(shape, generator=generator) * 2 - 1


def _rms(values: list[torch.Tensor]) -> float:
    return math.sqrt(sum(float(v.pow(2).sum()) for v in values) / sum(v.numel() for v in values))


def _quick_note(cfg: DynamicsConfig, ctx: RunContext, extra: tuple[str, ...] = ()) -> None:
    """Name the dynamics settings that differ from the paper's (the config defaults)."""
    default = type(cfg)()
    changed = [
        f"{k}={getattr(cfg, k)}"
        for k in ("dt", "pattern_ms", "n_circuits", "prospective", "eta_scale", *extra)
        if getattr(cfg, k) != getattr(default, k)
    ]
    if changed:
        ctx.note("Shortened from the paper's dynamics for speed: " + ", ".join(changed) + ".")


# --- dendritic.self_predicting -------------------------------------------------------------


@dataclass
class SelfPredictingConfig(DynamicsConfig):
    sizes: tuple[int, ...] = (30, 50, 10)
    """layer widths, input first"""
    forward_gain: tuple[float, ...] = (2.0, 6.3)
    """forward weights are U(-1, 1) times these (one per layer) over the basal attenuation:
    the teacher task's voltage range, around phi's threshold theta"""
    patterns: int = 20000
    """patterns (U(-1, 1) inputs) shown to each circuit, without a target"""
    log_every: int = 20
    """patterns between measurements"""


@experiment(
    "dendritic.self_predicting",
    config=SelfPredictingConfig,
    paper_title=PAPER,
    scales={
        "smoke": {
            "patterns": 60,
            "n_circuits": 32,
            "dt": 0.5,
            "pattern_ms": 10.0,
            "prospective": True,
            "eta_scale": 1000.0,
            "log_every": 5,
        },
        "quick": {
            "patterns": 600,
            "n_circuits": 64,
            "dt": 0.5,
            "pattern_ms": 20.0,
            "prospective": True,
            "eta_scale": 200.0,
            "log_every": 5,
        },
    },
    demo=True,
)
@_threads
def self_predicting(cfg: SelfPredictingConfig, ctx: RunContext) -> dict[str, float]:
    """Learning the self-predicting state: interneurons silence the apical dendrites."""
    _quick_note(cfg, ctx)
    net = _circuit(cfg, list(cfg.sizes), Transfer("softplus"), eta_up=0.0, device=ctx.device)
    if len(cfg.forward_gain) != net.n_layers:
        raise UserError(f"forward_gain needs {net.n_layers} values, one per layer")
    with torch.no_grad():
        for w, gain, c in zip(net.W_PP_up, cfg.forward_gain, net.attenuation, strict=True):
            w.mul_(gain / c)
    net.reset_state(cfg.n_circuits)
    shape = (cfg.n_circuits, cfg.sizes[0])
    start, history = 0, []
    state = ctx.resume()
    if state is not None:
        net.load_state_dict(state["net"])
        start, history = state["pattern"], state["history"]
    bar = ctx.progress(cfg.patterns, initial=start)
    sim_seconds = 0.0
    for i in range(start, cfg.patterns):
        tic = time.perf_counter()
        net.run(_patterns(ctx.seed, i, shape), None, cfg.pattern_ms)
        sim_seconds += time.perf_counter() - tic
        if i % cfg.log_every == 0 or i == cfg.patterns - 1:
            row = _self_prediction_metrics(net)
            ctx.log(i + 1, time_ms=(i + 1) * cfg.pattern_ms, **row)
            history.append((i + 1, row["apical_rms"]))
        bar.update()
        ctx.boundary(lambda i=i: {"net": net.state_dict(), "pattern": i + 1, "history": history})
    bar.close()
    final = _self_prediction_metrics(net)
    initial = history[0][1]
    xs = [p * cfg.pattern_ms for p, _ in history]
    line_plot(
        ctx.plots / "apical_potential.png",
        {"apical potential (RMS)": (xs, [a for _, a in history])},
        xlabel="simulated time (ms)",
        ylabel="RMS apical potential",
        title="Self-predicting state learned from random W_IP, W_PI",
        logy=True,
    )
    ctx.note(
        f"Apical potentials (RMS over circuits and neurons, end of a pattern) fell from "
        f"{initial:.4f} to {final['apical_rms']:.4f} as Eqs. 8-9 learned the "
        "self-predicting state without a target."
    )
    n_sim = (cfg.patterns - start) * cfg.n_circuits
    return {
        "final_apical_rms": final["apical_rms"],
        "initial_apical_rms": initial,
        "final_interneuron_error_rms": final["interneuron_error_rms"],
        "samples_per_second": n_sim / sim_seconds if sim_seconds else 0.0,
        "simulated_ms_per_second": n_sim * cfg.pattern_ms / sim_seconds if sim_seconds else 0.0,
    }


def _self_prediction_metrics(net: Microcircuit) -> dict[str, float]:
    """RMS apical potential and RMS rate mismatch between interneurons and their partners."""
    mismatch = [net.interneuron_rate[l] - net.rate[l + 1] for l in range(len(net.interneuron_rate))]
    return {"apical_rms": _rms(net.apical_potential), "interneuron_error_rms": _rms(mismatch)}


# --- dendritic.teacher ---------------------------------------------------------------------


@dataclass
class TeacherConfig(DynamicsConfig):
    n_input: int = 30
    """input width (teacher and student)"""
    student_hidden: int = 50
    """student hidden width (and its number of interneurons' partners above: n_output)"""
    teacher_hidden: int = 20
    """teacher hidden width"""
    n_output: int = 10
    """output width"""
    k10: float = 2.0
    """teacher gain of the first layer: r_target = phi(k21 W21 phi(k10 W10 r0))"""
    k21: float = 10.0
    """teacher gain of the second layer"""
    topdown_scale: float = 1.0
    """fixed random top-down weights are U(-1, 1) times this"""
    eta_hidden_factor: float = 1.0
    """the hidden layer's forward learning rate is eta_PP times this"""
    warmup_patterns: int = 1000
    """patterns per circuit with no target first, for the self-predicting state to emerge
    from the random start (forward weights fixed meanwhile)"""
    train_patterns: int = 5000
    """patterns per circuit with the teacher's target (the paper does not give its count)"""
    n_test: int = 500
    """test patterns (fixed, drawn once)"""
    eval_every: int = 50
    """training patterns between evaluations"""


@experiment(
    "dendritic.teacher",
    config=TeacherConfig,
    paper_title=PAPER,
    scales={
        "smoke": {
            "n_circuits": 32,
            "dt": 0.5,
            "pattern_ms": 10.0,
            "prospective": True,
            "eta_scale": 200.0,
            "topdown_scale": 5.0,
            "warmup_patterns": 10,
            "train_patterns": 40,
            "n_test": 100,
            "eval_every": 20,
        },
        "quick": {
            "n_circuits": 64,
            "dt": 0.5,
            "pattern_ms": 20.0,
            "prospective": True,
            "eta_scale": 50.0,
            "topdown_scale": 5.0,
            "warmup_patterns": 100,
            "train_patterns": 900,
            "eval_every": 20,
        },
    },
    demo=True,
)
@_threads
def teacher(cfg: TeacherConfig, ctx: RunContext) -> dict[str, float]:
    """Teacher-student regression in continuous time: microcircuit vs shallow learner."""
    _quick_note(cfg, ctx, extra=("topdown_scale",))
    phi = Transfer("softplus")
    gen = torch.Generator().manual_seed(ctx.seed)
    W10 = torch.rand(cfg.teacher_hidden, cfg.n_input, generator=gen) * 2 - 1
    W21 = torch.rand(cfg.n_output, cfg.teacher_hidden, generator=gen) * 2 - 1

    def teacher_voltage(r0: torch.Tensor) -> torch.Tensor:
        return cfg.k21 * phi(cfg.k10 * r0 @ W10.T) @ W21.T

    x_test = torch.rand(cfg.n_test, cfg.n_input, generator=gen) * 2 - 1
    r_test = phi(teacher_voltage(x_test)).to(ctx.device)

    def test_mse(net: Microcircuit) -> float:
        return float((phi(net.predict(x_test)[-1]) - r_test).pow(2).mean())

    eta = cfg.eta_PP * cfg.eta_scale
    sizes = [cfg.n_input, cfg.student_hidden, cfg.n_output]
    micro = _circuit(
        cfg, sizes, phi, eta_up=[eta * cfg.eta_hidden_factor, eta], generator=gen, device=ctx.device
    )
    with torch.no_grad():  # the student starts in the teacher's voltage range
        c_h, c_o = micro.attenuation
        micro.W_PP_up[0].mul_(cfg.k10 / c_h)
        micro.W_PP_up[1].mul_(cfg.k21 * math.sqrt(cfg.teacher_hidden / cfg.student_hidden) / c_o)
        micro.W_PP_down[0].mul_(cfg.topdown_scale)
    micro.reset_state(cfg.n_circuits)
    start_weights = [w.clone() for w in micro.W_PP_up]  # a function of the seed: also on resume
    shallow = copy.deepcopy(micro)
    shallow.eta_up = [0.0, eta]
    nets = {"microcircuit": micro, "shallow": shallow}
    initial_mse = test_mse(micro)
    shape = (cfg.n_circuits, cfg.n_input)
    n_total = cfg.warmup_patterns + cfg.train_patterns

    start, rows = 0, []
    state = ctx.resume()
    if state is not None:
        for name, net in nets.items():
            net.load_state_dict(state[name])
        start, rows = state["pattern"], state["rows"]
    bar = ctx.progress(n_total, initial=start)
    sim_seconds, simulated = 0.0, 0
    for i in range(start, n_total):
        x = _patterns(ctx.seed, i, shape)
        warmup = i < cfg.warmup_patterns
        u_target = None if warmup else teacher_voltage(x)
        tic = time.perf_counter()
        for name, net in nets.items():
            if name == "shallow" and warmup:
                continue  # the shallow learner copies the microcircuit after the warm-up
            saved = net.eta_up
            net.eta_up = [0.0] * net.n_layers if warmup else saved
            net.run(x, u_target, cfg.pattern_ms)
            net.eta_up = saved
            simulated += cfg.n_circuits
        sim_seconds += time.perf_counter() - tic
        if i + 1 == cfg.warmup_patterns:
            shallow.load_state_dict(micro.state_dict())
        step = i + 1
        if not warmup and ((step - cfg.warmup_patterns) % cfg.eval_every == 0 or step == n_total):
            row = {
                "test_mse": test_mse(micro),
                "test_mse_shallow": test_mse(shallow),
                "apical_rms": _rms(micro.apical_potential),
                **_continuous_alignment(micro, u_target),
                **topdown_alignment(micro),
            }
            ctx.log(step, **row)
            rows.append({"step": step, **row})
        elif warmup and (step % cfg.eval_every == 0 or step == cfg.warmup_patterns):
            ctx.log(step, apical_rms=_rms(micro.apical_potential))
        bar.update()
        ctx.boundary(
            lambda i=i: {
                "microcircuit": micro.state_dict(),
                "shallow": shallow.state_dict(),
                "pattern": i + 1,
                "rows": rows,
            }
        )
    bar.close()

    steps = [r["step"] - cfg.warmup_patterns for r in rows]
    line_plot(
        ctx.plots / "test_error.png",
        {
            "microcircuit": (steps, [r["test_mse"] for r in rows]),
            "shallow learner (output layer only)": (steps, [r["test_mse_shallow"] for r in rows]),
        },
        xlabel="training patterns per circuit",
        ylabel="test MSE (rates)",
        title="Teacher-student regression",
        logy=True,
    )
    _alignment_plot(ctx, steps, rows, "training patterns per circuit")
    tail = rows[-max(1, len(rows) // 5) :]
    final = rows[-1]
    mse, mse_shallow = final["test_mse"], final["test_mse_shallow"]
    verdict = "holds" if mse < mse_shallow else "does NOT hold"
    ctx.note(
        f"Paper's claim (microcircuit beats the shallow learner) {verdict} here: test MSE "
        f"{mse:.5f} vs {mse_shallow:.5f} (initial {initial_mse:.5f})."
    )
    return {
        "test_mse": mse,
        "test_mse_shallow": mse_shallow,
        "initial_test_mse": initial_mse,
        "alignment_cosine": sum(r["alignment_cosine"] for r in tail) / len(tail),
        "weight_alignment_cosine": final["weight_alignment_cosine/0"],
        "final_apical_rms": final["apical_rms"],
        **{
            f"{name}_weight_change": float((w - w0).norm() / w0.norm())
            for name, w, w0 in zip(("hidden", "output"), micro.W_PP_up, start_weights, strict=True)
        },
        "samples_per_second": simulated / sim_seconds if sim_seconds else 0.0,
        "simulated_ms_per_second": simulated * cfg.pattern_ms / sim_seconds if sim_seconds else 0.0,
    }


def _continuous_alignment(net: Microcircuit, u_target: torch.Tensor | None) -> dict[str, float]:
    """Cosine of the hidden layers' instantaneous Eq. 7 updates (summed over circuits) with
    backprop's for the same output error, at the current state."""
    errors = net.dendritic_errors(u_target)
    pre = [net.input_rate, *net.rate[:-1]]
    update = {f"W_PP_up.{l}": errors[l].T @ pre[l] for l in range(net.n_layers - 1)}
    reference = backprop_reference(net, net.input_rate, errors[-1])
    return alignment(update, reference).metrics(per_tensor=net.n_layers > 2)


def _alignment_plot(ctx: RunContext, steps: list[int], rows: list[dict], xlabel: str) -> None:
    """Top-down vs forward weight alignment, and update vs backprop alignment, over training."""
    series = {
        f"W_PP_down.{name.rsplit('/', 1)[1]} vs W_PP_up.{int(name.rsplit('/', 1)[1]) + 1}^T": (
            steps,
            [r[name] for r in rows],
        )
        for name in rows[0]
        if name.startswith("weight_alignment_cosine/")
    }
    series["hidden update vs backprop"] = (steps, [r["alignment_cosine"] for r in rows])
    line_plot(
        ctx.plots / "weight_alignment.png",
        series,
        xlabel=xlabel,
        ylabel="cosine",
        title="Alignment: top-down vs forward weights; update vs backprop",
    )


# --- dendritic.mnist -----------------------------------------------------------------------


@dataclass
class MnistConfig(DynamicsConfig, DataConfig):
    mode: Literal["sweeps", "continuous"] = "sweeps"
    """sweeps: the paper's two-sweep steady state per image; continuous: the full dynamics
    (each minibatch example one circuit, shown for pattern_ms; the dynamics fields apply,
    n_circuits is the batch size)"""
    hidden: tuple[int, ...] = (500, 500)
    """hidden layer widths"""
    epochs: int = 100
    """passes over the training set (the paper does not state its number)"""
    batch_size: int = 10
    """examples per minibatch"""
    optimizer: Literal["sgd", "adam"] = "sgd"
    """sweeps mode: optimiser fed with the microcircuit's updates; SGD keeps the plastic
    interneurons in step with the forward weights, Adam does not (see SweepsClassifier)"""
    lr: float = 0.03
    """sweeps mode: learning rate of every layer (0.04 destabilises the plastic
    interneurons: quick scale, ``--set lr=0.04`` gives 0.9495 test accuracy at seed 0 and
    0.9445 at seed 1, against 0.955 and 0.953 at 0.03)"""
    momentum: float = 0.9
    """SGD momentum (our choice; linear in the updates, so the interneurons still track)"""
    cosine_schedule: bool = True
    """decay the microcircuit's learning rates to 0 over the run (the backprop baseline
    always does: creditlab.train's recipe)"""
    lambda_output: float = 1.0
    """sweeps: share of the target in the output soma (1: the delta rule exactly). Weak
    nudging does not learn here, most likely because the rescaled output error tends to
    phi'(v)(u_target - v), which vanishes on the saturated logistic outputs of this
    initialisation: with the 8-epoch settings of interneuron_lr_factor's note, 0.1 gives
    0.103 (chance; also with interneurons=ideal, lr=0.05) and 0.5 gives 0.377 (with
    interneuron_lr_factor=0.5)"""
    lambda_interneuron: float = 0.2
    """sweeps: share of the partner's voltage in the interneuron soma (the paper gives no
    value; 0.2 lets 80% of the top-down error reach the apical compartment at first order,
    so the errors below are amplified less than with 0.5)"""
    lambda_apical: float = 0.5
    """sweeps: volts added to a hidden soma per volt of apical potential"""
    interneurons: Literal["plastic", "ideal"] = "plastic"
    """plastic: W_IP learns by Eq. 8 (the paper); ideal: kept at the self-predicting
    state after every step (ablation)"""
    interneuron_lr_factor: float = 0.5
    """sweeps: the interneurons' learning rate relative to the one that makes their
    prediction follow the forward weights' change to first order (see SweepsClassifier).
    With lambda_output = 1 the output error is the full rate difference while an
    interneuron sees only lambda_interneuron of the voltage gap, so Eq. 8's error is a
    different nonlinear function of it and the first-order rate overshoots. Test accuracy
    with ``creditlab run dendritic.mnist --scale quick --set epochs=8 --set lr=0.02 --set
    lambda_interneuron=0.5 --set interneuron_lr_factor=F``: F = 0.5 gives 0.9345, 1 gives
    0.9245, 2 gives 0.8695, 0.25 gives 0.9295, 0 (frozen interneurons) 0.713"""
    init_gain: float = 4.0
    """forward and top-down weights are Glorot-uniform times this (4: Glorot & Bengio's
    factor for logistic units), divided by the basal attenuation"""
    topdown_init: Literal["random", "transpose"] = "transpose"
    """fixed top-down weights: the transposed initial forward weights (the backprop limit
    of the paper's Sec. 3.1 at the start; they drift apart as W learns) or random
    (feedback alignment)"""
    target_low: float = 0.1
    """target rate of the wrong classes"""
    target_high: float = 0.8
    """target rate of the right class"""
    n_train: int = 0
    """use only the first n_train training examples (0: all)"""
    bp_optimizer: Literal["same", "sgd", "adam"] = "same"
    """backprop baseline's optimiser: "same" as the microcircuit's (and its momentum), so
    that only the learning rule differs; it starts from the microcircuit's initial weights"""
    bp_lr: float = 0.1
    """backprop baseline's learning rate (softmax cross-entropy, cosine-decayed, same
    minibatches, epochs and data)"""
    monitor_every: int = 200
    """minibatches between alignment measurements"""


def _mnist_net(
    cfg: MnistConfig,
    ds_input: int,
    n_classes: int,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> Microcircuit:
    """784-500-500-10 with logistic units and biases, forward weights Glorot-uniform times
    ``init_gain`` divided by the basal attenuation, fixed top-down weights, in the
    self-predicting state."""
    sizes = [ds_input, *cfg.hidden, n_classes]
    eta = cfg.eta_PP * cfg.eta_scale
    net = _circuit(
        cfg, sizes, Transfer("logistic"), eta_up=eta, bias=True, device=device, generator=generator
    )
    with torch.no_grad():
        for l, w in enumerate(net.W_PP_up):
            w.mul_(cfg.init_gain * math.sqrt(6 / (sizes[l] + sizes[l + 1])) / net.attenuation[l])
        for l, w in enumerate(net.W_PP_down):
            fan = sizes[l + 1] + sizes[l + 2]
            w.mul_(cfg.init_gain * math.sqrt(6 / fan) / net.attenuation[l + 1])
        if cfg.topdown_init == "transpose":
            net.symmetric_topdown_()
        net.self_predicting_()
    return net


def _backprop_twin(cfg: MnistConfig, n_in: int, n_classes: int, ctx: RunContext) -> nn.Module:
    """The logistic MLP of the same shape that computes, at the start, exactly the function
    of the microcircuit's initial forward weights (layer l: c_l W_l, c_l b_l)."""
    twin = _mnist_net(cfg, n_in, n_classes, ctx.device, torch.Generator().manual_seed(ctx.seed))
    model = mlp(n_in, cfg.hidden, n_classes, "sigmoid").to(ctx.device)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for layer, w, b, c in zip(
            linears, twin.W_PP_up, twin.b_PP_up, twin.attenuation, strict=True
        ):
            layer.weight.copy_(c * w)
            layer.bias.copy_(c * b)
    return model


class _Stage:
    """The run context seen by one of several :func:`fit` calls in a run: its checkpoints
    carry the finished stages' results, and its metric names get a prefix."""

    def __init__(self, ctx: RunContext, name: str, done: dict[str, Any], prefix: str = ""):
        self._ctx, self._name, self._done, self._prefix = ctx, name, done, prefix

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._ctx, attr)

    def resume(self) -> Any:
        saved = self._ctx.resume()
        return saved["state"] if saved is not None and saved["stage"] == self._name else None

    def checkpoint(self, state: Any) -> None:
        self._ctx.checkpoint({"stage": self._name, "state": state, "done": self._done})

    def boundary(self, state_fn: Any) -> None:
        self._ctx.boundary(lambda: {"stage": self._name, "state": state_fn(), "done": self._done})

    def log(self, step: int, **metrics: float) -> None:
        self._ctx.log(step, **{self._prefix + k: v for k, v in metrics.items()})


@experiment(
    "dendritic.mnist",
    config=MnistConfig,
    paper_title=PAPER,
    scales={
        "smoke": {
            "hidden": (64,),
            "epochs": 2,
            "n_train": 1000,
            "lr": 0.05,
            "bp_lr": 0.1,
            "monitor_every": 50,
        },
        "quick": {"epochs": 20},
        "paper": {"n_train": 55000},
    },
    paper={
        "test_accuracy": (0.9804, "Sacramento et al. 2018, Sec. 3.3: 1.96% test error", "mnist60k"),
        "test_accuracy_bp": (
            0.9847,
            "Sacramento et al. 2018, Sec. 3.3: backprop 1.53%",
            "mnist60k",
        ),
    },
    demo=True,
)
@_threads
def mnist(cfg: MnistConfig, ctx: RunContext) -> dict[str, float]:
    """784-500-500-10 microcircuit on MNIST or cfg.dataset (two-sweep mode) vs backprop."""
    ds, (x_train, y_train, x_test, y_test) = load_split(cfg.dataset, cfg.n_train, ctx)
    saved = ctx.resume()
    done: dict[str, Any] = saved["done"] if saved is not None else {}
    steps = cfg.epochs * max(1, len(x_train) // cfg.batch_size)

    def train(stage: _Stage, learner: Any, tic: float) -> dict[str, Any]:
        """Both learners see the same data, epochs and minibatches."""
        metrics = fit(
            stage,
            learner,
            x_train,
            y_train,
            x_test,
            y_test,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
        )
        seconds = time.perf_counter() - tic
        metrics["end_to_end_samples_per_second"] = cfg.epochs * len(x_train) / seconds
        return metrics

    if "microcircuit" not in done:
        stage = _Stage(ctx, "microcircuit", done)
        generator = torch.Generator().manual_seed(ctx.seed)  # the same net after a resume
        net = _mnist_net(cfg, math.prod(ds.input_shape), ds.n_classes, ctx.device, generator)
        ctx.note(
            "The backprop baseline starts from the same function (the microcircuit's initial "
            "forward weights) and trains with the same optimiser, momentum, minibatches, "
            "epochs and examples: only the learning rule differs."
        )
        targets = (cfg.target_low, cfg.target_high)
        if cfg.mode == "sweeps":
            lam = MixingFactors(cfg.lambda_output, cfg.lambda_interneuron, cfg.lambda_apical)
            learner = SweepsClassifier(
                net,
                lam,
                [cfg.lr] * net.n_layers,
                optimizer=cfg.optimizer,
                momentum=cfg.momentum,
                total_steps=steps if cfg.cosine_schedule else 0,
                interneurons=cfg.interneurons,
                interneuron_lr_factor=cfg.interneuron_lr_factor,
                target_rates=targets,
                n_classes=ds.n_classes,
                monitor=lambda step: stage.log(step, **learner.diagnostics(*probe)),
                monitor_every=cfg.monitor_every,
            )
        else:
            net.reset_state(cfg.batch_size)
            learner = ContinuousClassifier(
                net, cfg.pattern_ms, target_rates=targets, n_classes=ds.n_classes
            )
        probe = (x_train[:100], y_train[:100])
        metrics = train(stage, learner, time.perf_counter())
        if cfg.mode == "sweeps":
            metrics |= {
                k: v
                for k, v in learner.diagnostics(*probe).items()
                if k == "alignment_cosine" or k.startswith("weight_alignment_cosine/")
            }
        metrics["samples_per_second"] = learner.samples_per_second
        done["microcircuit"] = metrics
    if "backprop" not in done:
        tic = time.perf_counter()
        model = _backprop_twin(cfg, math.prod(ds.input_shape), ds.n_classes, ctx)
        optimizer = make_optimizer(
            model.parameters(),
            cfg.optimizer if cfg.bp_optimizer == "same" else cfg.bp_optimizer,
            cfg.bp_lr,
            cfg.momentum,
        )
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        stage = _Stage(ctx, "backprop", done, prefix="bp_")
        done["backprop"] = train(stage, BackpropClassifier(model, optimizer, schedule), tic)
    micro, bp = done["microcircuit"], done["backprop"]

    rows = [r for r in read_metrics(ctx.out / "metrics.jsonl") if "alignment_cosine" in r]
    if rows:
        _alignment_plot(ctx, [r["step"] for r in rows], rows, "minibatches")
    gap = 100 * (bp["test_accuracy"] - micro["test_accuracy"])
    where = f"{gap:.2f} points behind" if gap > 0 else f"{-gap:.2f} points ahead of"
    verdict = "met" if gap <= 1.5 else "NOT met"
    ctx.note(
        f"Microcircuit {micro['test_accuracy']:.4f} vs backprop MLP {bp['test_accuracy']:.4f} "
        f"test accuracy after {cfg.epochs} epochs on {len(x_train)} examples: {where} "
        f"backprop; the goal of at most 1.5 points is {verdict}."
    )
    if gap > 1.5 and cfg.mode == "sweeps" and cfg.interneurons == "plastic":
        ctx.note(
            "Why: the interneurons (Eq. 8) must track the forward weights they predict, which "
            "caps the stable learning rate (larger rates degrade the apical errors); the "
            "fixed top-down weights drift from the forward weights; and the output rule is "
            "the delta rule on 0.1/0.8 targets, not softmax cross-entropy. --set "
            "interneurons=ideal measures the first cost."
        )
    weight_cos = [v for k, v in micro.items() if k.startswith("weight_alignment_cosine/")]
    out = {
        "test_accuracy": micro["test_accuracy"],
        "train_accuracy": micro["train_accuracy"],
        "test_accuracy_bp": bp["test_accuracy"],
        "train_accuracy_bp": bp["train_accuracy"],
        "samples_per_second": micro["samples_per_second"],
        "end_to_end_samples_per_second": micro["end_to_end_samples_per_second"],
        "bp_end_to_end_samples_per_second": bp["end_to_end_samples_per_second"],
    }
    if "alignment_cosine" in micro:
        out["alignment_cosine"] = micro["alignment_cosine"]
    if weight_cos:
        out["weight_alignment_cosine"] = sum(weight_cos) / len(weight_cos)
    return out
