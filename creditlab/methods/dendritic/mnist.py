"""The paper's MNIST comparison (Sec. 3.4): the 784-500-500-10 microcircuit and its
backprop twin, the comparison's rows and their training. ``cfg`` is the run's
``experiments.MnistConfig`` (or ``MnistRowsConfig``); this module sits below
:mod:`~creditlab.methods.dendritic.experiments` and does not import it."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import torch
from torch import nn

from creditlab.errors import UserError
from creditlab.methods.dendritic.figures import alignment_plot
from creditlab.methods.dendritic.learners import ContinuousClassifier, SweepsClassifier
from creditlab.methods.dendritic.microcircuit import Microcircuit, Transfer
from creditlab.models import mlp
from creditlab.rundir import METRICS_FILE, read_metrics
from creditlab.runner import RunContext, StageContext, finished_stages
from creditlab.train import BackpropClassifier, fit, load_split, make_optimizer

Config = Any  # an experiments.MnistConfig

ROWS = ("microcircuit", "frozen_hidden", "shallow", "learned_topdown", "backprop")
"""The rows of the paper's MNIST comparison (Sec. 3.4 and Fig. 3B), in its order."""


def mnist_net(
    cfg: Config,
    ds_input: int,
    n_classes: int,
    device: torch.device,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    self_predicting: bool = True,
) -> Microcircuit:
    """784-500-500-10 with logistic units and biases: forward weights Glorot-uniform times
    ``init_gain`` (the output layer ``output_init_gain``) divided by the basal attenuation,
    fixed top-down weights (random, ``topdown_gain``, or transposed), in the self-predicting
    state (unless ``self_predicting=False``: W_IP and W_PI random, Glorot-scaled like the
    weights they mirror)."""
    sizes = [ds_input, *cfg.hidden, n_classes]
    eta = cfg.eta_PP * cfg.eta_scale
    net = cfg.microcircuit(
        sizes,
        Transfer("logistic"),
        eta_up=eta,
        bias=True,
        device=device,
        generator=generator,
        dtype=dtype,
    )
    with torch.no_grad():
        for l, w in enumerate(net.W_PP_up):
            gain = cfg.output_init_gain if l == net.n_layers - 1 else cfg.init_gain
            w.mul_(gain * math.sqrt(6 / (sizes[l] + sizes[l + 1])) / net.attenuation[l])
        for l, w in enumerate(net.W_PP_down):
            fan = sizes[l + 1] + sizes[l + 2]
            w.mul_(cfg.topdown_gain * math.sqrt(6 / fan) / net.attenuation[l + 1])
        if cfg.topdown_init == "transpose_weight_transport":
            net.symmetric_topdown_()
        if self_predicting:
            net.self_predicting_()
        else:  # random lateral weights, scaled like the forward and top-down ones they mirror
            for l, (w_IP, w_PI) in enumerate(zip(net.W_IP, net.W_PI, strict=True)):
                glorot = math.sqrt(6 / (sizes[l + 1] + sizes[l + 2]))
                w_IP.mul_(cfg.init_gain * glorot / net.g.dendrite_attenuation)
                w_PI.mul_(cfg.topdown_gain * glorot / net.attenuation[l + 1])
    return net


def backprop_twin(cfg: Config, n_in: int, n_classes: int, ctx: RunContext) -> nn.Module:
    """The logistic MLP of the same shape that computes, at the start, exactly the function
    of the microcircuit's initial forward weights (layer l: c_l W_l, c_l b_l)."""
    twin = mnist_net(cfg, n_in, n_classes, ctx.device, ctx.generator())
    model = mlp(n_in, cfg.hidden, n_classes, "sigmoid").to(ctx.device)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for layer, w, b, c in zip(
            linears, twin.W_PP_up, twin.b_PP_up, twin.attenuation, strict=True
        ):
            layer.weight.copy_(c * w)
            layer.bias.copy_(c * b)
    return model


def row_config(cfg: Config, row: str) -> Config:
    """The settings of one row: the learned-top-down row is the paper's 784-1000-10."""
    if row == "learned_topdown":
        return dataclasses.replace(cfg, hidden=cfg.learned_topdown_hidden)
    return cfg


def row_learning_rates(cfg: Config, row: str, n_layers: int) -> list[float]:
    """Per-layer forward learning rates: frozen_hidden fixes the weights between hidden
    layers (the paper: "keeping fixed the pyramidal-pyramidal weights connecting the two
    hidden layers"), shallow every layer but the output."""
    lr = [cfg.lr] * n_layers
    if row == "frozen_hidden":
        if n_layers < 3:
            raise UserError("the frozen_hidden row needs at least two hidden layers")
        lr[1:-1] = [0.0] * (n_layers - 2)
    elif row == "shallow":
        lr[:-1] = [0.0] * (n_layers - 1)
    return lr


def train_microcircuit(
    cfg: Config, row: str, ctx: RunContext, stage: StageContext, split: tuple, n_classes: int
) -> dict[str, Any]:
    """One microcircuit row (sweeps or continuous mode) on the split; its final metrics."""
    x_train, y_train, x_test, y_test = split
    cfg = row_config(cfg, row)
    steps = cfg.epochs * max(1, len(x_train) // cfg.batch_size)
    learned = row == "learned_topdown"
    start_self_predicting = not learned or cfg.learned_topdown_start == "self_predicting"
    generator = ctx.generator()  # the same net after a resume
    net = mnist_net(
        cfg,
        x_train[0].numel(),
        n_classes,
        ctx.device,
        generator,
        self_predicting=start_self_predicting,
    )
    targets = (cfg.target_low, cfg.target_high)
    probe = (x_train[:100], y_train[:100])
    if cfg.mode == "sweeps":
        learner = SweepsClassifier(
            net,
            cfg.mixing_factors(),
            row_learning_rates(cfg, row, net.n_layers),
            optimizer=cfg.optimizer,
            momentum=cfg.momentum,
            total_steps=steps if cfg.cosine_schedule else 0,
            interneurons=cfg.interneurons,
            interneuron_lr_factor=cfg.interneuron_lr_factor,
            lr_PI=cfg.lr_PI if learned else 0.0,
            lr_down=cfg.lr_down if learned else 0.0,
            target_rates=targets,
            n_classes=n_classes,
            monitor=lambda step: stage.log(step, **learner.diagnostics(*probe)),
            monitor_every=cfg.monitor_every,
        )
    else:
        if row != "microcircuit":
            raise UserError(f"the {row} row runs in sweeps mode only (set mode=sweeps)")
        net.reset_state(cfg.batch_size)
        learner = ContinuousClassifier(
            net, cfg.pattern_ms, target_rates=targets, n_classes=n_classes
        )
    start_weights = {k: w.clone() for k, w in net.weights().items()}
    tic = time.perf_counter()
    metrics = _timed_fit(cfg, stage, learner, split, tic)
    if cfg.mode == "sweeps":
        metrics |= {
            k: v
            for k, v in learner.diagnostics(*probe).items()
            if k == "alignment_cosine" or k.startswith("weight_alignment_cosine/")
        }
    metrics["samples_per_second"] = learner.samples_per_second
    for name, w in net.weights().items():  # how far each layer moved (0: frozen or fixed)
        if name.startswith(("W_PP_up.", "W_PP_down.")):
            w0 = start_weights[name]
            change = (w - w0).norm() / torch.maximum(w.norm(), w0.norm()).clamp_min(1e-12)
            metrics["weight_change_" + name.replace(".", "")] = float(change)
    return metrics


def _timed_fit(
    cfg: Config, stage: StageContext, learner: Any, split: tuple, tic: float
) -> dict[str, Any]:
    """Train ``learner`` on ``split`` with the config's epochs and minibatches; adds
    ``train_seconds`` since ``tic``. Every row trains through this one call."""
    metrics = fit(stage, learner, *split, epochs=cfg.epochs, batch_size=cfg.batch_size)
    metrics["train_seconds"] = time.perf_counter() - tic
    return metrics


def train_backprop(
    cfg: Config, ctx: RunContext, stage: StageContext, split: tuple, n_classes: int
) -> dict[str, Any]:
    """The backprop MLP twin: same start, split, epochs, minibatches and optimiser."""
    x_train, y_train, x_test, y_test = split
    steps = cfg.epochs * max(1, len(x_train) // cfg.batch_size)
    tic = time.perf_counter()
    model = backprop_twin(cfg, x_train[0].numel(), n_classes, ctx)
    optimizer = make_optimizer(
        model.parameters(),
        cfg.optimizer if cfg.bp_optimizer == "same" else cfg.bp_optimizer,
        cfg.bp_lr,
        cfg.momentum,
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    learner = BackpropClassifier(model, optimizer, schedule)
    metrics = _timed_fit(cfg, stage, learner, split, tic)
    return metrics


def run_rows(
    cfg: Config, ctx: RunContext, rows: tuple[str, ...], prefixes: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """Train each row in turn on the same split (one checkpointed stage each, metric names
    prefixed by ``prefixes[row]``); the rows' final metrics by name."""
    unknown = [r for r in rows if r not in ROWS]
    if unknown or not rows:
        raise UserError(f"rows: unknown {unknown or 'none given'}; choose from {', '.join(ROWS)}")
    ds, split = load_split(cfg.dataset, cfg.n_train, ctx)
    if cfg.holdout > 0:
        x, y = split[0], split[1]
        if cfg.holdout >= len(x):
            raise UserError(f"holdout={cfg.holdout} leaves no training examples (n={len(x)})")
        split = (x[: -cfg.holdout], y[: -cfg.holdout], x[-cfg.holdout :], y[-cfg.holdout :])
        ctx.data |= {"n_train": len(split[0]), "evaluated_on": f"holdout of {cfg.holdout}"}
        ctx.note(
            f"Evaluated on the last {cfg.holdout} training examples (held out, not trained "
            "on), not the test set: every test_accuracy here is a holdout accuracy."
        )
    done: dict[str, Any] = finished_stages(ctx, {})
    if "backprop" in rows:
        ctx.note(
            "The backprop baseline starts from the same function (the microcircuit's initial "
            "forward weights) and trains with the same optimiser, momentum, minibatches, "
            "epochs and examples: only the learning rule differs."
        )
    for row in rows:
        if row in done:
            continue
        stage = StageContext(ctx, row, done, prefix=prefixes[row])
        if row == "backprop":
            done[row] = train_backprop(cfg, ctx, stage, split, ds.n_classes)
        else:
            done[row] = train_microcircuit(cfg, row, ctx, stage, split, ds.n_classes)
    metrics = read_metrics(ctx.out / METRICS_FILE)
    prefix = prefixes.get("microcircuit", "")
    aligned = [r for r in metrics if prefix + "alignment_cosine" in r]
    steps = [r["step"] for r in aligned]
    if aligned and prefix == "":
        alignment_plot(ctx.plots / "weight_alignment.png", steps, aligned, "minibatches")
    return {row: done[row] for row in rows}


def weight_alignment(micro: dict[str, Any]) -> dict[str, float]:
    cos = [v for k, v in micro.items() if k.startswith("weight_alignment_cosine/")]
    out = {}
    if "alignment_cosine" in micro:
        out["alignment_cosine"] = micro["alignment_cosine"]
    if cos:
        out["weight_alignment_cosine"] = sum(cos) / len(cos)
    return out
