"""The sparse hyperlayer against a dense layer of the same shape: seconds per training step and
peak memory as n grows (n x n maps, 256 -> 16,384), printed with their ratios.

Each measurement runs in its own child process after a warm-up. A step is a forward pass on a
batch of ``--batch`` inputs x ~ N(0, I), the MSE against the input (the identity task) and
the backward pass. The sparse layer has k = n free tuples with the identity experiment's
sampling (2^2 neighbours + 4 global + 4 local candidates each, region 4, values fixed to 1)
and the reference's pooled normalisation in chunks of ``--chunk`` tuples: each chunk's
candidates form one pool and every tuple of the chunk is normalised over it, which costs
``k * chunk * 12`` densities. One chunk of all k (``--chunk 0``, the identity experiment's
setting at n = 32) is quadratic in n: it is measured only up to ``--max-whole`` (default 1,024).
The dense one is an n x n ``nn.Linear`` without bias. Memory is the child's peak resident
memory above what it held before building the layer (torch and the batch are already
loaded), so it counts the parameters, their gradients and the activations of the step.

    python benchmarks/sparse_vs_dense.py               # CPU, one torch thread
    python benchmarks/sparse_vs_dense.py --device cuda --threads 0

Goals (issue 19): less memory than dense from n = 1,024 and faster past n = 4,096.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from creditlab.benchmarking import run_in_child

SIZES = (256, 1024, 4096, 8192, 16384)


def _rss_mb() -> float:
    """Current resident memory of this process (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


def step_cost(
    kind: str, n: int, batch: int, seconds: float, device: str, threads: int, chunk: int = 16
) -> dict:
    import torch

    from creditlab.methods.sparse import SparseHyperLayer

    if threads > 0:
        torch.set_num_threads(threads)
    torch.manual_seed(0)

    def build(size: int) -> torch.nn.Module:
        if kind == "sparse":
            layer = SparseHyperLayer((size,), (size,), k=size, n_global=4, n_local=4, region=4,
                                     fix_values=True, chunk_size=min(chunk, size))  # fmt: skip
        else:
            layer = torch.nn.Linear(size, size, bias=False)
        return layer.to(device)

    def step(layer: torch.nn.Module, x: torch.Tensor) -> None:
        loss = torch.nn.functional.mse_loss(layer(x), x)
        layer.zero_grad(set_to_none=False)
        loss.backward()

    step(build(16), torch.randn(batch, 16, device=device))  # load the kernels and autograd
    x = torch.randn(batch, n, device=device)
    before = _rss_mb()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
    layer = build(n)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for _ in range(2):
        step(layer, x)
    sync()
    done, tic = 0, time.perf_counter()
    while time.perf_counter() - tic < seconds or done < 3:
        step(layer, x)
        done += 1
    sync()
    per_step = (time.perf_counter() - tic) / done
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20 - before
    else:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
    return {"seconds_per_step": per_step, "memory_mb": max(peak, 0.01)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--chunk", type=int, default=16, help="tuples per pool (0: all k)")
    parser.add_argument("--max-whole", type=int, default=1024, help="largest n for --chunk 0")
    args = parser.parse_args()
    print(f"device {args.device}, torch threads {args.threads or 'default'}, batch {args.batch}, "
          f"chunk {args.chunk or 'all k'}")  # fmt: skip
    print("time: seconds per forward + backward step; memory: peak MB above the baseline\n")
    header = (
        f"{'n':>7} {'sparse s':>10} {'dense s':>10} {'time ratio':>11} "
        f"{'sparse MB':>10} {'dense MB':>10} {'memory ratio':>13}"
    )
    print(header)
    common = (args.batch, args.seconds, args.device, args.threads)
    for n in args.sizes:
        if args.chunk == 0 and n > args.max_whole:
            print(f"{n:>7}  (one chunk of all k is quadratic in n: skipped above --max-whole)")
            continue
        sparse = run_in_child(step_cost, "sparse", n, *common, args.chunk or n)
        dense = run_in_child(step_cost, "dense", n, *common)
        print(
            f"{n:>7} {sparse['seconds_per_step']:10.5f} {dense['seconds_per_step']:10.5f} "
            f"{sparse['seconds_per_step'] / dense['seconds_per_step']:11.3f} "
            f"{sparse['memory_mb']:10.1f} {dense['memory_mb']:10.1f} "
            f"{sparse['memory_mb'] / dense['memory_mb']:13.3f}"
        )
    print("\nratio = sparse / dense: below 1 the sparse layer wins")


if __name__ == "__main__":
    main()
