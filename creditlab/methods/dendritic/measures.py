"""What the continuous-time experiments show the circuits and measure on them: the input
patterns, RMS potentials, the self-prediction mismatch and the alignment of the hidden
layers' instantaneous updates with backprop's."""

from __future__ import annotations

import math

import torch

from creditlab.diagnostics.alignment import alignment
from creditlab.methods.dendritic.microcircuit import Microcircuit, backprop_reference


def input_patterns(generator: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    """Input patterns U(-1, 1) drawn from ``generator`` (one stream per presentation, e.g.
    ``ctx.generator("patterns", i)``: a resumed run sees the same patterns)."""
    return torch.rand(shape, generator=generator) * 2 - 1


def rms(values: list[torch.Tensor]) -> float:
    """The root mean square over every entry of every tensor."""
    return math.sqrt(sum(float(v.pow(2).sum()) for v in values) / sum(v.numel() for v in values))


def self_prediction(net: Microcircuit) -> dict[str, float]:
    """RMS apical potential and RMS rate mismatch between interneurons and their partners."""
    mismatch = [net.interneuron_rate[l] - net.rate[l + 1] for l in range(len(net.interneuron_rate))]
    return {"apical_rms": rms(net.apical_potential), "interneuron_error_rms": rms(mismatch)}


def continuous_alignment(net: Microcircuit, u_target: torch.Tensor | None) -> dict[str, float]:
    """Cosine of the hidden layers' instantaneous Eq. 7 updates (summed over circuits) with
    backprop's for the same output error, at the current state."""
    errors = net.dendritic_errors(u_target)
    pre = [net.input_rate, *net.rate[:-1]]
    update = {f"W_PP_up.{l}": errors[l].T @ pre[l] for l in range(net.n_layers - 1)}
    reference = backprop_reference(net, net.input_rate, errors[-1])
    return alignment(update, reference).metrics(per_tensor=net.n_layers > 2)
