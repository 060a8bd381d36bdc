r"""The neuron of NormAD (Anwani & Rajendran, IJCNN 2015; the same group's ``snn_train.cu``):
a leaky integrate-and-fire membrane driven by double-exponential synaptic currents, with the
approximate impulse response that NormAD uses for dV/dw. SI units, float64, dt = 0.1 ms.

* membrane: :math:`C\,dV/dt = -g_L (V - E_L) + I(t)`, one Heun (RK2) step per dt with the
  current held over the step (``LifKernel2``); V is clamped at E_L from below, held at E_L
  for 3 ms after a spike; a spike when :math:`V \ge V_T`, then V = E_L.
* synapse: :math:`c(t) = \sum_k e^{-(t-t_k)/\tau_1} - e^{-(t-t_k)/\tau_2}` (tau_1 = 5 ms,
  tau_2 = 1.25 ms), the recurrences ``c = 0.9802 c + s``, ``c_s = 0.9231 c_s + s`` of the code;
  the current into neuron k is :math:`I_k(t) = \sum_i w_{ki} c_i(t)` (w in amperes).
* NormAD's trace: :math:`\hat d_i(t) = (c_i * h)(t)`, :math:`h(t) = e^{-t/\tau_L}/C` with
  tau_L = 1 ms (the code: ``d = 0.9048 d + c dt / C``), the approximate
  :math:`\partial V(t) / \partial w_i` (the membrane's own C / g_L is 10 ms).

Tensors are ``(problems, patterns, time, neurons)``: a batch of independent problems (their own
weights ``(problems, n_in, n_out)``) each with its patterns. The linear filters run on
:func:`creditlab.spiking.exponential_trace` (one matrix product); the membrane's loop over time
is the causality of the reset.

>>> spikes = torch.zeros(1, 1, 400, 1, dtype=torch.float64); spikes[0, 0, 10, 0] = 1
>>> c = synaptic_trace(spikes)
>>> round(float(c.max()), 4), int(c[0, 0, :, 0].argmax()) - 10  # peak 0.47 at 2.3 ms
(0.4725, 23)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from creditlab.spiking import exponential_trace

DT = 1e-4
"""time step (s): 0.1 ms"""
C_M = 300e-12
"""membrane capacitance (F)"""
G_L = 30e-9
"""leak conductance (S)"""
E_L = -70e-3
"""resting and reset potential (V)"""
V_T = 20e-3
"""firing threshold (V): the code compares V >= VT = 20e-3 directly (the spec's "-50 mV" reads
the paper's V_T = 20 mV as relative to E_L; see docs/normad.md)"""
T_REF = 3e-3
"""refractory period (s)"""
TAU_1, TAU_2 = 5e-3, 1.25e-3
"""synaptic kernel time constants (s)"""
TAU_L = 1e-3
"""time constant of NormAD's approximate impulse response (s)"""


@dataclass(frozen=True)
class Neuron:
    """The constants of the membrane and the synapse (defaults: the group's code)."""

    c_m: float = C_M
    g_l: float = G_L
    e_l: float = E_L
    v_t: float = V_T
    t_ref: float = T_REF
    dt: float = DT
    tau_1: float = TAU_1
    tau_2: float = TAU_2
    tau_l: float = TAU_L

    @property
    def tau_m(self) -> float:
        """the membrane's own time constant C / g_L (10 ms)"""
        return self.c_m / self.g_l

    @property
    def ref_steps(self) -> int:
        return round(self.t_ref / self.dt)


CELL = Neuron()
"""the group's constants"""


def synaptic_trace(spikes: torch.Tensor, cell: Neuron = CELL) -> torch.Tensor:
    """c(t) of every train of ``spikes`` (..., time, n): the double-exponential kernel summed
    over the train's spikes, 0 at a spike's own step (both traces jump by 1)."""
    return _filter(spikes, cell.tau_1 / cell.dt) - _filter(spikes, cell.tau_2 / cell.dt)


def normad_trace(c: torch.Tensor, cell: Neuron = CELL, tau: float | None = None) -> torch.Tensor:
    """d(t) = dt / C * sum over s <= t of exp(-(t - s) / tau_L) c(s): NormAD's dV/dw of every
    input (``tau`` replaces tau_L, e.g. ``cell.tau_m`` for the exact subthreshold response)."""
    return _filter(c, (tau or cell.tau_l) / cell.dt) * (cell.dt / cell.c_m)


def _filter(x: torch.Tensor, tau_steps: float) -> torch.Tensor:
    """exponential_trace along the time axis (-2) of (..., time, n)."""
    lead = x.shape[:-2]
    flat = x.reshape(-1, *x.shape[-2:])
    return exponential_trace(flat, tau_steps).reshape(*lead, *x.shape[-2:])


def heun_step(v: torch.Tensor, current: torch.Tensor, cell: Neuron) -> torch.Tensor:
    """One Heun step of C dV/dt = -g_L (V - E_L) + I with I held (the code's k1, k2)."""
    k1 = (-cell.g_l * (v - cell.e_l) + current) / cell.c_m
    k2 = (-cell.g_l * (v + cell.dt * k1 - cell.e_l) + current) / cell.c_m
    return v + cell.dt * (k1 + k2) / 2


@dataclass
class Response:
    """What one simulation of a layer gives: ``spikes`` (..., time, n) in {0, 1}; ``v`` the
    membrane before the reset (so V >= V_T at a spike step); ``slope`` dV/dt there
    ((v(t) - v(t - dt)) / dt, 0 elsewhere); ``free`` the step each neuron's membrane was last
    released from a reset (end of refractory; 0 before the first spike); ``clamped`` where the
    Heun step fell below E_L and V was clamped there (strictly below: V at rest with no current is
    not clamped)."""

    spikes: torch.Tensor
    v: torch.Tensor
    slope: torch.Tensor
    free: torch.Tensor
    clamped: torch.Tensor


def heun_coefficients(cell: Neuron) -> tuple[float, float]:
    """(a, b) of the Heun step as the linear map it is: with x = V - E_L and I held,
    x' = a x + b I, a = 1 - (dt / tau_m)(1 - dt / (2 tau_m)), b = dt (1 - dt / (2 tau_m)) / C
    (k2 = k1 (1 - dt / tau_m), so (k1 + k2) / 2 = k1 (1 - dt / (2 tau_m)))."""
    half = 1 - cell.dt / (2 * cell.tau_m)
    return 1 - cell.dt / cell.tau_m * half, cell.dt * half / cell.c_m


@torch.no_grad()
def simulate(current: torch.Tensor, cell: Neuron = CELL) -> Response:
    """Integrate the membranes of ``current`` (..., time, n) (amperes) from rest: the Heun step
    of :func:`heun_step` written as x' = a x + b I (:func:`heun_coefficients`), x = V - E_L.
    Only the reset is a loop over time; spikes, slopes and release steps are read off the
    pre-reset potentials afterwards (a spike is V >= V_T; the refractory hold keeps V at E_L,
    below threshold, and no spike follows its predecessor's step)."""
    a, b = heun_coefficients(cell)
    theta = cell.v_t - cell.e_l
    steps = current.shape[-2]
    drive = (b * current).movedim(-2, 0).contiguous()  # (T, ..., n)
    x = torch.zeros_like(drive[0])
    ready = torch.zeros_like(x)  # the step each membrane integrates again
    xs = torch.empty_like(drive)
    ref = float(cell.ref_steps + 1)
    for t in range(steps):
        new = torch.where(ready <= t, x * a + drive[t], x).clamp_(min=0)
        xs[t] = new
        fired = new >= theta
        ready = torch.where(fired, t + ref, ready)
        x = new.masked_fill_(fired, 0.0)
    xs = xs.movedim(0, -2)
    fired = xs >= theta
    spikes = fired.to(current.dtype)
    v = xs + cell.e_l
    before = torch.nn.functional.pad(xs[..., :-1, :], (0, 0, 1, 0))
    slope = torch.where(fired, (xs - before) / cell.dt, 0.0)
    index = torch.arange(steps, device=current.device).view(-1, 1)
    last = torch.where(fired, index, -1).cummax(dim=-2).values
    free = torch.where(last >= 0, last + cell.ref_steps + 1, 0)
    released = torch.nn.functional.pad(free[..., :-1, :], (0, 0, 1, 0)) <= index
    raw = before * (1 - torch.nn.functional.pad(spikes[..., :-1, :], (0, 0, 1, 0))) * a
    clamped = released & (raw + drive.movedim(0, -2) < 0)
    return Response(spikes, v, slope, free, clamped)


def layer_current(c: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """I(t) = sum_i w_i c_i(t): c (P, K, T, n_in), w (P, n_in, n_out) -> (P, K, T, n_out)."""
    return torch.einsum("pktn,pnm->pktm", c, w)


def kappa(s: torch.Tensor, cell: Neuron = CELL, tau: float | None = None) -> torch.Tensor:
    """kappa(s) = (alpha * h)(s) for s >= 0: the (approximate) potential response to one
    presynaptic spike s seconds ago, alpha the synaptic kernel and h = exp(-t/tau)/C (tau_L by
    default). Closed form: E(a, b)(s) = ab/(a - b) (exp(-s/a) - exp(-s/b)) is exp(-s/a) *
    exp(-s/b), so kappa = (E(tau_1, tau) - E(tau_2, tau)) / C."""
    return _kappa(s, cell, tau or cell.tau_l, derivative=False)


def kappa_prime(s: torch.Tensor, cell: Neuron = CELL, tau: float | None = None) -> torch.Tensor:
    """d kappa / ds (0 for s < 0)."""
    return _kappa(s, cell, tau or cell.tau_l, derivative=True)


def _kappa(s: torch.Tensor, cell: Neuron, tau: float, derivative: bool) -> torch.Tensor:
    sp = s.clamp(min=0)

    def conv(a: float, b: float) -> torch.Tensor:
        if math.isclose(a, b):
            a = a * (1 + 1e-9)
        k = a * b / (a - b)
        if derivative:
            return k * (-torch.exp(-sp / a) / a + torch.exp(-sp / b) / b)
        return k * (torch.exp(-sp / a) - torch.exp(-sp / b))

    value = (conv(cell.tau_1, tau) - conv(cell.tau_2, tau)) / cell.c_m
    return torch.where(s >= 0, value, torch.zeros_like(value))
