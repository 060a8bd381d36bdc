"""Undirected posteriors for discrete VAEs (Vahdat, Andriyash & Macready, "Learning Undirected
Posteriors by Backpropagation through MCMC Updates", arXiv 1901.03440; ICML 2020 as
"Undirected Graphical Models as Approximate Posteriors").

A discrete VAE with an RBM prior whose approximate posterior is itself a conditional RBM,
trained by backpropagating through one relaxed block-Gibbs sweep of persistent chains.

* :mod:`.rbm`: energies, block Gibbs, exact enumeration of the smaller side, AIS, the PCD prior.
* :mod:`.relax`: the piecewise-linear and Concrete relaxations of a Bernoulli sample.
* :mod:`.posteriors`: ``RBMPosterior`` and the baselines ``FactorialPosterior`` and
  ``DirectedPosterior``.
* :mod:`.model`: the DVAE, its ELBO / importance-weighted objective and its test NLL.
* :mod:`.training`: the schedules and the side-by-side training loop; the test of the best states.
* :mod:`.figures`: the validation curves, prior samples and posterior structure figures.
* :mod:`.verdict`: the run's notes (departures from the protocol, the paper's claim).
* :mod:`.experiments`: ``dvae.bmnist``.
"""

from creditlab.methods.dvae.model import DVAE, Decoder, build, evaluate_nll, posterior_structure
from creditlab.methods.dvae.posteriors import (
    DirectedPosterior,
    FactorialPosterior,
    RBMPosterior,
)
from creditlab.methods.dvae.rbm import (
    RBMPrior,
    ais_log_partition,
    exact_log_partition,
    exact_sample,
    gibbs_sweep,
)
from creditlab.methods.dvae.relax import concrete, pwl

__all__ = [
    "DVAE",
    "Decoder",
    "DirectedPosterior",
    "FactorialPosterior",
    "RBMPosterior",
    "RBMPrior",
    "ais_log_partition",
    "build",
    "concrete",
    "evaluate_nll",
    "exact_log_partition",
    "exact_sample",
    "gibbs_sweep",
    "posterior_structure",
    "pwl",
]
