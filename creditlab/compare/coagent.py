r"""Coagent networks (Kostas, Nota & Thomas 2020) as a compare rule: classification as a
contextual bandit. An adapter over the method's own
:class:`~creditlab.methods.coagent.CoagentNetwork`, never a copy of an experiment.

The network is the task's shape: one layer of :class:`~creditlab.methods.coagent.
BernoulliCoagent` s per hidden width (each unit samples a bit from its own logistic policy)
and a :class:`~creditlab.methods.coagent.SoftmaxCoagent` whose sampled choice is the action.
Each image is one episode of one step: the context is the image, the action a class, the
reward 1 for the correct label and 0 otherwise. Every coagent applies its own CPGT update
(:meth:`CoagentNetwork.local_gradients`),

.. math:: \Delta\theta_i = s\, \nabla_{\theta_i} \log \pi_i(U^i \mid X^i),

averaged over the minibatch, where the broadcast signal ``s`` is the reward standardised over
the minibatch, ``(R - mean R) / (std R + 1e-8)``: the coagent actor-critic's own
``normalize_signal`` (``actor_critic.py``: "one global scale and shift" over a rollout; here
the minibatch is the rollout and a one-step episode has no state value beyond it). The
estimate is handed to the task's optimiser as the negative gradient, like every rule.
Initialisation is the method's: hidden coagents' weights ``N(0, 1)`` (``CoagentActor``'s
``init_std`` default), the action coagent and all biases at zero.

Evaluation is deterministic: each coagent emits its most likely output given its input
(bit = 1 where ``p > 0.5``, the class of largest logit); the reported loss is the
cross-entropy of the action's policy along that path.

Alignment: the expected update is the gradient of the expected reward, which has no closed
form for hidden Bernoulli layers of this width. The table's cosine is with the exact
gradient (autograd) of the cross-entropy of the *mean-field* network (every bit replaced by
its probability: a logistic MLP with the same weights), the objective backprop would train
on the same weights. For the action layer the expected update is
:math:`\pi_y (e_y - \pi)\, x^\top`, the cross-entropy's negative gradient times
:math:`\pi_y`, so only the sampling noise separates them there.

Locality: a broadcast scalar (the standardised reward; its mean and scale are one number each
for the whole network); no weight transport; no separate phase. Declared only:
stochastic binary units have no rescaling of a layer that keeps the network's function, so
the perturbation check of :mod:`creditlab.compare.locality` has nothing to apply; each
coagent's update takes only ``(X^i, U^i, signal)`` (``Coagent.local_gradient``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from creditlab.diagnostics.alignment import alignment
from creditlab.methods.coagent import BernoulliCoagent, CoagentNetwork, Node, SoftmaxCoagent
from creditlab.runner import RunContext
from creditlab.train import OptimizerLearner, make_optimizer

INIT_STD = 1.0
"""standard deviation of the hidden coagents' initial weights (``CoagentActor``'s default)"""


def coagent_network(
    n_in: int, hidden: tuple[int, ...], n_out: int, generator: torch.Generator
) -> CoagentNetwork:
    """Bernoulli layers ``h1 ... hL`` and a softmax ``action`` node, chained; hidden weights
    ``N(0, INIT_STD^2)`` from ``generator``, the action coagent and the biases zero."""
    widths = [n_in, *hidden, n_out]
    nodes, source = {}, "state"
    for k, width in enumerate(hidden):
        nodes[f"h{k + 1}"] = Node(BernoulliCoagent(widths[k], units=width), (source,))
        source = f"h{k + 1}"
    nodes["action"] = Node(SoftmaxCoagent(widths[-2], choices=n_out), (source,))
    net = CoagentNetwork(nodes, action="action")
    with torch.no_grad():
        for name in net.order:
            if name != "action":
                w = net.coagents[name].weight
                w.copy_(torch.randn(w.shape, generator=generator) * INIT_STD)
    return net


def standardised(reward: torch.Tensor) -> torch.Tensor:
    """``(R - mean R) / (std R + 1e-8)`` over the minibatch (the method's normalize_signal)."""
    if len(reward) < 2:
        return reward - reward.mean()
    return (reward - reward.mean()) / (reward.std() + 1e-8)


class CoagentClassifier(OptimizerLearner):
    """A :class:`CoagentNetwork` trained as a contextual bandit (module docstring)."""

    def __init__(
        self,
        net: CoagentNetwork,
        optimizer: torch.optim.Optimizer,
        schedule: torch.optim.lr_scheduler.LRScheduler | None = None,
    ):
        super().__init__(net, optimizer, schedule)
        self.layers = [n for n in net.order if n != net.action] + [net.action]

    def _sampled_update(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, Any]:
        """One episode per image (global torch stream): the mean CPGT estimate by parameter
        name (an ascent direction), the rewards and the transition."""
        x = x.flatten(1)
        self.net.reset(batch=len(x))
        action, step = self.net.act(x, torch.zeros(len(x), dtype=torch.long))
        reward = (action == y).to(x.dtype)
        signal = standardised(reward)[None, :]
        grads = self.net.parameter_gradients(self.net.local_gradients([step], signal))
        return {k: g / len(x) for k, g in grads.items()}, reward, step

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        update, reward, step = self._sampled_update(x, y)
        params = dict(self.net.coagents.named_parameters())
        self.apply_gradients((params[name], -delta) for name, delta in update.items())
        action = self.net.coagents[self.net.action]
        with torch.no_grad():
            loss = -action.log_prob(step.inputs[self.net.action], y).mean()
        return {"loss": float(loss), "reward": float(reward.mean())}

    def proposed_update(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The CPGT estimate on one draw, without changing the network or the global stream."""
        with torch.random.fork_rng(devices=[]):
            return self._sampled_update(x, y)[0]

    @torch.no_grad()
    def greedy_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The action's logits along the most likely path (every bit its likelier value)."""
        h = x.flatten(1)
        for name in self.layers[:-1]:
            h = (self.net.coagents[name].probability(h) > 0.5).to(h.dtype)
        return self.net.coagents[self.net.action].logits(h)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        loss, correct = 0.0, 0
        for i in range(0, len(x), 2000):
            logits, yb = self.greedy_logits(x[i : i + 2000]), y[i : i + 2000]
            loss += nn.functional.cross_entropy(logits, yb, reduction="sum").item()
            correct += (logits.argmax(1) == yb).sum().item()
        return {"loss": loss / len(x), "accuracy": correct / len(x)}

    def mean_field_gradient(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """``-∇`` (autograd) of the mean-field network's mean cross-entropy, by name."""
        params = dict(self.net.coagents.named_parameters())
        leaves = {k: p.detach().clone().requires_grad_(True) for k, p in params.items()}
        with torch.enable_grad():
            h = x.flatten(1)
            for name in self.layers:
                w, b = leaves[f"{name}.weight"], leaves[f"{name}.bias"]
                a = nn.functional.linear(h, w, b)
                h = torch.sigmoid(a) if name != self.net.action else a
            temperature = self.net.coagents[self.net.action].temperature
            loss = nn.functional.cross_entropy(h / temperature, y)
            grads = torch.autograd.grad(loss, list(leaves.values()))
        return {k: -g for k, g in zip(leaves, grads, strict=True)}

    def alignment_metrics(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        result = alignment(self.proposed_update(x, y), self.mean_field_gradient(x, y))
        out = {"alignment_cosine": result.overall_cosine}
        for k, name in enumerate(self.layers):
            out[f"alignment_cosine/layer{k + 1}"] = result.cosine[f"{name}.weight"]
        return out


def build(cfg: Any, n_in: int, n_out: int, total_steps: int, ctx: RunContext) -> Any:
    """The task's shape as coagents, trained with the task's optimiser and schedule."""
    net = coagent_network(n_in, tuple(cfg.hidden), n_out, ctx.generator("coagent")).to(ctx.device)
    optimizer = make_optimizer(
        net.parameters(), cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    return CoagentClassifier(net, optimizer, schedule)
