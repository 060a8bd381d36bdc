"""How close is a learning rule's update to backprop's? Cosine and angle to -gradient.

Every learning rule in creditlab reports ``alignment_cosine``: the cosine similarity
between the update it proposes, ``Δθ``, and the exact steepest-descent direction ``-∇θ L``
that backprop computes for the same model, batch and loss,

    cos ∠(Δθ, -∇θ L) = <Δθ, -∇θ L> / (‖Δθ‖ ‖∇θ L‖),

per parameter tensor and over all of them concatenated ("overall"). Plain SGD gives 1, an
update in a random direction about 0 (the cosine of two random directions in d dimensions
has standard deviation 1/sqrt(d)), and anything below 0 would increase the loss to first
order. Only the direction counts: learning rates and batch sizes drop out.

Two entry points:

* :func:`alignment` compares two dicts of tensors (name -> update, name -> reference).
  Rules whose model is not an ``nn.Module`` (coagents, microcircuits) compute the reference
  themselves and call this.
* :func:`gradient_alignment` takes an ``nn.Module``, a batch and a loss, computes the exact
  gradient with ``torch.autograd.grad`` (the model's ``.grad`` fields are left untouched)
  and compares it with the proposed update.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Alignment:
    """Cosines and angles (degrees) per parameter tensor and overall."""

    cosine: dict[str, float]
    angle_degrees: dict[str, float]
    overall_cosine: float
    overall_angle_degrees: float

    def metrics(self, prefix: str = "alignment", per_tensor: bool = False) -> dict[str, float]:
        """``{"alignment_cosine": ..., "alignment_angle_degrees": ...}`` for ``ctx.log``;
        with ``per_tensor`` also ``alignment_cosine/<name>`` for each parameter tensor."""
        out = {
            f"{prefix}_cosine": self.overall_cosine,
            f"{prefix}_angle_degrees": self.overall_angle_degrees,
        }
        if per_tensor:
            out.update({f"{prefix}_cosine/{name}": c for name, c in self.cosine.items()})
        return out


def _cosine(dot: float, norm_a: float, norm_b: float) -> float:
    """A zero vector has no direction: it is reported as orthogonal (cosine 0)."""
    if norm_a == 0.0 or norm_b == 0.0:
        return 0.0
    return max(-1.0, min(1.0, dot / (norm_a * norm_b)))


def _degrees(cosine: float) -> float:
    return math.degrees(math.acos(cosine))


def alignment(
    update: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor]
) -> Alignment:
    """Cosine between ``update[name]`` and ``reference[name]`` for every name in ``update``,
    and between the two concatenated over those names. Sums are taken in float64."""
    missing = [name for name in update if name not in reference]
    if missing:
        raise KeyError(f"no reference for {missing}; reference has {list(reference)}")
    cosine, dot_all, nu_all, nr_all = {}, 0.0, 0.0, 0.0
    for name, u in update.items():
        r = reference[name]
        if u.shape != r.shape:
            raise ValueError(f"{name}: update shape {tuple(u.shape)} != {tuple(r.shape)}")
        u64, r64 = u.detach().double().flatten(), r.detach().double().flatten()
        dot, nu, nr = (u64 @ r64).item(), (u64 @ u64).item(), (r64 @ r64).item()
        cosine[name] = _cosine(dot, math.sqrt(nu), math.sqrt(nr))
        dot_all, nu_all, nr_all = dot_all + dot, nu_all + nu, nr_all + nr
    overall = _cosine(dot_all, math.sqrt(nu_all), math.sqrt(nr_all))
    return Alignment(
        cosine=cosine,
        angle_degrees={name: _degrees(c) for name, c in cosine.items()},
        overall_cosine=overall,
        overall_angle_degrees=_degrees(overall),
    )


def backprop_gradient(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    names: list[str] | None = None,
) -> dict[str, torch.Tensor]:
    """The exact gradient ``∇θ L`` of ``loss_fn(model(x), y)`` for the named parameters
    (default: all that require grad), by ``torch.autograd.grad``; ``.grad`` is untouched."""
    params = dict(model.named_parameters())
    names = names or [n for n, p in params.items() if p.requires_grad]
    with torch.enable_grad():
        loss = loss_fn(model(x), y)
        grads = torch.autograd.grad(loss, [params[n] for n in names], allow_unused=True)
    return {
        n: torch.zeros_like(params[n]) if g is None else g
        for n, g in zip(names, grads, strict=True)
    }


def gradient_alignment(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    update: Mapping[str, torch.Tensor],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = nn.functional.cross_entropy,
) -> Alignment:
    """Alignment of a rule's proposed ``update`` (parameter name -> Δθ) with ``-∇θ L`` on the
    batch ``(x, y)``; only the parameters named in ``update`` take part."""
    params = dict(model.named_parameters())
    unknown = [name for name in update if name not in params]
    if unknown:
        raise KeyError(f"{unknown} are not parameters of the model; it has {list(params)}")
    gradient = backprop_gradient(model, loss_fn, x, y, names=list(update))
    return alignment(update, {name: -g for name, g in gradient.items()})
