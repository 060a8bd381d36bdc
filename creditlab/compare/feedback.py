"""Backprop, feedback alignment and direct feedback alignment as three modes of one network.

The network is the plain MLP of :func:`creditlab.models.mlp` (so its parameter names and its
exact gradient are the backprop baseline's); the mode decides only which matrix carries the
error down to each hidden layer, as BioTorch's converter swaps a layer for one that carries
its own feedback weights (``biotorch/layers/fa/linear.py``, ``biotorch/layers/dfa/linear.py``).

With pre-activations :math:`a_l = W_l h_{l-1} + b_l`, activities :math:`h_l = f(a_l)`,
:math:`h_0 = x` and the output error of the mean cross-entropy
:math:`e = \\partial L / \\partial a_L = (\\mathrm{softmax}(a_L) - \\mathrm{onehot}(y)) / n`
(or, for the teacher-student regression, the mean squared error's :math:`2 (a_L - y) / (n d)`):

.. math::

    \\delta_L = e, \\qquad
    \\delta_l = f'(a_l) \\odot \\begin{cases}
        \\delta_{l+1} W_{l+1} & \\text{bp (Rumelhart et al. 1986)} \\\\
        \\delta_{l+1} B_{l+1} & \\text{fa (Lillicrap et al. 2016, Eq. 1)} \\\\
        e \\, D_l              & \\text{dfa (Nokland 2016, Eq. 3)}
    \\end{cases}

and every layer's update is :math:`\\Delta W_l = -\\delta_l^\\top h_{l-1}`,
:math:`\\Delta b_l = -\\sum_n \\delta_l`: the same outer product of a postsynaptic error and a
presynaptic activity. :math:`B_{l+1}` has :math:`W_{l+1}`'s shape (BioTorch's
``weight_backward``), :math:`D_l` is ``n_out x n_l`` (BioTorch's ``weight_dfa`` of the layer
above); both are drawn once, Xavier-uniform like BioTorch's, and never learn.

>>> import torch
>>> net = FeedbackNetwork(4, [5, 3], 2, mode="fa", generator=torch.Generator().manual_seed(0))
>>> update = net.update(torch.randn(6, 4), torch.tensor([0, 1, 0, 1, 1, 0]))
>>> sorted(update)
['1.bias', '1.weight', '3.bias', '3.weight', '5.bias', '5.weight']
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from creditlab.diagnostics.alignment import gradient_alignment
from creditlab.models import mlp
from creditlab.train import OptimizerLearner, evaluate_logits

Mode = Literal["bp", "fa", "dfa"]
MODES: tuple[str, ...] = ("bp", "fa", "dfa")
Loss = Literal["cross_entropy", "mse"]
LOSSES = {"cross_entropy": nn.functional.cross_entropy, "mse": nn.functional.mse_loss}
"""the losses whose output error :meth:`FeedbackNetwork.output_error` writes out"""


def activation_derivative(name: str, a: torch.Tensor) -> torch.Tensor:
    """:math:`f'(a)` of the hidden nonlinearity ``name`` (relu, tanh or sigmoid)."""
    if name == "relu":
        return (a > 0).to(a.dtype)
    if name == "tanh":
        return 1 - torch.tanh(a) ** 2
    s = torch.sigmoid(a)
    return s * (1 - s)


def xavier_uniform(rows: int, cols: int, generator: torch.Generator) -> torch.Tensor:
    """Glorot & Bengio's uniform draw, ``U(-r, r)`` with ``r = sqrt(6 / (rows + cols))``
    (BioTorch's ``nn.init.xavier_uniform_`` of the feedback weights), from ``generator``."""
    bound = math.sqrt(6.0 / (rows + cols))
    return (torch.rand(rows, cols, generator=generator) * 2 - 1) * bound


class FeedbackNetwork:
    """The MLP ``n_in -> hidden -> n_out`` and the feedback matrices of its ``mode``.

    ``model`` is an ordinary :class:`torch.nn.Sequential` (its exact gradient is the
    reference the alignment measures against); ``feedback[k]`` is the matrix that carries
    the error into hidden layer ``k`` (0-based): :math:`B_{k+2}` for fa, :math:`D_{k+1}` for
    dfa, none for bp (which reads the forward weights).
    """

    def __init__(
        self,
        n_in: int,
        hidden: Sequence[int],
        n_out: int,
        *,
        mode: Mode = "fa",
        activation: str = "relu",
        generator: torch.Generator | None = None,
        loss: Loss = "cross_entropy",
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {tuple(LOSSES)}, not {loss!r}")
        self.mode, self.activation, self.loss = mode, activation, loss
        generator = generator or torch.Generator().manual_seed(0)
        self.model = mlp(n_in, hidden, n_out, activation)
        self.linears = [m for m in self.model if isinstance(m, nn.Linear)]
        self.names = [
            name[: -len(".weight")] for name, _ in self.model.named_parameters() if "weight" in name
        ]
        widths = [n_in, *hidden, n_out]
        self.feedback: list[torch.Tensor] = []
        for k in range(len(hidden)):  # the matrix that feeds hidden layer k its error
            if mode == "fa":  # B_{k+2}: the shape of the forward weights above layer k
                self.feedback.append(xavier_uniform(widths[k + 2], widths[k + 1], generator))
            elif mode == "dfa":  # D_{k+1}: from the output straight to layer k
                self.feedback.append(xavier_uniform(n_out, widths[k + 1], generator))

    def to(self, device: torch.device | str) -> FeedbackNetwork:
        self.model.to(device)
        self.feedback = [b.to(device) for b in self.feedback]
        return self

    def parameters(self) -> Any:
        return self.model.parameters()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Pre-activations ``a[l]`` of every layer and activities ``h[l]`` (``h[0]`` the
        flattened input), by the same linear layers as ``model``."""
        h, a = [x.flatten(1)], []
        act = self.model[2] if len(self.linears) > 1 else None  # the hidden nonlinearity
        for i, linear in enumerate(self.linears):
            a.append(linear(h[-1]))
            if i < len(self.linears) - 1:
                h.append(act(a[-1]))
        return a, h

    @torch.no_grad()
    def update(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The rule's proposed update ``Δθ`` (a descent direction; learning rate 1) on the
        batch, named like ``model``'s parameters. Nothing is changed."""
        a, h = self.forward(x)
        e = self.output_error(a[-1], y)
        deltas = [e]
        for k in range(len(self.linears) - 2, -1, -1):  # hidden layers, top to bottom
            if self.mode == "bp":
                g = deltas[0] @ self.linears[k + 1].weight
            elif self.mode == "fa":
                g = deltas[0] @ self.feedback[k]
            else:
                g = e @ self.feedback[k]
            deltas.insert(0, g * activation_derivative(self.activation, a[k]))
        update = {}
        for name, delta, pre in zip(self.names, deltas, h, strict=True):
            update[f"{name}.weight"] = -(delta.T @ pre)
            update[f"{name}.bias"] = -delta.sum(0)
        return update

    def output_error(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``e = dL/da_L``: for the mean cross-entropy ``(softmax(a_L) - onehot(y)) / n``;
        for the mean squared error over all outputs (torch's ``mse_loss``, the
        teacher-student task) ``2 (a_L - y) / (n d)``."""
        if self.loss == "mse":
            return 2 * (out - y) / y.numel()
        e = torch.softmax(out, dim=1)
        e[torch.arange(len(y)), y] -= 1
        return e / len(y)

    def weight_angles(self) -> dict[str, float]:
        """Angle in degrees between each feedback matrix and the forward path it stands for:
        fa, :math:`B_{l+1}` against :math:`W_{l+1}` (BioTorch's ``compute_matrix_angle``);
        dfa, :math:`D_l` against the product :math:`W_L \\cdots W_{l+1}` (the linear part of
        backprop's path from the output to layer l). Keyed by the hidden layer's index."""
        angles = {}
        with torch.no_grad():
            for k, b in enumerate(self.feedback):
                if self.mode == "fa":
                    w = self.linears[k + 1].weight
                else:
                    w = self.linears[-1].weight
                    for linear in reversed(self.linears[k + 1 : -1]):
                        w = w @ linear.weight
                cos = torch.nn.functional.cosine_similarity(
                    b.flatten().double(), w.flatten().double(), dim=0
                )
                angles[f"layer{k + 1}"] = math.degrees(math.acos(max(-1.0, min(1.0, cos.item()))))
        return angles

    # --- the probe of :func:`creditlab.compare.locality.check_locality` --------------------
    @property
    def n_hidden(self) -> int:
        return len(self.linears) - 1

    def hidden_names(self, layer: int) -> list[str]:
        """The parameters whose update hidden layer ``layer`` (0-based) receives."""
        return [f"{self.names[layer]}.weight", f"{self.names[layer]}.bias"]

    def unit_count(self, layer: int) -> int:
        return self.linears[layer].out_features

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    @torch.no_grad()
    def rescale_units(self, layer: int, scale: torch.Tensor) -> None:
        """Multiply hidden layer ``layer``'s (0-based) units' incoming weights and biases by
        ``scale > 0`` and divide their outgoing weights by it: with a positively homogeneous
        activation (relu) the network computes the same function."""
        below, above = self.linears[layer], self.linears[layer + 1]
        below.weight.mul_(scale[:, None])
        below.bias.mul_(scale)
        above.weight.div_(scale[None, :])

    @torch.no_grad()
    def redraw_feedback(self, keep: int, generator: torch.Generator) -> None:
        """Draw every feedback matrix again except the one into hidden layer ``keep``."""
        for k, b in enumerate(self.feedback):
            if k != keep:
                b.copy_(xavier_uniform(*b.shape, generator).to(b))

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "feedback": [b.clone() for b in self.feedback]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        for b, saved in zip(self.feedback, state["feedback"], strict=True):
            b.copy_(saved)


class FeedbackClassifier(OptimizerLearner):
    """A :class:`FeedbackNetwork` on the :class:`creditlab.train.Learner` protocol: each
    step hands the mode's update to a torch optimiser as the negative gradient (so every
    mode gets the same optimiser and schedule as the backprop baseline)."""

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        update = self.net.update(x, y)
        params = dict(self.net.model.named_parameters())
        self.apply_gradients((params[name], -delta) for name, delta in update.items())
        with torch.no_grad():
            out = self.net.model(x)
        return {"loss": LOSSES[self.net.loss](out, y).item()}

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        return evaluate_logits(self.net.model, x, y)

    def proposed_update(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net.update(x, y)

    def locality_probe(self) -> FeedbackNetwork:
        """A copy of the network to perturb (see :mod:`creditlab.compare.locality`)."""
        return copy.deepcopy(self.net)

    def alignment_metrics(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Cosine of this mode's update with ``-∇L`` (exact, autograd) per weight matrix and
        overall (all parameters), and the feedback-weight angles."""
        update = self.net.update(x, y)
        result = gradient_alignment(self.net.model, x, y, update, LOSSES[self.net.loss])
        out = {"alignment_cosine": result.overall_cosine}
        for k, name in enumerate(self.net.names):
            out[f"alignment_cosine/layer{k + 1}"] = result.cosine[f"{name}.weight"]
        out.update({f"feedback_angle/{k}": v for k, v in self.net.weight_angles().items()})
        return out
