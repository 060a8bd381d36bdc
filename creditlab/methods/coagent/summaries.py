"""What each experiment reports from its trained results: the metrics (headline first), the
notes and the figures."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from creditlab.methods.coagent.figures import before_and_after, on_the_map
from creditlab.methods.coagent.four_rooms import EAST_DOORWAY
from creditlab.methods.coagent.four_rooms_training import OC_METHODS, OPTION_METHODS
from creditlab.plots import line_plot
from creditlab.runner import RunContext

# --- coagent.gradient_check ------------------------------------------------------------------


def gradient_check_summary(
    cfg: Any, ctx: RunContext, modes: dict[str, float], curves: dict[str, list[tuple[int, float]]]
) -> dict[str, float]:
    """The angle-vs-episodes figure, the note and the metrics of coagent.gradient_check;
    ``curves[mode]``: (episodes, angle) at every point, ``modes[mode]``: its execution
    probability."""
    line_plot(
        ctx.plots / "angle_vs_episodes.png",
        {
            f"{m} (p={p:g})": (
                [math.log10(n) for n, _ in curves[m]],
                [a for _, a in curves[m]],
            )
            for m, p in modes.items()
        },
        xlabel="log10 episodes",
        ylabel="angle to the exact policy gradient (degrees)",
        title="coagent estimate vs likelihood ratio through the whole network",
    )
    sync, asyn = curves["sync"], curves["async"]
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


# --- coagent.cartpole / coagent.acrobot / coagent.async_cartpole ------------------------------


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


def actor_critic_summary(
    cfg: Any, ctx: RunContext, results: dict[str, dict[str, Any]], kinds: tuple[str, ...]
) -> dict[str, float]:
    """The figures, the note and the metrics of an actor-critic experiment, from each agent
    variant's :func:`.actor_critic.train_actor_critic` result."""
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


# --- coagent.option_critic and coagent.option_critic_grid -----------------------------------

OC_LABELS = {
    "coagent_oc": "option-critic as a coagent network (CPGT updates)",
    "classic_oc": "option-critic, Bacon et al.'s updates",
    "actor_critic": "flat actor-critic",
}


def _smoothed(values: np.ndarray, k: int) -> tuple[list[float], list[float]]:
    """Means of consecutive blocks of ``k`` episodes, at the blocks' centres."""
    starts = range(0, len(values) - k + 1, k)
    return [s + k / 2 for s in starts], [float(values[s : s + k].mean()) for s in starts]


def option_critic_summary(cfg: Any, ctx: RunContext, results: dict[str, Any]) -> dict[str, float]:
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


def grid_metric(method: str, lr_policy: float, lr_critic: float) -> str:
    """The name of a grid point's metric: mean steps to goal over all episodes and runs."""
    return f"mean_steps_{method}_lr{lr_policy:g}_critic{lr_critic:g}"


def grid_summary(
    cfg: Any, ctx: RunContext, grid: list[tuple[float, float]], results: dict[str, np.ndarray]
) -> dict[str, float]:
    """The metrics stream, the figure, the notes and the metrics of coagent.option_critic_grid;
    ``results[method]``: (mean steps, runs out of budget) of every grid point."""
    metrics = {
        grid_metric(m, p, c): float(results[m][0, g])
        for m in OC_METHODS
        for g, (p, c) in enumerate(grid)
    }
    for m in OC_METHODS:
        metrics[f"runs_out_of_budget_{m}"] = float(results[m][1].sum())
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
