"""The one critic whose TD error every coagent receives (Kostas et al. 2020, Sec. 2; Thomas 2011).

Actor-critic form of the CPGT: a single state-value critic ``v`` computes

.. math:: \\delta_t = R_t + \\gamma\\, v(S_{t+1}) - v(S_t)

and broadcasts it; each coagent multiplies it by its own ``grad log pi_i`` (and its execution
indicator). With ``lam > 0`` the broadcast signal is the TD(lambda) advantage
``sum_k (gamma lam)^k delta_{t+k}`` (GAE; ``lam = 0`` is the one-step TD error above,
``lam = 1`` the Monte-Carlo return minus ``v``): still one scalar per step, the same for
every coagent.

The critic is a separate learner and is not part of the coagent network: :class:`Critic` is
a small MLP trained on its own TD(lambda) targets by autograd (no gradient reaches a
coagent); the backprop actor-critic baseline uses the very same critic, so the two agents
differ only in how the actor assigns credit. :class:`TabularCritic` is the table used in Four
Rooms, with the classic TD(0) update and no autograd at all.
"""

from __future__ import annotations

import torch
from torch import nn

Tensor = torch.Tensor


def td_errors(
    rewards: Tensor, values: Tensor, next_values: Tensor, terminated: Tensor, gamma: float
) -> Tensor:
    """``delta_t = R_t + gamma (1 - terminated_t) v(S_{t+1}) - v(S_t)`` elementwise.

    At a truncation (time limit) ``S_{t+1}`` is the final observation and is bootstrapped,
    since the episode did not really end there."""
    return rewards + gamma * (~terminated).to(values.dtype) * next_values - values


def lambda_advantages(deltas: Tensor, done: Tensor, gamma: float, lam: float) -> Tensor:
    """``A_t = delta_t + gamma lam (1 - done_t) A_{t+1}`` over a rollout of shape ``(T, B)``;
    the sum stops at episode ends (``done`` = terminated or truncated)."""
    advantages = torch.zeros_like(deltas)
    running = torch.zeros_like(deltas[0])
    for t in reversed(range(len(deltas))):
        running = deltas[t] + gamma * lam * (~done[t]).to(deltas.dtype) * running
        advantages[t] = running
    return advantages


class Critic(nn.Module):
    """``v(s)``: an MLP with tanh hidden layers, trained by Adam on the squared TD(lambda)
    error of its own predictions (semi-gradient: the targets are held fixed)."""

    def __init__(self, in_features: int, hidden: tuple[int, ...] = (64, 64), lr: float = 1e-3):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.Tanh()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr)

    def forward(self, state: Tensor) -> Tensor:
        return self.net(state).squeeze(-1)

    def fit(self, states: Tensor, targets: Tensor, mask: Tensor) -> float:
        """One Adam step on ``mean((v(s) - target)^2)`` over the steps where ``mask`` holds."""
        error = (self(states) - targets.detach()) * mask
        loss = (error**2).sum() / mask.sum().clamp(min=1)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def state_dict_with_optimizer(self) -> dict:
        return {"net": self.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict_with_optimizer(self, state: dict) -> None:
        self.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])


class TabularCritic:
    """``v[z]`` in a table, learned by TD(0): ``v[z_t] += alpha * delta_t``."""

    def __init__(self, size: int, lr: float):
        self.values = torch.zeros(size, dtype=torch.float64)
        self.lr = lr

    def __call__(self, z: Tensor) -> Tensor:
        return self.values[z]

    def update(self, z: Tensor, delta: Tensor) -> None:
        self.values.index_add_(0, z, self.lr * delta)
