"""What creditlab's harness costs: `creditlab run bp.mnist` vs the plain PyTorch loop a user
would write for the same network, optimiser, schedule, data and per-epoch evaluation.

Each variant runs in its own child process (so peak memory is its own), from data loading to
the last evaluation, and the script prints seconds, peak resident memory and the ratio.

    python benchmarks/bp_vs_plain_torch.py --scale quick
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from creditlab.benchmarking import run_in_child


def plain_torch(cfg: dict, seed: int) -> dict:
    """The loop from any PyTorch tutorial, with the baseline's recipe."""
    import torch
    from torch import nn

    from creditlab import data
    from creditlab.models import build_classifier

    torch.manual_seed(seed)
    start = time.perf_counter()
    ds = data.load("mnist")
    cut = slice(0, cfg["n_train"] or None)
    x, y = ds.x_train[cut], ds.y_train[cut]
    model = build_classifier("mlp", ds.input_shape, 10, cfg["hidden"], (), cfg["activation"])
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    steps_per_epoch = len(x) // cfg["batch_size"]
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=cfg["epochs"] * steps_per_epoch
    )
    for _ in range(cfg["epochs"]):
        order = torch.randperm(len(x))
        model.train()
        for b in range(steps_per_epoch):
            idx = order[b * cfg["batch_size"] : (b + 1) * cfg["batch_size"]]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
        with torch.no_grad():
            train_acc = (model(x).argmax(1) == y).float().mean().item()
            test_acc = (model(ds.x_test).argmax(1) == ds.y_test).float().mean().item()
    return {
        "seconds": time.perf_counter() - start,
        "test_accuracy": test_acc,
        "train_accuracy": train_acc,
    }


def creditlab_run(scale: str, seed: int) -> dict:
    from creditlab import registry, runner

    with tempfile.TemporaryDirectory() as tmp:
        result = runner.run(registry.get("bp.mnist"), scale=scale, seed=seed, out=Path(tmp) / "r")
    return {
        "seconds": result["wall_seconds"],
        "test_accuracy": result["metrics"]["test_accuracy"],
        "config": result["config"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="quick", choices=["smoke", "quick", "paper"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    ours = run_in_child(creditlab_run, args.scale, args.seed)
    plain = run_in_child(plain_torch, ours.pop("config"), args.seed)
    print(f"bp.mnist at {args.scale} scale, seed {args.seed}")
    print(f"{'':24s}{'seconds':>10s}{'peak RSS MB':>14s}{'test acc':>10s}")
    for name, r in (("creditlab run bp.mnist", ours), ("plain PyTorch loop", plain)):
        print(f"{name:24s}{r['seconds']:10.2f}{r['peak_rss_mb']:14.0f}{r['test_accuracy']:10.4f}")
    for what, key in (("time", "seconds"), ("memory", "peak_rss_mb")):
        print(f"{what} ratio creditlab / plain torch: {ours[key] / plain[key]:.2f}x")


if __name__ == "__main__":
    main()
