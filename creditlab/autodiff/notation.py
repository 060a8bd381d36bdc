"""How ``creditlab explain`` writes numbers and graph nodes: aligned numbers, arrays as text
lines, a node's label (its name, or its expression from the graph) and what computed it."""

from __future__ import annotations

import numpy as np

from creditlab.autodiff.engine import Tensor


def num(v: float, digits: int = 4) -> str:
    """A number with a sign column: ' 0.5000' / '-0.5000'."""
    return f"{float(v): .{digits}f}"


def fmt(a: np.ndarray, digits: int = 4) -> list[str]:
    """An array as text lines: a scalar, a vector (columns printed flat) or matrix rows."""
    a = np.asarray(a, dtype=float)
    if a.size == 1:
        return [num(a.item(), digits)]
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim == 1:
        return ["[" + ", ".join(num(v, digits) for v in a) + "]"]
    rows = ["[" + ", ".join(num(v, digits) for v in row) + "]" for row in a]
    if len(rows) == 1:  # a matrix of one row, e.g. W1 of a 2-1-2 network
        return ["[" + rows[0] + "]"]
    return ["[" + rows[0]] + [" " + r for r in rows[1:-1]] + [" " + rows[-1] + "]"]


_SYMBOLS = {"@": "·", "+": " + ", "-": " - ", "*": " * ", "/": " / "}


def label(node: Tensor) -> str:
    """A node's name, or its expression built from the graph (``W1·x``) when it has none."""
    if node.name:
        return node.name
    if node._op in _SYMBOLS and len(node._prev) == 2:
        return _SYMBOLS[node._op].join(label(p) for p in node._prev)
    return f"{node._op}({', '.join(label(p) for p in node._prev)})"


def expression(node: Tensor) -> str:
    """What computed a node, in terms of its inputs' labels."""
    if not node._prev:
        return "input" if not node.requires_grad else "parameter"
    if node._op == "cross_entropy":
        return f"-log softmax({label(node._prev[0])})[y]"
    if node._op == "@":
        return " @ ".join(label(p) for p in node._prev)
    if node._op in _SYMBOLS:
        return _SYMBOLS[node._op].join(label(p) for p in node._prev)
    return f"{node._op}({', '.join(label(p) for p in node._prev)})"


def wrap(text: str) -> str:
    """Parenthesise a compound label inside ∂(...)."""
    return f"({text})" if any(c in text for c in "·+-*/ ") else text
