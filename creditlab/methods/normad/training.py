"""Training loops: one epoch of NormAD or ReSuMe on a batch of problems (one layer), one epoch
of multilayer NormAD (input -> hidden -> output, patterns presented one at a time and each
trial's update applied at its end, as the group's code does), one epoch of the surrogate-gradient
peer (any depth, the same presentation), and the convergence bookkeeping. Everything under
``torch.no_grad()``; the inputs' kernels and traces are computed once (the inputs are fixed)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from creditlab.methods.normad.neuron import (
    Neuron,
    layer_current,
    normad_trace,
    simulate,
    synaptic_trace,
)
from creditlab.methods.normad.normad import hidden_update, normad_update
from creditlab.methods.normad.resume import resume_update
from creditlab.methods.normad.surrogate import Adam, network_forward, network_gradients
from creditlab.spiking.metrics import coincidence_accuracy, van_rossum_distance


@dataclass
class Rates:
    """Learning rates and rule constants."""

    rule: str = "normad"
    """normad or resume"""
    rate: float = 2e-10
    """output layer: NormAD's r (A per unit error), or ReSuMe's r * A (A)"""
    rate_hidden: float = 2e-10
    """hidden layer NormAD rate r_h"""
    resume_a: float = 0.0
    """ReSuMe's non-Hebbian term a (relative to A)"""
    slope_min: float = 1.0
    """smallest V' (V/s) in the hidden rule"""
    silent_gain: float = 0.1
    """weight of a silent hidden neuron's pseudo-spike (0: none)"""


@torch.no_grad()
def single_epoch(inputs, c_in, d_in, desired, w, rates: Rates, cell: Neuron, active):
    """One trial of every problem (K patterns batched: the update is their sum); returns the
    produced trains (before the update). Problems with ``active`` False are not updated."""
    out = simulate(layer_current(c_in, w), cell).spikes
    error = desired - out
    if rates.rule == "normad":
        dw = normad_update(d_in, error, rates.rate)
    else:
        dw = resume_update(inputs, error, rates.rate, rates.resume_a, dt=cell.dt)
    w += dw * active.view(-1, 1, 1)
    return out


@torch.no_grad()
def forward(c_in, w1, w2, cell: Neuron):
    """Hidden response, hidden kernels, output trains."""
    hidden = simulate(layer_current(c_in, w1), cell)
    c_h = synaptic_trace(hidden.spikes, cell)
    out = simulate(layer_current(c_h, w2), cell).spikes
    return hidden, c_h, out


@torch.no_grad()
def multilayer_epoch(c_in, desired, w1, w2, rates: Rates, cell: Neuron, active):
    """Patterns one at a time (all problems batched), each trial's updates applied at its end;
    returns the produced trains (P, K, T, O), each before its own trial's update."""
    outs = []
    act = active.view(-1, 1, 1).to(w1.dtype)
    for k in range(c_in.shape[1]):
        ck = c_in[:, k : k + 1]
        hidden, c_h, out = forward(ck, w1, w2, cell)
        error = desired[:, k : k + 1] - out
        dw2 = normad_update(normad_trace(c_h, cell), error, rates.rate)
        dw1 = hidden_update(
            ck,
            hidden,
            error,
            w2,
            rates.rate_hidden,
            cell,
            slope_min=rates.slope_min,
            silent_gain=rates.silent_gain,
        )
        w2 += dw2 * act
        w1 += dw1 * act
        outs.append(out)
    return torch.cat(outs, 1)


@torch.no_grad()
def surrogate_epoch(c_in, desired, weights, opt: Adam, state, cell: Neuron, tau, slope, active):
    """Surrogate-gradient BPTT with the van Rossum loss: patterns one at a time (all problems
    batched), one Adam step after each; returns the produced trains, each before its own
    trial's step."""
    outs = []
    for k in range(c_in.shape[1]):
        fwd = network_forward(c_in[:, k : k + 1], weights, cell)
        _, grads = network_gradients(fwd, weights, desired[:, k : k + 1], tau, cell, slope)
        opt.step(weights, grads, state, active)
        outs.append(fwd.out)
    return torch.cat(outs, 1)


def precompute(inputs: torch.Tensor, cell: Neuron) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs' synaptic kernels c and NormAD traces d."""
    c = synaptic_trace(inputs, cell)
    return c, normad_trace(c, cell)


def scores(desired, produced, cell: Neuron, window: float, tau_vr: float):
    """Coincidence accuracy and van Rossum distance per (P, K, O) train."""
    des, pro = desired.transpose(-1, -2), produced.transpose(-1, -2)
    acc = coincidence_accuracy(des, pro, round(window / cell.dt))
    vr = van_rossum_distance(des, pro, tau=tau_vr, dt=cell.dt)
    return acc, vr
