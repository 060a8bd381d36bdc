r"""Option-critic as an asynchronous coagent network, Bacon et al.'s original updates, and a flat
actor-critic, on Four Rooms.

The network (Kostas, Nota & Thomas 2020, Sec. 6). At step ``t`` three coagents run in order:

* the **termination coagent** ``beta_nu``: input ``X = (S_t, O_{t-1})``, output the bit
  ``T_t ~ Bernoulli(beta_nu(S_t, O_{t-1}))`` ("the current option ends here"); it executes at
  every ``t >= 1`` and outputs ``T_0 = 1`` at the first step (there is no option yet);
* the **policy over options** ``pi_Omega``: input ``S_t``, output ``O_t``. Its execution function
  is ``E_t = T_t``: it executes only when the termination fired, otherwise it *holds*
  ``O_t = O_{t-1}``. This is the asynchronous, recurrent part;
* the **intra-option policy** ``pi_theta``: input ``(S_t, O_t)``, output the action ``A_t``.

Derivation of the three updates from the asynchronous CPGT,
``dJ/dtheta_i = E[sum_t gamma^t E^i_t G_t grad log pi_i(U^i_t | X^i_t)]``:

1. Intra-option policy (``E = 1``):
   ``E[sum_t gamma^t G_t grad_theta log pi_theta(A_t | S_t, O_t)]``. Conditioning on
   ``(S_t, O_t, A_t)`` turns ``G_t`` into ``Q_U(S_t, O_t, A_t)``: this is Bacon
   et al.'s intra-option policy gradient theorem, with ``Q_U`` estimated by the return.
2. Termination (``E = 1`` for ``t >= 1``): given ``S_t = s, O_{t-1} = o``, the return expected
   after ``T_t = 0`` is ``Q_Omega(s, o)`` (the option continues) and after ``T_t = 1`` it is
   ``V_Omega(s)`` (a fresh option from ``pi_Omega``). Summing over ``T_t``,
   ``sum_T grad beta(T | s, o) E[G | T] = d beta/d nu (V_Omega(s) - Q_Omega(s, o))
   = -d beta/d nu * A_Omega(s, o)``: Bacon et al.'s termination gradient theorem
   (their ``s'`` is our ``S_t``, one step later in their indexing).
3. Policy over options (``E_t = T_t``): ``E[sum_t gamma^t T_t G_t grad log pi_Omega(O_t | S_t)]``,
   the policy gradient of ``pi_Omega`` applied at termination steps only. (Bacon et al. instead
   learn ``Q_Omega`` by intra-option Q-learning and act on it with a softmax.)

That is the whole derivation: the CPGT gives each coagent its rule, and the asynchronous CPGT
says that holding ``O`` between terminations is handled by the execution indicator alone.

One critic for all three (the actor-critic form): the network's state before step ``t`` is
``Z_t = (S_t, O_{t-1})``; a table ``v(Z)`` learned by TD(0) broadcasts
``delta_t = R_t + gamma v(S_{t+1}, O_t) - v(S_t, O_{t-1})``. Its baseline ``v(Z_t)`` depends on
no output at step ``t``, and when ``v`` is exact ``E[R_t + gamma v(Z_{t+1}) | ...]`` equals the
conditional values above, so each coagent's expected update is its CPGT gradient. As in Bacon
et al. (and nearly all actor-critic practice) the ``gamma^t`` factor is dropped. (With the
``gamma^t`` put back, ``tests/test_coagent.py`` checks this on :class:`CoagentOptionCritic`
itself: exact critic, every outcome enumerated on a tiny option MDP, expected update == the
exact gradient.)

Bacon et al.'s **classic option-critic** (:class:`ClassicOptionCritic`) follows their released
tabular script, ``fourrooms/transfer.py`` in github.com/jeanharb/option_critic (commit
099763b), run as its README's command (``--baseline``, 4 options):

* the policy over options is a softmax with temperature 0.01 over the weights of ``Q_Omega``
  itself (the script's critic is built on ``policy.weights``; its epsilon-greedy line is
  commented out, so ``--epsilon`` has no effect and there is no epsilon here);
* ``Q_Omega`` by intra-option Q-learning, target
  ``R + gamma ((1 - beta(s', o)) Q_Omega(s', o) + beta(s', o) max_o' Q_Omega(s', o'))``, its TD
  error taken against the value cached when ``(s, o)`` was entered (as the script does);
* ``Q_U(s, o, a)`` by one-step TD *after* ``Q_Omega``: its target is read from the ``Q_Omega``
  just updated;
* intra-option update ``theta += alpha (Q_U(s', o', a') - Q_Omega(s', o'))(e_a' - pi)``,
  termination update ``nu -= alpha d beta/d nu (Q_Omega(s', o') - max_o Q_Omega(s', o))``,
  both at the new state, option and action, chosen before the critics are updated.

Step sizes and temperature: Bacon et al.'s paper text says temperature 0.001; the script and
its README command use 0.01 for every softmax, and so do we. The step sizes of all three
learners are chosen by one protocol (``coagent.option_critic_grid``: the same grid for each,
tuning seeds only).

The **flat actor-critic** is a network of one softmax coagent with a state-value critic.

All tables hold ``runs`` independent runs side by side: run ``k`` reads and writes only the
rows of its own states (``row = k * 104 + state``), so one vectorised loop runs every seed at
once and the runs share no parameter. Step sizes may be arrays with one entry per run (the
grid runs every setting side by side that way).

Every learner offers the same interface to :class:`FourRoomsRuns` and :func:`evaluate`:
``begin`` (new episodes), ``act``, ``learn`` (a no-op on the parameters when ``learning`` is
False: what an evaluation copy does), ``resize`` (per-episode state for another batch) and,
for the two option learners, ``switched`` after ``act``: whether the option acting at this
step began here because the previous one terminated.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from creditlab.methods.coagent.critic import td_error
from creditlab.methods.coagent.four_rooms import (
    EAST_DOORWAY,
    MAX_EPISODE_STEPS,
    N_ACTIONS,
    N_STATES,
    NEXT_GOALS,
    step_cells,
)

Rate = float | np.ndarray
"""A step size: one for every run, or one per run (shape ``(runs,)``)."""


# --- tabular coagents (NumPy: Four Rooms needs ~10^5 tiny steps, where torch's per-call cost
# would dominate). The same math as SoftmaxCoagent/BernoulliCoagent on a one-hot input. ------


class TabularSoftmaxCoagent:
    """``pi(u | x) = softmax(theta[x] / tau)_u`` for a table row ``x``.

    Its local update follows Bacon et al.'s convention, ``theta[x] += lr * signal * (e_u - pi)``,
    which is ``lr * signal * tau * grad_theta log pi(u | x)``: the ``1/tau`` of the exact gradient
    is folded into the learning rate, so learning rates compare across both algorithms.
    Every call touches each row at most once (one row per run), so fancy-index updates are safe.
    """

    def __init__(self, rows: int, choices: int, temperature: float = 1.0):
        self.theta = np.zeros((rows, choices))
        self.temperature = temperature

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        z = self.theta[x] / self.temperature
        z = np.exp(z - z.max(1, keepdims=True))
        return z / z.sum(1, keepdims=True)

    def sample(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cdf = self.probabilities(x).cumsum(1)
        u = rng.random((len(x), 1))
        return np.minimum((cdf < u).sum(1), self.theta.shape[1] - 1)

    def coagent_update(self, x: np.ndarray, u: np.ndarray, signal: np.ndarray, lr: Rate) -> None:
        """``theta[x] += lr * signal * (e_u - pi(. | x))`` (CPGT, tau folded into ``lr``)."""
        step = -self.probabilities(x)
        step[np.arange(len(x)), u] += 1.0
        self.theta[x] += (lr * signal)[:, None] * step


class TabularBernoulliCoagent:
    """``P(u = 1 | x) = sigmoid(nu[x])``; local update ``nu[x] += lr * signal * (u - beta)``,
    exactly ``lr * signal * grad_nu log pi(u | x)``."""

    def __init__(self, rows: int):
        self.nu = np.zeros(rows)

    def probability(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.nu[x]))

    def sample(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return (rng.random(len(x)) < self.probability(x)).astype(np.int64)

    def coagent_update(self, x: np.ndarray, u: np.ndarray, signal: np.ndarray, lr: Rate) -> None:
        self.nu[x] += lr * signal * (u - self.probability(x))


# --- the three agents ------------------------------------------------------------------------


class _TableAgent:
    """What the three learners share: the ``learning`` switch and their state as one copy."""

    learning = True
    """False in an evaluation copy: ``learn`` then moves no parameter."""

    def resize(self, n: int) -> None:
        """Per-episode state (held option, chosen action, ...) for a batch of ``n`` episodes."""
        for name in self.per_episode:
            value = getattr(self, name)
            setattr(self, name, np.zeros(n, dtype=value.dtype))

    per_episode: tuple[str, ...] = ()

    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy(vars(self))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        vars(self).update(copy.deepcopy(state))


class CoagentOptionCritic(_TableAgent):
    """Option-critic as a network of three coagents with one critic ``v(S_t, O_{t-1})``.

    ``act`` runs the network for one step (termination, then the policy over options, which
    executes only when the termination fired and otherwise holds its output, then the
    intra-option policy); ``learn`` broadcasts the critic's TD error and each coagent applies its
    own update, multiplied by its own execution indicator ``E^i_t``.
    """

    per_episode = ("option", "switched")

    def __init__(
        self,
        runs: int,
        n_options: int,
        lr_critic: Rate,
        lr_termination: Rate,
        lr_policy_over_options: Rate,
        lr_intra: Rate,
        gamma: float,
        temperature: float,
    ):
        k, rows = n_options, runs * N_STATES
        self.k, self.gamma = k, gamma
        self.lr_critic = lr_critic
        self.lr = {
            "termination": lr_termination,
            "policy_over_options": lr_policy_over_options,
            "intra_option_policy": lr_intra,
        }
        self.termination = TabularBernoulliCoagent(rows * k)
        self.policy_over_options = TabularSoftmaxCoagent(rows, k, temperature)
        self.intra_option_policy = TabularSoftmaxCoagent(rows * k, N_ACTIONS, temperature)
        self.v = np.zeros(rows * (k + 1))  # v(S_t, O_{t-1}); column k: "no option yet" (t = 0)
        self.option = np.zeros(runs, dtype=np.int64)  # O_{t-1}: the held output of pi_Omega
        self.switched = np.zeros(runs, dtype=bool)
        self.record: dict[str, Any] = {}

    def begin(self, where: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> None:
        """A new episode: nothing to hold (the termination coagent outputs T_0 = 1 at t = 0)."""

    def _z(self, rows: np.ndarray, previous_option: np.ndarray, first: np.ndarray) -> np.ndarray:
        return rows * (self.k + 1) + np.where(first, self.k, previous_option)

    def act(self, rows: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        k, first = self.k, t == 0
        # termination coagent: X = (S_t, O_{t-1}); executes for t >= 1; outputs T_0 = 1
        x_beta = rows * k + self.option
        e_beta = ~first
        terminate = np.where(e_beta, self.termination.sample(x_beta, rng), 1)
        # policy over options: X = S_t; executes only when T_t = 1, otherwise holds O_{t-1}
        e_omega = terminate == 1
        option = np.where(e_omega, self.policy_over_options.sample(rows, rng), self.option)
        # intra-option policy: X = (S_t, O_t); executes at every step
        x_pi = rows * k + option
        action = self.intra_option_policy.sample(x_pi, rng)
        self.record = {
            "z": self._z(rows, self.option, first),
            "termination": (x_beta, terminate, e_beta),
            "policy_over_options": (rows, option, e_omega),
            "intra_option_policy": (x_pi, action, np.ones_like(first)),
        }
        self.option, self.switched = option, e_beta & e_omega
        return action

    def learn(
        self,
        rows: np.ndarray,
        reward: np.ndarray,
        next_rows: np.ndarray,
        terminated: np.ndarray,
        active: np.ndarray,
        rng: np.random.Generator | None = None,
    ) -> None:
        if not self.learning:
            return
        z = self.record["z"]
        next_z = self._z(next_rows, self.option, np.zeros_like(terminated))
        delta = td_error(reward, self.v[z], self.v[next_z], terminated, self.gamma) * active
        self.v[z] += self.lr_critic * delta  # TD(0)
        for name in ("termination", "policy_over_options", "intra_option_policy"):
            x, u, executed = self.record[name]
            coagent = getattr(self, name)
            coagent.coagent_update(x, u, delta * executed, self.lr[name])  # E^i_t * delta_t


class FlatActorCritic(_TableAgent):
    """A network of one softmax coagent (the policy) with a state-value critic ``v(S)``."""

    per_episode = ("action",)

    def __init__(
        self, runs: int, lr_critic: Rate, lr_actor: Rate, gamma: float, temperature: float
    ):
        rows = runs * N_STATES
        self.policy = TabularSoftmaxCoagent(rows, N_ACTIONS, temperature)
        self.v = np.zeros(rows)
        self.lr_critic, self.lr_actor, self.gamma = lr_critic, lr_actor, gamma
        self.action = np.zeros(runs, dtype=np.int64)

    def begin(self, where: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> None:
        """Nothing is held between steps."""

    def act(self, rows: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.action = self.policy.sample(rows, rng)
        return self.action

    def learn(
        self,
        rows: np.ndarray,
        reward: np.ndarray,
        next_rows: np.ndarray,
        terminated: np.ndarray,
        active: np.ndarray,
        rng: np.random.Generator | None = None,
    ) -> None:
        if not self.learning:
            return
        delta = td_error(reward, self.v[rows], self.v[next_rows], terminated, self.gamma) * active
        self.v[rows] += self.lr_critic * delta
        self.policy.coagent_update(rows, self.action, delta, self.lr_actor)


class ClassicOptionCritic(_TableAgent):
    """Bacon, Harb & Precup's tabular option-critic, as in their released Four Rooms script
    (see the module docstring for what that script does, step by step)."""

    per_episode = ("option", "action", "last_value", "switched")

    def __init__(
        self,
        runs: int,
        n_options: int,
        lr_critic: Rate,
        lr_termination: Rate,
        lr_intra: Rate,
        gamma: float,
        temperature: float,
        baseline: bool = True,
    ):
        k, rows = n_options, runs * N_STATES
        self.k, self.gamma, self.baseline = k, gamma, baseline
        self.lr_critic, self.lr_termination, self.lr_intra = lr_critic, lr_termination, lr_intra
        self.intra_option_policy = TabularSoftmaxCoagent(rows * k, N_ACTIONS, temperature)
        self.termination = TabularBernoulliCoagent(rows * k)
        # pi_Omega(o | s) = softmax(Q_Omega(s, .) / tau): the critic's table is the policy's
        self.policy_over_options = TabularSoftmaxCoagent(rows, k, temperature)
        self.q_u = np.zeros((rows * k, N_ACTIONS))  # Q_U(s, o, a)
        self.option = np.zeros(runs, dtype=np.int64)
        self.action = np.zeros(runs, dtype=np.int64)
        self.last_value = np.zeros(runs)  # Q_Omega(s, o) as read when (s, o) was entered
        self.switched = np.zeros(runs, dtype=bool)

    @property
    def q_omega(self) -> np.ndarray:
        """``Q_Omega(s, o)``, learned by intra-option Q-learning (the softmax's weights)."""
        return self.policy_over_options.theta

    def begin(self, where: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> None:
        """Episode start: choose an option, then an action, in the runs flagged ``where``."""
        option = self.policy_over_options.sample(rows, rng)
        self.option = np.where(where, option, self.option)
        action = self.intra_option_policy.sample(rows * self.k + self.option, rng)
        self.action = np.where(where, action, self.action)
        value = self.q_omega[rows, self.option]
        self.last_value = np.where(where, value, self.last_value)
        self.switched = self.switched & ~where

    def act(self, rows: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The action was chosen at the end of the previous step (or by ``begin``)."""
        return self.action

    def _upon_arrival(self, next_rows: np.ndarray, beta: np.ndarray) -> np.ndarray:
        """``(1 - beta) Q_Omega(s', o) + beta max_o' Q_Omega(s', o')``: the value upon arrival."""
        q_next = self.q_omega[next_rows]
        return (1 - beta) * q_next[np.arange(len(q_next)), self.option] + beta * q_next.max(1)

    def learn(
        self,
        rows: np.ndarray,
        reward: np.ndarray,
        next_rows: np.ndarray,
        terminated: np.ndarray,
        active: np.ndarray,
        rng: np.random.Generator | None = None,
    ) -> None:
        assert rng is not None, "the classic option-critic chooses its next option in learn"
        k, o, a = self.k, self.option, self.action
        # Termination might occur upon entering the new state; then a new option; a new action.
        beta = self.termination.probability(next_rows * k + o)
        terminate = rng.random(len(rows)) < beta
        new_o = np.where(terminate, self.policy_over_options.sample(next_rows, rng), o)
        new_a = self.intra_option_policy.sample(next_rows * k + new_o, rng)
        arrival_value = self.q_omega[next_rows, new_o]  # read before this step's update
        if self.learning:
            # Critic: Q_Omega by intra-option Q-learning, then Q_U towards the updated Q_Omega.
            target = self._upon_arrival(next_rows, beta)
            delta = td_error(reward, self.last_value, target, terminated, self.gamma) * active
            self.q_omega[rows, o] += self.lr_critic * delta
            x_u = rows * k + o
            target = self._upon_arrival(next_rows, beta)
            delta_u = td_error(reward, self.q_u[x_u, a], target, terminated, self.gamma)
            self.q_u[x_u, a] += self.lr_critic * delta_u * active
            # Intra-option gradient at (s', o', a'), with the Q_Omega baseline.
            x = next_rows * k + new_o
            feedback = self.q_u[x, new_a] - self.baseline * self.q_omega[next_rows, new_o]
            self.intra_option_policy.coagent_update(x, new_a, feedback * active, self.lr_intra)
            # Termination gradient: nu -= lr * dbeta/dnu * A_Omega(s', o'), A_Omega = Q - max Q.
            beta_new = self.termination.probability(x)
            advantage = self.q_omega[next_rows, new_o] - self.q_omega[next_rows].max(1)
            self.termination.nu[x] -= (
                self.lr_termination * beta_new * (1 - beta_new) * advantage * active
            )
        self.last_value = np.where(active & ~terminated, arrival_value, self.last_value)
        self.switched = np.where(active, terminate & ~terminated, self.switched)
        self.option = np.where(active, new_o, o)
        self.action = np.where(active, new_a, a)


def termination_probabilities(agent: CoagentOptionCritic | ClassicOptionCritic) -> np.ndarray:
    """``beta(s, o)`` of every run, shape ``(runs, 104, k)``."""
    return agent.termination.probability(np.arange(len(agent.termination.nu))).reshape(
        -1, N_STATES, agent.k
    )


# --- the loop shared by all three, and evaluation ---------------------------------------------


class FourRoomsRuns:
    """``runs`` independent Four Rooms runs stepped together, each for ``episodes`` episodes,
    the goal moved at episode ``switch_episode`` (to a cell of :data:`NEXT_GOALS` drawn per
    run). ``steps[k, e]`` is the length of run ``k``'s episode ``e`` and ``options[k, e]`` the
    number of options it executed (0 for a learner without options). One NumPy generator
    drives the environment and the agent, so a run is reproducible and resumes exactly.

    ``pause_at``: runs that have finished that many episodes wait (take no step) until all
    have, so that every run can be evaluated after the same number of episodes.

    ``step_budget``: a run that has taken this many steps stops, and its remaining episodes
    (the one under way included) count as cut, ``max_episode_steps`` each (``out_of_budget``
    flags it). The loop steps all runs together until the slowest finishes; without a budget
    one run stuck in long episodes would cost up to ``episodes x max_episode_steps`` steps."""

    def __init__(
        self,
        runs: int,
        episodes: int,
        switch_episode: int,
        seed: int,
        max_episode_steps: int = MAX_EPISODE_STEPS,
        step_budget: int | None = None,
    ):
        self.runs, self.episodes, self.switch_episode = runs, episodes, switch_episode
        self.max_episode_steps, self.step_budget = max_episode_steps, step_budget
        self.rng = np.random.default_rng(seed)
        self.goal = np.full(runs, EAST_DOORWAY)
        self.episode = np.zeros(runs, dtype=np.int64)
        self.t = np.zeros(runs, dtype=np.int64)
        self.state = self._starts()
        self.steps = np.zeros((runs, episodes), dtype=np.int64)
        self.options = np.zeros((runs, episodes), dtype=np.int64)
        self.switches = np.zeros(runs, dtype=np.int64)  # terminations in the current episode
        self.pause_at = episodes
        self.run_steps = np.zeros(runs, dtype=np.int64)
        self.out_of_budget = np.zeros(runs, dtype=bool)
        self.started = False
        self.total_steps = 0

    def _starts(self) -> np.ndarray:
        """A uniformly random start cell other than the goal, for every run."""
        start = self.rng.integers(0, N_STATES - 1, size=self.runs)
        return start + (start >= self.goal)

    def rows(self, state: np.ndarray) -> np.ndarray:
        """Run ``k``'s table row for ``state``: each run has a block of its own."""
        return np.arange(self.runs) * N_STATES + state

    def done(self) -> bool:
        return bool((self.episode >= self.episodes).all())

    def paused(self) -> bool:
        """Every run has finished ``min(pause_at, episodes)`` episodes."""
        return bool((self.episode >= min(self.pause_at, self.episodes)).all())

    def goals_of_last_episode(self) -> np.ndarray:
        """The goal each run's last finished episode had (the goal moves as episode
        ``switch_episode`` begins)."""
        return np.where(self.episode <= self.switch_episode, EAST_DOORWAY, self.goal)

    def step(self, agent: Any) -> None:
        """One step of every run still going: act, move, learn, start new episodes."""
        rng = self.rng
        if not self.started:
            agent.begin(np.ones(self.runs, dtype=bool), self.rows(self.state), rng)
            self.started = True
        active = self.episode < min(self.episodes, self.pause_at)
        rows = self.rows(self.state)
        action = agent.act(rows, self.t, rng)
        if getattr(agent, "switched", None) is not None:
            self.switches += agent.switched & active
        next_state = step_cells(self.state, action, rng)
        terminated = next_state == self.goal
        agent.learn(rows, terminated.astype(float), self.rows(next_state), terminated, active, rng)
        self.t += active
        self.run_steps += active
        self.total_steps += int(active.sum())
        ended = active & (terminated | (self.t >= self.max_episode_steps))
        self.state = np.where(active, next_state, self.state)  # a waiting run stays put
        if ended.any():
            idx = np.flatnonzero(ended)
            self.steps[idx, self.episode[idx]] = self.t[idx]
            if getattr(agent, "switched", None) is not None:
                self.options[idx, self.episode[idx]] = 1 + self.switches[idx]
            self.switches[idx] = 0
            self.episode[idx] += 1
            switch = ended & (self.episode == self.switch_episode)
            self.goal[switch] = rng.choice(NEXT_GOALS, size=int(switch.sum()))
            self.state = np.where(ended, self._starts(), self.state)
            self.t[ended] = 0
            agent.begin(ended, self.rows(self.state), rng)
        if self.step_budget is not None:
            spent = (self.episode < self.episodes) & (self.run_steps >= self.step_budget)
            for k in np.flatnonzero(spent):  # the rest of run k's episodes count as cut
                self.steps[k, self.episode[k] :] = self.max_episode_steps
                self.options[k, self.episode[k] :] = 1
                self.episode[k] = self.episodes
                self.out_of_budget[k] = True

    def state_dict(self) -> dict[str, Any]:
        state = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(self).items()}
        state["rng"] = self.rng.bit_generator.state
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self.rng.bit_generator.state = state.pop("rng")
        vars(self).update(state)


def evaluate(
    agent: Any, goals: np.ndarray, episodes: int, seed: int, max_episode_steps: int
) -> dict[str, np.ndarray]:
    """``episodes`` evaluation episodes per run of each run's learned policy, learning off.

    Runs on a copy of ``agent`` (``learning = False``: its ``learn`` moves no parameter; the
    original is untouched), with a generator of its own seeded ``seed``; run ``k``'s episodes
    go to ``goals[k]`` from uniformly random start cells and are cut at
    ``max_episode_steps``. Returns ``steps`` (runs, episodes), ``options`` (options executed
    per episode; 0 without options) and, over all runs, ``visits`` and ``terminations`` per
    cell: the steps ``t >= 1`` spent in a cell, and those at which an option ended there.
    """
    runs, n = len(goals), len(goals) * episodes
    policy = copy.deepcopy(agent)
    policy.learning = False
    policy.resize(n)
    rng = np.random.default_rng(seed)
    offset = np.repeat(np.arange(runs), episodes) * N_STATES
    goal = np.repeat(goals, episodes)
    start = rng.integers(0, N_STATES - 1, size=n)
    state = start + (start >= goal)
    t, alive = np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)
    options, has_options = np.ones(n, dtype=np.int64), hasattr(policy, "switched")
    visits, terminations = np.zeros(N_STATES), np.zeros(N_STATES)
    policy.begin(alive.copy(), offset + state, rng)
    while alive.any():
        action = policy.act(offset + state, t, rng)
        if has_options:
            counted = alive & (t > 0)
            np.add.at(visits, state[counted], 1)
            np.add.at(terminations, state[counted & policy.switched], 1)
            options += counted & policy.switched
        next_state = step_cells(state, action, rng)
        terminated = alive & (next_state == goal)
        policy.learn(
            offset + state, terminated.astype(float), offset + next_state, terminated, alive, rng
        )
        t += alive
        state = np.where(alive, next_state, state)
        alive &= ~terminated & (t < max_episode_steps)
    return {
        "steps": t.reshape(runs, episodes),
        "options": (options * has_options).reshape(runs, episodes),
        "visits": visits,
        "terminations": terminations,
    }
