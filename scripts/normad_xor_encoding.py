"""Which spike-time XOR encodings multilayer NormAD can learn: the check behind normad.xor's
targets (12 / 18 ms) and its 30 hidden neurons (docs/normad.md).

For each setting, ``--problems`` networks of one seed (the XOR afferents' offsets and the initial
weights drawn from it) are trained by NormAD alone, patterns one at a time as in the experiment,
for at most ``--epochs`` epochs; printed: the fraction of networks whose four output trains
became exact (each desired spike within 1 ms, no other spike), the epoch each converged at
(-1: never) and the test accuracy of the last epoch. The surrogate peer is not trained here.

    python scripts/normad_xor_encoding.py --seed 100 --epochs 120
    python scripts/normad_xor_encoding.py --seed 100 --targets 20,30 12,18 --hidden 10 20 30
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import replace

import torch

from creditlab import registry
from creditlab.methods.normad.experiments import MultiConfig, _xor_accuracy, make_xor_task
from creditlab.methods.normad.neuron import Neuron
from creditlab.methods.normad.training import Rates, multilayer_epoch, precompute, scores


def train(cfg: MultiConfig, seed: int, epochs: int) -> tuple[torch.Tensor, float]:
    """NormAD on cfg.problems XOR networks of ``seed``: (epoch each converged at, last test
    accuracy)."""
    cell = Neuron()
    gen = torch.Generator().manual_seed(seed)
    task = make_xor_task(cfg, cell, gen)
    c, _ = precompute(task.inputs, cell)
    w1 = torch.randn(cfg.problems, c.shape[-1], cfg.hidden, generator=gen, dtype=torch.float64)
    w2 = torch.randn(cfg.problems, cfg.hidden, 1, generator=gen, dtype=torch.float64)
    w1, w2 = w1 * cfg.w1_std + cfg.w1_mean, w2 * cfg.w2_std + cfg.w2_mean
    rates = Rates(rate=cfg.rate, rate_hidden=cfg.rate_hidden, silent_gain=cfg.silent_gain)
    conv = torch.full((cfg.problems,), -1)
    accuracy = 0.0
    for epoch in range(epochs):
        active = conv < 0
        if not active.any():
            break
        out = multilayer_epoch(c, task.desired, w1, w2, rates, cell, active)
        acc, _ = scores(task.desired, out, cell, cfg.window, cfg.tau_vr)
        conv = torch.where(active & (acc >= 1).flatten(1).all(1), epoch, conv)
        accuracy = _xor_accuracy(out, task.desired, cfg, cell)
    return conv, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=100, help="a tuning seed (>= 100)")
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument(
        "--targets", nargs="+", default=["20,30", "12,18"], help="true,false output times (ms)"
    )
    parser.add_argument("--hidden", type=int, nargs="+", default=[10, 20, 30])
    parser.add_argument("--rate", type=float, nargs="+", default=[1e-9], help="r = r_h")
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = registry.get("normad.xor").make_config("quick")
    print("targets (ms)  hidden  r = r_h   converged  epochs                      test accuracy")
    for targets, hidden, rate in itertools.product(args.targets, args.hidden, args.rate):
        true, false = (float(t) * 1e-3 for t in targets.split(","))
        cfg = replace(
            base, problems=args.problems, hidden=hidden, rate=rate, rate_hidden=rate,
            target_true=true, target_false=false,
        )  # fmt: skip
        conv, accuracy = train(cfg, args.seed, args.epochs)
        frac = float((conv >= 0).double().mean())
        epochs = str(conv.tolist())
        print(f"{targets:>12}  {hidden:6d}  {rate:7.1e}  {frac:9.2f}  {epochs:26s}  {accuracy:.2f}")


if __name__ == "__main__":
    main()
