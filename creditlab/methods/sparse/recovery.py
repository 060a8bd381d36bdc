"""Recovering a fixed sparse matrix (the paper's Sec. 4.1 and Fig. 2): the training loss of
one step for the sparse hyperlayer and for the REINFORCE baseline the reference code runs
beside it, the baseline layer itself, and the test MSE.

The REINFORCE layer (the reference's ``ReinforceLayer`` in ``experiments/identity.py``) has
the same k free tuples, but in training each example draws its integer tuples from a Gaussian
*policy* around the means (standard deviation ``(softplus(raw + 2) + eps) * size``, the
reference's ``transform_sigmas``, which its REINFORCE layer calls without a sigma scale),
rounded and clipped to the index space, and reads them hard. No gradient reaches the means
through the product; they learn from the score-function estimator with reward ``-MSE`` of
the example (the reference: ``-log_prob * -mse``, no baseline), averaged over the batch and
the tuples' coordinates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from creditlab.methods.sparse.hyperlayer import (
    EPSILON,
    SparseHyperLayer,
    means_from_raw,
    sparse_product,
)


class ReinforceLayer(nn.Module):
    """An ``n x n`` map with k free tuples trained by REINFORCE (hard, sampled reads).

    >>> torch.manual_seed(0) and None
    >>> layer = ReinforceLayer(4, 4)
    >>> layer(torch.randn(3, 4)).shape, layer.log_prob.shape
    (torch.Size([3, 4]), torch.Size([3, 4, 2]))
    """

    def __init__(self, n: int, k: int, *, fix_values: bool = True):
        super().__init__()
        self.n, self.k, self.fix_values = n, k, fix_values
        self.raw_means = nn.Parameter(torch.randn(k, 2))
        self.raw_sigmas = nn.Parameter(torch.randn(k))
        self.raw_values = nn.Parameter(torch.randn(k), requires_grad=not fix_values)
        self.register_buffer("size_t", torch.tensor([float(n), float(n)]))
        self.log_prob: torch.Tensor | None = None  # of the last sampled tuples (B, k, 2)

    def policy(self) -> torch.distributions.Normal:
        """The Gaussian over each tuple's (row, column): mean ``sigmoid * (n - 1)``, standard
        deviation ``(softplus(raw + 2) + eps) * n``."""
        means = means_from_raw(self.raw_means, self.size_t)
        std = (F.softplus(self.raw_sigmas + 2.0) + EPSILON)[:, None] * self.size_t
        return torch.distributions.Normal(means, std)

    def values(self) -> torch.Tensor:
        return torch.ones_like(self.raw_values) if self.fix_values else self.raw_values

    def entries(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Evaluation: the rounded means and the values (as :class:`SparseHyperLayer`)."""
        return self.policy().mean.detach().round().long(), self.values()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            tuples, values = self.entries(x)
            return sparse_product(x, tuples[:, 0], tuples[:, 1], values, self.n)
        policy = self.policy()
        sample = policy.sample((len(x),))  # (B, k, 2): one draw per example
        self.log_prob = policy.log_prob(sample)
        tuples = sample.round().clamp(0, self.n - 1).long()
        values = self.values().expand(len(x), -1)
        return sparse_product(x, tuples[..., 0], tuples[..., 1], values, self.n)


def recovery_loss(layer: nn.Module, x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """The loss one training step minimises for ``y = x[:, perm]``: the MSE for the sparse
    hyperlayer; for :class:`ReinforceLayer` the score-function surrogate
    ``mean(log_prob * mse_b)`` (its gradient is REINFORCE's with reward ``-mse_b``), plus the
    MSE itself, which trains learned values and passes no gradient to the means."""
    y = layer(x)
    if isinstance(layer, SparseHyperLayer):
        return F.mse_loss(y, x[:, perm])
    mse = (y - x[:, perm]).square().mean(1)
    return (layer.log_prob * mse.detach()[:, None, None]).mean() + mse.mean()


@torch.no_grad()
def test_mse(layer: nn.Module, x_test: torch.Tensor, perm: torch.Tensor, chunk=2000) -> float:
    """MSE of the evaluation-mode (rounded) layer on ``x_test`` against ``x_test[:, perm]``."""
    layer.eval()
    total = 0.0
    for i in range(0, len(x_test), chunk):
        x = x_test[i : i + chunk]
        total += F.mse_loss(layer(x), x[:, perm], reduction="sum").item()
    return total / x_test.numel()
