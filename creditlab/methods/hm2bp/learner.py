"""HM2-BP as a :class:`creditlab.train.Learner`: encode, simulate, rate loss, backward, Adam.

Runs under ``torch.no_grad()``: the gradient is HM2-BP's own (:mod:`.network`), never
autograd's. A minibatch's gradient is the mean of the per-example gradients (their sum is
exact, divided by the batch size); the weight regulariser
``lambda * beta * (w/limit) * exp(beta * (mean((w/limit)^2) - 1))`` (spec; ``limit`` the
reference's WEIGHT_LIMIT, 8) is added to it once per step, Adam (0.9, 0.999, 1e-8) applies it
with ``lr / sqrt(epoch + 1)``, and the weights are then clipped to +-limit.

Weights below ``TINY`` in magnitude are then set to 0. A hidden neuron that has stopped
firing keeps getting the regulariser's gradient, proportional to its weights, which Adam
(its second moment remembering earlier, larger gradients) turns into a geometric decay: after
a few thousand steps its weights are subnormal floats, and a matrix product over subnormal
operands is far slower on a CPU (a Fashion-MNIST quick run with 195 such neurons: 0.92 s
instead of 0.035 s for one input-layer product; ``benchmarks/hm2bp_pieces.py`` shows it on
synthetic weights). At 1e-30 a weight's contribution to a
float32 current summed against thresholds of order 1-20 is nothing, so the spikes and the
learning are those of the unrounded weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from creditlab.methods.hm2bp.loss import (
    DESIRED,
    MARGIN,
    UNDESIRED,
    rate_error,
    rate_loss,
    rate_targets,
)
from creditlab.methods.hm2bp.network import SILENT_PSP, Record, SpikingNetwork
from creditlab.methods.hm2bp.output import force_label_spikes, lateral_factor
from creditlab.runner import derive_seed
from creditlab.spiking import bernoulli_encode

Encoder = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]

TINY = 1e-30
"""weights smaller than this in magnitude are set to 0 after each step (module docstring)"""
LR = 1e-3
"""Adam learning rate at epoch 0 (then lr / sqrt(epoch + 1))"""
REG_LAMBDA = 10.0
"""lambda of the weight regulariser (the reference code's)"""
REG_BETA = 0.04
"""beta of the weight regulariser (the reference code's, MNIST)"""
WEIGHT_LIMIT = 8.0
"""the reference's WEIGHT_LIMIT: weights are clipped to +-8 and scaled by it in the regulariser"""
EVAL_BATCH = 250
"""examples simulated at once when evaluating"""


@dataclass
class RateTargets:
    """The macro-level loss's settings."""

    desired: float = DESIRED
    undesired: float = UNDESIRED
    margin: float = MARGIN


def rate_encoder(shape: tuple[int, ...], n_steps: int, input_scale: float) -> Encoder:
    """Bernoulli rate coding of intensities in [0, 1] (:func:`creditlab.spiking.bernoulli_encode`)
    for examples of ``shape``: ``n_steps`` steps, a spike per step with probability
    x / ``input_scale``."""

    def encode(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return bernoulli_encode(x.reshape(len(x), *shape), n_steps, input_scale, generator)

    return encode


def fixed_rate_encoder(
    images: torch.Tensor, shape: tuple[int, ...], n_steps: int, input_scale: float, seed: int
) -> Encoder:
    """The reference's input (``generatePoissonSpikes``, ``readData/readMnistData.cpp``): each
    image's trains are drawn once and reused every epoch and at test. Samples are indices
    into ``images``; example k's trains are drawn from a generator seeded with
    ``derive_seed(seed, "input", k)`` whenever they are needed (the same trains every time,
    without holding them: 60,000 x 400 x 784 bytes would not fit), with no spike at step 0
    (the reference draws steps 1..T-1). The generator argument is ignored."""

    def encode(index: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        x = images[index.long()]
        spikes = torch.zeros(n_steps, len(x), *shape, dtype=torch.bool, device=x.device)
        for row, k in enumerate(index.tolist()):
            g = torch.Generator().manual_seed(derive_seed(seed, "input", int(k)))
            drawn = bernoulli_encode(
                x[row : row + 1].cpu().reshape(1, *shape), n_steps - 1, input_scale, g
            )
            spikes[1:, row] = drawn[0].to(x.device)
        return spikes.transpose(0, 1)

    return encode


class HM2BPLearner:
    """HM2-BP on a :class:`SpikingNetwork`; ``encode(x, generator)`` turns a minibatch into
    input spikes (batch, steps, ...). ``batches_per_epoch`` drives the lr schedule.
    ``eval_seed`` seeds the evaluation's input spikes, the same every call (the experiments
    pass the run's ``derive_seed(seed, "eval")``)."""

    def __init__(
        self,
        net: SpikingNetwork,
        encode: Encoder,
        n_classes: int,
        *,
        lr: float = LR,
        batches_per_epoch: int = 1,
        targets: RateTargets | None = None,
        side_effect: bool = True,
        silent_psp: float = SILENT_PSP,
        silent_side_effect: str = "reference",
        label_spikes: bool = True,
        lateral_gradient: bool = True,
        reg_lambda: float = REG_LAMBDA,
        reg_beta: float = REG_BETA,
        weight_limit: float = WEIGHT_LIMIT,
        eval_batch: int = EVAL_BATCH,
        eval_seed: int = 0,
    ):
        self.net, self.encode, self.n_classes = net, encode, n_classes
        self.targets = targets or RateTargets()
        self.lr, self.batches_per_epoch = lr, max(1, batches_per_epoch)
        self.side_effect, self.silent_psp = side_effect, silent_psp
        self.silent_side_effect = silent_side_effect
        self.label_spikes, self.lateral_gradient = label_spikes, lateral_gradient
        self.reg_lambda, self.reg_beta, self.weight_limit = reg_lambda, reg_beta, weight_limit
        self.eval_batch, self.eval_seed = eval_batch, eval_seed
        self.optimizer = torch.optim.Adam(net.weights, lr=lr, betas=(0.9, 0.999), eps=1e-8)
        self.steps = 0
        self.last_rates: list[float] = []
        self.last_evaluation: tuple[int, dict[str, float]] | None = None
        """(examples, metrics) of the last :meth:`evaluate` (deterministic: the same input
        spikes every call, so it stands for a repeat on the same examples)"""

    # --- one update ------------------------------------------------------------------------
    def _targets(self, y: torch.Tensor) -> torch.Tensor:
        t = self.targets
        return rate_targets(y, self.n_classes, t.desired, t.undesired)

    def output_delta(self, record: Record, y: torch.Tensor) -> torch.Tensor:
        """(o - y)/nu of the output layer, margin-zeroed."""
        err = rate_error(record.counts[-1], self._targets(y), self.targets.margin)
        return err / self.net.thresholds[-1]

    def gradient(self, x: torch.Tensor, y: torch.Tensor) -> tuple[list[torch.Tensor], dict]:
        """The mean HM2-BP gradient on (x, y) (no regulariser) and the step's statistics."""
        spikes = self.encode(x, None)
        record = self.net.simulate(spikes)
        delta = self.output_delta(record, y)
        loss = rate_loss(record.counts[-1], self._targets(y), self.targets.margin)
        correct = (record.counts[-1].argmax(1) == y).to(torch.float64).mean()  # before forcing
        net, factor, forced = self.net, None, None
        if self.lateral_gradient and net.lateral:  # before forcing, as the reference
            out = record.spikes[-1]
            factor = lateral_factor(
                out, record.counts[-1], y, net.lateral, net.thresholds[-1], net.tau_m,
                net.tau_s, net.spsp_delay,
            )  # fmt: skip
        if self.label_spikes:
            forced = force_label_spikes(record, y, self.targets.desired)
        grads = net.gradients(
            spikes,
            record,
            delta,
            side_effect=self.side_effect,
            silent_psp=self.silent_psp,
            silent_side_effect=self.silent_side_effect,
            forced=forced,
            out_factor=factor,
        )
        stats = {"loss": float(loss.mean()), "accuracy": float(correct), "record": record}
        stats.update(spikes=spikes, delta=delta)
        return [g / len(x) for g in grads], stats

    def regulariser(self, w: torch.Tensor) -> torch.Tensor:
        """lambda beta (w/limit) exp(beta (mean((w/limit)^2) - 1))."""
        if not self.reg_lambda:
            return torch.zeros_like(w)
        scaled = w / self.weight_limit
        return (
            self.reg_lambda
            * self.reg_beta
            * scaled
            * torch.exp(self.reg_beta * (scaled.pow(2).mean() - 1))
        )

    @torch.no_grad()
    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """One update; returns the minibatch's loss and accuracy (of the forward pass before
        the update, label spikes not forced)."""
        grads, stats = self.gradient(x, y)
        epoch = self.steps // self.batches_per_epoch
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr / math.sqrt(epoch + 1)
        for w, g in zip(self.net.weights, grads, strict=True):
            w.grad = g + self.regulariser(w)
        self.optimizer.step()
        for w in self.net.weights:
            w.grad = None
            w.clamp_(-self.weight_limit, self.weight_limit)
            w.masked_fill_(w.abs() < TINY, 0.0)  # no subnormal floats (module docstring)
        self.steps += 1
        steps = stats["spikes"].shape[1]
        self.last_rates = [float(c.double().mean()) / steps for c in stats["record"].counts]
        return {"loss": stats["loss"], "accuracy": stats["accuracy"]}

    # --- evaluation ------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
        """Output spike counts (n, classes) and the mean firing rate of every layer, with the
        input spikes drawn from a generator seeded with ``eval_seed`` (the same every call)."""
        generator = torch.Generator().manual_seed(self.eval_seed)
        counts, rates = [], torch.zeros(len(self.net.layers), dtype=torch.float64)
        for i in range(0, len(x), self.eval_batch):
            xb = x[i : i + self.eval_batch]
            record = self.net.simulate(self.encode(xb, generator))
            counts.append(record.counts[-1])
            rates += torch.tensor([float(c.double().sum()) for c in record.counts])
            steps = record.spikes[0].shape[1]
            del record  # not alive while the next batch is simulated
        totals = [len(x) * steps * math.prod(layer.out_shape) for layer in self.net.layers]
        return torch.cat(counts), [float(r) / n for r, n in zip(rates, totals, strict=True)]

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        counts, rates = self.predict(x)
        loss = rate_loss(counts, self._targets(y), self.targets.margin)
        out = {
            "loss": float(loss.mean()),
            "accuracy": float((counts.argmax(1) == y).float().mean()),
            "mean_output_spikes": float(counts.mean()),
        }
        out.update({f"firing_rate_layer{i + 1}": r for i, r in enumerate(rates)})
        self.last_evaluation = (len(x), out)
        return out

    # --- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "weights": [w.clone() for w in self.net.weights],
            "optimizer": self.optimizer.state_dict(),
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for w, saved in zip(self.net.weights, state["weights"], strict=True):
            w.copy_(saved)
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps = state["steps"]
