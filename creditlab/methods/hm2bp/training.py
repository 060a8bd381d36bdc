"""Training an HM2-BP network and measuring it: the numbers every HM2-BP experiment reports.

``train_and_measure`` trains with :func:`creditlab.train.fit` (resumable, the spec's lr
schedule inside the learner) and adds to fit's accuracies and losses the test set's
``mean_output_spikes`` and ``firing_rate_layer<k>``, and ``alignment_cosine`` from
:func:`output_alignment`.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from creditlab.diagnostics.alignment import alignment
from creditlab.methods.hm2bp.learner import Encoder, HM2BPLearner, RateTargets
from creditlab.methods.hm2bp.network import Layer, SpikingNetwork
from creditlab.runner import RunContext
from creditlab.train import fit


def spiking_learner(
    cfg: Any,
    ctx: RunContext,
    layers: list[Layer],
    encode: Encoder,
    batches_per_epoch: int,
    n_out: int = 10,
    eval_key: str = "eval",
) -> HM2BPLearner:
    """The network of ``layers`` with the neuron, output and learning settings of ``cfg`` (an
    ``hm2bp`` experiment's config), on ``ctx.device``, as an HM2-BP learner; its evaluation
    trains are seeded from the stream ``eval_key``."""
    net = SpikingNetwork(
        layers,
        cfg.thresholds,
        cfg.tau_m,
        cfg.tau_s,
        cfg.t_ref,
        lateral=cfg.lateral_inhibition,
        block_elements=cfg.block_elements,
        reference_timing=cfg.reference_timing,
    ).to(ctx.device)
    return HM2BPLearner(
        net,
        encode,
        n_out,
        lr=cfg.lr,
        batches_per_epoch=batches_per_epoch,
        targets=RateTargets(cfg.desired, cfg.undesired, cfg.margin),
        side_effect=cfg.side_effect,
        silent_psp=cfg.silent_psp,
        silent_side_effect=cfg.silent_side_effect,
        label_spikes=cfg.label_spikes,
        lateral_gradient=cfg.lateral_gradient,
        reg_lambda=cfg.reg_lambda,
        reg_beta=cfg.reg_beta,
        weight_limit=cfg.weight_limit,
        eval_batch=cfg.eval_batch,
        eval_seed=ctx.generator(eval_key).initial_seed(),  # derive_seed(ctx.seed, eval_key)
    )


def output_alignment(learner: HM2BPLearner, x: torch.Tensor, y: torch.Tensor) -> float:
    """Cosine between HM2-BP's output-layer gradient and the exact gradient of the rate loss
    in the output weights (o = W e / nu, spike trains fixed: no side effect, no silent_psp)."""
    grads, stats = learner.gradient(x, y)
    exact = learner.net.gradients(
        stats["spikes"],
        stats["record"],
        stats["delta"],
        side_effect=False,
        silent_psp=0.0,
        only_last=True,
    )[-1]
    return alignment({"w_out": grads[-1]}, {"w_out": exact}).overall_cosine


def train_and_measure(
    ctx: RunContext,
    learner: HM2BPLearner,
    tensors: tuple[torch.Tensor, ...],
    *,
    epochs: int,
    batch_size: int,
    evaluate_train: bool = False,
) -> dict[str, float]:
    """Train on ``tensors`` = (x_train, y_train, x_test, y_test) for ``epochs`` in minibatches
    of ``batch_size``; the final metrics (module docstring) and ``train_seconds``.
    ``evaluate_train`` False (default): ``train_accuracy`` / ``train_loss`` are the means over
    the epoch's minibatches before their updates (fit's ``evaluate_train``), not a pass over
    the whole training set after it (which took about 41% of a quick run)."""
    x_train, y_train, x_test, y_test = tensors
    n = min(batch_size, len(x_train))
    tic = time.perf_counter()
    metrics = fit(
        ctx,
        learner,
        x_train,
        y_train,
        x_test,
        y_test,
        epochs=epochs,
        batch_size=n,
        log_every=max(1, min(50, len(x_train) // batch_size)),
        evaluate_train=evaluate_train,
    )
    train_seconds = time.perf_counter() - tic
    last = learner.last_evaluation  # fit measures the test set last
    test = last[1] if last and last[0] == len(x_test) else learner.evaluate(x_test, y_test)
    metrics["mean_output_spikes"] = test["mean_output_spikes"]
    metrics.update({k: v for k, v in test.items() if k.startswith("firing_rate")})
    metrics["alignment_cosine"] = output_alignment(learner, x_train[:n], y_train[:n])
    metrics["train_seconds"] = train_seconds
    return metrics
