"""HM2-BP: Hybrid Macro/Micro Level Backpropagation (Jin, Zhang & Li, NeurIPS 2018).

Trains multilayer spiking networks on a rate-coded loss whose gradient is computed at the
level of spike-train PSPs (S-PSPs), without backpropagation through time.

* :mod:`.spsp`: the S-PSP e_{i|j} and its factorisation into contractions over time.
* :mod:`.loss`: the macro-level rate loss (desired / undesired counts, margin).
* :mod:`.network`: layers, the simulation, and HM2-BP's backward pass.
* :mod:`.output`: the reference code's output rules (forced label spikes, lateral factor).
* :mod:`.learner`: HM2-BP on the Learner protocol (Adam, the spec's schedule), rate coding
  (fresh, or each image's trains drawn once as the reference).
* :mod:`.yardstick`: the CNN's non-spiking backprop yardstick.
* :mod:`.training`: training with :func:`creditlab.train.fit` and the reported measurements.
* :mod:`.experiments`: ``hm2bp.mnist``, ``hm2bp.mnist_cnn``, ``hm2bp.nmnist``.
"""

from creditlab.methods.hm2bp.learner import HM2BPLearner, RateTargets
from creditlab.methods.hm2bp.loss import rate_error, rate_loss, rate_targets
from creditlab.methods.hm2bp.network import Conv, Dense, Pool, Record, SpikingNetwork
from creditlab.methods.hm2bp.spsp import post_spike_weights, spike_train_psp

__all__ = [
    "Conv",
    "Dense",
    "HM2BPLearner",
    "Pool",
    "RateTargets",
    "Record",
    "SpikingNetwork",
    "post_spike_weights",
    "rate_error",
    "rate_loss",
    "rate_targets",
    "spike_train_psp",
]
