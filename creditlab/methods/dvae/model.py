"""The discrete VAE: RBM prior, Bernoulli decoder, one of the posteriors; its training objective
and its importance-weighted test likelihood.

**Generative model** (spec, "Model"): ``p(x, z) = p(z) p(x | z)`` with the RBM prior of
:class:`~.rbm.RBMPrior` and a decoder MLP ``n -> hidden -> 784`` (batch-norm + tanh) whose
Bernoulli logits are offset by ``logit(clip(mean_x, 1e-3, 1 - 1e-3))``. The relaxation is a
device of the gradient estimator only: the model, and the test likelihood, are over binary z.

**ELBO with KL warm-up** (``k = 1``; spec, "Objective")::

    loss = -log p(x | zeta) + c_KL * KL,
    KL   = E_p(zeta_mf) + logZ_sur + log q(zeta_mf)      (RBM: log q = -E_q, params detached)
    KL   = E_p(zeta_mf) + logZ_sur - H(q)                (directed: H in closed form)
    KL   = E_p(sigmoid(a)) + logZ_sur - H(q)             (factorial: exact, see FactorialPosterior)

``logZ_sur`` is the prior's exact ``log Z_p`` (small priors) or its PCD surrogate, whose
gradient is ``grad log Z_p``; ``c_KL`` rises linearly from 0 to 1 over the first ``kl_warmup``
fraction of the iterations.

**Importance-weighted bound** (``k > 1``)::

    log w_k = log p(x | zeta_k) + c_KL * (-E_p(zeta_mf_k) - logZ_sur - log q(zeta_mf_k)),
    loss    = -sum_k sg(w~_k) log w_k,    w~ = softmax_k(log w)

which gives the decoder and prior the IWAE gradient. The encoder, which sees only path
derivatives (``log q`` has its parameters detached), receives them with weights
``c_KL w~^2 + (1 - c_KL) w~`` (spec): at ``c_KL = 1`` this is the doubly reparameterised (DReG,
Tucker et al. 2019) estimator, at ``c_KL = 0`` (no ``log q`` in the bound) plain IWAE; the
interpolation follows from the same identity ``E_q[f grad log q] = E_q[df/dz dz/dphi]``
applied to the ``c_KL``-scaled ``log q``. It is implemented literally, as a second, zero-valued
term ``-sum_k sg(weights_k - w~_k) log w_k`` evaluated with the decoder's and prior's
parameters detached (a second decoder pass, for ``k > 1`` only). Inside ``log w`` the energies
use ``zeta_mf`` as in the ELBO (our reading of the spec; an exact Rao-Blackwellisation inside
a log-sum-exp does not exist).

**Test likelihood** (spec, "Evaluation")::

    NLL(x) = -(logsumexp_k log w_k - log K),
    log w  = log p(x | z) - E_p(z) - log Z_p - log q(z | x),   z ~ q hard samples

with ``log Z_p`` exact by enumeration or by AIS, and the posterior's exact ``log q`` (factorial,
directed, or an enumerable RBM) or the AIS-weighted samples of a large RBM posterior.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from creditlab.methods.dvae.posteriors import (
    MLP,
    REFERENCE_NETS,
    ChainState,
    CouplingFan,
    DirectedEncoder,
    DirectedPosterior,
    FactorialKL,
    FactorialPosterior,
    NetOptions,
    Posterior,
    RBMPosterior,
)
from creditlab.methods.dvae.rbm import RBMPrior
from creditlab.methods.dvae.relax import Relaxation

Tensor = torch.Tensor
PosteriorKind = Literal["rbm_posterior", "rbm_uncoupled", "factorial", "directed"]
"""``rbm_uncoupled`` is the RBM posterior with its couplings switched off (``J = 0``): a
factorial posterior trained through the RBM machinery (persistent chains, the relaxed sweep,
the detached-energy entropy), the control that separates what the couplings buy"""
PriorGradient = Literal["exact", "pcd"]


class Decoder(nn.Module):
    """``p(x | z)``: Bernoulli logits from an MLP, offset by the logit of the pixel means."""

    def __init__(
        self,
        n_latent: int,
        hidden: Sequence[int],
        x_mean: Tensor,
        options: NetOptions = REFERENCE_NETS,
    ):
        super().__init__()
        self.net = MLP(n_latent, hidden, x_mean.numel(), options)
        offset = torch.logit(x_mean.clamp(1e-3, 1 - 1e-3))
        self.register_buffer("offset", offset.reshape(-1))

    def forward(self, z: Tensor, detached: bool = False) -> Tensor:
        lead = z.shape[:-1]
        logits = self.net(z.reshape(-1, z.shape[-1]), detached=detached) + self.offset
        return logits.reshape(*lead, -1)

    def log_likelihood(self, x: Tensor, z: Tensor, detached: bool = False) -> Tensor:
        """``log p(x | z)`` for ``x`` (B, D) and ``z`` (B, k, n); returns (B, k). With
        ``detached``, the decoder's parameters are detached (gradients reach ``z`` only)."""
        logits = self(z, detached)
        target = x.unsqueeze(1).expand_as(logits)
        return -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)


class DVAE(nn.Module):
    """Prior, decoder and posterior together (module docstring)."""

    def __init__(
        self,
        posterior: Posterior,
        x_mean: Tensor,
        hidden: Sequence[int] = (200, 200),
        prior_chains: int = 1000,
        prior_sweeps: int = 10,
        prior_gradient: PriorGradient = "exact",
        exact_max_units: int = 14,
        options: NetOptions = REFERENCE_NETS,
        decay_bn_scales: bool = True,
    ):
        super().__init__()
        n1, n2 = posterior.n1, posterior.n2
        self.posterior = posterior
        self.prior = RBMPrior(n1, n2, prior_chains, prior_sweeps, prior_gradient, exact_max_units)
        self.decoder = Decoder(n1 + n2, hidden, x_mean, options)
        self.decay_bn_scales = decay_bn_scales
        self.register_buffer("x_mean", x_mean.reshape(-1))

    def centred(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = x.reshape(len(x), -1)
        return x, x - self.x_mean

    def objective(
        self, x: Tensor, index: Tensor, c_kl: float, k: int = 1
    ) -> tuple[Tensor, dict[str, float]]:
        """The training loss (the negative ELBO or IW bound with the surrogate ``log Z_p``;
        module docstring) and its parts for logging."""
        x, xc = self.centred(x)
        sample = self.posterior.relaxed(xc, index, k)
        log_z = self.prior.log_partition_surrogate()
        if k == 1:
            log_px = self.decoder.log_likelihood(x, sample.zeta)  # (B, 1)
            at = sample.zeta_mf if sample.zeta_ce is None else sample.zeta_ce
            energy_p = self.prior.energy(at)  # (B, 1)
            log_q = self.posterior.neg_entropy(sample)
            if log_q is None:
                log_q = self.posterior.log_q(sample.zeta_mf, sample)[:, 0]
            kl = energy_p[:, 0] + log_z + log_q
            loss = (-log_px[:, 0] + c_kl * kl).mean()
            return loss, {"recon": -log_px.mean().item(), "kl_sur": kl.mean().item()}
        log_px = self.decoder.log_likelihood(x, sample.zeta)
        log_q = self.posterior.log_q(sample.zeta_mf, sample)  # path derivative only
        log_w = log_px + c_kl * (-self.prior.energy(sample.zeta_mf) - log_z - log_q)
        w = torch.softmax(log_w.detach(), -1)
        weights = c_kl * w**2 + (1 - c_kl) * w
        # The same log w with the decoder's and prior's parameters detached, so that only the
        # encoder (through zeta, zeta_mf) receives the extra weights - w (zero-valued term).
        log_w_enc = self.decoder.log_likelihood(x, sample.zeta, detached=True) + c_kl * (
            -self.prior.energy(sample.zeta_mf, detached=True) - log_q
        )
        extra = -((weights - w) * log_w_enc).sum(-1).mean()
        loss = -(w * log_w).sum(-1).mean() + (extra - extra.detach())
        bound = (torch.logsumexp(log_w.detach(), -1) - math.log(k)).mean()
        return loss, {"recon": -log_px.mean().item(), "bound_sur": bound.item()}

    @torch.no_grad()
    def log_likelihood(
        self,
        x: Tensor,
        samples: int,
        log_z_prior: Tensor,
        exact_max_units: int = 14,
        ais_temperatures: int = 500,
    ) -> Tensor:
        """Importance-weighted estimate of ``log p(x)`` per example with ``samples`` hard
        samples from q (module docstring); ``log_z_prior`` from :meth:`RBMPrior.log_partition`."""
        x, xc = self.centred(x)
        z, log_q = self.posterior.sample(
            xc, samples, exact_max_units=exact_max_units, ais_temperatures=ais_temperatures
        )
        log_w = self.decoder.log_likelihood(x, z) - self.prior.energy(z) - log_z_prior - log_q
        return torch.logsumexp(log_w, -1) - math.log(samples)

    def weights(self) -> list[Tensor]:
        """What the L2 penalty applies to: the linear layers' weight matrices, the prior's W
        and, with ``decay_bn_scales``, the gains of the networks' batch norms (the reference's
        ``nets.py`` decays every ``kernel`` and ``gamma`` of a network; the RBM posterior's
        coupling batch norm lives outside the network scope there and is not decayed)."""
        mats = [m.weight for m in self.modules() if isinstance(m, nn.Linear)]
        if self.decay_bn_scales:
            nets = [m for m in self.modules() if isinstance(m, MLP)]
            mats += [bn.weight for net in nets for bn in net.norms]
        return [*mats, self.prior.W]


@torch.no_grad()
def evaluate_nll(
    model: DVAE,
    x: Tensor,
    samples: int,
    exact_max_units: int = 14,
    ais_prior: tuple[int, int] = (10000, 1024),
    ais_posterior_temperatures: int = 500,
    rows: int = 20000,
) -> float:
    """Mean importance-weighted NLL (nats) of ``model`` on ``x`` with ``samples`` per example,
    in batches of about ``rows`` decoder evaluations (at most 50 examples, for enumeration)."""
    was_training = model.training
    model.eval()
    log_z = model.prior.log_partition(exact_max_units, *ais_prior)
    batch = max(1, min(50, rows // samples))
    total = 0.0
    for i in range(0, len(x), batch):
        ll = model.log_likelihood(
            x[i : i + batch], samples, log_z, exact_max_units, ais_posterior_temperatures
        )
        total -= float(ll.sum())
    model.train(was_training)
    return total / len(x)


def build(
    kind: PosteriorKind,
    x_mean: Tensor,
    latents: tuple[int, int],
    hidden: Sequence[int],
    examples: int,
    k: int = 1,
    sweeps: int = 10,
    relax: Relaxation = "pwl",
    beta: float = 4.0,
    coupling_scale: float = 1.5,
    prior_chains: int = 1000,
    prior_sweeps: int = 10,
    *,
    coupling_fan: CouplingFan = "larger",
    chain_state: ChainState = "before_relaxed",
    factorial_kl: FactorialKL = "exact",
    directed_encoder: DirectedEncoder = "shared_linear",
    prior_gradient: PriorGradient = "exact",
    exact_max_units: int = 14,
    options: NetOptions = REFERENCE_NETS,
    decay_bn_scales: bool = True,
) -> DVAE:
    """A DVAE with the ``kind`` posterior; the prior and decoder are the same for every kind.
    The keyword-only settings default to the reference's choices (see docs/dvae.md)."""
    n1, n2 = latents
    d = x_mean.numel()
    if kind in ("rbm_posterior", "rbm_uncoupled"):
        scale = coupling_scale if kind == "rbm_posterior" else 0.0
        posterior: Posterior = RBMPosterior(
            d, n1, n2, hidden, examples, k, sweeps, relax, beta, scale,
            coupling_fan, chain_state, options,
        )  # fmt: skip
        posterior.kind = kind
    elif kind == "factorial":
        posterior = FactorialPosterior(d, n1, n2, hidden, relax, beta, factorial_kl, options)
    elif kind == "directed":
        posterior = DirectedPosterior(d, n1, n2, hidden, relax, beta, directed_encoder, options)
    else:
        raise ValueError(f"unknown posterior {kind!r}")
    return DVAE(
        posterior,
        x_mean,
        hidden,
        prior_chains,
        prior_sweeps,
        prior_gradient,
        exact_max_units,
        options,
        decay_bn_scales,
    )


# --- the multi-modality of a posterior -------------------------------------------------------


def binary_entropy(p: Tensor) -> Tensor:
    """``-p log p - (1 - p) log(1 - p)`` in nats (0 at p = 0 and p = 1)."""
    p = p.clamp(0.0, 1.0)  # sums of probabilities can round past 1
    return -(torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p))


@torch.no_grad()
def posterior_structure(model: DVAE, x: Tensor, min_mass: float = 0.01) -> dict[str, Tensor]:
    """Exact summaries of ``q(z | x)`` per example (needs ``n1 <= 14``):

    * ``probs`` (B, 2^n1): ``q(z1 | x)`` over every state of the first group;
    * ``marginals`` (B, n): ``q(z_i = 1 | x)``;
    * ``entropy`` (B,): ``H(q(z | x))`` in nats;
    * ``total_correlation`` (B,): ``sum_i H(q(z_i)) - H(q(z))``, zero for a factorial q, the
      KL from q to the product of its marginals: how far q is from any factorial posterior;
    * ``modes`` (B,): local maxima of ``q(z1 | x)`` (no single flip of a unit raises it) that
      hold at least ``min_mass`` of the probability; always 1 for factorial and directed q,
      whose first group is factorial.
    """
    was_training = model.training
    model.eval()
    _, xc = model.centred(x)
    dist = model.posterior.z1_distribution(xc)
    model.train(was_training)
    log_q1 = dist["log_q1"]
    n1 = model.posterior.n1
    codes = torch.arange(log_q1.shape[-1], device=x.device)
    flips = codes.unsqueeze(-1) ^ (1 << torch.arange(n1, device=x.device))  # (M, n1)
    neighbours = log_q1[:, flips]  # (B, M, n1)
    is_mode = (log_q1.unsqueeze(-1) >= neighbours).all(-1) & (log_q1.exp() >= min_mass)
    tc = binary_entropy(dist["marginals"]).sum(-1) - dist["entropy"]
    return {
        "probs": log_q1.exp(),
        "marginals": dist["marginals"],
        "entropy": dist["entropy"],
        "total_correlation": tc.clamp_min(0.0),
        "modes": is_mode.sum(-1).float(),
    }
