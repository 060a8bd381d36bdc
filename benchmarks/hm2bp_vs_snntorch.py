"""HM2-BP against snnTorch (surrogate-gradient BPTT): the same 784-800-10 spiking network and
number of steps T on the mnist10k split, trained for the same epochs; test accuracy, seconds per
epoch and peak memory at T = 100, 200, 400, with the ratios, in one run.

    python benchmarks/hm2bp_vs_snntorch.py                          # T = 100, 200, 400; 1 epoch
    python benchmarks/hm2bp_vs_snntorch.py --steps 100,400 --n-train 2000   # a short version
    python benchmarks/hm2bp_vs_snntorch.py --device cuda --threads 0

Each (method, T) trains in its own child process (peak memory its own: ``ru_maxrss`` of the
child, plus the peak CUDA allocation on a GPU), from the same seed, with minibatches of 128.

* HM2-BP (creditlab.methods.hm2bp): Bernoulli rate coding (pixel / 5.5 a step), LIF neurons with
  first-order synapses (thresholds 20 / 8), the rate loss with desired / undesired counts
  35 / 5 and margin 5 scaled by T / 400 (so the targets stay reachable at short T), Adam at
  ``--hm2bp-lr`` / sqrt(epoch + 1) (default 1e-2: the spec's 1e-3 is for batch 1, 60,000
  steps an epoch; here an epoch is 62 steps of 128), no autograd.
* snnTorch: its tutorial-5 setup at 784-800-10: ``nn.Linear`` + ``snn.Leaky(beta=0.95)`` (its
  default arctan surrogate gradient), the image fed as a constant input current at every step,
  cross-entropy on the output membrane potential summed over the T steps, BPTT through all of
  them with autograd, Adam lr 5e-4; prediction by the output spike count.

Both are evaluated on the 2,000 mnist10k test images after training. The machine's other load
affects the seconds: run it on an otherwise idle machine (snnTorch peaked at 1.5 GB at
T = 400).
"""

from __future__ import annotations

import argparse
import time

from creditlab.benchmarking import run_in_child


def _setup(threads: int, seed: int = 0) -> None:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)


def _data(device: str, n_train: int):
    from creditlab import data

    ds = data.load("mnist")
    x_train = ds.x_train[: n_train or None].reshape(-1, 784).to(device)
    return (
        x_train,
        ds.y_train[: n_train or None].to(device),
        ds.x_test.reshape(-1, 784).to(device),
        ds.y_test.to(device),
    )


def _peak_cuda_mb(device: str) -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else 0.0


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _train_epochs(step, n: int, epochs: int, batch: int, device: str) -> tuple[float, float]:
    """Run ``step(indices)`` over ``epochs`` epochs of minibatches (creditlab's epoch order,
    seed 0, last partial batch dropped); mean seconds per epoch, and the process's peak memory
    before the first step (interpreter, torch, data, model: the baseline of the peak)."""
    from creditlab.benchmarking import peak_rss_mb
    from creditlab.train import epoch_order

    baseline = peak_rss_mb()
    seconds = []
    for epoch in range(epochs):
        order = epoch_order(n, 0, epoch)
        _sync(device)
        tic = time.perf_counter()
        for b in range(n // batch):
            step(order[b * batch : (b + 1) * batch].to(device))
        _sync(device)
        seconds.append(time.perf_counter() - tic)
    return sum(seconds) / len(seconds), baseline


def hm2bp(
    steps: int, epochs: int, batch: int, n_train: int, device: str, threads: int, lr: float
) -> dict:
    import torch

    from creditlab.methods.hm2bp import Dense, HM2BPLearner, RateTargets, SpikingNetwork
    from creditlab.spiking import bernoulli_encode

    _setup(threads)
    x_train, y_train, x_test, y_test = _data(device, n_train)
    g = torch.Generator().manual_seed(0)
    net = SpikingNetwork([Dense((784,), 800, 0.5, g), Dense((800,), 10, 1.0, g)], (20.0, 8.0))
    net.to(device)
    scale = steps / 400

    def encode(x, generator):
        return bernoulli_encode(x, steps, 5.5, generator)

    learner = HM2BPLearner(
        net,
        encode,
        10,
        lr=lr,
        batches_per_epoch=len(x_train) // batch,
        targets=RateTargets(35 * scale, 5 * scale, 5 * scale),
        eval_batch=batch,
    )

    def step(idx):
        learner.train_step(x_train[idx], y_train[idx])

    seconds, baseline = _train_epochs(step, len(x_train), epochs, batch, device)
    accuracy = learner.evaluate(x_test, y_test)["accuracy"]
    return {
        "accuracy": accuracy,
        "seconds_per_epoch": seconds,
        "cuda_mb": _peak_cuda_mb(device),
        "baseline_mb": baseline,
    }


def snntorch_bptt(
    steps: int, epochs: int, batch: int, n_train: int, device: str, threads: int, lr: float
) -> dict:
    import snntorch as snn
    import torch
    from torch import nn

    _setup(threads)
    x_train, y_train, x_test, y_test = _data(device, n_train)

    class Net(nn.Module):  # snnTorch tutorial 5, at 784-800-10
        def __init__(self):
            super().__init__()
            self.fc1, self.lif1 = nn.Linear(784, 800), snn.Leaky(beta=0.95)
            self.fc2, self.lif2 = nn.Linear(800, 10), snn.Leaky(beta=0.95)

        def forward(self, x):
            mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
            spikes, mems = [], []
            for _ in range(steps):
                spk1, mem1 = self.lif1(self.fc1(x), mem1)
                spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
                spikes.append(spk2)
                mems.append(mem2)
            return torch.stack(spikes), torch.stack(mems)

    net = Net().to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.999))
    loss_fn = nn.CrossEntropyLoss()

    def step(idx):
        _, mem = net(x_train[idx])
        loss = sum(loss_fn(mem[t], y_train[idx]) for t in range(steps))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    seconds, baseline = _train_epochs(step, len(x_train), epochs, batch, device)
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x_test), 250):
            spikes, _ = net(x_test[i : i + 250])
            correct += int((spikes.sum(0).argmax(1) == y_test[i : i + 250]).sum())
    return {
        "accuracy": correct / len(x_test),
        "seconds_per_epoch": seconds,
        "cuda_mb": _peak_cuda_mb(device),
        "baseline_mb": baseline,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="100,200,400", help="comma-separated values of T")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--n-train", type=int, default=0, help="first n training images (0: all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument("--only", choices=("hm2bp", "snntorch"), help="run one method only")
    parser.add_argument("--hm2bp-lr", type=float, default=1e-2, help="HM2-BP's Adam lr")
    parser.add_argument("--snntorch-lr", type=float, default=5e-4, help="snnTorch's (tutorial)")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    common = (args.epochs, args.batch, args.n_train, args.device, args.threads)
    print(
        f"784-800-10 on mnist10k, {args.epochs} epoch(s), batch {args.batch}, n_train "
        f"{args.n_train or 8000}, device {args.device}, torch threads {args.threads or 'default'}"
    )
    header = (
        f"{'T':>4} {'method':>9} {'test acc':>9} {'s/epoch':>9} {'peak MB':>8} {'train MB':>9}"
        f" {'acc ratio':>10} {'speed-up':>9} {'peak ratio':>11} {'train ratio':>12}"
    )
    print(header)
    rows: dict[int, dict[str, dict]] = {}
    for t in steps:
        rows[t] = {}
        for name, fn in (("hm2bp", hm2bp), ("snntorch", snntorch_bptt)):
            if args.only and name != args.only:
                continue
            lr = args.hm2bp_lr if name == "hm2bp" else args.snntorch_lr
            out = run_in_child(fn, t, *common, lr)
            out["peak_mb"] = out["peak_rss_mb"] + out["cuda_mb"]
            out["train_mb"] = out["peak_rss_mb"] - out["baseline_mb"] + out["cuda_mb"]
            rows[t][name] = out
        for name, out in rows[t].items():
            ratios = ""
            if name == "hm2bp" and "snntorch" in rows[t]:
                ref = rows[t]["snntorch"]
                ratios = (
                    f" {out['accuracy'] / ref['accuracy']:10.3f}"
                    f" {ref['seconds_per_epoch'] / out['seconds_per_epoch']:9.2f}"
                    f" {ref['peak_mb'] / out['peak_mb']:11.1f}"
                    f" {ref['train_mb'] / max(out['train_mb'], 1.0):12.1f}"
                )
            print(
                f"{t:>4} {name:>9} {out['accuracy']:9.4f} {out['seconds_per_epoch']:9.1f} "
                f"{out['peak_mb']:8.0f} {out['train_mb']:9.0f}{ratios}",
                flush=True,
            )
    first, last = min(steps), max(steps)
    print(
        "\nratios: acc = HM2-BP / snnTorch, speed-up = snnTorch s/epoch / HM2-BP's, peak = "
        "snnTorch peak / HM2-BP's (whole process), train = the same for the memory training "
        "added to the process's peak before its first step (interpreter, torch, data, model)"
    )
    for name in ("hm2bp", "snntorch"):
        if first != last and name in rows[first] and name in rows[last]:
            peak = rows[last][name]["peak_mb"] / rows[first][name]["peak_mb"]
            train = rows[last][name]["train_mb"] / max(rows[first][name]["train_mb"], 1.0)
            print(
                f"{name}: from T = {first} to T = {last}, peak memory grows {peak:.2f}x, "
                f"training memory {train:.2f}x"
            )


if __name__ == "__main__":
    main()
