"""HM2-BP (Jin, Zhang & Li 2018) as a compare rule: a spiking network of the task's shape fed
rate-coded inputs. An adapter over the method's own :class:`~creditlab.methods.hm2bp.
HM2BPLearner` and :class:`~creditlab.methods.hm2bp.SpikingNetwork`, never a copy of its
experiment.

Every setting but the shape and the number of time steps is ``hm2bp.mnist``'s
(:class:`~creditlab.methods.hm2bp.experiments.MnistConfig`, the reference code's): LIF
layers with thresholds 20 (hidden; the reference's one hidden layer's value, used for every
hidden layer here) and 8 (output), weights uniform in +-1, lateral inhibition at the output,
the macro-level rate loss (35 / 5 spikes, margin 5), forced label spikes, the weight
regulariser, clipping at +-8, and the rule's own Adam with ``lr / sqrt(epoch + 1)``; the
task's optimiser is not used (HM2-BP's schedule and regulariser are part of the rule).
Inputs are Bernoulli rate-coded afresh at every step (a spike per step with probability
pixel / 5.5; the reference draws each image's trains once, which needs an image index the
shared tasks do not pass); evaluation draws its trains from a fixed seed. ``spike_steps``
(the task's field; 400 as the reference) sets the time steps per image.

Alignment: HM2-BP's output-layer gradient against the exact gradient of its rate loss in the
output weights with the spike trains held fixed
(:func:`~creditlab.methods.hm2bp.training.output_alignment`): the only layer where an exact
gradient of a defined function exists (spike counts are piecewise constant in the weights).
No overall cosine.

Locality: the error passes down through the transposed forward weights (a backpropagated
vector, weight magnitudes transported, a backward phase after the simulation). Declared
only: a LIF layer's threshold is one per layer, so no per-unit rescaling keeps the network's
function, and a backprop-vector rule with weight transport leaves the check nothing to
perturb.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from creditlab.methods.hm2bp import HM2BPLearner
from creditlab.methods.hm2bp.experiments import MnistConfig
from creditlab.methods.hm2bp.learner import rate_encoder
from creditlab.methods.hm2bp.network import dense_layers
from creditlab.methods.hm2bp.training import output_alignment, spiking_learner
from creditlab.runner import RunContext


class SpikingClassifier:
    """The method's learner with the compare protocol's alignment (module docstring)."""

    def __init__(self, inner: HM2BPLearner):
        self.inner = inner

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        return self.inner.train_step(x.flatten(1), y)

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        out = self.inner.evaluate(x.flatten(1), y)
        return {"loss": out["loss"], "accuracy": out["accuracy"]}

    def alignment_metrics(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        with torch.random.fork_rng(devices=[]):  # the training stream is left as it was
            cosine = output_alignment(self.inner, x.flatten(1), y)
        return {f"alignment_cosine/layer{len(self.inner.net.weights)}": cosine}

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)


def build(cfg: Any, n_in: int, n_out: int, total_steps: int, ctx: RunContext) -> Any:
    """The task's shape as a spiking network with ``hm2bp.mnist``'s settings."""
    hp = MnistConfig()
    hidden = tuple(cfg.hidden)
    thresholds = (hp.thresholds[0],) * len(hidden) + (hp.thresholds[-1],)
    init_w = (hp.init_w[0],) * len(hidden) + (hp.init_w[-1],)
    layers = dense_layers(n_in, hidden, n_out, init_w, ctx.generator("hm2bp"))
    steps = getattr(cfg, "spike_steps", hp.n_steps)
    epochs = max(1, getattr(cfg, "epochs", 1))
    inner = spiking_learner(
        dataclasses.replace(hp, thresholds=thresholds),
        ctx,
        layers,
        rate_encoder((n_in,), steps, hp.input_scale),
        batches_per_epoch=max(1, total_steps // epochs),
        n_out=n_out,
        eval_key="hm2bp_eval",
    )
    return SpikingClassifier(inner)
