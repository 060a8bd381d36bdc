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
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from scipy import stats
from torch import nn

from creditlab.data import ClassifierData
from creditlab.diagnostics.relu import ReluMonitor, too_dead
from creditlab.errors import UserError
from creditlab.plots import DPI, line_plot
from creditlab.registry import experiment
from creditlab.runner import RunContext, StageContext, finished_stages
from creditlab.train import (
    BackpropClassifier,
    TrainingConfig,
    evaluate_logits,
    fit,
    load_split,
    make_optimizer,
)

PAPER_TITLE = (
    "Douglas & Yu, 'Why ReLU Units Sometimes Die: Analysis of Single-Unit Error "
    "Backpropagation in Neural Networks' (Asilomar 2018, arXiv 1812.05981)"
)

# =====================================================================================
# relu.layers: activation probability per layer in a plain and a residual CNN
# =====================================================================================


@dataclass
class LayersConfig(TrainingConfig):
    """relu.layers. Each seed trains a plain and a residual net side by side until **both**
    have converged by the plateau criterion (:func:`plateaued`): with L_e the epoch training
    loss (the mean minibatch loss of epoch e), training stops after the first epoch at which,
    for both nets, the best L over the last ``plateau_epochs`` (k) epochs improves on the best
    before them by less than ``plateau_tolerance`` (x) times the first epoch's loss,
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
    dead_threshold: float = 0.1
    """warn when this fraction of a layer's units never fires (keras-contrib: 10%)"""


def conv_relu(c_in: int, c_out: int, batch_norm: bool) -> list[nn.Module]:
    """3x3 conv (same padding), optional batch norm; the ReLU is added by the caller."""
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batch_norm)
    return [conv, nn.BatchNorm2d(c_out)] if batch_norm else [conv]


class Block(nn.Module):
    """Two 3x3 conv layers of one width: ``relu_b(x + F(x))`` with the skip (residual), or
    ``relu_b(F(x))`` without it (plain), where F(x) = conv_b(relu_a(conv_a(x))).

    The plain and residual blocks have the same parameters under the same names, so a plain
    and a residual net built from one spec hold exactly the same weights.
    """

    def __init__(self, width: int, residual: bool, batch_norm: bool):
        super().__init__()
        self.residual = residual
        self.conv_a = nn.Sequential(*conv_relu(width, width, batch_norm))
        self.relu_a = nn.ReLU()
        self.conv_b = nn.Sequential(*conv_relu(width, width, batch_norm))
        self.relu_b = nn.ReLU()  # in the residual net its input y = x + F(x) carries the skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv_b(self.relu_a(self.conv_a(x)))
        return self.relu_b(x + z if self.residual else z)


class StageCNN(nn.Module):
    """A VGG-style CNN (``residual=False``: conv-ReLU layers only, no skips) or its residual
    twin (identity skips around each pair of same-width convs, as in He et al. 2016).

    Per stage of width c: a conv that sets the width, then (convs_per_stage - 1) / 2 blocks of
    two convs, then a 2x2 max-pool (VGG's layout); then one linear layer on the flattened maps.
    Inputs are standardised inside the net with the training set's mean and std (so MNIST's
    all-zero background gives non-zero pre-activations). Every ReLU is its own module, so a
    :class:`ReluMonitor` sees one layer per conv, in order.
    """

    def __init__(
        self,
        widths: tuple[int, ...],
        convs_per_stage: int,
        residual: bool,
        batch_norm: bool = False,
        in_channels: int = 1,
        input_size: int = 28,
        n_classes: int = 10,
        mean: float = 0.0,
        std: float = 1.0,
    ):
        super().__init__()
        if convs_per_stage < 1 or convs_per_stage % 2 == 0:
            raise UserError(f"convs_per_stage must be odd (1, 3, 5, ...), got {convs_per_stage}")
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))
        stages, c_in = [], in_channels
        for width in widths:
            layers: list[nn.Module] = [*conv_relu(c_in, width, batch_norm), nn.ReLU()]
            layers += [Block(width, residual, batch_norm) for _ in range(convs_per_stage // 2)]
            stages.append(nn.Sequential(*layers))
            c_in = width
        self.stages = nn.ModuleList(stages)
        side = input_size
        for _ in widths:
            side //= 2
        if side < 1:
            raise UserError(f"{len(widths)} stages of 2x2 pooling leave nothing of {input_size} px")
        self.classifier = nn.Linear(c_in * side * side, n_classes)
        for module in self.modules():  # He et al. 2015 init, torchvision's VGG/ResNet recipe
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        for stage in self.stages:
            x = nn.functional.max_pool2d(stage(x), 2)
        return self.classifier(x.flatten(1))

    def skip_layers(self) -> list[bool]:
        """For each ReLU in forward order: whether its input y carries an identity skip."""
        flags: list[bool] = []
        for stage in self.stages:
            for module in stage:
                if isinstance(module, Block):
                    flags += [False, module.residual]  # relu_a, relu_b
                elif isinstance(module, nn.ReLU):
                    flags.append(False)
        return flags


def twin_nets(spec: dict[str, Any], seed: int) -> tuple[StageCNN, StageCNN]:
    """A plain :class:`StageCNN` drawn from ``seed`` and its residual twin holding exactly the
    same weights, so the identity skips are the only difference. The global torch generator
    is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        plain = StageCNN(residual=False, **spec)
        residual = StageCNN(residual=True, **spec)
    residual.load_state_dict(plain.state_dict())
    return plain, residual


def plateaued(losses: Sequence[float], window: int, tolerance: float) -> bool:
    """The plateau criterion: the best of the last ``window`` epoch losses improves on the best
    before them by less than ``tolerance`` times the first epoch's loss,

        min(L[:-k]) - min(L[-k:]) < tol * L[0].

    The improvement is measured against the first epoch's loss, not the current one, so a loss
    that has fallen to about zero (a memorised training set) counts as flat even though it keeps
    halving relative to itself. False until there are more than ``window`` epochs."""
    if len(losses) <= window:
        return False
    return min(losses[:-window]) - min(losses[-window:]) < tolerance * losses[0]


class TwinLearner:
    """Backprop on the plain and the residual net side by side, on the same minibatches, with a
    :class:`ReluMonitor` on each as the training callback: after the last batch of every epoch
    it logs the epoch's Pr[y > 0] over the training batches (``train_relu_*``, weights as they
    were when each batch ran), each net's epoch training loss (the mean minibatch loss, what
    the plateau criterion reads) and the residual net's test metrics. Once both nets' epoch
    losses have plateaued (:func:`plateaued`), ``converged`` turns True and ``fit`` stops at
    that epoch's boundary (a resumed run stops at the same place).

    ``fit`` sees one learner: its ``loss``/``accuracy`` are the plain net's; the state holds
    both nets, the monitors' counts and the history, so a resumed run equals an unbroken one.
    """

    def __init__(
        self,
        ctx: RunContext,
        plain: BackpropClassifier,
        residual: BackpropClassifier,
        batches_per_epoch: int,
        x_test: torch.Tensor,
        y_test: torch.Tensor,
        threshold: float,
        plateau_epochs: int,
        plateau_tolerance: float,
    ):
        self.ctx, self.batches_per_epoch = ctx, batches_per_epoch
        self.x_test, self.y_test = x_test, y_test
        self.plateau_epochs, self.plateau_tolerance = plateau_epochs, plateau_tolerance
        self.learners = {"plain": plain, "residual": residual}
        self.monitors = {
            net: ReluMonitor(
                learner.model,
                threshold=threshold,
                ctx=ctx,
                prefix="train_relu_" if net == "plain" else "train_relu_residual_",
                per_layer=False,
            ).attach()
            for net, learner in self.learners.items()
        }
        self.steps = 0
        self.history: dict[str, list[list[float]]] = {"plain": [], "residual": []}
        self.epoch_loss: dict[str, list[float]] = {"plain": [], "residual": []}
        self._loss_sum = {"plain": 0.0, "residual": 0.0}  # over the epoch's batches so far
        self.converged_at: int | None = None  # the epoch at which both nets had plateaued
        # Measurements taken before training (set by the caller), kept in the checkpoint so
        # that a resumed run reports the ones of the uninterrupted run.
        self.init: dict[str, Any] = {}

    @property
    def epochs_done(self) -> int:
        return self.steps // self.batches_per_epoch

    @property
    def converged(self) -> bool:
        """Both nets' training losses have plateaued: ``fit`` stops after this epoch."""
        return self.converged_at is not None

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        out = {net: learner.train_step(x, y)["loss"] for net, learner in self.learners.items()}
        self.steps += 1
        self.ctx.check_finite(self.steps, train_loss_residual=out["residual"])
        for net, loss in out.items():
            self._loss_sum[net] += loss
        if self.steps % self.batches_per_epoch == 0:  # the callback, once per epoch
            self._epoch_end()
        return {"loss": out["plain"], "loss_residual": out["residual"]}

    def _epoch_end(self) -> None:
        epoch = self.epochs_done
        for net, monitor in self.monitors.items():
            summary = monitor.epoch_end(epoch, step=self.steps)
            self.history[net].append([v.activation_probability for v in summary.values()])
            self.epoch_loss[net].append(self._loss_sum[net] / self.batches_per_epoch)
            self._loss_sum[net] = 0.0
        with self.monitors["residual"].paused():
            test = self.learners["residual"].evaluate(self.x_test, self.y_test)
        self.ctx.log(
            self.steps,
            epoch_train_loss=self.epoch_loss["plain"][-1],
            epoch_train_loss_residual=self.epoch_loss["residual"][-1],
            test_accuracy_residual=test["accuracy"],
            test_loss_residual=test["loss"],
        )
        window, tolerance = self.plateau_epochs, self.plateau_tolerance
        if all(plateaued(losses, window, tolerance) for losses in self.epoch_loss.values()):
            self.converged_at = epoch

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        with self.monitors["plain"].paused(), self.monitors["residual"].paused():
            return self.learners["plain"].evaluate(x, y)

    def state_dict(self) -> dict[str, Any]:
        return {
            "learners": {net: lr.state_dict() for net, lr in self.learners.items()},
            "monitors": {net: mon.state_dict() for net, mon in self.monitors.items()},
            "steps": self.steps,
            "history": {net: [list(h) for h in hist] for net, hist in self.history.items()},
            "epoch_loss": {net: list(losses) for net, losses in self.epoch_loss.items()},
            "loss_sum": dict(self._loss_sum),
            "converged_at": self.converged_at,
            "init": self.init,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for net, learner in self.learners.items():
            learner.load_state_dict(state["learners"][net])
            self.monitors[net].load_state_dict(state["monitors"][net])
        self.steps = state["steps"]
        self.history = {net: [list(h) for h in hist] for net, hist in state["history"].items()}
        self.epoch_loss = {net: list(v) for net, v in state["epoch_loss"].items()}
        self._loss_sum = dict(state["loss_sum"])
        self.converged_at = state["converged_at"]
        self.init = state["init"]

    def close(self) -> None:
        for monitor in self.monitors.values():
            monitor.detach()


@torch.no_grad()
def layer_liveness(
    model: nn.Module, x: torch.Tensor, threshold: float, warn: bool, batch_size: int = 500
) -> tuple[list[float], list[float]]:
    """Pr[y > 0] and the dead fraction of each ReLU layer (forward order) over ``x``, with the
    model in eval mode; warns (DeadReluWarning) about layers at or past ``threshold``."""
    model.eval()
    with ReluMonitor(model, threshold=threshold, warn=warn) as monitor:
        for i in range(0, len(x), batch_size):
            model(x[i : i + batch_size])
    summary = monitor.summary()
    monitor.check(summary)
    return (
        [v.activation_probability for v in summary.values()],
        [v.dead_fraction for v in summary.values()],
    )


def train_twins(
    cfg: LayersConfig, ctx: StageContext, spec: dict[str, Any], split: tuple
) -> dict[str, Any]:
    """One seed: build the twin nets from ``ctx.seed``, measure them at init, train them on
    the same minibatches until both plateau (or ``cfg.epochs``), and measure them again."""
    x_train, y_train, x_test, y_test = split
    nets = dict(zip(("plain", "residual"), twin_nets(spec, ctx.seed), strict=True))
    n_batches = max(1, len(x_train) // cfg.batch_size)
    learners = {}
    for net, model in nets.items():
        model.to(ctx.device)
        optimizer = make_optimizer(
            model.parameters(), cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay
        )
        learners[net] = BackpropClassifier(model, optimizer)
    twin = TwinLearner(
        ctx,
        learners["plain"],
        learners["residual"],
        n_batches,
        x_test,
        y_test,
        cfg.dead_threshold,
        cfg.plateau_epochs,
        cfg.plateau_tolerance,
    )
    with twin.monitors["plain"].paused(), twin.monitors["residual"].paused():
        twin.init = {
            net: layer_liveness(m, x_test, cfg.dead_threshold, False) for net, m in nets.items()
        }
    try:
        fit(
            ctx,
            twin,
            x_train,
            y_train,
            x_test,
            y_test,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
        )
    finally:
        twin.close()
    final = {}
    with torch.no_grad():
        for net, model in nets.items():
            model.eval()
            train = evaluate_logits(model, x_train, y_train)
            test = evaluate_logits(model, x_test, y_test)
            final[net] = {
                "train_loss": train["loss"],
                "train_accuracy": train["accuracy"],
                "test_loss": test["loss"],
                "test_accuracy": test["accuracy"],
            }
    return {
        "seed": ctx.seed,
        "steps": twin.steps,
        "epochs": twin.epochs_done,
        "converged": twin.converged_at is not None,
        "epoch_loss": twin.epoch_loss,
        "init": twin.init,
        "trained": {
            net: layer_liveness(m, x_test, cfg.dead_threshold, True) for net, m in nets.items()
        },
        "final": final,
        "history": twin.history,
        "parameters": {net: sum(p.numel() for p in m.parameters()) for net, m in nets.items()},
        "skips": nets["residual"].skip_layers(),
    }


# --- the verdicts: pure functions of the measured numbers ------------------------------------


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


# --- the experiment ----------------------------------------------------------------------------


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

    For each of ``cfg.seeds`` seeds, both nets are built from one spec (:class:`StageCNN`),
    start from the same weights (:func:`twin_nets`) and see the same minibatches
    (:class:`TwinLearner` under the shared ``fit`` loop, Adam at a constant learning rate),
    so the identity skips are the only difference; they train until both epoch training
    losses plateau (see :class:`LayersConfig`). Pr[y > 0] and the dead fraction of every ReLU
    layer are counted over the test set by :class:`ReluMonitor` before and after training (a
    conv unit is a channel, pooled over positions); during training the monitors log the
    epoch's mean and worst layer as ``train_relu_*``. The paper's claims are judged on the
    per-layer values of all seeds together (:class:`ClaimVerdicts`: below 0.5, and falling
    with depth by Spearman's rho), and the notes say plainly when they do not hold. Metrics:
    per layer k the mean over seeds (``activation_probability_layer_k``) and its spread
    (``activation_probability_std_layer_k``); every seed's values are in ``seeds.json``.
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

    _plot_layers(ctx.plots / "activation_probability.png", trained, init, cfg, ctx.data)
    first = done[0]
    for net, suffix in (("plain", ""), ("residual", "_residual")):
        if len(first["history"][net]) >= 3:  # a curve over epochs needs a few of them
            curve = list(range(1, len(first["history"][net]) + 1))
            per_layer = list(zip(*first["history"][net], strict=True))
            shown = sorted({round(i) for i in np.linspace(1, depth, min(depth, 8))})
            line_plot(
                ctx.plots / f"activation_probability_training{suffix}.png",
                {f"layer {k}": (curve, per_layer[k - 1]) for k in shown},
                xlabel="epoch",
                ylabel="Pr[y > 0] over the epoch's training batches",
                title=f"{net} net, seed {first['seed']}: activation probability during training",
            )
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
        f"Measured on {ctx.data.get('protocol', cfg.dataset)} ({len(x_train)} training / "
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


def _plot_layers(
    path: Any, trained: dict[str, np.ndarray], init: dict[str, np.ndarray], cfg: Any, data: dict
) -> None:
    """Pr[y > 0] per layer, plain and residual: the mean over seeds after training with a band
    from the lowest to the highest seed, and the mean at init (dashed)."""
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
        f"{data.get('protocol', cfg.dataset)}, {n_seeds} seeds: activation probability per layer",
        fontsize=10,
    )
    ax.grid(True, alpha=0.35)
    ax.legend(fontsize=8, frameon=False)
    fig.savefig(path, dpi=DPI)


# =====================================================================================
# relu.single_unit: expected update and convergence time as a function of Pr[y > 0]
# =====================================================================================
#
# Model (Douglas & Yu):  y = w^T x + b,  f(y) = max(0, y),  x ~ N(0, I_d).
# Write theta = (w, b) and x~ = (x, 1), so y = theta^T x~. Target: a linear teacher
# t = theta*^T x~ (why: see relu_single_unit's docstring). Error e = t - f(y). Rule:
#     theta <- theta + mu e 1[y > 0] x~                                              (1)


def truncated_gaussian_terms(w: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
    """For y = w^T x + b with x ~ N(0, I): unit direction w_hat = w / ||w||, a = b / ||w||,
    p = Pr[y > 0] = Phi(a) and phi(a), the standard normal density at a. Batched over
    leading dimensions of ``w`` (..., d) and ``b`` (...)."""
    norm = w.norm(dim=-1)
    a = b / norm
    return {
        "w_hat": w / norm.unsqueeze(-1),
        "a": a,
        "p": torch.special.ndtr(a),  # p = Phi(b / ||w||)
        "phi": torch.exp(-0.5 * a**2) / math.sqrt(2 * math.pi),
    }


def activation_matrix(w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """H(theta) = E[1[y > 0] x~ x~^T] in closed form (Eq. 3), shape (..., d+1, d+1).

    With u = w_hat^T x ~ N(0, 1) and x_perp = x - u w_hat independent of u, y > 0 <=> u > -a:
    E[1] = p, E[1 u] = phi(a), E[1 u^2] = p - a phi(a), E[1 x_perp x_perp^T] = p (I - w_hat
    w_hat^T), cross terms zero. So
        H = [[p (I - w_hat w_hat^T) + (p - a phi) w_hat w_hat^T,  phi w_hat],
             [phi w_hat^T,                                        p        ]].           (3)
    """
    g = truncated_gaussian_terms(w, b)
    d = w.shape[-1]
    p, a, phi, w_hat = g["p"], g["a"], g["phi"], g["w_hat"]
    outer = w_hat.unsqueeze(-1) * w_hat.unsqueeze(-2)
    eye = torch.eye(d, dtype=w.dtype, device=w.device)
    h = torch.zeros(*w.shape[:-1], d + 1, d + 1, dtype=w.dtype, device=w.device)
    pp, radial = p[..., None, None], (p - a * phi)[..., None, None]
    h[..., :d, :d] = pp * (eye - outer) + radial * outer
    h[..., :d, d] = phi.unsqueeze(-1) * w_hat  # E[1[y>0] x] = phi(a) w_hat              (3a)
    h[..., d, :d] = phi.unsqueeze(-1) * w_hat
    h[..., d, d] = p
    return h


def expected_update(
    w: torch.Tensor, b: torch.Tensor, w_star: torch.Tensor, b_star: torch.Tensor, mu: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """E[delta w], E[delta b] of rule (1) for the linear teacher (w*, b*), in closed form:
    E[Delta theta] = mu E[(t - y) 1[y > 0] x~] = -mu H(theta) (theta - theta*)        (2)
    (exact: where y > 0, f(y) = y, so e = -(theta - theta*)^T x~)."""
    d = w.shape[-1]
    delta = torch.cat([w - w_star, (b - b_star).unsqueeze(-1)], dim=-1)
    step = -mu * (activation_matrix(w, b) @ delta.unsqueeze(-1)).squeeze(-1)
    return step[..., :d], step[..., d]


def activation_spectrum(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two eigenvalues lambda_+/- of H in the (w_hat, bias) plane at Pr[y > 0] = p (Eq. 4);
    the other d - 1 eigenvalues are p."""
    a = torch.special.ndtri(p)
    phi = torch.exp(-0.5 * a**2) / math.sqrt(2 * math.pi)
    centre, radius = p - a * phi / 2, torch.sqrt((a * phi / 2) ** 2 + phi**2)
    return centre + radius, centre - radius


def linearised_convergence_time(p: torch.Tensor, mu: float, tolerance: float) -> torch.Tensor:
    """Steps for the expected error off the (w_hat, bias) plane to shrink by ``tolerance``
    near the optimum (Eq. 5): (1 - mu p)^T = tolerance, T = ln(1/tol) / -ln(1 - mu p)."""
    return math.log(1 / tolerance) / -torch.log1p(-mu * p)


def mean_field_convergence_time(
    theta0: torch.Tensor, theta_star: torch.Tensor, mu: float, tolerance: float, max_steps: int
) -> torch.Tensor:
    """First t with ||theta_t - theta*|| <= tolerance ||theta_0 - theta*|| under the expected
    dynamics theta_{t+1} = theta_t - mu H(theta_t) (theta_t - theta*) (Eq. 6), for each row of
    ``theta0`` (K, d+1); ``max_steps`` where it is not reached."""
    theta, d = theta0.clone(), theta0.shape[-1] - 1
    threshold = tolerance**2 * ((theta0 - theta_star) ** 2).sum(-1)
    alive = torch.ones(len(theta), dtype=torch.bool)
    steps = torch.zeros(len(theta), dtype=torch.long)
    for _ in range(max_steps):
        delta = theta - theta_star
        theta = (
            theta - mu * (activation_matrix(theta[:, :d], theta[:, d]) @ delta[..., None])[..., 0]
        )
        alive &= ((theta - theta_star) ** 2).sum(-1) > threshold
        steps += alive
        if not alive.any():
            break
    return steps + 1 - alive.long()  # the step at which it crossed (1-based)


def simulate_single_unit(
    theta0: torch.Tensor,
    theta_star: torch.Tensor,
    mu: float,
    runs: int,
    tolerance: float,
    max_steps: int,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run rule (1) from each row of ``theta0`` (K, d+1) towards ``theta_star`` (K, d+1),
    ``runs`` independent runs each, vectorised over inits and runs (only the time loop is in
    Python). Returns, per init, the first step at which

    - the run-averaged parameters (an estimate of E[theta_t]) are within ``tolerance`` of
      theta* relative to the start: the quantity the expected-update theory predicts;
    - the median run is within ``tolerance`` (each run's own first crossing).

    The state is the error delta = theta - theta*, laid out (K, d+1, runs) so that the dot
    products reduce over a short, strided axis; an init leaves the batch once both times are
    known. Times not reached by ``max_steps`` are returned as ``max_steps``."""
    k, d1 = theta0.shape
    threshold = tolerance**2 * ((theta0 - theta_star) ** 2).sum(-1)  # on ||delta||^2
    t_mean = torch.full((k,), max_steps, dtype=torch.float64)
    t_median = torch.full((k,), max_steps, dtype=torch.float64)
    rows = torch.arange(k)  # the inits still running
    star = theta_star.to(dtype).unsqueeze(-1)  # (K, d+1, 1)
    delta = (theta0 - theta_star).to(dtype).unsqueeze(-1).repeat(1, 1, runs)
    thr = threshold.to(dtype)
    alive_mean = torch.ones(k, dtype=torch.bool)
    alive_run = torch.ones(k, runs, dtype=torch.bool)
    steps_mean = torch.zeros(k, dtype=torch.long)
    steps_run = torch.zeros(k, runs, dtype=torch.long)
    t = 0
    while t < max_steps and len(rows):
        chunk = min(max_steps - t, max(1, 4_000_000 // (len(rows) * d1 * runs)), 256)
        x = torch.empty(chunk, len(rows), d1, runs, dtype=dtype)
        x[:, :, :-1].normal_(generator=generator)  # x ~ N(0, I_d)
        x[:, :, -1] = 1.0  # x~ = (x, 1)
        for x_t in x:
            s = (delta * x_t).sum(1)  # delta^T x~ = y - t
            y = (star * x_t).sum(1) + s  # y = theta^T x~
            minus_e = torch.where(y > 0, s, 0.0)  # -e 1[y > 0] (f(y) = y where y > 0)
            delta.addcmul_(minus_e.unsqueeze(1), x_t, value=-mu)  # Eq. (1)
            alive_run &= (delta**2).sum(1) > thr.unsqueeze(-1)
            alive_mean &= (delta.mean(2) ** 2).sum(1) > thr
            steps_run += alive_run
            steps_mean += alive_mean
        t += chunk
        done = ~alive_mean & (alive_run.double().mean(1) < 0.5)
        if t >= max_steps:
            done[:] = True
        if done.any():
            first = torch.where(alive_run[done], max_steps, steps_run[done] + 1)  # 1-based
            t_median[rows[done]] = first.double().median(1).values
            t_mean[rows[done]] = torch.where(
                alive_mean[done], max_steps, steps_mean[done] + 1
            ).double()
            keep = ~done
            rows, star, delta, thr = rows[keep], star[keep], delta[keep], thr[keep]
            alive_mean, alive_run = alive_mean[keep], alive_run[keep]
            steps_mean, steps_run = steps_mean[keep], steps_run[keep]
    return t_mean, t_median


@dataclass
class ConvergenceTimes:
    """Convergence times per initial Pr[y > 0] = ``p``: predicted and simulated (run mean and
    median run), near the optimum (Eq. 5) and from far initialisations (Eq. 6)."""

    p: torch.Tensor
    predicted_near: torch.Tensor
    sim_near: torch.Tensor
    median_near: torch.Tensor
    predicted_far: torch.Tensor
    sim_far: torch.Tensor
    median_far: torch.Tensor

    @property
    def gap_near(self) -> torch.Tensor:
        """Relative gap, simulated vs predicted, near the optimum."""
        return ((self.sim_near - self.predicted_near) / self.predicted_near).abs()

    @property
    def gap_far(self) -> torch.Tensor:
        """Relative gap, simulated vs predicted, from far initialisations."""
        return ((self.sim_far - self.predicted_far) / self.predicted_far).abs()

    def exponent(self, times: torch.Tensor, where: torch.Tensor | None = None) -> float:
        """Fitted exponent of T against p on log-log axes (over ``where``): -1 is the 1/p law
        of Eq. (5); NaN with fewer than two points."""
        keep = torch.ones(len(self.p), dtype=torch.bool) if where is None else where
        if keep.sum() < 2:
            return float("nan")
        x, y = np.log(self.p[keep].numpy()), np.log(times[keep].numpy())
        return float(np.polyfit(x, y, 1)[0])


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

    The analysis is derived here (only the paper's abstract and model equations were available).

    **Model.** y = w^T x + b, f(y) = max(0, y), inputs x ~ N(0, I_d). With theta = (w, b) and
    x~ = (x, 1): y = theta^T x~. The unit is trained by Douglas & Yu's rule

        theta <- theta + mu e 1[y > 0] x~,   e = t - f(y).                               (1)

    **Target.** A linear teacher t = theta*^T x~ (our choice). On the active set f(y) = y, so
    e 1[y>0] = -delta^T x~ 1[y>0] with delta = theta - theta*, *exactly*: the expected update
    is linear in delta for any theta, the fixed point theta* is unique whenever p > 0, and the
    only thing that slows learning is how often the unit is active. A ReLU teacher
    t = max(0, theta*^T x~) gives the same dynamics to first order near theta*: y and y* differ
    in sign only on a set of probability O(||delta||), where the error is O(||delta||).

    **Expected update.** Taking expectations of (1):

        E[Delta theta] = -mu H(theta) delta,   H(theta) = E[1[y > 0] x~ x~^T].          (2)

    With w_hat = w / ||w||, a = b / ||w||, p = Pr[y > 0] = Phi(a), phi = standard normal density,
    and u = w_hat^T x ~ N(0, 1) (y > 0 <=> u > -a), the truncated Gaussian moments E[1] = p,
    E[1 u] = phi(a), E[1 u^2] = p - a phi(a), E[1 x_perp x_perp^T] = p (I - w_hat w_hat^T) give

        H = [[p (I - w_hat w_hat^T) + (p - a phi(a)) w_hat w_hat^T,  phi(a) w_hat],
             [phi(a) w_hat^T,                                        p           ]]     (3)

    (in particular E[1[y > 0] x] = phi(a) w_hat, Eq. 3a).

    **Spectrum.** H has the eigenvalue p on the (d - 1)-dimensional subspace {(v, 0): v _|_ w_hat},
    and in the (w_hat, bias) plane the eigenvalues

        lambda_+/- = p - a phi / 2 +/- sqrt((a phi / 2)^2 + phi^2).                      (4)

    As p -> 0 (a -> -inf, p ~ phi / |a|): lambda_+ ~ a^2 p and lambda_- ~ p / a^4.

    **Convergence rate (linearisation at theta*).** For theta near theta*,
    H(theta) = H(theta*) + O(||delta||), so E[delta_{t+1}] ~ (I - mu H*) E[delta_t]. An initial
    error off the (w*, bias) plane is an eigenvector with eigenvalue p* = Pr[y* > 0] and decays
    as (1 - mu p)^t: the effective step size is mu p, and the time to shrink it by a factor eps is

        T(p) = ln(1 / eps) / -ln(1 - mu p)  ~  ln(1 / eps) / (mu p),                     (5)

    the 1/p law. Assumptions: Gaussian inputs; ||delta_0|| << ||w*|| (the corrections are of
    relative order ||delta_0|| / ||w*||, through the rotation of w_hat); mu lambda_max < 2 for
    stability; and (5) is for the *mean* E[theta_t]. Single runs fluctuate multiplicatively
    (the noise of (1) is proportional to delta): for an off-plane error,
    E||delta_{t+1}||^2 = (1 - 2 mu p + mu^2 (p (d + 3) - a phi(a))) ||delta_t||^2, so one run's
    squared error decays a relative O(mu d / 2) slower than the mean's. In-plane errors decay at
    the rates mu lambda_+/-, and lambda_- << p when p is small: the trade-off between the bias
    and the length of w is the slowest mode of a dying unit.

    **Far from theta*.** Eq. (2) still holds exactly, but H changes along the way, so the
    expected dynamics are iterated numerically (mean field, neglecting the spread of theta
    across runs, E[H(theta) delta] ~ H(E theta) E delta):

        theta_{t+1} = theta_t - mu H(theta_t) (theta_t - theta*).                        (6)

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
    generator = torch.Generator().manual_seed(ctx.seed)
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

    _plot_convergence(ctx.plots / "convergence_time.png", times, cfg)
    for note in single_unit_notes(cfg, times):
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


def single_unit_notes(cfg: SingleUnitConfig, times: ConvergenceTimes) -> list[str]:
    """Sentences for the report, with verdicts computed from the measured times."""
    p, sim_near, sim_far = times.p, times.sim_near, times.sim_far
    gap_near, gap_far = times.gap_near.max().item(), times.gap_far.max().item()
    slope, slope_theory = times.exponent(sim_near), times.exponent(times.predicted_near)
    if slope < -0.8 and gap_near < 0.1:
        verdict = "holds, and the 1/p law (5) predicts it"
    elif slope < 0:
        verdict = f"holds, but the 1/p law (5) misses by up to {gap_near:.0%}"
    else:
        verdict = "does not hold"
    probabilities = ", ".join(f"{x:g}" for x in cfg.probabilities)
    notes = [
        f"Claim 2 (a unit converges more slowly as Pr[y>0] -> 0) {verdict} near the optimum: "
        f"simulated convergence time scales as p^{slope:.2f} (theory p^{slope_theory:.2f}) over "
        f"p = {probabilities}; predicted and simulated times differ by at most {gap_near:.1%}. "
        f"The median single run takes up to {(times.median_near / sim_near).max().item() - 1:.0%} "
        "longer than the mean trajectory (multiplicative noise, of order mu d): (5) is a law "
        "for the mean."
    ]
    below = p < cfg.far_target_probability
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
            f"From far initialisations (angle {cfg.far_angle} rad to a teacher with Pr[y>0] = "
            f"{cfg.far_target_probability}): starting less active costs time, "
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


def _plot_convergence(path: Any, times: ConvergenceTimes, cfg: SingleUnitConfig) -> None:
    """Convergence time against Pr[y > 0], log-log, theory lines and simulated points: near the
    optimum (Eq. 5) on the left, from far initialisations (Eq. 6) on the right."""
    p, predicted_far = times.p, times.predicted_far
    fig = Figure(figsize=(10.0, 4.0), layout="constrained")
    near, far = fig.subplots(1, 2)
    grid = torch.logspace(math.log10(p.min()), math.log10(p.max()), 100, dtype=p.dtype)
    near.plot(grid, linearised_convergence_time(grid, cfg.mu, cfg.tolerance), label="theory (5)")
    near.plot(p, times.sim_near, "o", label=f"simulated mean of {cfg.runs} runs")
    near.plot(p, times.median_near, "x", label="simulated median run")
    near.set_title(f"near the optimum (Pr[y*>0] = p), mu = {cfg.mu}, d = {cfg.dim}", fontsize=10)
    far.plot(p, predicted_far, "-", label="theory: iterated expected update (6)")
    far.plot(p, times.sim_far, "o", label=f"simulated mean of {cfg.runs} runs")
    far.plot(p, times.median_far, "x", label="simulated median run")
    below = (p < cfg.far_target_probability).nonzero().flatten()
    if len(below):  # a 1/p0 law through the most active init that starts below the teacher
        i = below[p[below].argmax()]
        reference = predicted_far[i] * p[i] / p[below]
        far.plot(p[below], reference, ":", color="gray", label="1/p0, for reference")
    far.set_title(f"far init (Pr[y*>0] = {cfg.far_target_probability})", fontsize=10)
    for ax, xlabel in ((near, "Pr[y > 0] = p"), (far, "initial Pr[y > 0] = p0")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"steps to shrink the error {1 / cfg.tolerance:g}x")
        ax.grid(True, which="major", alpha=0.35)
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle("single ReLU unit: convergence time vs activation probability")
    fig.savefig(path, dpi=DPI)
