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


# --- the adapters of the other families ----------------------------------------------------


def _tiny_cfg(**extra):
    cfg = dict(
        hidden=(7, 6, 5), activation="relu", optimizer="adam", lr=1e-2, momentum=0.9,
        weight_decay=0.0, epochs=1, spike_steps=12,
    )  # fmt: skip
    return SimpleNamespace(**{**cfg, **extra})


def _ctx():
    return SimpleNamespace(
        generator=lambda *k: torch.Generator().manual_seed(3), device=torch.device("cpu")
    )


def _images(n: int = 16, n_in: int = 8, n_out: int = 4, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, n_in, generator=g), torch.randint(0, n_out, (n,), generator=g)


def test_dendritic_adapter_output_update_is_the_delta_rule_of_the_cross_entropy():
    """Eq. 7 at the clamped output, against autograd of the summed binary cross-entropy
    with the target rates, written here on a plain forward pass of the circuit's weights."""
    learner = RULES["dendritic"].build(_tiny_cfg(), 8, 4, 1, _ctx())
    net = learner.inner.net
    x, y = _images()
    update = learner.proposed_update(x, y)
    W = [w.detach().clone().requires_grad_(True) for w in net.W_PP_up]
    b = [v.detach().clone().requires_grad_(True) for v in net.b_PP_up]
    r = x.to(net.dtype)
    for l in range(len(W)):
        a = net.attenuation[l] * (r @ W[l].T + b[l])
        r = torch.sigmoid(a)
    target = torch.full((len(y), 4), 0.1, dtype=net.dtype).scatter_(1, y[:, None], 0.8)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(a, target, reduction="sum")
    gW, gb = torch.autograd.grad(loss, [W[-1], b[-1]])
    c = net.attenuation[-1]
    top = len(W) - 1
    torch.testing.assert_close(update[f"W_PP_up.{top}"], -gW / c)
    torch.testing.assert_close(update[f"b_PP_up.{top}"], -gb / c)
    metrics = learner.alignment_metrics(x, y)
    assert metrics[f"alignment_cosine/layer{len(W)}"] == pytest.approx(1.0, abs=1e-6)
    before = {k: v.clone() for k, v in net.weights().items()}
    learner.train_step(x, y)
    assert not torch.equal(before["W_PP_up.0"], net.W_PP_up[0])
    assert torch.equal(before["W_PP_down.0"], net.W_PP_down[0])  # fixed top-down weights


def test_coagent_adapter_update_is_the_reinforce_estimate_by_autograd():
    """Each coagent's CPGT update, on the samples the network drew, against autograd of
    sum_b s_b log pi_i(U_b | X_b) / B through the coagents' log_prob, with s the reward
    standardised over the batch (written out here)."""
    learner = RULES["coagent"].build(_tiny_cfg(hidden=(6, 5)), 8, 3, 1, _ctx())
    x, y = _images(32, 8, 3)
    torch.manual_seed(0)
    update, reward, step = learner._sampled_update(x, y)
    action = step.outputs["action"]
    torch.testing.assert_close(reward, (action == y).float())
    signal = (reward - reward.mean()) / (reward.std() + 1e-8)
    for name in ("h1", "h2", "action"):
        coagent = learner.net.coagents[name]
        logp = coagent.log_prob(step.inputs[name], step.outputs[name])
        if logp.dim() == 2:  # a layer of Bernoulli coagents: one log-probability per unit
            logp = logp.sum(1)
        with torch.enable_grad():
            gW, gb = torch.autograd.grad(
                (signal * logp).sum() / len(x), [coagent.weight, coagent.bias]
            )
        torch.testing.assert_close(update[f"{name}.weight"], gW)
        torch.testing.assert_close(update[f"{name}.bias"], gb)
    assert set(learner.alignment_metrics(x, y)) == {
        "alignment_cosine", "alignment_cosine/layer1", "alignment_cosine/layer2",
        "alignment_cosine/layer3",
    }  # fmt: skip
    state = torch.get_rng_state()
    learner.alignment_metrics(x, y)  # measuring leaves the training stream alone
    assert torch.equal(state, torch.get_rng_state())


def test_spiking_adapter_trains_and_reports_the_output_layer_alignment():
    learner = RULES["hm2bp"].build(_tiny_cfg(hidden=(6,)), 8, 4, 2, _ctx())
    assert learner.inner.net.thresholds == (20.0, 8.0)  # hm2bp.mnist's
    x, y = _images()
    w0 = [w.clone() for w in learner.inner.net.weights]
    assert math.isfinite(learner.train_step(x, y)["loss"])
    assert any(not torch.equal(a, b) for a, b in zip(w0, learner.inner.net.weights, strict=True))
    assert list(learner.alignment_metrics(x, y)) == ["alignment_cosine/layer2"]
    assert set(learner.evaluate(x, y)) == {"loss", "accuracy"}


def test_the_new_rules_declare_their_locality_and_the_checkable_one_holds():
    assert table.locality_status(RULES["dendritic"]) == "checked"
    for name in ("coagent", "hm2bp"):
        assert table.locality_status(RULES[name]) == "declared only"
    x, y = _images()
    learner = RULES["dendritic"].build(_tiny_cfg(), 8, 4, 1, _ctx())
    assert check_locality(learner, RULES["dendritic"].locality, x, y) == []
    lie = Locality("broadcast_vector", "none", False)  # the apical error is not broadcast
    violations = check_locality(learner, lie, x, y)
    assert violations and all("signal" in v for v in violations)


def test_compare_runs_the_other_families_on_a_smoke_task(tmp_path, capsys):
    out = tmp_path / "families"
    argv = ["compare", "digits", "--rules", "dendritic,hm2bp", *SMOKE]  # coagent: above
    argv += ["--set", "n_train=200", "--set", "spike_steps=10", "--out", str(out)]
    assert cli.main(argv) == 0
    capsys.readouterr()
    rows = {r["rule"]: r for r in table.read_rows(out)}
    assert list(rows) == ["dendritic", "hm2bp"]
    assert rows["dendritic"]["locality_check"] == "checked"
    assert rows["hm2bp"]["cosine"] is None and len(rows["hm2bp"]["cosine_layers"]) == 1
    assert all(r["metric"] == "test_accuracy" and 0 <= r["value"] <= 1 for r in rows.values())


# --- the teacher-student regression -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["bp", "fa", "dfa"])
def test_mse_output_error_is_the_autograd_gradient_of_torchs_mse_loss(mode):
    g = torch.Generator().manual_seed(4)
    x, t = torch.randn(9, 5, generator=g), torch.randn(9, 3, generator=g)
    net = FeedbackNetwork(5, [6, 4], 3, mode=mode, generator=g, loss="mse")
    exact = backprop_gradient(net.model, torch.nn.functional.mse_loss, x, t)
    update = net.update(x, t)
    top = net.names[-1]  # the output layer's update is the exact gradient in every mode
    for name in (f"{top}.weight", f"{top}.bias"):
        torch.testing.assert_close(update[name], -exact[name])
    if mode == "bp":
        for name, grad in exact.items():
            torch.testing.assert_close(update[name], -grad)


def _aggregate(values, metric):
    stats = {"values": values, "mean": float(np.mean(values))}
    return {
        "seeds": list(range(len(values))),
        "peak_memory_mb": 1.0,
        "metrics": {metric: stats, "train_step_seconds": {"mean": 1e-3}},
    }


def test_table_reads_the_tasks_metric_and_smaller_mse_beats(tmp_path):
    from creditlab.rundir import AGGREGATE_FILE, write_json

    for name, values in (("bp", [0.10, 0.11, 0.12]), ("fa", [0.30, 0.31, 0.29])):
        (tmp_path / name).mkdir()
        write_json(tmp_path / name / AGGREGATE_FILE, _aggregate(values, "test_mse"))
    rows = table.collect(tmp_path, ["bp", "fa"])
    assert [r["metric"] for r in rows] == ["test_mse", "test_mse"]
    assert rows[0]["p_beats_fa"] == 1.0 and rows[1]["p_beats_bp"] == 0.0
    assert "test mse" in table.markdown(rows).splitlines()[0]
    legacy = {k: v for k, v in rows[0].items() if not k.startswith(("metric", "value"))}
    legacy |= {"test_accuracy": 0.9, "test_accuracy_std": 0.01, "test_accuracy_ci95": [0.89, 0.91]}
    assert "90.00 ± 1.00" in table.html([legacy])  # rows saved before they named their metric


def test_compare_runs_the_teacher_task(tmp_path, capsys):
    out = tmp_path / "teacher"
    argv = ["compare", "teacher", "--rules", "bp,dfa", "--scale", "smoke", "--seeds", "1"]
    assert cli.main([*argv, "--out", str(out)]) == 0
    assert "test mse" in capsys.readouterr().out
    rows = table.read_rows(out)
    assert rows[0]["cosine"] == pytest.approx(1.0, abs=1e-6)
    assert rows[1]["cosine_layers"][-1] == pytest.approx(1.0, abs=1e-6)  # the delta rule
    bad = ["compare", "teacher", "--rules", "bp,coagent", "--out", str(tmp_path / "no")]
    assert cli.main(bad) == 2
    assert "runs bp, fa, dfa only" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()  # refused before any folder is made


# --- BioTorch's LeNet with FA / DFA convolutions ---------------------------------------------


def _plain_lenet(net, layers, x):
    from torch.nn import functional as F

    h = net.prepare(x)
    h = F.max_pool2d(F.relu(layers[0](h)), 2)
    h = F.max_pool2d(F.relu(layers[1](h)), 2)
    h = F.relu(layers[2](h)).flatten(1)
    return layers[4](F.relu(layers[3](h)))


@pytest.mark.parametrize("mode", ["bp", "fa", "dfa"])
def test_lenet_modes_equal_biotorchs_own_layers_on_the_same_batch(mode):
    """bp: torch's autograd through plain nn.Conv2d / nn.Linear; fa and dfa: BioTorch's FA
    and DFA Conv2d / Linear (their autograd functions and DFA's backward hook), given our
    forward and feedback weights."""
    import warnings

    from biotorch.layers import dfa as biotorch_dfa
    from biotorch.layers import fa as biotorch_fa

    from creditlab.compare.lenet import FeedbackLeNet

    net = FeedbackLeNet(mode, 10, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(4, 1, 28, 28, generator=g), torch.randint(0, 10, (4,), generator=g)
    ours = net.mode_gradient(x, y, mode)
    layers = []
    for layer in net.layers:
        conv = layer.weight.dim() == 4
        shape = layer.weight.shape
        args = (shape[1], shape[0], shape[2]) if conv else (shape[1], shape[0])
        if mode == "bp":
            theirs = torch.nn.Conv2d(*args) if conv else torch.nn.Linear(*args)
        elif mode == "fa":
            kind = biotorch_fa.Conv2d if conv else biotorch_fa.Linear
            theirs = kind(*args, layer_config={"type": "fa"})
        else:
            config = {"type": "dfa"}
            if conv:
                theirs = biotorch_dfa.Conv2d(shape[1], shape[0], 10, shape[2], layer_config=config)
            else:
                theirs = biotorch_dfa.Linear(shape[1], shape[0], 10, layer_config=config)
        with torch.no_grad():
            theirs.weight.copy_(layer.weight)
            theirs.bias.copy_(layer.bias)
            if mode != "bp":
                theirs.weight_backward.copy_(layer.feedback if mode == "fa" else layer.dfa)
        layers.append(theirs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BioTorch's DFA uses register_backward_hook
        out = _plain_lenet(net, layers, x)
        loss = torch.nn.functional.cross_entropy(out, y)
        if mode == "dfa":
            e = torch.autograd.grad(loss, out, retain_graph=True)[0]
            for theirs in layers:
                theirs.loss_gradient = e
        loss.backward()
    grads = [p.grad for theirs in layers for p in (theirs.weight, theirs.bias)]
    for mine, theirs in zip(ours, grads, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-6)
    if mode != "bp":  # below the top, the modes differ from backprop
        exact = net.mode_gradient(x, y, "bp")
        assert not torch.allclose(ours[0], exact[0])


def test_the_cli_help_names_every_task_and_rule():
    from creditlab import cli
    from creditlab.compare import harness, rules

    assert cli.COMPARE_TASKS == harness.TASKS
    assert set(cli.COMPARE_RULES) == set(rules.RULES)


def test_a_learner_step_is_the_optimiser_step_on_the_rules_gradient_with_its_schedule():
    """bp mode through train.OptimizerLearner: two steps equal plain torch (autograd gradient,
    SGD, a halving schedule) on a copy of the same weights: the update's sign, the optimiser
    and the per-step schedule as handed over."""
    import copy

    net = FeedbackNetwork(6, [8], 3, mode="bp", generator=torch.Generator().manual_seed(2))
    plain = copy.deepcopy(net.model)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.3)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    learner = FeedbackClassifier(net, optimizer, schedule)
    x, y = torch.randn(10, 6, generator=torch.Generator().manual_seed(3)), torch.arange(10) % 3
    for lr in (0.3, 0.15):
        learner.train_step(x, y)
        plain.zero_grad()
        torch.nn.functional.cross_entropy(plain(x), y).backward()
        with torch.no_grad():
            for p in plain.parameters():
                p -= lr * p.grad
    for ours, theirs in zip(net.model.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs)
