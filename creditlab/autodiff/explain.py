"""``creditlab explain``: one training step of a tiny network, every number shown.

A network with layer sizes n₀-n₁-...-n_L (default 2-3-2) computes, for one input column x and
one target class y,

    z_l = W_l h_{l-1} + b_l,    h_l = f(z_l)   (l < L),    h_0 = x,
    L   = -log softmax(z_L)[y]                                (cross-entropy)

and takes one step of gradient descent, θ ← θ - lr · ∂L/∂θ. The trace is driven by the
engine's own graph: the forward values are listed in its topological order (each node after
its inputs), and the backward pass is the engine's backpropagation replayed one node at a
time in reverse order, showing for every node the gradient that arrives, each local
derivative, and the gradient it passes on. Then the chain rule is written out for one weight
with the numbers substituted (the classic backprop equations, computed separately from the
engine), checked against the engine's gradient and torch.autograd's, and the weight is
updated. ``--plot FILE.png`` draws the graph with every value and gradient on its nodes.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from creditlab.autodiff.drawing import draw_graph, layered_layout
from creditlab.autodiff.engine import Tensor, topological_order
from creditlab.autodiff.nn import ACTIVATIONS, SGD
from creditlab.autodiff.notation import expression, fmt, label, num, wrap
from creditlab.errors import UserError

MAX_WIDTH = 10  # widest layer explain accepts: it prints every value
TOLERANCE = 1e-9  # chain rule vs engine vs torch, in float64


# --- the network -----------------------------------------------------------------------------


@dataclass
class Network:
    """A tiny MLP on column vectors, built from engine Tensors so its graph can be traced."""

    sizes: tuple[int, ...]
    activation: str
    x: np.ndarray  # (n₀, 1)
    target: int
    params: dict[str, Tensor]  # "W1", "b1", ...: W_l is (n_l, n_{l-1}), b_l is (n_l, 1)
    nodes: dict[str, Tensor] = field(default_factory=dict)  # named values: x, z1, h1, ..., L

    @property
    def loss(self) -> Tensor:
        return self.nodes["L"]

    def forward(self) -> Tensor:
        """Build the graph afresh from the current parameters; returns the loss node."""
        h = self.nodes["x"] = Tensor(self.x, name="x", requires_grad=False)
        n_layers = len(self.sizes) - 1
        for layer in range(1, n_layers + 1):
            product = self.params[f"W{layer}"] @ h  # unnamed: shown as "W1·x"
            z = self.nodes[f"z{layer}"] = _named(product + self.params[f"b{layer}"], f"z{layer}")
            if layer < n_layers:
                h = self.nodes[f"h{layer}"] = _named(getattr(z, self.activation)(), f"h{layer}")
        self.nodes["L"] = _named(z.cross_entropy([self.target], axis=0), "L")
        return self.nodes["L"]


def _named(t: Tensor, name: str) -> Tensor:
    t.name = name
    return t


def init_params(sizes: Sequence[int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Weights uniform in ±1/√fan_in (torch's default), rounded to 2 decimals for reading."""
    params = {}
    for layer, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), 1):
        bound = 1 / math.sqrt(n_in)
        params[f"W{layer}"] = np.round(rng.uniform(-bound, bound, (n_out, n_in)), 2)
        params[f"b{layer}"] = np.round(rng.uniform(-bound, bound, (n_out, 1)), 2)
    return params


def build_network(
    sizes: Sequence[int],
    activation: str = "relu",
    seed: int = 0,
    x: Sequence[float] | None = None,
    target: int | None = None,
) -> Network:
    """The network, its input and its target, drawn from ``seed`` unless given."""
    rng = np.random.default_rng(seed)
    params = init_params(sizes, rng)
    x_arr = np.round(rng.uniform(-1, 1, sizes[0]), 2) if x is None else np.asarray(x, float)
    y = int(rng.integers(sizes[-1])) if target is None else target
    net = Network(
        tuple(sizes),
        activation,
        x_arr.reshape(-1, 1).astype(np.float64),
        y,
        {k: Tensor(v.astype(np.float64), name=k) for k, v in params.items()},
    )
    net.forward()
    return net


def torch_gradients(net: Network) -> tuple[float, dict[str, np.ndarray]]:
    """The same loss and gradients from torch.autograd (float64), as an independent check."""
    import torch

    params = {k: torch.tensor(p.data, requires_grad=True) for k, p in net.params.items()}
    h = torch.tensor(net.x)
    n_layers = len(net.sizes) - 1
    for layer in range(1, n_layers + 1):
        z = params[f"W{layer}"] @ h + params[f"b{layer}"]
        h = getattr(torch, net.activation)(z)
    loss = torch.nn.functional.cross_entropy(z.T, torch.tensor([net.target]))
    loss.backward()
    return loss.item(), {k: p.grad.numpy() for k, p in params.items()}


# --- parsing the command line ----------------------------------------------------------------


def parse_sizes(text: str) -> tuple[int, ...]:
    """``"2,3,2"`` -> (2, 3, 2); at least an input and an output layer, each 1..MAX_WIDTH."""
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise UserError(f"--sizes {text}: expected layer widths like 2,3,2") from None
    if len(sizes) < 2:
        raise UserError(f"--sizes {text}: give at least an input and an output width, e.g. 2,3,2")
    if not all(1 <= s <= MAX_WIDTH for s in sizes) or sizes[-1] < 2:
        raise UserError(
            f"--sizes {text}: widths must be 1..{MAX_WIDTH} (explain prints every value) "
            "and the output needs at least 2 classes"
        )
    return sizes


def parse_floats(text: str, what: str, n: int) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"{what} {text}: expected {n} numbers separated by commas") from None
    if len(values) != n or not all(math.isfinite(v) for v in values):
        raise UserError(f"{what} {text}: expected {n} finite numbers, one per input unit")
    return values


_WEIGHT = re.compile(r"^\s*([Wb])(\d+)\s*\[\s*(\d+)\s*(?:,\s*(\d+)\s*)?\]\s*$")


def parse_weight(text: str, sizes: Sequence[int]) -> tuple[str, tuple[int, int]]:
    """``"W1[0,1]"`` -> ("W1", (0, 1)); ``"b2[1]"`` -> ("b2", (1, 0)). Checked against sizes."""
    n_layers = len(sizes) - 1
    shapes = [f"W{i} ({sizes[i]}x{sizes[i - 1]})" for i in range(1, n_layers + 1)]
    have = f"the {'-'.join(map(str, sizes))} network has {', '.join(shapes)} and b1..b{n_layers}"
    match = _WEIGHT.match(text)
    if not match:
        raise UserError(f"--weight {text}: expected a name like W1[0,1] or b1[0]; {have}")
    kind, layer, i, j = match[1], int(match[2]), int(match[3]), match[4]
    if not 1 <= layer <= n_layers:
        raise UserError(f"--weight {text}: there is no layer {layer}; {have}")
    if (kind == "W") != (j is not None):
        raise UserError(f"--weight {text}: W needs two indices (W1[0,1]), b one (b1[0]); {have}")
    rows, cols = sizes[layer], sizes[layer - 1] if kind == "W" else 1
    col = int(j) if j is not None else 0
    if not (0 <= i < rows and 0 <= col < cols):
        raise UserError(f"--weight {text}: index out of range; {have} (indices from 0)")
    return f"{kind}{layer}", (i, col)


# --- text: numbers, labels, colour -----------------------------------------------------------


class Style:
    """ANSI colour when writing to a terminal (and NO_COLOR is unset), plain text otherwise."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def head(self, text: str) -> str:
        return self._wrap("1", text)

    def name(self, text: str) -> str:
        return self._wrap("36", text)

    def grad(self, text: str) -> str:
        return self._wrap("33", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def ok(self, text: str) -> str:
        return self._wrap("32", text)

    def bad(self, text: str) -> str:
        return self._wrap("31", text)


# --- local derivatives, one rule per operation (independent of the engine's closures) -------


def local_derivative(node: Tensor, k: int, net: Network) -> tuple[str, np.ndarray | None, str]:
    """For input ``k`` of ``node``: (the local derivative as a formula, its value or None, how
    the gradient passes through it). Written from the math, not read off the engine."""
    out, inp = label(node), label(node._prev[k])
    x = node._prev[k].data
    d_out, d_in = f"∂L/∂{wrap(out)}", f"∂L/∂{wrap(inp)}"
    if node._op == "+":
        return f"∂{wrap(out)}/∂{wrap(inp)} = 1", None, f"{d_in} = {d_out} · 1"
    if node._op == "@":
        a, b = (label(p) for p in node._prev)
        if k == 0:  # the outer product: row i of ∂L/∂W is ∂L/∂out[i] times the input
            return (
                f"∂{wrap(out)}[i]/∂{a}[i,j] = {b}[j]",
                node._prev[1].data,
                f"{d_in} = {d_out} · {b}ᵀ",
            )
        return (
            f"∂{wrap(out)}[i]/∂{b}[j] = {a}[i,j]",
            node._prev[0].data,
            f"{d_in} = {a}ᵀ · {d_out}",
        )
    if node._op in ACTIVATIONS:  # the same f'(z) that the chain rule below substitutes
        formula = {"relu": f"1[{inp} > 0]", "tanh": f"1 - {out}²", "sigmoid": f"{out}(1 - {out})"}
        local = activation_derivative(node._op, x)
        return f"∂{out}/∂{inp} = {formula[node._op]}", local, f"{d_in} = {d_out} ⊙ local"
    if node._op == "cross_entropy":
        local = _softmax(x) - _onehot(net.target, x.shape[0])
        return f"∂{out}/∂{inp} = softmax({inp}) - onehot(y)", local, f"{d_in} = {d_out} · local"
    return f"∂{out}/∂{inp} (the engine's rule for {node._op})", None, f"{d_in}"


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def _onehot(y: int, n: int) -> np.ndarray:
    return np.eye(n)[:, [y]]


def activation_derivative(name: str, z: np.ndarray) -> np.ndarray:
    """f'(z) for the hidden nonlinearity, from the math: one place for every f' printed."""
    if name == "relu":
        return (z > 0).astype(float)  # 1 where z > 0, else 0
    if name == "tanh":
        return 1 - np.tanh(z) ** 2
    if name == "sigmoid":
        s = np.exp(-np.logaddexp(0, -z))  # σ(z) = 1/(1 + e⁻ᶻ), without overflow
        return s * (1 - s)
    raise ValueError(f"no derivative for the activation {name!r}; add one with the others")


# --- the trace -------------------------------------------------------------------------------


@dataclass
class BackwardStep:
    node: Tensor
    passed: list[tuple[int, np.ndarray]]  # (index of the input, the gradient it received)


def replay_backward(loss: Tensor) -> list[BackwardStep]:
    """The engine's ``backward()``, one node at a time: seed ∂L/∂L = 1, then in reverse
    topological order call each node's own backward rule and record what it passed on."""
    order = topological_order(loss)
    for node in order:
        node.grad = None
    loss.grad = np.ones_like(loss.data)
    steps = []
    for node in reversed(order):
        if not node._prev or node.grad is None:
            continue
        before = [p.grad for p in node._prev]
        node._backward(node.grad)
        passed = []
        for k, (p, old) in enumerate(zip(node._prev, before, strict=True)):
            if p.requires_grad and p.grad is not None and p not in node._prev[:k]:
                passed.append((k, p.grad if old is None else p.grad - old))
        steps.append(BackwardStep(node, passed))
    return steps


@dataclass
class Explanation:
    """What one ``explain`` run found (the numbers the text shows)."""

    weight: str
    index: tuple[int, int]
    chain_rule: float
    engine: float
    torch: float
    before: float
    after: float
    loss_before: float
    loss_after: float


def chain_rule(
    net: Network, weight: str, index: tuple[int, int], s: Style
) -> tuple[list[str], float]:
    """The backprop equations for one weight with the numbers substituted, and their value.

    With δ_l = ∂L/∂z_l:  δ_L = softmax(z_L) - onehot(y),  δ_l = (W_{l+1}ᵀ δ_{l+1}) ⊙ f'(z_l),
    and ∂L/∂W_l[i,j] = δ_l[i] · h_{l-1}[j],  ∂L/∂b_l[i] = δ_l[i].
    """
    n_layers = len(net.sizes) - 1
    kind, layer, (i, j) = weight[0], int(weight[1:]), index
    z = {l: net.nodes[f"z{l}"].data for l in range(1, n_layers + 1)}
    h = {0: net.x, **{l: net.nodes[f"h{l}"].data for l in range(1, n_layers)}}
    hname = {0: "x", **{l: f"h{l}" for l in range(1, n_layers)}}
    delta = {n_layers: _softmax(z[n_layers]) - _onehot(net.target, net.sizes[-1])}
    for l in range(n_layers - 1, 0, -1):
        w_above = net.params[f"W{l + 1}"].data
        delta[l] = (w_above.T @ delta[l + 1]) * activation_derivative(net.activation, z[l])
    f = net.activation
    last = "1" if kind == "b" else f"{hname[layer - 1]}[{j}]"
    last_value = 1.0 if kind == "b" else float(h[layer - 1][j, 0])
    target = f"∂L/∂{weight_label(weight, index)}"
    dz_dw = f"∂z{layer}[{i}]/∂{target[4:]}"
    lines = []
    if layer == n_layers:
        value = float(delta[layer][i, 0]) * last_value
        lines.append(f"{target} = ∂L/∂z{layer}[{i}] · {dz_dw}")
        lines.append(f"{' ' * len(target)} = (softmax(z{layer}) - onehot(y))[{i}] · {last}")
        lines.append(f"{' ' * len(target)} = ({num(delta[layer][i, 0])}) · ({num(last_value)})")
    else:
        up = layer + 1
        w_above = net.params[f"W{up}"].data
        k_terms = range(net.sizes[up])
        deriv = float(activation_derivative(f, z[layer])[i, 0])
        value = float(delta[up][:, 0] @ w_above[:, i]) * deriv * last_value
        pad = " " * len(target)
        lines.append(
            f"{target} = (Σₖ ∂L/∂z{up}[k] · ∂z{up}[k]/∂h{layer}[{i}]) · "
            f"∂h{layer}[{i}]/∂z{layer}[{i}] · {dz_dw}"
        )
        symbolic = " + ".join(f"∂L/∂z{up}[{k}]·W{up}[{k},{i}]" for k in k_terms)
        lines.append(f"{pad} = ({symbolic}) · {f}'(z{layer}[{i}]) · {last}")
        numeric = " + ".join(f"({num(delta[up][k, 0])})({num(w_above[k, i])})" for k in k_terms)
        lines.append(f"{pad} = ({numeric}) · ({num(deriv)}) · ({num(last_value)})")
        if deriv == 0:
            lines.append(
                f"{pad}   (h{layer}[{i}] is switched off, {f}'(z{layer}[{i}]) = 0: no gradient "
                "reaches this weight from this example)"
            )
    lines.append(f"{' ' * len(target)} = {s.grad(f'{value:.10f}')}")
    lines.append("  where ∂L/∂z_l are the backprop equations' δ_l, computed layer by layer:")
    lines.append(
        f"    ∂L/∂z{n_layers} = softmax(z{n_layers}) - onehot(y) = {fmt(delta[n_layers])[0]}"
    )
    for l in range(n_layers - 1, layer, -1):
        lines.append(f"    ∂L/∂z{l} = (W{l + 1}ᵀ ∂L/∂z{l + 1}) ⊙ {f}'(z{l}) = {fmt(delta[l])[0]}")
    return lines, value


class Printer:
    """Where the trace goes: ``say`` writes one line, ``s`` colours it (or not)."""

    def __init__(self, out: TextIO, style: Style):
        self.out, self.s = out, style

    def say(self, text: str = "") -> None:
        print(text, file=self.out)

    def section(self, title: str, note: str) -> None:
        self.say()
        self.say(self.s.head(title) + self.s.dim(f"  ({note})"))


def print_forward(net: Network, p: Printer) -> None:
    """Every node of the graph with its value, column by column (a topological order)."""
    place = layered_layout(net.loss)
    order = sorted(place, key=lambda node: place[node])
    names, exprs = [label(n) for n in order], [expression(n) for n in order]
    width, ewidth = max(map(len, names)), max(map(len, exprs))
    p.section("FORWARD PASS", "every node of the graph, each after its inputs")
    for node, name, expr in zip(order, names, exprs, strict=True):
        lines = fmt(node.data)
        p.say(f"  {p.s.name(name.ljust(width))} = {expr.ljust(ewidth)}   {lines[0]}")
        for line in lines[1:]:
            p.say(f"  {' ' * width}   {' ' * ewidth}   {line}")


def print_backward(net: Network, p: Printer) -> None:
    """The engine's backpropagation replayed node by node: for each node, the gradient that
    arrives, and for each input the local derivative and the gradient passed on."""
    s = p.s
    rows: list[tuple[str, str, list[str] | None, bool]] = []  # (tag, formula, value, is grad)
    for step in replay_backward(net.loss):
        node = step.node
        at = f"{s.name(label(node))} = {expression(node)}" + s.dim(f"   [op {node._op}]")
        rows.append(("at", at, None, False))
        rows.append(("arriving", f"∂L/∂{wrap(label(node))}", fmt(node.grad), True))
        for k, passed in step.passed:
            formula, value, relation = local_derivative(node, k, net)
            rows.append(("local", formula, None if value is None else fmt(value), False))
            rows.append(("passes", relation, fmt(passed), True))
    lhs = max(len(formula) for tag, formula, _, _ in rows if tag != "at")
    p.section("BACKWARD PASS", "reverse order: gradient arriving × local derivative = passed on")
    p.say(f"  ∂L/∂L = 1 {s.dim('(the seed)')}")
    for tag, formula, value, is_grad in rows:
        if tag == "at":
            p.say(f"  at {formula}")
        elif value is None:
            p.say(f"      {tag:9s} {formula}")
        else:
            paint = s.grad if is_grad else str
            p.say(f"      {tag:9s} {formula.ljust(lhs)} = {paint(value[0])}")
            for line in value[1:]:
                p.say(f"      {'':9s} {'':{lhs}}   {paint(line)}")


def print_chain_rule(
    net: Network, weight: str, index: tuple[int, int], p: Printer
) -> tuple[float, float, float]:
    """The chain rule for one weight, then the same number from the engine and from torch."""
    s = p.s
    engine_grads = {k: t.grad.copy() for k, t in net.params.items()}  # from the replay
    for t in net.params.values():
        t.grad = None  # leaves accumulate: run the ordinary backward() from zero
    net.loss.backward()
    assert all(np.array_equal(engine_grads[k], t.grad) for k, t in net.params.items())
    torch_loss, torch_grads = torch_gradients(net)
    lines, chain_value = chain_rule(net, weight, index, s)
    engine_value = float(net.params[weight].grad[index])
    torch_value = float(torch_grads[weight][index])
    shown = weight_label(weight, index)
    p.section(f"CHAIN RULE FOR {shown}", "the backprop equations for one weight")
    for line in lines:
        p.say(f"  {line}")
    p.say()
    p.say(f"  {'chain rule':<16} ∂L/∂{shown} = {chain_value: .12f}")
    mark = s.ok("✓") if abs(engine_value - chain_value) <= TOLERANCE else s.bad("✗")
    p.say(f"  {'engine .grad':<16} ∂L/∂{shown} = {engine_value: .12f}  {mark}")
    agree = abs(torch_value - chain_value) <= TOLERANCE
    mark = s.ok("✓ all three agree") if agree else s.bad("✗ they disagree")
    p.say(f"  {'torch.autograd':<16} ∂L/∂{shown} = {torch_value: .12f}  {mark}")
    if abs(torch_loss - float(net.loss.data)) > TOLERANCE:
        p.say(s.bad(f"  torch's loss {torch_loss} differs from the engine's {net.loss.data}"))
    return chain_value, engine_value, torch_value


def weight_label(weight: str, index: tuple[int, int]) -> str:
    """("W1", (0, 1)) -> "W1[0,1]"; ("b1", (2, 0)) -> "b1[2]"."""
    return f"{weight}[{index[0]},{index[1]}]" if weight[0] == "W" else f"{weight}[{index[0]}]"


def explain(
    sizes: Sequence[int] = (2, 3, 2),
    activation: str = "relu",
    seed: int = 0,
    lr: float = 0.1,
    weight: str = "W1[0,1]",
    x: Sequence[float] | None = None,
    target: int | None = None,
    plot: str | Path | None = None,
    out: TextIO | None = None,
    color: bool | None = None,
) -> Explanation:
    """Train the network one step and print every value, local derivative and gradient,
    the chain rule for ``weight`` and its update; draw the graph to ``plot`` if given.
    Colour by default only when ``out`` (stdout) is a terminal and NO_COLOR is unset."""
    out = out if out is not None else sys.stdout
    if color is None:
        color = out.isatty() and not os.environ.get("NO_COLOR")
    if activation not in ACTIVATIONS:
        raise UserError(f"--activation {activation}: choose one of {', '.join(ACTIVATIONS)}")
    sizes = tuple(sizes)
    wname, index = parse_weight(weight, sizes)
    if target is not None and not 0 <= target < sizes[-1]:
        raise UserError(f"--target {target}: the output has classes 0..{sizes[-1] - 1}")
    if x is not None and len(x) != sizes[0]:
        raise UserError(f"--input: expected {sizes[0]} numbers, one per input unit, got {len(x)}")
    if plot is not None and Path(plot).suffix.lower() != ".png":
        raise UserError(f"--plot {plot}: the file name must end in .png")
    net = build_network(sizes, activation, seed, x, target)
    p = Printer(out, Style(color))

    arch = "-".join(map(str, sizes))
    p.say(p.s.head(f"creditlab explain: one step of backpropagation through a {arch} network"))
    p.say(f"{activation} hidden units, softmax cross-entropy loss, gradient descent (lr {lr:g})")
    p.say(f"input x = {fmt(net.x)[0]}, target class y = {net.target}; vectors are columns")
    p.say(f"weights, biases (and input and target, unless given) drawn with --seed {seed}")
    print_forward(net, p)
    print_backward(net, p)
    chain_value, engine_value, torch_value = print_chain_rule(net, wname, index, p)
    if plot is not None:  # drawn before the update: this step's values and gradients
        title = (
            f"the computation graph of one training step: {arch} network, {activation}, "
            f"target y = {net.target}   (value = forward pass, grad = ∂L/∂node from backprop)"
        )
        draw_graph(net.loss, title, Path(plot))

    before, loss_before = float(net.params[wname].data[index]), float(net.loss.data)
    SGD(net.params.values(), lr=lr).step()
    after, loss_after = float(net.params[wname].data[index]), float(net.forward().data)
    p.section("UPDATE", "every parameter θ ← θ - lr · ∂L/∂θ")
    shown = weight_label(wname, index)
    p.say(f"  {shown} ← {num(before)} - {lr:g} · ({num(engine_value)}) = {p.s.grad(num(after))}")
    p.say(f"  loss L: {loss_before:.6f} before the step → {loss_after:.6f} after it")
    if plot is not None:
        p.say(f"  graph (values and gradients before the update) drawn to {plot}")
    return Explanation(
        wname, index, chain_value, engine_value, torch_value, before, after, loss_before, loss_after
    )


# --- the command -----------------------------------------------------------------------------


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``explain`` on an argparse subparsers object; ``func`` runs it."""
    p = subparsers.add_parser(
        "explain",
        help="one training step of a tiny network, every value and gradient printed",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--sizes", default="2,3,2", help="layer widths, input first (default 2,3,2)")
    p.add_argument("--activation", default="relu", choices=ACTIVATIONS, help="hidden nonlinearity")
    p.add_argument("--seed", type=int, default=0, help="draws the weights, input and target")
    p.add_argument("--lr", type=float, default=0.1, help="learning rate of the step (0.1)")
    p.add_argument(
        "--weight", default="W1[0,1]", help="write the chain rule for this weight (W1[0,1])"
    )
    p.add_argument(
        "--input", metavar="X", help="the input, e.g. --input=-0.5,1.2 (default: random)"
    )
    p.add_argument("--target", type=int, help="the target class (default: random)")
    p.add_argument("--plot", metavar="FILE.png", help="also draw the graph to this PNG file")
    p.set_defaults(func=cmd_explain)
    return p


def cmd_explain(args: argparse.Namespace) -> int:
    sizes = parse_sizes(args.sizes)
    x = parse_floats(args.input, "--input", sizes[0]) if args.input else None
    explain(sizes, args.activation, args.seed, args.lr, args.weight, x, args.target, args.plot)
    return 0


def explain_text(**kwargs: Any) -> str:
    """``explain`` with its output captured as a string (no colour)."""
    buffer = io.StringIO()
    explain(out=buffer, color=False, **kwargs)
    return buffer.getvalue()
