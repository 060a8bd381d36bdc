"""The discrete-time leaky integrate-and-fire neuron with a first-order synapse, its PSP
kernel (with and without a membrane reset), exponential spike traces, Bernoulli rate
encoding and spike-train statistics: the pieces every spiking method in creditlab shares.

Time is discrete, one step = 1 ms. Tensors are shaped ``(batch, time, *neurons)``; spike
trains are ``bool``. Everything is vectorised over batch, neurons and time except
:class:`LIF`, whose loop over time steps is the causality of the membrane (a spike at step
t resets the membrane that decides step t + 1).

Memory layout: the trains this module and the spiking networks make are stored *time-major*
(steps, batch, neurons) and handed out as the ``(batch, time, ...)`` view of that memory
(``transpose(0, 1)``). A step is then one contiguous slice (the LIF loop reads and writes
whole rows), a linear filter over time is one matrix product on ``(steps, batch * n)``, and
:func:`time_major` gets the memory back without a copy. Batch-major inputs work too (they are
copied once).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

TAU_M = 64.0
"""membrane time constant (steps)"""
TAU_S = 8.0
"""synaptic time constant (steps)"""
T_REF = 2
"""refractory period (steps)"""


class LIF(nn.Module):
    r"""Leaky integrate-and-fire neurons with a first-order synapse and a refractory period.

    Per step t, for every neuron (the five steps of the HM2-BP spec, in this order):

    1. leak: :math:`v \leftarrow v - v/\tau_m`, :math:`s \leftarrow s - s/\tau_s`
    2. input: :math:`s \leftarrow s + \sum_j w_{ij}\, \mathrm{spike}_j(t-1)`
    3. integrate: :math:`v \leftarrow v + s/\tau_s`
    4. refractory: :math:`v` held at 0 for :math:`T_{ref}` steps after a spike
    5. fire when :math:`v > \vartheta`; reset :math:`v` to 0.

    ``forward(current)`` takes the weighted presynaptic input :math:`I(t) = \sum_j w_{ij}
    \mathrm{spike}_j(t)` of a block of steps, shaped ``(batch, steps, neurons)``, and returns
    the spikes of those steps; the input of a step's last entry arrives one step later (step
    2), so successive blocks continue one simulation. ``lateral`` > 0 adds lateral
    inhibition: each spike at t sends ``-lateral`` to every *other* neuron of the layer at
    t + 1. State (``v``, ``s``, refractory counter, pending input) is explicit and
    :meth:`reset` starts a new simulation.

    >>> lif = LIF(threshold=1.0)
    >>> lif.reset((1, 1))
    >>> spikes = lif(torch.full((1, 30, 1), 4.0))
    >>> spikes[0, :, 0].nonzero().flatten().tolist()[:3]
    [2, 5, 8]
    """

    def __init__(
        self,
        threshold: float,
        tau_m: float = TAU_M,
        tau_s: float = TAU_S,
        t_ref: int = T_REF,
        lateral: float = 0.0,
    ):
        super().__init__()
        self.threshold, self.tau_m, self.tau_s = float(threshold), float(tau_m), float(tau_s)
        self.t_ref, self.lateral = int(t_ref), float(lateral)
        self.v = self.s = self.refractory = self.pending = torch.zeros(0)

    def reset(self, shape: tuple[int, ...], dtype=torch.float32, device=None) -> None:
        """Start a new simulation of ``shape`` = (batch, neurons) neurons at rest."""
        zeros = torch.zeros(shape, dtype=dtype, device=device)
        self.v, self.s, self.refractory, self.pending = (zeros.clone() for _ in range(4))

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        v, s, refractory = self.v, self.s, self.refractory
        out = torch.empty_like(current, dtype=torch.bool)  # current's layout: time-major stays
        leak_m, leak_s, gain = 1 - 1 / self.tau_m, 1 - 1 / self.tau_s, 1 / self.tau_s
        held, fired = torch.empty_like(v), torch.empty_like(v)  # float masks: faster than bool
        pending = self.pending
        for k in range(current.shape[1]):
            v.mul_(leak_m)  # 1. leak
            s.mul_(leak_s).add_(pending)  # 1. leak, 2. input from step t - 1
            v.add_(s, alpha=gain)  # 3. integrate
            torch.gt(refractory, 0, out=held)  # 4. refractory: v held at 0
            v.addcmul_(v, held, value=-1)
            refractory.sub_(held)
            torch.gt(v, self.threshold, out=fired)  # 5. fire and reset
            v.addcmul_(v, fired, value=-1)
            refractory.add_(fired, alpha=self.t_ref)
            out[:, k] = fired
            pending = current[:, k]
            if self.lateral:
                pending = pending - self.lateral * (fired.sum(-1, keepdim=True) - fired)
        self.pending = pending.clone()
        return out


def psp_kernel(s: torch.Tensor, tau_m: float = TAU_M, tau_s: float = TAU_S) -> torch.Tensor:
    """eps(s) = (exp(-s/tau_m) - exp(-s/tau_s)) / (1 - tau_s/tau_m) for s >= 0, else 0: the
    membrane response to one presynaptic spike s steps ago (the continuous-time form of
    :class:`LIF`'s steps 1-3; its integral over s is tau_m).

    >>> round(float(psp_kernel(torch.tensor(19.0))), 3)  # near its peak
    0.743
    """
    value = (torch.exp(-s / tau_m) - torch.exp(-s / tau_s)) / (1 - tau_s / tau_m)
    return torch.where(s >= 0, value, torch.zeros_like(value))


def psp_kernel_with_reset(
    s: torch.Tensor, t: torch.Tensor, tau_m: float = TAU_M, tau_s: float = TAU_S
) -> torch.Tensor:
    """eps(s, t) = exp(-max(s - t, 0)/tau_s) * eps(min(s, t)): the response at the present
    step to a presynaptic spike s steps ago when the membrane was last reset t steps ago
    (the reset clears the membrane, the synaptic current carries across it). ``t = inf``
    (no reset) gives :func:`psp_kernel`."""
    carried = torch.exp(-torch.clamp(s - t, min=0) / tau_s)
    return carried * psp_kernel(torch.minimum(s, t), tau_m, tau_s)


@functools.lru_cache(maxsize=8)
def _decay_matrix(steps: int, tau: float, dtype, device) -> torch.Tensor:
    """(steps, steps) lower-triangular exp(-(t - t')/tau) for t >= t', else 0; built once per
    (steps, tau, dtype, device) (NormAD filters every trial with the same few: building it was
    a quarter of an XOR epoch). Read-only: callers only multiply by it."""
    k = torch.arange(steps, device=device, dtype=torch.float64)
    lag = k[:, None] - k[None, :]
    decay = torch.where(lag >= 0, torch.exp(-lag.clamp(min=0) / tau), torch.zeros_like(lag))
    return decay.to(dtype)


def _filter(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``matrix`` (rows, steps) applied along dim 1 of x (batch, steps, ...) -> (batch, rows,
    ...), as one matrix product."""
    b, steps = x.shape[:2]
    rest = x.shape[2:]
    flat = x.transpose(0, 1).reshape(steps, -1)
    return (matrix @ flat).view(matrix.shape[0], b, *rest).transpose(0, 1)


def exponential_trace(
    x: torch.Tensor, tau: float, carry: torch.Tensor | None = None
) -> torch.Tensor:
    """trace(t) = sum over t' <= t of exp(-(t - t')/tau) * x(t') along dim 1 of ``x``
    (batch, steps, ...), continuing from ``carry`` (the trace at the step before the block).

    A linear filter, so it is one matrix product over the block's time steps (a
    lower-triangular decay matrix), not a loop.

    >>> exponential_trace(torch.tensor([[1.0, 0.0, 1.0]]), tau=1 / math.log(2)).tolist()
    [[1.0, 0.5, 1.25]]
    """
    steps = x.shape[1]
    trace = _filter(_decay_matrix(steps, tau, x.dtype, x.device), x)
    if carry is not None:
        k = torch.arange(1, steps + 1, device=x.device, dtype=x.dtype)
        shape = (1, steps) + (1,) * (x.dim() - 2)
        trace = trace + torch.exp(-k / tau).view(shape) * carry.unsqueeze(1)
    return trace


class PSPTrace:
    """The unreset PSP of every presynaptic train, block by block:
    ``u_j(t) = sum over t' <= t of eps(t - t') x_j(t') = c (Tm_j(t) - Ts_j(t))`` with
    ``c = 1 / (1 - tau_s/tau_m)`` and Tm, Ts the :func:`exponential_trace` of x with tau_m
    and tau_s. Call it on successive blocks of steps; it carries Tm and Ts across them.

    One matrix product a block, carries included: the block's steps preceded by the two
    carried traces are the rows of one time-major ``(2 + steps, batch * n)`` buffer, and the
    matrix's rows are c (Dm - Ds) with the carries' decay columns (the PSP), then the last
    rows of Dm and Ds (the next carries), Dm and Ds the decay matrices. ``dtype`` is the
    output's (default x's, float32 for spikes); the output is the (batch, steps, ...) view of
    time-major memory.

    >>> trace = PSPTrace()
    >>> x = torch.zeros(1, 30, 1); x[0, 0] = 1
    >>> u = torch.cat([trace(x[:, :10]), trace(x[:, 10:])], 1)
    >>> torch.allclose(u[0, :, 0], psp_kernel(torch.arange(30.0)))
    True
    """

    def __init__(self, tau_m: float = TAU_M, tau_s: float = TAU_S):
        self.tau_m, self.tau_s = tau_m, tau_s
        self.scale = 1 / (1 - tau_s / tau_m)
        self.carry: torch.Tensor | None = None  # (2, batch * n): Tm, Ts at the last step
        self._matrices: dict = {}

    def _matrix(self, steps: int, dtype, device) -> torch.Tensor:
        """(steps + 2, 2 + steps): columns Tm, Ts carried in, then the steps' inputs."""
        key = (steps, dtype, device)
        if key not in self._matrices:
            f64 = torch.float64
            dm = _decay_matrix(steps + 1, self.tau_m, f64, device)
            ds = _decay_matrix(steps + 1, self.tau_s, f64, device)
            zero = torch.zeros(1, 1, dtype=f64, device=device)
            # row k of the block, from the step before it: decay^(k + 1) (dm[1:, 0])
            rows = self.scale * torch.cat([dm[1:, :1], -ds[1:, :1], (dm - ds)[1:, 1:]], 1)
            carry_m = torch.cat([dm[-1:, :1], zero, dm[-1:, 1:]], 1)
            carry_s = torch.cat([zero, ds[-1:, :1], ds[-1:, 1:]], 1)
            self._matrices[key] = torch.cat([rows, carry_m, carry_s]).to(dtype)
        return self._matrices[key]

    def __call__(self, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        batch, steps = x.shape[:2]
        if dtype is None:
            dtype = x.dtype if x.is_floating_point() else torch.float32
        buffer = torch.empty(2 + steps, x[:, 0].numel(), dtype=dtype, device=x.device)
        buffer[2:] = as_bytes(x).transpose(0, 1).reshape(steps, -1)  # free for time-major x
        buffer[:2] = 0 if self.carry is None else self.carry
        out = self._matrix(steps, dtype, x.device) @ buffer
        self.carry = out[steps:].clone()
        return out[:steps].view(steps, batch, *x.shape[2:]).transpose(0, 1)


ENCODE_BLOCK = 2**21
"""uniform draws held at once by :func:`bernoulli_encode` (its memory does not grow with T)"""


def bernoulli_encode(
    x: torch.Tensor, n_steps: int, scale: float = 5.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Rate coding: a spike at each of ``n_steps`` steps with probability ``x / scale``
    (x in [0, 1]; HM2-BP uses pixel / (5.5 * 255)). Returns bool (batch, n_steps, *x.shape[1:]),
    the view of time-major memory (module docstring). Uniform numbers are drawn only for the
    entries with a nonzero probability (a zero pixel never fires; most MNIST pixels are zero),
    from ``generator`` (on its device), else from torch's default generator of x's device.

    >>> g = torch.Generator().manual_seed(0)
    >>> spikes = bernoulli_encode(torch.tensor([[0.0, 1.0]]), 20000, generator=g)
    >>> [round(r, 2) for r in spikes.float().mean(1)[0].tolist()]
    [0.0, 0.18]
    """
    p = (x / scale).clamp(0, 1).reshape(-1)
    live = p.nonzero().squeeze(1)
    p_live = p[live]
    spikes = torch.zeros(n_steps, p.numel(), dtype=torch.bool, device=x.device)
    device = x.device if generator is None else generator.device
    block = max(1, ENCODE_BLOCK // max(1, len(live)))  # a block of steps at a time
    for t0 in range(0, n_steps, block):
        shape = (min(block, n_steps - t0), len(live))
        u = torch.rand(shape, generator=generator, dtype=x.dtype, device=device)
        spikes[t0 : t0 + block, live] = u.to(x.device) < p_live
    return spikes.view(n_steps, *x.shape).transpose(0, 1)


def as_bytes(spikes: torch.Tensor) -> torch.Tensor:
    """A bool tensor viewed as uint8 (no copy; anything else unchanged): converting that to
    float is 3-5x faster on a CPU than converting bool (``benchmarks/hm2bp_pieces.py``)."""
    return spikes.view(torch.uint8) if spikes.dtype == torch.bool else spikes


def time_major(spikes: torch.Tensor) -> torch.Tensor:
    """(batch, steps, *neurons) -> contiguous (steps, batch, neurons): a view, no copy, for
    trains stored time-major (the module docstring); others are copied once."""
    batch, steps = spikes.shape[:2]
    return spikes.transpose(0, 1).reshape(steps, batch, -1).contiguous()


def spike_positions(spikes: torch.Tensor) -> torch.Tensor:
    """The flat indices of the ``True`` entries of a bool tensor, ascending: the same as
    ``spikes.flatten().nonzero()[:, 0]``, 2-3x faster on sparse trains on a CPU
    (``benchmarks/hm2bp_pieces.py``). It first
    finds the nonzero 8-byte words, then the bytes inside them.

    >>> spike_positions(torch.tensor([[False, True], [True, False]])).tolist()
    [1, 2]
    """
    flat = spikes.reshape(-1)
    if flat.device.type != "cpu" or flat.numel() % 8 or flat.storage_offset() % 8:
        return flat.nonzero().squeeze(1)
    words = flat.view(torch.uint8).view(torch.int64).nonzero().squeeze(1)
    inside = flat.view(-1, 8)[words].nonzero()
    return words[inside[:, 0]] * 8 + inside[:, 1]


def spike_counts(spikes: torch.Tensor) -> torch.Tensor:
    """Spikes per neuron over the whole train: (batch, time, *n) -> (batch, *n) float."""
    return spikes.sum(1, dtype=torch.float32)


def firing_rate(spikes: torch.Tensor) -> float:
    """Mean spikes per neuron per step (per ms: multiply by 1000 for Hz)."""
    return int(torch.count_nonzero(spikes)) / spikes.numel() if spikes.numel() else 0.0


def silent_fraction(spikes: torch.Tensor) -> float:
    """Fraction of (example, neuron) pairs that never fired."""
    counts = spike_counts(spikes)
    return float((counts == 0).float().mean()) if counts.numel() else 0.0


def interspike_cv(spikes: torch.Tensor) -> float:
    """Coefficient of variation of the inter-spike intervals, pooled over every train with at
    least three spikes (1 for a Poisson train, 0 for a regular one); NaN when none has."""
    b, t = spikes.shape[:2]
    flat = spikes.reshape(b, t, -1).transpose(1, 2).reshape(-1, t)
    times = torch.arange(t, device=spikes.device, dtype=torch.float32)
    counts = flat.sum(1)
    keep = counts >= 3
    if not bool(keep.any()):
        return math.nan
    flat = flat[keep].float()
    # interval between each spike and the previous one: time minus the last spike time
    last = torch.cummax(torch.where(flat > 0, times, torch.full_like(flat, -1.0)), 1).values
    previous = torch.cat([torch.full_like(last[:, :1], -1.0), last[:, :-1]], 1)
    isi = (times - previous)[(flat > 0) & (previous >= 0)]
    return float(isi.std() / isi.mean())
