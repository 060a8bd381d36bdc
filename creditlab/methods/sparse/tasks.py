"""The data and the test measures of the three tasks of the sparse experiments: the target
permutation to recover and its index accuracy, the attention task's images (MNIST or
generated canvases), and the held-out sorting sequences with their sorting accuracy.

Fixed test data: the test samples and test sequences come from generators seeded with
``TEST_SEED`` (a constant of the task, the same for every run seed); the canvases from the
config's ``canvas_seed``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from creditlab import data
from creditlab.methods.sparse.canvas import cluttered_canvases
from creditlab.methods.sparse.hyperlayer import SparseHyperLayer, ravel
from creditlab.methods.sparse.sorting import number_sequences, order_metrics, quicksort_order

TEST_SEED = 10**6
"""seed of the fixed test data (identity's test samples, the sorting test sequences)"""


def target_permutation(target: str, n: int, generator: torch.Generator) -> torch.Tensor:
    """``perm`` with y_i = x_perm[i]: the identity, or a random permutation drawn from
    ``generator``.

    >>> import torch
    >>> target_permutation("identity", 4, torch.Generator()).tolist()
    [0, 1, 2, 3]
    """
    if target == "identity":
        return torch.arange(n)
    return torch.randperm(n, generator=generator)


@torch.no_grad()
def index_accuracy(layer: SparseHyperLayer, perm: torch.Tensor) -> float:
    """Fraction of the target's entries (i, perm[i]) hit by a rounded tuple."""
    layer.eval()
    n = len(perm)
    rounded, _ = layer.entries(torch.zeros(1, n))
    hit = ravel(rounded, (n, n))
    target = ravel(torch.stack([torch.arange(n), perm], 1), (n, n))
    return torch.isin(target, hit).float().mean().item()


def attention_data(cfg: Any, task: str, ds: data.Dataset) -> tuple:
    """``(x_train, y_train, x_test, y_test)`` of a task (``cfg``: an AttentionConfig);
    canvases are built from one split each (train canvases from train digits, test canvases
    from test digits), from a generator seeded with ``cfg.canvas_seed``."""
    x_train, y_train = ds.x_train[: cfg.n_train or None], ds.y_train[: cfg.n_train or None]
    x_test, y_test = ds.x_test[: cfg.n_test or None], ds.y_test[: cfg.n_test or None]
    if task == "mnist":
        return x_train, y_train, x_test, y_test
    settings = {
        "size": cfg.canvas_size,
        "scale": cfg.canvas_scale,
        "max_degrees": cfg.canvas_degrees,
        "clutter": cfg.clutter,
        "patch": cfg.patch,
    }
    g = torch.Generator().manual_seed(cfg.canvas_seed)
    train = cluttered_canvases(x_train, y_train, len(x_train), g, **settings)
    test = cluttered_canvases(x_test, y_test, len(x_test), g, **settings)
    return (*train, *test)


def held_out_sequences(
    ds: data.Dataset, n: int, width: int, count: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The test sequences: ``count`` sequences of held-out *test* digits only (never the
    training split, unlike the reference code's sorting 'test')."""
    g = torch.Generator().manual_seed(seed)
    return number_sequences(ds.x_test, ds.y_test, count, n, width, g)


def sort_keys(net: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """One key per number image: (B, n, 1, H, W) -> (B, n)."""
    return net(images.flatten(0, 1)).view(images.shape[:2])


@torch.no_grad()
def sorting_accuracy(
    net: nn.Module, method: str, images: torch.Tensor, values: torch.Tensor, chunk: int = 500
) -> tuple[float, float]:
    """(all correct, ranks correct) of the test-time (hard) sort of each sequence."""
    net.eval()
    all_correct, ranks = 0.0, 0.0
    for i in range(0, len(images), chunk):
        keys = sort_keys(net, images[i : i + chunk])
        order = quicksort_order(keys) if method == "quicksort" else keys.argsort(1)
        a, r = order_metrics(values[i : i + chunk], order)
        all_correct, ranks = all_correct + a * len(keys), ranks + r * len(keys)
    return all_correct / len(images), ranks / len(images)
