"""``creditlab explain``: the printed gradient is torch's, the plot is a PNG, bad input is one
clear UserError."""

from __future__ import annotations

import argparse
import io
import re

import numpy as np
import pytest
import torch

from creditlab.autodiff import explain as ex
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
    place = ex.layered_layout(net.loss)
    for node, (column, _) in place.items():
        assert all(place[p][0] < column for p in node._prev)
    assert len(set(place.values())) == len(place)  # no two nodes on the same spot
    assert np.isclose(float(net.loss.data), ex.torch_gradients(net)[0])
