r"""Eqs. 1-10 of the dendritic microcircuit written once: the conductances, the rate function,
the somatic input currents (Eqs. 1-2), the Euler step of a leaky soma, and the postsynaptic
factors of the plasticity rules (Eqs. 7-10). Both simulations call these:
:meth:`~creditlab.methods.dendritic.microcircuit.Microcircuit.step` one layer at a time, and
the blocked simulation of :mod:`~creditlab.methods.dendritic.fast` on its packed tensors
(the functions broadcast: a conductance or attenuation may be a number or a tensor).

Eq. 1 and Eq. 2 are written as :math:`\dot u = I - G u` with the input current

.. math::

    I_k &= g_B v_{B,k} + g_A v_{A,k}  \quad\text{(hidden)},\qquad
    I_N = g_B v_{B,N} + g_{som} u^{trgt}_N \quad\text{(output, nudged)} \\
    I^I_k &= g_D v^I_k + g_{som} u_{k+1}

and :math:`G` from :meth:`Conductances.pyramidal_total` / :attr:`Conductances.interneuron_total`.
The plasticity rules' postsynaptic factors are a rate minus the rate of a dendritic
prediction (:func:`prediction_error`: Eq. 7 with :math:`\hat c_k v_{B,k}`, Eq. 8 with
:math:`c_I v^I_k`, Eq. 10 with :math:`W^{PP}_{k,k+1} r_{k+1}`) and, for Eq. 9,
:math:`v_{rest} - v_{A,k}` (:func:`apical_error`).

>>> import torch
>>> g = Conductances()
>>> v_B, v_A = torch.tensor([1.0]), torch.tensor([0.5])
>>> torch.allclose(pyramidal_current(g, v_B, v_A), g.g_B * v_B + g.g_A * v_A)
True
>>> phi = Transfer("softplus")
>>> float(prediction_error(phi, phi(v_B), v_B))  # a prediction that is right: no error
0.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class Conductances:
    """Leak, dendro-somatic and nudging conductances (the values used by reimplementations)."""

    g_lk: float = 0.1
    g_B: float = 1.0
    g_A: float = 0.8
    g_D: float = 1.0
    g_som: float = 0.8

    def basal_attenuation(self, output: bool) -> float:
        """:math:`g_B / (g_{lk} + g_B + g_A)` (hidden) or :math:`g_B/(g_{lk}+g_B)` (output):
        the somatic voltage the basal input alone would hold, per unit of basal potential."""
        return self.g_B / (self.g_lk + self.g_B + (0.0 if output else self.g_A))

    @property
    def dendrite_attenuation(self) -> float:
        """:math:`g_D / (g_{lk} + g_D)`, the same for the interneuron's dendrite."""
        return self.g_D / (self.g_lk + self.g_D)

    def pyramidal_total(self, output: bool, nudged: bool = False) -> float:
        """G of Eq. 1 written as :math:`\\dot u = I - G u`: :math:`g_{lk} + g_B + g_A`
        (hidden), :math:`g_{lk} + g_B` (output) plus :math:`g_{som}` while a target nudges it."""
        if not output:
            return self.g_lk + self.g_B + self.g_A
        return self.g_lk + self.g_B + (self.g_som if nudged else 0.0)

    @property
    def interneuron_total(self) -> float:
        """G of Eq. 2: :math:`g_{lk} + g_D + g_{som}`."""
        return self.g_lk + self.g_D + self.g_som


class Transfer:
    r"""The rate function :math:`\phi`: ``"softplus"`` is the regression task's
    :math:`\gamma \log(1 + e^{\beta (u - \theta)})`; ``"logistic"`` is MNIST's
    :math:`1 / (1 + e^{-u})`; ``"linear"`` is :math:`u` (for analytic checks).

    >>> phi = Transfer("softplus")
    >>> u = torch.tensor([0.0, 3.0, 6.0])
    >>> torch.allclose(phi.inverse(phi(u)), u, atol=1e-5)  # float32: theta + log(...) rounds ~2e-7
    True
    """

    def __init__(
        self,
        kind: Literal["softplus", "logistic", "linear"] = "softplus",
        gamma: float = 0.1,
        beta: float = 1.0,
        theta: float = 3.0,
    ):
        self.kind, self.gamma, self.beta, self.theta = kind, gamma, beta, theta

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        if self.kind == "softplus":
            return F.softplus(u - self.theta, beta=self.beta) * (self.gamma * self.beta)
        if self.kind == "logistic":
            return torch.sigmoid(u)
        return u.clone()

    def inverse(self, r: torch.Tensor) -> torch.Tensor:
        """The voltage whose rate is ``r`` (the output target voltage of a target rate)."""
        if self.kind == "softplus":
            return self.theta + torch.log(torch.expm1(r / self.gamma)) / self.beta
        if self.kind == "logistic":
            return torch.logit(r)
        return r.clone()

    def __repr__(self) -> str:
        if self.kind == "softplus":
            return f"Transfer('softplus', gamma={self.gamma}, beta={self.beta}, theta={self.theta})"
        return f"Transfer({self.kind!r})"


def pyramidal_current(
    g: Conductances,
    v_B: torch.Tensor,
    v_A: torch.Tensor | None = None,
    u_target: torch.Tensor | None = None,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 1's input current I of a pyramidal layer: :math:`g_B v_B + g_A v_A` (a hidden
    layer, ``v_A`` given), :math:`g_B v_B + g_{som} u^{trgt}` (the output with a target) or
    :math:`g_B v_B` (the output without one)."""
    if v_A is not None:
        return torch.add(v_B, v_A, alpha=g.g_A / g.g_B, out=out).mul_(g.g_B)
    if u_target is not None:
        return torch.add(v_B, u_target, alpha=g.g_som / g.g_B, out=out).mul_(g.g_B)
    return torch.mul(v_B, g.g_B, out=out)


def interneuron_current(
    g: Conductances,
    v_I: torch.Tensor,
    partner_soma: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 2's input current :math:`g_D v^I + g_{som} u_{k+1}`: the dendrite, and the nudging
    towards the partner's somatic potential (its prospective one with latent equilibrium)."""
    return torch.add(v_I, partner_soma, alpha=g.g_som / g.g_D, out=out).mul_(g.g_D)


def leaky_step(
    u: torch.Tensor, current: torch.Tensor, total: float | torch.Tensor, dt: float
) -> torch.Tensor:
    """One explicit Euler step of :math:`\\dot u = I - G u`, in place: ``u += dt (I - G u)``
    (``total``: G as a number, or a float64 tensor of one G per unit)."""
    return u.mul_(1 - dt * total).add_(current, alpha=dt)


def somatic_noise(
    batch: int, width: int, noise: float, dt: float, *, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """The Euler-Maruyama noise of one step, :math:`\\sigma \\sqrt{dt}\\, \\mathcal N(0, 1)`, for
    ``width`` units (pyramidal layers, then interneuron layers) of ``batch`` circuits."""
    xi = torch.randn(batch, width, dtype=dtype, device=device)
    return xi.mul_(noise * dt**0.5)


def prediction_error(
    phi: Transfer,
    rate: torch.Tensor,
    potential: torch.Tensor,
    attenuation: float | torch.Tensor = 1.0,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""The postsynaptic factor of Eqs. 7, 8 and 10, :math:`\phi(u) - \phi(c\, v)`: a rate
    minus the rate of its dendritic prediction ``potential`` attenuated by ``attenuation``
    (Eq. 7: :math:`\hat c_k`, Eq. 8: :math:`g_D / (g_{lk} + g_D)`, Eq. 10: 1)."""
    if not isinstance(attenuation, torch.Tensor) and attenuation == 1.0:
        return torch.sub(rate, phi(potential), out=out)
    return torch.sub(rate, phi(potential * attenuation), out=out)


def apical_error(v_A: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
    r"""Eq. 9's postsynaptic factor :math:`v_{rest} - v_A` (resting potential 0)."""
    return torch.neg(v_A, out=out)
