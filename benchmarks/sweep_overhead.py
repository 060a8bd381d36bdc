"""What a sweep backend costs a trial: the local process pool vs Ray Core tasks.

``python benchmarks/sweep_overhead.py [--trials 8] [--cpus 2]`` starts each backend (the
pool's workers, a local Ray instance with ``--cpus`` CPUs), then runs ``--trials`` trivial
trials through it (a function that returns at once, so all the time is the backend's), twice:
the first round includes starting the workers, the second is warm. Printed: the start, and
the seconds per trial of each round (wall time / trials).
"""

from __future__ import annotations

import argparse
import time

from creditlab.sweep.executors import LocalExecutor, RayExecutor
from creditlab.sweep.trial import Trial


def trivial(trial: Trial) -> dict:
    """A trial that does nothing: its time is all overhead."""
    return {"seed": trial.seed}


def rounds(executor, trials: int) -> list[float]:
    """Seconds per trial of two rounds of ``trials`` trivial trials (cold, then warm)."""
    times = []
    for _ in range(2):
        start = time.perf_counter()
        for seed in range(trials):
            executor.submit(trivial, Trial("none", "smoke", seed, {}, {}, "cpu", "/nonexistent"))
        for _ in range(trials):
            _, _, error = executor.next_finished()
            assert error is None, error
        times.append((time.perf_counter() - start) / trials)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    for name in ("local", "ray"):
        start = time.perf_counter()
        if name == "local":
            executor = LocalExecutor(args.cpus)
        else:
            import ray

            ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="ERROR")
            executor = RayExecutor()
        started = time.perf_counter() - start
        cold, warm = rounds(executor, args.trials)
        executor.close()
        print(
            f"{name:6s} start {started:6.2f} s   {args.trials} trivial trials: "
            f"{cold * 1e3:8.1f} ms/trial (first round, workers starting), "
            f"{warm * 1e3:8.1f} ms/trial (warm)"
        )
        if name == "ray":
            ray.shutdown()


if __name__ == "__main__":
    main()
