"""The gradient check of Kostas et al. (2020, Sec. 7): a fixed random coagent network, episodes
run side by side, and on the same episodes two unbiased estimates of ``grad J``, the coagents'
own (CPGT) and the likelihood ratio through the whole network (:mod:`.exact`).
"""

from __future__ import annotations

from typing import Any

import torch

from creditlab.methods.coagent.actor_critic import make_vector_env
from creditlab.methods.coagent.coagents import BernoulliCoagent, SoftmaxCoagent
from creditlab.methods.coagent.exact import likelihood_ratio_gradient
from creditlab.methods.coagent.network import Always, CoagentNetwork, FixedProbability, Node


def gradient_check_network(
    obs_dim: int, n_actions: int, hidden: int, p: float, init_std: float
) -> CoagentNetwork:
    """state -> ``hidden`` Bernoulli coagents -> softmax action coagent (float64); every coagent
    executes with probability ``p`` (``p = 1``: the synchronous network)."""
    execute = Always() if p >= 1 else FixedProbability(p)
    net = CoagentNetwork(
        {
            "hidden": Node(
                BernoulliCoagent(obs_dim, hidden, init_std=init_std), ("state",), execute
            ),
            "action": Node(
                SoftmaxCoagent(hidden, n_actions, init_std=init_std), ("hidden",), execute
            ),
        },
        action="action",
    )
    with torch.no_grad():
        for p_ in net.parameters():
            if p_.dim() == 1:
                p_.normal_(std=init_std)  # biases too: a generic point, not the origin
    return net.double()


def episode_batch(
    net: CoagentNetwork, env_id: str, n: int, seed: int, scale: torch.Tensor, gamma: float
) -> dict[str, Any]:
    """Run ``n`` episodes side by side (one each per environment copy) and return what both
    estimators need: the network's transitions, states, actions, validity masks and the
    weights ``gamma^t G_t``."""
    envs = make_vector_env(env_id, n)
    obs, _ = envs.reset(seed=seed)
    net.reset(batch=n)
    alive = torch.ones(n, dtype=torch.bool)
    t = torch.zeros(n, dtype=torch.long)
    steps, states, actions, valid, rewards = [], [], [], [], []
    while alive.any():
        s = torch.as_tensor(obs, dtype=torch.float64) / scale
        a, step = net.act(s, t)
        obs, r, term, trunc, _ = envs.step(a.numpy())
        steps.append(step)
        states.append(s)
        actions.append(a)
        valid.append(alive.clone())
        rewards.append(torch.as_tensor(r, dtype=torch.float64) * alive)
        alive &= ~torch.as_tensor(term | trunc)
        t = t + 1
    envs.close()
    rewards_t, valid_t = torch.stack(rewards), torch.stack(valid)
    discounts = gamma ** torch.arange(len(rewards_t), dtype=torch.float64)[:, None]
    discounted = rewards_t * discounts  # gamma^k R_k
    tail = discounted.flip(0).cumsum(0).flip(0)  # sum_{k >= t} gamma^k R_k = gamma^t G_t
    return {
        "steps": steps,
        "states": torch.stack(states),
        "actions": torch.stack(actions),
        "valid": valid_t,
        "weights": tail * valid_t,
        "returns": rewards_t.sum(0),
    }


def both_estimates(
    net: CoagentNetwork, batch: dict[str, Any]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Sums over the batch's episodes of the coagent (CPGT) estimate and of the exact
    likelihood-ratio estimate through the whole network, keyed like ``net.coagents``."""
    cpgt = net.parameter_gradients(net.local_gradients(batch["steps"], batch["weights"]))
    executed = torch.stack([s.executed["hidden"] for s in batch["steps"]])
    executed_action = torch.stack([s.executed["action"] for s in batch["steps"]])
    exact = likelihood_ratio_gradient(
        net.coagents["hidden"],
        net.coagents["action"],
        batch["states"],
        batch["actions"],
        executed,
        executed_action,
        batch["valid"],
        batch["weights"],
    )
    return cpgt, exact
