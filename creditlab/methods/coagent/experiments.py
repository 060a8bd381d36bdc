"""Coagent network experiments: the gradient check, CartPole/Acrobot against a backprop
actor-critic, asynchronous CartPole, and option-critic on Four Rooms.

Every experiment here runs its tiny-tensor loops on one torch thread (restored afterwards):
at these sizes extra threads only add contention.
"""

from __future__ import annotations

import functools
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
    BackpropActor,
    CoagentActor,
    LoopSettings,
    make_vector_env,
    train_actor_critic,
)
from creditlab.methods.coagent.coagents import BernoulliCoagent, SoftmaxCoagent
from creditlab.methods.coagent.critic import Critic
from creditlab.methods.coagent.exact import likelihood_ratio_gradient
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
)
from creditlab.registry import experiment
from creditlab.report import line_plot
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
    log_every: int = 5000
    """environment steps between logged mean returns"""


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
        )
    else:
        agent = BackpropActor(obs_dim, n_actions, cfg.hidden, cfg.lr_bp)
    return agent, Critic(obs_dim, cfg.critic_hidden, cfg.critic_lr)


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
    metrics: dict[str, float] = {}
    for kind in kinds:
        suffix = _suffix(kind)
        metrics[f"mean_return_last_100{suffix}"] = float(np.mean(results[kind]["returns"][-100:]))
        metrics[f"episodes{suffix}"] = len(results[kind]["returns"])
        # timing metrics end in _per_second (kept out of the reproducibility check)
        prefix = f"{suffix[1:]}_" if suffix else ""
        metrics[f"{prefix}env_steps_per_second"] = results[kind]["env_steps_per_second"]
    ctx.note(
        f"{cfg.env_id}, {cfg.total_steps} environment steps each, mean return of the last 100 "
        "episodes: "
        + ", ".join(
            f"{LABELS[k]} {metrics['mean_return_last_100' + _suffix(k)]:.1f}" for k in kinds
        )
        + "."
    )
    return metrics


CARTPOLE_SCALES = {
    "smoke": {"total_steps": 10_000, "num_envs": 8, "log_every": 1000},
    "quick": {},
    "paper": {"total_steps": 1_000_000},
}


@experiment(
    "coagent.cartpole",
    config=ActorCriticConfig,
    paper_title=PAPER,
    scales=CARTPOLE_SCALES,
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
        name: {**overrides, "execution_probability": 0.5}
        for name, overrides in CARTPOLE_SCALES.items()
    },
    demo=True,
)
def async_cartpole(cfg: ActorCriticConfig, ctx: RunContext) -> dict[str, float]:
    """CartPole-v1 with asynchronous coagents: each executes with probability 0.5 per step.

    Two coagent networks: every coagent asynchronous (the action is then held half the time,
    ``mean_return_last_100``), and only the hidden coagents asynchronous
    (``mean_return_last_100_hidden_async``); plus the backprop actor-critic."""
    with single_thread():
        return actor_critic_experiment(cfg, ctx, ("coagent", "coagent_hidden_async", "bp"))


ACROBOT = {"env_id": "Acrobot-v1", "obs_scale": ACROBOT_SCALE, "entropy_coef": 0.01}


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


# --- coagent.option_critic ------------------------------------------------------------------


@dataclass
class OptionCriticConfig:
    runs: int = 350
    """independent runs (seeds), simulated side by side and averaged"""
    episodes: int = 2000
    """episodes per run"""
    switch_episode: int = 1000
    """episode at which the goal moves to a random cell of the lower-right room"""
    n_options: int = 4
    """options"""
    gamma: float = 0.99
    """discount"""
    lr_critic: float = 0.5
    """critic step size (Bacon et al.: 0.5)"""
    lr_intra: float = 0.25
    """classic version: intra-option policy step size (Bacon et al.: 0.25)"""
    lr_termination: float = 0.25
    """termination step size (Bacon et al.: 0.25)"""
    lr_actor: float = 0.05
    """TD-error-driven versions (coagent option-critic, flat actor-critic): step size of the
    softmax coagents (intra-option policy, policy over options, flat policy)"""
    epsilon: float = 0.01
    """classic version only: epsilon-greedy policy over options (Bacon et al.: 0.01)"""
    temperature: float = 0.01
    """softmax temperature of the tabular policies (Bacon et al.'s script: 0.01)"""
    max_episode_steps: int = 1000
    """episodes are cut after this many steps (Bacon et al.'s nsteps: 1000)"""
    smooth: int = 10
    """episodes per point of the logged steps-to-goal curve"""


OC_METHODS = ("coagent_oc", "classic_oc", "actor_critic")


def _snapshot(
    state: dict, index: int, method: str, agent: Any, runs: FourRoomsRuns, elapsed: float
) -> dict[str, Any]:
    """The exact state of the Four Rooms experiment in the middle of ``method``."""
    return {
        **state,
        "method": index,
        "agent": agent.state_dict(),
        "runs": runs.state_dict(),
        "seconds": {**state["seconds"], method: elapsed},
    }


def _four_rooms_agent(cfg: OptionCriticConfig, method: str) -> Any:
    if method == "coagent_oc":
        return CoagentOptionCritic(
            cfg.runs,
            cfg.n_options,
            cfg.lr_critic,
            cfg.lr_termination,
            cfg.lr_actor,
            cfg.lr_actor,
            cfg.gamma,
            cfg.temperature,
        )
    if method == "classic_oc":
        return ClassicOptionCritic(
            cfg.runs,
            cfg.n_options,
            cfg.lr_critic,
            cfg.lr_termination,
            cfg.lr_intra,
            cfg.gamma,
            cfg.epsilon,
            cfg.temperature,
        )
    return FlatActorCritic(cfg.runs, cfg.lr_critic, cfg.lr_actor, cfg.gamma, cfg.temperature)


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
            "lr_actor": 0.2,
            "smooth": 10,
        },
        "quick": {"runs": 20, "episodes": 1000, "switch_episode": 500},
        "paper": {},
    },
    demo=True,
)
def option_critic(cfg: OptionCriticConfig, ctx: RunContext) -> dict[str, float]:
    """Four Rooms with a goal switch: coagent option-critic vs classic option-critic vs flat AC."""
    state = ctx.resume() or {"method": 0, "steps": {}, "seconds": {}, "agent": None, "runs": None}
    bar = ctx.progress(len(OC_METHODS) * cfg.episodes, initial=state["method"] * cfg.episodes)
    for index, method in enumerate(OC_METHODS):
        if index < state["method"]:
            continue
        agent = _four_rooms_agent(cfg, method)
        runs = FourRoomsRuns(
            cfg.runs,
            cfg.episodes,
            cfg.switch_episode,
            ctx.seed * 101 + index,
            cfg.max_episode_steps,
        )
        seconds = 0.0
        if state["agent"] is not None:
            agent.load_state_dict(state["agent"])
            runs.load_state_dict(state["runs"])
            seconds = state["seconds"].get(method, 0.0)
        started, shown = time.perf_counter(), int(runs.episode.min())
        while not runs.done():
            runs.step(agent)
            if runs.total_steps % 64 == 0 or runs.done():
                bar.update(int(runs.episode.min()) - shown)
                shown = int(runs.episode.min())
                elapsed = seconds + time.perf_counter() - started
                ctx.boundary(
                    functools.partial(_snapshot, state, index, method, agent, runs, elapsed)
                )
        elapsed = seconds + time.perf_counter() - started
        state = {
            "method": index + 1,
            "steps": {**state["steps"], method: runs.steps},
            "seconds": {
                **state["seconds"],
                method: elapsed,
                f"{method}_env_steps": runs.total_steps,
            },
            "agent": None,
            "runs": None,
        }
        ctx.checkpoint(state)
    bar.close()
    mean_steps = {m: state["steps"][m].mean(0) for m in OC_METHODS}  # averaged over runs
    k = cfg.smooth
    for start in range(0, cfg.episodes - k + 1, k):
        ctx.log(
            start + k,
            **{f"steps_{m}": float(mean_steps[m][start : start + k].mean()) for m in OC_METHODS},
        )
    labels = {
        "coagent_oc": "option-critic as a coagent network (CPGT updates)",
        "classic_oc": "option-critic, Bacon et al.'s updates",
        "actor_critic": "flat actor-critic",
    }
    centres = [start + k / 2 for start in range(0, cfg.episodes - k + 1, k)]
    line_plot(
        ctx.plots / "steps_to_goal.png",
        {
            labels[m]: (
                centres,
                [float(mean_steps[m][s : s + k].mean()) for s in range(0, cfg.episodes - k + 1, k)],
            )
            for m in OC_METHODS
        },
        xlabel=f"episode (goal moves at {cfg.switch_episode})",
        ylabel=f"steps to goal (mean of {cfg.runs} runs)",
        title="Four Rooms",
        logy=True,
    )
    switch, window = cfg.switch_episode, min(100, cfg.switch_episode)
    metrics: dict[str, float] = {}
    for m in OC_METHODS:
        metrics[f"steps_before_switch_{m}"] = float(mean_steps[m][switch - window : switch].mean())
        metrics[f"steps_after_switch_{m}"] = float(mean_steps[m][switch : switch + window].mean())
        metrics[f"steps_final_{m}"] = float(mean_steps[m][-window:].mean())
    metrics["env_steps_per_second"] = state["seconds"]["coagent_oc_env_steps"] / max(
        state["seconds"]["coagent_oc"], 1e-9
    )
    ctx.note(
        f"Steps to goal (mean of the last {window} episodes before the switch / the {window} "
        f"after it / the last {window}): "
        + "; ".join(
            f"{m} {metrics[f'steps_before_switch_{m}']:.1f} / "
            f"{metrics[f'steps_after_switch_{m}']:.1f} / {metrics[f'steps_final_{m}']:.1f}"
            for m in OC_METHODS
        )
    )
    return metrics
