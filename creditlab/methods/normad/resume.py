r"""ReSuMe (Ponulak & Kasinski 2010), the classic supervised spike-time rule NormAD is measured
against, on the same neuron and trials:

.. math:: \Delta w_i = r \sum_t [S_d(t) - S_o(t)] \Big(a + A \sum_{s \ge 0} e^{-s/\tau}
   S_i(t - s)\Big),

a non-Hebbian term ``a`` on every synapse plus the exponential learning window over the input
train (the input spike at the same step included, s = 0), summed over the trial and applied once
like NormAD's. Under ``torch.no_grad()``.
"""

from __future__ import annotations

import torch

from creditlab.spiking import exponential_trace

TAU_WINDOW = 5e-3
"""learning window time constant (s)"""


@torch.no_grad()
def input_window_trace(spikes: torch.Tensor, dt: float, tau: float = TAU_WINDOW) -> torch.Tensor:
    """sum over s >= 0 of exp(-s / tau) S_i(t - s) for trains (P, K, T, n)."""
    flat = spikes.reshape(-1, *spikes.shape[-2:])
    return exponential_trace(flat, tau / dt).reshape(spikes.shape)


@torch.no_grad()
def resume_update(
    spikes_in: torch.Tensor,
    error: torch.Tensor,
    rate: float,
    a: float,
    big_a: float = 1.0,
    dt: float = 1e-4,
    tau: float = TAU_WINDOW,
) -> torch.Tensor:
    """Delta w (P, n_in, n_out) from input trains (P, K, T, n_in) and e(t) (P, K, T, n_out)."""
    window = input_window_trace(spikes_in, dt, tau)
    hebbian = torch.einsum("pkti,pkto->pio", window, error) * big_a
    non_hebbian = error.sum((1, 2)).unsqueeze(1) * a
    return rate * (hebbian + non_hebbian)
