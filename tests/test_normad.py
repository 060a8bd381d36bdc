"""NormAD: kernels against closed forms, the single-layer update against the membrane cost, the
hidden-layer rule against a finite difference of the simulated cost, ReSuMe's window, and the
spike-train metrics against direct integrals."""

from __future__ import annotations

import math

import pytest
import torch

from creditlab.methods.normad.neuron import (
    Neuron,
    heun_step,
    kappa,
    layer_current,
    normad_trace,
    simulate,
    synaptic_trace,
)
from creditlab.methods.normad.normad import hidden_update, normad_update
from creditlab.methods.normad.resume import resume_update
from creditlab.methods.normad.surrogate import Adam, network_forward, network_gradients
from creditlab.spiking.metrics import coincidence_accuracy, van_rossum_distance

F64 = torch.float64
CELL = Neuron()


def _one_spike(steps: int, at: int) -> torch.Tensor:
    x = torch.zeros(1, 1, steps, 1, dtype=F64)
    x[0, 0, at, 0] = 1
    return x


def test_synaptic_and_normad_traces_equal_their_closed_forms():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(1, 1, 600, 3, generator=g, dtype=F64) < 0.02).to(F64)
    c = synaptic_trace(x)[0, 0]
    t = torch.arange(600, dtype=F64) * CELL.dt
    for i in range(3):
        tk = x[0, 0, :, i].nonzero().flatten().to(F64) * CELL.dt
        lag = t[:, None] - tk[None, :]
        closed = torch.where(
            lag >= 0, torch.exp(-lag / CELL.tau_1) - torch.exp(-lag / CELL.tau_2), 0.0
        ).sum(1)
        torch.testing.assert_close(c[:, i], closed)
        lag2 = t[:, None] - t[None, :]
        h = torch.where(lag2 >= 0, torch.exp(-lag2.clamp(min=0) / CELL.tau_l), 0.0)
        d = normad_trace(c[None, None])[0, 0, :, i]
        torch.testing.assert_close(d, h @ c[:, i] * CELL.dt / CELL.c_m)


def test_kappa_closed_form_matches_the_discrete_traces():
    """kappa = alpha * h in closed form against the recurrences' response to one spike (the
    discrete sum differs from the integral by O(dt / tau))."""
    steps = 800
    x = _one_spike(steps, 0)
    for tau in (CELL.tau_l, CELL.tau_m):
        discrete = normad_trace(synaptic_trace(x), CELL, tau)[0, 0, :, 0]
        closed = kappa(torch.arange(steps, dtype=F64) * CELL.dt, CELL, tau)
        assert (discrete - closed).abs().max() < 0.06 * closed.max()


def test_subthreshold_membrane_matches_the_exact_response():
    """Heun integration of one synaptic event against the closed-form kappa with tau_m."""
    cell = Neuron(v_t=1e9)
    steps = 800
    c = synaptic_trace(_one_spike(steps, 0))
    v = simulate(layer_current(c, torch.full((1, 1, 1), 1e-9, dtype=F64)), cell).v[0, 0, :, 0]
    exact = 1e-9 * kappa(torch.arange(steps, dtype=F64) * cell.dt, cell, cell.tau_m)
    assert ((v - cell.e_l) - exact).abs().max() < 0.03 * exact.max()


def test_simulation_equals_the_literal_step_by_step_membrane():
    """simulate (the Heun step as a linear map, spikes read off afterwards) against the code's
    LifKernel2 written out in volts: Heun with I held, clamp at E_L, spike at V >= V_T, reset to
    E_L, 3 ms hold; the spike steps, pre-reset potentials, threshold slopes and clamped steps
    agree."""
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(1, 2, 600, 20, generator=g, dtype=F64) < 60 * CELL.dt).to(F64)
    w = torch.randn(1, 20, 1, generator=g, dtype=F64) * 8e-9 + 1e-9
    current = layer_current(synaptic_trace(x), w)
    r = simulate(current)
    c, gl, dt = CELL.c_m, CELL.g_l, CELL.dt
    clamps = []
    for k in range(2):
        v, hold_until, times = CELL.e_l, -1, []
        for t in range(600):
            prev = v
            if t > hold_until:
                i = float(current[0, k, t, 0])
                k1 = (-gl * (v - CELL.e_l) + i) / c
                k2 = (-gl * (v + dt * k1 - CELL.e_l) + i) / c
                v = v + dt * (k1 + k2) / 2
                if v < CELL.e_l:
                    clamps.append((k, t))
                v = max(v, CELL.e_l)
            assert math.isclose(float(r.v[0, k, t, 0]), v, abs_tol=1e-12)
            if v >= CELL.v_t:
                times.append(t)
                slope = float(r.slope[0, k, t, 0])
                assert math.isclose(slope, (v - prev) / dt, rel_tol=1e-9)
                v, hold_until = CELL.e_l, t + CELL.ref_steps
        assert r.spikes[0, k, :, 0].nonzero().flatten().tolist() == times
        assert len(times) >= 3
    assert clamps and r.clamped[0, :, :, 0].nonzero().tolist() == [list(c) for c in clamps]


def test_refractory_period_and_threshold():
    cell = CELL
    current = torch.full((1, 1, 400, 1), 5e-9, dtype=F64)
    r = simulate(current, cell)
    times = r.spikes[0, 0, :, 0].nonzero().flatten()
    assert len(times) >= 2
    assert ((times[1:] - times[:-1]) > cell.ref_steps).all()
    assert (r.v[0, 0, times, 0] >= cell.v_t).all()


def _membrane_cost(w, c, error):
    """J = -sum_t e(t) (V(t) - E_L) of the unthresholded membrane (Heun simulation)."""
    v = simulate(layer_current(c, w), Neuron(v_t=1e9)).v
    return -(error * (v - CELL.e_l)).sum()


def test_one_normad_update_lowers_the_membrane_cost():
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(1, 1, 1000, 50, generator=g, dtype=F64) < 20 * CELL.dt).to(F64)
    c = synaptic_trace(x)
    w = torch.randn(1, 50, 1, generator=g, dtype=F64) * 1e-9 + 1.5e-9
    out = simulate(layer_current(c, w)).spikes
    desired = torch.zeros_like(out)
    desired[0, 0, [150, 400, 700], 0] = 1
    error = desired - out
    assert error.abs().sum() > 0
    dw = normad_update(normad_trace(c), error, 2e-10)
    assert _membrane_cost(w + dw, c, error) < _membrane_cost(w, c, error)
    assert _membrane_cost(w - dw, c, error) > _membrane_cost(w, c, error)


def _kappa_table(steps: int, fine: float = 1e-6):
    """The output membrane's response to one synaptic event, by a fine numerical integral of
    C dV/dt = -g_L V + alpha(t) (independent of neuron.kappa)."""
    n = int(steps * CELL.dt / fine) + 2
    t = torch.arange(n, dtype=F64) * fine
    alpha = torch.exp(-t / CELL.tau_1) - torch.exp(-t / CELL.tau_2)
    grow = torch.exp(t / CELL.tau_m)
    table = torch.cumsum(alpha * grow, 0) * fine / grow / CELL.c_m

    def at(s):
        idx = (s / fine).clamp(min=0)
        i0 = idx.floor().long().clamp(max=n - 2)
        fr = idx - i0
        return torch.where(s > 0, table[i0] * (1 - fr) + table[i0 + 1] * fr, 0.0)

    return at


def test_hidden_rule_direction_matches_a_finite_difference_of_the_cost():
    """Cosine > 0.9 between the hidden rule (default constants: tau_L in the hidden traces, the
    membrane's tau_m in kappa; > 0.99 with tau_m in both) and the finite-difference gradient of
    J = -sum e_k V_k, V_k the output's exact subthreshold potential from the hidden spikes at
    their interpolated times."""
    g = torch.Generator().manual_seed(0)
    n_in, hid, steps = 12, 3, 500
    x = (torch.rand(1, 1, steps, n_in, generator=g, dtype=F64) < 100 * CELL.dt).to(F64)
    c_in = synaptic_trace(x)
    w_in = torch.rand(1, n_in, hid, generator=g, dtype=F64) * 3e-9 + 1e-9
    w_out = torch.tensor([[[1.0e-9], [-0.7e-9], [0.8e-9]]], dtype=F64)
    resp = simulate(layer_current(c_in, w_in))
    assert (resp.spikes.sum(2) >= 2).all()
    error = torch.zeros(1, 1, steps, 1, dtype=F64)
    error[0, 0, 300, 0], error[0, 0, 420, 0] = 1, -1
    kap = _kappa_table(steps)
    t = torch.arange(steps, dtype=F64) * CELL.dt

    def costs(w):
        r = simulate(layer_current(c_in.expand(len(w), -1, -1, -1), w))
        out = []
        for p in range(len(w)):
            v_k = torch.zeros(steps, dtype=F64)
            for j in range(hid):
                for n in r.spikes[p, 0, :, j].nonzero().flatten():
                    vn, vp = r.v[p, 0, n, j], r.v[p, 0, n - 1, j]
                    tf = (n - 1 + (CELL.v_t - vp) / (vn - vp)) * CELL.dt
                    v_k += w_out[0, j, 0] * kap(t - tf)
            out.append(-(error[0, 0, :, 0] * v_k).sum())
        return torch.stack(out), r.spikes

    eps = 1e-14
    ws = []
    for i in range(n_in):
        for j in range(hid):
            for sign in (1, -1):
                w = w_in.clone()
                w[0, i, j] += sign * eps
                ws.append(w)
    cost, spikes = costs(torch.cat(ws))
    assert (spikes == resp.spikes).all()  # no spike jumped: the cost is smooth here
    descent = (-(cost[0::2] - cost[1::2]) / (2 * eps)).view(n_in, hid)
    rule = hidden_update(c_in, resp, error, w_out, 1.0, normalise=False)[0]
    cosine = (rule * descent).sum() / (rule.norm() * descent.norm())
    assert cosine > 0.9, float(cosine)
    # with the exact subthreshold response tau_m in the hidden traces too, the rule is the
    # gradient up to the linearisation of the spike times (reset-aware terms included)
    exact = hidden_update(c_in, resp, error, w_out, 1.0, tau=CELL.tau_m, normalise=False)[0]
    cosine = (exact * descent).sum() / (exact.norm() * descent.norm())
    assert cosine > 0.99, float(cosine)


def test_normalised_hidden_rule_is_the_gradient_direction_for_one_error_event():
    """With one error event per trial the per-instant norm is one positive factor, so the
    normalised rule points where the unnormalised one does (with several events it reweights
    them, and is no longer the gradient of J: 0.79 on the two-event net above)."""
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(1, 1, 500, 12, generator=g, dtype=F64) < 100 * CELL.dt).to(F64)
    c_in = synaptic_trace(x)
    w_in = torch.rand(1, 12, 3, generator=g, dtype=F64) * 3e-9 + 1e-9
    w_out = torch.tensor([[[1.0e-9], [-0.7e-9], [0.8e-9]]], dtype=F64)
    resp = simulate(layer_current(c_in, w_in))
    error = torch.zeros(1, 1, 500, 1, dtype=F64)
    error[0, 0, 300, 0] = 1
    plain = hidden_update(c_in, resp, error, w_out, 1.0, normalise=False)
    normed = hidden_update(c_in, resp, error, w_out, 1.0, normalise=True)
    cosine = (plain * normed).sum() / (plain.norm() * normed.norm())
    assert cosine > 1 - 1e-9


def test_normalised_hidden_rule_divides_each_instant_by_its_own_norm():
    """With two error events the normalised rule is g(t1)/|g(t1)| - g(t2)/|g(t2)|, g(t) the
    unnormalised rule of a unit error at t alone (the full hidden-weight vector, its norm taken
    directly rather than through the per-neuron Gram matrices the rule uses)."""
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(1, 1, 500, 12, generator=g, dtype=F64) < 100 * CELL.dt).to(F64)
    c_in = synaptic_trace(x)
    w_in = torch.rand(1, 12, 3, generator=g, dtype=F64) * 3e-9 + 1e-9
    w_out = torch.tensor([[[1.0e-9], [-0.7e-9], [0.8e-9]]], dtype=F64)
    resp = simulate(layer_current(c_in, w_in))
    expected = torch.zeros(1, 12, 3, dtype=F64)
    both = torch.zeros(1, 1, 500, 1, dtype=F64)
    for at, sign in ((300, 1.0), (420, -1.0)):
        one = torch.zeros(1, 1, 500, 1, dtype=F64)
        one[0, 0, at, 0] = 1
        g_t = hidden_update(c_in, resp, one, w_out, 1.0, normalise=False)
        expected += sign * g_t / g_t.norm()
        both[0, 0, at, 0] = sign
    torch.testing.assert_close(hidden_update(c_in, resp, both, w_out, 1.0), expected)


def test_resume_window_closed_form():
    steps = 300
    x = _one_spike(steps, 100)
    for at, sign in ((120, 1), (180, 1), (80, 1), (120, -1)):
        error = torch.zeros(1, 1, steps, 1, dtype=F64)
        error[0, 0, at, 0] = sign
        dw = resume_update(x, error, rate=1.0, a=0.1, dt=CELL.dt)
        lag = (at - 100) * CELL.dt
        window = math.exp(-lag / 5e-3) if lag >= 0 else 0.0
        assert math.isclose(float(dw), sign * (0.1 + window), rel_tol=1e-9)


def test_resume_moves_the_potential_the_way_its_window_says():
    """A missing desired spike potentiates the inputs in its window, so the membrane rises at
    the desired time (the spike moves towards it); an extra spike depresses them, so the
    membrane falls at the extra spike's time."""
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(1, 1, 800, 60, generator=g, dtype=F64) < 30 * CELL.dt).to(F64)
    c = synaptic_trace(x)
    w = torch.full((1, 60, 1), 0.5e-9, dtype=F64)
    free = Neuron(v_t=1e9)
    v0 = simulate(layer_current(c, w), free).v[0, 0, :, 0]
    for at, sign in ((300, 1), (600, -1)):
        error = torch.zeros(1, 1, 800, 1, dtype=F64)
        error[0, 0, at, 0] = sign
        w1 = w + resume_update(x, error, rate=2e-10, a=0.0, dt=CELL.dt)
        v1 = simulate(layer_current(c, w1), free).v[0, 0, :, 0]
        assert sign * (v1[at] - v0[at]) > 0


def test_van_rossum_equals_a_direct_integral():
    g = torch.Generator().manual_seed(2)
    a = (torch.rand(3, 200, generator=g) < 0.05).double()
    b = (torch.rand(3, 200, generator=g) < 0.05).double()
    tau, dt = 4.0, 1.0
    fine = 0.001
    t = torch.arange(0, 260, fine, dtype=F64)
    for row in range(3):
        f = torch.zeros_like(t)
        for train, sign in ((a[row], 1), (b[row], -1)):
            for s in train.nonzero().flatten().double():
                f += sign * torch.where(t >= s, torch.exp(-(t - s) / tau), 0.0)
        direct = math.sqrt(float((f**2).sum() * fine / tau))
        assert math.isclose(
            float(van_rossum_distance(a[row], b[row], tau, dt)), direct, rel_tol=2e-3
        )


def test_coincidence_accuracy_counts_extra_spikes():
    d = torch.zeros(2, 40)
    d[:, [5, 20]] = 1
    p = d.clone()
    assert coincidence_accuracy(d, p, window=1).tolist() == [1.0, 1.0]
    p[0, 21], p[0, 20] = 1, 0  # shifted within the window
    p[1, 30] = 1  # one extra
    assert coincidence_accuracy(d, p, window=1).tolist() == [1.0, 2 / 3]


class _SuperSpike(torch.autograd.Function):
    """H(v - V_T) forward, SuperSpike's 1 / (1 + beta |v - V_T|)^2 backward."""

    @staticmethod
    def forward(ctx, v, beta):
        ctx.save_for_backward(v)
        ctx.beta = beta
        return (v >= CELL.v_t).to(v.dtype)

    @staticmethod
    def backward(ctx, grad):
        (v,) = ctx.saved_tensors
        return grad / (1 + ctx.beta * (v - CELL.v_t).abs()) ** 2, None


def _autograd_layer(c, w, beta):
    """The membrane written step by step with heun_step in volts, reset and hold detached."""
    current = torch.einsum("ktn,nm->ktm", c, w)
    v = torch.full(current[:, 0].shape, CELL.e_l, dtype=F64)
    hold = torch.zeros_like(v)
    out = []
    for t in range(current.shape[1]):
        new = torch.where(hold > 0, v, heun_step(v, current[:, t], CELL)).clamp(min=CELL.e_l)
        s = _SuperSpike.apply(new, beta)
        hold = torch.where(s.detach() > 0, float(CELL.ref_steps), (hold - 1).clamp(min=0))
        v = CELL.e_l + (new - CELL.e_l) * (1 - s.detach())
        out.append(s)
    return torch.stack(out, 1)


def _autograd_loss(c_in, w1, w2, desired, tau, beta):
    """van Rossum loss (dt / tau) sum_t f_t^2 by its recurrence, through an autograd network."""
    h = _autograd_layer(c_in, w1, beta)
    c1, c2 = torch.zeros_like(h[:, 0]), torch.zeros_like(h[:, 0])
    ch = []
    for t in range(h.shape[1]):
        c1 = c1 * math.exp(-CELL.dt / CELL.tau_1) + h[:, t]
        c2 = c2 * math.exp(-CELL.dt / CELL.tau_2) + h[:, t]
        ch.append(c1 - c2)
    out = _autograd_layer(torch.stack(ch, 1), w2, beta)
    f, loss = torch.zeros_like(out[:, 0]), 0.0
    for t in range(out.shape[1]):
        f = f * math.exp(-CELL.dt / tau) + out[:, t] - desired[:, t]
        loss = loss + (f**2).sum() * CELL.dt / tau
    return loss, h, out


@pytest.fixture(scope="module")
def surrogate_net():
    g = torch.Generator().manual_seed(4)
    n_in, hid, steps = 10, 4, 300
    x = (torch.rand(1, 2, steps, n_in, generator=g, dtype=F64) < 80 * CELL.dt).to(F64)
    w1 = torch.rand(1, n_in, hid, generator=g, dtype=F64) * 4e-9 + 1e-9
    w2 = torch.rand(1, hid, 2, generator=g, dtype=F64) * 6e-9 - 1e-9
    desired = torch.zeros(1, 2, steps, 2, dtype=F64)
    desired[0, 0, [80, 200], 0] = 1
    desired[0, 1, 150, 1] = 1
    return synaptic_trace(x), [w1, w2], desired


def test_surrogate_gradient_equals_autograd_of_an_independent_forward(surrogate_net):
    c_in, weights, desired = surrogate_net
    tau, beta = 5e-3, 200.0
    fwd = network_forward(c_in, weights, CELL)
    loss, grads = network_gradients(fwd, weights, desired, tau, CELL, beta)
    w1 = weights[0][0].clone().requires_grad_(True)
    w2 = weights[1][0].clone().requires_grad_(True)
    ref, h, out = _autograd_loss(c_in[0], w1, w2, desired[0], tau, beta)
    assert (h == fwd.responses[0].spikes[0]).all() and (out == fwd.out[0]).all()
    assert h.sum() > 5 and out.sum() > 0  # spikes, resets and holds on the path
    ref.backward()
    torch.testing.assert_close(loss[0], ref.detach())
    torch.testing.assert_close(grads[1][0], w2.grad, rtol=1e-5, atol=1e-9 * w2.grad.abs().max())
    torch.testing.assert_close(grads[0][0], w1.grad, rtol=1e-5, atol=1e-9 * w1.grad.abs().max())


def test_surrogate_training_lowers_the_van_rossum_loss_on_a_fixed_trial(surrogate_net):
    c_in, weights, desired = surrogate_net
    weights = [w.clone() for w in weights]
    opt = Adam(lr=4e-11)
    state = opt.init(weights)
    first = network_gradients(network_forward(c_in, weights), weights, desired, 5e-3)[0]
    for _ in range(6):
        fwd = network_forward(c_in, weights)
        _, grads = network_gradients(fwd, weights, desired, 5e-3)
        opt.step(weights, grads, state, torch.ones(1, dtype=torch.bool))
    last = network_gradients(network_forward(c_in, weights), weights, desired, 5e-3)[0]
    assert last < 0.85 * first, (float(first), float(last))


def test_xor_task_encodes_the_truth_table():
    # bits at `early` (0) or `early + shift` (1) plus each afferent's fixed offset, the bias
    # group at `late`; the desired output one spike at the true / false target time
    from creditlab.methods.normad.tasks import xor_task

    gen = torch.Generator().manual_seed(0)
    m, dt = 4, CELL.dt
    task = xor_task(2, m, 300, 1e-3, 2e-3, 6e-3, 5e-3, 12e-3, 18e-3, dt, gen)
    assert task.inputs.shape == (2, 4, 300, 3 * m) and task.desired.shape == (2, 4, 300, 1)
    assert (task.inputs.sum(-2) == 1).all()  # every afferent fires once in every pattern
    when = task.inputs.argmax(-2).double() * dt  # (P, 4, 3m) spike times
    offset = when[:, 0] - torch.tensor([1e-3] * (2 * m) + [2e-3] * m, dtype=F64)
    assert ((offset > -dt) & (offset < 5e-3 + dt)).all()
    for k, (x1, x2, y) in enumerate([(0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 0)]):
        shift = torch.tensor([x1 * 6e-3] * m + [x2 * 6e-3] * m + [0.0] * m, dtype=F64)
        assert torch.allclose(when[:, k] - when[:, 0], shift.expand(2, -1), atol=dt * 1.01)
        target = (12e-3 if y else 18e-3) / dt
        assert (task.desired[:, k, :, 0].sum(-1) == 1).all()
        assert (task.desired[:, k, :, 0].argmax(-1) == round(target)).all()


def test_xor_accuracy_reads_the_first_spike_nearer_its_target():
    from creditlab.methods.normad.experiments import MultiConfig, _xor_accuracy

    cfg = MultiConfig(target_true=12e-3, target_false=18e-3)
    desired = torch.zeros(1, 4, 300, 1, dtype=F64)
    for k, t in enumerate([180, 120, 120, 180]):
        desired[0, k, t, 0] = 1
    out = torch.zeros_like(desired)
    out[0, 0, 160, 0] = 1  # 16 ms: nearer 18 (right)
    out[0, 1, 170, 0] = out[0, 1, 100, 0] = 1  # first 10 ms: nearer 12 (right); 17 ms ignored
    out[0, 2, 160, 0] = 1  # 16 ms for a true pattern: wrong
    # pattern 3 silent: wrong
    assert _xor_accuracy(out, desired, cfg, CELL) == 0.5


def test_xor_is_solved_at_smoke_scale_with_a_fixed_seed():
    # the smoke network (30 hidden, the tuned rates) on one problem, seed 0: multilayer NormAD
    # makes all four patterns' output trains exact (each desired spike within 1 ms, no other
    # spike) and the XOR read-out right, within 100 epochs (42 here on x86; any seed of 0-5
    # but one converged within 80)
    from dataclasses import replace

    from creditlab import registry
    from creditlab.methods.normad.experiments import _xor_accuracy, make_xor_task
    from creditlab.methods.normad.training import Rates, multilayer_epoch, precompute, scores

    cfg = replace(registry.get("normad.xor").make_config("smoke"), problems=1)
    gen = torch.Generator().manual_seed(0)
    task = make_xor_task(cfg, CELL, gen)
    c, _ = precompute(task.inputs, CELL)
    w1 = torch.randn(1, c.shape[-1], cfg.hidden, generator=gen, dtype=F64) * cfg.w1_std
    w2 = torch.randn(1, cfg.hidden, 1, generator=gen, dtype=F64) * cfg.w2_std
    w1, w2 = w1 + cfg.w1_mean, w2 + cfg.w2_mean
    rates = Rates(rate=cfg.rate, rate_hidden=cfg.rate_hidden, silent_gain=cfg.silent_gain)
    exact = False
    for _ in range(100):
        out = multilayer_epoch(c, task.desired, w1, w2, rates, CELL, torch.ones(1, dtype=bool))
        acc, _ = scores(task.desired, out, CELL, cfg.window, cfg.tau_vr)
        if exact := bool((acc >= 1).all()):
            break
    assert exact
    assert _xor_accuracy(out, task.desired, cfg, CELL) == 1.0
