"""What each rule's weight update uses, as its adapter declares it, and a check of the claim.

A declaration (:class:`Locality`) says, for the update of a hidden layer's weights:

* ``signal``: what carries the credit there: nothing beyond the synapse's own pre- and
  postsynaptic activity (``local``), a scalar broadcast to every unit (``broadcast_scalar``,
  e.g. a reward), a vector broadcast from the output (``broadcast_vector``, e.g. DFA's output
  error), or a vector passed down layer by layer (``backprop_vector``, backprop and FA);
* ``weight_transport``: whether that signal is carried by the forward weights themselves
  (``magnitude``: backprop's :math:`W^\\top`), only their signs (``sign``) or by neither
  (``none``);
* ``separate_phase``: whether learning needs a phase apart from inference (a backward pass,
  a second settling with the target).

:func:`check_locality` tests the first two claims by perturbing a quantity the rule claims
not to use and asserting that the update does not change:

* no transport of weight magnitudes: rescale the units of hidden layer ``k`` (incoming
  weights times ``c > 0``, outgoing weights divided by ``c``). With ReLU units the network
  computes the same function, the output error and every activity pattern stay, only the
  forward weights above ``k`` change magnitude; a rule that reads them (backprop) changes
  layer ``k``'s update, one that does not (FA, DFA) leaves it exactly as it was;
* no backpropagated vector: draw every feedback pathway again except the one into layer
  ``k``; a rule whose credit reaches ``k`` from the output directly (DFA) keeps layer
  ``k``'s update, one that passes it through the layers above (FA) does not.

A rule's learner offers the probe through ``locality_probe()`` (a copy of its network with
``update``, ``logits``, ``n_hidden``, ``hidden_names``, ``rescale_units`` and
``redraw_feedback``); a learner without one is declared only, and the table says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

Signal = Literal["local", "broadcast_scalar", "broadcast_vector", "backprop_vector"]
Transport = Literal["none", "sign", "magnitude"]


@dataclass(frozen=True)
class Locality:
    """What a rule's hidden-layer update uses (see the module docstring)."""

    signal: Signal
    weight_transport: Transport
    separate_phase: bool

    def describe(self) -> str:
        """A short cell for the table, e.g. ``broadcast vector; no transport; 2 phases``."""
        transport = {"none": "no transport", "sign": "sign transport", "magnitude": "W^T"}
        phase = "2 phases" if self.separate_phase else "1 phase"
        return f"{self.signal.replace('_', ' ')}; {transport[self.weight_transport]}; {phase}"


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    scale = max(a.abs().max().item(), b.abs().max().item(), 1e-12)
    return bool((a - b).abs().max().item() <= 1e-5 * scale)


def check_locality(
    learner: Any, declared: Locality, x: torch.Tensor, y: torch.Tensor, seed: int = 0
) -> list[str]:
    """The declared claims that the learner's update contradicts on the batch ``(x, y)``
    (empty: none). Raises ``TypeError`` when the learner offers no probe."""
    if not hasattr(learner, "locality_probe"):
        raise TypeError(f"{type(learner).__name__} offers no locality_probe()")
    generator = torch.Generator().manual_seed(seed)
    violations = []
    base = learner.locality_probe()
    before = base.update(x, y)
    for k in range(base.n_hidden):
        names = base.hidden_names(k)
        if declared.weight_transport in ("none", "sign"):
            probe = learner.locality_probe()
            scale = 0.5 + 1.5 * torch.rand(probe.unit_count(k), generator=generator)
            probe.rescale_units(k, scale)
            if not torch.allclose(probe.logits(x), base.logits(x), rtol=1e-4, atol=1e-5):
                raise AssertionError("rescaling the units changed the network's function")
            after = probe.update(x, y)
            if not all(_same(before[n], after[n]) for n in names):
                violations.append(
                    f"hidden layer {k + 1}: declared weight transport "
                    f"'{declared.weight_transport}', but its update changes when the forward "
                    "weights above it are rescaled (the function kept)"
                )
        if declared.signal != "backprop_vector":
            probe = learner.locality_probe()
            probe.redraw_feedback(k, generator)
            after = probe.update(x, y)
            if not all(_same(before[n], after[n]) for n in names):
                violations.append(
                    f"hidden layer {k + 1}: declared signal '{declared.signal}', but its update "
                    "changes when the feedback pathways of the other layers are redrawn"
                )
    return violations
