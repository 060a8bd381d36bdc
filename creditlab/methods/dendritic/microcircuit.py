r"""The dendritic cortical microcircuit of Sacramento, Costa, Bengio & Senn (NeurIPS 2018):
multi-compartment pyramidal neurons and interneurons in continuous time, learning with
local dendritic plasticity, vectorised over a batch of independent circuits.

Layer :math:`k = 1 \dots N` holds pyramidal neurons with a soma :math:`u_k`, a basal
compartment :math:`v_{B,k}` and (below the output layer) an apical compartment
:math:`v_{A,k}`; layers :math:`k < N` also hold one interneuron per pyramidal neuron of
layer :math:`k+1`. Capacitances are 1 and resting potentials 0:

.. math::

    \dot u_k &= -g_{lk} u_k + g_B (v_{B,k} - u_k) + g_A (v_{A,k} - u_k) + \sigma \xi
        && \text{(Eq. 1)} \\
    \dot u^I_k &= -g_{lk} u^I_k + g_D (v^I_k - u^I_k) + g_{som} (u_{k+1} - u^I_k) + \sigma \xi
        && \text{(Eq. 2)} \\
    v_{B,k} &= W^{PP}_{k,k-1} \phi(u_{k-1}) && \text{(Eq. 3)} \\
    v_{A,k} &= W^{PP}_{k,k+1} \phi(u_{k+1}) + W^{PI}_k \phi(u^I_k) && \text{(Eq. 4)} \\
    v^I_k &= W^{IP}_k \phi(u_k) && \text{(Eq. 5)}

The output layer has no apical compartment; a target adds the teaching current
:math:`g_{som} (u^{trgt}_N - u_N)`. The input rates are the patterns low-pass filtered
with ``tau_in``. All four plasticity rules are on at all times (no phases):

.. math::

    \dot W^{PP}_{k,k-1} &\propto \eta^{PP} (\phi(u_k) - \phi(\hat v_{B,k}))\, r_{k-1}^T,
        \quad \hat v_{B,k} = \tfrac{g_B}{g_{lk} + g_B + g_A} v_{B,k} && \text{(Eq. 7)} \\
    \dot W^{IP}_k &\propto \eta^{IP} (\phi(u^I_k) - \phi(\hat v^I_k))\, r_k^T,
        \quad \hat v^I_k = \tfrac{g_D}{g_{lk} + g_D} v^I_k && \text{(Eq. 8)} \\
    \dot W^{PI}_k &\propto \eta^{PI} (v_{rest} - v_{A,k})\, (r^I_k)^T && \text{(Eq. 9)} \\
    \dot W^{PP}_{k,k+1} &\propto \eta^{down} (\phi(u_k) - \phi(\hat v_{TD,k}))\, r_{k+1}^T,
        \quad \hat v_{TD,k} = W^{PP}_{k,k+1} r_{k+1} && \text{(Eq. 10)}

(for the output layer :math:`g_A = 0` in Eq. 7). Each right-hand side :math:`\eta P` is
low-pass filtered before it moves the weight: :math:`\tau_w \dot\Delta = \eta P - \Delta`,
:math:`\dot W = \Delta`. With a batch of circuits, every circuit sees its own stream of
patterns and :math:`P` is the sum of the circuits' terms; the weights are shared.

Choices where the paper is not explicit (each is a constructor argument):

* Integration is explicit Euler(-Maruyama) on the whole state: every right-hand side is
  evaluated on the state at time t, including the weights (the weight update of step t
  acts from step t+1 on); the noise is :math:`\sigma \sqrt{dt}\, \mathcal N(0, 1)` per step.
  :meth:`~Microcircuit.step` takes one such step; :meth:`~Microcircuit.run` takes many in
  blocks that solve the linear recursion of the weights and their filters in closed form
  (:mod:`~creditlab.methods.dendritic.fast`): the same trajectory up to rounding, without
  rewriting every weight at every step.
* The interneuron's nudging current is current-based, :math:`g_{som}(u_{k+1} - u^I_k)`,
  like the output's teaching current (the paper also gives a conductance-based form).
* Eq. 10 compares with the unattenuated top-down prediction :math:`W^{PP}_{k,k+1} r_{k+1}`.
* Optional biases (``bias=True``) are synapses from a unit of constant rate 1 on the basal
  and interneuron dendrites and learn with Eqs. 7 and 8.
* ``prospective=True`` is *latent equilibrium* (Haider et al. 2021): neurons emit
  :math:`\phi(\breve u)` with the prospective voltage :math:`\breve u = u + \tau \dot u`,
  which for these leaky compartments is the instantaneous equilibrium
  :math:`\breve u = I / G` of the current input (G the total conductance); plasticity uses
  :math:`\phi(\breve u)` in place of :math:`\phi(u)`. The network then has no settling
  transient after a pattern switch (only the input filter remains), so plasticity is
  correct from the first step. The noise still drives :math:`u` but cancels out of
  :math:`\breve u` (which depends on the inputs only).

Everything runs under ``torch.no_grad()``: the rule computes its own updates; autograd is
used only by :func:`backprop_reference`, the comparison with backprop.

>>> import torch
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> net = Microcircuit([4, 5, 3], noise=0.0, dtype=torch.float64)
>>> net.self_predicting_()  # interneurons cancel the top-down input ...
>>> net.reset_state(batch_size=2)
>>> x = torch.rand(2, 4, dtype=torch.float64)
>>> net.run(x, duration=200.0, learn=False)
>>> float(net.apical_potential[0].abs().max()) < 1e-9  # ... so the apical compartment is silent
True
>>> u_target = torch.full((2, 3), 5.0, dtype=torch.float64)
>>> net.run(x, u_target, duration=50.0, learn=False)
>>> float(net.apical_potential[0].abs().max()) > 1e-2  # a target makes it carry an error
True
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch.nn import functional as F

from creditlab.methods.dendritic import fast
from creditlab.methods.dendritic.equations import (
    Conductances,
    Transfer,
    apical_error,
    interneuron_current,
    leaky_step,
    prediction_error,
    pyramidal_current,
    somatic_noise,
)

__all__ = ["Conductances", "Microcircuit", "Transfer", "backprop_reference", "topdown_alignment"]


def _as_list(value: float | Sequence[float], n: int, what: str) -> list[float]:
    values = [float(value)] * n if isinstance(value, int | float) else [float(v) for v in value]
    if len(values) != n:
        raise ValueError(f"{what}: expected {n} values, got {len(values)}")
    return values


class Microcircuit:
    """A stack of pyramidal layers with interneurons (see the module docstring).

    ``sizes`` are the widths ``[n_input, n_1, ..., n_N]``; the last layer is the output.
    Weights are shared by the ``batch_size`` circuits of :meth:`reset_state`; each circuit
    has its own voltages. All weights start uniform in [-1, 1] times ``init_scale``; set
    them directly or call :meth:`self_predicting_` / :meth:`symmetric_topdown_`.

    Learning rates are per millisecond (``eta_up`` may give one per layer; 0 freezes);
    ``dt``, ``tau_w`` and ``tau_in`` are in ms.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        *,
        phi: Transfer | None = None,
        conductances: Conductances | None = None,
        dt: float = 0.1,
        tau_w: float = 30.0,
        tau_in: float = 3.0,
        noise: float = 0.1,
        eta_up: float | Sequence[float] = 1.2e-3,
        eta_IP: float = 2.4e-4,
        eta_PI: float = 5e-4,
        eta_down: float = 0.0,
        prospective: bool = False,
        bias: bool = False,
        init_scale: float = 1.0,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        generator: torch.Generator | None = None,
    ):
        if len(sizes) < 2:
            raise ValueError("sizes needs at least an input and an output width")
        self.sizes = [int(s) for s in sizes]
        self.n_layers = len(self.sizes) - 1
        self.phi = phi or Transfer()
        self.g = conductances or Conductances()
        self.dt, self.tau_w, self.tau_in, self.noise = dt, tau_w, tau_in, noise
        self.eta_up = _as_list(eta_up, self.n_layers, "eta_up")
        self.eta_IP, self.eta_PI, self.eta_down = eta_IP, eta_PI, eta_down
        self.prospective, self.bias = prospective, bias
        self.dtype, self.device = dtype, torch.device(device)
        N, n = self.n_layers, self.sizes

        def uniform(*shape: int) -> torch.Tensor:
            w = torch.rand(*shape, generator=generator, dtype=torch.float64) * 2 - 1
            return (w * init_scale).to(dtype=dtype, device=self.device)

        # W_PP_up[l]: basal weights of layer l from layer l-1 (paper: W^PP_{k,k-1}).
        self.W_PP_up = [uniform(n[l + 1], n[l]) for l in range(N)]
        # W_PP_down[l]: apical weights of layer l from layer l+1 (paper: W^PP_{k,k+1}).
        self.W_PP_down = [uniform(n[l + 1], n[l + 2]) for l in range(N - 1)]
        # W_IP[l]: interneurons of layer l (one per neuron of layer l+1) from pyramids of l.
        self.W_IP = [uniform(n[l + 2], n[l + 1]) for l in range(N - 1)]
        # W_PI[l]: apical weights of layer l from its interneurons.
        self.W_PI = [uniform(n[l + 1], n[l + 2]) for l in range(N - 1)]
        zeros = {"dtype": dtype, "device": self.device}
        self.b_PP_up = [torch.zeros(n[l + 1], **zeros) for l in range(N)] if bias else []
        self.b_IP = [torch.zeros(n[l + 2], **zeros) for l in range(N - 1)] if bias else []
        self.attenuation = [self.g.basal_attenuation(output=l == N - 1) for l in range(N)]
        self.reset_state(1)

    # --- weights ---------------------------------------------------------------------------
    def weights(self) -> dict[str, torch.Tensor]:
        """Every synaptic weight (and bias) by name, e.g. ``"W_PP_up.0"``; shared tensors."""
        out: dict[str, torch.Tensor] = {}
        for name in ("W_PP_up", "b_PP_up", "W_PP_down", "W_IP", "b_IP", "W_PI"):
            out.update({f"{name}.{l}": w for l, w in enumerate(getattr(self, name))})
        return out

    @torch.no_grad()
    def self_predicting_(self) -> None:
        r"""Set the interneuron weights to the self-predicting state, in which the
        interneurons reproduce the layer above and cancel its top-down input:
        :math:`W^{PI}_k = -W^{PP}_{k,k+1}` and
        :math:`W^{IP}_k = \frac{g_{lk}+g_D}{g_D} \frac{g_B}{g_{lk}+g_B+g_A} W^{PP}_{k+1,k}`
        (:math:`g_A = 0` when layer k+1 is the output)."""
        for l in range(self.n_layers - 1):
            ratio = self.attenuation[l + 1] / self.g.dendrite_attenuation
            self.W_IP[l].copy_(ratio * self.W_PP_up[l + 1])
            self.W_PI[l].copy_(-self.W_PP_down[l])
            if self.bias:
                self.b_IP[l].copy_(ratio * self.b_PP_up[l + 1])

    @torch.no_grad()
    def symmetric_topdown_(self) -> None:
        """Top-down weights equal to the transposed forward weights (exact backprop limit)."""
        for l in range(self.n_layers - 1):
            self.W_PP_down[l].copy_(self.W_PP_up[l + 1].T)

    # --- state -----------------------------------------------------------------------------
    def reset_state(self, batch_size: int) -> None:
        """Voltages at rest, input rates zero, weight-update filters empty, clock at 0."""
        N, n, B = self.n_layers, self.sizes, int(batch_size)
        z = {"dtype": self.dtype, "device": self.device}
        self.batch_size, self.t = B, 0.0
        self.somatic_potential = [torch.zeros(B, n[l + 1], **z) for l in range(N)]
        self.interneuron_potential = [torch.zeros(B, n[l + 2], **z) for l in range(N - 1)]
        self.input_rate = torch.zeros(B, n[0], **z)
        self.rate = [self.phi(u) for u in self.somatic_potential]
        self.interneuron_rate = [self.phi(u) for u in self.interneuron_potential]
        self.basal_potential = [torch.zeros(B, n[l + 1], **z) for l in range(N)]
        self.apical_potential = [torch.zeros(B, n[l + 1], **z) for l in range(N - 1)]
        self.interneuron_dendrite = [torch.zeros(B, n[l + 2], **z) for l in range(N - 1)]
        self.weight_filter = {k: torch.zeros_like(w) for k, w in self.weights().items()}

    _STATE = (
        "somatic_potential",
        "interneuron_potential",
        "input_rate",
        "rate",
        "interneuron_rate",
        "basal_potential",
        "apical_potential",
        "interneuron_dendrite",
        "weight_filter",
        "t",
        "batch_size",
    )

    def state_dict(self) -> dict[str, Any]:
        """Weights and the full dynamic state (for exact resume)."""
        state = {k: copy.deepcopy(getattr(self, k)) for k in self._STATE}
        state["weights"] = {k: w.clone() for k, w in self.weights().items()}
        return state

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in self._STATE:
            setattr(self, k, copy.deepcopy(state[k]))
        for k, w in self.weights().items():
            w.copy_(state["weights"][k])

    # --- dynamics --------------------------------------------------------------------------
    def _potentials(self, u_target: torch.Tensor | None) -> dict[str, list[torch.Tensor]]:
        """Dendritic potentials, somatic drives and the somatic potentials that plasticity
        and the nudged interneurons see, all from the state at time t."""
        g, N = self.g, self.n_layers
        pre = [self.input_rate, *self.rate[:-1]]
        basal, top_down, apical, dendrite, drive, total = [], [], [], [], [], []
        for l in range(N):
            v_B = pre[l] @ self.W_PP_up[l].T  # Eq. 3
            if self.bias:
                v_B += self.b_PP_up[l]
            basal.append(v_B)
            output = l == N - 1
            if not output:
                td = self.rate[l + 1] @ self.W_PP_down[l].T
                v_A = torch.addmm(td, self.interneuron_rate[l], self.W_PI[l].T)  # Eq. 4
                top_down.append(td)
                apical.append(v_A)
                drive.append(pyramidal_current(g, v_B, v_A))  # Eq. 1 as du/dt = I - G u
            else:
                drive.append(pyramidal_current(g, v_B, u_target=u_target))
            total.append(g.pyramidal_total(output, nudged=u_target is not None))
        if self.prospective:
            soma = [d / G for d, G in zip(drive, total, strict=True)]
        else:
            soma = self.somatic_potential
        inter_drive, inter_soma = [], []
        G_I = g.interneuron_total
        for l in range(N - 1):
            v_I = self.rate[l] @ self.W_IP[l].T  # Eq. 5
            if self.bias:
                v_I += self.b_IP[l]
            dendrite.append(v_I)
            inter_drive.append(interneuron_current(g, v_I, soma[l + 1]))  # Eq. 2
            if self.prospective:
                inter_soma.append(inter_drive[-1] / G_I)
        if not self.prospective:
            inter_soma = self.interneuron_potential
        return {
            "pre": pre,
            "basal": basal,
            "top_down": top_down,
            "apical": apical,
            "dendrite": dendrite,
            "drive": drive,
            "total": total,
            "soma": soma,
            "inter_drive": inter_drive,
            "inter_soma": inter_soma,
        }

    def _plasticity_rates(self, p: dict[str, list[torch.Tensor]]) -> list[torch.Tensor]:
        r"""The pyramidal rates plasticity compares with the dendritic predictions:
        :math:`\phi(u_k)`, or :math:`\phi(\breve u_k)` with latent equilibrium."""
        return self.rate if not self.prospective else [self.phi(s) for s in p["soma"]]

    def _basal_error(
        self, l: int, rate: list[torch.Tensor], p: dict[str, list[torch.Tensor]]
    ) -> torch.Tensor:
        r"""Eq. 7's postsynaptic factor of layer ``l``, :math:`\phi(u_k) - \phi(\hat v_{B,k})`
        with :math:`\hat v_{B,k} = \hat c_k v_{B,k}` (batch, n_k); ``rate`` from
        :meth:`_plasticity_rates`. The one place this error is written: plasticity and
        :meth:`dendritic_errors` both use it."""
        return prediction_error(self.phi, rate[l], p["basal"][l], self.attenuation[l])

    def _plasticity(self, p: dict[str, list[torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The unscaled right-hand sides P of Eqs. 7-10, summed over circuits, for every
        weight whose learning rate is not zero."""
        N, phi, out = self.n_layers, self.phi, {}
        rate = self._plasticity_rates(p)
        if not self.prospective:
            inter_rate = self.interneuron_rate
        else:
            inter_rate = [phi(s) for s in p["inter_soma"]]
        for l in range(N):
            if self.eta_up[l]:
                err = self._basal_error(l, rate, p)  # Eq. 7
                out[f"W_PP_up.{l}"] = err.T @ p["pre"][l]
                if self.bias:
                    out[f"b_PP_up.{l}"] = err.sum(0)
        c_I = self.g.dendrite_attenuation
        for l in range(N - 1):
            if self.eta_IP:
                err = prediction_error(phi, inter_rate[l], p["dendrite"][l], c_I)  # Eq. 8
                out[f"W_IP.{l}"] = err.T @ self.rate[l]
                if self.bias:
                    out[f"b_IP.{l}"] = err.sum(0)
            if self.eta_PI:
                err = apical_error(p["apical"][l])  # Eq. 9
                out[f"W_PI.{l}"] = err.T @ self.interneuron_rate[l]
            if self.eta_down:
                err = prediction_error(phi, rate[l], p["top_down"][l])  # Eq. 10
                out[f"W_PP_down.{l}"] = err.T @ self.rate[l + 1]
        return out

    def _eta(self, name: str) -> float:
        kind, layer = name.split(".")
        eta_up = self.eta_up[int(layer)] if kind.endswith("_up") else 0.0
        return {
            "W_PP_up": eta_up,
            "b_PP_up": eta_up,
            "W_IP": self.eta_IP,
            "b_IP": self.eta_IP,
            "W_PI": self.eta_PI,
            "W_PP_down": self.eta_down,
        }[kind]

    @torch.no_grad()
    def plasticity(self, u_target: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The instantaneous plasticity terms P (Eqs. 7-10 without the learning rate and
        the tau_w filter), summed over circuits, at the current state."""
        return self._plasticity(self._potentials(u_target))

    @torch.no_grad()
    def dendritic_errors(self, u_target: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Eq. 7's postsynaptic factor per layer at the current state,
        :math:`\\phi(u_k) - \\phi(\\hat v_{B,k})` (batch, n_k): the error each layer learns from."""
        p = self._potentials(u_target)
        rate = self._plasticity_rates(p)
        return [self._basal_error(l, rate, p) for l in range(self.n_layers)]

    @torch.no_grad()
    def step(
        self, x: torch.Tensor, u_target: torch.Tensor | None = None, learn: bool = True
    ) -> None:
        """Advance every circuit by ``dt``: ``x`` (batch, n_input) is the pattern each
        circuit sees, ``u_target`` (batch, n_output) its output target voltage or None."""
        dt = self.dt
        p = self._potentials(u_target)
        if learn:
            weights = self.weights()
            for name, P in self._plasticity(p).items():
                eta, W = self._eta(name), weights[name]
                if self.tau_w > 0:  # tau_w dDelta/dt = eta P - Delta,  dW/dt = Delta
                    W.add_(self.weight_filter[name], alpha=dt)
                    self.weight_filter[name].lerp_(P.mul_(eta), dt / self.tau_w)
                else:
                    W.add_(P, alpha=eta * dt)
        if self.noise > 0:
            sizes = self.sizes[1:] + self.sizes[2:]
            xi = somatic_noise(
                self.batch_size, sum(sizes), self.noise, dt, dtype=self.dtype, device=self.device
            )
            xi = list(xi.split(sizes, 1))
        else:
            xi = []
        for l, u in enumerate(self.somatic_potential):  # Eq. 1 (output: no apical term)
            leaky_step(u, p["drive"][l], p["total"][l], dt)
            if xi:
                u.add_(xi[l])
        G_I = self.g.interneuron_total
        for l, u in enumerate(self.interneuron_potential):  # Eq. 2
            leaky_step(u, p["inter_drive"][l], G_I, dt)
            if xi:
                u.add_(xi[self.n_layers + l])
        self.input_rate.lerp_(x.to(self.input_rate), dt / self.tau_in)
        if self.prospective:
            self.rate = [self.phi(s) for s in p["soma"]]
            self.interneuron_rate = [self.phi(s) for s in p["inter_soma"]]
        else:
            self.rate = [self.phi(u) for u in self.somatic_potential]
            self.interneuron_rate = [self.phi(u) for u in self.interneuron_potential]
        self.basal_potential, self.apical_potential = p["basal"], p["apical"]
        self.interneuron_dendrite = p["dendrite"]
        self.t += dt

    def run(
        self,
        x: torch.Tensor,
        u_target: torch.Tensor | None = None,
        duration: float = 100.0,
        learn: bool = True,
        *,
        blocked: bool | None = None,
    ) -> None:
        """Present the patterns ``x`` (and targets) for ``duration`` ms.

        ``blocked=True`` simulates in blocks of steps within which no weight is rewritten
        (:mod:`~creditlab.methods.dendritic.fast`: the recursion of the weights and their
        filters solved in closed form; the same trajectory as :meth:`step`, up to rounding).
        ``blocked=False`` calls :meth:`step` once per ``dt``: the plain simulation the blocked
        one is tested against. ``None`` picks the faster: blocked for fewer than
        ``fast.BLOCKED_BELOW`` circuits (one circuit of 784-500-500-10: 4x), the step loop
        from there on (many circuits make both bound by arithmetic, and the blocked scheme
        does about twice as much of it)."""
        x = x.to(dtype=self.dtype, device=self.device).flatten(1)
        if u_target is not None:
            u_target = u_target.to(dtype=self.dtype, device=self.device)
        n_steps = round(duration / self.dt)
        if blocked is None:
            blocked = self.batch_size < fast.BLOCKED_BELOW
        if blocked:
            fast.simulate(self, x, u_target, n_steps, learn)
            return
        for _ in range(n_steps):
            self.step(x, u_target, learn)

    # --- the function the weights compute ---------------------------------------------------
    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Somatic potentials of every layer at the steady state without a target and with
        silent apical compartments (the self-predicting state): a feedforward pass
        :math:`u_k = \\hat v_{B,k}`. The last entry is the output voltage."""
        r, out = x.to(dtype=self.dtype, device=self.device).flatten(1), []
        for l in range(self.n_layers):
            v_B = r @ self.W_PP_up[l].T
            if self.bias:
                v_B += self.b_PP_up[l]
            out.append(self.attenuation[l] * v_B)
            r = self.phi(out[-1])
        return out


def backprop_reference(
    circuit: Microcircuit, x: torch.Tensor, output_error: torch.Tensor
) -> dict[str, torch.Tensor]:
    r"""Backprop's update of every forward weight for the output error ``output_error``
    (batch, n_out), summed over the batch: the exact gradient step :math:`-\nabla_W L`
    of the loss whose derivative with respect to the output voltage is
    :math:`-e / \hat c_N` (the "matching loss" of the delta rule:
    :math:`\Delta W_N = e\, r_{N-1}^T`; for logistic units with :math:`e = r^{trgt} - r_N`
    it is the cross-entropy). Computed by torch autograd on the feedforward network that
    :meth:`Microcircuit.predict` evaluates; the microcircuit's own Eq. 7 update of the same
    weights, with :math:`e = \phi(u_N) - \phi(\hat v_{B,N})`, is compared with it."""
    weights = [w.detach().clone().requires_grad_(True) for w in circuit.W_PP_up]
    biases = [b.detach().clone().requires_grad_(True) for b in circuit.b_PP_up]
    with torch.enable_grad():
        r = x.to(dtype=circuit.dtype, device=circuit.device).flatten(1)
        for l, w in enumerate(weights):
            v = r @ w.T
            if circuit.bias:
                v = v + biases[l]
            a = circuit.attenuation[l] * v
            r = circuit.phi(a)
        loss = -(output_error.detach().to(a) * a).sum() / circuit.attenuation[-1]
        grads = torch.autograd.grad(loss, weights + biases)
    names = [f"W_PP_up.{l}" for l in range(len(weights))]
    names += [f"b_PP_up.{l}" for l in range(len(biases))]
    return {n: -g for n, g in zip(names, grads, strict=True)}


def topdown_alignment(circuit: Microcircuit) -> dict[str, float]:
    """Cosine between each top-down matrix :math:`W^{PP}_{k,k+1}` and the transpose of the
    forward matrix it mirrors, :math:`W^{PP}_{k+1,k}`: 1 is exact backprop's feedback,
    about 0 unrelated random feedback (feedback alignment raises it during learning)."""
    out = {}
    for l, down in enumerate(circuit.W_PP_down):
        up = circuit.W_PP_up[l + 1].T
        cos = F.cosine_similarity(down.flatten().double(), up.flatten().double(), dim=0)
        out[f"weight_alignment_cosine/{l}"] = float(cos)
    return out
