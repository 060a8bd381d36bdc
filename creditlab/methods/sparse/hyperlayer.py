r"""The adaptive sparse hyperlayer (Bloem, "Learning sparse transformations through
backpropagation", arXiv 1810.09184, Sec. 3).

A sparse matrix (or tensor) is k continuous index tuples ``p_k`` in an index space of rank r
(the output dimensions first, then the input dimensions), each with a sigma ``s_k`` and a
value ``v_k``. In training every tuple is replaced by integer candidate tuples ``c`` near it
(its 2^r floor/ceil neighbours, ``n_global`` tuples drawn uniformly over the whole space and
``n_local`` drawn uniformly in a box of side ``region`` around round(p_k)), each weighted by
the unnormalised Gaussian density (Sec. 3.1)

.. math:: \rho_k(c) = \exp\Big(-\tfrac12 \sum_d (c_d - p_{kd})^2 / s_{kd}^2\Big),

duplicates among a tuple's candidates are zeroed and the weights normalised over the
candidates of each tuple, so the matrix is :math:`W_c = \sum_k \hat\rho_k(c)\, v_k`. The
candidates are detached: gradients reach ``p``, ``s`` and ``v`` through the densities only,
and the structure is resampled at every batch. At evaluation the tuples are rounded.

The product never builds the dense matrix: it is one ``index_add_`` (tuples shared by the
batch) or ``scatter_add_`` (tuples from a hypernetwork, one set per example) over the
``k * (candidates)`` entries, so time and memory grow with k, not with n * m.

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


def means_from_raw(raw: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """Continuous index tuples: ``sigmoid(raw) * (size - 1)`` per dimension (Sec. 3.1)."""
    return torch.sigmoid(raw) * (sizes - 1)


def sigmas_from_raw(
    raw: torch.Tensor, sizes: torch.Tensor, sigma_scale: float, min_sigma: float
) -> torch.Tensor:
    """One sigma per tuple, ``softplus(raw + 2) + min_sigma``, scaled by each dimension's size
    and ``sigma_scale``: shape ``raw.shape + (r,)``."""
    return ((F.softplus(raw + 2.0) + min_sigma) * sigma_scale)[..., None] * sizes


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

    Local samples are uniform in a box of side ``min(region, size)`` per dimension around
    ``round(mean)``, the box shifted to stay inside the index space (the reference code's
    choice: a sample never falls off the edge)."""
    means = means.detach()
    parts = [neighbours(means)]
    shape = (*means.shape[:-1], 0, means.shape[-1])
    if n_global > 0:
        u = torch.rand(*shape[:-2], n_global, shape[-1], device=means.device)
        parts.append((u * sizes).long())
    if n_local > 0:
        side = sizes.clamp(max=region)
        low = (means.round() - side // 2).clamp(min=torch.zeros_like(sizes), max=sizes - side)
        u = torch.rand(*shape[:-2], n_local, shape[-1], device=means.device)
        parts.append((low[..., None, :] + (u * side).floor()).long())
    return torch.cat(parts, dim=-2)


def gaussian_log_densities(
    candidates: torch.Tensor, means: torch.Tensor, sigmas: torch.Tensor
) -> torch.Tensor:
    """log of the unnormalised Gaussian density of each candidate around its tuple's mean:
    ``-1/2 sum_d ((c_d - p_d) / s_d)^2``; (..., k, c, r) -> (..., k, c)."""
    z = (candidates.to(means.dtype) - means[..., None, :]) / sigmas[..., None, :]
    return -0.5 * z.pow(2).sum(-1)


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
    """Zero the duplicates and normalise over the last dimension (the candidates of one
    tuple): a softmax of the log densities with the duplicates at -inf, which equals
    ``rho / sum rho`` and cannot underflow to 0 / 0 when every sigma is tiny."""
    return torch.softmax(log_weights.masked_fill(duplicate, -math.inf), dim=-1)


def candidate_weights(
    candidates: torch.Tensor, means: torch.Tensor, sigmas: torch.Tensor, sizes: Sequence[int]
) -> torch.Tensor:
    """The density path: normalised, duplicate-free weights ``rho_hat_k(c)`` of the given
    (fixed) candidates, differentiable in ``means`` and ``sigmas``."""
    log_density = gaussian_log_densities(candidates, means, sigmas)
    return normalise(log_density, duplicates(ravel(candidates, sizes)))


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
    """``(candidates (..., k, c, r), weights (..., k, c))``: in training the sampled
    candidates and their normalised densities; at evaluation ``c = 1``, the rounded tuple
    with weight 1."""
    if not training:
        return means.detach().round().long()[..., None, :], torch.ones_like(means[..., :1])
    size_t = torch.tensor(sizes, dtype=means.dtype, device=means.device)
    candidates = integer_candidates(means, size_t, n_global, n_local, region)
    return candidates, candidate_weights(candidates, means, sigmas, sizes)


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
    (Sec. 3): :math:`y_i = \sum_{c:\,c_{out} = i} W_c\, x_{c_{in}}` with
    :math:`W_c = \sum_k \hat\rho_k(c) v_k` in training and round(p_k) at evaluation.

    The index space has rank ``r = len(out_shape) + len(in_shape)``: 2 for a matrix, more
    for tensors (e.g. ``in_shape = (28, 28)`` and ``out_shape = (10,)`` gives r = 3).

    The tuples are free parameters, or, with ``hypernetwork``, computed from the input:
    ``hypernetwork(x) -> (B, k, r + 2)`` raw (mean per dimension, sigma, value) per tuple.
    With ``fix_values`` every value is 1 (the reference code's option for the identity and
    permutation tasks, whose entries are all 1; it is also the attention glimpses' setting).

    >>> torch.manual_seed(0) and None
    >>> layer = SparseHyperLayer((4,), (4,), k=4, n_global=2, n_local=2)
    >>> layer.entries(torch.zeros(1, 4))[0].shape  # k * (2^2 neighbours + 2 + 2) entries
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
        bias: bool = False,
    ):
        super().__init__()
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        self.sizes = (*self.out_shape, *self.in_shape)
        self.k, self.rank = k, len(self.sizes)
        self.n_global, self.n_local, self.region = n_global, n_local, region
        self.sigma_scale, self.min_sigma = sigma_scale, min_sigma
        self.fix_values = fix_values
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
        candidates, weights = sample_weights(
            means,
            sigmas,
            self.sizes,
            training=self.training,
            n_global=self.n_global,
            n_local=self.n_local,
            region=self.region,
        )
        entries = weights * values[..., None]
        return candidates.flatten(-3, -2), entries.flatten(-2)

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
