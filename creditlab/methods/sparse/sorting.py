"""Differentiable quicksort with the sparse hyperlayer's sample-and-weight trick (the paper's
Sec. 4.3) and its baselines, NeuralSort (Grover et al., ICLR 2019) and differentiable
sorting networks (Petersen et al., ICML 2021, the ``diffsort`` package), on sequences of MNIST
numbers.

Quicksort: ``log2(N)`` split layers. Layer d cuts the sequence into ``2^d`` buckets, compares
each key with its bucket's median (the pivot: the mean of the two middle keys, as in the
reference code), and moves it to the lower or upper part of its bucket, keeping the order
otherwise (a stable partition: a "half-permutation"). The choice of side is the tuple to
learn: in training the comparison is soft, ``o = sigmoid((key - pivot) * certainty)``, and the
candidates are the rounded choice vector plus ``additional`` vectors drawn as uniformly random
*balanced* half-splits of every bucket (half its elements 0, half 1: the reference's
``util.sample_offsets``; ``sampling="bernoulli"`` draws them from Bernoulli(o) instead, this
module's earlier reading), each weighted by its likelihood ``prod o^c (1 - o)^(1 - c)``,
duplicates zeroed and normalised (:func:`hyperlayer.normalise`). The permutation matrices of
the candidates, weighted, move both the images and the keys (:func:`hyperlayer.sparse_product`).
At test the comparison is hard and only the rounded choice is used.

The loss (``loss="plain"``, the reference's default ``--loss plain`` in
``mnistsort.experiment.py``): the binary cross-entropy between the final sorted images and the
images in the true order, pixels clamped to [0, 1] (the reference's ``util.xent``).
``loss="layers"`` (this module's earlier choice) compares the images after every layer with
that layer's target, the input split by the *true* ranks the same number of times (the
reference's per-layer variant un-splits the sorted target with the model's own offsets
instead).

A sequence whose length is not a power of two is padded with blank images whose keys exceed
every real key (so they stay at the end).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from creditlab.errors import UserError
from creditlab.methods.sparse.hyperlayer import duplicates, normalise, ravel, sparse_product


def split_positions(choices: torch.Tensor, buckets: int) -> torch.Tensor:
    """Target position of every element under the stable partition of each bucket: elements
    with choice 0 first, then those with choice 1, each in their original order.

    >>> split_positions(torch.tensor([1, 0, 0, 1]), 1).tolist()
    [2, 0, 1, 3]
    >>> split_positions(torch.tensor([1, 0, 0, 1]), 2).tolist()
    [1, 0, 2, 3]
    """
    n = choices.shape[-1]
    c = choices.long().unflatten(-1, (buckets, n // buckets))
    down = 1 - c
    position = torch.where(
        c == 1, down.sum(-1, keepdim=True) + c.cumsum(-1) - 1, down.cumsum(-1) - 1
    )
    start = torch.arange(buckets, device=choices.device)[:, None] * (n // buckets)
    return (position + start).flatten(-2)


def bucket_pivots(keys: torch.Tensor, buckets: int) -> torch.Tensor:
    """The median of each bucket (mean of its two middle keys), repeated over the bucket."""
    b, n = keys.shape
    ordered = keys.view(b, buckets, n // buckets).sort(-1).values
    s = n // buckets
    middle = ordered[..., max(s // 2 - 1, 0) : s // 2 + 1].mean(-1, keepdim=True)
    return middle.expand(-1, -1, s).reshape(b, n)


Sampling = Literal["balanced", "bernoulli"]


def balanced_choices(b: int, additional: int, n: int, buckets: int) -> torch.Tensor:
    """``additional`` choice vectors per sequence (b, additional, n), each a uniformly random
    balanced half-split of every bucket: half of each bucket's elements 1, in a random
    arrangement (the reference's ``util.sample_offsets``).

    >>> c = balanced_choices(2, 3, 8, 2)
    >>> c.view(2, 3, 2, 4).sum(-1).unique().tolist()
    [2.0]
    """
    size = n // buckets
    rank = torch.rand(b, additional, buckets, size).argsort(-1).argsort(-1)
    return (rank >= size // 2).float().flatten(-2)


def split(
    x: torch.Tensor,
    keys: torch.Tensor,
    depth: int,
    *,
    certainty: float,
    additional: int,
    training: bool,
    sampling: Sampling = "balanced",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One half-permutation layer at ``depth`` applied to ``x`` (B, N, D) and ``keys`` (B, N)."""
    b, n = keys.shape
    buckets = 2**depth
    logits = (keys - bucket_pivots(keys, buckets)) * certainty
    choices = (logits > 0).float()[:, None]  # the rounded choice vector
    if training and additional > 0:
        if sampling == "balanced":
            sampled = balanced_choices(b, additional, n, buckets).to(keys.device)
        else:
            probs = torch.sigmoid(logits.detach())[:, None].expand(-1, additional, -1)
            sampled = torch.bernoulli(probs)
        choices = torch.cat([choices, sampled], 1)
    m = choices.shape[1]
    if training:
        log_likelihood = (
            choices * F.logsigmoid(logits[:, None]) + (1 - choices) * F.logsigmoid(-logits[:, None])
        ).sum(-1)
        weights = normalise(log_likelihood, duplicates(ravel(choices.long(), [2] * n)))
    else:
        weights = keys.new_ones(b, 1)
    out_index = split_positions(choices, buckets).flatten(1)  # (B, m * N)
    in_index = torch.arange(n, device=x.device).repeat(m).expand(b, -1)
    values = weights.repeat_interleave(n, dim=1)
    moved = sparse_product(x, out_index, in_index, values, n)
    moved_keys = sparse_product(keys, out_index, in_index, values, n)
    return moved, moved_keys


def quicksort(
    x: torch.Tensor,
    keys: torch.Tensor,
    *,
    certainty: float,
    additional: int,
    training: bool,
    sampling: Sampling = "balanced",
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """All ``log2(N)`` split layers: the images after each layer and the final keys. ``N``
    must be a power of two (see :func:`pad`)."""
    n = keys.shape[1]
    depth = int(math.log2(n))
    assert 2**depth == n, f"quicksort needs a power-of-two length, got {n}"
    outputs = []
    for d in range(depth):
        x, keys = split(
            x, keys, d, certainty=certainty, additional=additional, training=training,
            sampling=sampling,
        )  # fmt: skip
        outputs.append(x)
    return outputs, keys


def pad(x: torch.Tensor, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad (B, n, D) images and (B, n) keys to the next power of two: blank images, keys above
    every real key (detached), increasing so that they keep their order."""
    b, n = keys.shape
    extra = 2 ** math.ceil(math.log2(n)) - n
    if extra == 0:
        return x, keys
    top = keys.detach().max(1, keepdim=True).values
    pad_keys = top + 1 + torch.arange(extra, device=keys.device, dtype=keys.dtype)
    return torch.cat([x, x.new_zeros(b, extra, x.shape[2])], 1), torch.cat([keys, pad_keys], 1)


def binary_cross_entropy(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Elementwise BCE with both sides clamped to [0, 1] and 1e-10 inside the logs (the
    reference's ``util.xent``)."""
    out, target = out.clamp(0, 1), target.clamp(0, 1)
    return -target * (out + 1e-10).log() - (1 - target) * (1 - out + 1e-10).log()


def quicksort_loss(
    x: torch.Tensor,
    keys: torch.Tensor,
    ranks: torch.Tensor,
    certainty: float,
    additional: int,
    *,
    loss: Literal["plain", "layers"] = "plain",
    sampling: Sampling = "balanced",
) -> torch.Tensor:
    """The training loss of the quicksort; ``x`` (B, n, D), ``ranks`` (B, n) the true ranks.
    ``plain``: BCE of the final output against the images in the true order (the
    reference's default); ``layers``: mean over layers of the squared error against each
    layer's target (the input split by the true ranks)."""
    x, keys = pad(x, keys)
    _, true_keys = pad(x[:, : ranks.shape[1]], ranks.to(keys.dtype))
    outputs, _ = quicksort(
        x, keys, certainty=certainty, additional=additional, training=True, sampling=sampling
    )
    with torch.no_grad():
        targets, _ = quicksort(x, true_keys, certainty=1.0, additional=0, training=False)
    if loss == "plain":
        return binary_cross_entropy(outputs[-1], targets[-1]).mean()
    return torch.stack([F.mse_loss(o, t) for o, t in zip(outputs, targets, strict=True)]).mean()


@torch.no_grad()
def quicksort_order(keys: torch.Tensor) -> torch.Tensor:
    """The order the hard (test-time) quicksort puts the sequence in: (B, n) source indices."""
    b, n = keys.shape
    source = torch.arange(n, device=keys.device, dtype=keys.dtype).expand(b, -1)[..., None]
    source, padded = pad(source, keys)
    outputs, _ = quicksort(source, padded, certainty=1.0, additional=0, training=False)
    return outputs[-1][:, :n, 0].round().long()


def neuralsort(scores: torch.Tensor, tau: float) -> torch.Tensor:
    r"""NeuralSort's relaxed permutation matrix (Grover et al. 2019, Eq. 5): row i is
    :math:`\mathrm{softmax}(((n + 1 - 2i) s - A_s 1) / \tau)`, which tends to the one-hot
    of the i-th *largest* score as tau -> 0. ``scores`` (B, n) -> (B, n, n)."""
    n = scores.shape[1]
    pairwise = (scores[:, :, None] - scores[:, None, :]).abs().sum(-1)  # A_s 1
    i = torch.arange(1, n + 1, device=scores.device, dtype=scores.dtype)
    scaled = (n + 1 - 2 * i)[None, :, None] * scores[:, None, :]
    return torch.softmax((scaled - pairwise[:, None, :]) / tau, dim=-1)


def neuralsort_loss(keys: torch.Tensor, labels: torch.Tensor, tau: float) -> torch.Tensor:
    """Cross-entropy of each row of NeuralSort's matrix with the true permutation (ascending
    order, ties in their original order); the scores are ``-keys`` so that ascending keys
    give the ascending order."""
    p_hat = neuralsort(-keys, tau)
    target = labels.argsort(dim=1, stable=True)
    return -torch.log(p_hat.gather(2, target[..., None]) + 1e-20).mean()


def diffsort_loss(
    keys: torch.Tensor,
    labels: torch.Tensor,
    *,
    network: str = "odd_even",
    steepness: float = 10.0,
    distribution: str = "cauchy",
) -> torch.Tensor:
    """The differentiable sorting network baseline (Petersen et al., "Differentiable Sorting
    Networks", ICML 2021, the ``diffsort`` package on PyPI): the relaxed permutation matrix
    ``X`` of the keys, ``X[j, i]`` the weight with which element j lands at position i of the
    ascending order, against the true one (ties in their original order) by binary
    cross-entropy, as that paper's training loss. ``network`` is "odd_even" or "bitonic"
    (bitonic needs a power-of-two length)."""
    try:
        from diffsort import DiffSortNet
    except ImportError as err:  # an optional dependency: the `bench` extra
        raise UserError("diffsort is not installed: pip install 'creditlab[bench]'") from err
    n = keys.shape[1]
    sorter = DiffSortNet(network, n, device=str(keys.device), steepness=steepness,
                         distribution=distribution)  # fmt: skip
    _, soft = sorter(keys)
    order = labels.argsort(dim=1, stable=True)
    truth = F.one_hot(order, n).transpose(1, 2).to(soft.dtype)
    return F.binary_cross_entropy(soft.clamp(0, 1), truth)


def order_metrics(labels: torch.Tensor, order: torch.Tensor) -> tuple[float, float]:
    """(fraction of sequences entirely in order, fraction of positions holding the right
    value): ``order`` (B, n) source indices; ties count as correct either way."""
    placed = labels.gather(1, order)
    truth = labels.sort(1).values
    right = placed == truth
    return right.all(1).float().mean().item(), right.float().mean().item()


def number_sequences(
    digits: torch.Tensor,
    labels: torch.Tensor,
    batch: int,
    n: int,
    width: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` sequences of ``n`` numbers, each ``width`` digits side by side (NeuralSort's
    "large-MNIST": width 4, 0-9999; width 1: single digits), drawn uniformly from the
    ``digits`` given (one split). Returns images (batch, n, 1, 28, 28 * width) and values."""
    pick = torch.randint(len(digits), (batch, n, width), generator=generator)
    images = digits[pick]  # (batch, n, width, 1, 28, 28)
    images = images.permute(0, 1, 3, 4, 2, 5).flatten(-2)  # digits side by side
    place = 10 ** torch.arange(width - 1, -1, -1)
    return images, (labels[pick] * place).sum(-1)
