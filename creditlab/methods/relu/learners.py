"""Training the twin nets of relu.layers: the plateau criterion (:func:`plateaued`), the
learner that trains both nets on the same minibatches under the shared ``fit`` loop
(:class:`TwinLearner`), the liveness measurement (:func:`layer_liveness`) and one seed's
training (:func:`train_twins`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from creditlab.diagnostics.relu import ReluMonitor
from creditlab.methods.relu.nets import twin_nets
from creditlab.runner import RunContext, StageContext
from creditlab.train import BackpropClassifier, evaluate_logits, fit, make_optimizer


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


def train_twins(cfg: Any, ctx: StageContext, spec: dict[str, Any], split: tuple) -> dict[str, Any]:
    """One seed: build the twin nets from ``ctx.seed``, measure them at init, train them on
    the same minibatches until both plateau (or ``cfg.epochs``), and measure them again.
    ``cfg`` is the run's :class:`~creditlab.methods.relu.experiments.LayersConfig` (its
    training settings, plateau criterion and dead threshold); ``spec``: the nets'
    :class:`~creditlab.methods.relu.nets.StageCNN` arguments; ``split``: the data."""
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
