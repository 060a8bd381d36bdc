"""The engine beside torch: :func:`from_torch` copies a torch network into the engine, and
:class:`EngineClassifier` trains it on :func:`creditlab.train.fit`'s Learner protocol, the
gradients computed by the engine (``autodiff.mnist``)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn as tnn

from creditlab.autodiff import nn
from creditlab.autodiff.engine import Tensor
from creditlab.errors import UserError
from creditlab.models import ACTIVATIONS

_ACTIVATION_NAMES = {module: name for name, module in ACTIVATIONS.items()}


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
