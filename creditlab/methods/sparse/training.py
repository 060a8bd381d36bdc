"""Training for the sparse experiments: several models side by side on the same data, by
iterations (:func:`train_iterations`, used by identity and sorting) or by epochs through
:func:`creditlab.train.fit` (:class:`SideBySide`, used by attention); the attention models
and the sorting runs of one setting.

``cfg`` is the experiment's config (AttentionConfig or SortConfig).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from creditlab import data
from creditlab.methods.sparse.attention import (
    GlimpseClassifier,
    ReinforceClassifier,
    whole_image_cnn,
)
from creditlab.methods.sparse.networks import key_network
from creditlab.methods.sparse.sorting import (
    diffsort_loss,
    neuralsort_loss,
    number_sequences,
    quicksort_loss,
)
from creditlab.methods.sparse.tasks import (
    TEST_SEED,
    held_out_sequences,
    sort_keys,
    sorting_accuracy,
)
from creditlab.models import cnn
from creditlab.runner import RunContext, StageContext, derive_seed
from creditlab.train import BackpropClassifier, make_optimizer


def train_iterations(
    ctx: RunContext | StageContext,
    models: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    iterations: int,
    step: Callable[[], dict[str, torch.Tensor]],
    *,
    log_every: int,
    evaluate: Callable[[], dict[str, float]],
    eval_every: int,
) -> list[tuple[int, dict[str, float]]]:
    """Train ``models`` side by side for ``iterations``: ``step()`` returns one loss per model
    (on the same minibatch), each minimised by its optimiser. Logs mean losses every
    ``log_every``, ``evaluate()`` every ``eval_every`` and at the end (its rows returned),
    with exact checkpoints and resume."""
    curve: list[tuple[int, dict[str, float]]] = []
    running: dict[str, list[float]] = {}

    def state() -> dict[str, Any]:
        return {
            "models": {name: m.state_dict() for name, m in models.items()},
            "optimizers": {name: o.state_dict() for name, o in optimizers.items()},
            "curve": curve,
            "running": running,
        }

    def restore(saved: dict[str, Any]) -> None:
        for name, m in models.items():
            m.load_state_dict(saved["models"][name])
            optimizers[name].load_state_dict(saved["optimizers"][name])
        curve[:] = saved["curve"]
        running.update(saved["running"])

    for t in ctx.loop(iterations, state, restore):
        for m in models.values():
            m.train()
        losses = step()
        for name, loss in losses.items():
            optimizers[name].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[name].step()
            running.setdefault(name, []).append(loss.item())
        ctx.check_finite(t + 1, **{f"loss_{k}": v[-1] for k, v in running.items()})
        if (t + 1) % log_every == 0:
            ctx.log(t + 1, **{f"loss_{k}": sum(v) / len(v) for k, v in running.items()})
            running.clear()
        if (t + 1) % eval_every == 0 or t + 1 == iterations:
            for m in models.values():
                m.eval()
            row = evaluate()
            ctx.log(t + 1, **row)
            curve.append((t + 1, row))
    return curve


class SideBySide:
    """Several learners on the same minibatches (a :class:`creditlab.train.Learner` for
    :func:`creditlab.train.fit`); it reports the first learner's loss and accuracy."""

    def __init__(self, learners: dict[str, BackpropClassifier]):
        self.learners = learners
        self.first = next(iter(learners.values()))

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        losses = {name: lr.train_step(x, y)["loss"] for name, lr in self.learners.items()}
        return {"loss": next(iter(losses.values()))}

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        return self.first.evaluate(x, y)

    def state_dict(self) -> dict[str, Any]:
        return {name: lr.state_dict() for name, lr in self.learners.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, lr in self.learners.items():
            lr.load_state_dict(state[name])


def attention_learners(cfg: Any, image_size: tuple[int, int], pool: int) -> dict:
    """The models of ``cfg.models``, each with its Adam optimiser, as learners."""
    learners: dict[str, BackpropClassifier] = {}
    for name in cfg.models:
        if name == "cnn":
            model = whole_image_cnn(image_size, cfg.channels, cfg.hyper_hidden)
        else:
            model = GlimpseClassifier(
                image_size,
                attention=name,
                glimpses=cfg.glimpses,
                k=cfg.k,
                hidden=cfg.hidden,
                channels=cfg.channels,
                hyper_hidden=cfg.hyper_hidden,
                pool=pool,
                hypernet=cfg.hypernet,
                hyper_maxpool=cfg.hyper_maxpool,
                n_global=cfg.n_global,
                n_local=cfg.n_local,
                region=cfg.region,
                sigma_scale=cfg.sigma_scale,
                min_sigma=cfg.min_sigma,
                policy_std=cfg.policy_std,
            )
        optimizer = make_optimizer(model.parameters(), "adam", cfg.lr)
        kind = ReinforceClassifier if name == "reinforce" else BackpropClassifier
        learners[name] = kind(model, optimizer)
    return learners


def train_sorting(
    cfg: Any, stage: StageContext, ds: data.Dataset, n: int, width: int, iterations: int
) -> tuple[dict[str, float], list]:
    """Train every method of ``cfg.methods`` for one setting; returns metrics and curve."""
    # Built from their own seeded stream, so that a resumed run (whose global generator is
    # restored before this point) builds them without drawing from it.
    nets = {}
    for method in cfg.methods:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stage.seed)  # the same initial key network for every method
            if cfg.key_net == "reference":
                nets[method] = key_network((1, 28, 28 * width), cfg.channels, cfg.hidden)
            else:
                nets[method] = cnn((1, 28, 28 * width), 1, cfg.channels, cfg.hidden[0])
    optimizers = {m: make_optimizer(net.parameters(), "adam", cfg.lr) for m, net in nets.items()}
    test = held_out_sequences(ds, n, width, cfg.test_sequences, derive_seed(TEST_SEED, n))
    probe = tuple(t[: max(1, cfg.test_sequences // 5)] for t in test)

    def step() -> dict[str, torch.Tensor]:
        images, values = number_sequences(ds.x_train, ds.y_train, cfg.batch_size, n, width, None)
        ranks = values.argsort(dim=1, stable=True).argsort(1)
        losses = {}
        for method, net in nets.items():
            keys = sort_keys(net, images)
            if method == "quicksort":
                losses[method] = quicksort_loss(
                    images.flatten(2),
                    keys,
                    ranks,
                    cfg.certainty,
                    cfg.additional,
                    loss=cfg.loss,
                    sampling=cfg.sampling,
                )
            elif method == "neuralsort":
                losses[method] = neuralsort_loss(keys, values, cfg.tau)
            else:
                losses[method] = diffsort_loss(keys, values, network=cfg.diffsort_network,
                                               steepness=cfg.steepness)  # fmt: skip
        return losses

    def evaluate() -> dict[str, float]:
        return {f"{m}_error": 1 - sorting_accuracy(net, m, *probe)[0] for m, net in nets.items()}

    curve = train_iterations(
        stage,
        nets,
        optimizers,
        iterations,
        step,
        log_every=cfg.log_every,
        evaluate=evaluate,
        eval_every=cfg.eval_every,
    )
    metrics = {}
    for method, net in nets.items():
        all_correct, ranks = sorting_accuracy(net, method, *test)
        metrics[f"{stage.stage}_{method}_all_correct"] = all_correct
        metrics[f"{stage.stage}_{method}_ranks_correct"] = ranks
    return metrics, curve
