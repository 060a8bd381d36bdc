"""The pieces behind HM2-BP's speed (docs/hm2bp.md), each against what it replaced, one torch
thread, on tensors the size of a 20-step block of a 784-800-10 network at batch 128:

* the weight gradient (g A)^T u as bags of trace rows at the post spikes vs the dense product;
* ``spike_positions`` vs ``torch.nonzero`` on a spike block;
* bool -> float through uint8 (``as_bytes``) vs directly; ``count_nonzero`` vs ``sum`` on bool;
* a matrix product with subnormal weights vs ordinary ones (why ``learner.TINY`` exists);
* one T = 400 training step of 128 images, split into encoding, forward and backward.

    python benchmarks/hm2bp_pieces.py [--density 0.01] [--repeats 10] [--profile]

``--profile`` adds cProfile's view of three training steps: the creditlab functions by
cumulative time, as shares of the step.
"""

from __future__ import annotations

import argparse
import time

import torch


def seconds(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return sorted(times)[len(times) // 2]


def row(name: str, new: float, old: float) -> None:
    print(f"{name:<46} {new * 1e3:9.2f} ms {old * 1e3:9.2f} ms {old / new:8.1f}x")


def main() -> None:
    from creditlab import data
    from creditlab.methods.hm2bp import Dense, HM2BPLearner, RateTargets, SpikingNetwork
    from creditlab.methods.hm2bp.spsp import bag_sum
    from creditlab.spiking import as_bytes, bernoulli_encode, spike_positions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--density", type=float, default=0.01, help="post spikes per entry")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--profile", action="store_true", help="cProfile three training steps")
    args = parser.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    rows, n_pre, n_post = 20 * 128, 784, 800
    u = torch.rand(rows, n_pre, generator=g)
    post = torch.rand(rows, n_post, generator=g) < args.density
    a = torch.rand(rows, n_post, generator=g) * post
    print(f"{'piece (new vs old)':<46} {'new':>12} {'old':>12} {'speed-up':>9}")

    def bags():
        flat = spike_positions(post.T.contiguous())  # (neuron, row) order
        i, r = flat // rows, flat % rows
        return bag_sum(r, u, i, n_post, a.T.reshape(-1)[flat])

    assert torch.allclose(bags(), a.T @ u, rtol=1e-4, atol=1e-4)
    row(
        "weight gradient: bags vs dense (gA)^T u",
        seconds(bags, args.repeats),
        seconds(lambda: a.T @ u, args.repeats),
    )
    row(
        "spike_positions vs torch.nonzero",
        seconds(lambda: spike_positions(post), args.repeats),
        seconds(lambda: post.flatten().nonzero(), args.repeats),
    )
    row(
        "bool -> float via uint8 vs direct",
        seconds(lambda: as_bytes(post).to(torch.float32), args.repeats),
        seconds(lambda: post.to(torch.float32), args.repeats),
    )
    row(
        "count_nonzero vs sum on bool",
        seconds(lambda: torch.count_nonzero(post), args.repeats),
        seconds(lambda: post.sum(), args.repeats),
    )
    x = (torch.rand(3200, n_pre, generator=g) < 0.14).float()
    w = torch.rand(n_post, n_pre, generator=g)
    subnormal = w.clone()
    subnormal[:200] = 1e-41  # a quarter of the hidden neurons' weights decayed (float32)
    row(
        "x @ W^T: ordinary vs quarter-subnormal W",
        seconds(lambda: x @ w.T, args.repeats),
        seconds(lambda: x @ subnormal.T, max(1, args.repeats // 5)),
    )

    ds = data.load("mnist")
    images, labels = ds.x_train.reshape(-1, 784)[:128], ds.y_train[:128]
    net = SpikingNetwork([Dense((784,), 800, 0.5, g), Dense((800,), 10, 1.0, g)], (20.0, 8.0))
    learner = HM2BPLearner(
        net,
        lambda xb, gen: bernoulli_encode(xb, 400, 5.5, gen),
        10,
        lr=1e-2,
        targets=RateTargets(35.0, 5.0, 5.0),
    )
    for _ in range(3):
        learner.train_step(images, labels)
    parts = {"encode": 0.0, "simulate": 0.0, "gradients": 0.0}
    for _ in range(args.repeats // 2 or 1):
        tic = time.perf_counter()
        spikes = learner.encode(images, None)
        mid = time.perf_counter()
        record = net.simulate(spikes)
        end = time.perf_counter()
        net.gradients(spikes, record, learner.output_delta(record, labels))
        parts["encode"] += mid - tic
        parts["simulate"] += end - mid
        parts["gradients"] += time.perf_counter() - end
    n = args.repeats // 2 or 1
    total = sum(parts.values()) / n
    shares = ", ".join(f"{k} {v / n:.3f} s" for k, v in parts.items())
    rates = ", ".join(f"{r:.4f}" for r in learner.last_rates)
    print(f"\none T = 400 step of 128 MNIST images: {total:.3f} s ({shares}); firing rates {rates}")
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(3):
            learner.train_step(images, labels)
        profiler.disable()
        stats = pstats.Stats(profiler)
        whole = max(entry[3] for entry in stats.stats.values())  # the outermost call
        print("\nshare of the step (cumulative), creditlab functions:")
        ranked = sorted(stats.stats.items(), key=lambda kv: -kv[1][3])
        for (path, line, name), entry in ranked:
            if "creditlab" in path and 0.01 * whole < entry[3] < whole:
                print(f"  {entry[3] / whole:6.1%}  {name} ({path.split('creditlab/')[-1]}:{line})")


if __name__ == "__main__":
    main()
