"""The dendritic microcircuit (Sacramento et al. 2018) as a compare rule: an adapter over the
method's own :class:`~creditlab.methods.dendritic.SweepsClassifier`, never a copy of it.

The network is the task's shape (``n_in -> hidden -> n_out``) built by the method's own
:func:`~creditlab.methods.dendritic.mnist.mnist_net` with every other setting from
``dendritic.mnist``'s config (:class:`~creditlab.methods.dendritic.experiments.MnistConfig`):
logistic units with biases, fixed random top-down weights, the self-predicting start, the
two-sweep steady state, Eqs. 7-8 handed to SGD (lr 0.05, momentum 0.9, cosine decay over the
task's steps). The optimiser is the rule's own, not the task's Adam: Adam breaks the lockstep
between the forward weights and the interneurons that predict them (see
``SweepsClassifier``'s docstring). Targets are rates 0.1 / 0.8; the prediction is the argmax
of the output rates of the feedforward steady state.

Alignment: the cosine of Eq. 7's update of every forward weight and bias with backprop's
exact gradient step (autograd) of the loss whose output error is the microcircuit's own
(:func:`~creditlab.methods.dendritic.backprop_reference`: for logistic outputs clamped to
their targets, the cross-entropy with the target rates), per weight matrix and overall.

Locality probe: a copy of the circuit with the method's linear rate function
(``Transfer("linear")``), positively homogeneous like ReLU, so that rescaling a hidden layer's
units keeps the function (the check of :mod:`creditlab.compare.locality`); what the update
reads does not depend on the rate function.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch

from creditlab.diagnostics.alignment import alignment
from creditlab.methods.dendritic import SweepsClassifier, Transfer, backprop_reference
from creditlab.methods.dendritic.experiments import MnistConfig
from creditlab.methods.dendritic.microcircuit import Microcircuit
from creditlab.methods.dendritic.mnist import mnist_net
from creditlab.methods.dendritic.sweeps import (
    MixingFactors,
    sweep_errors,
    sweep_updates,
    two_sweeps,
)
from creditlab.runner import RunContext


def method_config(cfg: Any) -> MnistConfig:
    """``dendritic.mnist``'s settings with the task's hidden widths."""
    return dataclasses.replace(MnistConfig(), hidden=tuple(cfg.hidden))


class MicrocircuitProbe:
    """A microcircuit and its sweeps, with the probe methods of
    :func:`creditlab.compare.locality.check_locality`."""

    def __init__(self, net: Microcircuit, lam: MixingFactors, target_rates: tuple[float, float]):
        self.net, self.lam, self.target_rates = net, lam, target_rates

    def target_voltage(self, y: torch.Tensor) -> torch.Tensor:
        low, high = self.target_rates
        n_out = self.net.sizes[-1]
        r = torch.full((len(y), n_out), low, dtype=self.net.dtype, device=y.device)
        return self.net.phi.inverse(r.scatter_(1, y[:, None], high))

    @torch.no_grad()
    def update(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Eqs. 7-8 at the two-sweep state, summed over the batch (nothing is changed)."""
        x = x.to(self.net.dtype).flatten(1)
        return sweep_updates(self.net, x, self.target_voltage(y), self.lam)[0]

    @property
    def n_hidden(self) -> int:
        return self.net.n_layers - 1

    def hidden_names(self, layer: int) -> list[str]:
        return [f"W_PP_up.{layer}"] + ([f"b_PP_up.{layer}"] if self.net.bias else [])

    def unit_count(self, layer: int) -> int:
        return self.net.sizes[layer + 1]

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.predict(x.to(self.net.dtype))[-1]

    @torch.no_grad()
    def rescale_units(self, layer: int, scale: torch.Tensor) -> None:
        """Layer ``layer``'s units times ``scale``: their incoming forward weights and biases
        times it; everything that reads their rates (the forward weights above, the
        interneurons that predict the layer above) divided by it; the interneurons that
        predict them (layer - 1's) times it, so they stay self-predicting."""
        net, s = self.net, scale.to(self.net.dtype)
        net.W_PP_up[layer].mul_(s[:, None])
        net.W_PP_up[layer + 1].div_(s[None, :])
        net.W_IP[layer].div_(s[None, :])
        if net.bias:
            net.b_PP_up[layer].mul_(s)
        if layer > 0:
            net.W_IP[layer - 1].mul_(s[:, None])
            if net.bias:
                net.b_IP[layer - 1].mul_(s)

    @torch.no_grad()
    def redraw_feedback(self, keep: int, generator: torch.Generator) -> None:
        """Draw every top-down matrix again except the one into hidden layer ``keep`` (with
        the same scale; the interneurons' apical weights follow, ``W_PI = -W_down``)."""
        for k, down in enumerate(self.net.W_PP_down):
            if k != keep:
                bound = down.abs().max().item() or 1.0
                fresh = torch.rand(down.shape, generator=generator, dtype=torch.float64) * 2 - 1
                down.copy_(fresh * bound)
                self.net.W_PI[k].copy_(-down)


class DendriticClassifier:
    """The method's :class:`SweepsClassifier` on the compare learner protocol, with
    alignment and a locality probe (module docstring)."""

    def __init__(self, inner: SweepsClassifier):
        self.inner = inner

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        return self.inner.train_step(x, y)

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        return self.inner.evaluate(x, y)

    @torch.no_grad()
    def proposed_update(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Eq. 7's update of every forward weight and bias (summed over the batch)."""
        net = self.inner.net
        x = x.to(net.dtype).flatten(1)
        updates, _ = sweep_updates(net, x, self.inner.target_voltage(y), self.inner.lam)
        return {k: v for k, v in updates.items() if k.startswith(("W_PP_up.", "b_PP_up."))}

    @torch.no_grad()
    def alignment_metrics(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        net, lam = self.inner.net, self.inner.lam
        xf = x.to(net.dtype).flatten(1)
        state = two_sweeps(net, xf, self.inner.target_voltage(y), lam)
        errors, _ = sweep_errors(net, xf, state, lam)
        update = self.proposed_update(x, y)
        reference = backprop_reference(net, xf, errors[-1])
        result = alignment(update, reference)
        out = {"alignment_cosine": result.overall_cosine}
        for l in range(net.n_layers):
            out[f"alignment_cosine/layer{l + 1}"] = result.cosine[f"W_PP_up.{l}"]
        return out

    def locality_probe(self) -> MicrocircuitProbe:
        net = copy.deepcopy(self.inner.net)
        net.phi = Transfer("linear")
        return MicrocircuitProbe(net, self.inner.lam, self.inner.target_rates)

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)


def build(cfg: Any, n_in: int, n_out: int, total_steps: int, ctx: RunContext) -> Any:
    """The task's shape with ``dendritic.mnist``'s microcircuit, sweeps and SGD."""
    mc = method_config(cfg)
    net = mnist_net(mc, n_in, n_out, ctx.device, ctx.generator("dendritic"))
    inner = SweepsClassifier(
        net,
        mc.mixing_factors(),
        [mc.lr] * net.n_layers,
        optimizer=mc.optimizer,
        momentum=mc.momentum,
        total_steps=total_steps if mc.cosine_schedule else 0,
        interneurons=mc.interneurons,
        interneuron_lr_factor=mc.interneuron_lr_factor,
        target_rates=(mc.target_low, mc.target_high),
        n_classes=n_out,
    )
    return DendriticClassifier(inner)
