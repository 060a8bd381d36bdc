r"""The reference code's two rules for the output layer, applied between the forward pass and
HM2-BP's backward (:meth:`.network.SpikingNetwork.gradients`).

* :func:`force_label_spikes` (``g_modifySpikes``, ``layers/Spiking.cu``): after the output
  error is computed, a label neuron that never fired gets regular spikes at steps
  ``k * (T // desired)``, k = 1, 2, ... (below T), and its count becomes their number; the
  S-PSPs, the side effect and the backward ratios then see those spikes, so that a silent
  label neuron gets a gradient of the size a firing one would.
* :func:`lateral_factor` (``g_getLateralFactor_output``): with lateral inhibition of strength
  :math:`w_0` between the outputs, the output weight gradient of neuron j is multiplied by
  :math:`1 / (1 - w_0^2 \sum_{l \ne j} r_{jl} d_l r_{lj} d_j)`, :math:`r_{jl} = e_{l|j}/o_j`
  (1 when o_j or o_l is 0), :math:`d_l = 1/\nu` for a neuron that fired or is the label, else
  0; computed on the spikes before :func:`force_label_spikes` (their order in the reference).
"""

from __future__ import annotations

import torch

from creditlab.methods.hm2bp.network import Record
from creditlab.methods.hm2bp.spsp import spike_train_psp
from creditlab.spiking import TAU_M, TAU_S


def label_spike_steps(steps: int, level: float) -> torch.Tensor:
    """The steps of the forced train: multiples of T // level below T.

    >>> label_spike_steps(400, 35).tolist()[:3], len(label_spike_steps(400, 35))
    ([11, 22, 33], 36)
    """
    interval = max(1, steps // max(1, int(level)))
    return torch.arange(interval, steps, interval)


def force_label_spikes(record: Record, labels: torch.Tensor, level: float) -> torch.Tensor:
    """Give every silent label neuron of the output layer the regular train of
    :func:`label_spike_steps` in ``record`` (in place: spikes and counts); returns the
    (batch, n_out) bool mask of the trains replaced."""
    spikes, counts = record.spikes[-1], record.counts[-1]
    batch, steps, n_out = spikes.shape
    rows = torch.arange(batch, device=labels.device)
    forced = torch.zeros(batch, n_out, dtype=torch.bool, device=counts.device)
    forced[rows, labels] = counts[rows, labels] == 0
    which = forced.nonzero()
    if len(which):
        t = label_spike_steps(steps, level).to(spikes.device)
        b, i = which[:, 0], which[:, 1]
        spikes[b[:, None], t[None, :], i[:, None]] = True
        counts[b, i] = float(len(t))
        if record.found:
            record.found[-1] = None  # the forward pass's spike lists no longer hold
    return forced


def lateral_factor(
    out_spikes: torch.Tensor,
    counts: torch.Tensor,
    labels: torch.Tensor,
    strength: float,
    threshold: float,
    tau_m: float = TAU_M,
    tau_s: float = TAU_S,
    delay: int | None = None,
) -> torch.Tensor:
    """(batch, n_out) factors of the output weight gradient (module docstring), from the
    output trains (batch, steps, n_out) and counts before forcing; ``delay`` the S-PSP's
    timing (:mod:`.spsp`)."""
    dtype = counts.dtype
    e = spike_train_psp(out_spikes, out_spikes, tau_m, tau_s, delay).to(dtype)  # [b, post, pre]
    batch, n = counts.shape
    fired = counts > 0
    label = torch.zeros_like(fired)
    label[torch.arange(batch, device=labels.device), labels] = True
    d = (fired | label).to(dtype) / threshold
    both = fired[:, :, None] & fired[:, None, :]  # [b, l, j]: o_l > 0 and o_j > 0
    # r[b, j, l] = e_{l|j} / o_j: e[b, l, j] (post l, pre j) over the pre count
    r = torch.where(both.transpose(1, 2), e.transpose(1, 2) / counts.clamp(min=1)[:, :, None], 1)
    pair = r * r.transpose(1, 2) * d[:, None, :] * d[:, :, None]  # r_jl r_lj d_l d_j
    pair = pair * (1 - torch.eye(n, dtype=dtype, device=counts.device))
    return 1 / (1 - strength**2 * pair.sum(2))
