"""Backprop baselines: an MLP (or a small CNN, ``--set model=cnn``) trained with exact
gradients from torch autograd on digits, MNIST-1D and MNIST.

These are the reference numbers every later learning rule is compared against, so they
use a sound recipe rather than a minimal one: Adam, minibatches of 100, a cosine-decayed
learning rate, and a fixed, seeded example order.
"""

from __future__ import annotations

from dataclasses import dataclass

from creditlab.data import ClassifierData
from creditlab.registry import experiment
from creditlab.runner import RunContext
from creditlab.train import MNIST_MLP_SCALES, ClassifierConfig, train_classifier

DEVICES = ("cpu", "cuda")
"""train_classifier puts the network and every tensor on ctx.device"""


@dataclass
class DigitsConfig(ClassifierConfig):
    dataset: ClassifierData = "digits"
    """data set (default: scikit-learn's 8x8 digits; any classifier data set runs)"""


@dataclass
class Mnist1dConfig(ClassifierConfig):
    dataset: ClassifierData = "mnist1d"
    """data set (default: MNIST-1D; any classifier data set runs)"""


@experiment(
    "bp.digits",
    config=DigitsConfig,
    paper_title="Backpropagation baseline (Rumelhart, Hinton & Williams 1986)",
    scales={
        "smoke": {"hidden": (32,), "epochs": 5, "lr": 1e-2},
        "quick": {"hidden": (128,), "epochs": 30, "lr": 1e-2},
        "paper": {"hidden": (128,), "epochs": 100, "lr": 1e-2},
    },
    devices=DEVICES,
    demo=True,
)
def bp_digits(cfg: DigitsConfig, ctx: RunContext) -> dict[str, float]:
    """Backprop MLP on scikit-learn's 8x8 digits (1438 train / 359 test)."""
    return train_classifier(cfg, ctx)


@experiment(
    "bp.mnist1d",
    config=Mnist1dConfig,
    paper_title="Greydanus & Kobak, 'Scaling down deep learning with MNIST-1D' (2020/2024)",
    # MNIST-1D's own MLP baseline: two hidden layers of 256, Adam lr 1e-2, batch 100,
    # 8000 steps (200 epochs of 4000 examples); here the learning rate is cosine-decayed.
    scales={
        "smoke": {"hidden": (32,), "epochs": 2, "lr": 1e-2},
        "quick": {"hidden": (256, 256), "lr": 1e-2, "epochs": 60},
        "paper": {"hidden": (256, 256), "lr": 1e-2, "epochs": 200},
    },
    paper={"test_accuracy": (0.68, "Greydanus 2020, MNIST-1D benchmark table: MLP 68%", "mnist1d")},
    devices=DEVICES,
    demo=True,
)
def bp_mnist1d(cfg: Mnist1dConfig, ctx: RunContext) -> dict[str, float]:
    """Backprop MLP on MNIST-1D (4000 train / 1000 test sequences of length 40)."""
    return train_classifier(cfg, ctx)


@experiment(
    "bp.mnist",
    config=ClassifierConfig,
    paper_title="Backprop baseline of Sacramento et al. 2018 (784-500-500-10 MLP)",
    scales=MNIST_MLP_SCALES,
    paper={
        "test_accuracy": (
            0.9847,
            "Sacramento et al. 2018, backprop 784-500-500-10: 1.53% error",
            "mnist60k",
        )
    },
    devices=DEVICES,
    demo=True,
)
def bp_mnist(cfg: ClassifierConfig, ctx: RunContext) -> dict[str, float]:
    """Backprop 784-500-500-10 MLP on MNIST (mnist10k split when only the test files exist).

    ``--set dataset=fashion_mnist`` trains the same network on Fashion-MNIST (60k/10k)."""
    return train_classifier(cfg, ctx)
