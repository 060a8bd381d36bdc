"""Dendritic cortical microcircuits (Sacramento, Costa, Bengio & Senn, NeurIPS 2018).

Pyramidal neurons with basal and apical dendrites and lateral interneurons, in continuous
time, learning with local dendritic plasticity that approximates backprop.

* :mod:`.equations`: Eqs. 1-10 written once (conductances, rate function, somatic currents,
  the plasticity rules' postsynaptic factors), called by both simulations.
* :mod:`.microcircuit`: the model (Eqs. 1-5), its plasticity (Eqs. 7-10), the
  self-predicting state, latent equilibrium, and the comparison with backprop.
* :mod:`.fast`: the blocked simulation :meth:`Microcircuit.run` uses for few circuits.
* :mod:`.sweeps`: the paper's simplified two-sweep MNIST dynamics (``mode="sweeps"``).
* :mod:`.learners`: both modes as classifiers for :func:`creditlab.train.fit`.
* :mod:`.measures`, :mod:`.figures`, :mod:`.verdicts`: what the experiments measure, draw
  and conclude; :mod:`.mnist`: the MNIST comparison's networks, rows and training.
* :mod:`.experiments`: ``dendritic.self_predicting``, ``dendritic.teacher``,
  ``dendritic.mnist`` (the microcircuit against backprop, fixed random top-down weights as
  in the paper) and ``dendritic.mnist_rows`` (every row of the paper's MNIST comparison).
"""

from creditlab.methods.dendritic.learners import ContinuousClassifier, SweepsClassifier
from creditlab.methods.dendritic.microcircuit import (
    Conductances,
    Microcircuit,
    Transfer,
    backprop_reference,
    topdown_alignment,
)
from creditlab.methods.dendritic.sweeps import MixingFactors, sweep_updates, two_sweeps

__all__ = [
    "Conductances",
    "ContinuousClassifier",
    "Microcircuit",
    "MixingFactors",
    "SweepsClassifier",
    "Transfer",
    "backprop_reference",
    "sweep_updates",
    "topdown_alignment",
    "two_sweeps",
]
