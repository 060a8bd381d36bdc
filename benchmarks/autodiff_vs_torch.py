"""Seconds per epoch: creditlab's NumPy autodiff engine against torch on the CPU.

Both train the same MLP (784-500-500-10, ReLU, the engine starting from the torch model's
weights) with Adam on the same minibatches of the mnist10k training split (8000 images, batch
100), in the same process: a warm-up epoch each, then ``--epochs`` timed epochs alternating
between the two, so that a change in the machine's load hits both. The ratio is reported for
the best epoch of each (the one least disturbed by anything else running) and the median.
Each side gets its data the way it would natively (NumPy indexing for the engine, torch
indexing for torch) and a plain loop: forward, cross-entropy, backward, Adam step.

Memory is measured separately, one child process per side (so neither inherits the other's
allocator caches): the peak resident set size (RSS, sampled from /proc/self/statm every
0.5 ms) while the side builds its network and optimiser and trains one epoch, above the RSS
just before (parameters, optimiser state, activations, gradients and temporaries; each
library has first been used for three steps of a tiny network, so its one-time start-up
allocations are not counted). For the
engine it also reports the peak of NumPy's allocations over the same span, as traced by
``tracemalloc`` (torch's allocator is invisible to tracemalloc).

    CREDITLAB_DATA=../shared/data python benchmarks/autodiff_vs_torch.py --epochs 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
import torch

from creditlab import data
from creditlab.autodiff import nn
from creditlab.autodiff.engine import Tensor
from creditlab.autodiff.learner import from_torch
from creditlab.models import mlp


def load_data() -> dict:
    """The mnist10k training images, flattened, for both sides."""
    ds = data.load("mnist")
    x = ds.x_train.reshape(len(ds.x_train), -1).contiguous()
    return {"x_torch": x, "y_torch": ds.y_train, "x_np": x.numpy(), "y_np": ds.y_train.numpy()}


def torch_side(hidden: list[int], seed: int = 0) -> dict:
    """The torch MLP (as bp.mnist builds it) and its Adam."""
    torch.manual_seed(seed)
    model = mlp(784, hidden, 10)
    return {"torch_model": model, "torch_opt": torch.optim.Adam(model.parameters(), lr=1e-3)}


def engine_side(torch_model: torch.nn.Module) -> dict:
    """The engine's copy of the torch MLP, and its Adam."""
    engine = from_torch(torch_model)
    return {"engine": engine, "engine_opt": nn.Adam(engine.parameters(), lr=1e-3)}


def torch_epoch(s: dict, order: np.ndarray, batch: int) -> float:
    """One epoch of plain torch training; returns the mean loss."""
    model, opt, x, y = s["torch_model"], s["torch_opt"], s["x_torch"], s["y_torch"]
    order_t = torch.from_numpy(order)
    total = 0.0
    for i in range(0, len(order) - batch + 1, batch):
        idx = order_t[i : i + batch]
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item()
    return total / (len(order) // batch)


def engine_epoch(s: dict, order: np.ndarray, batch: int) -> float:
    """One epoch of the engine's training; returns the mean loss."""
    model, opt, x, y = s["engine"], s["engine_opt"], s["x_np"], s["y_np"]
    total = 0.0
    for i in range(0, len(order) - batch + 1, batch):
        idx = order[i : i + batch]
        loss = model(Tensor(x[idx], requires_grad=False)).cross_entropy(y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += float(loss.data)
    return total / (len(order) // batch)


EPOCHS: dict[str, Callable[[dict, np.ndarray, int], float]] = {
    "engine": engine_epoch,
    "torch": torch_epoch,
}


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_above_start(fn: Callable[[], object]) -> int:
    """Run ``fn`` while a thread samples the RSS; the peak minus the RSS at the start."""
    start, peak, done = rss_bytes(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.0005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        fn()
    finally:
        done.set()
        thread.join()
    return max(peak[0], rss_bytes()) - start


def memory_child(side: str, hidden: list[int], batch: int) -> None:
    """Child-process mode: the memory ``side`` needs to build its network and optimiser and
    train one epoch (parameters, optimiser state, activations, gradients, temporaries),
    measured from just before the network exists; printed as JSON."""
    s = load_data()
    order = np.random.default_rng(0).permutation(len(s["x_np"]))
    tiny = torch_side([8])  # first use of the library (lazy imports, thread pools, BLAS buffers)
    s.update(tiny if side == "torch" else engine_side(tiny["torch_model"]))
    EPOCHS[side](s, order[: 3 * batch], batch)
    reference = torch_side(hidden)["torch_model"] if side == "engine" else None

    def build_and_train() -> None:
        s.update(engine_side(reference) if reference is not None else torch_side(hidden))
        EPOCHS[side](s, order, batch)

    if side == "engine":
        tracemalloc.start()
    result = {"rss_mb": peak_rss_above_start(build_and_train) / 2**20}
    if side == "engine":
        result["tracemalloc_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    print(json.dumps(result))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per side (default 5)")
    parser.add_argument("--hidden", default="500,500", help="hidden widths (default 500,500)")
    parser.add_argument("--batch-size", type=int, default=100, help="minibatch (default 100)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--memory-child", choices=sorted(EPOCHS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    hidden = [int(h) for h in args.hidden.split(",") if h]
    if args.memory_child:
        memory_child(args.memory_child, hidden, args.batch_size)
        return 0

    s = load_data()
    s.update(torch_side(hidden))
    s.update(engine_side(s["torch_model"]))
    n = len(s["x_np"])
    print(
        f"MLP {'-'.join(map(str, [784, *hidden, 10]))}, Adam, batch {args.batch_size}, "
        f"{n} training images (mnist10k); numpy {np.__version__}, torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs"
    )
    rng = np.random.default_rng(0)
    seconds: dict[str, list[float]] = {"engine": [], "torch": []}
    losses: dict[str, float] = {}
    for epoch in range(args.epochs + 1):  # epoch 0 is the warm-up
        order = rng.permutation(n)
        for side in ("engine", "torch") if epoch % 2 == 0 else ("torch", "engine"):
            start = time.perf_counter()
            losses[side] = EPOCHS[side](s, order, args.batch_size)
            if epoch:
                seconds[side].append(time.perf_counter() - start)
    best = {side: min(t) for side, t in seconds.items()}
    med = {side: statistics.median(t) for side, t in seconds.items()}
    for side in ("engine", "torch"):
        times = ", ".join(f"{t:.3f}" for t in seconds[side])
        print(
            f"{side:7s} best {best[side]:.3f} s/epoch, median {med[side]:.3f} "
            f"({times}); last epoch's mean loss {losses[side]:.4f}"
        )
    print(
        f"ratio engine/torch: {best['engine'] / best['torch']:.2f}x best-to-best, "
        f"{med['engine'] / med['torch']:.2f}x median-to-median (goal <= 2x)"
    )

    if not args.no_memory:
        for side in ("engine", "torch"):
            cmd = [sys.executable, __file__, "--memory-child", side, "--hidden", args.hidden]
            cmd += ["--batch-size", str(args.batch_size)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            mem = json.loads(out.strip().splitlines()[-1])
            traced = mem.get("tracemalloc_mb")
            extra = f"; tracemalloc peak of NumPy allocations {traced:.1f} MB" if traced else ""
            print(f"{side:7s} peak RSS growth, build + 1 epoch: {mem['rss_mb']:6.1f} MB{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
