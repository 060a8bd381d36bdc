"""The reference code's networks, rebuilt from their descriptions (MaestroGraph/sparse-hyper):
the sorting key network (``mnistsort.experiment.py`` on the ``archive`` branch, lines 161-179)
and the attention hypernetwork (``prep`` in ``experiments/attention.py`` on master, lines
64-103). The quick scales use the smaller :func:`creditlab.models.cnn` instead (CPU budget).

>>> import torch
>>> key_network((1, 28, 28), (4, 4, 4), (8,))(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 1])
>>> attention_hypernetwork((1, 28, 28), 8, (4, 4, 8), 16, pool=2)(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 8])
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def key_network(
    input_shape: Sequence[int], channels: Sequence[int] = (16, 64, 128),
    hidden: Sequence[int] = (256, 128),
) -> nn.Sequential:  # fmt: skip
    """The reference's sorting key network: per entry of ``channels`` a block of three 3 x 3
    convolutions (same padding, ReLU after each), batch norm and a 2 x 2 max-pool; then dense
    layers of ``hidden`` (ReLU) and one output, the key. The reference: channels (16, 64, 128),
    hidden (256, 128), on 28 x 28 digits (3 x 3 x 128 after the three pools)."""
    c, h, w = input_shape
    layers: list[nn.Module] = []
    for c_out in channels:
        for _ in range(3):
            layers += [nn.Conv2d(c, c_out, 3, padding=1), nn.ReLU()]
            c = c_out
        layers += [nn.BatchNorm2d(c), nn.MaxPool2d(2)]
        h, w = h // 2, w // 2
    if h < 1 or w < 1:
        raise ValueError(f"{len(channels)} pools leave nothing of a {input_shape} image")
    layers.append(nn.Flatten())
    width = c * h * w
    for units in hidden:
        layers += [nn.Linear(width, units), nn.ReLU()]
        width = units
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def attention_hypernetwork(
    input_shape: Sequence[int],
    n_out: int,
    channels: Sequence[int] = (32, 64, 128),
    hidden: int = 512,
    *,
    pool: int = 2,
) -> nn.Sequential:
    """The reference's attention hypernetwork (``prep``) and its head: with ``channels`` =
    (c1, c2, c3), 3 x 3 convolutions (same padding, ReLU) c1, pool, c1, pool, c2, pool, c2,
    2 x 2 pool, c3, c3; then dense ``hidden``, ReLU, dense ``hidden``, ReLU and a dense layer
    to ``n_out`` (the raw boxes). The pools are max-pools of side ``pool`` (the reference's
    ``--pool``; its default 4 leaves nothing of a 28 x 28 or 100 x 100 image, so 2 here).
    The reference sizes the first dense layer from ``floor(w / (2 pool^3))``; here from the
    shape the pools really leave (the same for the images used here)."""
    c, h, w = input_shape
    c1, c2, c3 = channels
    layers: list[nn.Module] = []
    for c_out, size in ((c1, pool), (c1, pool), (c2, pool), (c2, 2), (c3, 0), (c3, 0)):
        layers += [nn.Conv2d(c, c_out, 3, padding=1), nn.ReLU()]
        c = c_out
        if size:
            layers.append(nn.MaxPool2d(size))
            h, w = h // size, w // size
    if h < 1 or w < 1:
        raise ValueError(f"pools of {pool} leave nothing of a {input_shape} image")
    layers += [
        nn.Flatten(),
        nn.Linear(c * h * w, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, n_out),
    ]
    return nn.Sequential(*layers)
