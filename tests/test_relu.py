"""ReLU liveness monitor (creditlab.diagnostics.relu) and the Douglas & Yu experiments."""

import copy
import json
import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from creditlab import registry, runner
from creditlab.diagnostics.relu import DeadReluWarning, ReluMonitor, too_dead
from creditlab.methods.relu import learners, nets, theory, verdicts

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


def test_dead_fraction_and_the_warning_message():
    net = dead_layer(n_dead=2)
    with ReluMonitor(net, threshold=0.1) as mon:
        net(torch.randn(50, 2))
    assert mon.dead_fraction() == {"1": pytest.approx(0.2)}
    assert mon.activation_probability() == {"1": pytest.approx(0.8)}
    with pytest.warns(DeadReluWarning, match="2 of 10 units"):
        assert mon.check() == ["1"]


# (dead units of 20, threshold, flagged): exactly at the threshold warns ("at least"), one unit
# fewer does not, one more does; the thresholds are exact multiples of 1/20 in binary-safe form.
AT_BELOW_ABOVE = [
    (2, 0.1, True),  # at: 2/20 = 0.1
    (1, 0.1, False),  # just below
    (3, 0.1, True),  # just above
    (5, 0.25, True),  # at
    (4, 0.25, False),  # just below
    (6, 0.25, True),  # just above
    (0, 0.0, True),  # threshold 0: every layer is at least 0% dead
    (20, 1.0, True),  # all dead, at threshold 1
    (19, 1.0, False),
]


@pytest.mark.parametrize(("n_dead", "threshold", "flagged"), AT_BELOW_ABOVE)
def test_the_dead_warning_at_just_below_and_just_above_its_threshold(n_dead, threshold, flagged):
    assert too_dead(n_dead / 20, threshold) is flagged
    net = dead_layer(n_dead, width=20)
    with ReluMonitor(net, threshold=threshold) as mon:
        net(torch.randn(30, 2))
    assert mon.summary()["1"].dead_units == n_dead
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert mon.check() == (["1"] if flagged else [])
        mon.epoch_end(0)  # the training callback warns by the same rule
    dead_warnings = [w for w in caught if issubclass(w.category, DeadReluWarning)]
    assert len(dead_warnings) == (2 if flagged else 0)
    if flagged:
        assert f"{n_dead} of 20 units" in str(dead_warnings[0].message)


def test_no_warning_when_told_not_to():
    net = dead_layer(n_dead=5)
    with ReluMonitor(net, threshold=0.1, warn=False) as mon:
        net(torch.randn(10, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mon.check() == ["1"]


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
    plain = nets.StageCNN(residual=False, **spec)
    residual = nets.StageCNN(residual=True, **spec)
    residual.load_state_dict(plain.state_dict())
    x = torch.rand(6, 1, 28, 28)
    with ReluMonitor(residual, warn=False) as mon:
        out = residual(x)
    assert len(mon.summary()) == 6 == len(residual.skip_layers())
    assert residual.skip_layers() == [False, False, True] * 2
    assert plain.skip_layers() == [False] * 6
    assert not torch.allclose(out, plain(x))
    for block in (m for m in residual.modules() if isinstance(m, nets.Block)):
        block.residual = False
    torch.testing.assert_close(residual(x), plain(x))


def test_depth_trend_is_the_spearman_correlation():
    assert verdicts.depth_trend([0.6, 0.5, 0.4, 0.3])[0] == pytest.approx(-1.0)
    assert verdicts.depth_trend([0.3, 0.5, 0.4, 0.6])[0] == pytest.approx(0.8)
    assert verdicts.depth_trend([0.5, 0.5, 0.5]) == (0.0, 1.0)


SPEC = {"widths": (4, 8), "convs_per_stage": 3, "input_size": 12}


def assert_same_weights(plain, residual):
    a, b = plain.state_dict(), residual.state_dict()
    assert list(a) == list(b)  # the same parameters and buffers, under the same names
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_twin_nets_start_from_the_same_weights_and_differ_by_seed():
    plain, residual = nets.twin_nets(SPEC, seed=5)
    assert not any(b.residual for b in plain.modules() if isinstance(b, nets.Block))
    assert all(b.residual for b in residual.modules() if isinstance(b, nets.Block))
    assert_same_weights(plain, residual)
    again, _ = nets.twin_nets(SPEC, seed=5)
    assert_same_weights(plain, again)  # a seed fixes the weights
    other, _ = nets.twin_nets(SPEC, seed=6)
    assert not torch.equal(other.stages[0][0].weight, plain.stages[0][0].weight)
    before = torch.get_rng_state()
    nets.twin_nets(SPEC, seed=7)
    assert torch.equal(torch.get_rng_state(), before)  # the global generator is untouched


@pytest.mark.genuine_data("fashion_mnist")
def test_the_nets_a_run_trains_start_from_the_same_weights(tmp_path, monkeypatch):
    """Spy on what relu.layers hands to training: per seed, the plain and the residual net hold
    identical weights when training starts, and the seeds' weights differ."""
    captured = []

    class Spy(learners.TwinLearner):
        def __init__(self, ctx, plain, residual, *args, **kwargs):
            captured.append((ctx.seed, copy.deepcopy(plain.model), copy.deepcopy(residual.model)))
            super().__init__(ctx, plain, residual, *args, **kwargs)

    monkeypatch.setattr(learners, "TwinLearner", Spy)
    tiny = {"n_train": "100", "n_test": "50", "epochs": "1", "seeds": "2"}
    runner.run(registry.get("relu.layers"), scale="smoke", seed=4, out=tmp_path, overrides=tiny)
    assert [seed for seed, _, _ in captured] == [4, 5]
    for _, plain, residual in captured:
        assert_same_weights(plain, residual)
    first, second = captured[0][1], captured[1][1]
    assert not torch.equal(first.stages[0][0].weight, second.stages[0][0].weight)


def test_plateau_criterion():
    # the best of the last k epochs against the best before them, in units of the first loss
    assert not learners.plateaued([1.0, 0.9], window=2, tolerance=0.01)  # not enough epochs yet
    assert not learners.plateaued([1.0, 0.9, 0.8], window=2, tolerance=0.01)  # 1.0 - 0.8 >= 0.01
    assert learners.plateaued([1.0, 0.5, 0.499, 0.4951], window=2, tolerance=0.01)  # 0.0049 < 0.01
    assert not learners.plateaued([1.0, 0.5, 0.499, 0.489], window=2, tolerance=0.01)  # 0.011
    # a memorised training set: the loss halves every epoch, yet by 0.0075 < 0.02 of the first
    assert learners.plateaued([2.0, 0.01, 0.005, 0.0025], window=2, tolerance=0.01)
    assert not learners.plateaued([2.0, 0.1, 0.05, 0.025], window=2, tolerance=0.01)  # 0.075
    assert learners.plateaued([0.5, 0.4, 0.6, 0.7], window=2, tolerance=0.0)  # worse: a plateau
    assert not learners.plateaued([0.5, 0.4, 0.6, 0.39], window=2, tolerance=0.0)
    assert not learners.plateaued([0.0, 0.0, 0.0], window=1, tolerance=0.5)  # 0 < 0 is false


@pytest.mark.genuine_data("fashion_mnist")
def test_training_stops_at_the_plateau_and_says_so(tmp_path):
    """tolerance 0.99: epoch 2 is a plateau unless its loss fell by 99% of epoch 1's, so both
    nets plateau at epoch 2 of a cap of 5; a window as long as the cap never sees a plateau."""
    exp = registry.get("relu.layers")
    tiny = {"n_train": "100", "n_test": "50", "epochs": "5", "seeds": "1"}
    plateau = {"plateau_epochs": "1", "plateau_tolerance": "0.99"}
    stopped = runner.run(exp, scale="smoke", seed=2, out=tmp_path / "a", overrides=tiny | plateau)
    seeds = json.loads((tmp_path / "a" / "seeds.json").read_text())
    assert seeds[0]["epochs"] == 2 and seeds[0]["converged"]
    assert len(seeds[0]["epoch_loss"]["plain"]) == len(seeds[0]["epoch_loss"]["residual"]) == 2
    assert stopped["metrics"]["epochs_trained_mean"] == 2.0
    assert stopped["metrics"]["seeds_converged"] == 1.0
    assert not any("NOT converged" in note for note in stopped["notes"])

    never = {"plateau_epochs": "5", "plateau_tolerance": "0.99"}
    capped = runner.run(exp, scale="smoke", seed=2, out=tmp_path / "b", overrides=tiny | never)
    seeds = json.loads((tmp_path / "b" / "seeds.json").read_text())
    assert seeds[0]["epochs"] == 5 and not seeds[0]["converged"]
    assert capped["metrics"]["seeds_converged"] == 0.0
    assert any("1 of 1 seeds hit the cap of 5 epochs" in note for note in capped["notes"])


# --- relu.layers: the verdicts follow the numbers ---------------------------------------------


def layers(*rows):
    return np.array(rows, dtype=float)


def claim_1a(notes):
    return next(n for n in notes if n.startswith("Claim 1a"))


def claim_1b(notes):
    return next(n for n in notes if n.startswith("Claim 1b"))


NO_SKIPS = [False] * 4
INIT = layers([0.5, 0.5, 0.5, 0.5])


def test_verdicts_when_both_claims_hold():
    plain = layers([0.45, 0.40, 0.35, 0.30], [0.47, 0.41, 0.33, 0.28], [0.46, 0.39, 0.36, 0.29])
    notes = verdicts.claim_notes(plain, plain, NO_SKIPS, INIT)
    assert (
        "Claim 1a (Pr[y>0] < 0.5 in layers without skips, after training) holds here: 4 of 4"
        in (claim_1a(notes))
    )
    assert "(4 in every seed)" in claim_1a(notes)
    assert "from 0.290 to 0.460" in claim_1a(notes)  # the seed means of the last and first layer
    # Spearman rho of the means (0.46, 0.40, 0.347, 0.29) against 0..3 is -1, p = 0
    assert "decreases with depth) holds in the plain net" in claim_1b(notes)
    assert "= -1.00" in claim_1b(notes) and "3 of 3 seeds have a negative rho" in claim_1b(notes)


def test_verdicts_are_taken_over_the_seed_means_not_one_seed():
    # Seed 1 has every layer below 0.5, seed 2 every layer above; only layer 1's mean is below.
    plain = layers([0.40, 0.45, 0.45, 0.45], [0.55, 0.60, 0.60, 0.60])
    v = verdicts.ClaimVerdicts.measure(plain)
    assert (v.below, v.below_every_seed, v.layers) == (1, 0, 4)
    notes = verdicts.claim_notes(plain, plain, NO_SKIPS, INIT)
    assert ") does not hold here: 1 of 4 plain-net layers" in claim_1a(notes)
    assert "(0 in every seed)" in claim_1a(notes)
    # Seed 1 rises with depth, seed 2 falls steeply: the means (0.5, 0.455, 0.41, 0.365) fall.
    plain = layers([0.40, 0.41, 0.42, 0.43], [0.60, 0.50, 0.40, 0.30])
    notes = verdicts.claim_notes(plain, plain, NO_SKIPS, INIT)
    assert ") holds in most layers, not all here: 3 of 4" in claim_1a(notes)
    assert "(2 in every seed)" in claim_1a(notes)  # layer 2 of seed 2 is 0.50, not below
    assert "decreases with depth) holds in the plain net" in claim_1b(notes)
    assert "= -1.00" in claim_1b(notes) and "1 of 2 seeds have a negative rho" in claim_1b(notes)


@pytest.mark.parametrize(
    ("means", "below_half"),
    [
        ([0.40, 0.45, 0.49, 0.60], "holds in most layers, not all"),  # 3 of 4
        ([0.40, 0.45, 0.50, 0.60], "does not hold"),  # 2 of 4: 0.5 itself is not below 0.5
        ([0.55, 0.60, 0.70, 0.51], "does not hold"),  # 0 of 4
        ([0.49, 0.45, 0.30, 0.10], "holds"),
    ],
)
def test_claim_1a_verdict_words(means, below_half):
    notes = verdicts.claim_notes(layers(means), layers(means), NO_SKIPS, INIT)
    below = sum(m < 0.5 for m in means)
    assert f") {below_half} here: {below} of 4 plain-net layers" in claim_1a(notes)


@pytest.mark.parametrize(
    ("means", "falls"),
    [
        ([0.30, 0.35, 0.40, 0.45, 0.50], "does not hold"),  # rho = +1
        ([0.40, 0.42, 0.38, 0.41, 0.39], "is not supported"),  # rho = -0.1, p = 0.87
        ([0.50, 0.45, 0.40, 0.35, 0.30], "holds"),  # rho = -1
        ([0.40, 0.40, 0.40, 0.40, 0.40], "does not hold"),  # constant: rho = 0
    ],
)
def test_claim_1b_verdict_words(means, falls):
    rho, pvalue = stats.spearmanr(range(5), means) if np.ptp(means) else (0.0, 1.0)
    notes = verdicts.claim_notes(layers(means), layers(means), [False] * 5, layers([0.5] * 5))
    assert f"decreases with depth) {falls}" in claim_1b(notes)
    assert f"= {rho:+.2f} (p = {pvalue:.3f}, 5 layers)" in claim_1b(notes)


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
    h = theory.activation_matrix(w, b)
    torch.testing.assert_close(h, h_mc, atol=6e-3, rtol=0)
    terms = theory.truncated_gaussian_terms(w, b)
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
    dw, db = theory.expected_update(w, b, w_star, b_star, mu)
    mean, se = update_mc.mean(0), update_mc.std(0) / math.sqrt(len(x))
    assert ((torch.cat([dw, db[None]]) - mean).abs() < 5 * se).all()


def test_spectrum_has_p_off_plane_and_the_closed_form_in_plane():
    w = torch.tensor([0.3, 0.4, 0.0, 1.2], dtype=torch.float64)
    b = torch.tensor(-2.0, dtype=torch.float64)
    p = theory.truncated_gaussian_terms(w, b)["p"]
    eigenvalues = torch.linalg.eigvalsh(theory.activation_matrix(w, b))
    lam_plus, lam_minus = theory.activation_spectrum(p.reshape(1))
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
        h = theory.activation_matrix(w, b)
        delta = torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64)
        steps = 0
        while delta.norm() > tolerance:
            delta = delta - mu * h @ delta
            steps += 1
        predicted = theory.linearised_convergence_time(torch.tensor(p), mu, tolerance).item()
        assert math.ceil(predicted) == steps
    ratio = theory.linearised_convergence_time(torch.tensor([0.05, 0.4]), mu, tolerance)
    assert ratio[0] / ratio[1] == pytest.approx(8.0, rel=0.05)


# --- smoke runs of both experiments ----------------------------------------------------------


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Run an experiment's smoke scale once per module; every test reads the same run."""
    done = {}

    def run(name):
        if name not in done:
            out = tmp_path_factory.mktemp(name.replace(".", "_")) / "run"
            done[name] = runner.run(registry.get(name), scale="smoke", seed=0, out=out), out
        return done[name]

    return run


@pytest.mark.genuine_data("fashion_mnist")
def test_layers_smoke_learns_and_reports_every_layer(smoke):
    result, out = smoke("relu.layers")
    metrics = result["metrics"]
    assert result["data"]["name"] == "fashion_mnist"  # the config's dataset, not a fixed one
    assert metrics["test_accuracy"] > 0.4 and metrics["test_accuracy_residual"] > 0.4  # chance 0.1
    assert metrics["parameters"] == metrics["parameters_residual"]
    for k in range(1, 7):  # smoke: 2 stages x 3 convs
        for suffix in ("", "_residual"):
            assert 0.0 < metrics[f"activation_probability_layer_{k}{suffix}"] < 1.0
            assert 0.0 <= metrics[f"dead_fraction_layer_{k}{suffix}"] <= 1.0
    assert "activation_probability_layer_7" not in metrics
    assert (out / "plots" / "activation_probability.png").is_file()


@pytest.mark.genuine_data("fashion_mnist")
def test_layers_smoke_aggregates_every_seed(smoke):
    """The per-layer metrics are the mean and sample sd over the seeds in seeds.json."""
    result, out = smoke("relu.layers")
    metrics = result["metrics"]
    seeds = json.loads((out / "seeds.json").read_text())
    assert [s["seed"] for s in seeds] == [0, 1] and metrics["seeds"] == 2.0  # ctx.seed, +1
    for net, suffix in (("plain", ""), ("residual", "_residual")):
        values = np.array([s["trained"][net][0] for s in seeds])  # (seeds, layers)
        assert values.shape == (2, 6) and not np.allclose(values[0], values[1])
        for k in range(1, 7):
            column = values[:, k - 1]
            mean = metrics[f"activation_probability_layer_{k}{suffix}"]
            sd = metrics[f"activation_probability_std_layer_{k}{suffix}"]
            assert mean == pytest.approx((column[0] + column[1]) / 2, abs=1e-12)
            assert sd == pytest.approx(abs(column[0] - column[1]) / math.sqrt(2), abs=1e-12)
        accuracy = [s["final"][net]["test_accuracy"] for s in seeds]
        assert metrics[f"test_accuracy{suffix}"] == pytest.approx(sum(accuracy) / 2)


@pytest.mark.genuine_data("fashion_mnist")
def test_layers_smoke_verdicts_agree_with_its_metrics(smoke):
    """Recompute both verdicts from the recorded per-layer means, by the rules as stated."""
    result, _ = smoke("relu.layers")
    metrics, notes = result["metrics"], result["notes"]
    means = [metrics[f"activation_probability_layer_{k}"] for k in range(1, 7)]
    below = sum(m < 0.5 for m in means)
    if below == 6:
        words = "holds"
    elif below > 3:
        words = "holds in most layers, not all"
    else:
        words = "does not hold"
    assert metrics["layers_below_half"] == below
    assert f") {words} here: {below} of 6 plain-net layers" in claim_1a(notes)
    assert f"from {min(means):.3f} to {max(means):.3f}" in claim_1a(notes)
    rho, pvalue = stats.spearmanr(range(6), means)
    if rho < 0 and pvalue < 0.05:
        words = "holds"
    elif rho < 0:
        words = "is not supported"
    else:
        words = "does not hold"
    assert f"decreases with depth) {words} in the plain net" in claim_1b(notes)
    assert f"= {rho:+.2f} (p = {pvalue:.3f}, 6 layers)" in claim_1b(notes)
    assert metrics["depth_spearman_rho"] == pytest.approx(rho)


def crash_at(monkeypatch, boundaries):
    """Make the run stop (as a kill would) right after its ``boundaries``-th step boundary."""
    boundary, calls = runner.RunContext.boundary, []

    def crashing(self, state_fn):
        boundary(self, state_fn)
        calls.append(1)
        if len(calls) == boundaries:
            raise KeyboardInterrupt

    monkeypatch.setattr(runner.RunContext, "boundary", crashing)
    return lambda: monkeypatch.setattr(runner.RunContext, "boundary", boundary)


@pytest.mark.genuine_data("fashion_mnist")
def test_layers_resumed_mid_run_equals_an_unbroken_run(tmp_path, monkeypatch):
    """The init measurements, both nets, the monitors' mid-epoch counts, the plateau state and
    the finished seeds survive a resume: in seed 1's last epoch (just before the plateau stops
    it) and in seed 2's first."""
    exp = registry.get("relu.layers")
    tiny = {"n_train": "200", "n_test": "100", "batch_size": "20", "epochs": "4", "seeds": "2"}
    tiny |= {"plateau_epochs": "1", "plateau_tolerance": "0.99"}  # each seed stops at epoch 2
    reference = runner.run(exp, scale="smoke", seed=3, out=tmp_path / "ref", overrides=tiny)
    ref_lines = (tmp_path / "ref" / "metrics.jsonl").read_text()
    monkeypatch.setenv("CREDITLAB_CHECKPOINT_EVERY", "0")  # a checkpoint at every boundary
    for crash in (13, 25):  # 10 batches an epoch, 20 boundaries a seed
        restore = crash_at(monkeypatch, crash)
        with pytest.raises(KeyboardInterrupt):
            runner.run(exp, scale="smoke", seed=3, out=tmp_path / f"cut{crash}", overrides=tiny)
        restore()
        resumed = runner.resume(tmp_path / f"cut{crash}")
        assert resumed["metrics"] == reference["metrics"]
        assert resumed["notes"] == reference["notes"]
        assert (tmp_path / f"cut{crash}" / "metrics.jsonl").read_text() == ref_lines
    assert reference["metrics"]["epochs_trained_mean"] == 2.0
    assert "train_relu_residual_activation_probability_mean" in ref_lines


def test_single_unit_smoke_matches_the_theory(smoke):
    result, out = smoke("relu.single_unit")
    metrics = result["metrics"]
    gap = metrics["max_relative_gap_convergence_time"]
    # A rate of mu instead of mu p, or H without its phi terms, misses by far more than this.
    assert math.isfinite(gap) and gap < 0.2
    assert metrics["max_relative_gap_convergence_time_near_optimum"] < 0.1
    assert metrics["convergence_time_exponent"] == pytest.approx(-1.0, abs=0.1)  # the 1/p law
    assert (out / "plots" / "convergence_time.png").is_file()


@pytest.mark.parametrize("stop_after", [1, 4])
def test_single_unit_resumed_mid_simulation_equals_an_unbroken_run(
    smoke, check_resumes_exactly, stop_after
):
    """The simulation's chunks are step boundaries: stopped in the middle (the runs' errors,
    their crossing counts and the input generator in the checkpoint), it resumes exactly."""
    reference, out = smoke("relu.single_unit")
    exp = registry.get("relu.single_unit")
    check_resumes_exactly(exp, stop_after, reference, out, scale="smoke", seed=0)
