"""How fast the dendritic microcircuit runs: the continuous simulation of the paper's
784-500-500-10 network with full dynamics, blocked (``Microcircuit.run``) against the plain
step-by-step loop and against the peer, next to what the machine allows; then the two-sweep
MNIST mode against the backprop MLP of the same shape.

    python benchmarks/dendritic_simulation.py                # CPU, one torch thread
    python benchmarks/dendritic_simulation.py --threads 2
    python benchmarks/dendritic_simulation.py --device cuda --threads 0

Full dynamics: dt = 0.1 ms, 100 ms per pattern (1000 Euler steps), somatic noise, and all
four plasticity rules on with the low-pass filter tau_w = 30 ms (Eq. 7 forward, Eq. 8
interneuron, Eq. 9 apical, Eq. 10 top-down with eta_down = 5e-4). One circuit is the paper's
learning process. Several circuits side by side share their weights and sum their
plasticity: that is *minibatch learning*, a different learning process, and its rows say so.

Each measurement runs in its own child process (so peak memory is its own): a warm-up
pattern, then ``--repeats`` patterns, each timed; the table gives the best and the median
patterns per second (wall clock) and CPU time per pattern, with the load average, since the
machine may be shared. The peer, PyraLNet (NumPy; public repository phll/Neuro-Backprop), is not on
PyPI, so it is not timed here: its figure from issue 16 (0.41-0.51 patterns/s for one circuit
with the same dynamics on this kind of machine) is the reference for the ratios.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

from creditlab.benchmarking import run_in_child
from creditlab.methods.dendritic.fast import BLOCKED_BELOW

SIZES = [784, 500, 500, 10]
PEER = (0.41, 0.51)  # PyraLNet, patterns/s, one circuit (issue 16)
ETA = {"eta_up": 1.2e-3, "eta_IP": 2.4e-4, "eta_PI": 5e-4, "eta_down": 5e-4}


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
    circuits: int, blocked: bool, repeats: int, pattern_ms: float, device: str, threads: int
) -> dict:
    """Patterns of the paper's network: seconds (wall, CPU) per presentation of one pattern
    to each of ``circuits`` circuits, with every plasticity rule on."""
    import torch

    from creditlab.methods.dendritic import Microcircuit, Transfer

    _setup(device, threads)
    net = Microcircuit(SIZES, phi=Transfer("softplus"), device=device, **ETA)
    assert all(rate > 0 for rate in (*net.eta_up, net.eta_IP, net.eta_PI, net.eta_down))
    net.reset_state(circuits)

    def pattern() -> None:
        x = torch.rand(circuits, SIZES[0], device=device) * 2 - 1
        target = torch.rand(circuits, SIZES[-1], device=device) * 4
        net.run(x, target, pattern_ms, blocked=blocked)

    pattern()  # warm-up
    _sync(device)
    wall, cpu = [], []
    for _ in range(repeats):
        tic, tic_cpu = time.perf_counter(), time.process_time()
        pattern()
        _sync(device)
        wall.append(time.perf_counter() - tic)
        cpu.append(time.process_time() - tic_cpu)
    return {"wall": wall, "cpu": cpu, "peak_mb": _peak_mb(device)}


def machine_rates(device: str, threads: int) -> dict:
    """What the machine streams and computes: a float32 matrix-vector product over 8 MB (the
    blocked step's dense matrices; it does not fit in the caches a core owns, so it streams),
    the same over 1 MB (fits a core's L2), and a large matrix product."""
    import torch

    _setup(device, threads)

    def best(fn, n: int) -> float:
        times = []
        for _ in range(7):
            fn()
            _sync(device)
            tic = time.perf_counter()
            for _ in range(n):
                fn()
            _sync(device)
            times.append((time.perf_counter() - tic) / n)
        return min(times)

    out = {}
    for name, rows in (("stream_gb_s", 4000), ("l2_gb_s", 500)):
        W = torch.randn(rows, 500, device=device)
        x = torch.randn(500, device=device)
        out[name] = W.numel() * 4 / best(lambda W=W, x=x: W @ x, 50) / 1e9
    A = torch.randn(1000, 1000, device=device)
    out["matmul_gflop_s"] = 2 * 1000**3 / best(lambda: A @ A, 5) / 1e9
    return out


def per_step_cost(blocked: bool) -> tuple[float, float, float]:
    """(bytes from beyond a core's caches, flops, of which matrix-product flops) of one Euler
    step of one circuit of the 784-500-500-10 network in float32.

    Step by step: every synapse is read by ``W x``, its outer product written, scaled by eta,
    ``W += dt Delta`` and ``Delta <- lerp(Delta, eta P)``: about 40 bytes and 9 flops each.
    Blocked: ``Z_0 x`` and ``D_0 x`` of every hidden synapse (8 bytes, 4 flops; the first
    layer is seen through its input span, 2B columns), and the fold every 32 steps reads and
    writes Z and D (16 bytes / 32) with two rank-32 products (4 flops per synapse and step)."""
    n_in, n1, n2, n3 = SIZES
    hidden = 2 * (n2 * n1 + n3 * n2) + 2 * (n1 * n2 + n2 * n3)  # W^PP up/IP, down/PI
    if blocked:
        K = 32
        return 8 * hidden + 16 * hidden / K, 4 * hidden + 4 * hidden, 4 * hidden
    synapses = hidden + n1 * n_in
    return 40 * synapses, 9 * synapses, 0.0


def sweeps_mnist(batch: int, steps: int, device: str, threads: int) -> dict:
    import torch

    from creditlab import data
    from creditlab.methods.dendritic.experiments import MnistConfig
    from creditlab.methods.dendritic.learners import SweepsClassifier
    from creditlab.methods.dendritic.mnist import mnist_net

    _setup(device, threads)
    ds = data.load("mnist")
    x, y = ds.x_train.to(device), ds.y_train.to(device)
    cfg = MnistConfig()
    net = mnist_net(cfg, 784, 10, torch.device(device))
    learner = SweepsClassifier(net, cfg.mixing_factors(), [cfg.lr] * 3, momentum=cfg.momentum)
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


def _load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def paper_table(args: argparse.Namespace) -> None:
    common = (args.pattern_ms, args.device, args.threads)
    print(
        f"\ncontinuous simulation, {'-'.join(map(str, SIZES))}, dt 0.1 ms, {args.pattern_ms:g} ms"
        " per pattern, noise 0.1, all four plasticity rules on (tau_w 30 ms)"
    )
    print(f"({_load()}; {args.repeats} patterns per row after a warm-up)")
    header = f"{'circuits':>8s}  {'learning':9s} {'simulation':13s}"
    header += (
        f"{'patterns/s best':>16s}{'median':>8s}{'CPU s/pattern':>14s}{'x loop':>8s}{'MB':>7s}"
    )
    print(header)
    results = {}
    for circuits in (int(c) for c in args.circuits.split(",")):
        loop = None
        for blocked in (False, True):
            r = run_in_child(continuous, circuits, blocked, args.repeats, *common)
            rates = [circuits / t for t in r["wall"]]
            cpu = min(r["cpu"]) / circuits
            best, median = max(rates), statistics.median(rates)
            loop = best if not blocked else loop
            results[circuits, blocked] = best
            ratio = f"{best / loop:7.1f}x" if blocked else f"{'':8s}"
            picked = "*" if blocked == (circuits < BLOCKED_BELOW) else " "
            print(
                f"{circuits:8d}  {'one' if circuits == 1 else 'minibatch':9s} "
                f"{'blocked' if blocked else 'step by step':12s}{picked}{best:16.2f}{median:8.2f}"
                f"{cpu:14.3f}{ratio}{r['peak_mb']:7.0f}"
            )
    print("* what Microcircuit.run picks by default; minibatch: shared weights, summed plasticity")
    print(_load())
    one = results.get((1, True))
    if one:
        print(
            f"\none circuit, blocked: {one:.2f} patterns/s = {one / PEER[1]:.1f}x to "
            f"{one / PEER[0]:.1f}x the peer (PyraLNet, {PEER[0]}-{PEER[1]} patterns/s per issue "
            "16, measured elsewhere: not installable here, so not timed in this run)"
        )
    rates = run_in_child(machine_rates, args.device, args.threads)
    print(
        f"\nmachine now: {rates['stream_gb_s']:.1f} GB/s streaming a float32 matrix-vector "
        f"product over 8 MB, {rates['l2_gb_s']:.1f} GB/s over 1 MB (in a core's L2), "
        f"{rates['matmul_gflop_s']:.0f} GFLOP/s float32 matrix product"
    )
    for blocked in (False, True):
        nbytes, flops, matmul_flops = per_step_cost(blocked)
        seconds = nbytes / (rates["stream_gb_s"] * 1e9)  # streaming ...
        seconds += matmul_flops / (rates["matmul_gflop_s"] * 1e9)  # ... and the fold
        steps = args.pattern_ms / 0.1
        print(
            f"  {'blocked' if blocked else 'step by step':13s} per step of one circuit: "
            f"{nbytes / 1e6:5.1f} MB, {flops / 1e6:4.1f} MFLOP -> at most "
            f"{1 / (seconds * steps):.2f} patterns/s at these rates"
        )


def sweeps_table(args: argparse.Namespace) -> None:
    print("\nMNIST 784-500-500-10, minibatches of 10: two-sweep mode vs backprop MLP (SGD)")
    try:
        from creditlab import data

        data.load("mnist")
    except Exception as err:  # noqa: BLE001 - the data set may not be there
        print(f"skipped: {err}")
        return
    sweep = run_in_child(sweeps_mnist, 10, args.mnist_steps, args.device, args.threads)
    bp = run_in_child(backprop_mnist, 10, args.mnist_steps, args.device, args.threads)
    for name, r in (("microcircuit, sweeps", sweep), ("backprop MLP", bp)):
        print(f"{name:22s}{r['samples_per_second']:10.0f} samples/s {r['peak_mb']:8.0f} MB")
    ratio = sweep["samples_per_second"] / bp["samples_per_second"]
    print(f"speed ratio sweeps / backprop: {ratio:.2f}x")
    print(f"memory ratio sweeps / backprop: {sweep['peak_mb'] / bp['peak_mb']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument("--pattern-ms", type=float, default=100.0, help="ms per pattern")
    parser.add_argument("--repeats", type=int, default=5, help="timed patterns per row")
    parser.add_argument("--circuits", default="1,16,64", help="circuits side by side")
    parser.add_argument("--mnist-steps", type=int, default=300)
    parser.add_argument("--sections", default="paper,sweeps", help="paper, sweeps")
    args = parser.parse_args()
    print(f"device {args.device}, torch threads {args.threads or 'default'}")
    sections = args.sections.split(",")
    if "paper" in sections:
        paper_table(args)
    if "sweeps" in sections:
        sweeps_table(args)


if __name__ == "__main__":
    main()
