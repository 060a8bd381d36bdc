"""``creditlab explain``: the printed gradient is torch's, the plot is a PNG, bad input is one
clear UserError."""

from __future__ import annotations

import argparse
import io
import re
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from creditlab.autodiff import explain as ex
from creditlab.autodiff.drawing import layered_layout
from creditlab.errors import UserError


def torch_grad(sizes, activation, seed, weight, index):
    """The chosen weight's gradient computed by torch alone, from the same starting numbers."""
    net = ex.build_network(sizes, activation, seed)
    params = {k: torch.tensor(p.data, requires_grad=True) for k, p in net.params.items()}
    h = torch.tensor(net.x)
    for layer in range(1, len(sizes)):
        z = params[f"W{layer}"] @ h + params[f"b{layer}"]
        h = getattr(torch, activation)(z)
    torch.nn.functional.cross_entropy(z.T, torch.tensor([net.target])).backward()
    return params[weight].grad[index].item(), net


def printed(text: str, what: str) -> float:
    """The number on the ``what`` line of the check block (e.g. "engine .grad")."""
    match = re.search(rf"^  {re.escape(what)} +∂L/∂\S+ = +(-?\d+\.\d+)", text, re.M)
    assert match, f"no {what!r} line in:\n{text}"
    return float(match[1])


@pytest.mark.parametrize(
    ("sizes", "activation", "seed", "weight", "index"),
    [
        ((2, 3, 2), "relu", 0, "W1[0,1]", ("W1", (0, 1))),
        ((2, 3, 2), "sigmoid", 1, "W2[1,2]", ("W2", (1, 2))),
        ((3, 4, 3, 2), "tanh", 3, "W1[2,1]", ("W1", (2, 1))),
        ((3, 4, 3, 2), "relu", 5, "b2[1]", ("b2", (1, 0))),
    ],
)
def test_the_printed_gradient_is_torch_autograds(sizes, activation, seed, weight, index):
    text = ex.explain_text(sizes=sizes, activation=activation, seed=seed, weight=weight)
    expected, net = torch_grad(sizes, activation, seed, *index)
    assert printed(text, "chain rule") == pytest.approx(expected, abs=1e-11)
    assert printed(text, "engine .grad") == pytest.approx(expected, abs=1e-11)
    assert printed(text, "torch.autograd") == pytest.approx(expected, abs=1e-11)
    assert "all three agree" in text and "\033[" not in text  # no colour off a terminal
    # the update line: new = old - lr · grad
    old = net.params[index[0]].data[index[1]]
    new = float(re.search(r"← .* = +(-?\d+\.\d+)$", text, re.M)[1])
    assert new == pytest.approx(old - 0.1 * expected, abs=1e-4)


def test_the_trace_follows_the_graph_forward_then_in_reverse():
    text = ex.explain_text()
    forward, backward = text.split("BACKWARD PASS")
    rows = [line.split()[0] for line in forward.splitlines() if re.match(r"^  \S+ +=", line)]
    assert rows.index("x") < rows.index("W1·x") < rows.index("z1") < rows.index("h1")
    assert rows.index("h1") < rows.index("W2·h1") < rows.index("z2") < rows.index("L")
    assert set(rows) == {"x", "W1", "b1", "W1·x", "z1", "h1", "W2", "b2", "W2·h1", "z2", "L"}
    visits = re.findall(r"^  at (\S+) =", backward, re.M)
    assert visits == ["L", "z2", "W2·h1", "h1", "z1", "W1·x"]  # reverse topological order
    assert "∂h1/∂z1 = 1[z1 > 0]" in backward and "softmax(z2) - onehot(y)" in backward


# --- every number of the backward pass and of the chain rule, read off the printed text ----------

HALF = 5e-5  # explain prints 4 decimals: a printed number is within half a unit of the last digit
NUMBER = re.compile(r"-?\d+\.\d+")


@dataclass
class Line:
    """One printed ``arriving`` / ``local`` / ``passes`` line, with its value as printed."""

    tag: str
    formula: str
    rows: list[list[float]] = field(default_factory=list)  # one list per printed row; [] if none

    @property
    def value(self) -> np.ndarray | None:
        return np.array(self.rows).ravel() if self.rows else None

    @property
    def of(self) -> str:
        """The node this line is about: ∂L/∂(W2·h1) = ... -> W2·h1."""
        return self.formula.split(" = ")[0].removeprefix("∂L/∂").strip("()")


@dataclass
class Visit:
    """One ``at node = expression [op ...]`` block of the printed backward pass."""

    node: str
    expression: str
    op: str
    lines: list[Line] = field(default_factory=list)

    @property
    def inputs(self) -> list[str]:
        if self.op in ("@", "+"):
            return self.expression.split(f" {self.op} ")
        return [re.search(r"\((\S+)\)", self.expression)[1]]  # tanh(z1), softmax(z2)


def printed_backward(text: str) -> list[Visit]:
    """The backward pass as explain printed it: every visit, every line, every number."""
    section = text.split("BACKWARD PASS")[1].split("CHAIN RULE FOR")[0]
    visits: list[Visit] = []
    for row in section.splitlines():
        if match := re.match(r"^  at (\S+) = (.+?)   \[op (\S+)\]$", row):
            visits.append(Visit(*match.groups()))
        elif match := re.match(r"^      (arriving|local|passes) +(.+)$", row):
            formula, _, value = match[2].rpartition(" = ")
            if not NUMBER.search(value):  # no value column: the formula says it ("... = 1")
                formula, value = match[2], ""
            line = Line(match[1], formula.strip())
            if value:
                line.rows.append([float(v) for v in NUMBER.findall(value)])
            visits[-1].lines.append(line)
        elif NUMBER.search(row):  # the next row of a printed matrix
            visits[-1].lines[-1].rows.append([float(v) for v in NUMBER.findall(row)])
    return visits


def torch_nodes(net: ex.Network) -> dict[str, torch.Tensor]:
    """Every node of explain's network recomputed by torch alone, under the label explain
    prints, with its gradient ∂L/∂node from torch.autograd in ``.grad``."""
    nodes = {k: torch.tensor(p.data, requires_grad=True) for k, p in net.params.items()}
    h = nodes["x"] = torch.tensor(net.x)
    n_layers = len(net.sizes) - 1
    for layer in range(1, n_layers + 1):
        w_h = nodes[f"W{layer}·{'x' if layer == 1 else f'h{layer - 1}'}"] = nodes[f"W{layer}"] @ h
        z = nodes[f"z{layer}"] = w_h + nodes[f"b{layer}"]
        if layer < n_layers:
            h = nodes[f"h{layer}"] = getattr(torch, net.activation)(z)
    nodes["L"] = F.cross_entropy(z.T, torch.tensor([net.target]))
    for t in nodes.values():
        if not t.is_leaf:
            t.retain_grad()
    nodes["L"].backward()
    return nodes


TORCH_OPS = {
    "@": torch.matmul,
    "+": torch.add,
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
}


def torch_local(
    visit: Visit, k: int, nodes: dict[str, torch.Tensor], target: int
) -> np.ndarray | None:
    """The local derivative ∂node/∂(input k) that explain should print (None for the 1 of an
    addition), from torch's Jacobian of the operation with its other inputs held fixed."""
    values = [nodes[name].detach() for name in visit.inputs]

    def op(v: torch.Tensor) -> torch.Tensor:
        args = [*values[:k], v, *values[k + 1 :]]
        if visit.op == "cross_entropy":
            return F.cross_entropy(args[0].T, torch.tensor([target]))
        return TORCH_OPS[visit.op](*args)

    jac = torch.autograd.functional.jacobian(op, values[k]).numpy()
    if visit.op == "cross_entropy":  # the loss is a scalar: its gradient is the local derivative
        return jac.ravel()
    jac = jac.reshape(nodes[visit.node].numel(), values[k].numel())  # ∂out[i]/∂in[j]
    if visit.op == "+":  # the identity, printed as "= 1"
        np.testing.assert_array_equal(jac, np.eye(len(jac)))
        return None
    if visit.op == "@" and k == 0:  # ∂out[i]/∂W[i',j] = δ(i,i')·h[j]: printed as h
        rows, cols = values[0].shape
        local = jac[0, :cols]
        np.testing.assert_array_equal(jac, np.kron(np.eye(rows), local))
        return local
    if visit.op == "@":  # ∂out[i]/∂h[j] = W[i,j]: printed as the matrix W
        return jac.ravel()
    np.testing.assert_array_equal(jac, np.diag(np.diag(jac)))  # element-wise: a diagonal
    return np.diag(jac)


def rounding_slack(product, *printed: np.ndarray) -> np.ndarray:
    """How far ``product`` (a sum of products, e.g. a matrix product) of numbers printed to 4
    decimals can be from the same product of the exact numbers: each one is within HALF, and
    |Π(xᵢ + eᵢ) - Π xᵢ| <= Π(|xᵢ| + HALF) - Π|xᵢ| for |eᵢ| <= HALF."""
    return product(*(np.abs(p) + HALF for p in printed)) - product(*map(np.abs, printed))


def times_local(op: str, k: int, n: int):
    """How ``op`` multiplies the arriving gradient by the local derivative for its input ``k``
    (flat arrays as printed; ``n`` is the size of that input)."""
    if op == "@" and k == 0:  # ∂L/∂W = ∂L/∂out · hᵀ
        return lambda arriving, local: np.outer(arriving, local).ravel()
    if op == "@":  # ∂L/∂h = Wᵀ · ∂L/∂out
        return lambda arriving, local: local.reshape(arriving.size, n).T @ arriving
    return lambda arriving, local: arriving * local  # element-wise; or a scalar ∂L/∂L


NETWORKS = [((2, 3, 2), 0), ((3, 4, 3, 2), 3), ((2, 1, 2), 1), ((4, 5, 3), 7)]


@pytest.mark.parametrize(("sizes", "seed"), NETWORKS, ids=str)
@pytest.mark.parametrize("activation", ex.ACTIVATIONS)
def test_every_printed_local_derivative_and_gradient_is_torchs(activation, sizes, seed):
    text = ex.explain_text(sizes=sizes, activation=activation, seed=seed)
    net = ex.build_network(sizes, activation, seed)
    nodes = torch_nodes(net)
    visits = printed_backward(text)
    assert {v.op for v in visits} == {"cross_entropy", "+", "@", activation}
    n_locals = n_passes = 0
    matmul_operands = set()
    for visit in visits:
        arriving, *pairs = visit.lines
        assert arriving.tag == "arriving" and arriving.of == visit.node
        np.testing.assert_allclose(arriving.value, grad_of(nodes, visit.node), rtol=0, atol=HALF)
        assert pairs and len(pairs) % 2 == 0, f"at {visit.node}: expected local/passes pairs"
        for local, passes in zip(pairs[::2], pairs[1::2], strict=True):
            assert (local.tag, passes.tag) == ("local", "passes")
            k = visit.inputs.index(passes.of)
            assert f"/∂{wrapped(passes.of)}" in local.formula  # the line is about that input
            # the local derivative, against torch's Jacobian
            expected = torch_local(visit, k, nodes, net.target)
            if expected is None:
                assert local.value is None and local.formula.endswith(" = 1")
                product, slack = arriving.value, HALF
            else:
                np.testing.assert_allclose(local.value, expected, rtol=0, atol=HALF)
                rule = times_local(visit.op, k, nodes[passes.of].numel())
                product = rule(arriving.value, local.value)
                slack = rounding_slack(rule, arriving.value, local.value)
                n_locals += 1
            # the gradient passed on, against torch.autograd ...
            np.testing.assert_allclose(passes.value, grad_of(nodes, passes.of), rtol=0, atol=HALF)
            # ... and equal to arriving × local, up to the rounding of the printed numbers
            assert np.all(np.abs(passes.value - product) <= (slack + HALF) * (1 + 1e-9)), (
                f"at {visit.node}: {passes.formula} = {passes.value}, but arriving × local = "
                f"{product}"
            )
            n_passes += 1
            if visit.op == "@":
                matmul_operands.add(k)
    n_layers = len(sizes) - 1  # each layer: W, b, W·h; below the top also h and z
    assert n_passes == 1 + 3 * n_layers + 2 * (n_layers - 1)
    assert n_locals == 1 + n_layers + 2 * (n_layers - 1)  # softmax, x or h, W and f'
    assert matmul_operands == ({0, 1} if n_layers > 1 else {0})


def grad_of(nodes: dict[str, torch.Tensor], name: str) -> np.ndarray:
    return nodes[name].grad.numpy().ravel()


def wrapped(name: str) -> str:
    return f"({name})" if "·" in name else name


@pytest.mark.parametrize("activation", ex.ACTIVATIONS)
@pytest.mark.parametrize("weight", ["W1[2,1]", "b1[3]", "W2[0,3]", "b2[2]", "W3[1,2]", "b3[0]"])
def test_every_number_of_the_printed_chain_rule_is_torchs(activation, weight):
    sizes, seed = (3, 4, 3, 2), 4
    text = ex.explain_text(sizes=sizes, activation=activation, seed=seed, weight=weight)
    net = ex.build_network(sizes, activation, seed)
    nodes = torch_nodes(net)
    wname, (i, j) = ex.parse_weight(weight, sizes)
    layer, n_layers = int(wname[1:]), len(sizes) - 1
    block = text.split(f"CHAIN RULE FOR {weight}")[1].split("\n\n")[0].splitlines()[1:]
    substituted = [float(v) for v in NUMBER.findall(block[2])]  # "= ((-0.55)(0.50) + ..."
    value = float(next(m[1] for r in block if (m := re.fullmatch(r" += (-?\d+\.\d{10})", r))))
    below = "x" if layer == 1 else f"h{layer - 1}"
    h_below = 1.0 if wname[0] == "b" else nodes[below].detach()[j, 0]
    if layer == n_layers:  # (δ_L[i]) · (h[j])
        expected = [nodes[f"z{layer}"].grad[i, 0], h_below]
    else:  # ((δ[0])(W[0,i]) + (δ[1])(W[1,i]) + ...) · (f'(z[i])) · (h[j])
        up = layer + 1
        z = nodes[f"z{layer}"].detach()[i, 0].clone().requires_grad_()
        (f_prime,) = torch.autograd.grad(getattr(torch, activation)(z), z)
        delta_up, w_up = nodes[f"z{up}"].grad[:, 0], nodes[f"W{up}"].detach()[:, i]
        expected = [*torch.stack([delta_up, w_up], 1).ravel(), f_prime, h_below]
        # and the printed result is the printed sum of products
        d, w = np.array(substituted[:-2:2]), np.array(substituted[1:-2:2])
        f, h = np.array(substituted[-2:-1]), np.array(substituted[-1:])
        rule = lambda d, w, f, h: (d @ w) * f * h  # noqa: E731
        assert value == pytest.approx(rule(d, w, f, h)[0], abs=rounding_slack(rule, d, w, f, h)[0])
    np.testing.assert_allclose(substituted, [float(e) for e in expected], rtol=0, atol=HALF)
    assert value == pytest.approx(nodes[wname].grad[i, j].item(), abs=1e-10)
    # the δ_l listed under "where": each one torch's ∂L/∂z_l
    for l in sorted({n_layers, *range(layer + 1, n_layers)}):
        row = next(r for r in block if r.lstrip().startswith(f"∂L/∂z{l} = "))
        printed_delta = [float(v) for v in NUMBER.findall(row.rpartition(" = ")[2])]
        np.testing.assert_allclose(printed_delta, grad_of(nodes, f"z{l}"), rtol=0, atol=HALF)


def test_explanation_values_and_one_step_lowers_the_loss():
    result = ex.explain(out=io.StringIO(), color=False, lr=0.1)
    assert result.chain_rule == pytest.approx(result.engine, abs=1e-12)
    assert result.torch == pytest.approx(result.engine, abs=1e-12)
    assert result.after == pytest.approx(result.before - 0.1 * result.engine)
    assert result.loss_after < result.loss_before


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="creditlab")
    ex.add_parser(p.add_subparsers(dest="command"))
    return p


def test_the_command_prints_the_trace_and_draws_a_png(tmp_path, capsys):
    png = tmp_path / "graph.png"
    args = parser().parse_args(["explain", "--sizes", "2,3,2", "--seed", "2", "--plot", str(png)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "FORWARD PASS" in out and "CHAIN RULE FOR W1[0,1]" in out and str(png) in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    args = parser().parse_args(["explain", "--input", "0.5,-1", "--target", "1", "--lr", "0.5"])
    assert args.func(args) == 0
    assert "x = [ 0.5000, -1.0000], target class y = 1" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--weight", "W9[5,5]"], "no layer 9"),
        (["--weight", "W1[5,5]"], "out of range"),
        (["--weight", "W1[0]"], "two indices"),
        (["--weight", "b1[0,0]"], "one (b1[0])"),
        (["--weight", "weights"], "expected a name like W1[0,1]"),
        (["--sizes", "2"], "at least an input and an output"),
        (["--sizes", "2,x,2"], "expected layer widths"),
        (["--sizes", "2,3,1"], "at least 2 classes"),
        (["--sizes", "2,300,2"], "widths must be"),
        (["--input", "1,2,3"], "expected 2 finite numbers"),
        (["--target", "7"], "classes 0..1"),
        (["--plot", "graph.jpg"], "must end in .png"),
    ],
)
def test_bad_input_is_one_clear_user_error(argv, message):
    args = parser().parse_args(["explain", *argv])
    with pytest.raises(UserError, match=re.escape(message)) as err:
        args.func(args)
    assert "\n" not in str(err.value)


def test_layered_layout_puts_every_node_right_of_its_inputs():
    net = ex.build_network((2, 3, 3, 2), "tanh", 0)
    place = layered_layout(net.loss)
    for node, (column, _) in place.items():
        assert all(place[p][0] < column for p in node._prev)
    assert len(set(place.values())) == len(place)  # no two nodes on the same spot
    assert np.isclose(float(net.loss.data), ex.torch_gradients(net)[0])
