"""Coagents: stochastic units that each learn with their own local policy-gradient update.

A coagent ``i`` sees an input ``X^i`` (the state and/or outputs of upstream coagents), samples
an output ``U^i ~ pi_i(. | X^i; theta_i)`` and passes only that sample downstream. By the
coagent policy gradient theorem (CPGT, Kostas, Nota & Thomas 2020, Thm. 1/3),

.. math::

    \\frac{\\partial J}{\\partial \\theta_i}
      = \\mathbb{E}\\Big[\\sum_t \\gamma^t E^i_t\\, G_t\\,
        \\frac{\\partial}{\\partial \\theta_i} \\log \\pi_i(U^i_t \\mid X^i_t; \\theta_i)\\Big],

so the whole network ascends ``J`` when every coagent applies, by itself,

.. math::

    \\theta_i \\leftarrow \\theta_i + \\alpha\\, \\text{signal}\\;
      \\nabla_{\\theta_i} \\log \\pi_i(U^i \\mid X^i; \\theta_i)

with a broadcast ``signal`` (``gamma^t G_t`` for REINFORCE, the TD error ``delta_t`` of one
critic for actor-critic, times the execution indicator ``E^i_t`` when the network is
asynchronous). Each class below writes ``grad log pi_i`` in closed form right beside the
distribution it differentiates, and :meth:`Coagent.coagent_update` runs under
``torch.no_grad()``: no gradient ever flows from one coagent to another, and the only thing
that crosses a coagent boundary is a sample.

A *layer* of coagents (``units > 1``) is one module for speed, but each unit is still its own
coagent: unit ``j`` owns row ``j`` of ``weight`` and entry ``j`` of ``bias``, samples
independently given the shared input, and its update uses only ``(X, U_j, signal_j)``.

Inputs are float feature vectors ``(B, in_features)``, or integer indices ``(B,)`` meaning a
one-hot vector of length ``in_features`` (a tabular coagent: ``logits = weight[:, x]``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

Tensor = torch.Tensor


class Coagent(nn.Module):
    """A stochastic unit (or a layer of independent units) with a local policy-gradient update.

    Subclasses define :meth:`log_prob` (differentiable; used only by tests and by the
    exact-gradient reference, never by learning), :meth:`sample` and :meth:`score`, the
    closed-form ``grad_theta log pi(U | X)`` per example.
    """

    in_features: int

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features = in_features
        self.weight = nn.Parameter(torch.zeros(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    # --- the linear pre-activation shared by all three kinds ---------------------------------
    def preactivation(self, x: Tensor) -> Tensor:
        """``W x + b`` for features ``x`` (B, in), or ``W[:, x] + b`` for indices ``x`` (B,)."""
        if not _is_index(x):
            return nn.functional.linear(x, self.weight, self.bias)
        z = self.weight.T[x]
        return z if self.bias is None else z + self.bias

    def _weight_gradient(self, x: Tensor, dz: Tensor) -> dict[str, Tensor]:
        """Sum over the batch of ``dz_b x_b^T`` (and ``dz_b`` for the bias): the chain rule
        from the unit's own pre-activation to its own parameters. Row ``j`` uses column
        ``j`` of ``dz`` only, so unit ``j``'s update is its own."""
        if _is_index(x):  # one-hot input: only the column of the active input moves
            grad_w = torch.zeros_like(self.weight).index_add_(1, x, dz.T)
        else:
            grad_w = dz.T @ x
        grads = {"weight": grad_w}
        if self.bias is not None:
            grads["bias"] = dz.sum(0)
        return grads

    # --- the interface every coagent offers ---------------------------------------------------
    def sample(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def log_prob(self, x: Tensor, u: Tensor) -> Tensor:
        raise NotImplementedError

    def score(self, x: Tensor, u: Tensor, signal: Tensor) -> dict[str, Tensor]:
        """``sum_b signal_b * grad_theta log pi(u_b | x_b)``, in closed form, per parameter."""
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """Sample an output ``U ~ pi(. | x)`` (no autograd graph: it is only a sample)."""
        return self.sample(x)

    @torch.no_grad()
    def local_gradient(self, x: Tensor, u: Tensor, signal: Tensor) -> dict[str, Tensor]:
        """The coagent's own policy-gradient estimate, ``sum_b signal_b grad log pi(u_b|x_b)``.

        ``signal`` has shape ``(B,)`` (one broadcast scalar per example) or ``(B, units)``
        (e.g. the signal already multiplied by each unit's execution indicator ``E^i_t``).
        """
        return self.score(x, u, self._per_unit(signal, len(x)))

    @torch.no_grad()
    def coagent_update(
        self, input: Tensor, output: Tensor, signal: Tensor, lr: float = 1.0
    ) -> dict[str, Tensor]:
        """``theta_i += lr * sum_b signal_b grad log pi_i(output_b | input_b)`` (CPGT, eq. 1).

        Uses only this coagent's input, its own output and the broadcast signal; returns the
        gradient estimate it applied (before scaling by ``lr``).
        """
        grads = self.local_gradient(input, output, signal)
        for name, g in grads.items():
            getattr(self, name).add_(g, alpha=lr)
        return grads

    def _per_unit(self, signal: Tensor, batch: int) -> Tensor:
        signal = torch.as_tensor(signal, dtype=self.weight.dtype)
        if signal.dim() == 0:
            signal = signal.expand(batch)
        if signal.dim() == 1:
            signal = signal[:, None]
        return signal


def _is_index(x: Tensor) -> bool:
    return not torch.is_floating_point(x)


class BernoulliCoagent(Coagent):
    """``units`` independent logistic coagents: ``U_j ~ Bernoulli(sigmoid(w_j . x + b_j))``.

    Local update (CPGT with a Bernoulli policy):

    .. math:: \\nabla_{w_j} \\log \\pi_j(u_j \\mid x) = (u_j - \\sigma(w_j\\cdot x + b_j))\\, x

    >>> _ = torch.manual_seed(0)
    >>> unit = BernoulliCoagent(in_features=3, units=2)
    >>> x = torch.tensor([[1.0, 0.0, 2.0]])
    >>> u = unit(x)                       # a sample: 0/1 per unit, carrying no gradient
    >>> u.requires_grad
    False
    >>> g = unit.coagent_update(x, torch.tensor([[1.0, 0.0]]), signal=torch.tensor([2.0]))
    >>> g["weight"]                       # 2 * (u - 0.5) * x, weights start at zero
    tensor([[ 1.,  0.,  2.],
            [-1., -0., -2.]])
    """

    def __init__(self, in_features: int, units: int = 1, bias: bool = True, init_std: float = 0.0):
        super().__init__(in_features, units, bias)
        self.units = units
        if init_std:
            nn.init.normal_(self.weight, std=init_std)

    def probability(self, x: Tensor) -> Tensor:
        """``P(U_j = 1 | x)`` for every unit, shape ``(B, units)``."""
        return torch.sigmoid(self.preactivation(x))

    def sample(self, x: Tensor) -> Tensor:
        return torch.bernoulli(self.probability(x))

    def log_prob(self, x: Tensor, u: Tensor) -> Tensor:
        z = self.preactivation(x)
        return -nn.functional.binary_cross_entropy_with_logits(z, u, reduction="none")

    def score(self, x: Tensor, u: Tensor, signal: Tensor) -> dict[str, Tensor]:
        dz = signal * (u - self.probability(x))  # d log pi_j / d z_j = u_j - p_j
        return self._weight_gradient(x, dz)


class SoftmaxCoagent(Coagent):
    """One coagent choosing among ``choices`` outputs: ``pi(u | x) = softmax((W x + b) / tau)_u``.

    Local update:

    .. math::
        \\nabla_{W} \\log \\pi(u \\mid x) = \\tfrac{1}{\\tau}(e_u - \\pi(\\cdot \\mid x))\\, x^T

    >>> unit = SoftmaxCoagent(in_features=2, choices=3)
    >>> x, u = torch.tensor([[1.0, -1.0]]), torch.tensor([2])  # uniform at first: 3 (e_2 - 1/3)
    >>> unit.coagent_update(x, u, signal=torch.tensor([3.0]))["bias"].round(decimals=4)
    tensor([-1., -1.,  2.])
    """

    def __init__(
        self,
        in_features: int,
        choices: int,
        bias: bool = True,
        temperature: float = 1.0,
        init_std: float = 0.0,
    ):
        super().__init__(in_features, choices, bias)
        self.choices, self.temperature = choices, temperature
        if init_std:
            nn.init.normal_(self.weight, std=init_std)

    def logits(self, x: Tensor) -> Tensor:
        return self.preactivation(x) / self.temperature

    def probabilities(self, x: Tensor) -> Tensor:
        """``pi(. | x)``, shape ``(B, choices)``."""
        return torch.softmax(self.logits(x), dim=-1)

    def sample(self, x: Tensor) -> Tensor:
        # inverse-CDF draw: one uniform per row (faster than torch.multinomial on small rows)
        cdf = self.probabilities(x).cumsum(-1)
        u = torch.rand(len(cdf), 1, dtype=cdf.dtype)
        return (cdf < u).sum(-1).clamp_(max=self.choices - 1)

    def log_prob(self, x: Tensor, u: Tensor) -> Tensor:
        return torch.log_softmax(self.logits(x), -1).gather(1, u[:, None]).squeeze(1)

    def score(self, x: Tensor, u: Tensor, signal: Tensor) -> dict[str, Tensor]:
        one_hot = nn.functional.one_hot(u, self.choices).to(self.weight.dtype)
        dz = signal * (one_hot - self.probabilities(x)) / self.temperature
        return self._weight_gradient(x, dz)

    @torch.no_grad()
    def entropy_gradient(self, x: Tensor, weight: Tensor) -> dict[str, Tensor]:
        """``sum_b weight_b grad_theta H(pi(. | x_b))``: the coagent's own entropy bonus,
        ``dH/dz = -pi (log pi + H) / tau`` (local like its update: own input, own output)."""
        log_pi = torch.log_softmax(self.logits(x), -1)
        pi = log_pi.exp()
        entropy = -(pi * log_pi).sum(-1, keepdim=True)
        dz = -weight[:, None] * pi * (log_pi + entropy) / self.temperature
        return self._weight_gradient(x, dz)


class GaussianCoagent(Coagent):
    """``units`` independent Gaussian coagents: ``U_j ~ N(w_j . x + b_j, sigma_j^2)``, with a
    learned, state-independent ``log_std`` per unit.

    Local update:

    .. math::
        \\nabla_{w_j} \\log \\pi_j = \\frac{u_j - \\mu_j}{\\sigma_j^2}\\, x, \\qquad
        \\nabla_{\\log\\sigma_j} \\log \\pi_j = \\frac{(u_j - \\mu_j)^2}{\\sigma_j^2} - 1

    >>> unit = GaussianCoagent(in_features=1, units=1)          # mu = 0, sigma = 1
    >>> g = unit.coagent_update(torch.ones(1, 1), torch.tensor([[2.0]]), torch.tensor([1.0]))
    >>> g["weight"].item(), g["log_std"].item()                  # (2 - 0) / 1, 2**2 - 1
    (2.0, 3.0)
    """

    def __init__(
        self,
        in_features: int,
        units: int = 1,
        bias: bool = True,
        init_log_std: float = 0.0,
        init_std: float = 0.0,
    ):
        super().__init__(in_features, units, bias)
        self.units = units
        self.log_std = nn.Parameter(torch.full((units,), float(init_log_std)))
        if init_std:
            nn.init.normal_(self.weight, std=init_std)

    def mean(self, x: Tensor) -> Tensor:
        return self.preactivation(x)

    def sample(self, x: Tensor) -> Tensor:
        return self.mean(x) + self.log_std.exp() * torch.randn_like(self.mean(x))

    def log_prob(self, x: Tensor, u: Tensor) -> Tensor:
        z = (u - self.mean(x)) / self.log_std.exp()
        return -0.5 * z**2 - self.log_std - 0.5 * math.log(2 * math.pi)

    def score(self, x: Tensor, u: Tensor, signal: Tensor) -> dict[str, Tensor]:
        variance = (2 * self.log_std).exp()
        residual = u - self.mean(x)
        grads = self._weight_gradient(x, signal * residual / variance)
        grads["log_std"] = (signal * (residual**2 / variance - 1)).sum(0)
        return grads
