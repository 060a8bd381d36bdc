"""Coagent networks (Kostas, Nota & Thomas 2020): reinforcement learning without backpropagation
or a clock, and option-critic as a special case.

* :mod:`.coagents`: Bernoulli, softmax and Gaussian coagents, each with its local CPGT update.
* :mod:`.network`: acyclic coagent networks, execution functions, held outputs, asynchronous CPGT.
* :mod:`.critic`: the one critic (and the one TD error) broadcast to every coagent; an
  asynchronous network's critic reads the held outputs too.
* :mod:`.exact`: the exact likelihood-ratio gradient of a small network, for the gradient check.
* :mod:`.actor_critic`: coagent and backprop actor-critics on Gymnasium vector environments, and
  their evaluation episodes (learning off).
* :mod:`.option_critic`: option-critic as a coagent network, Bacon et al.'s original updates (as
  their released script), a flat actor-critic, the Four Rooms loop and its evaluation.
* :mod:`.four_rooms`: the Four Rooms environment (``gymnasium.Env``).
* :mod:`.figures`: Bacon et al.'s Four Rooms figures (before/after the switch, maps).
* :mod:`.gradient_check`: the gradient check's network, episode batches and its two estimates.
* :mod:`.four_rooms_training`: the Four Rooms learners by name and their resumable loop.
* :mod:`.summaries`: each experiment's metrics, notes and figures from its trained results.
* :mod:`.experiments`: the configurations and the registered experiments.
"""

from creditlab.methods.coagent.coagents import (
    BernoulliCoagent,
    Coagent,
    GaussianCoagent,
    SoftmaxCoagent,
)
from creditlab.methods.coagent.network import (
    Always,
    CoagentNetwork,
    ExecutionFunction,
    FixedPeriod,
    FixedProbability,
    Node,
    StateDependent,
)

__all__ = [
    "Always",
    "BernoulliCoagent",
    "Coagent",
    "CoagentNetwork",
    "ExecutionFunction",
    "FixedPeriod",
    "FixedProbability",
    "GaussianCoagent",
    "Node",
    "SoftmaxCoagent",
    "StateDependent",
]
