"""Dendritic cortical microcircuits (Sacramento, Costa, Bengio & Senn, NeurIPS 2018).

Pyramidal neurons with basal and apical dendrites and lateral interneurons, in continuous
time, learning with local dendritic plasticity that approximates backprop.

* :mod:`.microcircuit`: the model (Eqs. 1-5), its plasticity (Eqs. 7-10), the
  self-predicting state, latent equilibrium, and the comparison with backprop.
* :mod:`.sweeps`: the paper's simplified two-sweep MNIST dynamics (``mode="sweeps"``).
* :mod:`.learners`: both modes as classifiers for :func:`creditlab.train.fit`.
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
