"""The networks of relu.layers: a VGG-style CNN without skips (:class:`StageCNN`,
``residual=False``) and its residual twin, built from one spec and holding the same weights
(:func:`twin_nets`), so that the identity skips are the only difference between them."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from creditlab.errors import UserError


def conv_relu(c_in: int, c_out: int, batch_norm: bool) -> list[nn.Module]:
    """3x3 conv (same padding), optional batch norm; the ReLU is added by the caller."""
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batch_norm)
    return [conv, nn.BatchNorm2d(c_out)] if batch_norm else [conv]


class Block(nn.Module):
    """Two 3x3 conv layers of one width: ``relu_b(x + F(x))`` with the skip (residual), or
    ``relu_b(F(x))`` without it (plain), where F(x) = conv_b(relu_a(conv_a(x))).

    The plain and residual blocks have the same parameters under the same names, so a plain
    and a residual net built from one spec hold exactly the same weights.
    """

    def __init__(self, width: int, residual: bool, batch_norm: bool):
        super().__init__()
        self.residual = residual
        self.conv_a = nn.Sequential(*conv_relu(width, width, batch_norm))
        self.relu_a = nn.ReLU()
        self.conv_b = nn.Sequential(*conv_relu(width, width, batch_norm))
        self.relu_b = nn.ReLU()  # in the residual net its input y = x + F(x) carries the skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv_b(self.relu_a(self.conv_a(x)))
        return self.relu_b(x + z if self.residual else z)


class StageCNN(nn.Module):
    """A VGG-style CNN (``residual=False``: conv-ReLU layers only, no skips) or its residual
    twin (identity skips around each pair of same-width convs, as in He et al. 2016).

    Per stage of width c: a conv that sets the width, then (convs_per_stage - 1) / 2 blocks of
    two convs, then a 2x2 max-pool (VGG's layout); then one linear layer on the flattened maps.
    Inputs are standardised inside the net with the training set's mean and std (so MNIST's
    all-zero background gives non-zero pre-activations). Every ReLU is its own module, so a
    :class:`ReluMonitor` sees one layer per conv, in order.
    """

    def __init__(
        self,
        widths: tuple[int, ...],
        convs_per_stage: int,
        residual: bool,
        batch_norm: bool = False,
        in_channels: int = 1,
        input_size: int = 28,
        n_classes: int = 10,
        mean: float = 0.0,
        std: float = 1.0,
    ):
        super().__init__()
        if convs_per_stage < 1 or convs_per_stage % 2 == 0:
            raise UserError(f"convs_per_stage must be odd (1, 3, 5, ...), got {convs_per_stage}")
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))
        stages, c_in = [], in_channels
        for width in widths:
            layers: list[nn.Module] = [*conv_relu(c_in, width, batch_norm), nn.ReLU()]
            layers += [Block(width, residual, batch_norm) for _ in range(convs_per_stage // 2)]
            stages.append(nn.Sequential(*layers))
            c_in = width
        self.stages = nn.ModuleList(stages)
        side = input_size
        for _ in widths:
            side //= 2
        if side < 1:
            raise UserError(f"{len(widths)} stages of 2x2 pooling leave nothing of {input_size} px")
        self.classifier = nn.Linear(c_in * side * side, n_classes)
        for module in self.modules():  # He et al. 2015 init, torchvision's VGG/ResNet recipe
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        for stage in self.stages:
            x = nn.functional.max_pool2d(stage(x), 2)
        return self.classifier(x.flatten(1))

    def skip_layers(self) -> list[bool]:
        """For each ReLU in forward order: whether its input y carries an identity skip."""
        flags: list[bool] = []
        for stage in self.stages:
            for module in stage:
                if isinstance(module, Block):
                    flags += [False, module.residual]  # relu_a, relu_b
                elif isinstance(module, nn.ReLU):
                    flags.append(False)
        return flags


def twin_nets(spec: dict[str, Any], seed: int) -> tuple[StageCNN, StageCNN]:
    """A plain :class:`StageCNN` drawn from ``seed`` and its residual twin holding exactly the
    same weights, so the identity skips are the only difference. The global torch generator
    is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        plain = StageCNN(residual=False, **spec)
        residual = StageCNN(residual=True, **spec)
    residual.load_state_dict(plain.state_dict())
    return plain, residual
