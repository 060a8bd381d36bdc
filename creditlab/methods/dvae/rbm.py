"""Bipartite Boltzmann machines on {0,1}: energy, block Gibbs, exact enumeration, AIS, the prior.

The RBM of both the prior and the posterior (Vahdat, Andriyash & Macready; the spec's "Model").
(The paper's text was not available offline, so the docstrings of this package cite the
spec's sections, not the paper's equation numbers.)

.. math::

    E(z) = -b_1^\\top z_1 - b_2^\\top z_2 - z_1^\\top W z_2, \\qquad
    p(z) = e^{-E(z)} / Z, \\qquad
    p(z_2 = 1 \\mid z_1) = \\sigma(b_2 + W^\\top z_1), \\quad
    p(z_1 = 1 \\mid z_2) = \\sigma(b_1 + W z_2).

Summing out one side gives the free energy of the other, which makes the smaller side
enumerable:

.. math:: \\log Z = \\log \\sum_{z_1} \\exp\\Big(b_1^\\top z_1 + \\sum_j \\mathrm{softplus}
          (b_2 + W^\\top z_1)_j\\Big)

Shapes: parameters carry any leading batch shape ``L`` (empty for the prior, ``(B,)`` for a
conditional RBM with one set of parameters per example): ``b1`` is ``L + (n1,)``, ``b2``
``L + (n2,)``, ``W`` ``L + (n1, n2)``. States carry one more axis, the chains: ``z1`` is
``L + (C, n1)``. Every sweep is a pair of batched matrix products over examples and chains.

>>> b1, b2, W = torch.zeros(2), torch.zeros(3), torch.zeros(2, 3)
>>> round(float(exact_log_partition(b1, b2, W)), 4)  # 5 log 2: every state has energy 0
3.4657
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.functional import softplus

from creditlab.methods.dvae.relax import hard_sample

Tensor = torch.Tensor


# --- energies and conditionals --------------------------------------------------------------


def energy(z1: Tensor, z2: Tensor, b1: Tensor, b2: Tensor, W: Tensor) -> Tensor:
    """``E(z) = -b1.z1 - b2.z2 - z1^T W z2`` for states ``L + (C, n)``; returns ``L + (C,)``.

    Works for relaxed states in [0, 1] too (the energy is multilinear, so a unit replaced by
    its mean gives the conditional expectation: the Rao-Blackwellised term of the KL)."""
    return -(
        (z1 * b1.unsqueeze(-2)).sum(-1) + (z2 * b2.unsqueeze(-2)).sum(-1) + ((z1 @ W) * z2).sum(-1)
    )


def logits_z2(z1: Tensor, b2: Tensor, W: Tensor) -> Tensor:
    """``b2 + W^T z1``: the logits of ``p(z2 = 1 | z1)``."""
    if z1.dim() == 3 and W.dim() == 3:  # one fused batched product for a batch of RBMs
        return torch.baddbmm(b2.unsqueeze(-2), z1, W)
    return z1 @ W + b2.unsqueeze(-2)


def logits_z1(z2: Tensor, b1: Tensor, W: Tensor) -> Tensor:
    """``b1 + W z2``: the logits of ``p(z1 = 1 | z2)``."""
    return z2 @ W.transpose(-1, -2) + b1.unsqueeze(-2)


def bernoulli(logits: Tensor) -> Tensor:
    """A hard sample of Bernoulli(sigmoid(logits)), as floats."""
    return (torch.rand_like(logits) < torch.sigmoid(logits)).to(logits.dtype)


@torch.no_grad()
def gibbs_sweep(z1: Tensor, b1: Tensor, b2: Tensor, W: Tensor) -> tuple[Tensor, Tensor]:
    """One block-Gibbs sweep, ``z2 ~ p(z2 | z1)`` then ``z1 ~ p(z1 | z2)``; returns the new
    ``z1`` and the ``z2`` it was drawn from (a joint sample when ``z1`` was one)."""
    z2 = bernoulli(logits_z2(z1, b2, W))
    return bernoulli(logits_z1(z2, b1, W)), z2


@torch.no_grad()
def gibbs(z1: Tensor, b1: Tensor, b2: Tensor, W: Tensor, sweeps: int) -> tuple[Tensor, Tensor]:
    """``sweeps`` block-Gibbs sweeps from ``z1`` (at least the half-sweep that draws ``z2``)."""
    z2 = bernoulli(logits_z2(z1, b2, W))
    for _ in range(sweeps):
        z1 = bernoulli(logits_z1(z2, b1, W))
        z2 = bernoulli(logits_z2(z1, b2, W))
    return z1, z2


def free_energy(z1: Tensor, b1: Tensor, b2: Tensor, W: Tensor) -> Tensor:
    """``log sum_{z2} exp(-E(z1, z2)) = b1.z1 + sum_j softplus(b2 + W^T z1)_j``."""
    return (z1 * b1.unsqueeze(-2)).sum(-1) + softplus(logits_z2(z1, b2, W)).sum(-1)


@dataclass
class RelaxedSweep:
    """What :func:`relaxed_sweep` returns (all ``L + (C, n)``)."""

    zeta1: Tensor
    """relaxed z1, through which gradients flow"""
    zeta2: Tensor
    """relaxed z2"""
    mean1: Tensor
    """sigmoid(a1) = E[z1 | zeta2]: zeta_mf = [mean1, zeta2] (Rao-Blackwellised)"""
    z1: Tensor
    """the chain's next hard state (no gradient)"""


def relaxed_sweep(
    z1: Tensor, b1: Tensor, b2: Tensor, W: Tensor, relax: Callable[[Tensor, Tensor], Tensor]
) -> RelaxedSweep:
    """One block-Gibbs sweep from the hard ``z1`` with relaxed samples (the paper's relaxed
    MCMC update; spec "Sampling the posterior")::

        a2 = z1 W + b2,       zeta2 = relax(a2, u2)
        a1 = zeta2 W^T + b1,  zeta1 = relax(a1, u1)

    Gradients flow from ``zeta1, zeta2, mean1`` into ``b1, b2, W``. The chain's hard state
    stays an exact Gibbs chain: ``z2 = H(u2 - (1 - sigmoid(a2)))`` is the hard sample behind
    ``zeta2``, and the returned ``z1`` is drawn from ``p(z1 | z2)`` of that *hard* ``z2`` with the
    same noise ``u1`` (so it is the hard sample behind ``zeta1`` up to the relaxation of z2)."""
    a2 = logits_z2(z1, b2, W)
    u2 = torch.rand_like(a2)
    zeta2 = relax(a2, u2)
    a1 = logits_z1(zeta2, b1, W)
    u1 = torch.rand_like(a1)
    zeta1 = relax(a1, u1)
    with torch.no_grad():
        z2 = hard_sample(a2, u2)
        z1_next = hard_sample(logits_z1(z2, b1, W), u1)
    return RelaxedSweep(zeta1, zeta2, torch.sigmoid(a1), z1_next)


# --- exact enumeration of the smaller side ------------------------------------------------


@functools.cache
def _states(n: int) -> Tensor:
    """All ``2^n`` binary vectors, shape ``(2^n, n)``, the first unit the most significant bit."""
    codes = torch.arange(2**n).unsqueeze(-1)
    return ((codes >> torch.arange(n - 1, -1, -1)) & 1).to(torch.float32)


def all_states(n: int, like: Tensor | None = None) -> Tensor:
    """All ``2^n`` binary vectors, in the dtype and on the device of ``like``."""
    states = _states(n)
    return states if like is None else states.to(like)


def _small_side_first(b1: Tensor, b2: Tensor, W: Tensor) -> tuple[Tensor, Tensor, Tensor, bool]:
    """The parameters with the smaller side first (``W`` transposed when ``n2 < n1``)."""
    if b1.shape[-1] <= b2.shape[-1]:
        return b1, b2, W, False
    return b2, b1, W.transpose(-1, -2), True


def enumerable(n1: int, n2: int, max_units: int) -> bool:
    """Whether the smaller side has at most ``max_units`` units (2^14 = 16,384 states)."""
    return min(n1, n2) <= max_units


def small_side_log_weights(b1: Tensor, b2: Tensor, W: Tensor) -> tuple[Tensor, Tensor, bool]:
    """``(states, log p*(states), swapped)``: every state of the smaller side with its
    unnormalised log-marginal ``L + (2^n_small,)``; ``swapped`` when that side is ``z2``."""
    bs, bl, Ws, swapped = _small_side_first(b1, b2, W)
    states = all_states(bs.shape[-1], bs)
    if bs.dim() > 1:  # a batch of RBMs: the same states for each
        states_b = states.expand(*bs.shape[:-1], *states.shape)
    else:
        states_b = states
    return states, free_energy(states_b, bs, bl, Ws), swapped


def exact_log_partition(b1: Tensor, b2: Tensor, W: Tensor) -> Tensor:
    """``log Z`` by enumerating the smaller side (module docstring), shape ``L``."""
    _, log_weights, _ = small_side_log_weights(b1, b2, W)
    return torch.logsumexp(log_weights, -1)


@torch.no_grad()
def exact_sample(b1: Tensor, b2: Tensor, W: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` exact samples per RBM: the smaller side from its categorical marginal over all
    ``2^n_small`` states, then the other side from its conditional. Returns ``z1, z2`` shaped
    ``L + (n, n1)``, ``L + (n, n2)``, and ``log Z`` (shape ``L``), which costs nothing more."""
    states, log_weights, swapped = small_side_log_weights(b1, b2, W)
    bs, bl, Ws, _ = _small_side_first(b1, b2, W)
    log_z = torch.logsumexp(log_weights, -1)
    flat = torch.exp(log_weights - log_z.unsqueeze(-1)).reshape(-1, len(states))
    index = torch.multinomial(flat, n, replacement=True).reshape(*log_weights.shape[:-1], n)
    small = states[index]
    large = bernoulli(logits_z2(small, bl, Ws))
    return (large, small, log_z) if swapped else (small, large, log_z)


@torch.no_grad()
def exact_marginals(b1: Tensor, b2: Tensor, W: Tensor) -> tuple[Tensor, Tensor]:
    """``p(z1_i = 1)`` and ``p(z2_j = 1)`` exactly, shapes ``L + (n1,)`` and ``L + (n2,)``."""
    states, log_weights, swapped = small_side_log_weights(b1, b2, W)
    bs, bl, Ws, _ = _small_side_first(b1, b2, W)
    probs = torch.softmax(log_weights, -1)  # L + (M,)
    small = probs @ states
    large = (probs.unsqueeze(-1) * torch.sigmoid(logits_z2(states, bl, Ws))).sum(-2)
    return (large, small) if swapped else (small, large)


# --- annealed importance sampling -----------------------------------------------------------


@dataclass
class AISResult:
    """What :func:`ais_log_partition` returns."""

    log_z: Tensor
    """the estimate of log Z, shape L"""
    z1: Tensor
    """final states L + (C, n1), weighted samples of p"""
    z2: Tensor
    """final states L + (C, n2), drawn exactly given z1"""
    log_weights: Tensor
    """log importance weights L + (C,), log Z_0 included: E[w g(z)] = Z E_p[g]"""


@torch.no_grad()
def ais_log_partition(
    b1: Tensor, b2: Tensor, W: Tensor, temperatures: int, chains: int
) -> AISResult:
    """Annealed importance sampling (Neal 2001; Salakhutdinov & Murray 2008) for ``log Z``.

    The path anneals the couplings only, ``p_beta(z) ~ exp(b1.z1 + b2.z2 + beta z1^T W z2)``,
    ``beta`` linear from 0 to 1 in ``temperatures`` steps: ``p_0`` is factorial with the
    target's biases (``log Z_0 = sum softplus(b1) + sum softplus(b2)``) and is sampled exactly.
    The larger side is summed out analytically, so the chain state is the smaller side ``s``
    with ``log p*_beta(s) = b_s.s + sum softplus(b_l + beta W_sl^T s)``; each temperature adds
    ``log p*_beta_k(s) - log p*_beta_{k-1}(s)`` to the log weight, then moves ``s`` by one
    block-Gibbs sweep that leaves ``p_beta_k`` invariant. ``log Z ~ log Z_0 + log mean w``.

    The final states with their weights are importance samples of ``p`` (the paper's posterior
    AIS samples double as the test-time importance samples this way).
    """
    bs, bl, Ws, swapped = _small_side_first(b1, b2, W)
    batch = bs.shape[:-1]
    betas = torch.linspace(0.0, 1.0, temperatures + 1, dtype=bs.dtype, device=bs.device)
    s = bernoulli(bs.unsqueeze(-2).expand(*batch, chains, bs.shape[-1]).contiguous())

    def log_p_star(s: Tensor, beta: Tensor) -> Tensor:
        return (s * bs.unsqueeze(-2)).sum(-1) + softplus(beta * (s @ Ws) + bl.unsqueeze(-2)).sum(-1)

    log_w = torch.zeros(*batch, chains, dtype=bs.dtype, device=bs.device)
    previous = log_p_star(s, betas[0])
    for k in range(1, temperatures + 1):
        current = log_p_star(s, betas[k])
        log_w += current - previous
        if k < temperatures:  # a sweep that leaves p_beta_k invariant
            large = bernoulli(betas[k] * (s @ Ws) + bl.unsqueeze(-2))
            s = bernoulli(betas[k] * (large @ Ws.transpose(-1, -2)) + bs.unsqueeze(-2))
            previous = log_p_star(s, betas[k])
    log_z0 = softplus(bs).sum(-1) + softplus(bl).sum(-1)
    log_w = log_w + log_z0.unsqueeze(-1)
    log_z = torch.logsumexp(log_w, -1) - math.log(chains)
    large = bernoulli(logits_z2(s, bl, Ws))
    z1, z2 = (large, s) if swapped else (s, large)
    return AISResult(log_z, z1, z2, log_w)


# --- the prior --------------------------------------------------------------------------------


class RBMPrior(nn.Module):
    """The RBM prior ``p(z) = exp(-E_p(z)) / Z_p`` with persistent (PCD) chains.

    .. math::

        E_p(z) = -b_1^\\top z_1 - b_2^\\top z_2 - z_1^\\top W z_2, \\qquad
        \\nabla \\log Z_p = -\\mathbb{E}_{p}[\\nabla E_p(z)]
        \\approx \\nabla\\, \\mathrm{mean}_c\\, [-E_p(z^{(c)})]

    where ``z^(c)`` are the (detached) states of ``chains`` persistent chains, each advanced by
    ``sweeps`` block-Gibbs sweeps per call of :meth:`log_partition_surrogate` (Tieleman 2008).
    The surrogate's *value* is not ``log Z_p``; only its gradient is. Parameters start at
    zero (spec). The reference code (``rbm.py``) uses population annealing from QuPA (1000
    samples, 40 sweeps) or PCD for the same expectation.

    ``gradient = "exact"`` replaces the estimate by ``log Z_p`` itself, computed by enumerating
    the smaller side whenever it has at most ``exact_max_units`` units: its autograd gradient is
    the exact ``-E_p[grad E_p]`` (no sampling noise, and the surrogate's value is then the true
    ``log Z_p``). Above the cut-off, and with ``gradient = "pcd"``, the PCD chains are used.

    >>> prior = RBMPrior(3, 4, chains=8, sweeps=1)
    >>> round(float(prior.log_partition()), 4)  # parameters start at zero: 7 log 2
    4.852
    >>> with torch.no_grad():
    ...     _ = prior.b1.fill_(1.0)
    ...     _ = prior.W.fill_(0.5)
    >>> prior.energy(torch.ones(2, 7)).tolist()  # -(3 * 1 + 0 + 12 * 0.5)
    [-9.0, -9.0]
    """

    def __init__(
        self,
        n1: int,
        n2: int,
        chains: int = 1000,
        sweeps: int = 10,
        gradient: str = "pcd",
        exact_max_units: int = 14,
    ):
        super().__init__()
        if gradient not in ("exact", "pcd"):
            raise ValueError(f"unknown prior gradient {gradient!r}; choose exact or pcd")
        self.n1, self.n2, self.sweeps = n1, n2, sweeps
        self.exact_gradient = gradient == "exact" and enumerable(n1, n2, exact_max_units)
        self.b1 = nn.Parameter(torch.zeros(n1))
        self.b2 = nn.Parameter(torch.zeros(n2))
        self.W = nn.Parameter(torch.zeros(n1, n2))
        self.register_buffer("chains", (torch.rand(chains, n1) < 0.5).float())

    def split(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return z[..., : self.n1], z[..., self.n1 :]

    def energy(self, z: Tensor, detached: bool = False) -> Tensor:
        """``E_p(z)`` for ``z`` of shape ``(..., n1 + n2)`` (hard or relaxed); with
        ``detached``, the parameters are detached (gradients reach ``z`` only)."""
        z1, z2 = self.split(z)
        lead = z.shape[:-1]
        z1, z2 = z1.reshape(-1, 1, self.n1), z2.reshape(-1, 1, self.n2)
        params = (self.b1, self.b2, self.W)
        if detached:
            params = tuple(p.detach() for p in params)
        return energy(z1, z2, *params).reshape(lead)

    def log_partition_surrogate(self) -> Tensor:
        """``mean(-E_p(z_pcd))`` over the advanced persistent chains: its gradient is the PCD
        estimate of ``grad log Z_p``; or, with the exact gradient, ``log Z_p`` by enumeration
        (class docstring)."""
        if self.exact_gradient:
            return exact_log_partition(self.b1, self.b2, self.W)
        with torch.no_grad():
            z1, z2 = gibbs(self.chains, self.b1, self.b2, self.W, self.sweeps)
            self.chains.copy_(z1)
        return -energy(z1, z2, self.b1, self.b2, self.W).mean()

    @torch.no_grad()
    def log_partition(
        self, exact_max_units: int = 14, ais_temperatures: int = 10000, ais_chains: int = 1024
    ) -> Tensor:
        """``log Z_p``: exact when the smaller side has at most ``exact_max_units`` units,
        otherwise by AIS with ``ais_temperatures`` x ``ais_chains``."""
        if enumerable(self.n1, self.n2, exact_max_units):
            return exact_log_partition(self.b1, self.b2, self.W)
        return ais_log_partition(self.b1, self.b2, self.W, ais_temperatures, ais_chains).log_z

    @torch.no_grad()
    def sample(self, n: int, exact_max_units: int = 14, sweeps: int = 1000) -> Tensor:
        """``n`` samples ``(n, n1 + n2)``: exact by enumeration when possible, otherwise the
        first ``n`` persistent chains advanced by ``sweeps`` further sweeps."""
        if enumerable(self.n1, self.n2, exact_max_units):
            z1, z2, _ = exact_sample(self.b1, self.b2, self.W, n)
        else:
            z1, z2 = gibbs(self.chains[:n], self.b1, self.b2, self.W, sweeps)
        return torch.cat([z1, z2], -1)
