"""Coagent network experiments: the gradient check, CartPole/Acrobot against a backprop
actor-critic, asynchronous CartPole, and option-critic on Four Rooms. The configurations and
the registered experiments only; the learners, loops and reports live in the modules they
name (:mod:`.gradient_check`, :mod:`.actor_critic`, :mod:`.four_rooms_training`,
:mod:`.summaries`).
"""

from __future__ import annotations

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
from creditlab.methods.coagent.critic import Critic
from creditlab.methods.coagent.four_rooms_training import (
    OC_METHODS,
    eval_points,
    four_rooms_learner,
    train_four_rooms,
)
from creditlab.methods.coagent.gradient_check import (
    both_estimates,
    episode_batch,
    gradient_check_network,
)
from creditlab.methods.coagent.option_critic import FourRoomsRuns
from creditlab.methods.coagent.summaries import (
    actor_critic_summary,
    gradient_check_summary,
    grid_summary,
    option_critic_summary,
)
from creditlab.registry import experiment
from creditlab.runner import RunContext, StageContext, derive_seed, finished_stages

PAPER = "Kostas, Nota & Thomas, 'Asynchronous Coagent Networks' (ICML 2020)"
CARTPOLE_SCALE = (2.4, 3.0, 0.21, 3.0)  # |x|, |x'|, |angle|, |angle'| at typical extremes
# Acrobot: raw observations. Dividing the angular velocities by their limits (4 pi, 9 pi) made
# the Bernoulli hidden coagents blind to them (quick scale, seed 0: coagent -489.6, backprop
# -223.5); raw, they are nearly deterministic detectors of the velocities' signs, which is
# what swinging up needs (coagent -103.5, backprop -85.6).
ACROBOT_SCALE = (1.0,) * 6


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
    threads: int = 1
    """torch CPU threads (the runner applies it; 0 leaves the setting alone): at these tiny
    tensor sizes extra threads only add contention"""


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
    probe = make_vector_env(cfg.env_id, 1)
    obs_dim, n_actions = probe.single_observation_space.shape[0], probe.single_action_space.n
    scale = torch.tensor(cfg.obs_scale, dtype=torch.float64)
    points = sorted(
        {int(round(x)) for x in np.geomspace(cfg.first_point, cfg.episodes, cfg.points)}
    )
    bounds, lo = [], 0  # the episodes of each batch: at most ``batch``, none across a point
    while lo < cfg.episodes:
        hi = min(cfg.episodes, lo + cfg.batch, next(p for p in points if p > lo))
        bounds.append((lo, hi))
        lo = hi
    modes = {"sync": 1.0, "async": cfg.execution_probability}
    curves: dict[str, list[tuple[int, float]]] = finished_stages(ctx, {})
    for mode, p in modes.items():
        if mode in curves:
            continue
        stage = StageContext(ctx, mode, curves)
        with torch.random.fork_rng():  # the same parameters: the modes differ in execution only
            torch.manual_seed(ctx.seed)
            net = gradient_check_network(obs_dim, n_actions, cfg.hidden, p, cfg.init_std)
        sums: dict[str, torch.Tensor] = {}
        curve: list[tuple[int, float]] = []

        def restore(state: dict[str, Any], sums=sums, curve=curve) -> None:
            sums.update(state["sums"])
            curve[:] = state["curve"]

        batches = stage.loop(
            len(bounds),
            lambda sums=sums, curve=curve: {"sums": dict(sums), "curve": list(curve)},
            restore,
            desc=f"{ctx.experiment.name} [{mode}]",
        )
        for i in batches:
            lo, hi = bounds[i]
            seed = derive_seed(ctx.seed, "episodes", mode, lo)
            batch = episode_batch(net, cfg.env_id, hi - lo, seed, scale, cfg.gamma)
            cpgt, exact = both_estimates(net, batch)
            for name in cpgt:
                for kind, estimate in (("cpgt", cpgt), ("exact", exact)):
                    key = f"{kind}/{name}"
                    sums[key] = sums.get(key, torch.zeros_like(estimate[name])) + estimate[name]
            if hi in points:
                mean_cpgt = {n: sums[f"cpgt/{n}"] / hi for n in cpgt}
                mean_exact = {n: sums[f"exact/{n}"] / hi for n in cpgt}
                angle = alignment(mean_cpgt, mean_exact).overall_angle_degrees
                curve.append((hi, angle))
                stage.log(hi, **{f"angle_degrees_{mode}": angle})
        curves[mode] = curve
    return gradient_check_summary(cfg, ctx, modes, curves)


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
    threads: int = 1
    """torch CPU threads (the runner applies it; 0 leaves the setting alone): at these tiny
    tensor sizes extra threads only add contention"""


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


def actor_critic_experiment(
    cfg: ActorCriticConfig, ctx: RunContext, kinds: tuple[str, ...] = ("coagent", "bp")
) -> dict[str, float]:
    """Each agent variant in turn (one stage each) for ``total_steps``: the same critic recipe,
    rollouts and environment seed."""
    results: dict[str, dict[str, Any]] = finished_stages(ctx, {})
    for kind in kinds:
        if kind in results:
            continue
        stage = StageContext(ctx, kind, results)
        with torch.random.fork_rng():  # initial weights from (seed, agent) only
            torch.manual_seed(derive_seed(ctx.seed, "init", kind))
            agent, critic = _build(cfg, kind)
        results[kind] = train_actor_critic(agent, critic, cfg.env_id, _settings(cfg), stage, kind)
    return actor_critic_summary(cfg, ctx, results, kinds)


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
    return actor_critic_experiment(cfg, ctx)


# --- coagent.option_critic and coagent.option_critic_grid -----------------------------------


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


def _runs(cfg: FourRoomsProtocol, n: int, seed: int) -> FourRoomsRuns:
    """``n`` Four Rooms runs side by side under the protocol of ``cfg``."""
    return FourRoomsRuns(
        n,
        cfg.episodes,
        cfg.switch_episode,
        seed,
        cfg.max_episode_steps,
        cfg.max_mean_steps * cfg.episodes,
    )


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
    points = eval_points(cfg.eval_every, cfg.switch_episode, cfg.episodes)
    results: dict[str, dict[str, Any]] = finished_stages(ctx, {})
    for method in OC_METHODS:
        if method in results:
            continue
        stage = StageContext(ctx, method, results)
        lr_policy = getattr(cfg, f"lr_policy_{method}")
        lr_critic = getattr(cfg, f"lr_critic_{method}")
        agent = four_rooms_learner(method, cfg, cfg.runs, lr_policy, lr_critic)
        runs = _runs(cfg, cfg.runs, derive_seed(ctx.seed, "runs", method))
        evaluation = (
            points,
            cfg.eval_episodes,
            derive_seed(ctx.seed, "evaluation"),
        )  # the same for every learner
        trained = train_four_rooms(stage, method, agent, runs, evaluation)
        results[method] = {
            "steps": runs.steps,
            "options": runs.options,
            **trained,
            "env_steps": runs.total_steps,
            "out_of_budget": int(runs.out_of_budget.sum()),
        }
    return option_critic_summary(cfg, ctx, results)


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
    results: dict[str, np.ndarray] = finished_stages(ctx, {})
    for method in OC_METHODS:
        if method in results:
            continue
        stage = StageContext(ctx, method, results)
        agent = four_rooms_learner(method, cfg, len(grid) * cfg.runs, lr_policy, lr_critic)
        runs = _runs(cfg, len(grid) * cfg.runs, derive_seed(ctx.seed, "runs", method))
        train_four_rooms(stage, method, agent, runs)
        results[method] = np.array(
            [
                (runs.steps[point == g].mean(), runs.out_of_budget[point == g].sum())
                for g in range(len(grid))
            ]
        ).T  # (mean steps, runs out of budget) per point
    return grid_summary(cfg, ctx, grid, results)
