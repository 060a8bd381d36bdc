"""The teacher-student regression task shared across the rules whose math allows it.

A fixed random *teacher* network maps Gaussian inputs to targets,
:math:`t = k_2 W_2 \\tanh(k_1 W_1 x)` (``n_in -> teacher_hidden -> n_out``, weights
:math:`\\mathcal N(0, 1/\\text{fan-in})`, drawn once from the run's stream ``teacher``); the
*student* is the task's MLP (the same network and optimiser for every rule) trained on the
mean squared error with ``n_train`` fixed examples and measured on ``n_test`` others
(``test_mse``, lower is better).

Rules: bp, fa and dfa (:class:`~creditlab.compare.feedback.FeedbackNetwork` with
``loss="mse"``: only the output error changes). Not joined: the dendritic microcircuit
(its teacher task, ``dendritic.teacher``, has its own softplus rate network; an adapter
would need a linear output transfer in its sweeps), coagent networks (a Gaussian output
coagent with reward = -squared error is possible, not written) and hm2bp (its macro-level
loss is a spike-count target per class, no real-valued output).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from creditlab.compare.feedback import MODES
from creditlab.compare.rules import get_rule
from creditlab.compare.training import Instrumented, final_metric_name
from creditlab.errors import UserError
from creditlab.runner import RunContext
from creditlab.train import epoch_order


def teacher_data(cfg: Any, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """``(x_train, t_train, x_test, t_test)`` from one draw of the teacher and the inputs."""
    w1 = torch.randn(cfg.teacher_hidden, cfg.n_in, generator=generator) / math.sqrt(cfg.n_in)
    w2 = torch.randn(cfg.n_out, cfg.teacher_hidden, generator=generator)
    w2 /= math.sqrt(cfg.teacher_hidden)
    x = torch.randn(cfg.n_train + cfg.n_test, cfg.n_in, generator=generator)
    t = cfg.teacher_gain[1] * torch.tanh(cfg.teacher_gain[0] * x @ w1.T) @ w2.T
    return x[: cfg.n_train], t[: cfg.n_train], x[cfg.n_train :], t[cfg.n_train :]


def train_teacher(cfg: Any, ctx: RunContext) -> dict[str, float]:
    """Train ``cfg.rule`` on the teacher-student task; final ``test_mse``, ``train_mse``,
    timing and alignment (logged every epoch: ``test_mse``, ``train_mse``)."""
    if cfg.rule not in MODES:
        raise UserError(f"the teacher task runs {', '.join(MODES)} only, not {cfg.rule!r}")
    rule = get_rule(cfg.rule)
    x_train, t_train, x_test, t_test = (
        t.to(ctx.device) for t in teacher_data(cfg, ctx.generator("teacher"))
    )
    ctx.data = {
        "name": "teacher",
        "protocol": f"teacher-student ({cfg.n_in}-{cfg.teacher_hidden}-{cfg.n_out} tanh teacher)",
        "n_train": cfg.n_train,
        "n_test": cfg.n_test,
    }
    n_batches = max(1, cfg.n_train // cfg.batch_size)
    learner = rule.build(cfg, cfg.n_in, cfg.n_out, cfg.epochs * n_batches, ctx)
    timed = Instrumented(learner, ctx, cfg.align_every)
    mse = torch.nn.functional.mse_loss

    def measure() -> dict[str, float]:
        with torch.no_grad():
            model = learner.net.model
            return {
                "train_mse": mse(model(x_train), t_train).item(),
                "test_mse": mse(model(x_test), t_test).item(),
            }

    final: dict[str, float] = {}
    steps = ctx.loop(
        cfg.epochs * n_batches, timed.state_dict, timed.load_state_dict, checkpoint_every=n_batches
    )
    order = None
    for i in steps:
        epoch, b = divmod(i, n_batches)
        if order is None or b == 0:
            order = epoch_order(cfg.n_train, ctx.seed, epoch)
        idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size].to(x_train.device)
        timed.train_step(x_train[idx], t_train[idx])
        if b == n_batches - 1:
            final = measure()
            ctx.log(i + 1, epoch=epoch + 1, **final)
    metrics = final or measure()
    metrics["train_step_seconds"] = timed.train_seconds / max(1, timed.steps)
    metrics.update({final_metric_name(k): v for k, v in timed.last_alignment.items()})
    ctx.note(f"rule {rule.name}: {rule.summary}; locality: {rule.locality.describe()}")
    return metrics
