"""The spiking CNN's yardstick: a non-spiking CNN of the same size (conv, ReLU, 2x2 average
pooling, twice; a dense ReLU layer; 10 outputs) trained by backprop (Adam at the run's lr
schedule's first rate, cross-entropy) on the same images, epochs and batch size. It says how
much of the gap to the paper is the budget (network size, data, epochs) and how much is the
spiking network and its rule. Deterministic given the run's seed; fast enough (seconds at
quick scale) to rerun whole after a resume.
"""

from __future__ import annotations

import torch
from torch import nn

from creditlab.runner import RunContext, derive_seed


def yardstick_net(shape: tuple[int, ...], channels: tuple[int, int], dense: int) -> nn.Module:
    """conv5-ReLU-pool2, conv5-ReLU-pool2, dense-ReLU, 10: the spiking CNN's shapes."""
    c, h, _ = shape
    side = ((h - 4) // 2 - 4) // 2
    return nn.Sequential(
        nn.Conv2d(c, channels[0], 5),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(channels[0], channels[1], 5),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(channels[1] * side * side, dense),
        nn.ReLU(),
        nn.Linear(dense, 10),
    )


def yardstick_cnn(cfg, ctx: RunContext, tensors: tuple[torch.Tensor, ...]) -> dict[str, float]:
    """Train the yardstick on (x_train, y_train, x_test, y_test) images; its
    ``yardstick_test_accuracy`` and ``yardstick_train_accuracy``."""
    x_train, y_train, x_test, y_test = tensors
    shape = tuple(x_train.shape[1:])
    torch.manual_seed(derive_seed(ctx.seed, "yardstick"))
    net = yardstick_net(shape, tuple(cfg.channels), cfg.dense).to(ctx.device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(derive_seed(ctx.seed, "yardstick", "order"))
    batch = min(cfg.batch_size, len(x_train))
    for _ in range(cfg.epochs):
        order = torch.randperm(len(x_train), generator=g).to(x_train.device)
        for i in range(0, len(order) - batch + 1, batch):
            idx = order[i : i + batch]
            loss = nn.functional.cross_entropy(net(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()

    @torch.no_grad()
    def accuracy(x: torch.Tensor, y: torch.Tensor) -> float:
        hits = sum(
            int((net(x[i : i + 500]).argmax(1) == y[i : i + 500]).sum())
            for i in range(0, len(x), 500)
        )
        return hits / len(x)

    return {
        "yardstick_test_accuracy": accuracy(x_test, y_test),
        "yardstick_train_accuracy": accuracy(x_train, y_train),
    }
