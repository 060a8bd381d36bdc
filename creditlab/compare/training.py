"""One rule trained on one task: the shared loop, plus timing and alignment at checkpoints."""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from creditlab.compare.rules import get_rule
from creditlab.errors import UserError
from creditlab.rundir import METRICS_FILE, read_metrics
from creditlab.runner import RunContext
from creditlab.train import fit, load_split, make_optimizer


class Instrumented:
    """A rule's learner as :func:`creditlab.train.fit` sees it, timed, with its alignment
    with backprop logged every ``align_every`` steps on that step's minibatch, measured
    before the update (at the weights the update is computed from). Timing covers the
    rule's ``train_step`` only; the counters travel in the checkpoint, so a resumed run
    reports the whole run's mean."""

    def __init__(self, learner: Any, ctx: RunContext, align_every: int):
        self.learner, self.ctx, self.align_every = learner, ctx, align_every
        self.steps, self.train_seconds = 0, 0.0
        self.last_alignment: dict[str, float] = {}

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        if self.align_every and self.steps % self.align_every == 0:
            self.last_alignment = self.learner.alignment_metrics(x, y)
            self.ctx.log(self.steps + 1, **self.last_alignment)
        start = time.perf_counter()
        out = self.learner.train_step(x, y)
        self.train_seconds += time.perf_counter() - start
        self.steps += 1
        return out

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        return self.learner.evaluate(x, y)

    def state_dict(self) -> dict[str, Any]:
        return {
            "learner": self.learner.state_dict(),
            "steps": self.steps,
            "train_seconds": self.train_seconds,
            "last_alignment": dict(self.last_alignment),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state["learner"])
        self.steps, self.train_seconds = state["steps"], state["train_seconds"]
        self.last_alignment = dict(state["last_alignment"])


def final_metric_name(name: str) -> str:
    """``alignment_cosine/layer1`` -> ``alignment_cosine_layer1`` (result.json keys)."""
    return name.replace("/", "_")


def train_rule(cfg: Any, ctx: RunContext) -> dict[str, float]:
    """Train ``cfg.rule`` on ``cfg.dataset`` with the task's network and budget."""
    rule = get_rule(cfg.rule)
    ds, (x_train, y_train, x_test, y_test) = load_split(cfg.dataset, cfg.n_train, ctx)
    total = cfg.epochs * max(1, len(x_train) // cfg.batch_size)
    learner = rule.build(cfg, math.prod(ds.input_shape), ds.n_classes, total, ctx)
    timed = Instrumented(learner, ctx, cfg.align_every)
    metrics = fit(
        ctx, timed, x_train, y_train, x_test, y_test, epochs=cfg.epochs, batch_size=cfg.batch_size
    )
    metrics["test_error"] = 1.0 - metrics["test_accuracy"]
    metrics["train_step_seconds"] = timed.train_seconds / max(1, timed.steps)
    metrics.update({final_metric_name(k): v for k, v in timed.last_alignment.items()})
    ctx.note(f"rule {rule.name}: {rule.summary}; locality: {rule.locality.describe()}")
    return metrics


BIOTORCH_LR = {"bp": 0.1, "fa": 1e-3, "dfa": 1e-4}
"""BioTorch's SGD learning rate per mode for LeNet (``benchmark_configs/cifar10/le_net/sgd/
{backprop,fa,dfa}.yaml``; its Fashion-MNIST configs are not published with the repository)"""


def train_lenet(cfg: Any, ctx: RunContext) -> dict[str, float]:
    """``cfg.rule`` (bp, fa or dfa) as the mode of BioTorch's LeNet on ``cfg.dataset``: SGD
    with the mode's rate, a multi-step schedule by epoch; the final and the best-epoch test
    error (BioTorch reports the best epoch's, on the test set it also selects with)."""
    from creditlab.compare.lenet import FeedbackLeNet, LeNetLearner

    if cfg.rule not in BIOTORCH_LR:
        raise UserError(f"the LeNet task runs bp, fa and dfa only, not {cfg.rule!r}")
    ds, (x_train, y_train, x_test, y_test) = load_split(cfg.dataset, cfg.n_train, ctx)
    if cfg.n_test:
        x_test, y_test = x_test[: cfg.n_test], y_test[: cfg.n_test]
        ctx.data = {**ctx.data, "n_test": len(x_test)}
    net = FeedbackLeNet(cfg.rule, ds.n_classes, ctx.generator("lenet")).to(ctx.device)
    lr = cfg.lr or BIOTORCH_LR[cfg.rule]
    optimizer = make_optimizer(net.parameters(), cfg.optimizer, lr, cfg.momentum, cfg.weight_decay)
    per_epoch = max(1, len(x_train) // cfg.batch_size)
    milestones = [m * per_epoch for m in cfg.milestones]
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=cfg.gamma)
    timed = Instrumented(LeNetLearner(net, optimizer, schedule), ctx, cfg.align_every)
    metrics = fit(
        ctx, timed, x_train, y_train, x_test, y_test, epochs=cfg.epochs, batch_size=cfg.batch_size
    )
    metrics["test_error"] = 1.0 - metrics["test_accuracy"]
    epochs = [r["test_accuracy"] for r in read_metrics(ctx.out / METRICS_FILE) if "epoch" in r]
    metrics["best_epoch_test_error"] = 1.0 - max([metrics["test_accuracy"], *epochs])
    metrics["train_step_seconds"] = timed.train_seconds / max(1, timed.steps)
    metrics.update({final_metric_name(k): v for k, v in timed.last_alignment.items()})
    ctx.note(
        f"BioTorch's LeNetMNIST in mode {cfg.rule}, SGD lr {lr}, momentum {cfg.momentum}, "
        f"weight decay {cfg.weight_decay}, batch {cfg.batch_size}, {cfg.epochs} epochs "
        f"(BioTorch's LeNet configs: 250)."
    )
    return metrics
