"""How fast the dendritic microcircuit runs: the continuous simulation against batch size, and
the two-sweep MNIST mode against the backprop MLP of the same shape.

Each measurement runs in its own child process (so peak memory is its own) after a warm-up,
and the script prints throughput, peak memory and the ratios.

    python benchmarks/dendritic_simulation.py              # CPU, one torch thread
    python benchmarks/dendritic_simulation.py --device cuda --threads 0

Continuous simulation: ``samples/s`` are circuits x patterns per second with every
plasticity rule on (a pattern is ``--pattern-ms`` of simulated time at ``--dt``), and
``sim ms/s`` the simulated milliseconds per wall second summed over circuits.
"""

from __future__ import annotations

import argparse
import resource
import time

from creditlab.benchmarking import run_in_child


def _setup(device: str, threads: int) -> None:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_mb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def continuous(
    sizes: list[int],
    batch: int,
    prospective: bool,
    dt: float,
    pattern_ms: float,
    seconds: float,
    device: str,
    threads: int,
) -> dict:
    import torch

    from creditlab.methods.dendritic import Microcircuit, Transfer

    _setup(device, threads)
    net = Microcircuit(
        sizes, phi=Transfer("softplus"), dt=dt, prospective=prospective, device=device
    )
    net.reset_state(batch)
    x = torch.rand(batch, sizes[0], device=device) * 2 - 1
    target = torch.rand(batch, sizes[-1], device=device) * 4
    net.run(x, target, pattern_ms)  # warm-up
    _sync(device)
    patterns, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        net.run(x, target, pattern_ms)
        patterns += 1
    _sync(device)
    elapsed = time.perf_counter() - start
    return {
        "samples_per_second": patterns * batch / elapsed,
        "sim_ms_per_second": patterns * batch * pattern_ms / elapsed,
        "peak_mb": _peak_mb(device),
    }


def sweeps_mnist(batch: int, steps: int, device: str, threads: int) -> dict:
    import torch

    from creditlab import data
    from creditlab.methods.dendritic.experiments import MnistConfig, _mnist_net
    from creditlab.methods.dendritic.learners import SweepsClassifier
    from creditlab.methods.dendritic.sweeps import MixingFactors

    _setup(device, threads)
    ds = data.load("mnist")
    x, y = ds.x_train.to(device), ds.y_train.to(device)
    cfg = MnistConfig()
    net = _mnist_net(cfg, 784, 10, torch.device(device))
    lam = MixingFactors(cfg.lambda_output, cfg.lambda_interneuron, cfg.lambda_apical)
    learner = SweepsClassifier(net, lam, [cfg.lr] * 3, momentum=cfg.momentum)
    return _time_steps(learner.train_step, x, y, batch, steps, device)


def backprop_mnist(batch: int, steps: int, device: str, threads: int) -> dict:
    import torch

    from creditlab import data
    from creditlab.models import mlp
    from creditlab.train import BackpropClassifier

    _setup(device, threads)
    ds = data.load("mnist")
    x, y = ds.x_train.to(device), ds.y_train.to(device)
    model = mlp(784, [500, 500], 10, "sigmoid").to(device)
    learner = BackpropClassifier(model, torch.optim.SGD(model.parameters(), 0.1, momentum=0.9))
    return _time_steps(learner.train_step, x, y, batch, steps, device)


def _time_steps(step, x, y, batch: int, steps: int, device: str) -> dict:
    for i in range(10):  # warm-up
        step(x[i * batch : (i + 1) * batch], y[i * batch : (i + 1) * batch])
    _sync(device)
    start = time.perf_counter()
    for i in range(steps):
        j = (i * batch) % (len(x) - batch)
        step(x[j : j + batch], y[j : j + batch])
    _sync(device)
    elapsed = time.perf_counter() - start
    return {"samples_per_second": steps * batch / elapsed, "peak_mb": _peak_mb(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument("--dt", type=float, default=0.1, help="Euler step, ms")
    parser.add_argument("--pattern-ms", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--batches", default="1,8,64,256", help="circuits side by side")
    parser.add_argument("--mnist-steps", type=int, default=300)
    args = parser.parse_args()
    common = (args.dt, args.pattern_ms, args.seconds, args.device, args.threads)

    print(f"device {args.device}, torch threads {args.threads or 'default'}, dt {args.dt} ms")
    print("\ncontinuous simulation, all plasticity on (teacher task's 30-50-10 student)")
    print(f"{'circuits':>9s}{'mode':>7s}{'samples/s':>12s}{'sim ms/s':>13s}{'vs 1':>9s}{'MB':>7s}")
    for prospective in (False, True):
        base = None
        for batch in (int(b) for b in args.batches.split(",")):
            r = run_in_child(continuous, [30, 50, 10], batch, prospective, *common)
            base = base or r["samples_per_second"]
            mode = "LE" if prospective else "plain"
            print(
                f"{batch:9d}{mode:>7s}{r['samples_per_second']:12.1f}"
                f"{r['sim_ms_per_second']:13.0f}{r['samples_per_second'] / base:8.1f}x"
                f"{r['peak_mb']:7.0f}"
            )
    print("\ncontinuous simulation of the MNIST network 784-500-500-10")
    for batch in (1, 10):
        r = run_in_child(continuous, [784, 500, 500, 10], batch, False, *common)
        print(
            f"{batch:9d} circuits {r['samples_per_second']:10.2f} samples/s "
            f"{r['sim_ms_per_second']:10.1f} sim ms/s {r['peak_mb']:8.0f} MB "
            f"(100 ms per image: {r['sim_ms_per_second'] / 100:.2f} images/s)"
        )
    print("\nMNIST 784-500-500-10, minibatches of 10: two-sweep mode vs backprop MLP (SGD)")
    sweep = run_in_child(sweeps_mnist, 10, args.mnist_steps, args.device, args.threads)
    bp = run_in_child(backprop_mnist, 10, args.mnist_steps, args.device, args.threads)
    for name, r in (("microcircuit, sweeps", sweep), ("backprop MLP", bp)):
        print(f"{name:22s}{r['samples_per_second']:10.0f} samples/s {r['peak_mb']:8.0f} MB")
    ratio = sweep["samples_per_second"] / bp["samples_per_second"]
    print(f"speed ratio sweeps / backprop: {ratio:.2f}x")
    print(f"memory ratio sweeps / backprop: {sweep['peak_mb'] / bp['peak_mb']:.2f}x")


if __name__ == "__main__":
    main()
