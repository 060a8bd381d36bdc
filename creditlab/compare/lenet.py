"""BioTorch's ``LeNetMNIST`` with backprop, feedback alignment and direct feedback alignment
as modes of its convolutional and linear layers: the network of BioTorch's published
Fashion-MNIST errors (``Benchmarks.md``: BP 9.2, FA 13.06, DFA 12.81 %).

Every layer computes its ordinary forward pass; the mode decides the gradient it passes to
its input (the weight and bias gradients are always the exact ones for the error that
reached the layer's output), as in BioTorch's autograd functions:

* ``bp``: through the forward weights ``W`` (torch's own gradient);
* ``fa``: through a fixed random ``B`` of ``W``'s shape (``biotorch/autograd/fa/conv.py``,
  ``linear.py``: ``conv2d_input(weight_backward, grad_output)``, ``grad_output @ B``);
* ``dfa``: the layer's input gradient is replaced by the output error ``e = dL/dlogits``
  sent through a fixed random ``D`` of shape ``(n_out, C_in, k, k)`` (conv; ``e`` repeated
  over the layer's output positions, then ``conv2d_input``) or ``(n_out, in_features)``
  (linear; ``e @ D``): BioTorch's ``dfa_backward_hook`` (``biotorch/layers/dfa/conv.py``,
  ``linear.py``), the top layer included.

Initialisation is BioTorch's ``init: xavier``: forward and feedback weights Xavier-uniform,
biases 0. The input is resized to 32 x 32 (bilinear) and standardised with BioTorch's
Fashion-MNIST mean and std (0.2859, 0.3530).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from creditlab.compare.feedback import MODES, xavier_uniform
from creditlab.diagnostics.alignment import alignment
from creditlab.train import OptimizerLearner, evaluate_logits

MEAN, STD, SIZE = 0.2859, 0.3530, 32
"""BioTorch's Fashion-MNIST normalisation and target size (``datasets/fashion_mnist.py``)"""


class _Feedback(torch.autograd.Function):
    """The forward op of ``layer``; its backward uses the layer's mode for the input."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, layer: Any):
        ctx.save_for_backward(x, weight)
        ctx.layer = layer
        return layer.op(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor):
        x, weight = ctx.saved_tensors
        layer = ctx.layer
        gx = None
        if ctx.needs_input_grad[0]:
            if layer.mode == "bp":
                gx = layer.input_grad(weight, g, x.shape)
            elif layer.mode == "fa":
                gx = layer.input_grad(layer.feedback, g, x.shape)
            else:
                gx = layer.dfa_input_grad(layer.loss_gradient, g, x.shape)
        return gx, layer.weight_grad(x, g, weight.shape), layer.bias_grad(g), None


class _Layer(nn.Module):
    mode: str = "bp"
    loss_gradient: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Feedback.apply(x, self.weight, self.bias, self)


class FeedbackConv2d(_Layer):
    def __init__(self, c_in: int, c_out: int, k: int, n_out: int, generator: torch.Generator):
        super().__init__()
        fan_in, fan_out = c_in * k * k, c_out * k * k
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        self.weight = nn.Parameter(
            (torch.rand(c_out, c_in, k, k, generator=generator) * 2 - 1) * bound
        )
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.register_buffer(
            "feedback", (torch.rand(c_out, c_in, k, k, generator=generator) * 2 - 1) * bound
        )
        dfa_bound = math.sqrt(6.0 / (c_in * k * k + n_out * k * k))
        self.register_buffer(
            "dfa", (torch.rand(n_out, c_in, k, k, generator=generator) * 2 - 1) * dfa_bound
        )

    @staticmethod
    def op(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, w, b)

    @staticmethod
    def input_grad(w: torch.Tensor, g: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        return torch.nn.grad.conv2d_input(shape, w, g)

    def dfa_input_grad(self, e: torch.Tensor, g: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        spread = e[:, :, None, None].expand(-1, -1, g.shape[2], g.shape[3])
        return torch.nn.grad.conv2d_input(shape, self.dfa, spread)

    @staticmethod
    def weight_grad(x: torch.Tensor, g: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        return torch.nn.grad.conv2d_weight(x, shape, g)

    @staticmethod
    def bias_grad(g: torch.Tensor) -> torch.Tensor:
        return g.sum((0, 2, 3))


class FeedbackLinear(_Layer):
    def __init__(self, n_in: int, n_hid: int, n_out: int, generator: torch.Generator):
        super().__init__()
        self.weight = nn.Parameter(xavier_uniform(n_hid, n_in, generator))
        self.bias = nn.Parameter(torch.zeros(n_hid))
        self.register_buffer("feedback", xavier_uniform(n_hid, n_in, generator))
        self.register_buffer("dfa", xavier_uniform(n_out, n_in, generator))

    @staticmethod
    def op(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.linear(x, w, b)

    @staticmethod
    def input_grad(w: torch.Tensor, g: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        return g @ w

    def dfa_input_grad(self, e: torch.Tensor, g: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        return e @ self.dfa

    @staticmethod
    def weight_grad(x: torch.Tensor, g: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        return g.T @ x

    @staticmethod
    def bias_grad(g: torch.Tensor) -> torch.Tensor:
        return g.sum(0)


class FeedbackLeNet(nn.Module):
    """conv 1->6 (5x5), relu, max-pool 2, conv 6->16 (5x5), relu, max-pool 2, conv 16->120
    (5x5), relu, linear 120->84, relu, linear 84->10 on 32 x 32 inputs (BioTorch's
    ``LeNetMNIST``); ``mode`` is every layer's."""

    def __init__(self, mode: str = "fa", n_out: int = 10, generator: torch.Generator | None = None):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        g = generator or torch.Generator().manual_seed(0)
        self.layers = nn.ModuleList(
            [
                FeedbackConv2d(1, 6, 5, n_out, g),
                FeedbackConv2d(6, 16, 5, n_out, g),
                FeedbackConv2d(16, 120, 5, n_out, g),
                FeedbackLinear(120, 84, n_out, g),
                FeedbackLinear(84, n_out, n_out, g),
            ]
        )
        self.set_mode(mode)

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        for layer in self.layers:
            layer.mode = mode

    @staticmethod
    def prepare(x: torch.Tensor) -> torch.Tensor:
        """28 x 28 intensities in [0, 1] -> BioTorch's standardised 32 x 32 input."""
        x = x.reshape(len(x), 1, *x.shape[-2:])
        if x.shape[-1] != SIZE:
            x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        return (x - MEAN) / STD

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1, c2, c3, f1, f2 = self.layers
        h = F.max_pool2d(F.relu(c1(self.prepare(x))), 2)
        h = F.max_pool2d(F.relu(c2(h)), 2)
        h = F.relu(c3(h)).flatten(1)
        return f2(F.relu(f1(h)))

    def mode_gradient(self, x: torch.Tensor, y: torch.Tensor, mode: str) -> list[torch.Tensor]:
        """The gradient ``mode`` gives every parameter on ``(x, y)`` (weights, biases in
        layer order), without touching ``.grad``."""
        saved = self.mode
        self.set_mode(mode)
        try:
            with torch.enable_grad():
                logits = self(x)
                loss = F.cross_entropy(logits, y)
                if mode == "dfa":
                    self.broadcast(torch.autograd.grad(loss, logits, retain_graph=True)[0])
                return list(torch.autograd.grad(loss, list(self.parameters())))
        finally:
            self.set_mode(saved)

    def broadcast(self, e: torch.Tensor) -> None:
        """Hand every layer the output error (BioTorch's ``BioModule.forward``)."""
        for layer in self.layers:
            layer.loss_gradient = e.detach()

    def feedback_angles(self) -> dict[str, float]:
        """FA: angle in degrees between each layer's ``B`` and ``W`` (BioTorch's
        ``compute_matrix_angle``), layers 2-5 (layer 1's input gradient is never used)."""
        out = {}
        for k, layer in enumerate(self.layers[1:], start=2):
            cos = F.cosine_similarity(
                layer.feedback.flatten().double(), layer.weight.detach().flatten().double(), dim=0
            )
            out[f"feedback_angle/layer{k}"] = math.degrees(
                math.acos(max(-1.0, min(1.0, cos.item())))
            )
        return out


class LeNetLearner(OptimizerLearner):
    """:class:`FeedbackLeNet` on the learner protocol: the mode's gradients through autograd,
    then the optimiser and a per-step schedule."""

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        grads = self.net.mode_gradient(x, y, self.net.mode)
        self.apply_gradients(zip(self.net.parameters(), grads, strict=True))
        with torch.no_grad():
            return {"loss": F.cross_entropy(self.net(x), y).item()}

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        return evaluate_logits(self.net, x, y, batch_size=1000)

    def alignment_metrics(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        names = [n for n, _ in self.net.named_parameters()]
        mine = self.net.mode_gradient(x, y, self.net.mode)
        exact = self.net.mode_gradient(x, y, "bp")
        result = alignment(
            dict(zip(names, mine, strict=True)), dict(zip(names, exact, strict=True))
        )
        out = {"alignment_cosine": result.overall_cosine}
        for k in range(len(self.net.layers)):
            out[f"alignment_cosine/layer{k + 1}"] = result.cosine[f"layers.{k}.weight"]
        if self.net.mode == "fa":
            out.update(self.net.feedback_angles())
        return out
