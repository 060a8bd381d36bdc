"""Cluttered, rotated and scaled MNIST (the paper's Sec. 4.2 attention task, generated here).

Each canvas is ``size x size`` (100 in the paper) with one digit scaled by a factor uniform in
``scale`` (1-2x), rotated by an angle uniform in +-``max_degrees`` (the spec says only
"rotated"; 45 degrees keeps a 6 a 6), placed uniformly so that it lies inside the canvas,
and ``clutter`` patches of ``patch x patch`` pixels cut at random from *other* digits of the
same split and pasted at random places; overlaps take the maximum. A canvas is built from one
split only: train canvases from train digits, test canvases from test digits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CHUNK = 100  # canvases rendered at once (bounds the memory of the sampling grids)


def _place(
    images: torch.Tensor, size: int, half_width: torch.Tensor, centre: torch.Tensor, angle
) -> torch.Tensor:
    """Render each image (N, 1, h, w) on a ``size x size`` canvas: centred at ``centre``
    (N, 2) and ``half_width`` (N,) wide, both in the canvas's [-1, 1] coordinates, rotated by
    ``angle`` (N,) radians; zero outside."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    a = rotation / half_width[:, None, None]  # canvas coordinates -> image coordinates
    b = -(a @ centre[:, :, None])
    theta = torch.cat([a, b], dim=2)
    grid = F.affine_grid(theta, [len(images), 1, size, size], align_corners=False)
    return F.grid_sample(images, grid, padding_mode="zeros", align_corners=False)


def cluttered_canvases(
    digits: torch.Tensor,
    labels: torch.Tensor,
    count: int,
    generator: torch.Generator,
    *,
    size: int = 100,
    scale: tuple[float, float] = (1.0, 2.0),
    max_degrees: float = 45.0,
    clutter: int = 10,
    patch: int = 8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` canvases (uint8, (count, 1, size, size)) and their labels, from ``digits``
    (N, 1, 28, 28) in [0, 1] of one split only."""
    n, _, h, _ = digits.shape
    canvases = torch.empty(count, 1, size, size, dtype=torch.uint8)
    which = torch.randint(n, (count,), generator=generator)
    for start in range(0, count, CHUNK):
        idx = which[start : start + CHUNK]
        m = len(idx)
        s = scale[0] + (scale[1] - scale[0]) * torch.rand(m, generator=generator)
        half = s * h / size
        centre = (torch.rand(m, 2, generator=generator) * 2 - 1) * (1 - half[:, None])
        angle = (torch.rand(m, generator=generator) * 2 - 1) * math.radians(max_degrees)
        canvas = _place(digits[idx], size, half, centre, angle)
        if clutter > 0:
            # A patch: a digit drawn at scale 1 through a window of patch x patch pixels at a
            # random place of the digit, shown at a random place of the canvas.
            others = torch.randint(n, (m * clutter,), generator=generator)
            crop = (torch.rand(m * clutter, 2, generator=generator) * 2 - 1) * (1 - patch / h)
            where = (torch.rand(m * clutter, 2, generator=generator) * 2 - 1) * (1 - patch / size)
            full = torch.full((m * clutter,), h / size)
            shown = _place(
                digits[others], size, full, where - crop * h / size, torch.zeros(m * clutter)
            )
            ys = torch.linspace(-1 + 1 / size, 1 - 1 / size, size)
            inside_y = (ys[None, :] - where[:, 1:2]).abs() <= patch / size
            inside_x = (ys[None, :] - where[:, 0:1]).abs() <= patch / size
            window = (inside_y[:, :, None] & inside_x[:, None, :])[:, None]
            patches = (shown * window).reshape(m, clutter, size, size).amax(1, keepdim=True)
            canvas = torch.maximum(canvas, patches)
        canvases[start : start + m] = (canvas.clamp(0, 1) * 255).round().to(torch.uint8)
    return canvases, labels[which]
