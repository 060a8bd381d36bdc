"""ReLU liveness monitor (creditlab.diagnostics.relu) and the Douglas & Yu experiments."""

import math
import warnings

import pytest
import torch
from torch import nn

from creditlab import registry, runner
from creditlab.diagnostics.relu import DeadReluWarning, ReluMonitor
from creditlab.methods.relu import experiments as relu

# --- the monitor ---------------------------------------------------------------------------


def conv_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 5 * 5, 4),
        nn.ReLU(inplace=True),  # its input is overwritten before a forward hook runs
    )


def test_activation_probability_equals_an_exact_count():
    net = conv_net()
    batches = [torch.randn(7, 1, 5, 5), torch.randn(5, 1, 5, 5)]
    with ReluMonitor(net, warn=False) as mon:
        for x in batches:
            net(x)
    x = torch.cat(batches)
    with torch.no_grad():
        y_conv = net[0](x)  # (12, 3, 5, 5): a unit is a channel, counted over positions
        y_dense = net[3](net[2](torch.relu(y_conv)))  # (12, 4)
    expected_conv = (y_conv > 0).sum(dim=(0, 2, 3)).double() / (12 * 25)
    expected_dense = (y_dense > 0).sum(dim=0).double() / 12
    summary = mon.summary()
    assert list(summary) == ["1", "4"]
    assert summary["1"].samples == 12 * 25 and summary["4"].samples == 12
    torch.testing.assert_close(summary["1"].unit_probability, expected_conv)
    torch.testing.assert_close(summary["4"].unit_probability, expected_dense)
    assert summary["1"].activation_probability == pytest.approx(expected_conv.mean().item())
    assert mon.activation_probability()["4"] == pytest.approx(expected_dense.mean().item())


def test_a_hand_built_layer_counts_zero_as_inactive():
    mon = ReluMonitor(warn=False)
    y = torch.tensor([[1.0, -1.0, 0.0], [2.0, 3.0, -4.0]])
    out = mon.relu(y, "h")
    assert torch.equal(out, torch.relu(y))
    layer = mon.summary()["h"]
    assert layer.unit_probability.tolist() == [1.0, 0.5, 0.0]
    assert layer.activation_probability == pytest.approx(0.5)
    assert layer.dead_fraction == pytest.approx(1 / 3) and layer.dead_units == 1


def dead_layer(n_dead: int, width: int = 10) -> nn.Sequential:
    """A layer whose first n_dead units have y = -1 for every input and the rest y > 0."""
    linear = nn.Linear(2, width)
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.fill_(1.0)
        linear.bias[:n_dead] = -1.0
    return nn.Sequential(linear, nn.ReLU())


def test_dead_fraction_and_the_warning_at_the_threshold():
    net = dead_layer(n_dead=2)
    with ReluMonitor(net, threshold=0.1) as mon:
        net(torch.randn(50, 2))
    assert mon.dead_fraction() == {"1": pytest.approx(0.2)}
    assert mon.activation_probability() == {"1": pytest.approx(0.8)}
    with pytest.warns(DeadReluWarning, match="2 of 10 units"):
        assert mon.check() == ["1"]


def test_no_warning_below_the_threshold():
    for n_dead, threshold in ((0, 0.1), (2, 0.3)):
        net = dead_layer(n_dead)
        with ReluMonitor(net, threshold=threshold) as mon:
            net(torch.randn(50, 2))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert mon.check() == []
            mon.epoch_end(0)


def test_hooks_are_removed_when_the_context_exits():
    net = conv_net()
    before = [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in net.modules()]
    with ReluMonitor(net, warn=False) as mon:
        assert mon.attached
        assert any(len(m._forward_hooks) for m in net.modules())
        net(torch.randn(2, 1, 5, 5))
    assert not mon.attached
    assert [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in net.modules()] == before
    counts = mon.summary()["1"].samples
    net(torch.randn(3, 1, 5, 5))  # no longer counted
    assert mon.summary()["1"].samples == counts


class FunctionalNet(nn.Module):
    """A model that takes its activation function as an argument (no nn.ReLU modules)."""

    def __init__(self, act):
        super().__init__()
        torch.manual_seed(1)
        self.fc1, self.fc2, self.act = nn.Linear(3, 6), nn.Linear(6, 2), act

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def test_functional_calls_are_tracked_by_name():
    mon = ReluMonitor(warn=False)
    net = FunctionalNet(mon.functional("fc1"))
    x = torch.randn(40, 3)
    net(x)
    with torch.no_grad():
        expected = (net.fc1(x) > 0).double().mean(0)
    torch.testing.assert_close(mon.summary()["fc1"].unit_probability, expected)
    with mon.paused():
        net(x)
    assert mon.summary()["fc1"].samples == 40


def test_epoch_end_logs_warns_resets_and_keeps_history():
    class Ctx:
        def __init__(self):
            self.rows = []

        def log(self, step, **metrics):
            self.rows.append((step, metrics))

    ctx = Ctx()
    net = dead_layer(n_dead=3)
    mon = ReluMonitor(net, ctx=ctx, prefix="train_relu_").attach()
    net(torch.randn(20, 2))
    with pytest.warns(DeadReluWarning):
        summary = mon.epoch_end(1, step=40)
    assert summary["1"].dead_fraction == pytest.approx(0.3)
    step, metrics = ctx.rows[0]
    assert step == 40
    assert metrics["train_relu_dead_fraction_layer_1"] == pytest.approx(0.3)
    assert metrics["train_relu_activation_probability_layer_1"] == pytest.approx(0.7)
    assert metrics["train_relu_dead_fraction_max"] == pytest.approx(0.3)
    assert mon.summary() == {} and len(mon.history) == 1  # a new pass starts
    state_before = mon.state_dict()
    net(torch.randn(5, 2))
    restored = ReluMonitor(warn=False)
    restored.load_state_dict(mon.state_dict())
    assert restored.summary()["1"].samples == 5 and state_before == {}
    mon.detach()


def test_a_relu_module_run_twice_in_one_forward_is_flagged():
    class Reuse(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.relu = nn.Linear(4, 4), nn.ReLU()

        def forward(self, x):
            return self.relu(self.fc(self.relu(x)))

    net = Reuse()
    with ReluMonitor(net, warn=False), pytest.warns(UserWarning, match="ran twice"):
        net(torch.randn(3, 4))


# --- relu.layers: the networks ---------------------------------------------------------------


def test_plain_and_residual_nets_differ_only_by_their_skips():
    spec = {"widths": (4, 8), "convs_per_stage": 3}
    plain = relu.StageCNN(residual=False, **spec)
    residual = relu.StageCNN(residual=True, **spec)
    residual.load_state_dict(plain.state_dict())
    x = torch.rand(6, 1, 28, 28)
    with ReluMonitor(residual, warn=False) as mon:
        out = residual(x)
    assert len(mon.summary()) == 6 == len(residual.skip_layers())
    assert residual.skip_layers() == [False, False, True] * 2
    assert plain.skip_layers() == [False] * 6
    assert not torch.allclose(out, plain(x))
    for block in (m for m in residual.modules() if isinstance(m, relu.Block)):
        block.residual = False
    torch.testing.assert_close(residual(x), plain(x))


def test_depth_trend_is_the_spearman_correlation():
    assert relu.depth_trend([0.6, 0.5, 0.4, 0.3])[0] == pytest.approx(-1.0)
    assert relu.depth_trend([0.3, 0.5, 0.4, 0.6])[0] == pytest.approx(0.8)
    assert relu.depth_trend([0.5, 0.5, 0.5]) == (0.0, 1.0)


# --- relu.single_unit: the theory -------------------------------------------------------------


def monte_carlo(w, b, n=400_000, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, len(w), generator=g, dtype=torch.float64)
    x_tilde = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], dim=1)
    active = (x @ w + b > 0).double()
    return x, x_tilde, active


def test_activation_matrix_matches_monte_carlo():
    w = torch.tensor([0.6, -0.3, 0.2], dtype=torch.float64)
    b = torch.tensor(-0.5, dtype=torch.float64)  # p = Phi(-0.5 / 0.7) ~ 0.24
    x, x_tilde, active = monte_carlo(w, b)
    h_mc = (x_tilde * active[:, None]).T @ x_tilde / len(x)
    h = relu.activation_matrix(w, b)
    torch.testing.assert_close(h, h_mc, atol=6e-3, rtol=0)
    terms = relu.truncated_gaussian_terms(w, b)
    assert terms["p"].item() == pytest.approx(active.mean().item(), abs=3e-3)
    # Eq. (3a): E[1[y > 0] x] = phi(a) w_hat
    torch.testing.assert_close(
        terms["phi"] * terms["w_hat"], (x * active[:, None]).mean(0), atol=4e-3, rtol=0
    )


def test_expected_update_matches_monte_carlo():
    w = torch.tensor([0.4, 0.9, -0.2], dtype=torch.float64)
    b = torch.tensor(-1.1, dtype=torch.float64)
    w_star = torch.tensor([1.0, 0.0, 0.5], dtype=torch.float64)
    b_star = torch.tensor(0.3, dtype=torch.float64)
    mu = 0.1
    x, x_tilde, active = monte_carlo(w, b, seed=1)
    y = x @ w + b
    e = x @ w_star + b_star - torch.relu(y)  # linear teacher
    update_mc = mu * (e * active)[:, None] * x_tilde  # Eq. (1), per sample
    dw, db = relu.expected_update(w, b, w_star, b_star, mu)
    mean, se = update_mc.mean(0), update_mc.std(0) / math.sqrt(len(x))
    assert ((torch.cat([dw, db[None]]) - mean).abs() < 5 * se).all()


def test_spectrum_has_p_off_plane_and_the_closed_form_in_plane():
    w = torch.tensor([0.3, 0.4, 0.0, 1.2], dtype=torch.float64)
    b = torch.tensor(-2.0, dtype=torch.float64)
    p = relu.truncated_gaussian_terms(w, b)["p"]
    eigenvalues = torch.linalg.eigvalsh(relu.activation_matrix(w, b))
    lam_plus, lam_minus = relu.activation_spectrum(p.reshape(1))
    expected = torch.sort(torch.cat([p.repeat(3), lam_plus, lam_minus])).values
    torch.testing.assert_close(eigenvalues, expected)
    assert lam_minus.item() < p.item() < lam_plus.item()


def test_linearised_time_is_the_off_plane_decay_of_the_mean():
    """Iterating E[delta] <- (I - mu H*) E[delta] from an off-plane error crosses tolerance at
    the predicted step (Eq. 5), and the time scales as 1/p."""
    mu, tolerance = 0.05, 0.1
    for p in (0.4, 0.05):
        w = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
        b = torch.special.ndtri(torch.tensor(p, dtype=torch.float64))
        h = relu.activation_matrix(w, b)
        delta = torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64)
        steps = 0
        while delta.norm() > tolerance:
            delta = delta - mu * h @ delta
            steps += 1
        predicted = relu.linearised_convergence_time(torch.tensor(p), mu, tolerance).item()
        assert math.ceil(predicted) == steps
    ratio = relu.linearised_convergence_time(torch.tensor([0.05, 0.4]), mu, tolerance)
    assert ratio[0] / ratio[1] == pytest.approx(8.0, rel=0.05)


# --- smoke runs of both experiments ----------------------------------------------------------


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    def run(name):
        out = tmp_path_factory.mktemp(name.replace(".", "_"))
        result = runner.run(registry.get(name), scale="smoke", seed=0, out=out / "run")
        return result, out / "run"

    return run


def test_layers_smoke_learns_and_reports_every_layer(smoke):
    result, out = smoke("relu.layers")
    metrics = result["metrics"]
    assert metrics["test_accuracy"] > 0.4 and metrics["test_accuracy_residual"] > 0.4  # chance 0.1
    assert metrics["parameters"] == metrics["parameters_residual"]
    for k in range(1, 7):  # smoke: 2 stages x 3 convs
        for suffix in ("", "_residual"):
            assert 0.0 < metrics[f"activation_probability_layer_{k}{suffix}"] < 1.0
            assert 0.0 <= metrics[f"dead_fraction_layer_{k}{suffix}"] <= 1.0
    assert "activation_probability_layer_7" not in metrics
    assert (out / "plots" / "activation_probability.png").is_file()
    assert any(note.startswith("Claim 1a") for note in result["notes"])
    assert any(note.startswith("Claim 1b") for note in result["notes"])


def test_layers_resumed_mid_run_equals_an_unbroken_run(tmp_path, monkeypatch):
    """The init measurements, both nets and the monitors' mid-epoch counts survive a resume."""
    exp = registry.get("relu.layers")
    tiny = {"n_train": "200", "n_test": "100", "batch_size": "20", "epochs": "3"}
    reference = runner.run(exp, scale="smoke", seed=3, out=tmp_path / "ref", overrides=tiny)

    monkeypatch.setenv("CREDITLAB_CHECKPOINT_EVERY", "0")  # a checkpoint at every boundary
    boundary, calls = runner.RunContext.boundary, []

    def crash_after_13(self, state_fn):
        boundary(self, state_fn)
        calls.append(1)
        if len(calls) == 13:  # in the second of three epochs of 10 batches
            raise KeyboardInterrupt

    monkeypatch.setattr(runner.RunContext, "boundary", crash_after_13)
    with pytest.raises(KeyboardInterrupt):
        runner.run(exp, scale="smoke", seed=3, out=tmp_path / "cut", overrides=tiny)
    monkeypatch.setattr(runner.RunContext, "boundary", boundary)
    resumed = runner.resume(tmp_path / "cut")
    assert resumed["metrics"] == reference["metrics"]
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text()
    assert lines == (tmp_path / "ref" / "metrics.jsonl").read_text()
    assert "train_relu_residual_activation_probability_mean" in lines


def test_single_unit_smoke_matches_the_theory(smoke):
    result, out = smoke("relu.single_unit")
    metrics = result["metrics"]
    gap = metrics["max_relative_gap_convergence_time"]
    # A rate of mu instead of mu p, or H without its phi terms, misses by far more than this.
    assert math.isfinite(gap) and gap < 0.2
    assert metrics["max_relative_gap_convergence_time_near_optimum"] < 0.1
    assert metrics["convergence_time_exponent"] == pytest.approx(-1.0, abs=0.1)  # the 1/p law
    assert (out / "plots" / "convergence_time.png").is_file()
