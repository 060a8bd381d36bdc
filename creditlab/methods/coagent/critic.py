"""The one critic whose TD error every coagent receives (Kostas et al. 2020, Sec. 2; Thomas 2011).

Actor-critic form of the CPGT: a single critic ``v`` computes

.. math:: \\delta_t = R_t + \\gamma\\, v(Z_{t+1}) - v(Z_t)

and broadcasts it; each coagent multiplies it by its own ``grad log pi_i`` (and its execution
indicator). :func:`td_error` is that one line, and every learner in this package (the
Gymnasium actor-critics, the Four Rooms learners, Bacon et al.'s critics) calls it.

What ``Z_t`` must hold: the state of everything the return after ``t`` depends on. For a
synchronous feedforward network that is ``S_t``. When coagents hold their outputs
(asynchronous execution) the network is recurrent and the held outputs ``U_{t-1}`` are part
of the state, so the critic reads ``Z_t = (S_t, U_{t-1})``: with ``v(S_t)`` alone the TD error
averages over held outputs it cannot see, and its expectation given what a coagent conditions
on is no longer the advantage (option-critic's ``v(S_t, O_{t-1})`` is the same idea).
``v(Z_t)`` depends on no output at step ``t``, so it is a valid baseline for every coagent.

With ``lam > 0`` the broadcast signal is the TD(lambda) advantage
``sum_k (gamma lam)^k delta_{t+k}`` (GAE; ``lam = 0`` is the one-step TD error above,
``lam = 1`` the Monte-Carlo return minus ``v``): still one scalar per step, the same for
every coagent.

The critic is a separate learner and is not part of the coagent network: :class:`Critic` is
a small MLP trained on its own TD(lambda) targets by autograd (no gradient reaches a
coagent); the backprop actor-critic baseline uses the very same critic, so the two agents
differ only in how the actor assigns credit. (The Four Rooms learners keep their critics in
NumPy tables, :mod:`.option_critic`.)
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
from torch import nn

Tensor = torch.Tensor
Array = TypeVar("Array", Tensor, np.ndarray)


def td_error(
    reward: Array, value: Array, next_value: Array, terminated: Array, gamma: float
) -> Array:
    """``delta_t = R_t + gamma (1 - terminated_t) v(Z_{t+1}) - v(Z_t)``, elementwise, on torch
    tensors or NumPy arrays.

    At a termination the next value is not read at all (it may be anything, even NaN); at a
    truncation (time limit) ``Z_{t+1}`` holds the final observation and is bootstrapped,
    since the episode did not really end there.

    >>> td_error(np.array([1.0, 0.0]), np.array([0.5, 0.5]), np.array([np.nan, 2.0]),
    ...          np.array([True, False]), gamma=0.5)
    array([0.5, 0.5])
    """
    where = torch.where if isinstance(value, Tensor) else np.where
    return reward + gamma * where(terminated, 0.0, next_value) - value


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
    """``v(z)``: an MLP with tanh hidden layers on the critic's input ``Z_t`` (``S_t``, or
    ``(S_t, U_{t-1})``), trained by Adam on the squared TD(lambda) error of its own predictions
    (semi-gradient: the targets are held fixed)."""

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
        """One Adam step on ``mean((v(z) - target)^2)`` over the steps where ``mask`` holds."""
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
