r"""The adaptive sparse hyperlayer (Bloem, "Learning sparse transformations through
backpropagation", arXiv 1810.09184, Sec. 3), as the reference code computes it
(MaestroGraph/sparse-hyper: ``sparse/layers.py`` on master, ``globalsampling.py`` on the
``archive`` branch, the code behind the preprint's experiments).

A sparse matrix (or tensor) is k continuous index tuples ``p_k`` in an index space of rank r
(the output dimensions first, then the input dimensions), each with a sigma ``s_k`` and a
value ``v_k``. **Sigma is a variance** (the reference scales the offset by
``sqrt(1 / (eps + sigma))``). In training every tuple is replaced by integer candidate tuples
near it (its 2^r floor/ceil neighbours, ``n_global`` tuples drawn uniformly over the whole
space and ``n_local`` drawn uniformly in a box of side ``region`` around round(p_k)). The
candidates of the k tuples of an example are **pooled** (in chunks of ``chunk_size`` tuples;
0 = one chunk holding all k, the reference's default), duplicates are removed across the
pool, and every tuple's unnormalised Gaussian density is normalised over every pooled point
P of its chunk:

.. math:: \rho_k(c) = \exp\Big(-\tfrac12 \sum_d \frac{(c_d - p_{kd})^2}{\epsilon + s_{kd}}\Big),
   \qquad W_c = \sum_{k \in \text{chunk}} \frac{\rho_k(c)}{\sum_{c' \in P} \rho_k(c')}\, v_k .

Chunk size 1 is the per-tuple normalisation (the reference's ``gaussian.py``, which its header
marks as not used in the paper's experiments; the attention experiment uses it). The
candidates are detached: gradients reach ``p``, ``s`` and ``v`` through the densities only,
and the structure is resampled at every batch. At evaluation the tuples are rounded.

The product never builds the dense matrix: it is one ``index_add_`` (tuples shared by the
batch) or ``scatter_add_`` (tuples from a hypernetwork, one set per example) over the pooled
points; the normalisation costs ``k * chunk_size * (candidates)`` densities, so a small chunk
keeps time and memory linear in k (see ``benchmarks/sparse_vs_dense.py``).

>>> layer = SparseHyperLayer((5,), (5,), k=5)
>>> layer(torch.randn(3, 5)).shape
torch.Size([3, 5])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

EPSILON = 1e-6
"""added to the sigmas (variances) before dividing (the reference's ``EPSILON = 10e-7``)"""


def means_from_raw(raw: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """Continuous index tuples: ``sigmoid(raw) * (size - 1)`` per dimension (Sec. 3.1)."""
    return torch.sigmoid(raw) * (sizes - 1)


def sigmas_from_raw(
    raw: torch.Tensor, sizes: torch.Tensor, sigma_scale: float, min_sigma: float
) -> torch.Tensor:
    """One sigma (a *variance*) per tuple and dimension, as the reference's ``split_out`` and
    ``ParamASHLayer.hyper`` (globalsampling.py) compute it:
    ``(softplus(raw + 2) + eps) * size * sigma_scale + min_sigma``; shape ``raw.shape + (r,)``.
    At n = 32, raw 0, sigma_scale 0.1 this is 6.8, a standard deviation of 2.6."""
    return ((F.softplus(raw + 2.0) + EPSILON) * sigma_scale)[..., None] * sizes + min_sigma


def neighbours(means: torch.Tensor) -> torch.Tensor:
    """The 2^r integer tuples around each mean: every mix of floor and ceil per dimension.
    ``means`` (..., r) -> (..., 2^r, r), long."""
    r = means.shape[-1]
    bits = torch.tensor(
        [[(j >> d) & 1 for d in range(r)] for j in range(2**r)], dtype=torch.bool
    ).to(means.device)
    lower, upper = means.floor()[..., None, :], means.ceil()[..., None, :]
    return torch.where(bits, upper, lower).long()


def integer_candidates(
    means: torch.Tensor,
    sizes: torch.Tensor,
    n_global: int,
    n_local: int,
    region: int,
) -> torch.Tensor:
    """The integer candidate tuples of each continuous tuple (Sec. 3.2), detached:
    ``means`` (..., k, r) -> (..., k, 2^r + n_global + n_local, r), long.

    Global samples are ``floor(u * size)``, u uniform in [0, 1): every index, the last
    included. Local samples are uniform in a box of side ``min(region, size)`` per dimension
    around ``round(mean)``, the box shifted to stay inside the index space (the reference
    code's choice: a sample never falls off the edge)."""
    means = means.detach()
    parts = [neighbours(means)]
    shape = (*means.shape[:-1], 0, means.shape[-1])
    if n_global > 0:
        u = torch.rand(*shape[:-2], n_global, shape[-1], device=means.device)
        parts.append((u * sizes).long().minimum(sizes.long() - 1))
    if n_local > 0:
        side = sizes.clamp(max=region)
        low = (means.round() - side // 2).clamp(min=torch.zeros_like(sizes), max=sizes - side)
        u = torch.rand(*shape[:-2], n_local, shape[-1], device=means.device)
        parts.append((low[..., None, :] + (u * side).floor()).long())
    return torch.cat(parts, dim=-2)


def log_densities(points: torch.Tensor, means: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """log of the unnormalised Gaussian density of every point under every tuple, sigma a
    variance: ``-1/2 sum_d (c_d - p_d)^2 / (eps + s_d)``.
    ``points`` (..., P, r), ``means`` and ``sigmas`` (..., K, r) -> (..., K, P)."""
    offset = points.to(means.dtype)[..., None, :, :] - means[..., :, None, :]
    return -0.5 * (offset.square() / (EPSILON + sigmas[..., :, None, :])).sum(-1)


def ravel(tuples: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """Row-major flat index of each integer tuple (last dimension) in a space of ``sizes``."""
    flat = torch.zeros(tuples.shape[:-1], dtype=torch.long, device=tuples.device)
    for d, size in enumerate(sizes):
        flat = flat * size + tuples[..., d]
    return flat


def duplicates(codes: torch.Tensor) -> torch.Tensor:
    """True for every entry of the last dimension equal to an earlier one (all but one copy of
    each value); ``codes`` holds one integer per candidate (e.g. from :func:`ravel`)."""
    ordered, order = codes.sort(dim=-1, stable=True)
    repeat = torch.zeros_like(ordered, dtype=torch.bool)
    repeat[..., 1:] = ordered[..., 1:] == ordered[..., :-1]
    return torch.zeros_like(repeat).scatter(-1, order, repeat)


def normalise(log_weights: torch.Tensor, duplicate: torch.Tensor) -> torch.Tensor:
    """Zero the duplicates and normalise over the last dimension: a softmax of the log
    densities with the duplicates at -inf, which equals ``rho / sum rho`` and cannot
    underflow to 0 / 0 when every sigma is tiny."""
    return torch.softmax(log_weights.masked_fill(duplicate, -math.inf), dim=-1)


def pooled_weights(
    points: torch.Tensor, means: torch.Tensor, sigmas: torch.Tensor, sizes: Sequence[int]
) -> torch.Tensor:
    """The density path: each tuple's densities over the pooled, fixed ``points`` (..., P, r),
    duplicates across the pool zeroed, normalised over the pool; (..., K, P), differentiable
    in ``means`` and ``sigmas`` (..., K, r)."""
    duplicate = duplicates(ravel(points, sizes))[..., None, :]
    return normalise(log_densities(points, means, sigmas), duplicate)


def sample_entries(
    means: torch.Tensor,
    sigmas: torch.Tensor,
    values: torch.Tensor,
    sizes: Sequence[int],
    *,
    training: bool,
    chunk_size: int = 0,
    n_global: int = 0,
    n_local: int = 0,
    region: int = 4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The sparse matrix ``(points (..., E, r), values (..., E))`` of tuples ``means``,
    ``sigmas`` (..., k, r) and ``values`` (..., k). In training the candidates of each chunk
    of ``chunk_size`` consecutive tuples (0: all k) are pooled and each point's value is
    ``sum_k w_k(point) v_k`` (duplicate points carry 0); at evaluation the rounded tuples
    carry their values. ``chunk_size`` must divide k (the reference's ``n // chunk_size``)."""
    if not training:
        return means.detach().round().long(), values
    k, r = means.shape[-2:]
    chunk = chunk_size or k
    if k % chunk:
        raise ValueError(f"chunk_size {chunk} does not divide the {k} tuples")
    size_t = torch.tensor(sizes, dtype=means.dtype, device=means.device)
    candidates = integer_candidates(means, size_t, n_global, n_local, region)
    lead = means.shape[:-2]
    points = candidates.reshape(*lead, k // chunk, -1, r)  # (..., chunks, P, r)
    weights = pooled_weights(
        points,
        means.reshape(*lead, k // chunk, chunk, r),
        sigmas.reshape(*lead, k // chunk, chunk, r),
        sizes,
    )  # (..., chunks, chunk, P)
    point_values = (weights * values.reshape(*lead, k // chunk, chunk, 1)).sum(-2)
    return points.flatten(-3, -2), point_values.flatten(-2)


def sample_weights(
    means: torch.Tensor,
    sigmas: torch.Tensor,
    sizes: Sequence[int],
    *,
    training: bool,
    n_global: int = 0,
    n_local: int = 0,
    region: int = 4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-tuple normalisation (chunk size 1), candidates kept apart per tuple:
    ``(candidates (..., k, c, r), weights (..., k, c))``, each tuple's weights summing to 1;
    at evaluation ``c = 1``, the rounded tuple with weight 1. Used where each tuple has an
    output of its own (the attention glimpses, the reference's chunk size 1)."""
    if not training:
        return means.detach().round().long()[..., None, :], torch.ones_like(means[..., :1])
    size_t = torch.tensor(sizes, dtype=means.dtype, device=means.device)
    candidates = integer_candidates(means, size_t, n_global, n_local, region)
    weights = pooled_weights(candidates, means[..., None, :], sigmas[..., None, :], sizes)
    return candidates, weights[..., 0, :]


CHUNK = 2**14  # entries handled at once by SharedSparseProduct (bounds its temporaries)


class SharedSparseProduct(torch.autograd.Function):
    """``y = x W^T`` for one sparse W (E entries) shared by the batch, in chunks of entries,
    saving only x, the indices and the values: memory O(B n + E + B * CHUNK) instead of the
    O(B E) that autograd would keep for ``x[:, in] * v``. The local backward sits beside the
    forward: ``dL/dx[:, j] = sum_{e: in_e = j} v_e g[:, out_e]`` and
    ``dL/dv_e = sum_b g[b, out_e] x[b, in_e]``."""

    @staticmethod
    def forward(ctx, x, out_index, in_index, values, n_out):
        ctx.save_for_backward(x, out_index, in_index, values)
        y = x.new_zeros(x.shape[0], n_out, *x.shape[2:])
        for c in range(0, len(values), CHUNK):
            v = values[c : c + CHUNK]
            picked = x.index_select(1, in_index[c : c + CHUNK])
            y.index_add_(1, out_index[c : c + CHUNK], picked * (v[:, None] if x.dim() == 3 else v))
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, out_index, in_index, values = ctx.saved_tensors
        grad_x = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
        grad_v = torch.empty_like(values) if ctx.needs_input_grad[3] else None
        for c in range(0, len(values), CHUNK):
            v, inn = values[c : c + CHUNK], in_index[c : c + CHUNK]
            g = grad_y.index_select(1, out_index[c : c + CHUNK])  # (B, chunk, *D)
            if grad_x is not None:
                grad_x.index_add_(1, inn, g * (v[:, None] if x.dim() == 3 else v))
            if grad_v is not None:
                product = g * x.index_select(1, inn)
                grad_v[c : c + CHUNK] = product.sum(0) if x.dim() == 2 else product.sum((0, 2))
        return grad_x, None, None, grad_v, None


def sparse_product(
    x: torch.Tensor,
    out_index: torch.Tensor,
    in_index: torch.Tensor,
    values: torch.Tensor,
    n_out: int,
) -> torch.Tensor:
    """``y[b, i] = sum_e values[e] x[b, in_index[e]]`` over entries e with out_index[e] = i:
    the product with a sparse matrix given as (flat) coordinates and values, never dense.

    ``x`` is (B, n_in) or (B, n_in, D) (D features carried along, e.g. image pixels moved by
    a permutation). The entries are (E,) shared by the batch, or (B, E), one set per example.
    """
    if out_index.dim() == 1:  # one matrix for the whole batch
        return SharedSparseProduct.apply(x, out_index, in_index, values, n_out)
    if x.dim() == 3:
        d = x.shape[2]
        picked = x.gather(1, in_index[..., None].expand(-1, -1, d)) * values[..., None]
        y = x.new_zeros(x.shape[0], n_out, d)
        return y.scatter_add(1, out_index[..., None].expand(-1, -1, d), picked)
    picked = x.gather(1, in_index) * values
    return x.new_zeros(x.shape[0], n_out).scatter_add(1, out_index, picked)


class SparseHyperLayer(nn.Module):
    r"""A linear map from ``in_shape`` to ``out_shape`` whose k non-zero entries are learned
    (Sec. 3): :math:`y_i = \sum_{c:\,c_{out} = i} W_c\, x_{c_{in}}` with the pooled
    :math:`W_c = \sum_k \hat\rho_k(c) v_k` (:func:`sample_entries`) in training and the
    rounded tuples at evaluation.

    The index space has rank ``r = len(out_shape) + len(in_shape)``: 2 for a matrix, more
    for tensors (e.g. ``in_shape = (28, 28)`` and ``out_shape = (10,)`` gives r = 3).

    The tuples are free parameters, or, with ``hypernetwork``, computed from the input:
    ``hypernetwork(x) -> (B, k, r + 2)`` raw (mean per dimension, sigma, value) per tuple.
    With ``fix_values`` every value is 1 (the reference code's ``-F``, used for the identity
    and permutation tasks, whose entries are all 1). ``chunk_size`` tuples share a pool of
    candidate points (0: all k, the reference's default; 1: per-tuple normalisation).

    >>> torch.manual_seed(0) and None
    >>> layer = SparseHyperLayer((4,), (4,), k=4, n_global=2, n_local=2)
    >>> layer.entries(torch.zeros(1, 4))[0].shape  # k * (2^2 neighbours + 2 + 2) pooled points
    torch.Size([32, 2])
    >>> layer.eval().entries(torch.zeros(1, 4))[0].shape  # the k rounded tuples
    torch.Size([4, 2])
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        out_shape: Sequence[int],
        k: int,
        *,
        hypernetwork: Callable[[torch.Tensor], torch.Tensor] | None = None,
        n_global: int = 0,
        n_local: int = 0,
        region: int = 4,
        sigma_scale: float = 0.1,
        min_sigma: float = 0.0,
        fix_values: bool = False,
        chunk_size: int = 0,
        bias: bool = False,
    ):
        super().__init__()
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        self.sizes = (*self.out_shape, *self.in_shape)
        self.k, self.rank = k, len(self.sizes)
        self.n_global, self.n_local, self.region = n_global, n_local, region
        self.sigma_scale, self.min_sigma = sigma_scale, min_sigma
        self.fix_values, self.chunk_size = fix_values, chunk_size
        if chunk_size < 0 or (chunk_size and k % chunk_size):
            raise ValueError(f"chunk_size {chunk_size} must divide k = {k} (0: one chunk)")
        self.hypernetwork = hypernetwork
        if hypernetwork is None:
            self.raw = nn.Parameter(torch.randn(k, self.rank + 2))
        self.register_buffer("size_t", torch.tensor(self.sizes, dtype=torch.float32))
        self.bias = nn.Parameter(torch.zeros(*self.out_shape)) if bias else None

    def tuples(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(means (.., k, r), sigmas (.., k, r), values (.., k))``; leading dimension B with
        a hypernetwork, none for free parameters."""
        raw = self.raw if self.hypernetwork is None else self.hypernetwork(x)
        sizes = self.size_t.to(raw.dtype)
        means = means_from_raw(raw[..., : self.rank], sizes)
        sigmas = sigmas_from_raw(raw[..., self.rank], sizes, self.sigma_scale, self.min_sigma)
        values = raw[..., self.rank + 1]
        return means, sigmas, torch.ones_like(values) if self.fix_values else values

    def entries(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The sparse matrix: integer tuples (.., E, r) and their values (.., E)."""
        means, sigmas, values = self.tuples(x)
        return sample_entries(
            means,
            sigmas,
            values,
            self.sizes,
            training=self.training,
            chunk_size=self.chunk_size,
            n_global=self.n_global,
            n_local=self.n_local,
            region=self.region,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        tuples, values = self.entries(x)
        n_out = math.prod(self.out_shape)
        ro = len(self.out_shape)
        out_index = ravel(tuples[..., :ro], self.out_shape)
        in_index = ravel(tuples[..., ro:], self.in_shape)
        y = sparse_product(x.reshape(batch, -1), out_index, in_index, values.to(x.dtype), n_out)
        y = y.reshape(batch, *self.out_shape)
        return y if self.bias is None else y + self.bias
