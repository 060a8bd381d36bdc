"""The dendritic microcircuit against the paper's claims and an independent per-circuit loop."""

import copy
import math

import pytest
import torch
from torch import nn

from creditlab import registry, runner
from creditlab.diagnostics.alignment import alignment
from creditlab.methods.dendritic import (
    ContinuousClassifier,
    experiments,
    learners,
    mnist,
    sweeps,
)
from creditlab.methods.dendritic.microcircuit import (
    Conductances,
    Microcircuit,
    Transfer,
    backprop_reference,
)
from creditlab.methods.dendritic.sweeps import MixingFactors

F64 = torch.float64


def circuit(sizes, seed=0, **kwargs):
    torch.manual_seed(seed)
    kwargs = {"noise": 0.0, "dtype": F64, **kwargs}
    return Microcircuit(sizes, generator=torch.Generator().manual_seed(seed), **kwargs)


# --- the self-predicting state -------------------------------------------------------------


@pytest.mark.parametrize("prospective", [False, True])
def test_self_predicting_state_silences_the_apical_compartments(prospective):
    net = circuit([6, 8, 7, 4], prospective=prospective)
    net.W_PP_up[0].mul_(4.0)  # voltages around phi's threshold, so rates vary
    net.reset_state(3)
    x = torch.rand(3, 6, dtype=F64) * 2 - 1
    net.run(x, None, duration=20.0, learn=False)
    assert max(float(v.abs().max()) for v in net.apical_potential) > 1e-3  # random W_IP, W_PI
    net.self_predicting_()
    net.run(x, None, duration=300.0, learn=False)
    assert all(float(v.abs().max()) < 1e-6 for v in net.apical_potential)
    # and the interneurons reproduce their partners' voltages
    for l, u_I in enumerate(net.interneuron_potential):
        torch.testing.assert_close(u_I, net.somatic_potential[l + 1], atol=1e-6, rtol=0)


def test_plasticity_learns_the_self_predicting_state_from_a_random_start():
    net = circuit([10, 12, 5], eta_up=0.0, eta_IP=0.5, eta_PI=1.0, dt=0.5, prospective=True)
    net.W_PP_up[0].mul_(4.0)
    net.W_PP_up[1].mul_(7.0)
    net.reset_state(16)

    def present(n):
        for i in range(n):
            x = torch.rand(16, 10, generator=torch.Generator().manual_seed(i), dtype=F64)
            net.run(x * 2 - 1, None, duration=10.0)
        return float(net.apical_potential[0].pow(2).mean().sqrt())

    before = present(1)
    after = present(150)
    assert after < 0.2 * before


# --- somatic noise (Eqs. 1-2: sigma xi(t), Euler-Maruyama) ---------------------------------


def silent_circuit(dt, noise, sizes=(3, 40, 20)):
    """All weights zero and no nudging (g_som = 0): every soma is an independent
    Ornstein-Uhlenbeck process du = -G u dt + sigma dW, with G its total conductance."""
    g = Conductances(g_som=0.0)
    net = circuit(list(sizes), conductances=g, noise=noise, init_scale=0.0, dt=dt)
    return net, {
        "hidden": g.g_lk + g.g_B + g.g_A,
        "output": g.g_lk + g.g_B,
        "inter": g.g_lk + g.g_D,
    }


def noisy_potentials(net, n_steps, batch_size):
    net.reset_state(batch_size)
    x = torch.zeros(batch_size, net.sizes[0], dtype=F64)
    for _ in range(n_steps):
        net.step(x, learn=False)
    hidden, output = net.somatic_potential
    return {"hidden": hidden, "output": output, "inter": net.interneuron_potential[0]}


@pytest.mark.parametrize("dt", [0.02, 0.1, 0.25])
def test_noise_integrates_to_the_ornstein_uhlenbeck_variance(dt):
    """From rest, after time t, E[u^2] is the closed form of the Euler-Maruyama scheme,
    sigma^2 dt (1 - a^2n) / (1 - a^2) with a = 1 - G dt (noise sigma sqrt(dt) N(0, 1) per
    step), which tends to the continuous sigma^2 / (2G) (1 - exp(-2 G t)) as dt -> 0.
    Noise scaled by dt instead of sqrt(dt) would be 1/dt = 4 to 50 times too small."""
    sigma, t, batch = 0.3, 0.5, 1000
    n = round(t / dt)
    net, G = silent_circuit(dt, sigma)
    u = noisy_potentials(net, n, batch)
    for name, g in G.items():
        a = 1 - g * dt
        discrete = sigma**2 * dt * (1 - a ** (2 * n)) / (1 - a**2)
        continuous = sigma**2 / (2 * g) * (1 - math.exp(-2 * g * t))
        # >= 20,000 samples: relative s.d. sqrt(2 / 20000) = 1%, the tolerance is 8 of them
        assert float(u[name].pow(2).mean()) == pytest.approx(discrete, rel=0.08), name
        if dt <= 0.02:
            assert discrete == pytest.approx(continuous, rel=0.04)


def test_noise_is_independent_across_circuits_and_neurons():
    """Each circuit of a batch draws its own noise, and each neuron its own: the cosine
    between two circuits' voltage vectors (or two neurons' across circuits) is about
    1/sqrt(n), not 1 as with one draw shared by all circuits."""
    net, _ = silent_circuit(0.1, 0.1)
    u = noisy_potentials(net, 20, 64)
    u = torch.cat([u["hidden"], u["output"], u["inter"]], 1)  # (64 circuits, 80 neurons)
    for m in (u, u.T):
        unit = m / m.norm(dim=1, keepdim=True)
        cos2 = (unit @ unit.T).pow(2)
        off_diagonal = (cos2.sum() - cos2.diagonal().sum()) / (len(m) * (len(m) - 1))
        assert float(off_diagonal) < 0.05  # independent: about 1/80 (1/64 for neurons)


def test_noise_is_reproducible_from_the_seed():
    runs = []
    for _ in range(2):
        net, _ = silent_circuit(0.1, 0.1)
        runs.append(noisy_potentials(net, 5, 4)["hidden"])
    torch.testing.assert_close(runs[0], runs[1], atol=0, rtol=0)
    assert float(runs[0].abs().min()) > 0


# --- relation to backprop (paper Sec. 3.1) --------------------------------------------------


def settled_errors(net, x, u_target, duration=400.0):
    net.reset_state(len(x))
    net.run(x, u_target, duration=duration, learn=False)
    return net.dendritic_errors(u_target)


@pytest.mark.parametrize("transfer", ["softplus", "logistic"])
def test_with_weak_nudging_and_symmetric_feedback_hidden_updates_follow_backprop(transfer):
    """To first order in the nudging strength, with top-down weights equal to the
    transposed forward weights, every hidden layer's Eq. 7 update is backprop's."""
    g = Conductances(g_som=1e-3)
    net = circuit([5, 7, 6, 3], phi=Transfer(transfer), conductances=g)
    for w in net.W_PP_up:
        w.mul_(3.0)
    net.symmetric_topdown_()
    net.self_predicting_()
    x = torch.rand(4, 5, dtype=F64) * 2 - 1
    u_target = torch.randn(4, 3, dtype=F64) * 2
    errors = settled_errors(net, x, u_target)
    pre = [net.input_rate, *net.rate[:-1]]
    reference = backprop_reference(net, x, errors[-1])
    for l in range(net.n_layers - 1):
        update = {f"W_PP_up.{l}": errors[l].T @ pre[l]}
        assert alignment(update, reference).overall_cosine > 0.99

    # the same circuit with random top-down weights is far from backprop: the check can fail
    torch.manual_seed(1)
    for w in net.W_PP_down:
        w.copy_(torch.rand_like(w) * 2 - 1)
    net.self_predicting_()
    errors = settled_errors(net, x, u_target)
    reference = backprop_reference(net, x, errors[-1])
    update = {"W_PP_up.0": errors[0].T @ net.input_rate}
    assert alignment(update, reference).overall_cosine < 0.9


def test_output_update_is_the_delta_rule_with_the_nudged_target():
    """Settled with a target, the output soma is the convex mix (1 - lam) v_B + lam u_trgt
    (the sweeps mode's output nudging), and Eq. 7 for the output layer is exactly backprop's
    delta rule: the cross-entropy gradient for logistic units with phi(u_N) as target."""
    g = Conductances()
    net = circuit([5, 6, 4], phi=Transfer("logistic"), conductances=g, bias=True)
    net.self_predicting_()
    x = torch.rand(3, 5, dtype=F64)
    u_target = torch.randn(3, 4, dtype=F64)
    settled_errors(net, x, u_target, duration=200.0)
    c = net.attenuation[-1]
    v_hat = c * net.basal_potential[-1]
    lam = g.g_som / (g.g_lk + g.g_B + g.g_som)
    torch.testing.assert_close(
        net.somatic_potential[-1], (1 - lam) * v_hat + lam * u_target, atol=1e-10, rtol=0
    )

    P = net.plasticity(u_target)
    layer = nn.Linear(6, 4).double()
    with torch.no_grad():
        layer.weight.copy_(net.W_PP_up[-1])
        layer.bias.copy_(net.b_PP_up[-1])
    logits = c * layer(net.rate[0])
    target = torch.sigmoid(net.somatic_potential[-1])
    nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="sum").backward()
    torch.testing.assert_close(P["W_PP_up.1"], -layer.weight.grad / c, atol=1e-10, rtol=0)
    torch.testing.assert_close(P["b_PP_up.1"], -layer.bias.grad / c, atol=1e-10, rtol=0)


def test_sweeps_output_update_with_full_nudging_is_the_cross_entropy_gradient():
    net = circuit([8, 6, 3], phi=Transfer("logistic"), bias=True)
    net.self_predicting_()
    x = torch.rand(5, 8, dtype=F64)
    target_rate = torch.full((5, 3), 0.1, dtype=F64)
    target_rate[torch.arange(5), torch.tensor([0, 2, 1, 1, 0])] = 0.8
    updates, _ = sweeps.sweep_updates(net, x, torch.logit(target_rate), MixingFactors(1.0))
    layers = [nn.Linear(8, 6).double(), nn.Linear(6, 3).double()]
    with torch.no_grad():
        for layer, w, b in zip(layers, net.W_PP_up, net.b_PP_up, strict=True):
            layer.weight.copy_(w)
            layer.bias.copy_(b)
    c = net.attenuation
    logits = c[1] * layers[1](torch.sigmoid(c[0] * layers[0](x)))
    nn.functional.binary_cross_entropy_with_logits(logits, target_rate, reduction="sum").backward()
    torch.testing.assert_close(updates["W_PP_up.1"], -layers[1].weight.grad / c[1])
    torch.testing.assert_close(updates["b_PP_up.1"], -layers[1].bias.grad / c[1])


def test_sweeps_hidden_updates_are_backprop_at_the_self_predicting_start():
    net = circuit([8, 10, 9, 3], phi=Transfer("logistic"), bias=True)
    net.symmetric_topdown_()
    net.self_predicting_()
    x = torch.rand(6, 8, dtype=F64)
    lam = MixingFactors(output=0.01, interneuron=0.01, apical=0.01)
    state = sweeps.two_sweeps(net, x, torch.randn(6, 3, dtype=F64), lam)
    errors, _ = sweeps.sweep_errors(net, x, state, lam)
    reference = backprop_reference(net, x, errors[-1])
    pre = [x, *(torch.sigmoid(v) for v in state.basal[:-1])]
    for l in range(2):
        update = {f"W_PP_up.{l}": errors[l].T @ pre[l]}
        assert alignment(update, reference).overall_cosine > 0.999
        # rescaled by the inverse mixing factors, the updates have backprop's magnitude up to
        # the basal attenuations c_k of the hidden layers from l up (backprop's chain carries
        # da_k/dr_{k-1} = c_k W_k, the microcircuit's error travels through W_k^T alone)
        scale = update[f"W_PP_up.{l}"].norm() / reference[f"W_PP_up.{l}"].norm()
        assert scale == pytest.approx(1 / math.prod(net.attenuation[l:-1]), rel=0.02)


@pytest.mark.parametrize("prospective", [False, True])
def test_dendritic_errors_are_the_errors_plasticity_learns_from(prospective):
    """The Eq. 7 errors reported for the comparison with backprop are those that move the
    forward weights: P[W_PP_up.l] = e_l^T r_{l-1}, P[b_PP_up.l] = sum of e_l."""
    net = circuit([4, 6, 5, 3], phi=Transfer("logistic"), bias=True, prospective=prospective)
    x = torch.rand(3, 4, dtype=F64)
    u_target = torch.rand(3, 3, dtype=F64) * 4
    net.reset_state(3)
    net.run(x, u_target, duration=3.0, learn=False)  # mid-transient: every error non-zero
    errors, P = net.dendritic_errors(u_target), net.plasticity(u_target)
    pre = [net.input_rate, *net.rate[:-1]]
    for l, e in enumerate(errors):
        assert float(e.abs().max()) > 1e-3
        if not prospective:  # Eq. 7 by hand: phi(u_k) - phi(c_k v_B,k)
            v_B = pre[l] @ net.W_PP_up[l].T + net.b_PP_up[l]
            expected = torch.sigmoid(net.somatic_potential[l])
            expected -= torch.sigmoid(net.attenuation[l] * v_B)
            torch.testing.assert_close(e, expected, atol=1e-12, rtol=0)
        torch.testing.assert_close(P[f"W_PP_up.{l}"], e.T @ pre[l], atol=1e-12, rtol=0)
        torch.testing.assert_close(P[f"b_PP_up.{l}"], e.sum(0), atol=1e-12, rtol=0)


# --- the batched simulation equals a loop over circuits ------------------------------------


def reference_loop(net, xs, targets, steps, eta):
    """Eqs. 1-10 for one circuit at a time, as vectors, written independently of the
    batched code; the plasticity of all circuits is summed before the shared weights move."""
    g, phi, dt, N = net.g, net.phi, net.dt, net.n_layers
    W = {k: w.clone() for k, w in net.weights().items()}
    Delta = {k: torch.zeros_like(w) for k, w in W.items()}
    n = len(xs)
    u = [[torch.zeros(s, dtype=F64) for s in net.sizes[1:]] for _ in range(n)]
    uI = [[torch.zeros(s, dtype=F64) for s in net.sizes[2:]] for _ in range(n)]
    r_in = [torch.zeros(net.sizes[0], dtype=F64) for _ in range(n)]
    r = [[phi(v) for v in u[b]] for b in range(n)]
    rI = [[phi(v) for v in uI[b]] for b in range(n)]
    c_hid = g.g_B / (g.g_lk + g.g_B + g.g_A)
    c_out = g.g_B / (g.g_lk + g.g_B)
    c_I = g.g_D / (g.g_lk + g.g_D)
    for _ in range(steps):
        P = {k: torch.zeros_like(w) for k, w in W.items()}
        new_u, new_uI, new_r, new_rI = [], [], [], []
        for b in range(n):
            pre = [r_in[b], *r[b][:-1]]
            soma, inter, du, duI = [], [], [], []
            for k in range(N):
                vB = W[f"W_PP_up.{k}"] @ pre[k] + W[f"b_PP_up.{k}"]
                if k < N - 1:
                    vA = W[f"W_PP_down.{k}"] @ r[b][k + 1] + W[f"W_PI.{k}"] @ rI[b][k]
                    I, G = g.g_B * vB + g.g_A * vA, g.g_lk + g.g_B + g.g_A
                else:
                    I = g.g_B * vB + g.g_som * targets[b]
                    G = g.g_lk + g.g_B + g.g_som
                V = I / G if net.prospective else u[b][k]
                soma.append(V)
                du.append(I - G * u[b][k])
                c = c_hid if k < N - 1 else c_out
                e = phi(V) - phi(c * vB)  # Eq. 7
                P[f"W_PP_up.{k}"] += torch.outer(e, pre[k])
                P[f"b_PP_up.{k}"] += e
                if k < N - 1:
                    P[f"W_PI.{k}"] += torch.outer(-vA, rI[b][k])  # Eq. 9
                    td = W[f"W_PP_down.{k}"] @ r[b][k + 1]
                    P[f"W_PP_down.{k}"] += torch.outer(phi(V) - phi(td), r[b][k + 1])  # Eq. 10
            for k in range(N - 1):
                vI = W[f"W_IP.{k}"] @ r[b][k] + W[f"b_IP.{k}"]
                I = g.g_D * vI + g.g_som * soma[k + 1]
                G = g.g_lk + g.g_D + g.g_som
                V = I / G if net.prospective else uI[b][k]
                inter.append(V)
                duI.append(I - G * uI[b][k])
                e = phi(V) - phi(c_I * vI)  # Eq. 8
                P[f"W_IP.{k}"] += torch.outer(e, r[b][k])
                P[f"b_IP.{k}"] += e
            new_u.append([u[b][k] + dt * du[k] for k in range(N)])
            new_uI.append([uI[b][k] + dt * duI[k] for k in range(N - 1)])
            src, srcI = (soma, inter) if net.prospective else (new_u[b], new_uI[b])
            new_r.append([phi(v) for v in src])
            new_rI.append([phi(v) for v in srcI])
            r_in[b] = r_in[b] + dt / net.tau_in * (xs[b] - r_in[b])
        for k in W:
            W[k] = W[k] + dt * Delta[k]
            Delta[k] = Delta[k] + dt / net.tau_w * (
                eta[k.split(".")[0].replace("b_", "W_")][int(k[-1])] * P[k] - Delta[k]
            )
        u, uI, r, rI = new_u, new_uI, new_r, new_rI
    return W, u, uI


@pytest.mark.parametrize("prospective", [False, True])
def test_batched_simulation_equals_a_loop_over_circuits(prospective):
    kwargs = {"eta_up": [0.3, 0.2], "eta_IP": 0.4, "eta_PI": 0.5, "eta_down": 0.6}
    eta = {"W_PP_up": [0.3, 0.2], "W_IP": [0.4], "W_PI": [0.5], "W_PP_down": [0.6]}
    net = circuit([3, 4, 2], bias=True, tau_w=1.0, prospective=prospective, **kwargs)
    net.W_PP_up[0].mul_(3.0)
    start = {k: w.clone() for k, w in net.weights().items()}
    xs = torch.rand(3, 3, dtype=F64) * 2 - 1  # each circuit its own pattern and target
    targets = torch.rand(3, 2, dtype=F64) * 4
    W, u, uI = reference_loop(net, xs, targets, steps=40, eta=eta)
    net.reset_state(3)
    for _ in range(40):
        net.step(xs, targets)
    for k, w in net.weights().items():
        torch.testing.assert_close(w, W[k], atol=1e-12, rtol=1e-10, msg=k)
        assert not torch.allclose(w, start[k]), f"{k} did not learn"
    for k in range(2):
        torch.testing.assert_close(net.somatic_potential[k], torch.stack([v[k] for v in u]))
    torch.testing.assert_close(net.interneuron_potential[0], torch.stack([v[0] for v in uI]))


# --- the continuous-time classifier learns from its target --------------------------------


def test_continuous_classifier_learns_from_its_target():
    """Each example drives one circuit with its target current on: three Gaussian classes
    in 6-d, a 6-10-3 logistic microcircuit from the self-predicting state (latent
    equilibrium, no noise). Without its target the circuit would stay self-predicting and
    no Eq. 7 error would move the forward weights."""
    gen = torch.Generator().manual_seed(0)
    means = torch.rand(3, 6, generator=gen, dtype=F64) * 2 - 1

    def task(n):
        y = torch.randint(3, (n,), generator=gen)
        return means[y] + 0.3 * torch.randn(n, 6, generator=gen, dtype=F64), y

    x_test, y_test = task(300)
    kwargs = {"eta_up": 0.2, "eta_IP": 0.0, "eta_PI": 0.0, "tau_w": 5.0, "dt": 0.5}
    net = circuit(
        [6, 10, 3], seed=1, phi=Transfer("logistic"), bias=True, prospective=True, **kwargs
    )
    net.self_predicting_()
    clf = ContinuousClassifier(net, pattern_ms=10.0, n_classes=3)
    before = clf.evaluate(x_test, y_test)
    for _ in range(200):
        clf.train_step(*task(16))
    after = clf.evaluate(x_test, y_test)
    assert before["accuracy"] < 0.4  # chance is 1/3
    assert after["accuracy"] > 0.75
    assert after["loss"] < 0.4 * before["loss"]
    # the output rates moved towards the target rates 0.1 / 0.8 of each example's class
    rate = torch.sigmoid(net.predict(x_test)[-1])
    right = rate[torch.arange(len(y_test)), y_test]
    assert float(right.mean()) > 0.5 > float((rate.sum(1) - right).mean() / 2)


# --- the experiments learn -----------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    def run(name):
        out = tmp_path_factory.mktemp(name.replace(".", "_")) / "run"
        return runner.run(registry.get(name), scale="smoke", seed=3, out=out)["metrics"]

    return run


def test_smoke_self_predicting_state_is_learned(smoke):
    m = smoke("dendritic.self_predicting")
    assert m["final_apical_rms"] < 0.4 * m["initial_apical_rms"]


def test_smoke_teacher_student_learns_in_both_layers(smoke):
    m = smoke("dendritic.teacher")
    assert m["test_mse"] < 0.75 * m["initial_test_mse"]
    assert m["test_mse_shallow"] < m["initial_test_mse"]
    # the microcircuit's hidden layer learns (the shallow learner's stays put: 0); at the
    # smoke scale it moves about as far as the output layer (0.17 and 0.20 at seed 3)
    assert m["hidden_weight_change"] > 0.05
    assert m["output_weight_change"] > 0.05


@pytest.mark.genuine_data("mnist")
def test_smoke_mnist_learns_by_feedback_alignment(smoke):
    """Fixed random top-down weights (the default): the hidden updates come to align with
    backprop's (0.61 at seed 3) and the output weights with the feedback (0.35), as in
    feedback alignment (the output weights start at zero, so neither alignment is built in)."""
    m = smoke("dendritic.mnist")
    assert m["test_accuracy"] > 0.6  # chance is 0.1; 0.77 at seed 3
    assert m["alignment_cosine"] > 0.3
    assert m["weight_alignment_cosine"] > 0.15


def test_mnist_experiment_trains_on_the_configured_data_set(tmp_path):
    result = runner.run(
        registry.get("dendritic.mnist"),
        scale="smoke",
        seed=3,
        overrides={"dataset": "digits"},  # scikit-learn's bundled 8x8 digits
        out=tmp_path / "run",
    )
    assert result["data"]["name"] == "digits"
    assert result["metrics"]["test_accuracy"] > 0.6  # chance is 0.1; 0.83 at seed 3


# --- the paper's MNIST protocol: no weight transport, mixing from the conductances ---------


def small_mnist_config(**changes):
    return experiments.MnistConfig(hidden=(40, 30), **changes)


def test_mnist_default_topdown_weights_are_fixed_random_not_transported():
    """Sec. 3.4 of the paper: "a random but self-predicting configuration", trained "despite
    the asymmetry of forward and top-down weights". The default top-down matrices are
    unrelated to the transposed forward weights (|cosine| ~ 1/sqrt(n), here < 0.2) and
    stay fixed while learning; the transposed start is an ablation named for what it is."""
    cfg = small_mnist_config()
    assert cfg.topdown_init == "random"
    net = mnist.mnist_net(cfg, 20, 10, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert all(float(w.norm()) > 0 for w in net.W_PP_down)
    for l, w in enumerate(net.W_PP_down):
        cos = nn.functional.cosine_similarity(w.flatten(), net.W_PP_up[l + 1].T.flatten(), 0)
        assert abs(float(cos)) < 0.2, l
        torch.testing.assert_close(net.W_PI[l], -w)  # the self-predicting state
    start = [w.clone() for w in net.W_PP_down]
    learner = learners.SweepsClassifier(net, cfg.mixing_factors(), [cfg.lr] * 3)
    x, y = torch.rand(10, 20), torch.arange(10)
    for _ in range(3):
        learner.train_step(x, y)
    for w, w0 in zip(net.W_PP_down, start, strict=True):
        torch.testing.assert_close(w, w0, atol=0, rtol=0)

    ablation = small_mnist_config(topdown_init="transpose_weight_transport", output_init_gain=4.0)
    net = mnist.mnist_net(ablation, 20, 10, torch.device("cpu"))
    for l, w in enumerate(net.W_PP_down):
        torch.testing.assert_close(w, net.W_PP_up[l + 1].T)


def test_mnist_mixing_factors_come_from_the_conductances():
    """lambda_I and lambda_A are the conductance ratios of the steady state of Eqs. 1-2,
    computed here from the config's conductances by hand; a hand-set value is an option."""
    cfg = small_mnist_config()
    assert cfg.mixing == "conductances"
    for g_A, g_som in ((cfg.g_A, cfg.g_som), (0.3, 2.0)):
        c = small_mnist_config(g_A=g_A, g_som=g_som)
        lam = c.mixing_factors()
        assert lam.interneuron == pytest.approx(g_som / (c.g_lk + c.g_D + g_som), rel=1e-12)
        assert lam.apical == pytest.approx(g_A / (c.g_lk + c.g_B + g_A), rel=1e-12)
        assert lam.output == c.lambda_output
    hand = small_mnist_config(mixing="hand_set").mixing_factors()
    assert (hand.interneuron, hand.apical) == (0.2, 0.5)


def test_mnist_run_uses_the_conductance_mixing_factors(tmp_path, monkeypatch):
    seen = []

    class Recording(learners.SweepsClassifier):
        def __init__(self, net, lam, *args, **kwargs):
            seen.append(lam)
            super().__init__(net, lam, *args, **kwargs)

    monkeypatch.setattr(mnist, "SweepsClassifier", Recording)
    overrides = {"dataset": "digits", "epochs": "1", "g_A": "0.45", "g_som": "0.3"}
    exp = registry.get("dendritic.mnist")
    runner.run(exp, scale="smoke", seed=3, overrides=overrides, out=tmp_path / "run")
    g_lk, g_B, g_D = 0.1, 1.0, 1.0
    assert seen[0].interneuron == pytest.approx(0.3 / (g_lk + g_D + 0.3))
    assert seen[0].apical == pytest.approx(0.45 / (g_lk + g_B + 0.45))


def settled_test_net(g):
    cfg = experiments.MnistConfig(
        hidden=(30, 20), output_init_gain=4.0, g_A=g.g_A, g_som=g.g_som, noise=0.0
    )
    generator = torch.Generator().manual_seed(0)
    return mnist.mnist_net(cfg, 25, 10, torch.device("cpu"), generator, F64)


@pytest.mark.parametrize("g", [Conductances(), Conductances(g_A=1.1, g_som=0.1222)])
def test_sweeps_approximate_the_settled_steady_state(g):
    """With the mixing factors from the conductances, the two sweeps recover part of the
    nudged deviation of the continuous model's fixed point, u_settled - hat v_B: they cut
    the loop after one pass, so 8-38% (spec table) and 8-66% (dendritic.mnist's
    conductances) is missed per layer here, the most in the hidden layer below the output.
    With mixing factors that do not match the conductances they miss 87-100% in the hidden
    layers."""
    net = settled_test_net(g)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(16, 25, generator=gen, dtype=F64)
    u_target = torch.randn(16, 10, generator=gen, dtype=F64) * 2
    gap = sweeps.settled_gap(net, x, u_target, duration=100.0)
    assert max(gap) < 0.7 and min(gap) > 0.05, gap  # part of the way, not exact

    settled = copy.deepcopy(net)
    settled.reset_state(16)
    settled.run(x, u_target, 100.0, learn=False)
    lam = MixingFactors.from_conductances(g)
    wrong = MixingFactors(lam.output, lam.interneuron * 3, lam.apical / 3)
    state = sweeps.two_sweeps(net, x, u_target, wrong)
    for l in range(2):  # the hidden layers, where lambda_I and lambda_A act
        u, v = settled.somatic_potential[l], state.basal[l]
        miss = float((state.soma[l] - u).norm() / (u - v).norm())
        assert miss > 0.8 and miss > gap[l] + 0.15, (l, miss, gap[l])


def test_sweeps_eqs_9_and_10_match_a_hand_computation():
    """Eq. 9 (apical inhibition silences the apical compartment) and Eq. 10 (top-down
    weights predict the soma below) at the two-sweep state of a 5-7-3 circuit, written out
    by hand from the sweep equations."""
    net = circuit([5, 7, 3], phi=Transfer("logistic"), bias=True)
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(4, 5, generator=gen, dtype=F64)
    u_t = torch.randn(4, 3, generator=gen, dtype=F64)
    lam = MixingFactors(output=0.6, interneuron=0.3, apical=0.4)
    updates, _ = sweeps.sweep_updates(net, x, u_t, lam, plastic_PI=True, plastic_down=True)
    g, s = net.g, torch.sigmoid
    c1 = g.g_B / (g.g_lk + g.g_B + g.g_A)
    c2, cI = g.g_B / (g.g_lk + g.g_B), g.g_D / (g.g_lk + g.g_D)
    v1 = c1 * (x @ net.W_PP_up[0].T + net.b_PP_up[0])
    v2 = c2 * (s(v1) @ net.W_PP_up[1].T + net.b_PP_up[1])
    vI = cI * (s(v1) @ net.W_IP[0].T + net.b_IP[0])
    u2 = 0.4 * v2 + 0.6 * u_t
    uI = 0.7 * vI + 0.3 * u2
    td = s(u2) @ net.W_PP_down[0].T
    vA = td + s(uI) @ net.W_PI[0].T
    u1 = v1 + 0.4 * vA
    torch.testing.assert_close(updates["W_PI.0"], -vA.T @ s(uI), atol=1e-12, rtol=0)
    expected = (s(u1) - s(td)).T @ s(u2)
    torch.testing.assert_close(updates["W_PP_down.0"], expected, atol=1e-12, rtol=0)
    # and they are off unless asked for
    plain, _ = sweeps.sweep_updates(net, x, u_t, lam)
    assert "W_PI.0" not in plain and "W_PP_down.0" not in plain


@pytest.fixture(scope="module")
def rows_smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("rows") / "run"
    exp = registry.get("dendritic.mnist_rows")
    return runner.run(exp, scale="smoke", seed=3, overrides={"dataset": "digits"}, out=out)


def test_mnist_rows_run_every_row_against_its_paper_figure(rows_smoke):
    m, paper = rows_smoke["metrics"], rows_smoke["paper"]
    for row in mnist.ROWS:
        assert m[f"test_accuracy_{row}"] > 0.2, row  # chance is 0.1 (digits, 2 epochs)
        assert paper[f"test_accuracy_{row}"]["protocol"] == "mnist60k"
    assert paper["test_accuracy_shallow"]["value"] == pytest.approx(0.916)


def test_mnist_rows_freeze_what_the_paper_froze(rows_smoke):
    """frozen_hidden: only the weights between the two hidden layers stay put; shallow:
    only the output layer learns; learned_topdown: the top-down weights learn (Eq. 10),
    which stay fixed in every other row."""
    m = rows_smoke["metrics"]
    change = {k: v for k, v in m.items() if "_weight_change_" in k}
    assert change["frozen_hidden_weight_change_W_PP_up1"] == 0
    assert change["frozen_hidden_weight_change_W_PP_up0"] > 0.01
    assert change["shallow_weight_change_W_PP_up0"] == change["shallow_weight_change_W_PP_up1"] == 0
    assert change["shallow_weight_change_W_PP_up2"] > 0.01
    for l in range(3):
        assert change[f"microcircuit_weight_change_W_PP_up{l}"] > 0.01
    assert change["learned_topdown_weight_change_W_PP_down0"] > 1e-4  # slowly (lr_down 1e-4)
    for row in ("microcircuit", "frozen_hidden", "shallow"):
        assert change[f"{row}_weight_change_W_PP_down0"] == 0
