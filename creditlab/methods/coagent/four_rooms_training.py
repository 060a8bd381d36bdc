"""Training the three Four Rooms learners: which learner a method name means, when runs are
evaluated, and the resumable loop that steps every run and evaluates it (learning off)."""

from __future__ import annotations

import time
from typing import Any

from creditlab.methods.coagent.option_critic import (
    ClassicOptionCritic,
    CoagentOptionCritic,
    FlatActorCritic,
    FourRoomsRuns,
    evaluate,
    termination_probabilities,
)
from creditlab.runner import RunContext, StageContext

OC_METHODS = ("coagent_oc", "classic_oc", "actor_critic")
"""The three learners compared on Four Rooms (each one stage of a run)."""
OPTION_METHODS = ("coagent_oc", "classic_oc")
"""The learners with options (option durations and terminations are theirs)."""


def four_rooms_learner(
    method: str, protocol: Any, runs: int, lr_policy: Any, lr_critic: Any
) -> Any:
    """One of the three learners with ``runs`` runs side by side, under ``protocol`` (a
    ``FourRoomsProtocol``: options, discount, temperature). ``lr_policy`` is the step
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


def eval_points(eval_every: int, switch_episode: int, episodes: int) -> list[int]:
    """Training episodes after which every run is evaluated: every ``eval_every``, at the
    switch and at the end.

    >>> eval_points(200, 1000, 2000)[:2], eval_points(0, 40, 50)
    ([200, 400], [40, 50])
    """
    every = range(eval_every, episodes + 1, eval_every) if eval_every else ()
    return sorted({*every, switch_episode, episodes} & set(range(1, episodes + 1)))


def train_four_rooms(
    ctx: RunContext | StageContext,
    label: str,
    agent: Any,
    runs: FourRoomsRuns,
    evaluation: tuple[list[int], int, int] | None = None,
) -> dict[str, Any]:
    """Step ``runs`` until every run has finished its episodes, pausing at each evaluation
    point (``evaluation = (points, episodes, seed)``: after that many training episodes) to
    evaluate every run with learning off (:func:`.option_critic.evaluate`), logged as
    ``eval_steps_<label>``. Iteration ``e`` of the resumable loop steps until every run has
    finished ``e + 1`` episodes (runs ahead go on, up to the next evaluation point). Returns
    the evaluations and the seconds spent training (evaluations not counted)."""
    points, episodes, seed = evaluation or ([], 0, 0)
    evaluations: list[dict[str, Any]] = []
    clock = {"seconds": 0.0}  # training seconds, resumed runs' earlier part included

    def restore(state: dict[str, Any]) -> None:
        agent.load_state_dict(state["agent"])
        runs.load_state_dict(state["runs"])
        evaluations[:] = state["evaluations"]
        clock["seconds"] = state["seconds"]

    episodes_done = ctx.loop(
        runs.episodes,
        lambda: {
            "agent": agent.state_dict(),
            "runs": runs.state_dict(),
            "evaluations": list(evaluations),
            "seconds": clock["seconds"],
        },
        restore,
        desc=f"{ctx.experiment.name} [{label}]",
    )
    for e in episodes_done:
        target = e + 1
        runs.pause_at = next((p for p in points if p >= target), runs.episodes)
        tic = time.perf_counter()
        while runs.episode.min() < target:
            runs.step(agent)
        clock["seconds"] += time.perf_counter() - tic
        if target in points:
            result = evaluate(
                agent, runs.goals_of_last_episode(), episodes, seed, runs.max_episode_steps
            )
            if hasattr(agent, "termination"):  # beta(s, o), mean over options and runs
                result["beta"] = termination_probabilities(agent).mean(axis=(0, 2))
            evaluations.append({"episode": target, **result})
            ctx.log(target, **{f"eval_steps_{label}": float(result["steps"].mean())})
    return {"evaluations": evaluations, "seconds": clock["seconds"]}
