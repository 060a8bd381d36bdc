"""Coagent network experiments: the gradient check, CartPole/Acrobot against a backprop
actor-critic, asynchronous CartPole, and option-critic on Four Rooms.

Every experiment here runs its tiny-tensor loops on one torch thread (restored afterwards):
at these sizes extra threads only add contention.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from creditlab.diagnostics.alignment import alignment
from creditlab.methods.coagent.actor_critic import (
    EVAL_SEED,
    BackpropActor,
    CoagentActor,
    LoopSettings,
    make_vector_env,
    train_actor_critic,
)
from creditlab.methods.coagent.coagents import BernoulliCoagent, SoftmaxCoagent
from creditlab.methods.coagent.critic import Critic
from creditlab.methods.coagent.exact import likelihood_ratio_gradient
from creditlab.methods.coagent.figures import before_and_after, on_the_map
from creditlab.methods.coagent.four_rooms import EAST_DOORWAY
from creditlab.methods.coagent.network import (
    Always,
    CoagentNetwork,
    FixedProbability,
    Node,
)
from creditlab.methods.coagent.option_critic import (
    ClassicOptionCritic,
    CoagentOptionCritic,
    FlatActorCritic,
    FourRoomsRuns,
    evaluate,
    termination_probabilities,
)
from creditlab.plots import line_plot
from creditlab.registry import experiment
from creditlab.runner import RunContext

PAPER = "Kostas, Nota & Thomas, 'Asynchronous Coagent Networks' (ICML 2020)"
CARTPOLE_SCALE = (2.4, 3.0, 0.21, 3.0)  # |x|, |x'|, |angle|, |angle'| at typical extremes
# Acrobot: raw observations. Dividing the angular velocities by their limits (4 pi, 9 pi) made
# the Bernoulli hidden coagents blind to them (quick scale, seed 0: coagent -489.6, backprop
# -223.5); raw, they are nearly deterministic detectors of the velocities' signs, which is
# what swinging up needs (coagent -103.5, backprop -85.6).
ACROBOT_SCALE = (1.0,) * 6


@contextmanager
def single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# --- coagent.gradient_check ----------------------------------------------------------------


@dataclass
class GradientCheckConfig:
    env_id: str = "CartPole-v1"
    """Gymnasium environment (discrete actions)"""
    hidden: int = 4
    """Bernoulli hidden coagents (the exact reference sums over 2^hidden configurations)"""
    episodes: int = 400_000
    """episodes at the last point of the curve"""
    first_point: int = 10
    """episodes at the first point; the points in between are log-spaced"""
    points: int = 10
    """number of points on the angle-vs-episodes curve"""
    batch: int = 2000
    """episodes simulated side by side (memory bound of the exact reference)"""
    execution_probability: float = 0.5
    """asynchronous network: probability that each coagent executes at a step (t > 0)"""
    gamma: float = 0.99
    """discount of the objective J = E[sum_t gamma^t R_t]"""
    init_std: float = 1.0
    """standard deviation of the random (fixed) weights the gradient is measured at"""
    obs_scale: tuple[float, ...] = CARTPOLE_SCALE
    """observations are divided by these before entering the network"""


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


@experiment(
    "coagent.gradient_check",
    config=GradientCheckConfig,
    paper_title=PAPER,
    scales={
        "smoke": {"episodes": 300, "points": 3, "batch": 300},
        "quick": {"episodes": 40_000},
        "paper": {},
    },
    demo=True,
)
def gradient_check(cfg: GradientCheckConfig, ctx: RunContext) -> dict[str, float]:
    """Angle between the mean coagent (CPGT) gradient estimate and the exact policy gradient.

    The paper's empirical check (Kostas et al. 2020, Sec. 7), on CartPole: a fixed random
    network ``state -> 4 Bernoulli coagents -> softmax action coagent`` runs N episodes; on the
    same episodes we compute (a) the coagent estimate, each coagent's own
    ``sum_t gamma^t E^i_t G_t grad log pi_i(U^i_t | X^i_t)``, and (b) the likelihood-ratio
    gradient of the network as a whole, ``sum_t gamma^t G_t grad log P(A_t | history)``, by
    autograd through its exact marginal likelihood (hidden outputs summed out, see
    :mod:`.exact`). Both are unbiased for ``grad J``; the angle between their means over N
    episodes shrinks like ``1/sqrt(N)``, for the synchronous network and for the same network
    with every coagent executing with probability ``execution_probability`` (held outputs).
    (The exact expectation, by enumerating every trajectory of a small MDP, is checked in
    ``tests/test_coagent.py``.)
    """
    with single_thread():
        return _gradient_check(cfg, ctx)


def _gradient_check(cfg: GradientCheckConfig, ctx: RunContext) -> dict[str, float]:
    probe = make_vector_env(cfg.env_id, 1)
    obs_dim, n_actions = probe.single_observation_space.shape[0], probe.single_action_space.n
    scale = torch.tensor(cfg.obs_scale, dtype=torch.float64)
    points = sorted(
        {int(round(x)) for x in np.geomspace(cfg.first_point, cfg.episodes, cfg.points)}
    )
    modes = {"sync": 1.0, "async": cfg.execution_probability}
    nets = {}
    for mode, p in modes.items():  # the same parameters: the modes differ in execution only
        with torch.random.fork_rng():
            torch.manual_seed(ctx.seed)
            nets[mode] = gradient_check_network(obs_dim, n_actions, cfg.hidden, p, cfg.init_std)
    state = ctx.resume() or {"mode": 0, "done": 0, "sums": {}, "curves": {m: [] for m in modes}}
    bar = ctx.progress(
        len(modes) * cfg.episodes, initial=state["mode"] * cfg.episodes + state["done"]
    )
    for mode_index, (mode, _) in enumerate(modes.items()):
        if mode_index < state["mode"]:
            continue
        net = nets[mode]
        while state["done"] < cfg.episodes:
            lo = state["done"]
            hi = min(cfg.episodes, lo + cfg.batch, next(p for p in points if p > lo))
            batch = episode_batch(
                net,
                cfg.env_id,
                hi - lo,
                ctx.seed * 1_000_003 + mode_index * 7919 + lo,
                scale,
                cfg.gamma,
            )
            cpgt, exact = both_estimates(net, batch)
            for name in cpgt:
                state["sums"].setdefault(f"cpgt/{name}", torch.zeros_like(cpgt[name]))
                state["sums"].setdefault(f"exact/{name}", torch.zeros_like(exact[name]))
                state["sums"][f"cpgt/{name}"] += cpgt[name]
                state["sums"][f"exact/{name}"] += exact[name]
            state["done"] = hi
            bar.update(hi - lo)
            if hi in points:
                mean_cpgt = {n: state["sums"][f"cpgt/{n}"] / hi for n in cpgt}
                mean_exact = {n: state["sums"][f"exact/{n}"] / hi for n in cpgt}
                angle = alignment(mean_cpgt, mean_exact).overall_angle_degrees
                state["curves"][mode].append((hi, angle))
                ctx.log(hi, **{f"angle_degrees_{mode}": angle})
            ctx.boundary(lambda s=state: s)
        state = {**state, "mode": mode_index + 1, "done": 0, "sums": {}}
    bar.close()
    line_plot(
        ctx.plots / "angle_vs_episodes.png",
        {
            f"{m} (p={p:g})": (
                [math.log10(n) for n, _ in state["curves"][m]],
                [a for _, a in state["curves"][m]],
            )
            for m, p in modes.items()
        },
        xlabel="log10 episodes",
        ylabel="angle to the exact policy gradient (degrees)",
        title="coagent estimate vs likelihood ratio through the whole network",
    )
    sync, asyn = state["curves"]["sync"], state["curves"]["async"]
    ctx.note(
        f"Mean CPGT estimate vs exact likelihood-ratio gradient on {cfg.env_id}: "
        f"{sync[0][1]:.1f} deg after {sync[0][0]} episodes, {sync[-1][1]:.2f} deg after "
        f"{sync[-1][0]} (synchronous); {asyn[0][1]:.1f} -> {asyn[-1][1]:.2f} deg asynchronous "
        f"(each coagent executes with p = {cfg.execution_probability})."
    )
    return {
        "final_angle_degrees": sync[-1][1],
        "final_angle_degrees_async": asyn[-1][1],
        "first_angle_degrees": sync[0][1],
        "first_angle_degrees_async": asyn[0][1],
    }


# --- coagent.cartpole / coagent.acrobot / coagent.async_cartpole ---------------------------------


@dataclass
class ActorCriticConfig:
    """The actor-critic experiments' settings. Seeds: reported on seeds 0-4
    (``creditlab run coagent.cartpole --seeds 5``, likewise coagent.acrobot and
    coagent.async_cartpole); settings chosen on tuning seeds 100-102. The defaults below are
    the shared recipe; coagent.cartpole and coagent.acrobot override the two actors' step sizes
    (``CARTPOLE_TUNED``, ``ACROBOT``) with the best of one grid for each, chosen with
    ``creditlab tune`` (see those dicts); coagent.async_cartpole keeps these defaults and its
    own changes (the critic reads the held outputs, 64 hidden coagents), chosen on tuning
    seeds 100 and 101 (see that experiment's docstring)."""

    env_id: str = "CartPole-v1"
    """Gymnasium environment id (discrete actions)"""
    total_steps: int = 400_000
    """environment steps for each agent (coagent and backprop get the same)"""
    num_envs: int = 16
    """environments stepped side by side (a Gymnasium vector env)"""
    rollout_steps: int = 16
    """steps per environment between updates"""
    hidden: int = 16
    """hidden units: Bernoulli coagents (coagent actor) or tanh units (backprop actor)"""
    lr: float = 5e-3
    """Adam step size of the coagent actor"""
    lr_bp: float = 1e-2
    """Adam step size of the backprop actor"""
    critic_lr: float = 1e-3
    """Adam step size of the critic (the same critic for both agents)"""
    critic_hidden: tuple[int, ...] = (64, 64)
    """hidden widths of the critic MLP"""
    gamma: float = 0.99
    """discount"""
    td_lambda: float = 0.95
    """lambda of the broadcast TD(lambda) advantage (0: the one-step TD error)"""
    execution_probability: float = 1.0
    """probability that each coagent executes at a step (1: synchronous)"""
    asynchronous_action: bool = True
    """whether the action coagent also executes asynchronously (else it runs every step)"""
    init_std: float = 3.0
    """standard deviation of the hidden coagents' initial weights"""
    normalize_signal: bool = True
    """standardise the broadcast signal over each rollout (one global scale and shift)"""
    gamma_t_weighting: bool = False
    """multiply the signal by gamma^t as in the CPGT (most actor-critic code drops it)"""
    anneal_lr: bool = True
    """decay all step sizes linearly to zero over the run (both agents)"""
    obs_scale: tuple[float, ...] = CARTPOLE_SCALE
    """observations are divided by these (both agents and the critic)"""
    entropy_coef: float = 0.0
    """entropy bonus on the action distribution (backprop: through the network; coagents:
    the action coagent's own entropy, a local term); not part of the paper's rule"""
    reward_scale: float = 0.01
    """rewards are multiplied by this for the critic, so values are of order one (the actor's
    signal is standardised anyway; reported returns are unscaled)"""
    critic_reads_held: bool = False
    """the coagent network's critic reads the held outputs too, v(S_t, U_{t-1}) (the network's
    state when coagents hold their outputs; the backprop actor holds nothing and reads S_t)"""
    log_every: int = 5000
    """environment steps between logged mean training returns"""
    eval_every: int = 50_000
    """environment steps between evaluations (and one at the end: the headline)"""
    eval_episodes: int = 50
    """episodes per evaluation: the learned policy, learning off, own environment seeds"""


def _settings(cfg: ActorCriticConfig) -> LoopSettings:
    return LoopSettings(
        total_steps=cfg.total_steps,
        num_envs=cfg.num_envs,
        rollout_steps=cfg.rollout_steps,
        gamma=cfg.gamma,
        td_lambda=cfg.td_lambda,
        normalize_signal=cfg.normalize_signal,
        gamma_t_weighting=cfg.gamma_t_weighting,
        anneal_lr=cfg.anneal_lr,
        log_every=cfg.log_every,
        obs_scale=cfg.obs_scale,
        reward_scale=cfg.reward_scale,
        entropy_coef=cfg.entropy_coef,
        eval_every=cfg.eval_every,
        eval_episodes=cfg.eval_episodes,
    )


def _build(cfg: ActorCriticConfig, kind: str) -> tuple[Any, Critic]:
    """The actor of one agent variant, and a fresh critic. Variants: ``coagent`` (the config
    as given), ``coagent_hidden_async`` (the action coagent executes at every step), ``bp``."""
    probe = make_vector_env(cfg.env_id, 1)
    obs_dim, n_actions = probe.single_observation_space.shape[0], probe.single_action_space.n
    probe.close()
    if kind.startswith("coagent"):
        agent: Any = CoagentActor(
            obs_dim,
            n_actions,
            cfg.hidden,
            cfg.lr,
            cfg.execution_probability,
            cfg.asynchronous_action and kind != "coagent_hidden_async",
            cfg.init_std,
            cfg.critic_reads_held,
        )
    else:
        agent = BackpropActor(obs_dim, n_actions, cfg.hidden, cfg.lr_bp)
    return agent, Critic(agent.critic_features, cfg.critic_hidden, cfg.critic_lr)


def _rolling(values: list[float], window: int = 100) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


LABELS = {
    "coagent": "coagent network",
    "coagent_hidden_async": "coagent network, action coagent synchronous",
    "bp": "backprop actor-critic",
}


def _suffix(kind: str) -> str:
    """Metric suffix of an agent variant: none for the coagent network, ``_bp``, ..."""
    return "" if kind == "coagent" else f"_{kind.removeprefix('coagent_')}"


def actor_critic_experiment(
    cfg: ActorCriticConfig, ctx: RunContext, kinds: tuple[str, ...] = ("coagent", "bp")
) -> dict[str, float]:
    """Each agent variant in turn for ``total_steps``: the same critic recipe, rollouts and
    environment seed. Resumable at any rollout boundary."""
    state = ctx.resume() or {"phase": 0, "results": {}, "loop": None}
    for index, kind in enumerate(kinds):
        if index < state["phase"]:
            continue
        with torch.random.fork_rng():  # initial weights from (seed, agent) only
            torch.manual_seed(ctx.seed * 1000 + index)
            agent, critic = _build(cfg, kind)
        resume = state["loop"] if index == state["phase"] else None
        result = train_actor_critic(
            agent,
            critic,
            cfg.env_id,
            _settings(cfg),
            ctx,
            kind,
            resume=resume,
            wrap_state=lambda loop, i=index, done=state["results"]: {
                "phase": i,
                "results": done,
                "loop": loop,
            },
        )
        state = {"phase": index + 1, "results": {**state["results"], kind: result}, "loop": None}
        ctx.checkpoint(state)
    results = state["results"]
    line_plot(
        ctx.plots / "returns.png",
        {
            f"{LABELS[k]} ({cfg.hidden} hidden)": (
                results[k]["return_steps"],
                _rolling(results[k]["returns"]),
            )
            for k in kinds
        },
        xlabel="environment steps",
        ylabel="return (mean of the last 100 episodes)",
        title=f"{cfg.env_id}: coagent vs backprop actor-critic, same critic and budget",
    )
    line_plot(
        ctx.plots / "eval_returns.png",
        {
            LABELS[k]: (
                [steps for steps, _ in results[k]["evaluations"]],
                [float(np.mean(returns)) for _, returns in results[k]["evaluations"]],
            )
            for k in kinds
        },
        xlabel="environment steps",
        ylabel=f"evaluation return (mean of {cfg.eval_episodes} episodes, learning off)",
        title=f"{cfg.env_id}: evaluation episodes",
    )
    metrics: dict[str, float] = {}
    for kind in kinds:  # the headline first: the final evaluation return
        if results[kind]["evaluations"]:  # (none when eval_episodes = 0)
            final_steps, final_returns = results[kind]["evaluations"][-1]
            assert final_steps == results[kind]["env_steps"]
            metrics[f"eval_return{_suffix(kind)}"] = float(np.mean(final_returns))
    for kind in kinds:
        suffix = _suffix(kind)
        metrics[f"mean_return_last_100{suffix}"] = float(np.mean(results[kind]["returns"][-100:]))
        metrics[f"episodes{suffix}"] = len(results[kind]["returns"])
        # timing metrics end in _per_second (kept out of the reproducibility check)
        prefix = f"{suffix[1:]}_" if suffix else ""
        metrics[f"{prefix}env_steps_per_second"] = results[kind]["env_steps_per_second"]
    ctx.note(
        f"{cfg.env_id}, {cfg.total_steps} environment steps each; final evaluation return "
        f"({cfg.eval_episodes} episodes, learning off) / mean training return of the last 100 "
        "episodes: "
        + ", ".join(
            f"{LABELS[k]} {metrics.get('eval_return' + _suffix(k), math.nan):.1f} / "
            f"{metrics['mean_return_last_100' + _suffix(k)]:.1f}"
            for k in kinds
        )
        + "."
    )
    return metrics


# Chosen on tuning seeds 100-102 at quick scale (final evaluation return, mean +- std), one grid
# for both actors, run as `creditlab tune coagent.cartpole --zip --grid lr=... --grid lr_bp=...
# --metric eval_return --metric eval_return_bp --seeds 100-102` (each run trains both actors,
# independently, so a zipped grid tunes each on its own metric):
#   coagent lr     2.5e-3: 295 +- 102, 5e-3: 368 +- 121, 1e-2: 431 +- 59, 2e-2: 410 +- 81,
#                  4e-2: 498.1 +- 1.3, 8e-2: 308 +- 170
#   backprop lr_bp 3e-4: 172 +- 45, 5e-4: 382 +- 57, 1e-3: 476.9 +- 17.8, 3e-3: 412 +- 150,
#                  1e-2: 340 +- 141, 3e-2: 386 +- 179
CARTPOLE_TUNED = {"lr": 4e-2, "lr_bp": 1e-3}

CARTPOLE_SCALES = {
    "smoke": {
        "total_steps": 10_000,
        "num_envs": 8,
        "log_every": 1000,
        "eval_every": 5000,
        "eval_episodes": 4,
    },
    "quick": {},
    "paper": {"total_steps": 1_000_000},
}


@experiment(
    "coagent.cartpole",
    config=ActorCriticConfig,
    paper_title=PAPER,
    scales={name: {**CARTPOLE_TUNED, **overrides} for name, overrides in CARTPOLE_SCALES.items()},
    demo=True,
)
def cartpole(cfg: ActorCriticConfig, ctx: RunContext) -> dict[str, float]:
    """CartPole-v1: 4 -> 16 Bernoulli coagents -> softmax coagent vs backprop actor-critic."""
    with single_thread():
        return actor_critic_experiment(cfg, ctx)


@experiment(
    "coagent.async_cartpole",
    config=ActorCriticConfig,
    paper_title=PAPER,
    scales={
        name: {**overrides, "execution_probability": 0.5, "critic_reads_held": True, "hidden": 64}
        for name, overrides in CARTPOLE_SCALES.items()
    },
    demo=True,
)
def async_cartpole(cfg: ActorCriticConfig, ctx: RunContext) -> dict[str, float]:
    """CartPole-v1 with asynchronous coagents: each executes with probability 0.5 per step.

    Two coagent networks: every coagent asynchronous (the action is then held half the time,
    ``eval_return``), and only the hidden coagents asynchronous (``eval_return_hidden_async``);
    plus the (synchronous) backprop actor-critic of the same size. The coagent networks' critic
    reads the held outputs, ``v(S_t, U_{t-1})`` (see :mod:`.critic`: with ``v(S_t)`` the
    broadcast TD error is biased).

    Settings chosen on tuning seeds 100 and 101 (quick scale, every coagent asynchronous,
    mean training return of the last 100 episodes): 16 hidden coagents 63.7 and 66.5; 64
    hidden coagents 96.8 and 90.9 (with ``v(S_t)`` instead: 101.3 and 96.9, the same within
    noise); lr 1e-2 instead of 5e-3: 102.2 and 105.8, not clearly better; TD(0.99), TD(0.8),
    ``init_std`` 1 and twice the steps were no better on seed 100. What limits the fully
    asynchronous network is the held action itself: CartPole controllers whose action is held
    with probability 0.5 per step, tuned directly for it (a linear rule by hill climbing, a
    16-unit MLP by evolution strategies), reach mean returns of only about 140-160."""
    with single_thread():
        return actor_critic_experiment(cfg, ctx, ("coagent", "coagent_hidden_async", "bp"))


# Step sizes chosen on tuning seeds 100-102 at quick scale like CARTPOLE_TUNED's (final
# evaluation return, mean +- std; random play -500):
#   coagent lr     2.5e-3: -99.6 +- 3.6, 5e-3: -93.5 +- 2.1, 1e-2: -87.1 +- 1.6,
#                  2e-2: -85.8 +- 1.5, 4e-2: -85.0 +- 3.7 (the last three within noise)
#   backprop lr_bp 3e-3: -88.9 +- 3.5, 1e-2: -83.8 +- 2.2, 3e-2: -81.3 +- 1.5, 6e-2: -86.1 +- 4.0,
#                  1e-1: -225 +- 238
ACROBOT = {
    "env_id": "Acrobot-v1",
    "obs_scale": ACROBOT_SCALE,
    "entropy_coef": 0.01,
    "lr": 4e-2,
    "lr_bp": 3e-2,
    "eval_every": 100_000,
}


@experiment(
    "coagent.acrobot",
    config=ActorCriticConfig,
    paper_title=PAPER,
    scales={
        "smoke": {
            **ACROBOT,
            "total_steps": 4000,
            "num_envs": 8,
            "log_every": 1000,
            "eval_every": 2000,
            "eval_episodes": 2,
        },
        "quick": {**ACROBOT, "total_steps": 200_000},
        "paper": {**ACROBOT, "total_steps": 1_000_000},
    },
    demo=True,
)
def acrobot(cfg: ActorCriticConfig, ctx: RunContext) -> dict[str, float]:
    """Acrobot-v1: 6 -> 16 Bernoulli coagents -> softmax action coagent vs backprop actor-critic."""
    with single_thread():
        return actor_critic_experiment(cfg, ctx)


# --- coagent.option_critic and coagent.option_critic_grid -----------------------------------

OC_METHODS = ("coagent_oc", "classic_oc", "actor_critic")
OPTION_METHODS = ("coagent_oc", "classic_oc")
OC_LABELS = {
    "coagent_oc": "option-critic as a coagent network (CPGT updates)",
    "classic_oc": "option-critic, Bacon et al.'s updates",
    "actor_critic": "flat actor-critic",
}


@dataclass
class FourRoomsProtocol:
    """The Four Rooms protocol every learner gets: Bacon et al.'s, with a goal switch."""

    runs: int = 350
    """independent runs, simulated side by side and averaged (Bacon et al.: 350)"""
    episodes: int = 2000
    """episodes per run (the budget: the same for every learner)"""
    switch_episode: int = 1000
    """episode at which the goal moves to a random cell of the lower-right room"""
    n_options: int = 4
    """options"""
    gamma: float = 0.99
    """discount"""
    temperature: float = 0.01
    """softmax temperature of every tabular policy (Bacon et al.'s script and command: 0.01)"""
    max_episode_steps: int = 1000
    """episodes are cut after this many steps (Bacon et al.'s nsteps: 1000)"""
    max_mean_steps: int = 150
    """step budget of a run, per episode: a run that has taken max_mean_steps x episodes steps
    stops, and its remaining episodes count as cut (max_episode_steps each); the number of such
    runs is reported (runs_out_of_budget_*). Not in Bacon et al.: it bounds the wall time, since
    all runs step together until the slowest has finished"""


@dataclass
class OptionCriticConfig(FourRoomsProtocol):
    """Step sizes: chosen by ``creditlab run coagent.option_critic_grid --seeds 100-104``
    (quick scale, tuning seeds 100-104), for each learner the (policy, critic) point of the
    same grid, policy (0.01, 0.02, 0.05, 0.1) x critic (0.25, 0.5, 1), with the fewest steps to
    goal averaged over all episodes and the five seeds. Reported on seeds 0-4:
    ``creditlab run coagent.option_critic --seeds 5``."""

    lr_policy_coagent_oc: float = 0.05
    """coagent option-critic: step size of its three coagents (termination, policy over options,
    intra-option policy); tuned (grid mean 62.8 steps over the tuning seeds)"""
    lr_critic_coagent_oc: float = 0.5
    """coagent option-critic: step size of its critic v(S_t, O_{t-1}); tuned"""
    lr_policy_classic_oc: float = 0.02
    """Bacon et al.'s option-critic: intra-option and termination step size; tuned (57.8; their
    0.25 did worse on a coarser grid)"""
    lr_critic_classic_oc: float = 0.5
    """Bacon et al.'s option-critic: step size of Q_Omega and Q_U; tuned (Bacon et al.: 0.5)"""
    lr_policy_actor_critic: float = 0.02
    """flat actor-critic: policy step size; tuned (38.4)"""
    lr_critic_actor_critic: float = 0.5
    """flat actor-critic: step size of its critic v(S); tuned"""
    eval_every: int = 200
    """training episodes between evaluations (there is one at the switch and one at the end)"""
    eval_episodes: int = 10
    """evaluation episodes per run and evaluation: learned policy, learning off, own seed"""
    smooth: int = 10
    """episodes per point of the logged steps-to-goal curve"""


def four_rooms_learner(
    method: str, protocol: FourRoomsProtocol, runs: int, lr_policy: Any, lr_critic: Any
) -> Any:
    """One of the three learners with ``runs`` runs side by side. ``lr_policy`` is the step
    size of every policy-like table it has (coagent option-critic: termination, policy over
    options, intra-option policy; Bacon et al.'s: intra-option policy and termination; flat:
    the policy), ``lr_critic`` that of its critic tables; each a number or one per run."""
    p = protocol
    if method == "coagent_oc":
        return CoagentOptionCritic(
            runs, p.n_options, lr_critic, lr_policy, lr_policy, lr_policy, p.gamma, p.temperature
        )
    if method == "classic_oc":
        return ClassicOptionCritic(
            runs, p.n_options, lr_critic, lr_policy, lr_policy, p.gamma, p.temperature
        )
    assert method == "actor_critic", method
    return FlatActorCritic(runs, lr_critic, lr_policy, p.gamma, p.temperature)


def _eval_points(cfg: OptionCriticConfig) -> list[int]:
    """Training episodes after which every run is evaluated: every ``eval_every``, at the
    switch and at the end."""
    every = range(cfg.eval_every, cfg.episodes + 1, cfg.eval_every) if cfg.eval_every else ()
    return sorted({*every, cfg.switch_episode, cfg.episodes} & set(range(1, cfg.episodes + 1)))


def train_four_rooms(
    ctx: RunContext,
    label: str,
    agent: Any,
    runs: FourRoomsRuns,
    evaluations: list[dict[str, Any]],
    snapshot: Any,
    evaluation: tuple[list[int], int, int] | None = None,
    bar: Any = None,
) -> float:
    """Step ``runs`` until every run has finished its episodes, pausing at each evaluation
    point (``evaluation = (points, episodes, seed)``: after that many training episodes) to
    evaluate every run with learning off (:func:`.option_critic.evaluate`). Each evaluation is
    appended to ``evaluations`` and logged as ``eval_steps_<label>``; ``snapshot()`` is the
    checkpoint state at a step boundary. Returns the seconds spent evaluating."""
    points, episodes, seed = evaluation or ([], 0, 0)
    iteration, eval_seconds = 0, 0.0
    while True:
        last = evaluations[-1]["episode"] if evaluations else 0
        upcoming = [e for e in points if e > last]
        runs.pause_at = upcoming[0] if upcoming else runs.episodes
        if upcoming and runs.paused():
            clock = time.perf_counter()
            result = evaluate(
                agent, runs.goals_of_last_episode(), episodes, seed, runs.max_episode_steps
            )
            if hasattr(agent, "termination"):  # beta(s, o), mean over options and runs
                result["beta"] = termination_probabilities(agent).mean(axis=(0, 2))
            evaluations.append({"episode": upcoming[0], **result})
            ctx.log(upcoming[0], **{f"eval_steps_{label}": float(result["steps"].mean())})
            eval_seconds += time.perf_counter() - clock
            continue
        if runs.done():
            return eval_seconds
        runs.step(agent)
        iteration += 1
        if iteration % 16 == 0:
            if bar is not None:
                bar.update(int(runs.episode.min()) - bar.n)
            ctx.boundary(snapshot)


def _smoothed(values: np.ndarray, k: int) -> tuple[list[float], list[float]]:
    """Means of consecutive blocks of ``k`` episodes, at the blocks' centres."""
    starts = range(0, len(values) - k + 1, k)
    return [s + k / 2 for s in starts], [float(values[s : s + k].mean()) for s in starts]


@experiment(
    "coagent.option_critic",
    config=OptionCriticConfig,
    paper_title="Bacon, Harb & Precup, 'The Option-Critic Architecture' (AAAI 2017), via " + PAPER,
    scales={
        "smoke": {
            "runs": 8,
            "episodes": 50,
            "switch_episode": 40,
            "max_episode_steps": 300,
            "max_mean_steps": 300,  # no budget: every episode runs
            "lr_policy_coagent_oc": 0.2,
            "lr_policy_actor_critic": 0.2,
            "lr_policy_classic_oc": 0.25,
            "eval_every": 20,
            "eval_episodes": 2,
            "smooth": 10,
        },
        "quick": {"runs": 20, "episodes": 1000, "switch_episode": 500, "eval_every": 100},
        "paper": {},
    },
    demo=True,
)
def option_critic(cfg: OptionCriticConfig, ctx: RunContext) -> dict[str, float]:
    """Four Rooms with a goal switch: coagent option-critic vs classic option-critic vs flat AC.

    Each learner runs ``runs`` runs of ``episodes`` episodes with its tuned step sizes (see
    :class:`OptionCriticConfig`); every ``eval_every`` episodes, at the switch and at the end,
    each run is evaluated on ``eval_episodes`` episodes with learning off (the same start cells
    for every learner). Headline: the final evaluation's steps to goal; the training curves
    are Bacon et al.'s figure.
    """
    points = _eval_points(cfg)
    state = ctx.resume() or {"method": 0, "results": {}, "current": None}
    for index, method in enumerate(OC_METHODS):
        if index < state["method"]:
            continue
        lr_policy = getattr(cfg, f"lr_policy_{method}")
        lr_critic = getattr(cfg, f"lr_critic_{method}")
        agent = four_rooms_learner(method, cfg, cfg.runs, lr_policy, lr_critic)
        runs = FourRoomsRuns(
            cfg.runs,
            cfg.episodes,
            cfg.switch_episode,
            ctx.seed * 101 + index,
            cfg.max_episode_steps,
            cfg.max_mean_steps * cfg.episodes,
        )
        current = state["current"] or {"agent": None, "runs": None, "evaluations": [], "seconds": 0}
        if current["agent"] is not None:
            agent.load_state_dict(current["agent"])
            runs.load_state_dict(current["runs"])
        evaluations, started = current["evaluations"], time.perf_counter()

        def snapshot(
            i=index, a=agent, r=runs, ev=evaluations, c=current, t0=started, done=state["results"]
        ) -> dict:
            seconds = c["seconds"] + time.perf_counter() - t0
            return {
                "results": done,
                "method": i,
                "current": {
                    "agent": a.state_dict(),
                    "runs": r.state_dict(),
                    "evaluations": ev,
                    "seconds": seconds,
                },
            }

        bar = ctx.progress(
            cfg.episodes, f"{ctx.experiment.name} [{method}]", int(runs.episode.min())
        )
        eval_seconds = train_four_rooms(
            ctx,
            method,
            agent,
            runs,
            evaluations,
            snapshot,
            (points, cfg.eval_episodes, EVAL_SEED + ctx.seed),  # one generator: no overlap
            bar,
        )
        bar.close()
        result = {
            "steps": runs.steps,
            "options": runs.options,
            "evaluations": evaluations,
            "seconds": current["seconds"] + time.perf_counter() - started - eval_seconds,
            "env_steps": runs.total_steps,
            "out_of_budget": int(runs.out_of_budget.sum()),
        }
        state = {
            "method": index + 1,
            "results": {**state["results"], method: result},
            "current": None,
        }
        ctx.checkpoint(state)
    return _option_critic_report(cfg, ctx, state["results"])


def _option_critic_report(
    cfg: OptionCriticConfig, ctx: RunContext, results: dict[str, Any]
) -> dict[str, float]:
    """The metrics stream, the figures and the metrics of coagent.option_critic."""
    k, switch = cfg.smooth, cfg.switch_episode
    mean_steps = {m: results[m]["steps"].mean(0) for m in OC_METHODS}  # averaged over runs
    durations = {  # mean option duration of each episode (steps per option), over runs
        m: (results[m]["steps"] / np.maximum(results[m]["options"], 1)).mean(0)
        for m in OPTION_METHODS
    }
    for start in range(0, cfg.episodes - k + 1, k):
        window = slice(start, start + k)
        ctx.log(
            start + k,
            **{f"steps_{m}": float(mean_steps[m][window].mean()) for m in OC_METHODS},
            **{f"option_duration_{m}": float(durations[m][window].mean()) for m in OPTION_METHODS},
        )
    runs_label = f"mean of {cfg.runs} runs"
    line_plot(
        ctx.plots / "steps_to_goal.png",
        {OC_LABELS[m]: _smoothed(mean_steps[m], k) for m in OC_METHODS},
        xlabel=f"episode (goal moves at {switch})",
        ylabel=f"steps to goal ({runs_label})",
        title="Four Rooms",
        logy=True,
    )
    before_and_after(
        ctx.plots / "steps_before_and_after_switch.png",
        {OC_LABELS[m]: _smoothed(mean_steps[m][:switch], k) for m in OC_METHODS},
        {OC_LABELS[m]: _smoothed(mean_steps[m][switch:], k) for m in OC_METHODS},
        ylabel=f"steps to goal ({runs_label})",
        title="Four Rooms: steps to goal before and after the goal moves",
        logy=True,
    )
    line_plot(
        ctx.plots / "option_durations.png",
        {OC_LABELS[m]: _smoothed(durations[m], k) for m in OPTION_METHODS},
        xlabel=f"episode (goal moves at {switch})",
        ylabel=f"mean option duration, steps ({runs_label})",
        title="Four Rooms: how long options last",
    )
    evaluations = {m: {e["episode"]: e for e in results[m]["evaluations"]} for m in OC_METHODS}
    line_plot(
        ctx.plots / "eval_steps.png",
        {
            OC_LABELS[m]: (
                list(evaluations[m]),
                [float(e["steps"].mean()) for e in evaluations[m].values()],
            )
            for m in OC_METHODS
        },
        xlabel=f"training episodes (goal moves at {switch})",
        ylabel=f"evaluation steps to goal (learning off, {cfg.eval_episodes} episodes per run)",
        title="Four Rooms: evaluation episodes",
        logy=True,
    )
    panels = {}
    for m in OPTION_METHODS:
        at_switch = evaluations[m][switch]
        with np.errstate(invalid="ignore", divide="ignore"):
            frequency = at_switch["terminations"] / np.where(
                at_switch["visits"] > 0, at_switch["visits"], np.nan
            )
        short = "coagent OC" if m == "coagent_oc" else "Bacon et al.'s OC"
        panels[f"{short}: beta(s, o), mean over o"] = at_switch["beta"]
        panels[f"{short}: options ending per visit"] = frequency
    on_the_map(
        ctx.plots / "terminations.png",
        panels,
        label="probability",
        title=f"Where options terminate, after {switch} episodes (goal G; evaluation episodes, "
        "learning off)",
        goal=EAST_DOORWAY,
    )
    window = min(100, switch, cfg.episodes - switch)
    final = cfg.episodes
    metrics: dict[str, float] = {}
    for m in OC_METHODS:  # the headline first: the final evaluation
        metrics[f"eval_steps_final_{m}"] = float(evaluations[m][final]["steps"].mean())
    for m in OC_METHODS:
        metrics[f"eval_steps_before_switch_{m}"] = float(evaluations[m][switch]["steps"].mean())
        metrics[f"steps_before_switch_{m}"] = float(mean_steps[m][switch - window : switch].mean())
        metrics[f"steps_after_switch_{m}"] = float(mean_steps[m][switch : switch + window].mean())
        metrics[f"steps_final_{m}"] = float(mean_steps[m][-window:].mean())
        metrics[f"mean_steps_{m}"] = float(mean_steps[m].mean())
    for m in OC_METHODS:
        metrics[f"runs_out_of_budget_{m}"] = float(results[m]["out_of_budget"])
    for m in OPTION_METHODS:
        metrics[f"option_duration_before_switch_{m}"] = float(
            durations[m][switch - window : switch].mean()
        )
        metrics[f"option_duration_final_{m}"] = float(durations[m][-window:].mean())
    metrics["env_steps_per_second"] = results["coagent_oc"]["env_steps"] / max(
        results["coagent_oc"]["seconds"], 1e-9
    )
    ctx.note(
        f"Four Rooms, {cfg.runs} runs x {cfg.episodes} episodes, goal moved at {switch}. Steps to "
        f"goal in the final evaluation ({cfg.eval_episodes} episodes per run, learning off) / in "
        f"training, the {window} episodes before the switch / the {window} after / the last "
        f"{window}: "
        + "; ".join(
            f"{m} {metrics[f'eval_steps_final_{m}']:.1f} / "
            f"{metrics[f'steps_before_switch_{m}']:.1f} / "
            f"{metrics[f'steps_after_switch_{m}']:.1f} / {metrics[f'steps_final_{m}']:.1f}"
            for m in OC_METHODS
        )
        + ". Step sizes (policy, critic): "
        + ", ".join(
            f"{m} ({getattr(cfg, f'lr_policy_{m}'):g}, {getattr(cfg, f'lr_critic_{m}'):g})"
            for m in OC_METHODS
        )
        + "."
    )
    return metrics


@dataclass
class OptionCriticGridConfig(FourRoomsProtocol):
    """The tuning protocol of coagent.option_critic: every learner gets every (policy step
    size, critic step size) of the same grid, the same runs, episodes and goal switch. Run it on
    the tuning seeds only: ``creditlab run coagent.option_critic_grid --seeds 100-104``."""

    policy_lrs: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1)
    """policy step sizes (each learner's every policy-like table: see four_rooms_learner). A
    coarser grid on seed 100, (0.05, 0.1, 0.25, 0.5, 1) x critic (0.1, 0.5), was best at 0.05
    for all three learners, at its lower edge: hence this one"""
    critic_lrs: tuple[float, ...] = (0.25, 0.5, 1.0)
    """critic step sizes (on the coarse grid 0.5 beat 0.1 for all three learners)"""


def grid_metric(method: str, lr_policy: float, lr_critic: float) -> str:
    """The name of a grid point's metric: mean steps to goal over all episodes and runs."""
    return f"mean_steps_{method}_lr{lr_policy:g}_critic{lr_critic:g}"


@experiment(
    "coagent.option_critic_grid",
    config=OptionCriticGridConfig,
    paper_title="Bacon, Harb & Precup, 'The Option-Critic Architecture' (AAAI 2017), via " + PAPER,
    scales={
        "smoke": {
            "runs": 2,
            "episodes": 30,
            "switch_episode": 20,
            "max_episode_steps": 200,
            "max_mean_steps": 100,
            "policy_lrs": (0.25, 1.0),
            "critic_lrs": (0.5,),
        },
        "quick": {"runs": 6, "episodes": 1000, "switch_episode": 500},
        "paper": {},
    },
)
def option_critic_grid(cfg: OptionCriticGridConfig, ctx: RunContext) -> dict[str, float]:
    """The step-size grid for the three Four Rooms learners (tuning seeds >= 100 only).

    Every grid point runs ``runs`` runs side by side (one vectorised loop per learner, a step
    size per run); its metric is the mean steps to goal over every episode of every run, before
    and after the switch (``mean_steps_<learner>_lr<policy>_critic<critic>``, lower is better).
    coagent.option_critic takes, for each learner, the point with the lowest mean over the
    tuning seeds.
    """
    grid = [(p, c) for p in cfg.policy_lrs for c in cfg.critic_lrs]
    point = np.repeat(np.arange(len(grid)), cfg.runs)  # the grid point of every run
    lr_policy = np.array([p for p, _ in grid])[point]
    lr_critic = np.array([c for _, c in grid])[point]
    state = ctx.resume() or {"method": 0, "results": {}, "current": None}
    for index, method in enumerate(OC_METHODS):
        if index < state["method"]:
            continue
        agent = four_rooms_learner(method, cfg, len(grid) * cfg.runs, lr_policy, lr_critic)
        runs = FourRoomsRuns(
            len(grid) * cfg.runs,
            cfg.episodes,
            cfg.switch_episode,
            ctx.seed * 101 + index,
            cfg.max_episode_steps,
            cfg.max_mean_steps * cfg.episodes,
        )
        if state["current"] is not None:
            agent.load_state_dict(state["current"]["agent"])
            runs.load_state_dict(state["current"]["runs"])

        def snapshot(i=index, a=agent, r=runs, done=state["results"]) -> dict:
            return {
                "results": done,
                "method": i,
                "current": {"agent": a.state_dict(), "runs": r.state_dict()},
            }

        bar = ctx.progress(
            cfg.episodes, f"{ctx.experiment.name} [{method}]", int(runs.episode.min())
        )
        train_four_rooms(ctx, method, agent, runs, [], snapshot, None, bar)
        bar.close()
        per_point = np.array(
            [
                (runs.steps[point == g].mean(), runs.out_of_budget[point == g].sum())
                for g in range(len(grid))
            ]
        ).T  # (mean steps, runs out of budget) per point
        state = {
            "method": index + 1,
            "results": {**state["results"], method: per_point},
            "current": None,
        }
        ctx.checkpoint(state)
    metrics = {
        grid_metric(m, p, c): float(state["results"][m][0, g])
        for m in OC_METHODS
        for g, (p, c) in enumerate(grid)
    }
    for m in OC_METHODS:
        metrics[f"runs_out_of_budget_{m}"] = float(state["results"][m][1].sum())
    for g, (p, c) in enumerate(grid):
        ctx.log(g, **{f"mean_steps_{m}": metrics[grid_metric(m, p, c)] for m in OC_METHODS})
    line_plot(
        ctx.plots / "grid.png",
        {
            f"{OC_LABELS[m]}, critic {c:g}": (
                list(cfg.policy_lrs),
                [metrics[grid_metric(m, p, c)] for p in cfg.policy_lrs],
            )
            for m in OC_METHODS
            for c in cfg.critic_lrs
        },
        xlabel="policy step size",
        ylabel=f"steps to goal, mean over {cfg.episodes} episodes x {cfg.runs} runs",
        title="Four Rooms step-size grid (tuning seeds)",
        logy=True,
    )
    for m in OC_METHODS:
        best = min(grid, key=lambda pc, m=m: metrics[grid_metric(m, *pc)])
        ctx.note(
            f"{m}: lowest mean steps {metrics[grid_metric(m, *best)]:.1f} at policy step size "
            f"{best[0]:g}, critic step size {best[1]:g} (this seed)."
        )
    return metrics
