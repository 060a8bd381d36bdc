"""Profile of one HM2-BP training step at T = 400 on a batch of 128 MNIST images, one torch
thread: the 784-800-10 network with the reference code's choices (init +-1, thresholds 20 / 8,
lateral inhibition 1 with its gradient factor, forced label spikes, its S-PSP timing), the
input trains fixed (drawn once, as the reference does).

    python benchmarks/hm2bp_profile.py [--repeats 5] [--top 12]

Prints the CPU seconds of a step (``time.process_time``, the median of ``--repeats`` after two
warm-up steps: with one thread, the work done whatever else the machine runs) and cProfile's
view of three steps on the same CPU clock: the functions with the most time of their own, as
shares of the three steps.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import torch


def main() -> None:
    from creditlab import data
    from creditlab.methods.hm2bp import Dense, HM2BPLearner, RateTargets, SpikingNetwork
    from creditlab.spiking import bernoulli_encode

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ds = data.load("mnist")
    images, labels = ds.x_train.reshape(-1, 784)[:128], ds.y_train[:128]
    spikes = bernoulli_encode(images, 400, 5.5, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(0)
    layers = [Dense((784,), 800, 1.0, g), Dense((800,), 10, 1.0, g)]
    net = SpikingNetwork(layers, (20.0, 8.0), lateral=1.0)
    learner = HM2BPLearner(net, lambda x, gen: spikes, 10, lr=1e-2, targets=RateTargets())
    for _ in range(2):
        learner.train_step(images, labels)
    times = []
    for _ in range(args.repeats):
        tic = time.process_time()
        learner.train_step(images, labels)
        times.append(time.process_time() - tic)
    rates = ", ".join(f"{r:.4f}" for r in learner.last_rates)
    print(
        f"one T = 400 step, batch 128, 1 thread: {sorted(times)[len(times) // 2]:.3f} CPU s "
        f"(median of {args.repeats}); firing rates {rates}"
    )
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(3):
        learner.train_step(images, labels)
    profiler.disable()
    stats = pstats.Stats(profiler)
    whole = stats.total_tt
    print(f"\ncProfile, 3 steps, {whole:.2f} CPU s; own time (share), cumulative, calls:")
    ranked = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[: args.top]
    for (path, line, name), (_, calls, own, cumulative, _) in ranked:
        where = name if path == "~" else f"{name} ({path.split('/')[-1]}:{line})"
        print(f"  {own:6.2f} s ({own / whole:5.1%})  {cumulative:6.2f} s  {calls:6d}  {where}")


if __name__ == "__main__":
    main()
