"""Network builders shared by every method that needs a plain backprop reference.

A method never imports another method, so the MLP and CNN that the backprop baseline
trains live here, where the dendritic, autodiff and ReLU code can build the same shapes.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Sequence
from typing import Literal

from torch import nn

Activation = Literal["relu", "tanh", "sigmoid"]
"""The hidden-unit nonlinearities a config may name (the one list of them)."""
ACTIVATIONS: dict[str, type[nn.Module]] = dict(
    zip(typing.get_args(Activation), (nn.ReLU, nn.Tanh, nn.Sigmoid), strict=True)
)


def mlp(
    in_features: int, hidden: Sequence[int], n_out: int, activation: str = "relu"
) -> nn.Sequential:
    """``in_features -> hidden[0] -> ... -> n_out`` with ``activation`` between layers.

    Inputs of any shape are flattened first, so images go in as they are loaded.

    >>> import torch
    >>> mlp(784, [500, 500], 10)(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """
    widths = [in_features, *hidden]
    layers: list[nn.Module] = [nn.Flatten()]
    for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(fan_in, fan_out), ACTIVATIONS[activation]()]
    layers.append(nn.Linear(widths[-1], n_out))
    return nn.Sequential(*layers)


def cnn(
    input_shape: Sequence[int],
    n_out: int,
    channels: Sequence[int] = (32, 64),
    hidden: int = 128,
    activation: str = "relu",
) -> nn.Sequential:
    """A small LeNet-style CNN: per entry of ``channels`` a 3x3 conv (same padding), the
    activation and a 2x2 max-pool, then one hidden dense layer. ``input_shape`` is (C, H, W)
    for images or (L,) / (C, L) for sequences such as MNIST-1D (1-D convolutions then).

    >>> import torch
    >>> cnn((1, 28, 28), 10)(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    >>> cnn((40,), 10)(torch.zeros(2, 40)).shape
    torch.Size([2, 10])
    """
    shape = tuple(input_shape)
    one_d = len(shape) <= 2
    if len(shape) == 1:
        shape = (1, *shape)
    conv, pool = (nn.Conv1d, nn.MaxPool1d) if one_d else (nn.Conv2d, nn.MaxPool2d)
    layers: list[nn.Module] = [nn.Unflatten(1, shape)] if len(input_shape) == 1 else []
    c_in, spatial = shape[0], list(shape[1:])
    for c_out in channels:
        layers += [conv(c_in, c_out, 3, padding=1), ACTIVATIONS[activation](), pool(2)]
        c_in, spatial = c_out, [s // 2 for s in spatial]
    layers += [
        nn.Flatten(),
        nn.Linear(c_in * math.prod(spatial), hidden),
        ACTIVATIONS[activation](),
        nn.Linear(hidden, n_out),
    ]
    return nn.Sequential(*layers)


def build_classifier(
    kind: str,
    input_shape: Sequence[int],
    n_classes: int,
    hidden: Sequence[int],
    channels: Sequence[int],
    activation: str,
) -> nn.Module:
    """``kind`` is "mlp" or "cnn"; for the CNN, ``hidden[0]`` is its dense layer's width."""
    if kind == "mlp":
        return mlp(math.prod(input_shape), hidden, n_classes, activation)
    return cnn(input_shape, n_classes, channels, hidden[0] if hidden else 128, activation)
