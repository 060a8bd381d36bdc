r"""The spike-train-level PSP (S-PSP) of HM2-BP, computed as contractions over time.

Definition (the spec's micro level). For a postsynaptic neuron i with spikes
:math:`t_i^1 < t_i^2 < \dots` and a presynaptic neuron j with spikes :math:`t_j^g`,

.. math::
    e_{i|j} = \sum_f \sum_{g:\, t_j^g \le t_i^f} \epsilon(t_i^f - t_j^g,\; t_i^f - t_i^{f-1}),
    \qquad \epsilon(s, t) = e^{-\max(s - t, 0)/\tau_s}\, \epsilon(\min(s, t)),

with :math:`\epsilon(s) = c\,(e^{-s/\tau_m} - e^{-s/\tau_s})`, :math:`c = 1/(1 - \tau_s/\tau_m)`
and :math:`t_i^0 = -\infty` (before its first spike the membrane was never reset).

Factorisation. Fix a post spike f, write :math:`\Delta = t_i^f - t_i^{f-1}` and
:math:`s = t_i^f - t_j^g`. Split the presynaptic spikes into *recent* ones
(:math:`t_i^{f-1} < t_j^g \le t_i^f`, so :math:`s < \Delta`: :math:`\epsilon(s, \Delta) =
\epsilon(s)`) and *old* ones (:math:`t_j^g \le t_i^{f-1}`, :math:`s \ge \Delta`:
:math:`\epsilon(s, \Delta) = e^{-(s-\Delta)/\tau_s} \epsilon(\Delta) = c\, e^{-s/\tau_s}
(e^{\Delta/\tau_s - \Delta/\tau_m} - 1)`; at :math:`s = \Delta` both forms agree, so a pre
spike coinciding with the previous post spike may go on either side). With the full
presynaptic traces :math:`T^m_j(t) = \sum_{g: t_j^g \le t} e^{-(t - t_j^g)/\tau_m}` and
:math:`T^s_j` likewise with :math:`\tau_s`,

.. math::
    \sum_{\text{recent}} e^{-s/\tau} = T_j(t_i^f) - e^{-\Delta/\tau} T_j(t_i^{f-1}), \qquad
    \sum_{\text{old}} e^{-s/\tau_s} = e^{-\Delta/\tau_s} T^s_j(t_i^{f-1}),

and adding the pieces, the :math:`\tau_s` terms of the old spikes combine into
:math:`e^{-\Delta/\tau_m} T^s_j(t_i^{f-1})`:

.. math::
    e_{i|j}^{(f)} = u_j(t_i^f) - e^{-\Delta/\tau_m}\, u_j(t_i^{f-1}),
    \qquad u_j(t) = c\,(T^m_j(t) - T^s_j(t)),

where :math:`u_j` is the *unreset* PSP of train j (:class:`creditlab.spiking.PSPTrace`):
the reset removes the membrane's share of the PSP at :math:`t_i^{f-1}` (it then decays
with :math:`\tau_m`), while the synaptic current carries on. Summing over f and collecting
the coefficient of each post spike (its own +1, and :math:`-e^{-\Delta_{f+1}/\tau_m}` from
the next spike's reset term),

.. math::
    e_{i|j} = \sum_t A_i(t)\, u_j(t), \qquad
    A_i(t) = \mathrm{spike}_i(t)\,\bigl(1 - e^{-(t_i^{\text{next}}(t) - t)/\tau_m}\bigr),

:math:`t_i^{\text{next}}(t)` the first post spike after t (:math:`+\infty`: none). So e is a
contraction over time of a postsynaptic weighting A (nonzero only at post spikes) and a
presynaptic trace u: ``e[b] = A[b].T @ u[b]`` (the hint's :math:`A^T T^m + B^T T^s` with
:math:`B = -A`). Every sum HM2-BP needs is then a contraction over (batch, time) that never
forms the (batch, post, pre) tensor:

* weight gradient :math:`\sum_b g_i^b e^b_{i|j} = \sum_{b,t} (g^b_i A^b_i(t))\, u^b_j(t)`:
  one product ``(g A)^T u`` over (batch, time);
* back-propagated signal :math:`\sum_i \delta_i w_{ij} e_{i|j} = \sum_t u_j(t)\, [W^T (\delta
  A(t))]_j`;
* side-effect sum :math:`\sum_l w_{il} e_{i|l} = \sum_t A_i(t)\, [W u(t)]_i`, and
  :math:`W u` is the unreset PSP of the weighted input current (linear filters commute with
  W), which the forward pass already computes.

The spec allows cutting the presynaptic window at :math:`4\tau_m`; these sums are exact,
without the cut (the traces hold every earlier spike).
"""

from __future__ import annotations

import math

import torch

from creditlab.spiking import TAU_M, TAU_S, PSPTrace


def post_spike_weights(
    spikes: torch.Tensor,
    next_after: torch.Tensor | None = None,
    t0: int = 0,
    tau_m: float = TAU_M,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A_i(t) = spike_i(t) (1 - exp(-(t_next - t)/tau_m)) for a block of steps ``t0, t0+1, ...``
    of post spikes (batch, steps, n); ``next_after`` (batch, n) is the first spike time after
    the block (inf: none; default: none).

    One backward scan over the block's steps carries ``exp(-(t_next - t)/tau_m)``,
    vectorised over batch and neurons.
    """
    b, steps, n = spikes.shape
    fired = spikes.to(dtype)
    decay = math.exp(-1 / tau_m)
    if next_after is None:
        to_next = torch.zeros(b, n, dtype=dtype, device=spikes.device)
    else:  # exp(-(t_next - t)/tau_m) at the block's last step
        to_next = torch.exp(-(next_after.to(dtype) - (t0 + steps - 1)) / tau_m)
    a = torch.empty_like(fired)
    for k in reversed(range(steps)):
        f = fired[:, k]
        a[:, k] = f - f * to_next
        to_next = decay * (f + (1 - f) * to_next)  # seen from step k - 1
    return a


def first_spikes_after_blocks(spikes: torch.Tensor, block: int) -> list[torch.Tensor]:
    """For each block of ``block`` steps, the first spike time after it (batch, n; inf: none),
    found by one pass over the blocks from the last."""
    b, steps, n = spikes.shape
    nxt = torch.full((b, n), float("inf"), device=spikes.device)
    out: list[torch.Tensor] = []
    for t0 in reversed(range(0, steps, block)):
        out.append(nxt)
        chunk = spikes[:, t0 : t0 + block]
        length = chunk.shape[1]
        countdown = torch.arange(length, 0, -1, device=spikes.device, dtype=nxt.dtype)
        # max of spike * (length - k) is length - (first spike's k), 0 when none fired
        score = (chunk.to(nxt.dtype) * countdown.view(1, -1, 1)).amax(1)
        nxt = torch.where(score > 0, t0 + length - score, nxt)
    return out[::-1]


def spike_train_psp(
    pre: torch.Tensor, post: torch.Tensor, tau_m: float = TAU_M, tau_s: float = TAU_S
) -> torch.Tensor:
    """The S-PSP e_{i|j} of every (post i, pre j) pair, (batch, n_post, n_pre), by the
    factorised contraction (materialises the pairs: for inspection and small networks; the
    learning rule itself never forms this tensor)."""
    dtype = torch.float64 if pre.dtype == torch.float64 else torch.float32
    u = PSPTrace(tau_m, tau_s)(pre.to(dtype))
    a = post_spike_weights(post, tau_m=tau_m, dtype=dtype)
    return torch.einsum("bti,btj->bij", a, u)
