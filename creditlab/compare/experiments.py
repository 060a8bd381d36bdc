"""The shared tasks of ``creditlab compare``: one registered experiment per data set, whose
``rule`` field picks the learning rule; the network and the budget are the task's."""

from __future__ import annotations

from dataclasses import dataclass

from creditlab.compare.training import train_rule
from creditlab.data import ClassifierData
from creditlab.registry import experiment
from creditlab.runner import RunContext
from creditlab.train import TrainingConfig


@dataclass
class CompareConfig(TrainingConfig):
    rule: str = "bp"
    """learning rule: bp, fa or dfa (see creditlab.compare.rules.RULES)"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden layer widths of the MLP every rule trains"""
    activation: str = "relu"
    """hidden nonlinearity: relu, tanh or sigmoid"""
    align_every: int = 100
    """log the cosine of the rule's update with backprop's every this many steps (0: never)"""
    threads: int = 1
    """torch CPU threads (timings comparable across rules; 0 leaves the setting alone)"""


@dataclass
class DigitsTask(CompareConfig):
    dataset: ClassifierData = "digits"
    """data set (default: scikit-learn's 8x8 digits)"""


@dataclass
class MnistTask(CompareConfig):
    dataset: ClassifierData = "mnist"
    """data set (mnist10k 8k/2k split unless the training files are present)"""


@dataclass
class FashionTask(CompareConfig):
    dataset: ClassifierData = "fashion_mnist"
    """data set (Fashion-MNIST, 60k/10k)"""


@experiment(
    "compare.digits",
    config=DigitsTask,
    scales={
        "smoke": {"hidden": (32, 32), "epochs": 3, "lr": 1e-2, "align_every": 5},
        "quick": {"hidden": (128, 128), "epochs": 30, "lr": 3e-3, "align_every": 40},
        "paper": {"hidden": (128, 128), "epochs": 100, "lr": 3e-3, "align_every": 40},
    },
)
def compare_digits(cfg: DigitsTask, ctx: RunContext) -> dict[str, float]:
    """One learning rule (--set rule=...) on 8x8 digits, with the compare harness's MLP."""
    return train_rule(cfg, ctx)


@experiment(
    "compare.mnist",
    config=MnistTask,
    scales={
        "smoke": {"hidden": (32, 32), "epochs": 1, "n_train": 1000, "align_every": 5},
        "quick": {"epochs": 10},
        "paper": {"hidden": (500, 500), "epochs": 50},
    },
)
def compare_mnist(cfg: MnistTask, ctx: RunContext) -> dict[str, float]:
    """One learning rule (--set rule=...) on MNIST, with the compare harness's MLP."""
    return train_rule(cfg, ctx)


@experiment(
    "compare.fashion_mnist",
    config=FashionTask,
    scales={
        "smoke": {"hidden": (32, 32), "epochs": 1, "n_train": 1000, "align_every": 5},
        "quick": {"epochs": 5, "align_every": 200},
        "paper": {"hidden": (500, 500), "epochs": 50, "align_every": 200},
    },
)
def compare_fashion_mnist(cfg: FashionTask, ctx: RunContext) -> dict[str, float]:
    """One learning rule (--set rule=...) on Fashion-MNIST, with the compare harness's MLP."""
    return train_rule(cfg, ctx)
