r"""NormAD (Normalized Approximate Descent) for one layer, and its spatio-temporal error
backpropagation to a hidden layer. Updates are computed, not autograd: everything runs under
``torch.no_grad()``.

Single layer (Anwani & Rajendran 2015; the group's ``snn_train.cu``, ``CalcUpdate``)
-------------------------------------------------------------------------------------
With :math:`e(t) = S_d(t) - S_o(t)` (+1 at a desired step, -1 at a produced one) and
:math:`\hat d_i(t) = (c_i * h)(t)` the approximate :math:`\partial V(t)/\partial w_i`,

.. math:: \Delta w_i = r \sum_t e(t)\, \hat d_i(t) / \lVert \hat d(t) \rVert,

the norm over all inputs at each step, summed over the trial and applied once (the code sums
``del_w`` over the 1000 steps and adds it in ``WtUpdt``). It is the descent direction of the
membrane-potential cost :math:`J = -\sum_t e(t) V(t)` with e held fixed (raise V where a spike
is missing, lower it where one is extra), each instant's step normalised.

Hidden layer (our derivation: the multilayer paper's equation was not available)
-------------------------------------------------------------------------------
Input i -> hidden j -> output k. Treat the output membrane as linear in its input,

.. math:: V_k(t) \approx E_L + \sum_j w_{kj} \sum_f \kappa(t - t_j^f),\qquad \kappa = \alpha * h,

:math:`\alpha` the synaptic kernel, so a hidden weight reaches :math:`V_k` only by moving the
hidden spike times :math:`t_j^f`. At a threshold crossing :math:`V_j(t_j^f) = V_T`, so to first
order :math:`\partial t_j^f / \partial w_{ji} = -(\partial V_j / \partial w_{ji}) / V_j'(t_j^f)`
with :math:`\partial V_j(t)/\partial w_{ji} \approx \hat d_i(t)` (NormAD's approximation for the
hidden neuron, taken since its last release from reset: an earlier spike reset the membrane, so
:math:`a_{ji}^f = [\hat d_i(t_j^f) - e^{-(t_j^f - r)/\tau_L} \hat d_i(r^-)] / V_j'(t_j^f)`, r the
end of the last refractory period, exact for the exponential h). Then

.. math:: g^k_{ji}(t) := \frac{\partial V_k(t)}{\partial w_{ji}} \approx w_{kj} \sum_f
   \kappa'(t - t_j^f)\, a_{ji}^f ,
   \qquad \Delta w_{ji} = r_h \sum_k \sum_t e_k(t)\, g^k_{ji}(t) / \lVert g^k(t) \rVert ,

the norm over all hidden weights at each instant, as the single layer normalises over inputs.
Without the norm this is exactly :math:`-\partial J/\partial w_{ji}` of :math:`J = -\sum_k
\sum_t e_k(t) V_k(t)` through the spike times (tests/test_normad.py checks the cosine with a
finite difference of the simulated cost, with :math:`h` the true membrane response). As
backpropagation (what the code computes):

.. math:: \delta_j^f = \sum_k w_{kj} \sum_t \tilde e_k(t)\, \kappa'(t - t_j^f), \quad
   \tilde e_k = e_k / \lVert g^k \rVert, \qquad \Delta w_{ji} = r_h \sum_f \delta_j^f a_{ji}^f :

spatial through :math:`w_{kj}`, temporal as the anticausal correlation of the output error with
:math:`\kappa'`. :math:`\lVert g^k(t)\rVert^2 = \sum_j w_{kj}^2 \sum_{f,f'} \kappa'(t - t_j^f)
\kappa'(t - t_j^{f'}) \langle a_j^f, a_j^{f'} \rangle` uses each neuron's Gram matrix of its spikes'
a vectors, so no (time x hidden x input) tensor is formed.

Pitfalls, as handled here: :math:`1/V_j'` explodes when the membrane grazes threshold, so
:math:`V_j'` is clipped from below at ``slope_min``; a silent hidden neuron has no spike to move,
so it gets one pseudo-spike at its membrane's maximum, weighted by ``silent_gain`` and with slope
``slope_min`` (0 turns it off). Spike times are the threshold crossings interpolated within the
step, so :math:`\kappa'` is read at continuous lags.
"""

from __future__ import annotations

import torch

from creditlab.methods.normad.neuron import CELL, Neuron, Response, kappa_prime, normad_trace

TAU_KAPPA = 10e-3
"""time constant of h in the output response kappa = alpha * h that the hidden rule reads: the
membrane's own C / g_L; with tau_L = 1 ms there the hidden direction points away from the
gradient (cosine -0.36 on the test network, docs/normad.md)"""
SLOPE_MIN = 1.0
"""smallest |dV/dt| (V/s, i.e. mV/ms) used in 1 / V'(t_f)"""


@torch.no_grad()
def spike_error(desired: torch.Tensor, produced: torch.Tensor) -> torch.Tensor:
    """e(t) = S_d(t) - S_o(t) on the step grid."""
    return desired - produced


@torch.no_grad()
def normad_update(d: torch.Tensor, error: torch.Tensor, rate: float) -> torch.Tensor:
    """Single-layer NormAD: ``d`` (P, K, T, n_in) the inputs' traces, ``error`` (P, K, T, n_out)
    -> Delta w (P, n_in, n_out) = rate * sum over patterns and steps of e d / ||d||."""
    norm = d.norm(dim=-1, keepdim=True)
    unit = torch.where(norm > 0, d / norm.clamp(min=1e-300), torch.zeros_like(d))
    return rate * torch.einsum("pkti,pkto->pio", unit, error)


def _spike_table(resp: Response, cell: Neuron, silent_gain: float) -> tuple[torch.Tensor, ...]:
    """Each hidden neuron's spikes, padded to the most any has: step (P, K, H, S), interpolated
    time (s), slope (clipped later), release step, a weight (1 a spike, silent_gain a pseudo-spike,
    0 padding)."""
    spikes = resp.spikes.transpose(-1, -2)  # (P, K, H, T)
    count = spikes.sum(-1)
    order = torch.sort(spikes, dim=-1, descending=True, stable=True).indices
    slots = max(int(count.max()), 1)
    step = order[..., :slots]
    valid = torch.arange(slots, device=step.device) < count.unsqueeze(-1)
    weight = valid.to(resp.v.dtype)
    v = resp.v.transpose(-1, -2)
    slope = resp.slope.transpose(-1, -2).gather(-1, step)
    if silent_gain > 0:
        silent = count == 0
        peak = v.argmax(-1)
        step = torch.where(silent.unsqueeze(-1) & (torch.arange(slots) == 0), peak[..., None], step)
        weight = torch.where(silent.unsqueeze(-1) & (torch.arange(slots) == 0), silent_gain, weight)
        slope = torch.where(weight > 0, slope, torch.zeros_like(slope))
    v_at = v.gather(-1, step)
    v_before = v_at - slope * cell.dt
    frac = torch.where(slope > 0, (cell.v_t - v_before) / (slope * cell.dt).clamp(min=1e-30), 1.0)
    time = (step - 1 + frac.clamp(0, 1)) * cell.dt
    free = resp.free.transpose(-1, -2)
    released = torch.where(step > 0, free.gather(-1, (step - 1).clamp(min=0)), 0)
    return step, time, slope, released, weight


@torch.no_grad()
def hidden_update(
    c_in: torch.Tensor,
    hidden: Response,
    error: torch.Tensor,
    w_out: torch.Tensor,
    rate: float,
    cell: Neuron = CELL,
    tau: float | None = None,
    tau_kappa: float | None = TAU_KAPPA,
    normalise: bool = True,
    slope_min: float = SLOPE_MIN,
    silent_gain: float = 0.0,
) -> torch.Tensor:
    """Delta w of the hidden layer (P, n_in, H) from the output error (module docstring).
    ``c_in`` (P, K, T, n_in) the hidden layer's input kernels, ``hidden`` its simulation,
    ``error`` (P, K, T, O) the output's e(t), ``w_out`` (P, H, O); ``tau`` the impulse
    response's time constant in the hidden neurons' traces (tau_L by default; ``cell.tau_m`` the
    exact subthreshold one) and ``tau_kappa`` in kappa = alpha * h of the output (tau_m)."""
    tau = tau or cell.tau_l
    tau_kappa = tau_kappa or tau
    d = normad_trace(c_in, cell, tau)  # (P, K, T, n_in)
    step, time, slope, released, weight = _spike_table(hidden, cell, silent_gain)
    p, k, h, s = step.shape
    n_in = d.shape[-1]
    flat = d.reshape(p, k, 1, -1, n_in).expand(p, k, h, -1, n_in)
    d_at = flat.gather(-2, step[..., None].expand(-1, -1, -1, -1, n_in))
    before = flat.gather(-2, (released - 1).clamp(min=0)[..., None].expand(-1, -1, -1, -1, n_in))
    lag = (step - released + 1).to(d.dtype) * cell.dt
    carried = torch.exp(-lag / tau) * (released > 0).to(d.dtype)
    a = (d_at - carried[..., None] * before) / slope.clamp(min=slope_min)[..., None]
    a = a * weight[..., None]  # (P, K, H, S, n_in)
    steps = error.shape[-2]
    t_grid = torch.arange(steps, dtype=d.dtype) * cell.dt
    kp = kappa_prime(t_grid - time[..., None], cell, tau_kappa)  # (P, K, H, S, T)
    kp = kp * (weight > 0)[..., None].to(d.dtype)
    if normalise:
        gram = torch.einsum("pkhsi,pkhui->pkhsu", a, a)
        per_neuron = torch.einsum("pkhst,pkhsu,pkhut->pkht", kp, gram, kp).clamp(min=0)
        norm_sq = torch.einsum("pho,pkht->pkto", w_out**2, per_neuron)
        norm = norm_sq.sqrt()
        error = torch.where(norm > 0, error / norm.clamp(min=1e-300), torch.zeros_like(error))
    delta = torch.einsum("pho,pkto,pkhst->pkhs", w_out, error, kp)
    return rate * torch.einsum("pkhs,pkhsi->pih", delta, a)
