"""A reverse-mode automatic differentiation engine on NumPy arrays, small enough to read in one
sitting.

Backpropagation is the chain rule, applied in an order that never computes anything twice. If
the loss L depends on x only through y = f(x), then

    dL/dx = dL/dy · dy/dx        (upstream gradient × local derivative)

Every operation below therefore does two things: it computes its output (the forward pass)
and, right beside it, defines a small closure ``_backward(grad)`` that receives ``grad`` =
dL/d(out) and adds dL/d(input) = dL/d(out) · d(out)/d(input) to each input's ``.grad``. The
derivative sits next to the thing it differentiates. :meth:`Tensor.backward` visits the graph
in reverse topological order, so a node's gradient is complete (every use of it has reported
back) before the node passes it on.

The shape is micrograd's (Karpathy's 94-line scalar engine): ``data``, ``grad``, ``_prev``
(the inputs) and ``_op`` (what made it, so the graph can be printed and drawn by
``creditlab explain``). Two things differ. Values are NumPy arrays, not scalars, so an MNIST
MLP trains at the speed of the underlying matrix products. And the topological sort is
iterative, so a graph 10,000 operations deep is no problem for Python's recursion limit.

Conventions: the dtype follows the inputs (float64 for the tests against torch, float32 for
training); Python numbers become constants of the other operand's dtype. A gradient array may
be shared between nodes (an addition hands the same array to both inputs), so treat ``.grad``
as read-only; accumulation always makes a new array and never writes into a shared one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["Tensor", "topological_order", "unbroadcast"]


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` down to ``shape``: the backward of NumPy broadcasting, in one place.

    Broadcasting reuses an input along new leading axes and along axes of length 1 (a bias of
    shape (3,) added to a batch of shape (100, 3) is used 100 times). A value used many times
    receives the sum of the gradients of all its uses, so the backward of a broadcast is a sum
    over exactly those axes.
    """
    if grad.shape == shape:
        return grad
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape))))  # the new leading axes
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return np.asarray(grad.sum(axis=stretched, keepdims=True) if stretched else grad)


def _swap(a: np.ndarray) -> np.ndarray:
    """The matrix transpose of the last two axes (a view)."""
    return a.swapaxes(-1, -2)


class Tensor:
    """An array that remembers how it was computed, so that it can send gradients back.

    >>> x = Tensor([1.0, 2.0, 3.0])
    >>> y = (x * x).sum()  # y = Σ x², so dy/dx = 2x
    >>> y.backward()
    >>> x.grad
    array([2., 4., 6.])
    """

    __array_ufunc__ = None  # `ndarray + Tensor` calls Tensor.__radd__ instead of looping

    def __init__(
        self,
        data: Any,
        _prev: tuple[Tensor, ...] = (),
        _op: str = "",
        *,
        requires_grad: bool = True,
        name: str = "",
    ):
        data = np.asarray(data)
        if not np.issubdtype(data.dtype, np.floating):
            data = data.astype(np.float64)
        self.data: np.ndarray = data
        self.grad: np.ndarray | None = None  # dL/d(self), filled in by backward()
        self._prev = _prev  # the tensors this one was computed from
        self._op = _op  # the operation that computed it ("" for a leaf)
        self._backward: Callable[[np.ndarray], None] = _leaf
        self.requires_grad = requires_grad  # False for data and constants: no gradient kept
        self.name = name  # optional label, for printing and drawing the graph

    # --- plumbing shared by every operation ----------------------------------------------
    def _result(self, data: np.ndarray, prev: tuple[Tensor, ...], op: str) -> Tensor:
        """A new node computed from ``prev``; it needs a gradient if any input does."""
        return Tensor(data, prev, op, requires_grad=any(p.requires_grad for p in prev))

    def _lift(self, other: Any) -> Tensor:
        """Wrap a number or array as a constant of this tensor's dtype."""
        if isinstance(other, Tensor):
            return other
        return Tensor(np.asarray(other, dtype=self.data.dtype), requires_grad=False)

    def _accumulate(self, grad: np.ndarray) -> None:
        """Add one use's contribution to dL/d(self): a value used twice gets the sum.

        The first contribution is kept as it is (no copy); later ones are added out of place,
        so an array that another node also holds is never modified.
        """
        if self.requires_grad:
            self.grad = grad if self.grad is None else self.grad + grad

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        label = f"{self.name}, " if self.name else ""
        op = f", op={self._op!r}" if self._op else ""
        return f"Tensor({label}shape={self.shape}, dtype={self.dtype}{op})"

    # --- arithmetic (broadcasting; unbroadcast() sums each gradient back to its input) ---
    def __add__(self, other: Any) -> Tensor:
        other = self._lift(other)
        out = self._result(self.data + other.data, (self, other), "+")

        def _backward(grad: np.ndarray) -> None:  # d(a+b)/da = d(a+b)/db = 1
            self._accumulate(unbroadcast(grad, self.shape))
            other._accumulate(unbroadcast(grad, other.shape))

        out._backward = _backward
        return out

    def __sub__(self, other: Any) -> Tensor:
        other = self._lift(other)
        out = self._result(self.data - other.data, (self, other), "-")

        def _backward(grad: np.ndarray) -> None:  # d(a-b)/da = 1, d(a-b)/db = -1
            self._accumulate(unbroadcast(grad, self.shape))
            other._accumulate(unbroadcast(-grad, other.shape))

        out._backward = _backward
        return out

    def __neg__(self) -> Tensor:
        out = self._result(-self.data, (self,), "neg")

        def _backward(grad: np.ndarray) -> None:  # d(-a)/da = -1
            self._accumulate(-grad)

        out._backward = _backward
        return out

    def __mul__(self, other: Any) -> Tensor:
        other = self._lift(other)
        a, b = self.data, other.data
        out = self._result(a * b, (self, other), "*")

        def _backward(grad: np.ndarray) -> None:  # d(ab)/da = b, d(ab)/db = a
            self._accumulate(unbroadcast(grad * b, self.shape))
            other._accumulate(unbroadcast(grad * a, other.shape))

        out._backward = _backward
        return out

    def __truediv__(self, other: Any) -> Tensor:
        other = self._lift(other)
        a, b = self.data, other.data
        y = a / b
        out = self._result(y, (self, other), "/")

        def _backward(grad: np.ndarray) -> None:  # d(a/b)/da = 1/b, d(a/b)/db = -a/b² = -y/b
            self._accumulate(unbroadcast(grad / b, self.shape))
            other._accumulate(unbroadcast(-grad * y / b, other.shape))

        out._backward = _backward
        return out

    def __pow__(self, exponent: float) -> Tensor:
        if not isinstance(exponent, int | float):
            raise TypeError("Tensor ** supports a constant (int or float) exponent only")
        a = self.data
        out = self._result(a**exponent, (self,), f"**{exponent:g}")

        def _backward(grad: np.ndarray) -> None:  # d(aᵖ)/da = p·aᵖ⁻¹
            self._accumulate(grad * (exponent * a ** (exponent - 1)))

        out._backward = _backward
        return out

    def __radd__(self, other: Any) -> Tensor:
        return self + other

    def __rsub__(self, other: Any) -> Tensor:
        return self._lift(other) - self

    def __rmul__(self, other: Any) -> Tensor:
        return self * other

    def __rtruediv__(self, other: Any) -> Tensor:
        return self._lift(other) / self

    def __matmul__(self, other: Any) -> Tensor:
        other = self._lift(other)
        a, b = self.data, other.data
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError("@ needs arrays of 2 or more dimensions; write a vector as (n, 1)")
        out = self._result(a @ b, (self, other), "@")

        def _backward(grad: np.ndarray) -> None:
            # y = a b, so y[i,k] = Σ_j a[i,j] b[j,k]:  dL/da = dL/dy bᵀ,  dL/db = aᵀ dL/dy.
            # (The `if`s skip products nobody needs, e.g. the gradient of the input images.)
            if self.requires_grad:
                self._accumulate(unbroadcast(grad @ _swap(b), self.shape))
            if other.requires_grad:
                other._accumulate(unbroadcast(_swap(a) @ grad, other.shape))

        out._backward = _backward
        return out

    # --- reductions and shape changes ----------------------------------------------------
    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        out = self._result(np.asarray(self.data.sum(axis=axis, keepdims=keepdims)), (self,), "sum")

        def _backward(grad: np.ndarray) -> None:
            # every summed element has derivative 1: copy dL/dy back along the summed axes
            if axis is not None and not keepdims:
                grad = np.expand_dims(grad, axis)
            self._accumulate(np.broadcast_to(grad, self.shape))

        out._backward = _backward
        return out

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        """The sum times (number of outputs / number of inputs)."""
        total = self.sum(axis, keepdims)
        return total * (total.data.size / self.data.size)

    def reshape(self, *shape: int) -> Tensor:
        out = self._result(self.data.reshape(*shape), (self,), "reshape")

        def _backward(grad: np.ndarray) -> None:  # the same numbers, so the same gradients
            self._accumulate(grad.reshape(self.shape))

        out._backward = _backward
        return out

    def transpose(self, *axes: int) -> Tensor:
        """Permute the axes (reverse them when none are given), as ``np.transpose``."""
        if len(axes) == 1 and isinstance(axes[0], Sequence):
            axes = tuple(axes[0])
        perm = tuple(a % self.ndim for a in axes) if axes else tuple(reversed(range(self.ndim)))
        out = self._result(self.data.transpose(perm), (self,), "transpose")

        def _backward(grad: np.ndarray) -> None:  # move the axes back where they came from
            self._accumulate(grad.transpose(np.argsort(perm)))

        out._backward = _backward
        return out

    @property
    def T(self) -> Tensor:
        return self.transpose()

    # --- element-wise functions --------------------------------------------------------------
    def exp(self) -> Tensor:
        y = np.exp(self.data)
        out = self._result(y, (self,), "exp")

        def _backward(grad: np.ndarray) -> None:  # d(eˣ)/dx = eˣ
            self._accumulate(grad * y)

        out._backward = _backward
        return out

    def log(self) -> Tensor:
        x = self.data
        out = self._result(np.log(x), (self,), "log")

        def _backward(grad: np.ndarray) -> None:  # d(ln x)/dx = 1/x
            self._accumulate(grad / x)

        out._backward = _backward
        return out

    def relu(self) -> Tensor:
        x = self.data
        out = self._result(np.maximum(x, 0), (self,), "relu")

        def _backward(grad: np.ndarray) -> None:  # d relu(x)/dx = 1 where x > 0, else 0
            self._accumulate(grad * (x > 0))

        out._backward = _backward
        return out

    def tanh(self) -> Tensor:
        y = np.tanh(self.data)
        out = self._result(y, (self,), "tanh")

        def _backward(grad: np.ndarray) -> None:  # d tanh(x)/dx = 1 - tanh²(x)
            self._accumulate(grad * (1 - y * y))

        out._backward = _backward
        return out

    def sigmoid(self) -> Tensor:
        """σ(x) = 1/(1 + e⁻ˣ), computed from e = e^-|x| ∈ (0, 1], which cannot overflow.

        σ(|x|) = 1/(1 + e) and σ(-|x|) = e/(1 + e) are each accurate to the last bit; the
        small one is never computed as 1 minus the large one (that cancels to 0 for x below
        about -37 in float64 and -17 in float32, and log σ(x) becomes -inf). As 1 - σ(x) =
        σ(-x), the same two halves give both σ(x) and 1 - σ(x), for any x.
        """
        x = self.data
        e = np.exp(-np.abs(x))
        large, small = 1 / (1 + e), e / (1 + e)  # σ(|x|), σ(-|x|)
        y = np.where(x >= 0, large, small)  # σ(x)
        y_neg = np.where(x >= 0, small, large)  # σ(-x) = 1 - σ(x), without the subtraction
        out = self._result(y, (self,), "sigmoid")

        def _backward(grad: np.ndarray) -> None:  # dσ(x)/dx = σ(x)(1 - σ(x)) = σ(x)σ(-x)
            self._accumulate(grad * (y * y_neg))

        out._backward = _backward
        return out

    # --- the loss ----------------------------------------------------------------------------
    def cross_entropy(self, labels: Any, axis: int = -1) -> Tensor:
        """Mean over examples of -log softmax(z)[y], for logits z and integer labels y.

        ``axis`` is the class axis (the last by default: one example per row). Softmax and log
        are fused: log softmax(z) = (z - m) - log Σ exp(z - m) with m = max z is exact and
        cannot overflow. Fusing also gives the famous simple gradient

            dL/dz = (softmax(z) - onehot(y)) / n        (n examples)

        the predicted probabilities minus the target distribution.
        """
        z = self.data
        target = np.expand_dims(np.asarray(labels, dtype=np.intp), axis)
        shifted = z - z.max(axis=axis, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        n = target.size
        loss = -np.take_along_axis(log_probs, target, axis).sum() / n
        out = self._result(np.asarray(loss, dtype=z.dtype), (self,), "cross_entropy")

        def _backward(grad: np.ndarray) -> None:
            dz = np.exp(log_probs)  # softmax(z)
            np.put_along_axis(dz, target, np.take_along_axis(dz, target, axis) - 1, axis)
            self._accumulate(dz * (grad / n))

        out._backward = _backward
        return out

    # --- convolutional layers ----------------------------------------------------------------
    def conv2d(self, weight: Tensor, stride: int = 1, padding: int = 0) -> Tensor:
        """2-D convolution (cross-correlation, as every deep learning library computes it).

        Shapes: input (N, C, H, W), weight (F, C, kh, kw), output (N, F, Ho, Wo) with
        Ho = (H + 2·padding - kh) // stride + 1. Add a bias separately (it broadcasts).

        im2col: lay every receptive field out as one row of a matrix ``cols`` (one row per
        output pixel, one column per input value it reads); the convolution is then the single
        matrix product cols · Wᵀ, and its backward is the matmul rule plus col2im, which sends
        each column's gradient back to the pixel it was read from.
        """
        x, w = self.data, weight.data
        n, c, h, wid = x.shape
        f, _, kh, kw = w.shape
        s, p = stride, padding
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x
        # windows[n, c, i, j, u, v] = xp[n, c, i·s + u, j·s + v]: a strided view, nothing copied
        windows = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::s, ::s]
        ho, wo = windows.shape[2:4]
        cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * kh * kw)  # im2col
        w_rows = w.reshape(f, c * kh * kw)
        y = (cols @ w_rows.T).reshape(n, ho, wo, f).transpose(0, 3, 1, 2)
        out = self._result(np.ascontiguousarray(y), (self, weight), "conv2d")

        def _backward(grad: np.ndarray) -> None:
            g = grad.transpose(0, 2, 3, 1).reshape(n * ho * wo, f)  # rows line up with cols
            if weight.requires_grad:  # the matmul rule: dL/dW = gᵀ cols
                weight._accumulate((g.T @ cols).reshape(w.shape))
            if self.requires_grad:  # dL/dcols = g W, then col2im: one strided add per tap
                dcols = (g @ w_rows).reshape(n, ho, wo, c, kh, kw).transpose(0, 3, 1, 2, 4, 5)
                dxp = np.zeros_like(xp)
                for u in range(kh):
                    for v in range(kw):
                        dxp[:, :, u : u + s * ho : s, v : v + s * wo : s] += dcols[..., u, v]
                self._accumulate(dxp[:, :, p : p + h, p : p + wid])

        out._backward = _backward
        return out

    def max_pool2d(self, size: int = 2) -> Tensor:
        """Max over non-overlapping ``size`` × ``size`` windows of an (N, C, H, W) input
        (stride = size; leftover rows and columns are dropped, as in torch).

        The gradient flows only to the winner of each window (the first one, on a tie):
        d max(a, b, ...)/da = 1 if a is the largest, else 0.
        """
        n, c, h, wid = self.shape
        k = size
        ho, wo = h // k, wid // k
        # (N, C, Ho, Wo, k·k): each window's k·k values along the last axis
        windows = (
            self.data[:, :, : ho * k, : wo * k]
            .reshape(n, c, ho, k, wo, k)
            .transpose(0, 1, 2, 4, 3, 5)
            .reshape(n, c, ho, wo, k * k)
        )
        winner = windows.argmax(axis=-1)[..., None]
        out = self._result(np.take_along_axis(windows, winner, -1)[..., 0], (self,), "max_pool2d")
        shape, dtype = windows.shape, windows.dtype  # (the backward keeps only the winners)

        def _backward(grad: np.ndarray) -> None:
            g = np.zeros(shape, dtype)
            np.put_along_axis(g, winner, grad[..., None], -1)
            g = g.reshape(n, c, ho, wo, k, k).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, ho * k, -1)
            if (ho * k, wo * k) != (h, wid):  # the dropped rows and columns get zero
                g = np.pad(g, ((0, 0), (0, 0), (0, h - ho * k), (0, wid - wo * k)))
            self._accumulate(g)

        out._backward = _backward
        return out

    # --- backpropagation ---------------------------------------------------------------------
    def backward(self, grad: Any = None) -> None:
        """Backpropagation: seed dL/dL = 1 (or ``grad``), then apply every local rule in reverse
        topological order.

        Gradients of leaves (parameters) accumulate across calls, as in torch; call your
        optimiser's ``zero_grad()`` between steps. Interior gradients are recomputed each call.
        """
        if not self.requires_grad:
            raise ValueError("backward() on a tensor that depends on nothing requiring a gradient")
        order = topological_order(self)
        for node in order:
            if node._prev:
                node.grad = None
        self.grad = np.ones_like(self.data) if grad is None else np.asarray(grad, self.dtype)
        for node in reversed(order):
            if node._prev and node.grad is not None:
                node._backward(node.grad)


def _leaf(grad: np.ndarray) -> None:
    """A leaf's backward: nothing to pass on."""


def topological_order(root: Tensor) -> list[Tensor]:
    """Every node of ``root``'s graph, each one after all of its inputs.

    A depth-first search with an explicit stack instead of recursion: a node is pushed once to
    be expanded (its inputs pushed above it) and once more to be emitted, which happens only
    after everything above it, i.e. all its inputs, has been emitted.
    """
    order: list[Tensor] = []
    visited: set[Tensor] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif node not in visited:
            visited.add(node)
            stack.append((node, True))
            stack.extend((p, False) for p in reversed(node._prev) if p not in visited)
    return order
