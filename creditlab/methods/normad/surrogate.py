r"""Surrogate-gradient learning, the modern peer NormAD is measured against: backpropagation
through time through the same neuron (:func:`creditlab.methods.normad.neuron.simulate`) with a
van Rossum loss and SuperSpike's surrogate derivative (Zenke & Ganguli 2018), written out by
hand (no autograd; tests/test_normad.py checks it against autograd of an independent forward).

Forward, per neuron, with x = V - E_L, the Heun step x' = a x + b I (``heun_coefficients``):

.. math:: u_t = m_t\,(a\,x_{t-1} + b\,I_t),\quad s_t = H(u_t - \vartheta),\quad
   x_t = u_t (1 - s_t),

:math:`m_t` 1 while the membrane integrates (0 when the step falls below E_L and is
clamped), :math:`u_t = x_{t-1}` (= 0) during the refractory hold,
:math:`\vartheta = V_T - E_L`. The backward pass replaces :math:`dH/du` by
:math:`\sigma'(u) = (1 + \beta |u - \vartheta|)^{-2}` (``slope`` = beta, 1/V) and, as
SuperSpike and most surrogate-gradient work do, treats the reset factor
:math:`(1 - s_t)`, the refractory hold and the clamp as constants. With
:math:`\lambda_t = dL/du_t`:

.. math:: \lambda_t = \frac{\partial L}{\partial s_t} \sigma'(u_t)
   + (1 - s_t)\, A_{t+1} \lambda_{t+1},\qquad \frac{dL}{dI_t} = B_t \lambda_t ,

:math:`A_{t+1}` = a while integrating, 1 during the hold, 0 when clamped; :math:`B_t` = b while
integrating, else 0. A weight's gradient is :math:`\sum_t c_i(t)\, dL/dI_t`. Through a hidden
layer, :math:`I^{out}_t = \sum_j w_{kj} c_j(t)` with c the synaptic kernel of the hidden spikes,
so :math:`\partial L / \partial s_{j,t} = \sum_{t' \ge t} (e^{-(t'-t)dt/\tau_1} -
e^{-(t'-t)dt/\tau_2}) \sum_k w_{kj}\, dL/dI^{out}_{k,t'}` (the kernel filtered backwards in time).

Loss: the van Rossum distance squared, discretised, summed over a problem's patterns and outputs:
:math:`L = (dt/\tau) \sum_t f_t^2`, :math:`f = (s - s_d) * e^{-t/\tau}` (the recurrence
f_t = e^{-dt/tau} f_{t-1} + s_t - s_{d,t}), so :math:`\partial L/\partial s_t = (2 dt/\tau)
\sum_{t' \ge t} e^{-(t'-t)dt/\tau} f_{t'}`. Weights move by Adam (Kingma & Ba), per element,
each problem its own weights: problems stay independent in one batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from creditlab.methods.normad.neuron import (
    CELL,
    Neuron,
    Response,
    heun_coefficients,
    layer_current,
    simulate,
    synaptic_trace,
)
from creditlab.spiking import exponential_trace

SLOPE = 200.0
"""SuperSpike's beta (1/V): the surrogate halves 1/(1 + beta |u - theta|)^2 at |u - theta|
about 2 mV"""


def _filter(x: torch.Tensor, tau_steps: float, backward: bool = False) -> torch.Tensor:
    """exponential trace along time (dim -2) of (..., T, n); ``backward``: the anticausal sum
    over t' >= t."""
    if backward:
        x = x.flip(-2)
    flat = x.reshape(-1, *x.shape[-2:])
    out = exponential_trace(flat, tau_steps).reshape(x.shape)
    return out.flip(-2) if backward else out


@torch.no_grad()
def van_rossum_loss(
    produced: torch.Tensor, desired: torch.Tensor, tau: float, dt: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """L per problem (P,) and dL/ds (P, K, T, n) of trains (P, K, T, n) (module docstring)."""
    f = _filter(produced - desired, tau / dt)
    loss = (f**2).sum((1, 2, 3)) * dt / tau
    return loss, _filter(f, tau / dt, backward=True) * (2 * dt / tau)


def surrogate_derivative(v: torch.Tensor, cell: Neuron, slope: float) -> torch.Tensor:
    """sigma'(V) = 1 / (1 + slope |V - V_T|)^2 (SuperSpike's fast-sigmoid derivative)."""
    return 1.0 / (1.0 + slope * (v - cell.v_t).abs()) ** 2


@torch.no_grad()
def membrane_backward(
    resp: Response, grad_spikes: torch.Tensor, cell: Neuron = CELL, slope: float = SLOPE
) -> torch.Tensor:
    """dL/dI (..., T, n) from dL/ds (..., T, n) through the membranes of ``resp`` (their
    simulation): the adjoint recursion of the module docstring, backwards over time."""
    a, b = heun_coefficients(cell)
    steps = grad_spikes.shape[-2]
    index = torch.arange(steps, device=grad_spikes.device).view(-1, 1)
    # integrating at t: released by then (free of the spikes before t) and not clamped at E_L
    released = torch.nn.functional.pad(resp.free[..., :-1, :], (0, 0, 1, 0)) <= index
    integrating = released & ~resp.clamped
    held = ~released
    carry = torch.where(integrating, a, torch.where(held, 1.0, 0.0)).to(grad_spikes.dtype)
    source = (grad_spikes * surrogate_derivative(resp.v, cell, slope)).movedim(-2, 0)
    keep = (1 - resp.spikes).movedim(-2, 0)
    carry = carry.movedim(-2, 0)
    lam = torch.empty_like(source)
    nxt = torch.zeros_like(source[0])
    for t in range(steps - 1, -1, -1):
        nxt = source[t] + keep[t] * nxt
        lam[t] = nxt
        nxt = nxt * carry[t]
    return lam.movedim(0, -2) * integrating.to(lam.dtype) * b


@torch.no_grad()
def kernel_backward(grad_c: torch.Tensor, cell: Neuron = CELL) -> torch.Tensor:
    """dL/ds from dL/dc through c = synaptic_trace(s) (the kernel, backwards in time)."""
    return _filter(grad_c, cell.tau_1 / cell.dt, True) - _filter(grad_c, cell.tau_2 / cell.dt, True)


@dataclass
class Forward:
    """A network's simulation: each layer's input kernels and response."""

    kernels: list[torch.Tensor]
    responses: list[Response]

    @property
    def out(self) -> torch.Tensor:
        return self.responses[-1].spikes


@torch.no_grad()
def network_forward(c_in: torch.Tensor, weights: list[torch.Tensor], cell: Neuron = CELL):
    """Layers in turn: c (P, K, T, n) -> spikes -> their kernels -> the next layer."""
    kernels, responses = [c_in], []
    for i, w in enumerate(weights):
        resp = simulate(layer_current(kernels[-1], w), cell)
        responses.append(resp)
        if i + 1 < len(weights):
            kernels.append(synaptic_trace(resp.spikes, cell))
    return Forward(kernels, responses)


@torch.no_grad()
def network_gradients(
    fwd: Forward,
    weights: list[torch.Tensor],
    desired: torch.Tensor,
    tau: float,
    cell: Neuron = CELL,
    slope: float = SLOPE,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The van Rossum loss (P,) and its surrogate gradient for every weight (P, n_in, n_out)."""
    loss, grad_s = van_rossum_loss(fwd.out, desired, tau, cell.dt)
    grads = [torch.empty(0)] * len(weights)
    for i in range(len(weights) - 1, -1, -1):
        grad_i = membrane_backward(fwd.responses[i], grad_s, cell, slope)
        grads[i] = torch.einsum("pkti,pkto->pio", fwd.kernels[i], grad_i)
        if i > 0:
            grad_c = torch.einsum("pkto,pio->pkti", grad_i, weights[i])
            grad_s = kernel_backward(grad_c, cell)
    return loss, grads


@dataclass
class Adam:
    """Adam (Kingma & Ba 2015), elementwise, in place, with an update mask over problems."""

    lr: float
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def init(self, weights: list[torch.Tensor]) -> dict:
        zeros = [torch.zeros_like(w) for w in weights]
        return {"m": zeros, "v": [z.clone() for z in zeros], "t": 0}

    @torch.no_grad()
    def step(self, weights, grads, state: dict, active: torch.Tensor) -> None:
        """One step of every problem's weights; problems with ``active`` False stay put."""
        state["t"] += 1
        t = state["t"]
        mask = active.view(-1, 1, 1).to(weights[0].dtype)
        for w, g, m, v in zip(weights, grads, state["m"], state["v"], strict=True):
            m.mul_(self.beta1).add_(g * (1 - self.beta1))
            v.mul_(self.beta2).add_(g * g * (1 - self.beta2))
            m_hat = m / (1 - self.beta1**t)
            v_hat = v / (1 - self.beta2**t)
            w -= self.lr * m_hat / (v_hat.sqrt() + self.eps) * mask
