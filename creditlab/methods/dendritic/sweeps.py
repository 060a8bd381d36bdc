r"""The paper's simplified MNIST dynamics (``mode="sweeps"``): the microcircuit's steady
state approximated in two sweeps per image instead of integrating Eqs. 1-5 for 100 ms.

For a layer of leaky compartments the steady state of Eq. 1 is a weighted mixture of its
inputs, so each sweep is one line per layer (mixing factors :math:`\lambda` below):

1. **Bottom-up**: no target and silent apical compartments (the self-predicting state):
   :math:`u_k = \hat v_{B,k} = \hat c_k (W^{PP}_{k,k-1} r_{k-1} + b_k)`, :math:`r_k = \phi(u_k)`;
   the interneurons predict the layer above, :math:`\hat v^I_k = c_I (W^{IP}_k r_k + b^I_k)`.
2. **Output nudging**: :math:`u_N = (1 - \lambda_N) \hat v_{B,N} + \lambda_N u^{trgt}`.
3. **Top-down**, for :math:`k = N-1 \dots 1`: the interneurons are nudged towards their
   partners, :math:`u^I_k = (1 - \lambda_I) \hat v^I_k + \lambda_I u_{k+1}`; the apical
   potential is Eq. 4, :math:`v_{A,k} = W^{PP}_{k,k+1} \phi(u_{k+1}) + W^{PI}_k \phi(u^I_k)`;
   the soma mixes it in, :math:`u_k = \hat v_{B,k} + \lambda_A v_{A,k}`.

The plasticity is Eqs. 7 and 8 at that state, with every error divided by the product of
the mixing factors it passed through (:math:`s_N = \lambda_N`,
:math:`s_k = \lambda_A (1 - \lambda_I) s_{k+1}`, interneurons :math:`\lambda_I s_{k+1}`), so
that to first order every layer's error has backprop's magnitude instead of shrinking by a
factor :math:`\lambda` per layer ("errors rescaled by the inverse mixing factor"):

.. math::

    \Delta W^{PP}_{k,k-1} = \frac{\phi(u_k) - \phi(\hat v_{B,k})}{s_k}\, r_{k-1}^T, \qquad
    \Delta W^{IP}_k = \frac{\phi(u^I_k) - \phi(\hat v^I_k)}{s^I_k}\, r_k^T ,

where the presynaptic rates :math:`r` are those of the bottom-up sweep, which produced the
predictions :math:`\hat v` the errors are measured against (the nudged rates differ from
them only at second order in the error).

With the mixing factors taken from the conductances (:meth:`MixingFactors.from_conductances`)
steps 1-3 are exactly the fixed point of the continuous model except for one thing: the
top-down sweep does not send the hidden layers' change up again (the loop is cut after one
pass). ``W^{PP}_{k,k+1}`` and ``W^{PI}`` stay fixed, as in the paper's MNIST experiment.
Runs under ``torch.no_grad()``; no autograd anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from creditlab.methods.dendritic.microcircuit import Conductances, Microcircuit


@dataclass(frozen=True)
class MixingFactors:
    """How strongly the output, the interneurons and the pyramidal somata follow their
    nudging input in the top-down sweep."""

    output: float = 0.1
    """lambda_N: the output soma's share of the target voltage"""
    interneuron: float = 0.1
    """lambda_I: the interneuron soma's share of its partner's voltage"""
    apical: float = 0.1
    """lambda_A: volts added to a hidden soma per volt of apical potential"""

    @classmethod
    def from_conductances(cls, g: Conductances) -> MixingFactors:
        """The factors that make the sweeps the steady state of Eqs. 1-2."""
        return cls(
            output=g.g_som / (g.g_lk + g.g_B + g.g_som),
            interneuron=g.g_som / (g.g_lk + g.g_D + g.g_som),
            apical=g.g_A / (g.g_lk + g.g_B + g.g_A),
        )


@dataclass
class SweepState:
    """Voltages after the two sweeps (lists per layer, batch first)."""

    basal: list[torch.Tensor]
    """attenuated basal potentials hat v_B (the bottom-up prediction)"""
    soma: list[torch.Tensor]
    """somatic potentials u after the top-down sweep"""
    rate: list[torch.Tensor]
    """phi(u)"""
    dendrite: list[torch.Tensor]
    """attenuated interneuron dendritic potentials hat v^I"""
    interneuron: list[torch.Tensor]
    """interneuron somatic potentials u^I"""
    apical: list[torch.Tensor]
    """apical potentials v_A"""


@torch.no_grad()
def two_sweeps(
    net: Microcircuit, x: torch.Tensor, u_target: torch.Tensor | None, lam: MixingFactors
) -> SweepState:
    """Steps 1-3 of the module docstring for the input rates ``x`` (batch, n_input)."""
    phi, N = net.phi, net.n_layers
    basal = net.predict(x)  # step 1: u_k = hat v_B,k
    soma = list(basal)
    rate = [phi(u) for u in soma]
    c_I = net.g.dendrite_attenuation
    dendrite = []
    for l in range(N - 1):
        v_I = rate[l] @ net.W_IP[l].T  # Eq. 5
        if net.bias:
            v_I += net.b_IP[l]
        dendrite.append(c_I * v_I)
    interneuron, apical = list(dendrite), [torch.zeros_like(u) for u in soma[:-1]]
    if u_target is not None:  # step 2
        soma[-1] = torch.lerp(basal[-1], u_target.to(basal[-1]), lam.output)
        rate[-1] = phi(soma[-1])
        for l in range(N - 2, -1, -1):  # step 3
            interneuron[l] = torch.lerp(dendrite[l], soma[l + 1], lam.interneuron)
            apical[l] = rate[l + 1] @ net.W_PP_down[l].T  # Eq. 4
            apical[l].addmm_(phi(interneuron[l]), net.W_PI[l].T)
            soma[l] = basal[l] + lam.apical * apical[l]
            rate[l] = phi(soma[l])
    return SweepState(basal, soma, rate, dendrite, interneuron, apical)


def error_scales(n_layers: int, lam: MixingFactors) -> tuple[list[float], list[float]]:
    """The products of mixing factors s_k (pyramidal) and s^I_k (interneurons)."""
    s = [0.0] * n_layers
    s[-1] = lam.output
    for l in range(n_layers - 2, -1, -1):
        s[l] = lam.apical * (1 - lam.interneuron) * s[l + 1]
    return s, [lam.interneuron * s[l + 1] for l in range(n_layers - 1)]


@torch.no_grad()
def sweep_errors(
    net: Microcircuit, x: torch.Tensor, state: SweepState, lam: MixingFactors
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The rescaled dendritic prediction errors of Eqs. 7 (pyramidal, per layer) and 8
    (interneurons)."""
    phi = net.phi
    s, s_I = error_scales(net.n_layers, lam)
    errors = [
        (r - phi(v)).div_(scale) for r, v, scale in zip(state.rate, state.basal, s, strict=True)
    ]
    inter = [
        (phi(u) - phi(v)).div_(scale)
        for u, v, scale in zip(state.interneuron, state.dendrite, s_I, strict=True)
    ]
    return errors, inter


@torch.no_grad()
def sweep_updates(
    net: Microcircuit, x: torch.Tensor, u_target: torch.Tensor, lam: MixingFactors
) -> tuple[dict[str, torch.Tensor], SweepState]:
    """Eqs. 7-8 at the two-sweep state, summed over the batch, by weight name, and the
    state itself (the update of ``W_PP_up.l`` is ``errors[l].T @ r_{l-1}``)."""
    state = two_sweeps(net, x, u_target, lam)
    errors, inter = sweep_errors(net, x, state, lam)
    ff_rate = [net.phi(v) for v in state.basal]
    pre = [x.to(ff_rate[0]).flatten(1), *ff_rate[:-1]]  # the rates that made hat v_B
    out: dict[str, torch.Tensor] = {}
    for l, e in enumerate(errors):
        out[f"W_PP_up.{l}"] = e.T @ pre[l]
        if net.bias:
            out[f"b_PP_up.{l}"] = e.sum(0)
    for l, e in enumerate(inter):
        out[f"W_IP.{l}"] = e.T @ ff_rate[l]
        if net.bias:
            out[f"b_IP.{l}"] = e.sum(0)
    return out, state
