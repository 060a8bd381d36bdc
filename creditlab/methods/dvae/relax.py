"""Continuous relaxations of a Bernoulli sample that share its uniform noise.

A binary unit with logit ``a`` and mean ``q = sigmoid(a)`` is sampled as ``z = H(u - (1 - q))``
with ``u ~ U(0, 1)`` (``H`` the step function). A relaxation replaces the step by a smooth or
piecewise-linear ramp in the *same* ``u``, so the relaxed ``zeta`` is close to the hard ``z``
drawn with that noise, and ``zeta`` is a differentiable function of ``a`` (the
reparameterisation through which the gradient of the objective reaches the posterior).

* Piecewise linear (PWL; Vahdat, Andriyash & Macready, as written in the spec):

  .. math:: \\zeta = \\mathrm{clip}\\big(\\tfrac12 + s(q)\\,(u - (1 - q)),\\ 0,\\ 1\\big),\\qquad
            s(q) = \\frac{\\beta / 4}{q (1 - q) + 0.01}

  The ramp is centred on the step, so whenever it fits in ``[0, 1]``, ``E_u[zeta] = q`` exactly
  and ``dE_u[zeta]/dq = 1``: unbiased for functions linear in the unit. Gradients flow through
  ``q`` in both places it appears (the slope too), which is the formula read literally.
* Concrete / Gumbel-sigmoid (Maddison et al. 2017; Jang et al. 2017):

  .. math:: \\zeta = \\sigma\\big(\\beta\\,(a + \\log u - \\log(1 - u))\\big)

  i.e. temperature ``1 / beta``; ``a + logit(u) > 0`` is the same event as ``u > 1 - q``.

>>> a = torch.tensor([-2.0, 0.0, 2.0])
>>> u = torch.tensor([0.5, 0.9, 0.5])
>>> hard_sample(a, u).tolist()
[0.0, 1.0, 1.0]
>>> pwl(a, u, beta=1000.0).tolist()  # a steep ramp is the step
[0.0, 1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

Tensor = torch.Tensor
Relaxation = Literal["pwl", "concrete"]


def hard_sample(logits: Tensor, u: Tensor) -> Tensor:
    """The Bernoulli(sigmoid(logits)) sample ``H(u - (1 - q))`` that both relaxations smooth."""
    return (u > torch.sigmoid(-logits)).to(logits.dtype)


def pwl(logits: Tensor, u: Tensor, beta: float) -> Tensor:
    """Piecewise-linear relaxation (module docstring): a ramp of slope ``s(q)`` at the step."""
    q = torch.sigmoid(logits)
    slope = 0.25 * beta / (q * (1 - q) + 0.01)
    return torch.clamp(0.5 + slope * (u - (1 - q)), 0.0, 1.0)


def concrete(logits: Tensor, u: Tensor, beta: float) -> Tensor:
    """Concrete (Gumbel-sigmoid) relaxation at temperature ``1 / beta``."""
    u = u.clamp(1e-7, 1 - 1e-7)
    return torch.sigmoid(beta * (logits + torch.log(u) - torch.log1p(-u)))


def relaxation(name: Relaxation, beta: float) -> Callable[[Tensor, Tensor], Tensor]:
    """``relax(logits, u) -> zeta`` for ``name`` ("pwl" or "concrete") at sharpness ``beta``."""
    if name == "pwl":
        return lambda logits, u: pwl(logits, u, beta)
    if name == "concrete":
        return lambda logits, u: concrete(logits, u, beta)
    raise ValueError(f"unknown relaxation {name!r}; choose pwl or concrete")
