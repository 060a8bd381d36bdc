"""The shared tasks of ``creditlab compare``: one registered experiment per data set, whose
``rule`` field picks the learning rule; the network and the budget are the task's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from creditlab.compare.regression import train_teacher
from creditlab.compare.training import train_lenet, train_rule
from creditlab.data import ClassifierData
from creditlab.registry import experiment
from creditlab.runner import RunContext
from creditlab.train import OptimizerConfig, TrainingConfig


@dataclass
class CompareConfig(TrainingConfig):
    rule: str = "bp"
    """learning rule: bp, fa, dfa, dendritic, coagent or hm2bp (creditlab.compare.rules.RULES)"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden layer widths of the MLP every rule trains"""
    activation: str = "relu"
    """hidden nonlinearity: relu, tanh or sigmoid"""
    align_every: int = 100
    """log the cosine of the rule's update with backprop's every this many steps (0: never)"""
    spike_steps: int = 400
    """hm2bp only: time steps (1 ms) each rate-coded image is shown (400: the reference's)"""
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


@dataclass
class LeNetTask(TrainingConfig):
    """BioTorch's Fashion-MNIST LeNet benchmark (``Benchmarks.md``): its network and its
    SGD recipe for LeNet (``benchmark_configs/cifar10/le_net/sgd/*.yaml``)."""

    dataset: ClassifierData = "fashion_mnist"
    """data set (Fashion-MNIST, 60k/10k; BioTorch selects and reports on the 10k test set)"""
    rule: str = "bp"
    """bp, fa or dfa: the mode of every layer"""
    epochs: int = 250
    """passes over the training set (BioTorch's LeNet configs)"""
    batch_size: int = 128
    """examples per minibatch (BioTorch's)"""
    optimizer: Literal["adam", "sgd"] = "sgd"
    """BioTorch's: SGD"""
    lr: float = 0.0
    """0: BioTorch's rate for the mode (bp 0.1, fa 1e-3, dfa 1e-4)"""
    momentum: float = 0.9
    """SGD momentum (BioTorch's)"""
    weight_decay: float = 1e-4
    """L2 weight decay (BioTorch's)"""
    milestones: tuple[int, ...] = (100, 150, 200)
    """epochs at which the learning rate is multiplied by gamma (BioTorch's)"""
    gamma: float = 0.1
    """learning-rate factor at each milestone (BioTorch's)"""
    n_test: int = 0
    """evaluate on the first n_test test examples only (0: all; smoke scale only)"""
    align_every: int = 200
    """log the cosine of the mode's update with backprop's every this many steps (0: never)"""
    threads: int = 1
    """torch CPU threads (0 leaves the setting alone)"""


@experiment(
    "compare.fashion_mnist_lenet",
    config=LeNetTask,
    scales={
        "smoke": {"epochs": 1, "n_train": 256, "n_test": 256, "align_every": 1},
        "quick": {"epochs": 1, "n_train": 12000},
        "paper": {},
    },
)
def compare_fashion_mnist_lenet(cfg: LeNetTask, ctx: RunContext) -> dict[str, float]:
    """BP, FA or DFA (--set rule=...) as a mode of BioTorch's LeNet on Fashion-MNIST."""
    return train_lenet(cfg, ctx)


@dataclass
class TeacherTask(OptimizerConfig):
    """The teacher-student regression (creditlab.compare.regression): bp, fa and dfa."""

    rule: str = "bp"
    """bp, fa or dfa (the rules whose output error the mean squared error changes only)"""
    loss: Literal["mse"] = "mse"
    """the student's loss: torch's mean squared error"""
    n_in: int = 30
    """input width (teacher and student)"""
    teacher_hidden: int = 20
    """teacher's hidden width (tanh)"""
    teacher_gain: tuple[float, float] = (2.0, 1.0)
    """gains k1, k2 of t = k2 W2 tanh(k1 W1 x)"""
    n_out: int = 10
    """output width"""
    hidden: tuple[int, ...] = (50, 50)
    """student's hidden widths"""
    activation: str = "relu"
    """student's hidden nonlinearity"""
    n_train: int = 5000
    """fixed training examples"""
    n_test: int = 1000
    """test examples"""
    align_every: int = 100
    """log the cosine of the rule's update with backprop's every this many steps (0: never)"""
    threads: int = 1
    """torch CPU threads (0 leaves the setting alone)"""


@experiment(
    "compare.teacher",
    config=TeacherTask,
    scales={
        "smoke": {"n_train": 200, "n_test": 100, "epochs": 2, "align_every": 1},
        "quick": {"epochs": 30},
        "paper": {"n_train": 20000, "n_test": 5000, "epochs": 100},
    },
)
def compare_teacher(cfg: TeacherTask, ctx: RunContext) -> dict[str, float]:
    """BP, FA or DFA (--set rule=...) on the teacher-student regression (test_mse)."""
    return train_teacher(cfg, ctx)
