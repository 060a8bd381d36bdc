"""Layers and optimisers on top of the engine, all in NumPy.

Layers are callables holding their parameters as :class:`~creditlab.autodiff.engine.Tensor`
leaves; a network is a :class:`Sequential` of them. The optimisers follow ``torch.optim`` line
by line (same formulas, same defaults) and :func:`cosine_lr` is ``CosineAnnealingLR`` in
closed form, so a network started from a torch model's weights follows the torch baseline's
recipe exactly and the two runs differ only in who computes the gradients.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from creditlab.autodiff.engine import Tensor
from creditlab.models import ACTIVATIONS  # the one list of activation names (torch's modules)


class Module:
    """Something callable on a Tensor that may own parameters."""

    def __call__(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def parameters(self) -> list[Tensor]:
        return []


class Linear(Module):
    """y = x W + b for a batch of rows x (n, n_in); W is (n_in, n_out), b is (n_out,).

    W is stored as the transpose of ``torch.nn.Linear.weight`` so that the forward pass is one
    matrix product and its backward gives dL/dW = xᵀ dL/dy directly. The default
    initialisation is torch's: W and b uniform in ±1/√n_in.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        rng: np.random.Generator | None = None,
        dtype: Any = np.float32,
    ):
        rng = rng if rng is not None else np.random.default_rng()
        bound = 1 / math.sqrt(n_in)
        self.weight = Tensor(rng.uniform(-bound, bound, (n_in, n_out)).astype(dtype), name="W")
        self.bias = Tensor(rng.uniform(-bound, bound, n_out).astype(dtype), name="b")

    def __call__(self, x: Tensor) -> Tensor:
        return x @ self.weight + self.bias

    def parameters(self) -> list[Tensor]:
        return [self.weight, self.bias]


class Conv2d(Module):
    """y = conv2d(x, W) + b with W (F, C, k, k) and b (F,), broadcast over every pixel."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int = 0,
        rng: np.random.Generator | None = None,
        dtype: Any = np.float32,
    ):
        rng = rng if rng is not None else np.random.default_rng()
        bound = 1 / math.sqrt(c_in * kernel_size * kernel_size)
        shape = (c_out, c_in, kernel_size, kernel_size)
        self.weight = Tensor(rng.uniform(-bound, bound, shape).astype(dtype), name="W")
        self.bias = Tensor(rng.uniform(-bound, bound, c_out).astype(dtype), name="b")
        self.stride, self.padding = stride, padding

    def __call__(self, x: Tensor) -> Tensor:
        y = x.conv2d(self.weight, stride=self.stride, padding=self.padding)
        return y + self.bias.reshape(-1, 1, 1)

    def parameters(self) -> list[Tensor]:
        return [self.weight, self.bias]


class Activation(Module):
    """An element-wise nonlinearity: ``relu``, ``tanh`` or ``sigmoid``."""

    def __init__(self, name: str):
        if name not in ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
        self.name = name

    def __call__(self, x: Tensor) -> Tensor:
        return getattr(x, self.name)()


class MaxPool2d(Module):
    """Max over non-overlapping ``size`` × ``size`` windows."""

    def __init__(self, size: int = 2):
        self.size = size

    def __call__(self, x: Tensor) -> Tensor:
        return x.max_pool2d(self.size)


class Flatten(Module):
    """(N, ...) -> (N, everything else), in C order like ``torch.nn.Flatten``."""

    def __call__(self, x: Tensor) -> Tensor:
        return x.reshape(len(x), -1)


class Sequential(Module):
    """Layers applied one after another."""

    def __init__(self, *layers: Module):
        self.layers = list(layers)

    def __call__(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self) -> list[Tensor]:
        return [p for layer in self.layers for p in layer.parameters()]


class MLP(Sequential):
    """``sizes[0] -> sizes[1] -> ... -> sizes[-1]``, the activation between Linear layers (none
    after the last: it outputs logits). Inputs of any shape are flattened first.

    >>> net = MLP([784, 500, 500, 10], rng=np.random.default_rng(0))
    >>> net(Tensor(np.zeros((2, 1, 28, 28), np.float32))).shape
    (2, 10)
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "relu",
        *,
        rng: np.random.Generator | None = None,
        dtype: Any = np.float32,
    ):
        rng = rng if rng is not None else np.random.default_rng()
        layers: list[Module] = [Flatten()]
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            if i:
                layers.append(Activation(activation))
            layers.append(Linear(n_in, n_out, rng=rng, dtype=dtype))
        super().__init__(*layers)


# --- optimisers ------------------------------------------------------------------------------


def cosine_lr(base_lr: float, step: int, total_steps: int) -> float:
    """The learning rate after ``step`` of ``total_steps`` updates, cosine-decayed to zero:
    lr_t = base_lr · (1 + cos(π t / T)) / 2 (torch's ``CosineAnnealingLR`` in closed form)."""
    return base_lr * (1 + math.cos(math.pi * step / total_steps)) / 2


class Optimizer:
    """Holds the parameters and the learning rate; ``zero_grad`` forgets their gradients."""

    def __init__(self, params: Iterable[Tensor], lr: float):
        self.params = list(params)
        self.lr = lr

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"lr": self.lr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lr = state["lr"]


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, as ``torch.optim.SGD``:

    g ← dL/dθ + λθ,   v ← μv + g   (v = g on the first step),   θ ← θ - lr·v
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr)
        self.momentum, self.weight_decay = momentum, weight_decay
        self.velocity: list[np.ndarray | None] = [None] * len(self.params)

    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad
            if self.momentum:
                v = self.velocity[i]
                if v is None:
                    v = self.velocity[i] = np.array(g, dtype=p.dtype)
                else:
                    v *= self.momentum
                    v += g
                g = v
            p.data -= self.lr * g

    def state_dict(self) -> dict[str, Any]:
        return {"lr": self.lr, "velocity": [None if v is None else v.copy() for v in self.velocity]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lr = state["lr"]
        self.velocity = [None if v is None else v.copy() for v in state["velocity"]]


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), as ``torch.optim.Adam``:

        g ← dL/dθ + λθ
        m ← β₁m + (1-β₁)g,   v ← β₂v + (1-β₂)g²       (running mean of g and of g²)
        θ ← θ - (lr / (1-β₁ᵗ)) · m / (√v / √(1-β₂ᵗ) + ε)

    The divisions by 1-βᵗ undo the bias of m and v towards their zero start. Everything is
    updated in place, through one scratch array per parameter: a step allocates no memory.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.t = 0
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]
        self._scratch = [np.empty_like(p.data) for p in self.params]

    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        step_size = self.lr / (1 - b1**self.t)
        root_bias2 = math.sqrt(1 - b2**self.t)
        for p, m, v, tmp in zip(self.params, self.m, self.v, self._scratch, strict=True):
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad
            m *= b1
            m += np.multiply(g, 1 - b1, out=tmp)  # m ← β₁m + (1-β₁)g
            v *= b2
            v += np.multiply(np.square(g, out=tmp), 1 - b2, out=tmp)  # v ← β₂v + (1-β₂)g²
            denom = np.sqrt(v, out=tmp)
            denom /= root_bias2
            denom += self.eps  # √v̂ + ε
            p.data -= np.multiply(np.divide(m, denom, out=tmp), step_size, out=tmp)

    def state_dict(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "t": self.t,
            "m": [m.copy() for m in self.m],
            "v": [v.copy() for v in self.v],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lr, self.t = state["lr"], state["t"]
        self.m = [m.copy() for m in state["m"]]
        self.v = [v.copy() for v in state["v"]]
