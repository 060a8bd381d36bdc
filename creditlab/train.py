"""The one supervised training loop, shared by every method that learns a classifier,
and the backprop classifier baseline (its config, its MNIST scales) built on it.

A method supplies a :class:`Learner` (its update rule); :func:`fit` supplies the rest:
minibatch order, evaluation, logging, progress, NaN checks and exact checkpoints.

The order of examples in epoch ``e`` is a permutation drawn from the stream
``derive_seed(seed, "epoch", e)`` only, so a run resumed in the middle of an epoch sees the
same batches as one that never stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch import nn

from creditlab import data
from creditlab.models import Activation, build_classifier
from creditlab.runner import RunContext, derive_seed


class Learner(Protocol):
    """What :func:`fit` needs from a learning rule."""

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """One update on a minibatch; returns at least ``{"loss": ...}``."""

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """``{"loss": mean loss, "accuracy": fraction correct}`` on the given examples."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    # Optional: a learner with a ``converged`` attribute that turns True ends :func:`fit`
    # at the next epoch boundary (after that epoch is measured and checkpointed), e.g. when
    # its training loss has plateaued; ``epochs`` is then only the cap.


class BackpropClassifier:
    """Exact backprop (torch autograd) with cross-entropy: the reference every rule meets."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        schedule: torch.optim.lr_scheduler.LRScheduler | None = None,
    ):
        self.model, self.optimizer, self.schedule = model, optimizer, schedule

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        self.model.train()
        loss = nn.functional.cross_entropy(self.model(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.schedule is not None:
            self.schedule.step()
        return {"loss": loss.item()}

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        self.model.eval()
        return evaluate_logits(self.model, x, y)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), **optimizer_state(self.optimizer, self.schedule)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        load_optimizer_state(state, self.optimizer, self.schedule)


def optimizer_state(optimizer: torch.optim.Optimizer, schedule: Any = None) -> dict[str, Any]:
    """The optimiser's state and, if there is one, its learning-rate schedule's (for a
    learner's checkpoint)."""
    state = {"optimizer": optimizer.state_dict()}
    if schedule is not None:
        state["schedule"] = schedule.state_dict()
    return state


def load_optimizer_state(
    state: dict[str, Any], optimizer: torch.optim.Optimizer, schedule: Any = None
) -> None:
    """Restore what :func:`optimizer_state` saved."""
    optimizer.load_state_dict(state["optimizer"])
    if schedule is not None:
        schedule.load_state_dict(state["schedule"])


class OptimizerLearner:
    """Base of a learner whose rule yields each step's gradients (its own, not always
    autograd's) and hands them to a torch optimiser and its per-step schedule; checkpoints the
    network, the optimiser and the schedule."""

    def __init__(self, net: Any, optimizer: torch.optim.Optimizer, schedule: Any = None):
        self.net, self.optimizer, self.schedule = net, optimizer, schedule

    def apply_gradients(self, pairs: Any) -> None:
        """Set each ``(parameter, gradient)`` pair's ``.grad``, then step the optimiser and the
        schedule."""
        for param, grad in pairs:
            param.grad = grad
        self.optimizer.step()
        if self.schedule is not None:
            self.schedule.step()

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), **optimizer_state(self.optimizer, self.schedule)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        load_optimizer_state(state, self.optimizer, self.schedule)


def evaluate_logits(
    predict: Any, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2000
) -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``predict(x) -> logits``, in chunks."""
    loss, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        logits = predict(x[i : i + batch_size])
        yb = y[i : i + batch_size]
        loss += nn.functional.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
    return {"loss": loss / len(x), "accuracy": correct / len(x)}


def make_optimizer(
    params: Any, name: str, lr: float, momentum: float = 0.9, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of the ``n`` training examples in ``epoch``: a permutation from the stream
    ``derive_seed(seed, "epoch", epoch)`` alone, so a resumed run sees the same batches."""
    generator = torch.Generator().manual_seed(derive_seed(seed, "epoch", epoch))
    return torch.randperm(n, generator=generator)


def fit(
    ctx: RunContext,
    learner: Learner,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    log_every: int = 50,
    evaluate_train: bool = True,
) -> dict[str, float]:
    """Train for ``epochs`` (or until ``learner.converged``) and return the final
    ``train_/test_accuracy`` and ``_loss``.

    Logs ``batch_loss`` (mean over the last ``log_every`` steps) and, after every epoch,
    ``epoch``, ``train_accuracy``, ``train_loss``, ``test_accuracy`` and ``test_loss``.

    ``evaluate_train=False`` skips the pass over the whole training set after each epoch:
    ``train_loss`` is then the mean of that epoch's minibatch losses (each measured before
    its update), and ``train_accuracy`` likewise the mean of the ``accuracy`` that
    ``train_step`` returns (omitted when it returns none).
    """
    epoch_sums = [0.0, 0.0, 0.0]  # evaluate_train=False: this epoch's loss, accuracy, batches
    has_accuracy = [False]

    def measure() -> dict[str, float]:
        if not evaluate_train and epoch_sums[2]:
            test, n = learner.evaluate(x_test, y_test), epoch_sums[2]
            out = {"train_loss": epoch_sums[0] / n}
            if has_accuracy[0]:
                out["train_accuracy"] = epoch_sums[1] / n
            out.update(test_accuracy=test["accuracy"], test_loss=test["loss"])
            return out
        train, test = learner.evaluate(x_train, y_train), learner.evaluate(x_test, y_test)
        return {
            "train_accuracy": train["accuracy"],
            "train_loss": train["loss"],
            "test_accuracy": test["accuracy"],
            "test_loss": test["loss"],
        }

    n_batches = max(1, len(x_train) // batch_size)  # the last partial batch is dropped
    running: list[float] = []  # losses since the last batch_loss row
    final: dict[str, float] = {}

    def restore(state: dict[str, Any]) -> None:
        learner.load_state_dict(state["learner"])
        running[:] = state["running"]
        if "epoch_sums" in state:
            epoch_sums[:], has_accuracy[0] = state["epoch_sums"], state["has_accuracy"]

    def state() -> dict[str, Any]:
        out = {"learner": learner.state_dict(), "running": list(running)}
        if not evaluate_train:
            out.update(epoch_sums=list(epoch_sums), has_accuracy=has_accuracy[0])
        return out

    steps = ctx.loop(
        epochs * n_batches,
        state,
        restore,
        checkpoint_every=n_batches,  # every epoch's end
    )
    order = None
    for i in steps:
        epoch, b = divmod(i, n_batches)
        if b == 0 and getattr(learner, "converged", False):
            break  # at an epoch boundary, after that epoch was measured
        if order is None or b == 0:
            order = epoch_order(len(x_train), ctx.seed, epoch)
        step = i + 1
        idx = order[b * batch_size : (b + 1) * batch_size].to(x_train.device)
        out = learner.train_step(x_train[idx], y_train[idx])
        loss = out["loss"]
        if not evaluate_train:
            if b == 0:
                epoch_sums[:] = [0.0, 0.0, 0.0]
            epoch_sums[0] += loss
            epoch_sums[1] += out.get("accuracy", 0.0)
            epoch_sums[2] += 1
            has_accuracy[0] = "accuracy" in out
        ctx.check_finite(step, train_loss=loss)
        running.append(loss)
        if step % log_every == 0:
            ctx.log(step, batch_loss=sum(running) / len(running))
            running.clear()
        steps.postfix(loss=loss)
        if b == n_batches - 1:
            final = measure()
            ctx.log(step, epoch=epoch + 1, **final)
    return final or measure()  # measure(): resumed after the last epoch was logged


@dataclass
class DataConfig:
    """The one field every classifier experiment has: which data set (and so which protocol)."""

    dataset: data.ClassifierData = "mnist"
    """data set: mnist (mnist10k 8k/2k split, or 60k/10k with the training files), fashion_mnist
    (60k/10k), digits or mnist1d; result.json records the protocol"""


@dataclass
class OptimizerConfig:
    """How a network is trained: passes, minibatches and the optimiser (with its cosine
    schedule) that :func:`make_optimizer` builds."""

    epochs: int = 50
    """passes over the training set"""
    batch_size: int = 100
    """examples per minibatch"""
    optimizer: Literal["adam", "sgd"] = "adam"
    """optimiser applied to the backprop gradient (or to a learning rule's update in its place)"""
    lr: float = 1e-3
    """initial learning rate (cosine-decayed to zero over the run)"""
    momentum: float = 0.9
    """SGD only: momentum"""
    weight_decay: float = 0.0
    """L2 penalty coefficient"""


@dataclass
class TrainingConfig(OptimizerConfig, DataConfig):
    """The minibatch-training settings every backprop-trained experiment shares: the data set,
    the optimiser and how much of the training set."""

    n_train: int = 0
    """use only the first n_train training examples (0: all)"""


@dataclass
class ClassifierConfig(TrainingConfig):
    model: Literal["mlp", "cnn"] = "mlp"
    """network: a fully connected MLP or a small LeNet-style CNN"""
    hidden: tuple[int, ...] = (500, 500)
    """hidden layer widths of the MLP (for the CNN: the width of its one dense layer)"""
    channels: tuple[int, ...] = (32, 64)
    """CNN only: output channels of each conv + max-pool stage"""
    activation: Activation = "relu"
    """hidden-unit nonlinearity"""


# The scales of the 784-500-500-10 MNIST MLP; every method that trains this network on MNIST
# uses them, so its numbers sit beside bp.mnist's at the same budget.
MNIST_MLP_SCALES = {
    "smoke": {"hidden": (64,), "epochs": 5, "n_train": 2000, "lr": 3e-3},
    "quick": {"epochs": 10},
}


def load_split(dataset: str, n_train: int, ctx: RunContext) -> tuple[data.Dataset, tuple]:
    """Load ``dataset`` (recorded in the run's result.json) and return it with its
    ``(x_train, y_train, x_test, y_test)`` on the run's device, the training set cut to its
    first ``n_train`` examples when ``n_train`` > 0."""
    ds = data.load(dataset)
    cut = slice(0, n_train or None)
    tensors = (ds.x_train[cut], ds.y_train[cut], ds.x_test, ds.y_test)
    ctx.data = {**ds.info(), "n_train": len(tensors[0]), "n_train_available": len(ds.x_train)}
    return ds, tuple(t.to(ctx.device) for t in tensors)


def train_classifier(cfg: ClassifierConfig, ctx: RunContext) -> dict[str, float]:
    """Load ``cfg.dataset``, build the network, train it with backprop; return final metrics."""
    ds, (x_train, y_train, x_test, y_test) = load_split(cfg.dataset, cfg.n_train, ctx)
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
