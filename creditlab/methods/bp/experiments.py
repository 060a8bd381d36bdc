"""Backprop baselines: an MLP (or a small CNN, ``--set model=cnn``) trained with exact
gradients from torch autograd on digits, MNIST-1D and MNIST.

These are the reference numbers every later learning rule is compared against, so they
use a sound recipe rather than a minimal one: Adam, minibatches of 100, a cosine-decayed
learning rate, and a fixed, seeded example order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from creditlab import data
from creditlab.models import build_classifier
from creditlab.registry import experiment
from creditlab.runner import RunContext
from creditlab.train import BackpropClassifier, fit, make_optimizer


@dataclass
class ClassifierConfig:
    model: Literal["mlp", "cnn"] = "mlp"
    """network: a fully connected MLP or a small LeNet-style CNN"""
    hidden: tuple[int, ...] = (500, 500)
    """hidden layer widths of the MLP (for the CNN: the width of its one dense layer)"""
    channels: tuple[int, ...] = (32, 64)
    """CNN only: output channels of each conv + max-pool stage"""
    activation: Literal["relu", "tanh", "sigmoid"] = "relu"
    """hidden-unit nonlinearity"""
    epochs: int = 50
    """passes over the training set"""
    batch_size: int = 100
    """examples per minibatch"""
    optimizer: Literal["adam", "sgd"] = "adam"
    """optimiser applied to the backprop gradient"""
    lr: float = 1e-3
    """initial learning rate (cosine-decayed to zero over the run)"""
    momentum: float = 0.9
    """SGD only: momentum"""
    weight_decay: float = 0.0
    """L2 penalty coefficient"""
    n_train: int = 0
    """use only the first n_train training examples (0: all)"""


def train_classifier(dataset: str, cfg: ClassifierConfig, ctx: RunContext) -> dict[str, float]:
    """Load ``dataset``, build the network, train it with backprop; return final metrics."""
    ds = data.load(dataset)
    ctx.data = ds.info()
    x_train, y_train = ds.x_train, ds.y_train
    if cfg.n_train:
        x_train, y_train = x_train[: cfg.n_train], y_train[: cfg.n_train]
    x_train, y_train = x_train.to(ctx.device), y_train.to(ctx.device)
    x_test, y_test = ds.x_test.to(ctx.device), ds.y_test.to(ctx.device)
    model = build_classifier(
        cfg.model, ds.input_shape, ds.n_classes, cfg.hidden, cfg.channels, cfg.activation
    ).to(ctx.device)
    optimizer = make_optimizer(
        model.parameters(), cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay
    )
    steps = cfg.epochs * max(1, len(x_train) // cfg.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    learner = BackpropClassifier(model, optimizer, schedule)
    metrics = fit(
        ctx, learner, x_train, y_train, x_test, y_test, epochs=cfg.epochs, batch_size=cfg.batch_size
    )
    metrics["parameters"] = sum(p.numel() for p in model.parameters())
    return metrics


@experiment(
    "bp.digits",
    config=ClassifierConfig,
    paper_title="Backpropagation baseline (Rumelhart, Hinton & Williams 1986)",
    scales={
        "smoke": {"hidden": (32,), "epochs": 5, "lr": 1e-2},
        "quick": {"hidden": (128,), "epochs": 30},
        "paper": {"hidden": (128,), "epochs": 100},
    },
    demo=True,
)
def bp_digits(cfg: ClassifierConfig, ctx: RunContext) -> dict[str, float]:
    """Backprop MLP on scikit-learn's 8x8 digits (1437 train / 360 test)."""
    return train_classifier("digits", cfg, ctx)


@experiment(
    "bp.mnist1d",
    config=ClassifierConfig,
    paper_title="Greydanus & Kobak, 'Scaling down deep learning with MNIST-1D' (2020/2024)",
    scales={
        "smoke": {"hidden": (32,), "epochs": 2},
        "quick": {"hidden": (100, 100), "epochs": 60},
        "paper": {"hidden": (100, 100), "epochs": 200},
    },
    paper={"test_accuracy": (0.68, "Greydanus 2020, MNIST-1D benchmark table: MLP 68%")},
    demo=True,
)
def bp_mnist1d(cfg: ClassifierConfig, ctx: RunContext) -> dict[str, float]:
    """Backprop MLP on MNIST-1D (4000 train / 1000 test sequences of length 40)."""
    return train_classifier("mnist1d", cfg, ctx)


@experiment(
    "bp.mnist",
    config=ClassifierConfig,
    paper_title="Backprop baseline of Sacramento et al. 2018 (784-500-500-10 MLP)",
    scales={
        "smoke": {"hidden": (64,), "epochs": 3, "n_train": 2000, "lr": 3e-3},
        "quick": {"epochs": 10},
    },
    paper={
        "test_accuracy": (0.9847, "Sacramento et al. 2018, backprop 784-500-500-10: 1.53% error")
    },
    demo=True,
)
def bp_mnist(cfg: ClassifierConfig, ctx: RunContext) -> dict[str, float]:
    """Backprop 784-500-500-10 MLP on MNIST (mnist10k split when only the test files exist)."""
    return train_classifier("mnist", cfg, ctx)
