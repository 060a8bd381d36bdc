r"""The continuous-time microcircuit, simulated in blocks of K Euler steps: the same
trajectory as :meth:`Microcircuit.step` one step at a time, without rewriting every weight
at every step.

**Why the step-by-step loop is slow.** Every step of 0.1 ms moves every plastic weight and
its low-pass filter (``W += dt Delta``, ``Delta += dt/tau_w (eta P - Delta)``, with
``P`` the outer product of Eqs. 7-10). For the 784-500-500-10 network that is 1.4 M
synapses read and written several times per step, about 50 MB of memory traffic, where the
dynamics need two matrix-vector products' worth of arithmetic.

**The reformulation.** For one weight matrix and B circuits, the filtered rule is the linear
recursion :math:`W_{s+1} = W_s + dt\, D_s`, :math:`D_{s+1} = a D_s + w Q_s` with
:math:`w = dt/\tau_w`, :math:`a = 1 - w` and :math:`Q_s = \eta E_s^T X_s` (rows of
:math:`E_s`: the circuits' postsynaptic factors of Eqs. 7-10; rows of :math:`X_s`: their
presynaptic rates; rank B). In the variables :math:`Z = W + \tau_w D` (the weight the
filter is heading for, a plain accumulator :math:`Z_{s+1} = Z_s + dt\, Q_s`) and
:math:`D`, the recursion solved from a block start :math:`(Z_0, D_0)` is

.. math::

    W_s = Z_0 - \tau_w a^s D_0 + dt \sum_{j<s} (1 - a^{s-1-j})\, Q_j ,

so the potentials a step needs are :math:`W_s x = Z_0 x - \tau_w a^s (D_0 x) +
\sum_j \gamma_{sj}\, \eta e_j (x_j \cdot x)`: products with two matrices that stay fixed for
the K steps of a block, plus a low-rank correction from a buffer of the block's presynaptic
rates and (eta-scaled) postsynaptic factors. After the block the buffer is folded in with two
matrix products, :math:`Z \mathrel{+}= dt\, E^T X` and
:math:`D \leftarrow a^K D + (\delta \circ E)^T X` with :math:`\delta_j = w a^{K-1-j}`.
Nothing is truncated: the formula is the recursion solved, so the simulation equals the
step-by-step loop up to floating-point rounding (sums are associated differently; the tests
bound the difference). Without the filter (``tau_w = 0``) the same holds with
:math:`W_s = W_0 + dt \sum_{j<s} Q_j`.

The weights are grouped by presynaptic population (``W_PP_up.1`` and ``W_IP.0`` both read
the rates of layer 1), so that one buffer row per circuit and step serves the whole group.

**The first layer.** During :meth:`Microcircuit.run` the input rates relax to the pattern,
:math:`r_0(\tau) = x + c^\tau (r_0(0) - x)` with :math:`c = 1 - dt/\tau_{in}`, so they stay in
the span of the rows of :math:`\Phi = [x; r_0(0) - x]` (2B vectors). The first layer's
weights are then only ever seen through :math:`Z \Phi^T` and :math:`D \Phi^T`, which obey the
same recursion projected on that span (inner products of presynaptic vectors become the
Gram matrix :math:`\Phi \Phi^T`); the full matrices are updated once, at the end of the run,
by a rank-2B product. A 784-wide matrix-vector product per step becomes a 2B-wide one.

**What bounds the speed.** Per step the blocked simulation still reads :math:`Z_0` and
:math:`D_0` of every hidden-layer synapse. Both modes of the filter reach the next step's
potentials, weighted 1 and :math:`a^s`, which change from step to step, so no product over
several steps can replace either, and :math:`D_0` is full rank (a buffer of its history
would need about :math:`(\tau_w / dt) \ln(1/\epsilon) \approx 5000` steps). For
784-500-500-10 in float32 that is 8.2 MB per step (plus 0.5 MB for the folds), against
about 56 MB for the step-by-step loop, so one circuit is memory-bound at
``8.7 MB / bandwidth`` per step: on a core that streams 15-27 GB/s from beyond its 2 MB L2
that is 0.3-0.6 ms, i.e. 1.5-3 patterns of 100 ms per second (see
``benchmarks/dendritic_simulation.py``, which measures the rates it quotes). Only without the
filter (``tau_w = 0``) would :math:`Z_0` alone do. With many circuits the products become
matrix products and both simulations are bound by arithmetic, at about the same speed.

Everything runs under ``torch.no_grad()`` and on the circuit's device and dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn import functional as F

from creditlab.methods.dendritic.equations import (
    apical_error,
    interneuron_current,
    leaky_step,
    prediction_error,
    pyramidal_current,
    somatic_noise,
)

#: A :class:`~creditlab.methods.dendritic.microcircuit.Microcircuit` (this module sits below
#: it: the microcircuit calls :func:`simulate`, nothing here imports the microcircuit).
Microcircuit = Any

#: :meth:`Microcircuit.run` simulates in blocks below this many circuits (measured: 4x the
#: step loop for one circuit of 784-500-500-10, 1.6x for 16, 1.1x for 32, 0.7x for 64).
BLOCKED_BELOW = 32

#: Steps per block with one circuit; with B circuits ``max(2, DEFAULT_BLOCK // B)`` (the
#: buffer holds K x B rows per group and its cost per step grows with it).
DEFAULT_BLOCK = 32


@torch.no_grad()
def simulate(
    net: Microcircuit,
    x: torch.Tensor,
    u_target: torch.Tensor | None,
    n_steps: int,
    learn: bool = True,
    block: int | None = None,
) -> None:
    """Advance ``net`` by ``n_steps`` Euler steps with the patterns ``x`` (batch, n_input)
    and target voltages ``u_target`` (or None) held fixed: what ``n_steps`` calls of
    :meth:`Microcircuit.step` do, in blocks of ``block`` steps (see the module docstring)."""
    if n_steps > 0:
        _BlockedRun(net, x, u_target, learn, block).run(n_steps)


@dataclass
class _Weight:
    name: str  # e.g. "W_PP_up.1"
    rows: slice  # its rows in the packed dendritic potentials V (see _Layout)
    source: slice | None  # its presynaptic columns in the packed rates; None: the input
    eta: float

    @property
    def n_rows(self) -> int:
        return self.rows.stop - self.rows.start


@dataclass
class _Group:
    """Weights that read one presynaptic population, stacked row-wise: their plasticity
    adds one buffer row per circuit and step. ``ZT``/``DT``: ``Z^T`` and ``D^T`` (columns:
    the group's rows), or ``W^T`` alone when the group does not learn (or tau_w = 0)."""

    weights: list[_Weight]
    source: slice | None
    plastic: bool
    y: slice = field(default_factory=lambda: slice(0, 0))  # its rows in the outputs Y
    ZT: Any = None
    DT: Any = None

    @property
    def n_rows(self) -> int:
        return sum(w.n_rows for w in self.weights)


class _Layout:
    """Where every unit, potential and weight lives in the packed tensors.

    Units (somata, rates, drives): ``[pyramidal layers 1..N | interneuron layers 1..N-1]``,
    the order of :meth:`Microcircuit.step`'s noise. Dendritic potentials
    ``V = [v_B of every layer | v^I of every interneuron layer | top-down W^PP_{k,k+1} r_{k+1}
    of each hidden layer | W^PI_k r^I_k of each hidden layer]``.
    """

    def __init__(self, net: Microcircuit):
        n, N = net.sizes, net.n_layers
        self.pyr = [slice(sum(n[1 : l + 1]), sum(n[1 : l + 2])) for l in range(N)]
        self.n_P = self.pyr[-1].stop
        self.n_H = self.pyr[-1].start  # hidden pyramidal units: layers 1..N-1
        self.inter = [
            slice(self.n_P + sum(n[2 : l + 2]), self.n_P + sum(n[2 : l + 3])) for l in range(N - 1)
        ]
        self.n_U = self.n_P + sum(n[2:])
        self.n_V = self.n_U + 2 * self.n_H
        self.n_err = self.n_U + self.n_H  # potentials compared with a rate (Eqs. 7, 8, 10)

        def top_down(l: int) -> slice:
            return slice(self.n_U + self.pyr[l].start, self.n_U + self.pyr[l].stop)

        def lateral(l: int) -> slice:
            return slice(
                self.n_U + self.n_H + self.pyr[l].start, self.n_U + self.n_H + self.pyr[l].stop
            )

        self.weights = [
            _Weight(f"W_PP_up.{l}", self.pyr[l], None if l == 0 else self.pyr[l - 1], net.eta_up[l])
            for l in range(N)
        ]
        for l in range(N - 1):
            self.weights += [
                _Weight(f"W_IP.{l}", self.inter[l], self.pyr[l], net.eta_IP),
                _Weight(f"W_PP_down.{l}", top_down(l), self.pyr[l + 1], net.eta_down),
                _Weight(f"W_PI.{l}", lateral(l), self.inter[l], net.eta_PI),
            ]


class _BlockedRun:
    """One call of :meth:`Microcircuit.run`: pack, simulate block by block, unpack.

    Buffers (B rows each): ``soma`` (u, or with latent equilibrium I/G) and ``Y``, the
    dendritic potentials in group order (the plastic groups' Eq. 9 rows last, so that the
    rows compared with a rate by Eqs. 7, 8, 10 come first); ``V``, the same potentials in the
    order of :class:`_Layout`; ``errors``: B rows for ``D_0 x`` of the current step, then the
    eta-scaled postsynaptic factors of every step of the block (Y order); ``rates``: the
    presynaptic rates of every step of the block. The somata and the postsynaptic factors
    come from the functions of :mod:`~creditlab.methods.dendritic.equations`, the ones
    :meth:`Microcircuit.step` calls.
    """

    def __init__(
        self,
        net: Microcircuit,
        x: torch.Tensor,
        u_target: torch.Tensor | None,
        learn: bool,
        block: int | None,
    ):
        self.net, g, dt = net, net.g, net.dt
        self.B = B = net.batch_size
        self.dev = dev = {"dtype": net.dtype, "device": net.device}
        self.lay = lay = _Layout(net)
        self.K = K = max(1, block) if block else max(2, DEFAULT_BLOCK // B)
        self.filtered = net.tau_w > 0
        self.w = dt / net.tau_w if self.filtered else 0.0  # the filter's weight per step
        self.a = 1.0 - self.w
        self._group_weights(learn)
        n_U, n_P, n_H, n_V, n_err = lay.n_U, lay.n_P, lay.n_H, lay.n_V, lay.n_err

        # --- state and buffers, packed -------------------------------------------------------
        self.soma = torch.zeros(B, n_U, **dev)  # u, or with latent equilibrium I / G
        self.Y = torch.zeros(B, n_V, **dev)
        u = torch.cat(net.somatic_potential + net.interneuron_potential, 1)
        self.u = u if net.prospective else self.soma.copy_(u)
        self.rates = torch.zeros(K + 1, B, n_U, **dev)
        self.rates[0] = torch.cat(net.rate + net.interneuron_rate, 1)
        self.errors = torch.zeros((K + 1) * B, n_V, **dev)
        self.V = torch.zeros(B, n_V, **dev)
        self.current = torch.zeros(B, n_U, **dev)  # the somatic input currents I
        self.v_A = torch.zeros(B, n_H, **dev)
        self.sel = torch.zeros(B, n_err, **dev)
        self.x = x.to(**dev).flatten(1).expand(B, -1)  # one pattern per circuit
        self.r0 = net.input_rate.clone()
        self._bias_vectors()

        # --- Eqs. 1-2 as du/dt = I - G u ------------------------------------------------------
        self.u_target = None if u_target is None else u_target.to(**dev)
        G = torch.empty(n_U, dtype=torch.float64, device=net.device)
        G[:n_H] = g.pyramidal_total(output=False)
        G[n_H:n_P] = g.pyramidal_total(output=True, nudged=u_target is not None)
        G[n_P:] = g.interneuron_total
        self.G64, self.G = G, G.to(net.dtype)
        V, current, partners = self.V, self.current, slice(net.sizes[1], n_P)
        self.v_B_hidden, self.v_B_out, self.v_I = V[:, :n_H], V[:, n_H:n_P], V[:, n_P:n_U]
        self.v_td, self.v_pi = V[:, n_U : n_U + n_H], V[:, n_U + n_H :]
        self.I_hidden, self.I_out, self.I_inter = (
            current[:, :n_H],
            current[:, n_H:n_P],
            current[:, n_P:],
        )
        # the interneurons' partners (layers 2..N): their somata u, or I / G
        self.partners = self.soma[:, partners] if net.prospective else self.u[:, partners]
        self.Y_err = self.Y[:, :n_err]  # the potentials of Eqs. 7, 8, 10 in Y order
        self._input_span()
        self._step_views()

    # --- packing ----------------------------------------------------------------------------
    def _group_weights(self, learn: bool) -> None:
        net, lay, dev = self.net, self.lay, self.dev
        weights, filters = net.weights(), net.weight_filter
        groups: dict[tuple[Any, bool], _Group] = {}
        for wt in lay.weights:
            plastic = learn and wt.eta != 0.0
            key = (None if wt.source is None else (wt.source.start, wt.source.stop), plastic)
            groups.setdefault(key, _Group([], wt.source, plastic)).weights.append(wt)

        def kind(grp: _Group) -> int:  # the input first, interneuron sources (Eq. 9) last
            return 0 if grp.source is None else 1 + (grp.source.start >= lay.n_P)

        self.groups = sorted(groups.values(), key=kind)
        self.first = self.groups[0]  # the first layer's basal weights, read from the input
        y_of_v, start = torch.empty(lay.n_V, dtype=torch.long), 0
        eta_y = torch.zeros(lay.n_V, dtype=torch.float64)
        for grp in self.groups:
            grp.y = slice(start, start + grp.n_rows)
            for wt in grp.weights:
                y_of_v[wt.rows] = torch.arange(start, start + wt.n_rows)
                eta_y[start : start + wt.n_rows] = wt.eta if grp.plastic else 0.0
                start += wt.n_rows
            if grp is self.first:
                continue  # seen through its input span only (see _input_span)
            W = torch.cat([weights[wt.name] for wt in grp.weights])
            if grp.plastic and self.filtered:
                D = torch.cat([filters[wt.name] for wt in grp.weights])
                grp.ZT, grp.DT = (W + net.tau_w * D).T.contiguous(), D.T.contiguous()
            else:
                grp.ZT = W.T.contiguous()
        v_of_y = torch.argsort(y_of_v)
        # the last rows of Y are those of Eq. 9 (W^PI r^I), in layer order as in V
        assert torch.equal(v_of_y[lay.n_err :], torch.arange(lay.n_err, lay.n_V))
        self.v_from_y = y_of_v.to(net.device)  # V = Y[:, v_from_y]
        self.eta_y = eta_y.to(**dev)
        # the rate and the attenuation each Y row's potential is compared with (Eqs. 7, 8, 10)
        rate_of_v = torch.cat([torch.arange(lay.n_U), torch.arange(lay.n_H)])
        attenuation_v = torch.cat(
            [
                torch.full((n,), c, dtype=torch.float64)
                for n, c in zip(net.sizes[1:], net.attenuation, strict=True)
            ]
            + [torch.full((lay.n_U - lay.n_P,), net.g.dendrite_attenuation, dtype=torch.float64)]
            + [torch.ones(lay.n_H, dtype=torch.float64)]
        )
        self.rate_of_y = rate_of_v[v_of_y[: lay.n_err]].to(net.device)
        self.attenuation_y = attenuation_v[v_of_y[: lay.n_err]].to(**dev)
        self.plastic = [g for g in self.groups[1:] if g.plastic]
        self.static = [g for g in self.groups[1:] if not g.plastic]
        self.any_plastic = any(g.plastic for g in self.groups)

    def _bias_vectors(self) -> None:
        """Biases are vectors: kept in Y order (zero on the rows without one) and learning step
        by step, exactly as in Microcircuit.step, from the eta-scaled factors of Eqs. 7-8."""
        net, lay, dev = self.net, self.lay, self.dev
        self.bias = net.bias
        if not net.bias:
            return
        N = net.n_layers
        self.bias_names = [f"b_PP_up.{l}" for l in range(N)] + [f"b_IP.{l}" for l in range(N - 1)]
        weights, filters = net.weights(), net.weight_filter
        rows = self.v_from_y[: lay.n_U]  # v_B and v^I rows
        self.b_y = torch.zeros(lay.n_V, **dev)
        self.b_y[rows] = torch.cat([weights[k] for k in self.bias_names])
        self.b_filter_y = torch.zeros(lay.n_V, **dev)
        self.b_filter_y[rows] = torch.cat([filters[k] for k in self.bias_names])
        moves = torch.zeros(lay.n_V, **dev)
        moves[rows] = (self.eta_y[rows] != 0).to(net.dtype)  # frozen ones and filters stay
        self.b_dt = moves * net.dt
        self.b_w = moves * self.w

    # --- closed-form coefficients -----------------------------------------------------------
    def _coefficients(self) -> torch.Tensor:
        """Row s: the weights of ``[D_0 x | x_j . x for j < K]`` in step s's potentials,
        ``beta_s = -tau_w a^s`` and ``gamma_sj = dt (1 - a^{s-1-j})`` (0 where step j's
        outer product has not reached W_s yet), each repeated over the B circuits."""
        K, B, dt = self.K, self.B, self.net.dt
        s = torch.arange(K, dtype=torch.float64)[:, None]
        j = torch.arange(K, dtype=torch.float64)[None, :]
        if self.filtered:
            beta = -self.net.tau_w * _power(self.a, s)
            one_minus = _one_minus_power(self.a, (s - 1 - j).clamp(min=0))
            gamma = torch.where(j < s - 1, dt * one_minus, 0.0)
        else:  # W_s = W_0 + dt sum_{j<s} Q_j
            beta = torch.zeros(K, 1, dtype=torch.float64)
            gamma = torch.where(j < s, dt, 0.0)
        return torch.cat([beta.expand(K, B), gamma.repeat_interleave(B, 1)], 1)

    def _history_length(self, s: int) -> int:
        """Buffer rows (steps x circuits) with a non-zero weight at step s."""
        return (max(s - 1, 0) if self.filtered else s) * self.B

    def _fold_weights(self, n: int) -> tuple[float, torch.Tensor]:
        """``a^n`` and ``delta_j = w a^{n-1-j}`` per buffer row, for folding n steps."""
        j = torch.arange(n, dtype=torch.float64)
        delta = self.w * _power(self.a, n - 1 - j)
        return self.a**n, delta.repeat_interleave(self.B)[:, None].to(**self.dev)

    # --- the first layer, on the span of its input ------------------------------------------
    def _input_span(self) -> None:
        net, B, dev, first = self.net, self.B, self.dev, self.first
        name = first.weights[0].name
        self.c_in = 1 - net.dt / net.tau_in
        self.basis = torch.cat([self.x, self.r0 - self.x])  # (2B, n_0): r_0(t) in its row span
        self.gram = self.basis @ self.basis.T
        self.span_Z = F.linear(self.basis, net.weights()[name])  # (Z Phi^T)^T: (2B, n_1)
        if first.plastic and self.filtered:
            self.span_D = F.linear(self.basis, net.weight_filter[name])
            self.span_Z += net.tau_w * self.span_D
        n1, K = first.n_rows, self.K
        if first.plastic:
            self.span_sum = torch.zeros(2 * B, n1, **dev)  # sum_j Theta_j^T E_j
            self.span_decayed = torch.zeros(2 * B, n1, **dev)  # sum_j w a^{n-1-j} Theta_j^T E_j
        width = 4 * B if first.plastic and self.filtered else 2 * B
        self.in_dense = torch.zeros(K * B, width, **dev)
        self.in_matrix = torch.zeros(width, n1, **dev)
        self.in_lowrank = torch.zeros(K * B, K * B, **dev)

    def _theta(self, tau0: int, n: int) -> torch.Tensor:
        """Coordinates of the input rates of steps tau0 .. tau0+n-1 on the rows of
        ``basis``, (n B, 2B): ``r_0(tau) = x + c^tau (r_0(0) - x)``."""
        B = self.B
        decay = torch.tensor([self.c_in ** (tau0 + k) for k in range(n)], dtype=torch.float64)
        eye = torch.eye(B, dtype=torch.float64)
        theta = torch.cat([eye.expand(n, B, B), decay[:, None, None] * eye], 2)
        return theta.reshape(n * B, 2 * B).to(**self.dev)

    def _input_block(self, tau0: int, n: int) -> None:
        """The first layer's tables for a block: at step s its basal potentials are
        ``in_dense[s] @ in_matrix + in_lowrank[s] @ E``."""
        first, B, nB = self.first, self.B, n * self.B
        self.theta = theta = self._theta(tau0, n)
        self.in_dense[:nB, : 2 * B] = theta
        self.in_matrix[: 2 * B] = self.span_Z
        if first.plastic and self.filtered:
            beta = self.coefficients[:n, :1].repeat_interleave(B, 0)  # beta_s per row
            self.in_dense[:nB, 2 * B :] = beta * theta
            self.in_matrix[2 * B :] = self.span_D
        if first.plastic:  # x_j . x_s = theta_s Gram theta_j^T
            gamma = self.coefficients[:n, B : B + nB].repeat_interleave(B, 0)
            self.in_lowrank[:nB, :nB] = (theta @ self.gram @ theta.T) * gamma

    # --- views used at every step (made once per run) -------------------------------------
    def _step_views(self) -> None:
        B, K, lay = self.B, self.K, self.lay
        self.coefficients = self._coefficients().to(**self.dev)  # (K, B + K B)
        rates_flat = self.rates.view(-1, lay.n_U)
        # per plastic group: [identity | x . x_j], times the coefficients of step s
        self.h = torch.zeros(len(self.plastic), B, B + K * B, **self.dev)
        self.h[:, :, :B] = torch.eye(B, **self.dev)
        self.c = torch.zeros_like(self.h)
        first, Y = self.first, self.Y
        self.steps = []
        for s in range(K):
            m = self._history_length(s)
            r, E = self.rates[s], self.errors[B * (1 + s) : B * (2 + s)]
            step: dict[str, Any] = {
                "r": r,
                "r_next": self.rates[s + 1],
                "E": E,
                "E_phi": E[:, : lay.n_err],
                "E_pi": E[:, lay.n_err :],
                "h": self.h[:, :, : B + m],
                "c": self.c[:, :, : B + m],
                "coef": self.coefficients[s, : B + m],
                "in_dense": self.in_dense[s * B : (s + 1) * B],
                "y_in": Y[:, first.y],
                "in_lowrank": (
                    (self.in_lowrank[s * B : (s + 1) * B, :m], self.errors[B : B + m, first.y])
                    if first.plastic and m
                    else None
                ),
                "dense": [
                    (
                        r[:, grp.source],
                        grp.ZT,
                        Y[:, grp.y],
                        grp.DT,
                        self.errors[:B, grp.y],
                        rates_flat[:m, grp.source].T if m else None,
                        self.h[k, :, B : B + m],
                    )
                    for k, grp in enumerate(self.plastic)
                ],
                "lowrank": [
                    (Y[:, grp.y], self.c[k, :, : B + m], self.errors[: B + m, grp.y])
                    for k, grp in enumerate(self.plastic)
                ],
                "static": [(r[:, grp.source], grp.ZT, Y[:, grp.y]) for grp in self.static],
            }
            self.steps.append(step)

    # --- simulation -------------------------------------------------------------------------
    def run(self, n_steps: int) -> None:
        done = 0
        while done < n_steps:
            n = min(self.K, n_steps - done)
            self._input_block(done, n)
            for s in range(n):
                self._step(self.steps[s])
            self._fold(n)
            self.rates[0].copy_(self.rates[n])
            done += n
        self._finish(n_steps)

    def _step(self, st: dict[str, Any]) -> None:
        """One Euler step: the dendritic potentials (Eqs. 3-5) from the block's fixed
        matrices and buffer, then the somata (Eqs. 1-2), rates and plasticity factors."""
        net = self.net
        # Eqs. 3-5: v = Z_0 x + beta_s D_0 x + sum_j gamma_sj e_j (x_j . x)
        torch.mm(st["in_dense"], self.in_matrix, out=st["y_in"])  # the first layer, on its span
        if st["in_lowrank"] is not None:
            st["y_in"].addmm_(*st["in_lowrank"])
        for x, ZT, y, DT, Dx, history, h in st["dense"]:
            if history is not None:
                torch.mm(x, history, out=h)
            torch.mm(x, ZT, out=y)
            if DT is not None:
                torch.mm(x, DT, out=Dx)
        if self.plastic:
            torch.mul(st["h"], st["coef"], out=st["c"])
        for y, c, E in st["lowrank"]:
            y.addmm_(c, E)  # [beta_s, gamma_sj (x_j . x)] @ [D_0 x; e_j]
        for x, WT, y in st["static"]:
            torch.mm(x, WT, out=y)
        if self.bias:
            self.Y.add_(self.b_y)
        self._somata(st)
        net.t += net.dt

    def _somata(self, st: dict[str, Any]) -> None:
        """Eqs. 1-2 and the plasticity factors of Eqs. 7-10, through the functions of
        :mod:`~creditlab.methods.dendritic.equations` that :meth:`Microcircuit.step` calls."""
        net, g, dt, n_P = self.net, self.net.g, self.net.dt, self.lay.n_P
        torch.index_select(self.Y, 1, self.v_from_y, out=self.V)
        torch.add(self.v_td, self.v_pi, out=self.v_A)  # Eq. 4
        pyramidal_current(g, self.v_B_hidden, self.v_A, out=self.I_hidden)  # Eq. 1
        pyramidal_current(g, self.v_B_out, u_target=self.u_target, out=self.I_out)
        if net.prospective:  # latent equilibrium: the partners' I / G, not their u
            torch.div(self.current[:, :n_P], self.G[:n_P], out=self.soma[:, :n_P])
        interneuron_current(g, self.v_I, self.partners, out=self.I_inter)  # Eq. 2
        leaky_step(self.u, self.current, self.G64, dt)
        if net.noise > 0:  # the same draws as Microcircuit.step
            self.u.add_(
                somatic_noise(
                    self.B, self.lay.n_U, net.noise, dt, dtype=net.dtype, device=net.device
                )
            )
        if net.prospective:  # latent equilibrium: the rates are phi(I / G)
            torch.div(self.I_inter, self.G[n_P:], out=self.soma[:, n_P:])
        st["r_next"].copy_(net.phi(self.soma))
        if not self.any_plastic:
            return
        rate = st["r_next"] if net.prospective else st["r"]  # the rates plasticity compares
        torch.index_select(rate, 1, self.rate_of_y, out=self.sel)
        prediction_error(net.phi, self.sel, self.Y_err, self.attenuation_y, out=st["E_phi"])
        apical_error(self.v_A, out=st["E_pi"])  # Eqs. 7, 8, 10 above, Eq. 9 here
        st["E"].mul_(self.eta_y)
        if self.bias:  # b += dt Delta_b; Delta_b += w (eta P_b - Delta_b), or b += dt eta P_b
            P = st["E"].sum(0)
            if self.filtered:
                self.b_y.addcmul_(self.b_filter_y, self.b_dt)
                self.b_filter_y.addcmul_(P - self.b_filter_y, self.b_w)
            else:
                self.b_y.addcmul_(P, self.b_dt)

    # --- folding a block's buffer into the matrices -----------------------------------------
    def _fold(self, n: int) -> None:
        """The recursion solved over n steps: ``Z += dt E^T X``, ``D = a^n D + (delta E)^T X``."""
        if not self.any_plastic:
            return
        B, dt = self.B, self.net.dt
        decay, delta = self._fold_weights(n)
        X_all = self.rates.view(-1, self.lay.n_U)[: n * B]
        E_all = self.errors[B : B + n * B]
        if self.first.plastic:  # the first layer: on its span now, the full matrix at the end
            E = E_all[:, self.first.y]
            U1 = self.theta.T @ E
            self.span_sum += U1
            self.span_Z += dt * (self.gram @ U1)
            if self.filtered:
                U2 = self.theta.T @ (delta * E)
                self.span_decayed.mul_(decay).add_(U2)
                self.span_D.mul_(decay).add_(self.gram @ U2)
        for grp in self.plastic:
            X, E = X_all[:, grp.source], E_all[:, grp.y]
            grp.ZT.addmm_(X.T, E, alpha=dt)
            if self.filtered:
                grp.DT.addmm_(X.T, delta * E, beta=decay)

    # --- back into the Microcircuit -----------------------------------------------------------
    def _finish(self, n_steps: int) -> None:
        net, lay, tau_w = self.net, self.lay, self.net.tau_w
        weights, filters = net.weights(), net.weight_filter
        if self.first.plastic:  # W_n = W_0 + tau_w (1 - a^n) D_0 + (dt S - tau_w T)^T Phi
            name = self.first.weights[0].name
            W = weights[name]
            if self.filtered:
                D, decay = filters[name], self.a**n_steps
                W.add_(D, alpha=tau_w * (1 - decay))
                W.addmm_((net.dt * self.span_sum - tau_w * self.span_decayed).T, self.basis)
                D.mul_(decay).addmm_(self.span_decayed.T, self.basis)
            else:
                W.addmm_(self.span_sum.T, self.basis, alpha=net.dt)
        for grp in self.plastic:
            W = grp.ZT.T - tau_w * grp.DT.T if self.filtered else grp.ZT.T
            start = 0
            for wt in grp.weights:
                weights[wt.name].copy_(W[start : start + wt.n_rows])
                if self.filtered:
                    filters[wt.name].copy_(grp.DT.T[start : start + wt.n_rows])
                start += wt.n_rows
        if self.bias:
            rows = self.v_from_y[: lay.n_U]
            b, b_filter = self.b_y[rows], self.b_filter_y[rows]
            start = 0
            for name in self.bias_names:
                size = len(weights[name])
                weights[name].copy_(b[start : start + size])
                filters[name].copy_(b_filter[start : start + size])
                start += size
        # the state after the last step, as Microcircuit.step leaves it
        pyr = [s.stop - s.start for s in lay.pyr]
        inter = [s.stop - s.start for s in lay.inter]

        def split(t: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
            return [p.clone() for p in t.split(sizes, 1)]

        u, r, v = self.u, self.rates[0], self.V
        net.somatic_potential = split(u[:, : lay.n_P], pyr)
        net.interneuron_potential = split(u[:, lay.n_P :], inter)
        net.rate = split(r[:, : lay.n_P], pyr)
        net.interneuron_rate = split(r[:, lay.n_P :], inter)
        net.basal_potential = split(v[:, : lay.n_P], pyr)
        net.interneuron_dendrite = split(v[:, lay.n_P : lay.n_U], inter)
        net.apical_potential = split(self.v_A, pyr[:-1])
        net.input_rate = self.x + self.c_in**n_steps * (self.r0 - self.x)


def _power(a: float, k: torch.Tensor | float) -> torch.Tensor:
    """``a ** k`` for integer-valued float64 ``k >= 0``."""
    return torch.pow(torch.tensor(a, dtype=torch.float64), k)


def _one_minus_power(a: float, k: torch.Tensor) -> torch.Tensor:
    """``1 - a ** k`` to full relative precision for small k (a close to 1)."""
    if a > 0:
        return -torch.expm1(k * math.log(a))
    return 1 - _power(a, k)
