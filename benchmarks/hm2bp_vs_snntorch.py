"""HM2-BP against the peers as an expert uses them: the same 784-800-10 spiking network and
number of steps T on the mnist10k split, the same batch, threads and epochs; test accuracy,
seconds per epoch and peak memory at T = 100, 200, 400, with the ratios to each peer, in one
run.

    python benchmarks/hm2bp_vs_snntorch.py                          # T = 100, 200, 400; 1 epoch
    python benchmarks/hm2bp_vs_snntorch.py --steps 100 --n-train 1024   # a short version
    python benchmarks/hm2bp_vs_snntorch.py --steps 400 --n-train 256 --n-test 256  # 2 batches
    python benchmarks/hm2bp_vs_snntorch.py --device cuda --threads 0

Each (method, T) trains in its own child process (peak memory its own: ``ru_maxrss`` of the
child, plus the peak CUDA allocation on a GPU), from the same seed, with minibatches of 128.
The Poisson input is the same trains for every method that takes spikes: batch k of epoch e
is encoded from a generator seeded with 1000 e + k (pixel / 5.5 a step).

* ``hm2bp`` (creditlab.methods.hm2bp, the reference code's choices: lateral inhibition 1 with
  its gradient factor, forced label spikes, its S-PSP timing, init +-1): LIF neurons with
  first-order synapses (thresholds 20 / 8), the rate loss with desired / undesired counts
  35 / 5 and margin 5 scaled by T / 400, Adam at ``--hm2bp-lr`` / sqrt(epoch + 1), no autograd.
* ``snn-poisson``: snnTorch ``snn.Leaky(beta=0.95)`` (arctan surrogate), the same Poisson
  input as HM2-BP, layer by layer: all T input currents of a layer in one product, the
  neuron loop over T, BPTT with autograd; cross-entropy on the output membrane potential
  summed over T; Adam ``--snntorch-lr``.
* ``snn-const``: snnTorch tutorial 5: the image as a constant current, ``fc1(x)`` computed
  once, reused at every step; otherwise as ``snn-poisson``.
* ``jelly``: SpikingJelly (PyPI, activation_based) in multi-step mode: ``layer.Linear`` +
  ``neuron.LIFNode(tau=2, surrogate ATan, step_mode='m')``, the same Poisson input, MSE of
  the output firing rate against the one-hot label (its MNIST tutorial); Adam 1e-3.

Prediction: the output spike count. Seconds are the training process's CPU seconds per epoch
(``time.process_time``: with one torch thread, the work done, whatever else the machine runs;
the ratios use them) and, beside them, wall seconds (which the machine's other load inflates).
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


def _data(device: str, n_train: int, n_test: int = 0):
    from creditlab import data

    ds = data.load("mnist")
    x_train = ds.x_train[: n_train or None].reshape(-1, 784).to(device)
    return (
        x_train,
        ds.y_train[: n_train or None].to(device),
        ds.x_test[: n_test or None].reshape(-1, 784).to(device),
        ds.y_test[: n_test or None].to(device),
    )


def _peak_cuda_mb(device: str) -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else 0.0


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _train_epochs(step, n: int, epochs: int, batch: int, device: str) -> tuple[float, float]:
    """Run ``step(indices, key)`` (key: the batch's input seed) over ``epochs`` epochs of
    minibatches (creditlab's epoch order, seed 0, last partial batch dropped); mean CPU
    seconds per epoch, and the process's peak memory before the first step (interpreter,
    torch, data, model: the baseline of the peak). The mean wall seconds per epoch go to
    ``WALL[0]``."""
    from creditlab.benchmarking import peak_rss_mb
    from creditlab.train import epoch_order

    baseline = peak_rss_mb()
    seconds, wall = [], []
    for epoch in range(epochs):
        order = epoch_order(n, 0, epoch)
        _sync(device)
        tic, wall_tic = time.process_time(), time.perf_counter()
        for b in range(n // batch):
            step(order[b * batch : (b + 1) * batch].to(device), 1000 * epoch + b)
        _sync(device)
        seconds.append(time.process_time() - tic)
        wall.append(time.perf_counter() - wall_tic)
    WALL[0] = sum(wall) / len(wall)
    return sum(seconds) / len(seconds), baseline


WALL = [0.0]


def _poisson(x, steps: int, key: int):
    """Time-major float (T, batch, 784) Poisson trains of a batch, from generator ``key``."""
    import torch

    from creditlab.spiking import bernoulli_encode, time_major

    g = torch.Generator().manual_seed(key)
    return time_major(bernoulli_encode(x.cpu(), steps, 5.5, g)).to(x.device).float()


def hm2bp(
    steps: int, epochs: int, batch: int, sizes: tuple, device: str, threads: int, lr: float
) -> dict:
    import torch

    from creditlab.methods.hm2bp import Dense, HM2BPLearner, RateTargets, SpikingNetwork
    from creditlab.spiking import bernoulli_encode

    _setup(threads)
    x_train, y_train, x_test, y_test = _data(device, *sizes)
    g = torch.Generator().manual_seed(0)
    net = SpikingNetwork(
        [Dense((784,), 800, 1.0, g), Dense((800,), 10, 1.0, g)], (20.0, 8.0), lateral=1.0
    )
    net.to(device)
    scale = steps / 400
    key = [0]

    def encode(x, generator):
        if generator is not None:  # evaluation
            return bernoulli_encode(x, steps, 5.5, generator)
        return _poisson(x, steps, key[0]).bool().transpose(0, 1)

    learner = HM2BPLearner(
        net,
        encode,
        10,
        lr=lr,
        batches_per_epoch=len(x_train) // batch,
        targets=RateTargets(35 * scale, 5 * scale, 5 * scale),
        eval_batch=batch,
    )

    def step(idx, k):
        key[0] = k
        learner.train_step(x_train[idx], y_train[idx])

    seconds, baseline = _train_epochs(step, len(x_train), epochs, batch, device)
    accuracy = learner.evaluate(x_test, y_test)["accuracy"]
    return {
        "accuracy": accuracy,
        "seconds_per_epoch": seconds,
        "cuda_mb": _peak_cuda_mb(device),
        "wall_per_epoch": WALL[0],
        "baseline_mb": baseline,
    }


def _snntorch(
    poisson: bool,
    steps: int,
    epochs: int,
    batch: int,
    sizes: tuple,
    device: str,
    threads: int,
    lr: float,
) -> dict:
    if True:  # one body for both input styles
        import snntorch as snn
        import torch
        from torch import nn

        _setup(threads)
        x_train, y_train, x_test, y_test = _data(device, *sizes)

        class Net(nn.Module):  # snnTorch tutorial 5 at 784-800-10, layer by layer
            def __init__(self):
                super().__init__()
                self.fc1, self.lif1 = nn.Linear(784, 800), snn.Leaky(beta=0.95)
                self.fc2, self.lif2 = nn.Linear(800, 10), snn.Leaky(beta=0.95)

            def forward(self, x):  # x: (T, batch, 784) spikes, or (batch, 784) a current
                cur1 = self.fc1(x)  # every step's current in one product (or once)
                mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
                spk1 = []
                for t in range(steps):
                    spk, mem1 = self.lif1(cur1[t] if poisson else cur1, mem1)
                    spk1.append(spk)
                cur2 = self.fc2(torch.stack(spk1))
                spikes, mems = [], []
                for t in range(steps):
                    spk, mem2 = self.lif2(cur2[t], mem2)
                    spikes.append(spk)
                    mems.append(mem2)
                return torch.stack(spikes), torch.stack(mems)

        net = Net().to(device)
        optimizer = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.999))
        loss_fn = nn.CrossEntropyLoss()

        def inputs(x, key):
            return _poisson(x, steps, key) if poisson else x

        def step(idx, k):
            _, mem = net(inputs(x_train[idx], k))
            loss = loss_fn(mem.flatten(0, 1), y_train[idx].repeat(steps)) * steps
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        seconds, baseline = _train_epochs(step, len(x_train), epochs, batch, device)
        correct = 0
        with torch.no_grad():
            for i in range(0, len(x_test), 250):
                spikes, _ = net(inputs(x_test[i : i + 250], 10**6 + i))
                correct += int((spikes.sum(0).argmax(1) == y_test[i : i + 250]).sum())
        return {
            "accuracy": correct / len(x_test),
            "seconds_per_epoch": seconds,
            "cuda_mb": _peak_cuda_mb(device),
            "wall_per_epoch": WALL[0],
            "baseline_mb": baseline,
        }


def snntorch_poisson(*args) -> dict:
    return _snntorch(True, *args)


def snntorch_const(*args) -> dict:
    return _snntorch(False, *args)


def jelly(
    steps: int, epochs: int, batch: int, sizes: tuple, device: str, threads: int, lr: float
) -> dict:
    import torch
    from spikingjelly.activation_based import functional, layer, neuron, surrogate
    from torch import nn

    _setup(threads)
    x_train, y_train, x_test, y_test = _data(device, *sizes)
    net = nn.Sequential(
        layer.Linear(784, 800),
        neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan()),
        layer.Linear(800, 10),
        neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan()),
    ).to(device)
    functional.set_step_mode(net, "m")
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)

    def step(idx, k):
        rate = net(_poisson(x_train[idx], steps, k)).mean(0)
        loss = nn.functional.mse_loss(rate, nn.functional.one_hot(y_train[idx], 10).float())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        functional.reset_net(net)

    seconds, baseline = _train_epochs(step, len(x_train), epochs, batch, device)
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x_test), 250):
            counts = net(_poisson(x_test[i : i + 250], steps, 10**6 + i)).sum(0)
            functional.reset_net(net)
            correct += int((counts.argmax(1) == y_test[i : i + 250]).sum())
    return {
        "accuracy": correct / len(x_test),
        "seconds_per_epoch": seconds,
        "cuda_mb": _peak_cuda_mb(device),
        "wall_per_epoch": WALL[0],
        "baseline_mb": baseline,
    }


METHODS = {
    "hm2bp": hm2bp,
    "snn-poisson": snntorch_poisson,
    "snn-const": snntorch_const,
    "jelly": jelly,
}
PEERS = ("snn-poisson", "snn-const", "jelly")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="100,200,400", help="comma-separated values of T")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--n-train", type=int, default=0, help="first n training images (0: all)")
    parser.add_argument("--n-test", type=int, default=0, help="first n test images (0: all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument("--only", choices=tuple(METHODS), help="run one method only")
    parser.add_argument("--hm2bp-lr", type=float, default=1e-2, help="HM2-BP's Adam lr")
    parser.add_argument("--snntorch-lr", type=float, default=5e-4, help="snnTorch's (tutorial)")
    parser.add_argument("--jelly-lr", type=float, default=1e-3, help="SpikingJelly's (tutorial)")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    common = (args.epochs, args.batch, (args.n_train, args.n_test), args.device, args.threads)
    lrs = {
        "hm2bp": args.hm2bp_lr,
        "snn-poisson": args.snntorch_lr,
        "snn-const": args.snntorch_lr,
        "jelly": args.jelly_lr,
    }
    print(
        f"784-800-10 on mnist10k, {args.epochs} epoch(s), batch {args.batch}, n_train "
        f"{args.n_train or 8000}, n_test {args.n_test or 2000}, device {args.device}, "
        f"torch threads {args.threads or 'default'}"
    )
    print(
        f"{'T':>4} {'method':>12} {'test acc':>9} {'cpu s/ep':>9} {'wall s/ep':>9} {'peak MB':>8}"
        f" {'train MB':>9}"
        f"   HM2-BP vs it: {'acc':>6} {'speed-up':>9} {'peak':>6} {'train':>6}"
    )
    rows: dict[int, dict[str, dict]] = {}
    for t in steps:
        rows[t] = {}
        for name, fn in METHODS.items():
            if args.only and name != args.only:
                continue
            out = run_in_child(fn, t, *common, lrs[name])
            out["peak_mb"] = out["peak_rss_mb"] + out["cuda_mb"]
            out["train_mb"] = out["peak_rss_mb"] - out["baseline_mb"] + out["cuda_mb"]
            rows[t][name] = out
            ratios = ""
            if name != "hm2bp" and "hm2bp" in rows[t]:
                own = rows[t]["hm2bp"]
                ratios = (
                    f"   {'':14}{own['accuracy'] / out['accuracy']:6.3f}"
                    f" {out['seconds_per_epoch'] / own['seconds_per_epoch']:9.2f}"
                    f" {out['peak_mb'] / own['peak_mb']:6.1f}"
                    f" {out['train_mb'] / max(own['train_mb'], 1.0):6.1f}"
                )
            print(
                f"{t:>4} {name:>12} {out['accuracy']:9.4f} {out['seconds_per_epoch']:9.1f} "
                f"{out['wall_per_epoch']:9.1f} {out['peak_mb']:8.0f} {out['train_mb']:9.0f}"
                f"{ratios}",
                flush=True,
            )
        peers = [p for p in PEERS if p in rows[t]]
        if "hm2bp" in rows[t] and peers:
            best = min(peers, key=lambda p: rows[t][p]["seconds_per_epoch"])
            ratio = rows[t][best]["seconds_per_epoch"] / rows[t]["hm2bp"]["seconds_per_epoch"]
            verdict = "HM2-BP faster" if ratio > 1 else "HM2-BP slower"
            print(f"     T = {t}: fastest peer {best}; speed-up {ratio:.2f}x ({verdict})")
    print(
        "\nratios: acc = HM2-BP / peer, speed-up = peer CPU s/epoch / HM2-BP's, peak = peer peak / "
        "HM2-BP's (whole process), train = the same for the memory training added to the "
        "process's peak before its first step (interpreter, torch, data, model)"
    )


if __name__ == "__main__":
    main()
