"""Approximate posteriors q(z | x) over z = (z1, z2): the conditional RBM of the paper and the
two baselines it is compared with (factorial, and directed across the two groups).

Every posterior offers the same four things to the objective (:mod:`.model`):

* :meth:`~Posterior.relaxed`: ``k`` relaxed samples per example, as ``zeta`` (what the decoder
  sees) and ``zeta_mf`` (a Rao-Blackwellised version for the energy terms of the KL: one group
  replaced by its conditional mean, which the multilinear energies allow exactly), with
  gradients flowing through both;
* :meth:`~Posterior.log_q`: ``log q(zeta_mf | x)`` with the posterior's parameters *detached*
  (the path derivative: ``E_q[grad log q] = 0``, so only the dependence through the sample
  counts; for the RBM ``log Z_q`` is dropped, a constant per example);
* :meth:`~Posterior.neg_entropy`: ``-H(q)`` in closed form where it exists (factorial;
  directed given the first group's sample), else None (the RBM uses ``log_q``);
* :meth:`~Posterior.sample`: hard samples for evaluation with their exact ``log q`` (or, for
  an RBM too large to enumerate, AIS samples with their importance weights folded in).

Inputs ``xc`` are centred images ``x - mean_x`` of shape ``(B, D)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from creditlab.methods.dvae import rbm
from creditlab.methods.dvae.relax import Relaxation, relaxation

Tensor = torch.Tensor
CouplingFan = Literal["larger", "n1"]
ChainState = Literal["before_relaxed", "after_relaxed"]
CHAIN_STATES = ("before_relaxed", "after_relaxed")
FactorialKL = Literal["exact", "rao_blackwell"]
DirectedEncoder = Literal["shared_linear", "two_mlps"]


Init = Literal["he", "torch"]
"""initialisation of the linear layers: ``he`` (the reference's variance-scaling initialiser:
truncated normal, fan-in, factor 2, zero biases; ``nets.py``) or ``torch`` (PyTorch's default)"""


@dataclass(frozen=True)
class NetOptions:
    """How every network of the model is built (the reference's choices are the defaults)."""

    bn_eps: float = 1e-2
    """batch-norm epsilon (reference ``nets.py``, ``rbm_posterior.py``: 1e-2)"""
    bn_momentum: float = 0.01
    """batch-norm running-average momentum in PyTorch's convention (new-statistic weight):
    0.01 is TensorFlow's ``momentum=0.99`` of the reference"""
    init: Init = "he"
    """initialisation of the linear layers (see :data:`Init`)"""


REFERENCE_NETS = NetOptions()
"""the reference's network settings"""


def he_init_(linear: nn.Linear) -> None:
    """The reference's ``slim.variance_scaling_initializer()`` (factor 2, fan-in, normal): a
    normal of std ``sqrt(1.3 * 2 / fan_in)`` truncated at two std (whose std is then about
    ``sqrt(2 / fan_in)``), and zero biases (``tf.layers.dense``'s default)."""
    std = math.sqrt(1.3 * 2.0 / linear.in_features)
    nn.init.trunc_normal_(linear.weight, std=std, a=-2 * std, b=2 * std)
    nn.init.zeros_(linear.bias)


def make_linear(n_in: int, n_out: int, options: NetOptions) -> nn.Linear:
    linear = nn.Linear(n_in, n_out)
    if options.init == "he":
        he_init_(linear)
    return linear


def make_norm(n: int, options: NetOptions) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(n, eps=options.bn_eps, momentum=options.bn_momentum)


class MLP(nn.Module):
    """``n_in -> hidden... -> n_out`` with batch-norm + tanh after every hidden layer (the
    encoder and decoder of the spec; the reference's ``FeedForwardNetwork``, ``nets.py``);
    ``n_out=None`` stops after the last hidden layer (a feature network).
    ``forward(x, detached=True)`` evaluates the same function with every parameter detached
    and without touching the batch-norm running statistics (for path derivatives); gradients
    still flow into ``x``.

    >>> net = MLP(3, (4,), 2)
    >>> x = torch.randn(5, 3)
    >>> torch.allclose(net(x), net(x, detached=True))
    True
    """

    def __init__(
        self,
        n_in: int,
        hidden: Sequence[int],
        n_out: int | None,
        options: NetOptions = REFERENCE_NETS,
    ):
        super().__init__()
        widths = [n_in, *hidden] + ([] if n_out is None else [n_out])
        self.linears = nn.ModuleList(
            make_linear(a, b, options) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.norms = nn.ModuleList(make_norm(h, options) for h in hidden)
        self.n_out = widths[-1]

    def forward(self, x: Tensor, detached: bool = False) -> Tensor:
        h = x
        for i, linear in enumerate(self.linears):
            w, b = linear.weight, linear.bias
            if detached:
                w, b = w.detach(), b.detach()
            h = F.linear(h, w, b)
            if i < len(self.norms):
                h = torch.tanh(self._norm(self.norms[i], h, detached))
        return h

    def _norm(self, bn: nn.BatchNorm1d, h: Tensor, detached: bool) -> Tensor:
        if not detached:
            return bn(h)
        use_batch = self.training
        return F.batch_norm(
            h,
            None if use_batch else bn.running_mean,
            None if use_batch else bn.running_var,
            bn.weight.detach(),
            bn.bias.detach(),
            training=use_batch,
            eps=bn.eps,
        )


@dataclass
class RelaxedSample:
    """``k`` relaxed samples per example (see the module docstring)."""

    zeta: Tensor
    """(B, k, n) relaxed sample, the decoder's input"""
    zeta_mf: Tensor
    """(B, k, n) Rao-Blackwellised sample for the energies of the KL"""
    aux: dict[str, Any] = field(default_factory=dict)
    """whatever log_q and neg_entropy need (logits, detached parameters)"""
    zeta_ce: Tensor | None = None
    """(B, k, n) where the ELBO evaluates the prior's energy, when not at ``zeta_mf`` (the
    factorial posterior's exact cross-entropy: its means)"""


def bernoulli_log_prob(z: Tensor, logits: Tensor) -> Tensor:
    """``sum_i z_i a_i - softplus(a_i)``: log Bernoulli(z; sigmoid(a)), linear in ``z``."""
    return (z * logits - F.softplus(logits)).sum(-1)


def bernoulli_neg_entropy(logits: Tensor) -> Tensor:
    """``-H = sum_i q_i a_i - softplus(a_i)`` with ``q = sigmoid(a)``."""
    return bernoulli_log_prob(torch.sigmoid(logits), logits)


class Posterior(nn.Module):
    """What every approximate posterior shares: sizes and the relaxation."""

    kind = "posterior"

    def __init__(self, n1: int, n2: int, relax: Relaxation = "pwl", beta: float = 4.0):
        super().__init__()
        self.n1, self.n2, self.n = n1, n2, n1 + n2
        self.relax_name, self.beta = relax, beta
        self.relax = relaxation(relax, beta)

    def relaxed(self, xc: Tensor, index: Tensor, k: int) -> RelaxedSample:
        raise NotImplementedError

    def log_q(self, zeta_mf: Tensor, sample: RelaxedSample) -> Tensor:
        raise NotImplementedError

    def neg_entropy(self, sample: RelaxedSample) -> Tensor | None:
        return None

    def sample(self, xc: Tensor, n: int, **eval_settings: int) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def z1_distribution(self, xc: Tensor) -> dict[str, Tensor]:
        """Exact ``log q(z1 | x)`` over all ``2^n1`` states, marginals of every unit and the
        entropy of ``q(z | x)`` (for the multi-modality diagnostics; needs a small ``n1``)."""
        raise NotImplementedError


# --- the paper's posterior: a conditional RBM ------------------------------------------------


class RBMPosterior(Posterior):
    """Conditional RBM ``q(z | x) = exp(-E_q(z | x)) / Z_q(x)``, trained by backpropagating
    through one relaxed Gibbs sweep of persistent chains (Vahdat et al., the gradient
    estimator of backpropagation through MCMC updates; spec "Sampling the posterior").

    **Parameters from the encoder** (spec, "Model"): the MLP outputs Ising fields ``h1, h2`` and
    raw couplings; ``J = coupling_scale * BN(raw) / sqrt(fan)`` (batch norm with a learned gain
    and shift, so ``coupling_scale`` sets the initial scale; the reference's ``rbm_posterior.py``
    divides by ``sqrt(n1)`` with equal groups, ``fan = max(n1, n2)`` under ``coupling_fan =
    "larger"`` keeps each unit's field at that spread when the groups differ, ``"n1"`` is the
    literal ``sqrt(n1)``) and the map to {0,1} variables is

    .. math:: W_q = 4J,\\quad b_1 = 2(h_1 - \\textstyle\\sum_j J_{ij}),\\quad
              b_2 = 2(h_2 - \\textstyle\\sum_i J_{ij})

    (from ``s = 2z - 1`` in ``h.s + s1^T J s2``).

    **Sampling during training**: one persistent chain per training example (``k`` when the
    objective takes ``k`` samples), storing ``z1``, started uniform. Each visit runs ``sweeps``
    hard block-Gibbs sweeps without gradient, then one relaxed sweep with gradient::

        a2 = z1 W + b2,    zeta2 = relax(a2, u2)
        a1 = zeta2 W^T + b1, zeta1 = relax(a1, u1)
        zeta = [zeta1, zeta2],  zeta_mf = [sigmoid(a1), zeta2]

    If the kernel ``K`` leaves ``q`` invariant, ``E_q[f] = E_{z~q} E_{z'~K(.|z)} f(z')`` and
    the gradient splits into ``E_q[grad log q . Kf]``, small when ``Kf`` is nearly constant
    (fast mixing), plus the derivative through the last sweep, which is what backprop computes
    here; the estimate is biased by that truncation and by the relaxation.
    What the chain stores (``chain_state``): ``"before_relaxed"`` (the reference,
    ``rbm_posterior.py`` ``general_gibbs``) keeps the hard ``z1`` after the ``sweeps`` hard
    sweeps; ``"after_relaxed"`` keeps the hard state behind the relaxed sweep:
    ``z2 = H(u2 - (1 - sigmoid(a2)))`` and the new ``z1`` drawn from ``p(z1 | z2)`` of the
    *hard* ``z2`` with the same noise ``u1`` (an exact Gibbs chain one sweep further on).

    **Entropy**: ``log q(zeta_mf) = -E_q(zeta_mf)`` with the encoder's outputs detached and
    ``log Z_q`` dropped (path derivative; ``E_q[grad log q] = 0``).

    >>> torch.manual_seed(0) and None
    >>> q = RBMPosterior(5, 2, 3, hidden=(4,), examples=10, sweeps=2)
    >>> s = q.relaxed(torch.randn(4, 5), torch.arange(4), k=1)
    >>> s.zeta.shape, bool(((s.zeta >= 0) & (s.zeta <= 1)).all())
    (torch.Size([4, 1, 5]), True)
    """

    kind = "rbm_posterior"

    def __init__(
        self,
        n_input: int,
        n1: int,
        n2: int,
        hidden: Sequence[int] = (200, 200),
        examples: int = 1,
        k: int = 1,
        sweeps: int = 10,
        relax: Relaxation = "pwl",
        beta: float = 4.0,
        coupling_scale: float = 1.5,
        coupling_fan: CouplingFan = "larger",
        chain_state: ChainState = "before_relaxed",
        options: NetOptions = REFERENCE_NETS,
    ):
        super().__init__(n1, n2, relax, beta)
        self.sweeps, self.coupling_scale, self.chain_state = sweeps, coupling_scale, chain_state
        self.coupling_fan = max(n1, n2) if coupling_fan == "larger" else n1
        if coupling_fan not in ("larger", "n1") or chain_state not in CHAIN_STATES:
            raise ValueError(f"unknown coupling_fan {coupling_fan!r} / chain_state {chain_state!r}")
        self.net = MLP(n_input, hidden, n1 + n2 + n1 * n2, options)
        self.coupling_norm = make_norm(n1 * n2, options)
        self.register_buffer("chains", torch.rand(examples, k, n1) < 0.5)

    def rbm_parameters(self, xc: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``b1 (B, n1), b2 (B, n2), W (B, n1, n2)`` of ``q(z | x)`` (class docstring)."""
        out = self.net(xc)
        h1, h2, raw = out.split([self.n1, self.n2, self.n1 * self.n2], dim=-1)
        J = self.coupling_scale * self.coupling_norm(raw) / math.sqrt(self.coupling_fan)
        J = J.view(-1, self.n1, self.n2)
        return 2 * (h1 - J.sum(2)), 2 * (h2 - J.sum(1)), 4 * J

    def relaxed(self, xc: Tensor, index: Tensor, k: int) -> RelaxedSample:
        b1, b2, W = self.rbm_parameters(xc)
        if self.chains.shape[1] != k:
            raise ValueError(f"the posterior holds {self.chains.shape[1]} chains per example")
        z1 = self.chains[index].float()
        for _ in range(self.sweeps):  # s hard sweeps, without gradient
            z1, _ = rbm.gibbs_sweep(z1, b1, b2, W)
        sweep = rbm.relaxed_sweep(z1, b1, b2, W, self.relax)  # the one sweep with gradient
        self.chains[index] = (z1 if self.chain_state == "before_relaxed" else sweep.z1).bool()
        zeta = torch.cat([sweep.zeta1, sweep.zeta2], -1)
        zeta_mf = torch.cat([sweep.mean1, sweep.zeta2], -1)
        return RelaxedSample(zeta, zeta_mf, {"params": (b1.detach(), b2.detach(), W.detach())})

    def log_q(self, zeta_mf: Tensor, sample: RelaxedSample) -> Tensor:
        b1, b2, W = sample.aux["params"]
        z1, z2 = zeta_mf.split([self.n1, self.n2], -1)
        return -rbm.energy(z1, z2, b1, b2, W)

    @torch.no_grad()
    def sample(
        self,
        xc: Tensor,
        n: int,
        exact_max_units: int = 14,
        ais_temperatures: int = 500,
        **_: int,
    ) -> tuple[Tensor, Tensor]:
        """``n`` hard samples per example and their ``log q``: exact by enumerating the smaller
        side when it has at most ``exact_max_units`` units; otherwise the ``n`` final states of
        an AIS run with ``ais_temperatures``, whose "``log q``" is ``-E_q(z) - log w_AIS``, so
        that ``p(x) ~ mean_c w_c p(x, z_c) / exp(-E_q(z_c))`` stays an unbiased estimate."""
        b1, b2, W = self.rbm_parameters(xc)
        if rbm.enumerable(self.n1, self.n2, exact_max_units):
            z1, z2, log_z = rbm.exact_sample(b1, b2, W, n)
            log_q = -rbm.energy(z1, z2, b1, b2, W) - log_z[:, None]
        else:
            ais = rbm.ais_log_partition(b1, b2, W, ais_temperatures, n)
            z1, z2 = ais.z1, ais.z2
            log_q = -rbm.energy(z1, z2, b1, b2, W) - ais.log_weights
        return torch.cat([z1, z2], -1), log_q

    @torch.no_grad()
    def z1_distribution(self, xc: Tensor) -> dict[str, Tensor]:
        b1, b2, W = self.rbm_parameters(xc)
        states = rbm.all_states(self.n1, b1)
        log_w = rbm.free_energy(states.expand(len(b1), *states.shape), b1, b2, W)
        log_z = torch.logsumexp(log_w, -1, keepdim=True)
        p = torch.exp(log_w - log_z)  # (B, M)
        a2 = rbm.logits_z2(states, b2, W)  # (B, M, n2)
        mu2 = torch.sigmoid(a2)
        # E_q[-E | z1 = s] = b1.s + (b2 + W^T s).E[z2 | s]
        neg_energy = (states @ b1.unsqueeze(-1)).squeeze(-1) + (mu2 * a2).sum(-1)
        entropy = log_z.squeeze(-1) - (p * neg_energy).sum(-1)
        marginals = torch.cat([p @ states, (p.unsqueeze(-1) * mu2).sum(1)], -1)
        return {"log_q1": log_w - log_z, "marginals": marginals, "entropy": entropy}


# --- baselines ------------------------------------------------------------------------------


class FactorialPosterior(Posterior):
    """Factorial Bernoulli posterior ``q(z | x) = prod_i Bernoulli(z_i; sigmoid(a_i(x)))`` with
    the same relaxation as the RBM posterior (the DVAE/DVAE# baseline).

    The entropy is in closed form, ``-H = sum q a - softplus(a)``. The cross-entropy
    ``E_q[E_p(z)]`` (``kl``): ``"exact"`` evaluates the multilinear energy at the means,
    ``E_p(sigmoid(a))``, which for a factorial q *is* the expectation (the reference's
    ``rbm.py`` ``kl_dist_from_func`` with one group); ``"rao_blackwell"`` evaluates it at
    ``[sigmoid(a1), zeta2]``, the RBM posterior's one-sided Rao-Blackwellisation (an unbiased but
    noisy estimate). The importance-weighted bound uses ``zeta_mf = [sigmoid(a1), zeta2]`` in
    either case (a log-sum-exp of per-sample weights needs samples).
    """

    kind = "factorial"

    def __init__(
        self,
        n_input: int,
        n1: int,
        n2: int,
        hidden: Sequence[int] = (200, 200),
        relax: Relaxation = "pwl",
        beta: float = 4.0,
        kl: FactorialKL = "exact",
        options: NetOptions = REFERENCE_NETS,
    ):
        super().__init__(n1, n2, relax, beta)
        if kl not in ("exact", "rao_blackwell"):
            raise ValueError(f"unknown factorial kl {kl!r}")
        self.kl = kl
        self.net = MLP(n_input, hidden, n1 + n2, options)

    def relaxed(self, xc: Tensor, index: Tensor, k: int) -> RelaxedSample:
        a = self.net(xc).unsqueeze(1).expand(-1, k, -1)
        zeta = self.relax(a, torch.rand_like(a))
        zeta_mf = torch.cat([torch.sigmoid(a[..., : self.n1]), zeta[..., self.n1 :]], -1)
        zeta_ce = torch.sigmoid(a) if self.kl == "exact" else None
        return RelaxedSample(zeta, zeta_mf, {"logits": a}, zeta_ce)

    def log_q(self, zeta_mf: Tensor, sample: RelaxedSample) -> Tensor:
        return bernoulli_log_prob(zeta_mf, sample.aux["logits"].detach())

    def neg_entropy(self, sample: RelaxedSample) -> Tensor:
        return bernoulli_neg_entropy(sample.aux["logits"][:, 0])

    @torch.no_grad()
    def sample(self, xc: Tensor, n: int, **_: int) -> tuple[Tensor, Tensor]:
        a = self.net(xc).unsqueeze(1).expand(-1, n, -1)
        z = rbm.bernoulli(a)
        return z, bernoulli_log_prob(z, a)

    @torch.no_grad()
    def z1_distribution(self, xc: Tensor) -> dict[str, Tensor]:
        a = self.net(xc)
        states = rbm.all_states(self.n1, a)
        log_q1 = bernoulli_log_prob(states, a[:, None, : self.n1])
        return {
            "log_q1": log_q1,
            "marginals": torch.sigmoid(a),
            "entropy": -bernoulli_neg_entropy(a),
        }


class DirectedPosterior(Posterior):
    """Directed posterior, autoregressive across the two groups (the DVAE++/DVAE# hierarchical
    posterior with two stochastic layers):

    .. math:: q(z | x) = q(z_1 | x)\\, q(z_2 | x, z_1),\\quad
              q(z_1 | x) = \\mathrm{Bern}(\\sigma(a_1(x))),\\quad
              q(z_2 | x, z_1) = \\mathrm{Bern}(\\sigma(a_2([x, z_1])))

    ``encoder = "shared_linear"`` (the reference: ``vae.py`` builds one feature network
    ``pre_proc`` x - mean_x -> 200 -> 200 with batch-norm + tanh, and ``autoencoder.py``
    ``SimpleEncoder`` with ``num_det_layers_enc = 0`` puts a *linear* head per group on
    ``[features, zeta_<i]``)::

        f = MLP(x - mean_x),  a1 = A1 f + c1,  a2 = A2 [f, zeta1] + c2

    ``encoder = "two_mlps"``: one full MLP per group, the second reading ``[x - mean_x, zeta1]``
    (a stronger baseline than the reference's). ``zeta_mf = [zeta1, sigmoid(a2)]`` (the second
    group at its conditional mean, as the reference's ``kl_dist_from_func``); the entropy term is
    ``-H(q1) - H(q2 | zeta1)``, in closed form given the sample ``zeta1``.
    """

    kind = "directed"

    def __init__(
        self,
        n_input: int,
        n1: int,
        n2: int,
        hidden: Sequence[int] = (200, 200),
        relax: Relaxation = "pwl",
        beta: float = 4.0,
        encoder: DirectedEncoder = "shared_linear",
        options: NetOptions = REFERENCE_NETS,
    ):
        super().__init__(n1, n2, relax, beta)
        self.encoder = encoder
        if encoder == "shared_linear":
            self.features = MLP(n_input, hidden, None, options)
            width = self.features.n_out
            self.net1 = make_linear(width, n1, options)
            self.net2 = make_linear(width + n1, n2, options)
        elif encoder == "two_mlps":
            self.features = None
            self.net1 = MLP(n_input, hidden, n1, options)
            self.net2 = MLP(n_input + n1, hidden, n2, options)
        else:
            raise ValueError(f"unknown directed encoder {encoder!r}")

    def _inputs(self, xc: Tensor) -> Tensor:
        """What both groups' conditionals read: the shared features, or the centred image."""
        return xc if self.features is None else self.features(xc)

    def _first(self, h: Tensor) -> Tensor:
        return self.net1(h)

    def _second(self, h: Tensor, z1: Tensor, detached: bool = False) -> Tensor:
        """``a2([h, z1])`` for inputs ``h`` (B, d) and ``z1`` (B, k, n1); returns (B, k, n2)."""
        B, k, _ = z1.shape
        inp = torch.cat([h.unsqueeze(1).expand(-1, k, -1), z1], -1).reshape(B * k, -1)
        if self.features is None:
            out = self.net2(inp, detached=detached)
        else:
            w, b = self.net2.weight, self.net2.bias
            out = F.linear(inp, w.detach(), b.detach()) if detached else F.linear(inp, w, b)
        return out.view(B, k, self.n2)

    def relaxed(self, xc: Tensor, index: Tensor, k: int) -> RelaxedSample:
        h = self._inputs(xc)
        a1 = self._first(h).unsqueeze(1).expand(-1, k, -1)
        zeta1 = self.relax(a1, torch.rand_like(a1))
        a2 = self._second(h, zeta1)
        zeta2 = self.relax(a2, torch.rand_like(a2))
        zeta = torch.cat([zeta1, zeta2], -1)
        zeta_mf = torch.cat([zeta1, torch.sigmoid(a2)], -1)
        return RelaxedSample(zeta, zeta_mf, {"a1": a1, "a2": a2, "h": h})

    def log_q(self, zeta_mf: Tensor, sample: RelaxedSample) -> Tensor:
        z1, mu2 = zeta_mf.split([self.n1, self.n2], -1)
        a2 = self._second(sample.aux["h"].detach(), z1, detached=True)
        return bernoulli_log_prob(z1, sample.aux["a1"].detach()) + bernoulli_log_prob(mu2, a2)

    def neg_entropy(self, sample: RelaxedSample) -> Tensor:
        a1, a2 = sample.aux["a1"][:, 0], sample.aux["a2"][:, 0]
        return bernoulli_neg_entropy(a1) + bernoulli_neg_entropy(a2)

    @torch.no_grad()
    def sample(self, xc: Tensor, n: int, **_: int) -> tuple[Tensor, Tensor]:
        h = self._inputs(xc)
        a1 = self._first(h).unsqueeze(1).expand(-1, n, -1)
        z1 = rbm.bernoulli(a1)
        a2 = self._second(h, z1)
        z2 = rbm.bernoulli(a2)
        return torch.cat([z1, z2], -1), bernoulli_log_prob(z1, a1) + bernoulli_log_prob(z2, a2)

    @torch.no_grad()
    def z1_distribution(self, xc: Tensor) -> dict[str, Tensor]:
        h = self._inputs(xc)
        a1 = self._first(h)
        states = rbm.all_states(self.n1, a1)
        B, M = len(xc), len(states)
        log_q1 = bernoulli_log_prob(states, a1[:, None])  # (B, M)
        p = log_q1.exp()
        a2 = self._second(h, states.expand(B, M, self.n1))  # (B, M, n2)
        entropy = -bernoulli_neg_entropy(a1) - (p * bernoulli_neg_entropy(a2)).sum(-1)
        mu2 = (p.unsqueeze(-1) * torch.sigmoid(a2)).sum(1)
        return {
            "log_q1": log_q1,
            "marginals": torch.cat([torch.sigmoid(a1), mu2], -1),
            "entropy": entropy,
        }
