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

A is nonzero only at post spikes (0.5-2.5% of the entries in the MNIST runs), so the
code keeps it as a *spike list*, per block of steps: the block's post spikes sorted by
(neuron i, example b, step t), each with its weight :math:`A_i(t)` (its next spike is the next
entry of the list when that is the same (i, b), else the first spike after the block; one
backward pass over the blocks carries those). A contraction with A is then a weighted sum
of the trace rows :math:`u(b, t)` at the post spikes, one bag per neuron
(``torch.nn.functional.embedding_bag``): time proportional to the number of post spikes, not
to batch x steps x neurons.

The spec allows cutting the presynaptic window at :math:`4\tau_m`; these sums are exact,
without the cut (the traces hold every earlier spike).

Reference timing (``t_ref`` given; the authors' ``d_Spiking_accumulate_effect``,
``common/cuBase.cu``). Their S-PSP shifts every presynaptic spike by the refractory period
(:math:`s = t_i^f - t_j^g - T_{ref}`) and restarts the reset clock at :math:`t_i^{f-1} +
T_{ref}` (the membrane is held at 0 for :math:`T_{ref}` steps). The derivation above holds with
the delayed trace :math:`u'_j(t) = u_j(t - T_{ref})` and reset time :math:`t_i^{f-1} + T_{ref}`:

.. math::
    e_{i|j}^{(f)} = u_j(t_i^f - T_{ref}) - e^{-(t_i^f - t_i^{f-1} - T_{ref})/\tau_m}\,
    u_j(t_i^{f-1}),

so each post spike carries two weights, 1 on the delayed trace and
:math:`-e^{-(t^{\text{next}} - t - T_{ref})/\tau_m}` on the undelayed one
(:func:`post_spike_lists`; :class:`DelayedRows` puts the block's trace behind the previous
block's last :math:`T_{ref}` rows, so that row t is :math:`u(t - T_{ref})` and row
:math:`t + T_{ref}` is :math:`u(t)`). Their first
spike's reset clock starts at step 1, where the delayed trace is still 0: the same as no
reset. Not reproduced: their window cut at :math:`4\tau_m` before each post spike (a
presynaptic spike older than 256 steps adds at most :math:`c\,e^{-254/64} \approx 0.02`, and
only when the post neuron was silent for as long).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from creditlab.spiking import TAU_M, TAU_S, PSPTrace, spike_positions, time_major

SpikeList = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""(pair, t, a): post spikes of a block, pair = i * batch + b ascending, t the step within
the block (ascending within a pair), a = A_i(t)"""


def spikes_by_train(chunk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A block's spikes, time-major (steps, batch, n), as (pair, t) sorted by train pair =
    i * batch + b, then by step t within the block."""
    flat = spike_positions(chunk.permute(2, 1, 0))  # (i, b, t) order
    return flat // chunk.shape[0], flat % chunk.shape[0]


def post_spike_lists(
    spikes: torch.Tensor,
    block: int,
    tau_m: float = TAU_M,
    dtype: torch.dtype = torch.float32,
    t_ref: int | None = None,
    found: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> list[SpikeList]:
    """The post spikes of time-major trains (steps, batch, n), block by block of ``block``
    steps, with their weights A_i(t) = 1 - exp(-(t_next - t)/tau_m) (1 when no spike
    follows): one pass over the blocks from the last, vectorised over the spikes.

    ``t_ref`` given: the reference code's timing (module docstring, "Reference timing"):
    every spike has two entries, weight 1 at row t of :class:`DelayedRows`' output (the
    trace t_ref steps earlier) and -exp(-(t_next - t - t_ref)/tau_m) (0 when no spike
    follows) at row t + t_ref (the trace at t).

    ``found``: the blocks' :func:`spikes_by_train` lists, in order, when the forward pass
    already found them (the same blocks); else they are found here."""
    steps, batch, n = spikes.shape
    following = torch.full((n * batch,), float("inf"), dtype=torch.float64, device=spikes.device)
    out: list[SpikeList] = []
    for t0 in reversed(range(0, steps, block)):
        if found is not None:
            pair, t = found[t0 // block]
        else:
            pair, t = spikes_by_train(spikes[t0 : t0 + block])
        same = pair[1:] == pair[:-1]  # the next entry is this train's next spike
        t_next = following[pair] - t0
        t_next[:-1] = torch.where(same, t[1:].to(t_next.dtype), t_next[:-1])
        first = torch.ones_like(pair, dtype=torch.bool)
        first[1:] = ~same
        following[pair[first]] = (t0 + t[first]).to(following.dtype)
        if t_ref is None:
            a = -torch.expm1(-(t_next - t) / tau_m)
            out.append((pair, t, a.to(dtype)))
            continue
        reset = -torch.exp(-(t_next - t - t_ref) / tau_m)
        a = torch.stack([torch.ones_like(reset), reset], 1).flatten()
        out.append(
            (
                pair.repeat_interleave(2),
                torch.stack([t, t + t_ref], 1).flatten(),
                a.to(dtype),
            )
        )
    return out[::-1]


class DelayedRows:
    """Block by block, the previous block's last ``delay`` trace rows (zero before the first
    step) followed by the block's L time-major rows: (delay + L, batch, n), row t the trace
    ``delay`` steps before the block's step t, row t + delay the trace at t. With ``delay``
    None the trace alone."""

    def __init__(self, delay: int | None):
        self.delay, self.tail = delay, None

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        if self.delay is None:
            return u
        if self.tail is None:
            self.tail = u.new_zeros(self.delay, *u.shape[1:])
        joined = torch.cat([self.tail, u])
        self.tail = joined[len(joined) - self.delay :]
        return joined


def on_grid(spike_list: SpikeList, shape: tuple[int, int, int]) -> torch.Tensor:
    """A spike list's weights as a dense time-major (steps, batch, n) tensor."""
    pair, t, a = spike_list
    steps, batch, n = shape
    grid = torch.zeros(steps, batch, n, dtype=a.dtype, device=a.device)
    grid[t, pair % batch, pair // batch] = a
    return grid


def bag_sum(
    rows: torch.Tensor, table: torch.Tensor, bags: torch.Tensor, n_bags: int, weights
) -> torch.Tensor:
    """out[k] = sum over entries e with bags[e] = k of weights[e] * table[rows[e]]; ``bags``
    ascending. (n_bags, table columns)."""
    offsets = torch.searchsorted(bags, torch.arange(n_bags, device=bags.device))
    return F.embedding_bag(rows, table, offsets, mode="sum", per_sample_weights=weights)


def post_spike_weights(
    spikes: torch.Tensor, tau_m: float = TAU_M, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """A_i(t) = spike_i(t) (1 - exp(-(t_next - t)/tau_m)) of post trains (batch, steps, n),
    dense, same shape (for inspection; the learning rule keeps the spike lists)."""
    trains = time_major(spikes)
    (spike_list,) = post_spike_lists(trains, trains.shape[0], tau_m, dtype)
    return on_grid(spike_list, trains.shape).transpose(0, 1)


def spike_train_psp(
    pre: torch.Tensor,
    post: torch.Tensor,
    tau_m: float = TAU_M,
    tau_s: float = TAU_S,
    t_ref: int | None = None,
) -> torch.Tensor:
    """The S-PSP e_{i|j} of every (post i, pre j) pair, (batch, n_post, n_pre), by the
    factorised contraction: one bag per (i, b) over the trace rows at i's spikes (materialises
    the pairs: for inspection and small layers; the weight gradient never forms them).
    ``t_ref`` given: the reference code's timing (module docstring)."""
    dtype = torch.float64 if pre.dtype == torch.float64 else torch.float32
    trains = time_major(post)
    steps, batch, n_post = trains.shape
    u = time_major(PSPTrace(tau_m, tau_s)(time_major(pre).to(dtype).transpose(0, 1)))
    u = DelayedRows(t_ref)(u)
    (spike_list,) = post_spike_lists(trains, steps, tau_m, dtype, t_ref)
    return spsp_block(spike_list, u.reshape(len(u) * batch, -1), batch, n_post).transpose(0, 1)


def spsp_block(spike_list: SpikeList, u_rows: torch.Tensor, batch: int, n_post: int):
    """One block's share of e_{i|j}, (n_post, batch, n_pre), from its spike list and its
    trace rows u (steps * batch, n_pre) (row t * batch + b)."""
    pair, t, a = spike_list
    rows = t * batch + pair % batch
    e = bag_sum(rows, u_rows, pair, n_post * batch, a)
    return e.view(n_post, batch, -1)
