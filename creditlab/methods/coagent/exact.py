"""The exact likelihood-ratio policy gradient of a two-layer stochastic network, by autograd.

The reference that coagent updates are checked against (Kostas et al. 2020, Sec. 7). The
network is ``state -> H Bernoulli coagents -> softmax action coagent`` (the action coagent
reads the hidden outputs only). As a policy, it is a distribution over actions with the hidden
outputs ``h`` summed out; when the hidden coagents hold their outputs (asynchronous execution)
``h_t`` is a hidden Markov chain and the policy depends on the whole history:

.. math::

    \\alpha_t(h) = P(h_t = h, A_{0:t} \\mid S_{0:t}, E_{0:t}),\\qquad
    \\alpha_t(h) = \\pi_A(A_t \\mid h)^{E^A_t} \\sum_{h'} \\alpha_{t-1}(h')
        \\prod_j \\big[E^j_t\\, \\pi_j(h_j \\mid S_t) + (1 - E^j_t)\\, 1\\{h_j = h'_j\\}\\big]

(the forward algorithm over all ``2^H`` hidden configurations; the product splits into the
units that execute, a factor ``pi_j(h_j | S_t)``, and those that hold, which forbid a change).
Then
``log P(A_t | history) = log sum_h alpha_t(h) - log sum_h alpha_{t-1}(h)`` is a differentiable
function of every parameter, and

.. math:: \\hat g = \\sum_t \\gamma^t G_t\\, \\nabla_\\theta \\log P(A_t \\mid \\text{history})

is the ordinary (REINFORCE) policy gradient of the network as a whole, computed by backprop
through the exact marginal likelihood. The execution indicators are drawn independently of
the parameters, so conditioning on them leaves the estimator unbiased. Its mean equals the
mean of the coagent estimate; the two differ only in variance.
"""

from __future__ import annotations

import itertools
import math

import torch

from creditlab.methods.coagent.coagents import BernoulliCoagent, SoftmaxCoagent

Tensor = torch.Tensor


def hidden_configurations(units: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """All ``2^units`` binary vectors, shape ``(2^units, units)``."""
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=units)), dtype=dtype)


def marginal_log_likelihoods(
    hidden: BernoulliCoagent,
    action: SoftmaxCoagent,
    states: Tensor,
    actions: Tensor,
    hidden_executed: Tensor,
    action_executed: Tensor,
    valid: Tensor,
) -> Tensor:
    """``log P(A_t | A_{<t}, S_{<=t}, E_{<=t})`` for every step, shape ``(T, B)``.

    ``states`` (T, B, obs), ``actions`` (T, B), ``hidden_executed`` (T, B, H),
    ``action_executed`` (T, B), ``valid`` (T, B) marks real steps (zero elsewhere). Every
    coagent must execute at ``t = 0``. Differentiable in the parameters of both coagents.
    """
    configs = hidden_configurations(hidden.units, hidden.weight.dtype)  # (K, H)
    log_pi_action = torch.log_softmax(action.logits(configs), -1)  # (K, n_actions)
    n_steps, batch = actions.shape
    # uniform before t = 0; irrelevant, since every hidden coagent executes at t = 0
    log_alpha = torch.full((batch, len(configs)), -math.log(len(configs)), dtype=configs.dtype)
    out = []
    differ = configs[:, None, :] != configs[None, :, :]  # (K', K, H): h_j != h'_j
    for t in range(n_steps):
        p = hidden.probability(states[t])  # (B, H)
        e = hidden_executed[t]  # (B, H)
        # log pi_j(h_j | S_t) summed over the units that execute: (B, K)
        log_pi_h = configs * torch.log(p[:, None, :]) + (1 - configs) * torch.log1p(-p[:, None, :])
        log_fresh = (log_pi_h * e[:, None, :]).sum(-1)
        # a unit that holds must keep its value: h' -> h impossible if they differ there
        blocked = (differ[None] & ~e[:, None, None, :]).any(-1)  # (B, K', K)
        log_hold = torch.zeros(blocked.shape, dtype=configs.dtype).masked_fill_(blocked, -math.inf)
        log_pred = log_fresh + torch.logsumexp(log_alpha[:, :, None] + log_hold, dim=1)  # (B, K)
        log_like = log_pi_action[:, actions[t]].T * action_executed[t].to(configs.dtype)[:, None]
        log_joint = log_pred + log_like
        step = torch.logsumexp(log_joint, 1) - torch.logsumexp(log_pred, 1)
        keep = valid[t]
        out.append(torch.where(keep, step, torch.zeros_like(step)))
        normalised = log_joint - torch.logsumexp(log_joint, 1, keepdim=True)
        log_alpha = torch.where(keep[:, None], normalised, log_alpha)
    return torch.stack(out)


def likelihood_ratio_gradient(
    hidden: BernoulliCoagent,
    action: SoftmaxCoagent,
    states: Tensor,
    actions: Tensor,
    hidden_executed: Tensor,
    action_executed: Tensor,
    valid: Tensor,
    weights: Tensor,
) -> dict[str, Tensor]:
    """``sum_{t,b} weights[t, b] * grad log P(A_t | history)`` for both coagents' parameters,
    keyed ``"hidden.weight"``, ``"hidden.bias"``, ``"action.weight"``, ``"action.bias"``."""
    params = {f"hidden.{n}": p for n, p in hidden.named_parameters()}
    params |= {f"action.{n}": p for n, p in action.named_parameters()}
    with torch.enable_grad():
        log_like = marginal_log_likelihoods(
            hidden, action, states, actions, hidden_executed, action_executed, valid
        )
        objective = (weights.detach() * log_like).sum()
        grads = torch.autograd.grad(objective, list(params.values()))
    return dict(zip(params, grads, strict=True))
