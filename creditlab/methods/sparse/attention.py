"""Sparse glimpse attention for visual classification (the paper's Sec. 4.2) and its
baselines: REINFORCE-trained hard attention and a conv net on the whole image.

A hypernetwork (``hypernet="reference"``: the reference's conv net,
:func:`.networks.attention_hypernetwork`; ``"small"``: :func:`creditlab.models.cnn`, the quick
scales') reads the image and predicts one box
per glimpse (its four corners, as the reference code: :func:`box_grid`). A ``k x k`` grid of
means spans each box; each mean is a tuple of the sparse hyperlayer whose output index is
fixed (its grid cell) and whose input index (a pixel) is learned, with value 1 and one sigma
(a variance) per glimpse, a free parameter; each tuple is normalised over its own candidates
(the reference's chunk size 1). In training a grid cell reads the
density-weighted mean of its candidate pixels (:func:`hyperlayer.sample_weights`), at
evaluation the pixel at the rounded mean. The ``glimpses * k * k`` values feed a small MLP.

The REINFORCE baseline has the same hypernetwork and classifier, but its boxes are sampled
from a Gaussian policy around the hypernetwork's output and read hard (rounded) pixels, so no
gradient reaches the boxes through the reads: the hypernetwork learns from the score-function
estimator with reward 1 for a correct class (Mnih et al.'s recurrent attention model) minus a
moving-average baseline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from creditlab.methods.sparse.hyperlayer import (
    means_from_raw,
    ravel,
    sample_weights,
    sigmas_from_raw,
    sparse_product,
)
from creditlab.methods.sparse.networks import attention_hypernetwork
from creditlab.models import cnn, mlp
from creditlab.plots import save_figure
from creditlab.train import BackpropClassifier

Attention = Literal["sparse", "reinforce"]


def as_images(x: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] from stored canvases (uint8) or loaded digits (float)."""
    return x.float() / 255 if x.dtype == torch.uint8 else x


class ToFloat(nn.Module):
    """First layer of a model fed stored canvases: :func:`as_images`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return as_images(x)


BOX_OFFSET = (-1.0, 1.0, -1.0, 1.0)
"""added to the raw corners (the reference's ``bbox_offset``): the initial box covers the
middle half of the image in each direction even when the hypernetwork outputs about 0"""


def box_grid(raw_boxes: torch.Tensor, k: int, sizes: torch.Tensor) -> torch.Tensor:
    """The ``k x k`` grid of means inside each box, as the reference's attention layer
    (``experiments/attention.py``, ``hyper``) computes it: ``raw_boxes`` (..., 4) are raw
    corners (row min, row max, column min, column max); with :data:`BOX_OFFSET` added, each is
    ``sigmoid * (size - 1)`` of its axis, and grid point (i, j) is
    ``(min_row + i / k * (max_row - min_row), min_col + j / k * (max_col - min_col))``:
    means (..., k * k, 2), row-major, in pixels. (Before issue 26: a centre and a
    half-extent.)"""
    offset = torch.tensor(BOX_OFFSET, dtype=raw_boxes.dtype, device=raw_boxes.device)
    corners = means_from_raw(raw_boxes + offset, sizes.repeat_interleave(2))
    low, high = corners[..., 0::2], corners[..., 1::2]  # (..., 2): rows, columns
    steps = torch.arange(k, device=raw_boxes.device, dtype=raw_boxes.dtype) / k
    along = low[..., None, :] + steps[:, None] * (high - low)[..., None, :]  # (..., k, 2)
    ys, xs = along[..., 0], along[..., 1]
    grid = torch.stack(torch.broadcast_tensors(ys[..., :, None], xs[..., None, :]), -1)
    return grid.flatten(-3, -2)


class GlimpseClassifier(nn.Module):
    """Hypernetwork -> boxes -> glimpses -> classifier; ``attention`` picks how the glimpses
    are read: "sparse" (the paper's layer) or "reinforce" (hard reads of sampled boxes)."""

    def __init__(
        self,
        image_size: tuple[int, int],
        *,
        attention: Attention = "sparse",
        glimpses: int = 4,
        k: int = 3,
        hidden: int = 32,
        channels: tuple[int, ...] = (32, 64, 128),
        hyper_hidden: int = 512,
        pool: int = 1,
        hypernet: Literal["reference", "small"] = "small",
        hyper_maxpool: int = 2,
        n_global: int = 8,
        n_local: int = 8,
        region: int = 8,
        sigma_scale: float = 0.1,
        min_sigma: float = 0.0,
        policy_std: float = 0.1,
    ):
        super().__init__()
        self.image_size, self.attention = tuple(image_size), attention
        self.glimpses, self.k, self.pool = glimpses, k, pool
        self.n_global, self.n_local, self.region = n_global, n_local, region
        self.sigma_scale, self.min_sigma, self.policy_std = sigma_scale, min_sigma, policy_std
        h, w = self.image_size
        seen = (1, h // pool, w // pool)
        if hypernet == "reference":
            self.hypernetwork = attention_hypernetwork(
                seen, 4 * glimpses, channels, hyper_hidden, pool=hyper_maxpool
            )
        else:
            self.hypernetwork = cnn(seen, 4 * glimpses, channels, hyper_hidden)
        self.raw_sigma = nn.Parameter(torch.zeros(glimpses))
        self.classifier = mlp(glimpses * k * k, (hidden,), 10)
        self.register_buffer("size_t", torch.tensor(self.image_size, dtype=torch.float32))
        self.log_prob: torch.Tensor | None = None  # of the last sampled boxes (REINFORCE)

    def boxes(self, x: torch.Tensor) -> torch.Tensor:
        """Raw box parameters (B, glimpses, 4) predicted from the (pooled) image."""
        seen = F.avg_pool2d(x, self.pool) if self.pool > 1 else x
        return self.hypernetwork(seen).view(len(x), self.glimpses, 4)

    def read(self, x: torch.Tensor, raw_boxes: torch.Tensor) -> torch.Tensor:
        """The glimpse values (B, glimpses * k * k); sparse reads in training mode are
        differentiable in the boxes and sigmas, hard reads are not."""
        b = len(x)
        means = box_grid(raw_boxes, self.k, self.size_t).flatten(1, 2)  # (B, T, 2)
        sparse = self.attention == "sparse"
        sigmas = sigmas_from_raw(self.raw_sigma, self.size_t, self.sigma_scale, self.min_sigma)
        sigmas = sigmas[:, None, :].expand(-1, self.k * self.k, -1).reshape(1, -1, 2)
        candidates, weights = sample_weights(
            means,
            sigmas.expand(b, -1, -1),
            self.image_size,
            training=self.training and sparse,
            n_global=self.n_global,
            n_local=self.n_local,
            region=self.region,
        )
        t, c = candidates.shape[1:3]
        out_index = torch.arange(t, device=x.device).repeat_interleave(c).expand(b, -1)
        in_index = ravel(candidates, self.image_size).flatten(1)
        return sparse_product(x.flatten(1), out_index, in_index, weights.flatten(1), t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = as_images(x)
        raw = self.boxes(x)
        if self.attention == "reinforce" and self.training:
            policy = torch.distributions.Normal(raw, self.policy_std)
            sampled = policy.sample()
            self.log_prob = policy.log_prob(sampled).sum((1, 2))
            raw = sampled
        return self.classifier(self.read(x, raw))


class ReinforceClassifier(BackpropClassifier):
    """Hard attention: backprop for the classifier, REINFORCE for the hypernetwork (reward 1
    for a correct class, minus an exponential moving average of the reward)."""

    def __init__(self, model: GlimpseClassifier, optimizer: torch.optim.Optimizer, decay=0.9):
        super().__init__(model, optimizer)
        self.baseline, self.decay = 0.0, decay

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        self.model.train()
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        reward = (logits.argmax(1) == y).float()
        advantage = reward - self.baseline
        surrogate = -(advantage * self.model.log_prob).mean()  # score-function estimator
        self.optimizer.zero_grad(set_to_none=True)
        (loss + surrogate).backward()
        self.optimizer.step()
        self.baseline = self.decay * self.baseline + (1 - self.decay) * reward.mean().item()
        return {"loss": loss.item()}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "baseline": self.baseline}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.baseline = state["baseline"]


def whole_image_cnn(
    image_size: tuple[int, int], channels: tuple[int, ...], hidden: int
) -> nn.Sequential:
    """The conv-net baseline: the small hypernetwork's architecture (:func:`cnn` with the same
    ``channels`` and dense width), reading the whole image at full resolution and predicting
    the class (ours: the reference's whole-image baselines are other conv nets)."""
    return nn.Sequential(ToFloat(), cnn((1, *image_size), 10, channels, hidden))


@torch.no_grad()
def glimpse_figure(path: Path, model: GlimpseClassifier, x: torch.Tensor, title: str) -> Path:
    """The first images of ``x`` with the evaluation-mode grid of every glimpse drawn on them
    (one colour per glimpse)."""
    from matplotlib.figure import Figure

    model.eval()
    images = as_images(x)
    means = box_grid(model.boxes(images), model.k, model.size_t)  # (B, glimpses, k*k, 2)
    fig = Figure(figsize=(2.6 * len(x), 2.9), layout="constrained")
    for i, ax in enumerate(fig.subplots(1, len(x), squeeze=False)[0]):
        ax.imshow(images[i, 0].cpu().numpy(), cmap="gray_r", vmin=0, vmax=1)
        for g in range(model.glimpses):
            ys, xs = means[i, g, :, 0].cpu().numpy(), means[i, g, :, 1].cpu().numpy()
            ax.scatter(xs, ys, s=9, color=f"C{g}")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, Path(path))
