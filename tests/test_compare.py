"""creditlab compare: FA and DFA against a hand computation, the alignment measure, the
locality check (and a lying adapter it catches), the table, and the command end to end."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from creditlab import cli
from creditlab.compare import table
from creditlab.compare.feedback import FeedbackClassifier, FeedbackNetwork
from creditlab.compare.locality import Locality, check_locality
from creditlab.compare.rules import RULES, Rule
from creditlab.diagnostics.alignment import backprop_gradient


def _tiny(mode: str, activation: str = "relu") -> FeedbackNetwork:
    """The same tiny net whatever ran before: its forward weights come from torch's global
    generator (the bp baseline's own initialisation), seeded here in a fork."""
    with torch.random.fork_rng():
        torch.manual_seed(5)
        return FeedbackNetwork(
            3,
            [4, 3],
            2,
            mode=mode,
            activation=activation,
            generator=torch.Generator().manual_seed(5),
        )


def _batch(n: int = 5, n_in: int = 3, n_out: int = 2, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, n_in, generator=g), torch.randint(0, n_out, (n,), generator=g)


def _hand_update(net: FeedbackNetwork, x: torch.Tensor, y: torch.Tensor) -> dict:
    """The rule written out with scalar loops over examples and units (no matrix code)."""
    W = [lin.weight.detach().double().numpy() for lin in net.linears]
    b = [lin.bias.detach().double().numpy() for lin in net.linears]
    B = [f.double().numpy() for f in net.feedback]
    deriv = {
        "relu": lambda a: 1.0 if a > 0 else 0.0,
        "tanh": lambda a: 1 - math.tanh(a) ** 2,
    }[net.activation]
    f = {"relu": lambda a: max(a, 0.0), "tanh": math.tanh}[net.activation]
    n, L = len(x), len(W)
    grads_W = [np.zeros_like(w) for w in W]
    grads_b = [np.zeros_like(v) for v in b]
    for i in range(n):
        h = [list(x[i].double().numpy())]
        a = []
        for l in range(L):
            a_l = [
                sum(W[l][j][k] * h[l][k] for k in range(len(h[l]))) + b[l][j]
                for j in range(len(b[l]))
            ]
            a.append(a_l)
            h.append([f(v) for v in a_l])
        z = a[-1]
        m = max(z)
        p = [math.exp(v - m) / sum(math.exp(u - m) for u in z) for v in z]
        e = [(p[j] - (1.0 if j == int(y[i]) else 0.0)) / n for j in range(len(z))]
        delta = [None] * L
        delta[L - 1] = e
        for l in range(L - 2, -1, -1):
            d = []
            for j in range(len(a[l])):
                if net.mode == "bp":
                    s = sum(delta[l + 1][k] * W[l + 1][k][j] for k in range(len(delta[l + 1])))
                elif net.mode == "fa":
                    s = sum(delta[l + 1][k] * B[l][k][j] for k in range(len(delta[l + 1])))
                else:
                    s = sum(e[k] * B[l][k][j] for k in range(len(e)))
                d.append(s * deriv(a[l][j]))
            delta[l] = d
        for l in range(L):
            for j in range(len(delta[l])):
                grads_b[l][j] += delta[l][j]
                for k in range(len(h[l])):
                    grads_W[l][j][k] += delta[l][j] * h[l][k]
    out = {}
    for name, gw, gb in zip(net.names, grads_W, grads_b, strict=True):
        out[f"{name}.weight"], out[f"{name}.bias"] = -gw, -gb
    return out


@pytest.mark.parametrize("mode", ["bp", "fa", "dfa"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_update_equals_a_hand_computation_on_a_tiny_network(mode, activation):
    net = _tiny(mode, activation)
    x, y = _batch()
    got = net.update(x, y)
    want = _hand_update(net, x, y)
    assert set(got) == set(want)
    for name in want:
        np.testing.assert_allclose(got[name].double().numpy(), want[name], rtol=1e-5, atol=1e-7)


def test_bp_mode_is_the_autograd_gradient_and_fa_dfa_differ_from_it_below_the_top():
    x, y = _batch(32, 6, 3)
    for mode in ("bp", "fa", "dfa"):
        net = FeedbackNetwork(6, [16, 12], 3, mode=mode, generator=torch.Generator().manual_seed(5))
        exact = backprop_gradient(net.model, torch.nn.functional.cross_entropy, x, y)
        update = net.update(x, y)
        top = net.names[-1]
        for name, g in exact.items():  # the output layer's update is the delta rule in all
            if mode == "bp" or name.startswith(top):
                torch.testing.assert_close(update[name], -g)
        if mode != "bp":
            assert not torch.allclose(update[f"{net.names[0]}.weight"], -exact["1.weight"])


def test_feedback_shapes_follow_biotorch_and_never_learn():
    fa, dfa = _tiny("fa"), _tiny("dfa")
    assert [tuple(b.shape) for b in fa.feedback] == [(3, 4), (2, 3)]  # W_{l+1}'s shape
    assert [tuple(b.shape) for b in dfa.feedback] == [(2, 4), (2, 3)]  # n_out x n_l
    assert _tiny("bp").feedback == []
    learner = FeedbackClassifier(fa, torch.optim.SGD(fa.parameters(), lr=0.5))
    before = [b.clone() for b in fa.feedback]
    learner.train_step(*_batch(8))
    assert all(torch.equal(b, c) for b, c in zip(before, fa.feedback, strict=True))


def test_alignment_is_one_for_bp_and_near_zero_for_a_random_update():
    x, y = _batch(32)
    net = _tiny("bp")
    learner = FeedbackClassifier(net, torch.optim.SGD(net.parameters(), lr=0.1))
    metrics = learner.alignment_metrics(x, y)
    assert metrics["alignment_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert all(v == pytest.approx(1.0, abs=1e-5) for k, v in metrics.items() if "layer" in k)

    big = FeedbackNetwork(20, [64, 64], 10, mode="bp", generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(3)
    big.update = lambda x, y: {  # a rule that ignores the data: a random direction
        n: torch.randn(p.shape, generator=g) for n, p in big.model.named_parameters()
    }
    learner = FeedbackClassifier(big, torch.optim.SGD(big.parameters(), lr=0.1))
    xb, yb = _batch(32, 20, 10)
    d = sum(p.numel() for p in big.model.parameters())
    assert abs(learner.alignment_metrics(xb, yb)["alignment_cosine"]) < 4 / math.sqrt(d)


def test_weight_angles_against_hand_computed_cosines():
    fa, dfa = _tiny("fa"), _tiny("dfa")
    angles = fa.weight_angles()
    w, b = fa.linears[1].weight.detach().flatten(), fa.feedback[0].flatten()
    cos = float(w @ b / (w.norm() * b.norm()))
    assert angles["layer1"] == pytest.approx(math.degrees(math.acos(cos)), abs=1e-3)
    with torch.no_grad():
        fa.feedback[1].copy_(3 * fa.linears[2].weight)  # aligned up to a positive scale
        dfa.feedback[0].copy_(-(dfa.linears[2].weight @ dfa.linears[1].weight))
    assert fa.weight_angles()["layer2"] == pytest.approx(0.0, abs=1e-2)
    assert dfa.weight_angles()["layer1"] == pytest.approx(180.0, abs=1e-2)


def _learner(rule: Rule):
    cfg = SimpleNamespace(
        hidden=(7, 6, 5), activation="relu", optimizer="sgd", lr=0.1, momentum=0.0,
        weight_decay=0.0,
    )  # fmt: skip
    ctx = SimpleNamespace(
        generator=lambda *k: torch.Generator().manual_seed(2), device=torch.device("cpu")
    )
    return rule.build(cfg, 8, 4, 1, ctx)


@pytest.mark.parametrize("name", ["bp", "fa", "dfa"])
def test_every_declared_locality_holds(name):
    rule = RULES[name]
    x, y = _batch(16, 8, 4)
    assert check_locality(_learner(rule), rule.locality, x, y) == []
    assert table.locality_status(rule) == "checked"


@pytest.mark.parametrize(
    "name, lie, caught",
    [
        ("bp", Locality("backprop_vector", "none", True), "weight transport"),
        ("fa", Locality("broadcast_vector", "none", True), "signal"),
        ("bp", Locality("broadcast_vector", "sign", True), "weight transport"),
    ],
)
def test_a_lying_adapter_is_caught(name, lie, caught):
    liar = Rule(name, "a rule whose adapter lies", lie, RULES[name].build)
    x, y = _batch(16, 8, 4)
    violations = check_locality(_learner(liar), lie, x, y)
    assert violations and all(caught in v for v in violations)
    assert table.locality_status(liar) == "VIOLATED"


def test_rescaling_probe_keeps_the_function_and_changes_backprops_hidden_update():
    net = _tiny("bp")
    x, y = _batch(16)
    probe = copy.deepcopy(net)
    probe.rescale_units(0, torch.tensor([0.5, 2.0, 1.5, 3.0]))
    torch.testing.assert_close(probe.logits(x), net.logits(x))
    assert not torch.allclose(probe.update(x, y)["1.weight"], net.update(x, y)["1.weight"])


def test_p_beats_is_a_probability_with_the_obvious_extremes():
    assert table.p_beats([0.9, 0.91, 0.92], [0.5, 0.51, 0.52]) == 1.0
    assert table.p_beats([0.5, 0.51], [0.9, 0.91]) == 0.0
    assert table.p_beats([0.7, 0.7], [0.7, 0.7]) == 0.5
    p = table.p_beats([0.6, 0.8, 0.7], [0.65, 0.75, 0.7])
    assert 0.0 < p < 1.0


SMOKE = ["--scale", "smoke", "--set", "epochs=1", "--seeds", "1"]


def test_compare_runs_two_rules_prints_the_table_and_resumes(tmp_path, capsys):
    out = tmp_path / "a"
    assert cli.main(["compare", "digits", "--rules", "bp,dfa", *SMOKE, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("rule"))
    assert [line.split()[0] for line in lines[header + 1 :]] == ["bp", "dfa"]
    for name in ("table.md", "table.html", "comparison.json", "plots/learning_curves.png"):
        assert (out / name).exists(), name
    assert (out / "plots" / "alignment.png").exists()
    rows = table.read_rows(out)
    assert rows[0]["cosine"] == pytest.approx(1.0, abs=1e-6)
    assert rows[1]["p_beats_bp"] is not None and rows[1]["locality_check"] == "checked"

    again = tmp_path / "b"  # same seed, same table
    assert cli.main(["compare", "digits", "--rules", "bp,dfa", *SMOKE, "--out", str(again)]) == 0
    capsys.readouterr()
    assert table.terminal(table.read_rows(again), timing=False) == table.terminal(
        rows, timing=False
    )

    assert cli.main(["compare", "digits", "--rules", "bp,dfa", *SMOKE, "--out", str(out)]) == 0
    assert "finished before, kept" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, says",
    [
        (["compare", "digits", "--rules", "bp,nope"], "unknown rule 'nope'"),
        (["compare", "cifar"], "unknown task 'cifar'"),
        (["compare", "digits", "--rules", "bp,bp"], "names a rule twice"),
        (["compare", "digits", "--set", "rule=fa"], "--rules"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, says, tmp_path, capsys):
    assert cli.main([*argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1


def test_fa_update_equals_biotorchs_fa_layers_on_the_same_batch():
    """The peer check: BioTorch's FA ``Linear`` (its own autograd function), given our forward
    and feedback weights, produces our FA update on the same batch."""
    from biotorch.layers import fa as biotorch_fa  # `make install`: biotorch without its deps

    net = FeedbackNetwork(6, [16, 12], 3, mode="fa", generator=torch.Generator().manual_seed(7))
    layers = []
    for k, ours in enumerate(net.linears):
        theirs = biotorch_fa.Linear(ours.in_features, ours.out_features)
        with torch.no_grad():
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)
            if k > 0:  # the matrix that carries the error out of layer k: our B into k-1
                theirs.weight_backward.copy_(net.feedback[k - 1])
        layers.append(theirs)
    model = torch.nn.Sequential(
        torch.nn.Flatten(), layers[0], torch.nn.ReLU(), layers[1], torch.nn.ReLU(), layers[2]
    )
    x, y = _batch(32, 6, 3)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    update = net.update(x, y)
    for name, layer in zip(net.names, layers, strict=True):
        torch.testing.assert_close(update[f"{name}.weight"], -layer.weight.grad)
        torch.testing.assert_close(update[f"{name}.bias"], -layer.bias.grad)
