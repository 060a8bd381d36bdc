"""HM2-BP's macro level: the rate loss on output firing counts.

E = 1/2 sum_i (o_i - y_i)^2 over the output neurons, with y_i the *desired* count for the
label's neuron and the *undesired* count for the others; an error inside the margin
(|o_i - y_i| <= margin) is zeroed, so counts near their target are left alone.
"""

from __future__ import annotations

import torch

DESIRED = 35.0
"""target spike count of the label's output neuron (the reference code's)"""
UNDESIRED = 5.0
"""target spike count of the other output neurons"""
MARGIN = 5.0
"""an output error |o - y| within this is zeroed"""


def rate_targets(
    labels: torch.Tensor, n_classes: int, desired: float = DESIRED, undesired: float = UNDESIRED
) -> torch.Tensor:
    """(batch, n_classes) target counts: ``desired`` at the label, ``undesired`` elsewhere.

    >>> rate_targets(torch.tensor([1]), 3).tolist()
    [[5.0, 35.0, 5.0]]
    """
    y = torch.full((len(labels), n_classes), float(undesired), device=labels.device)
    y[torch.arange(len(labels), device=labels.device), labels] = float(desired)
    return y


def rate_error(counts: torch.Tensor, targets: torch.Tensor, margin: float = MARGIN) -> torch.Tensor:
    """o - y, zeroed where |o - y| <= margin.

    >>> rate_error(torch.tensor([30.0, 29.0, 5.0]), torch.tensor([35.0, 35.0, 0.0])).tolist()
    [0.0, -6.0, 0.0]
    """
    err = counts - targets.to(counts.dtype)
    return torch.where(err.abs() <= margin, torch.zeros_like(err), err)


def rate_loss(counts: torch.Tensor, targets: torch.Tensor, margin: float = MARGIN) -> torch.Tensor:
    """Per-example E = 1/2 sum_i rate_error_i^2, shape (batch,)."""
    return 0.5 * rate_error(counts, targets, margin).pow(2).sum(-1)
