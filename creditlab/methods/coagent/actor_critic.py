"""Actor-critic on Gymnasium vector environments: a coagent-network actor or a backprop actor,
the same critic, the same rollouts.

One loop (:func:`train_actor_critic`) serves both actors, so "coagent vs backprop at equal
environment steps" compares only the credit assignment inside the actor:

* :class:`CoagentActor`: state -> ``hidden`` Bernoulli coagents -> one softmax action
  coagent. Each coagent computes its own ``grad log pi_i(U^i | X^i)`` (closed form, no
  autograd, see :mod:`.coagents`) and scales it by the broadcast signal times its execution
  indicator. The ascent direction is handed to Adam; Adam is elementwise, so every
  parameter's step still depends only on that parameter's own gradient history: the update
  stays local.
* :class:`BackpropActor`: the same layer sizes with deterministic tanh hidden units,
  trained by autograd on ``-signal * log pi(A | S)`` (the CleanRL-style actor-critic).

The critic reads ``Z_t``, the state of what the return depends on (see :mod:`.critic`): ``S_t``
for the backprop actor and the synchronous coagent network, ``(S_t, U_{t-1})`` (the held
outputs, :meth:`.CoagentNetwork.held_features`) for a coagent network that holds its outputs
(``critic_reads_held``).

Both actors may add an entropy bonus on the action distribution (``entropy_coef``; used for
Acrobot only): for the coagent network it is the action coagent's own entropy gradient, a
local term like its update. Rewards are scaled by ``reward_scale`` for the critic only.

Rollouts: ``num_envs`` environments step together for ``rollout_steps`` steps, then the critic
broadcasts its TD(lambda) advantage (lambda = 0: the one-step TD error) and actor and critic
each take one step. Gymnasium 1.x vector environments autoreset on the *next* step: the step
after an episode ends ignores the action and returns the first observation of the next
episode. Those steps are not transitions: they are masked out of every update, are not
counted as environment steps, and reset the network's held outputs and step counter.

Evaluation (:func:`evaluate`): every ``eval_every`` environment steps and at the end, ``M``
episodes of the learned policy with learning off, on their own environment copies seeded
``derive_seed(seed, "evaluation") + i`` (:func:`creditlab.runner.derive_seed`: never a
training seed) and with their own torch generator,
run on a copy of the agent: the training run is the same with or without them. The policy is the
one that learned: actions (and hidden coagent outputs) are sampled, not made greedy.
"""

from __future__ import annotations

import copy
import functools
import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from creditlab.methods.coagent.coagents import BernoulliCoagent, SoftmaxCoagent
from creditlab.methods.coagent.critic import Critic, lambda_advantages, td_error
from creditlab.methods.coagent.network import (
    Always,
    CoagentNetwork,
    ExecutionFunction,
    FixedProbability,
    Node,
    Transition,
)
from creditlab.runner import RunContext, StageContext, derive_seed

Tensor = torch.Tensor


def make_vector_env(env_id: str, num_envs: int) -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``env_id``: Gymnasium's batched NumPy implementation where it has
    one (CartPole), otherwise a ``SyncVectorEnv``. Both autoreset on the next step, and both
    pickle (with their random generators), which is how a run checkpoints them."""
    if gym.spec(env_id).vector_entry_point is not None:
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point")
    return gym.vector.SyncVectorEnv([functools.partial(gym.make, env_id)] * num_envs)


# --- actors -----------------------------------------------------------------------------------


class CoagentActor:
    """State -> ``hidden`` Bernoulli coagents -> softmax action coagent; no backprop anywhere."""

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden: int,
        lr: float,
        execution_probability: float = 1.0,
        asynchronous_action: bool = True,
        init_std: float = 1.0,
        critic_reads_held: bool = False,
    ):
        execute: ExecutionFunction = (
            Always() if execution_probability >= 1 else FixedProbability(execution_probability)
        )
        self.network = CoagentNetwork(
            {
                "hidden": Node(
                    BernoulliCoagent(obs_dim, hidden, init_std=init_std), ("state",), execute
                ),
                "action": Node(
                    SoftmaxCoagent(hidden, n_actions),
                    ("hidden",),
                    execute if asynchronous_action else Always(),
                ),
            },
            action="action",
        )
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=lr)
        self.critic_reads_held = critic_reads_held
        self.critic_features = obs_dim + (hidden + n_actions) * critic_reads_held

    def reset(self, batch: int | None = None, where: Tensor | None = None) -> None:
        self.network.reset(batch, where)

    def critic_input(self, obs: Tensor) -> Tensor:
        """``Z_t``: ``S_t``, or ``(S_t, U_{t-1})`` with the held outputs when
        ``critic_reads_held`` (call it before :meth:`act` at step ``t``)."""
        if not self.critic_reads_held:
            return obs
        return torch.cat([obs, self.network.held_features(obs.dtype)], dim=1)

    def act(self, obs: Tensor, t: Tensor) -> tuple[Tensor, Transition]:
        return self.network.act(obs, t)

    def update(self, steps: list[Transition], signal: Tensor, entropy: Tensor) -> None:
        """Each coagent ascends its own ``sum_t E^i_t signal_t grad log pi_i`` (via Adam); the
        action coagent adds its own entropy bonus, weighted by ``entropy`` per step."""
        grads = self.network.local_gradients(steps, signal)
        if entropy.any():
            action = self.network.coagents[self.network.action]
            x = torch.cat([s.inputs[self.network.action] for s in steps])
            bonus = action.entropy_gradient(x, entropy.reshape(-1))
            for param, g in bonus.items():
                grads[self.network.action][param] = grads[self.network.action][param] + g
        for name, coagent_grads in grads.items():
            for param, g in coagent_grads.items():
                getattr(self.network.coagents[name], param).grad = -g  # Adam minimises
        self.optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        return {
            "network": self.network.state_dict(),
            "held": dict(self.network.held),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["network"])
        self.network.held = dict(state["held"])
        self.optimizer.load_state_dict(state["optimizer"])


class BackpropActor:
    """The same sizes with deterministic tanh hidden units, trained by backprop (autograd)."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: int, lr: float):
        self.model = nn.Sequential(
            nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, n_actions)
        )
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.critic_features = obs_dim

    def reset(self, batch: int | None = None, where: Tensor | None = None) -> None:
        """A feedforward policy holds nothing between steps."""

    def critic_input(self, obs: Tensor) -> Tensor:
        """``Z_t = S_t``: nothing else is carried from step to step."""
        return obs

    @torch.no_grad()
    def act(self, obs: Tensor, t: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        action = torch.multinomial(torch.softmax(self.model(obs), -1), 1).squeeze(1)
        return action, (obs, action)

    def update(self, steps: list[tuple[Tensor, Tensor]], signal: Tensor, entropy: Tensor) -> None:
        obs = torch.cat([s[0] for s in steps])
        actions = torch.cat([s[1] for s in steps])
        log_pi_all = torch.log_softmax(self.model(obs), -1)
        log_pi = log_pi_all.gather(1, actions[:, None]).squeeze(1)
        bonus = -(log_pi_all.exp() * log_pi_all).sum(-1)  # H(pi(. | s))
        loss = -(signal.reshape(-1) * log_pi).sum() - (entropy.reshape(-1) * bonus).sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


# --- the loop -----------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(
    agent: CoagentActor | BackpropActor,
    env_id: str,
    episodes: int,
    seed: int,
    scale: Tensor,
) -> list[float]:
    """The returns of ``episodes`` episodes of ``agent``'s policy with learning off.

    Runs on a copy of the agent (its held outputs and parameters are left as they were), on
    ``episodes`` new environment copies seeded ``seed, seed + 1, ...``, with torch's generator
    seeded ``seed`` inside :func:`torch.random.fork_rng` (restored afterwards, so training
    draws the same samples whether or not it is evaluated). No update is made: only ``act``.
    """
    policy = copy.deepcopy(agent)
    envs = make_vector_env(env_id, episodes)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        obs, _ = envs.reset(seed=seed)
        policy.reset(batch=episodes)
        alive = torch.ones(episodes, dtype=torch.bool)
        returns = torch.zeros(episodes, dtype=torch.float64)
        t = torch.zeros(episodes, dtype=torch.long)
        while alive.any():
            action, _ = policy.act(torch.as_tensor(obs) * scale, t)
            obs, reward, term, trunc, _ = envs.step(action.numpy())
            returns += torch.as_tensor(reward, dtype=torch.float64) * alive
            alive &= ~torch.as_tensor(term | trunc)
            t = t + 1
    envs.close()
    return returns.tolist()


@dataclass
class LoopSettings:
    """The rollout/update settings :func:`train_actor_critic` needs (a subset of the config)."""

    total_steps: int
    num_envs: int
    rollout_steps: int
    gamma: float
    td_lambda: float
    normalize_signal: bool
    gamma_t_weighting: bool
    anneal_lr: bool
    log_every: int
    entropy_coef: float = 0.0
    obs_scale: tuple[float, ...] = ()
    reward_scale: float = 1.0
    eval_every: int = 0
    eval_episodes: int = 0


class _Loop:
    """The environment loop's state, everything needed to resume it exactly."""

    def __init__(self, envs: gym.vector.VectorEnv, seed: int, agent: Any, scale: Tensor):
        obs, _ = envs.reset(seed=seed)
        n = envs.num_envs
        self.envs, self.obs = envs, torch.as_tensor(obs) * scale
        self.t = torch.zeros(n, dtype=torch.long)  # steps since the episode began
        self.prev_done = torch.zeros(n, dtype=torch.bool)  # this step is an autoreset step
        self.episode_return = torch.zeros(n, dtype=torch.float64)
        self.returns: list[float] = []  # completed episodes, in order
        self.return_steps: list[int] = []  # env steps at which each one completed
        self.env_steps = 0
        self.logged_episodes = 0  # episodes already summarised in metrics.jsonl
        self.next_log = 0  # env steps at which the next summary is due
        self.next_eval = 0  # env steps at which the next evaluation is due (0: not scheduled)
        self.evaluations: list[tuple[int, list[float]]] = []  # (env steps, returns)
        agent.reset(batch=n)


def train_actor_critic(
    agent: CoagentActor | BackpropActor,
    critic: Critic,
    env_id: str,
    settings: LoopSettings,
    ctx: RunContext | StageContext,
    label: str,
) -> dict[str, Any]:
    """Train ``agent`` with ``critic`` for ``settings.total_steps`` environment steps.

    Logs ``return_<label>`` (mean return of the training episodes finished since the last log)
    and, every ``eval_every`` steps and at the end, ``eval_return_<label>`` (mean return of
    ``eval_episodes`` evaluation episodes, :func:`evaluate`) against environment steps.
    Returns the training episodes' returns, the evaluations and the measured speed (training
    only). Resumable (:meth:`~creditlab.runner.RunContext.loop`) at the end of the iteration that
    passes each multiple of ``num_envs * rollout_steps`` environment steps: one or two rollouts.
    """
    s = settings
    scale = 1.0 / torch.tensor(s.obs_scale) if s.obs_scale else torch.tensor(1.0)
    loop = _Loop(make_vector_env(env_id, s.num_envs), ctx.seed, agent, scale)
    loop.next_eval = s.eval_every
    eval_seed = derive_seed(ctx.seed, "evaluation")

    def run_evaluation() -> None:
        returns = evaluate(agent, env_id, s.eval_episodes, eval_seed, scale)
        loop.evaluations.append((loop.env_steps, returns))
        ctx.log(loop.env_steps, **{f"eval_return_{label}": float(np.mean(returns))})

    def restore(state: dict[str, Any]) -> None:
        agent.load_state_dict(state["agent"])
        critic.load_state_dict_with_optimizer(state["critic"])
        loop.envs.close()
        vars(loop).update(state["loop"])

    per_iteration = s.num_envs * s.rollout_steps  # at most this many environment steps a rollout
    iterations = ctx.loop(
        -(-s.total_steps // per_iteration),
        lambda: {
            "agent": agent.state_dict(),
            "critic": critic.state_dict_with_optimizer(),
            "loop": dict(vars(loop)),
        },
        restore,
        desc=f"{ctx.experiment.name} [{label}]",
    )
    started, steps_at_start, eval_seconds = time.perf_counter(), loop.env_steps, 0.0
    for i in iterations:
        while loop.env_steps < min(s.total_steps, (i + 1) * per_iteration):  # one rollout
            records: list[Any] = []
            z, next_z, rewards, terminated, done, valid, ts = [], [], [], [], [], [], []
            for _ in range(s.rollout_steps):
                z.append(agent.critic_input(loop.obs))  # Z_t, before the coagents act at t
                action, record = agent.act(loop.obs, loop.t)
                o, r, term, trunc, _ = loop.envs.step(action.numpy())
                o, r = torch.as_tensor(o) * scale, torch.as_tensor(r, dtype=torch.float64)
                term, trunc = torch.as_tensor(term), torch.as_tensor(trunc)
                next_z.append(agent.critic_input(o))  # Z_{t+1} = (S_{t+1}, U_t)
                real = ~loop.prev_done  # an autoreset step is not a transition
                records.append(record)
                rewards.append(r)
                terminated.append(term)
                done.append(term | trunc)
                valid.append(real)
                ts.append(loop.t)
                loop.episode_return += r * real
                finished = (term | trunc) & real
                if finished.any():
                    loop.returns.extend(loop.episode_return[finished].tolist())
                    loop.return_steps.extend(
                        [loop.env_steps + int(real.sum())] * int(finished.sum())
                    )
                    loop.episode_return[finished] = 0.0
                loop.env_steps += int(real.sum())
                # After an autoreset step a new episode starts: t = 0, held outputs reset.
                loop.t = torch.where(loop.prev_done, 0, loop.t + 1)
                if loop.prev_done.any():
                    agent.reset(where=loop.prev_done)
                loop.prev_done = term | trunc
                loop.obs = o
            # --- the critic broadcasts one signal per step; actor and critic each take one step
            z_b, next_b = torch.stack(z), torch.stack(next_z)
            valid_b, done_b = torch.stack(valid), torch.stack(done)
            with torch.no_grad():
                values = critic(z_b).double()
                next_values = critic(next_b).double()
            scaled = torch.stack(rewards) * s.reward_scale  # in the critic's units
            deltas = td_error(scaled, values, next_values, torch.stack(terminated), s.gamma)
            deltas = deltas * valid_b
            advantages = lambda_advantages(deltas, done_b, s.gamma, s.td_lambda) * valid_b
            if s.anneal_lr:  # linear decay to zero over the run (CleanRL's anneal_lr)
                for optimizer in (agent.optimizer, critic.optimizer):
                    for group in optimizer.param_groups:
                        group.setdefault("initial_lr", group["lr"])
                        group["lr"] = group["initial_lr"] * (1 - loop.env_steps / s.total_steps)
            critic.fit(z_b, (advantages + values).float(), valid_b.float())
            signal = advantages
            if s.normalize_signal:
                real = signal[valid_b]
                signal = (signal - real.mean()) / (real.std() + 1e-8) * valid_b
            if s.gamma_t_weighting:
                signal = signal * s.gamma ** torch.stack(ts).double()
            n_valid = valid_b.sum().clamp(min=1)
            entropy = s.entropy_coef * valid_b / n_valid
            agent.update(records, (signal / n_valid).float(), entropy.float())
            if loop.env_steps >= loop.next_log and len(loop.returns) > loop.logged_episodes:
                recent = loop.returns[loop.logged_episodes :]
                ctx.log(loop.env_steps, **{f"return_{label}": float(np.mean(recent))})
                loop.logged_episodes = len(loop.returns)
                loop.next_log = (loop.env_steps // s.log_every + 1) * s.log_every
            if loop.next_eval and s.total_steps > loop.env_steps >= loop.next_eval:
                clock = time.perf_counter()
                run_evaluation()
                eval_seconds += time.perf_counter() - clock
                loop.next_eval = (loop.env_steps // s.eval_every + 1) * s.eval_every
    seconds = time.perf_counter() - started - eval_seconds
    if s.eval_episodes and (not loop.evaluations or loop.evaluations[-1][0] < loop.env_steps):
        run_evaluation()  # the final evaluation: the headline
    loop.envs.close()
    return {
        "returns": loop.returns,
        "return_steps": loop.return_steps,
        "evaluations": loop.evaluations,
        "env_steps": loop.env_steps,
        "env_steps_per_second": (loop.env_steps - steps_at_start) / max(seconds, 1e-9),
    }
