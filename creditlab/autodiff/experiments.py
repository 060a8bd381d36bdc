"""``autodiff.mnist``: the ``bp.mnist`` network trained by creditlab's own NumPy engine.

The run is built to differ from ``bp.mnist`` in one thing only, who computes the gradients:
the torch model is built exactly as ``bp.mnist`` builds it (after the runner's seeding, so its
random initial weights are the same), its weights are copied into the engine, and training
uses the same examples in the same order (``creditlab.train.fit``), the same Adam and the same
cosine schedule. The test accuracies then agree to within float32 rounding noise, and
``samples_per_second`` says what the readable engine costs. ``--set model=cnn`` trains the
bp.mnist CNN the same way (im2col convolutions and max-pooling, slower than torch's).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn as tnn

from creditlab.autodiff import nn
from creditlab.autodiff.engine import Tensor
from creditlab.errors import UserError
from creditlab.models import build_classifier
from creditlab.registry import experiment
from creditlab.runner import RunContext
from creditlab.train import MNIST_MLP_SCALES, ClassifierConfig, fit, load_split

_ACTIVATION_NAMES = {tnn.ReLU: "relu", tnn.Tanh: "tanh", tnn.Sigmoid: "sigmoid"}


def from_torch(model: tnn.Module, dtype: Any = np.float32) -> nn.Sequential:
    """The engine's copy of a torch ``nn.Sequential`` of Flatten, Linear, Conv2d, ReLU / Tanh /
    Sigmoid and MaxPool2d layers (the shapes :mod:`creditlab.models` builds), same weights."""

    def array(t: torch.Tensor) -> np.ndarray:
        return np.array(t.detach().cpu().numpy(), dtype=dtype)  # always a copy

    layers: list[nn.Module] = []
    for module in model.children():
        if isinstance(module, tnn.Flatten):
            layers.append(nn.Flatten())
        elif isinstance(module, tnn.Linear):
            layer = nn.Linear(module.in_features, module.out_features, dtype=dtype)
            layer.weight.data = array(module.weight.T)  # engine stores (in, out)
            layer.bias.data = array(module.bias)
            layers.append(layer)
        elif isinstance(module, tnn.Conv2d) and module.padding_mode == "zeros":
            size, stride, padding = module.kernel_size[0], module.stride[0], module.padding[0]
            if module.kernel_size != (size, size) or module.stride != (stride, stride):
                raise UserError("the autodiff engine supports square kernels and strides only")
            layer = nn.Conv2d(
                module.in_channels,
                module.out_channels,
                size,
                stride=stride,
                padding=padding,
                dtype=dtype,
            )
            layer.weight.data, layer.bias.data = array(module.weight), array(module.bias)
            layers.append(layer)
        elif type(module) in _ACTIVATION_NAMES:
            layers.append(nn.Activation(_ACTIVATION_NAMES[type(module)]))
        elif isinstance(module, tnn.MaxPool2d) and module.stride in (module.kernel_size, None):
            layers.append(nn.MaxPool2d(module.kernel_size))
        else:
            raise UserError(f"the autodiff engine has no equivalent of torch layer {module}")
    return nn.Sequential(*layers)


class EngineClassifier:
    """A :class:`creditlab.train.Learner` whose gradients come from the autodiff engine.

    ``fit`` hands it example *ids* rather than images: the learner looks the examples up in
    its own NumPy copy of the data. (Indexing a torch tensor for every minibatch wakes torch's
    OpenMP workers, which then spin for a while and fight NumPy's BLAS threads for the cores:
    on a 2-core machine that made every step about 2x slower.) The learning rate follows the
    cosine schedule, set before each update as torch's ``CosineAnnealingLR`` does.
    """

    def __init__(
        self,
        model: nn.Sequential,
        optimizer: nn.Optimizer,
        images: np.ndarray,
        base_lr: float,
        total_steps: int,
    ):
        self.model, self.optimizer, self.images = model, optimizer, images
        self.base_lr, self.total_steps = base_lr, total_steps
        self.steps = 0
        self.train_seconds, self.train_samples = 0.0, 0  # this session only (not checkpointed)

    def inputs(self, ids: torch.Tensor) -> Tensor:
        """The examples with these ids, as a constant of the engine (no gradient)."""
        return Tensor(self.images[ids.cpu().numpy()], requires_grad=False)

    def train_step(self, ids: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        start = time.perf_counter()
        self.optimizer.lr = nn.cosine_lr(self.base_lr, self.steps, self.total_steps)
        loss = self.model(self.inputs(ids)).cross_entropy(y.cpu().numpy())
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.steps += 1
        self.train_seconds += time.perf_counter() - start
        self.train_samples += len(ids)
        return {"loss": float(loss.data)}

    def evaluate(
        self, ids: torch.Tensor, y: torch.Tensor, batch_size: int = 2000
    ) -> dict[str, float]:
        labels = y.cpu().numpy()
        loss, correct = 0.0, 0
        for i in range(0, len(ids), batch_size):
            logits = self.model(self.inputs(ids[i : i + batch_size]))
            yb = labels[i : i + batch_size]
            loss += float(logits.cross_entropy(yb).data) * len(yb)
            correct += int((logits.data.argmax(axis=1) == yb).sum())
        return {"loss": loss / len(ids), "accuracy": correct / len(ids)}

    def state_dict(self) -> dict[str, Any]:
        return {
            "params": [p.data.copy() for p in self.model.parameters()],
            "optimizer": self.optimizer.state_dict(),
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for p, saved in zip(self.model.parameters(), state["params"], strict=True):
            p.data = saved.copy()
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps = state["steps"]


@experiment(
    "autodiff.mnist",
    config=ClassifierConfig,
    paper_title="The Backpropagation Algorithm Demystified (a readable NumPy reverse-mode engine)",
    scales=MNIST_MLP_SCALES,
    demo=True,
)
def autodiff_mnist(cfg: ClassifierConfig, ctx: RunContext) -> dict[str, float]:
    """The bp.mnist MLP trained by creditlab's NumPy autodiff engine instead of torch.autograd."""
    ds, (x_train, y_train, x_test, y_test) = load_split(cfg.dataset, cfg.n_train, ctx)
    # Built exactly as bp.mnist builds it, right after the same seeding: the same initial weights.
    reference = build_classifier(
        cfg.model, ds.input_shape, ds.n_classes, cfg.hidden, cfg.channels, cfg.activation
    )
    model = from_torch(reference)
    params = model.parameters()
    if cfg.optimizer == "adam":
        optimizer: nn.Optimizer = nn.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        optimizer = nn.SGD(params, cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * max(1, len(x_train) // cfg.batch_size)
    # The learner keeps the images (train, then test) as one NumPy array; fit sees their ids.
    images = np.concatenate([x_train.cpu().numpy(), x_test.cpu().numpy()])
    ids = torch.arange(len(images), device=x_train.device)
    train_ids, test_ids = ids[: len(x_train)], ids[len(x_train) :]
    learner = EngineClassifier(model, optimizer, images, cfg.lr, steps)
    metrics = fit(
        ctx,
        learner,
        train_ids,
        y_train,
        test_ids,
        y_test,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
    )
    metrics["parameters"] = sum(p.data.size for p in params)
    if learner.train_samples:
        metrics["samples_per_second"] = learner.train_samples / learner.train_seconds
    return metrics
