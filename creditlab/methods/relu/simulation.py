"""Douglas & Yu's rule (Eq. 1 of :mod:`creditlab.methods.relu.theory`) simulated: many
independent runs of one ReLU unit from many initialisations at once, timed to convergence."""

from __future__ import annotations

import math
from typing import Any

import torch

from creditlab.runner import RunContext, StageContext

CHUNK_STEPS = 256
"""at most this many time steps' inputs are drawn at once"""
CHUNK_NUMBERS = 4_000_000
"""and at most about this many numbers (steps x inits x (d+1) x runs)"""
ALIVE = ("alive_mean", "alive_run", "steps_mean", "steps_run")
"""per init still running: whether the run mean / each run is still outside the tolerance, and
for how many steps it has been"""


def simulate_single_unit(
    theta0: torch.Tensor,
    theta_star: torch.Tensor,
    mu: float,
    runs: int,
    tolerance: float,
    max_steps: int,
    generator: torch.Generator,
    ctx: RunContext | StageContext | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run rule (1) from each row of ``theta0`` (K, d+1) towards ``theta_star`` (K, d+1),
    ``runs`` independent runs each, vectorised over inits and runs (only the time loop is in
    Python). Returns, per init, the first step at which

    - the run-averaged parameters (an estimate of E[theta_t]) are within ``tolerance`` of
      theta* relative to the start: the quantity the expected-update theory predicts;
    - the median run is within ``tolerance`` (each run's own first crossing).

    The state is the error delta = theta - theta*, laid out (K, d+1, runs) so that the dot
    products reduce over a short, strided axis; an init leaves the batch once both times are
    known. Times not reached by ``max_steps`` are returned as ``max_steps``.

    The inputs are drawn from ``generator`` a chunk of steps at a time; with a ``ctx`` each
    chunk is an iteration of ``ctx.loop`` (a step boundary: a stopped run resumes exactly)."""
    k, d1 = theta0.shape
    threshold = tolerance**2 * ((theta0 - theta_star) ** 2).sum(-1)  # on ||delta||^2
    sim = {
        "t": 0,  # steps simulated
        "t_mean": torch.full((k,), max_steps, dtype=torch.float64),
        "t_median": torch.full((k,), max_steps, dtype=torch.float64),
        "rows": torch.arange(k),  # the inits still running; per init still running:
        "star": theta_star.to(dtype).unsqueeze(-1),  # (K, d+1, 1)
        "delta": (theta0 - theta_star).to(dtype).unsqueeze(-1).repeat(1, 1, runs),
        "thr": threshold.to(dtype),
        "alive_mean": torch.ones(k, dtype=torch.bool),
        "alive_run": torch.ones(k, runs, dtype=torch.bool),
        "steps_mean": torch.zeros(k, dtype=torch.long),
        "steps_run": torch.zeros(k, runs, dtype=torch.long),
    }

    def chunk_size() -> int:  # grows as inits leave the batch
        rows = len(sim["rows"])
        return min(max_steps - sim["t"], max(1, CHUNK_NUMBERS // (rows * d1 * runs)), CHUNK_STEPS)

    def restore(saved: dict[str, Any]) -> None:
        generator.set_state(saved["generator"])
        sim.update({name: saved[name] for name in sim})

    # chunks never shrink, so the first one's size bounds their number
    chunks = math.ceil(max_steps / chunk_size())
    if ctx is None:
        loop: Any = range(chunks)
    else:
        loop = ctx.loop(chunks, lambda: {**sim, "generator": generator.get_state()}, restore)
    for _ in loop:
        if sim["t"] >= max_steps or not len(sim["rows"]):
            break
        chunk = chunk_size()
        rows, star, delta, thr = sim["rows"], sim["star"], sim["delta"], sim["thr"]
        alive_mean, alive_run, steps_mean, steps_run = (sim[name] for name in ALIVE)
        x = torch.empty(chunk, len(rows), d1, runs, dtype=dtype)
        x[:, :, :-1].normal_(generator=generator)  # x ~ N(0, I_d)
        x[:, :, -1] = 1.0  # x~ = (x, 1)
        for x_t in x:
            s = (delta * x_t).sum(1)  # delta^T x~ = y - t
            y = (star * x_t).sum(1) + s  # y = theta^T x~
            minus_e = torch.where(y > 0, s, 0.0)  # -e 1[y > 0] (f(y) = y where y > 0)
            delta.addcmul_(minus_e.unsqueeze(1), x_t, value=-mu)  # Eq. (1)
            alive_run &= (delta**2).sum(1) > thr.unsqueeze(-1)
            alive_mean &= (delta.mean(2) ** 2).sum(1) > thr
            steps_run += alive_run
            steps_mean += alive_mean
        sim["t"] += chunk
        done = ~alive_mean & (alive_run.double().mean(1) < 0.5)
        if sim["t"] >= max_steps:
            done[:] = True
        if done.any():
            first = torch.where(alive_run[done], max_steps, steps_run[done] + 1)  # 1-based
            sim["t_median"][rows[done]] = first.double().median(1).values
            sim["t_mean"][rows[done]] = torch.where(
                alive_mean[done], max_steps, steps_mean[done] + 1
            ).double()
            keep = ~done
            for name in ("rows", "star", "delta", "thr", *ALIVE):
                sim[name] = sim[name][keep]
    return sim["t_mean"], sim["t_median"]
