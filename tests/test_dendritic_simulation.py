"""The blocked simulation (creditlab.methods.dendritic.fast) against the plain step-by-step
loop of Microcircuit.step: the same trajectory, weights and filters, from arbitrary states."""

import copy

import pytest
import torch

from creditlab.methods.dendritic import fast
from creditlab.methods.dendritic.microcircuit import Microcircuit, Transfer

F64 = torch.float64


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine a second OpenMP thread mostly waits for
    a core, and weight-sized operations slow down tenfold (results do not depend on it)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


STATE = ("somatic_potential", "interneuron_potential", "rate", "interneuron_rate")
POTENTIALS = ("basal_potential", "apical_potential", "interneuron_dendrite")


def scrambled(sizes, seed=0, batch=2, dtype=F64, filter_scale=0.05, gain=3.0, **kwargs):
    """A circuit in an arbitrary state: random voltages, rates and input rates, and non-zero
    weight filters (so both modes of the filtered weights matter from the first step).
    ``gain`` scales the forward weights and the voltages (voltages far below phi's threshold
    give denormal float32 rates, which slow every product down a hundredfold)."""
    gen = torch.Generator().manual_seed(seed)
    net = Microcircuit(sizes, generator=gen, dtype=dtype, **kwargs)
    net.reset_state(batch)

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=F64).to(dtype)

    with torch.no_grad():
        for w in net.W_PP_up:
            w.mul_(gain)  # voltages across phi's threshold, so rates vary
        for f in net.weight_filter.values():
            f.copy_(filter_scale * rand(*f.shape))
    net.somatic_potential = [gain * rand(*u.shape) for u in net.somatic_potential]
    net.interneuron_potential = [gain * rand(*u.shape) for u in net.interneuron_potential]
    net.rate = [net.phi(u) for u in net.somatic_potential]
    net.interneuron_rate = [net.phi(u) for u in net.interneuron_potential]
    net.input_rate = rand(*net.input_rate.shape)
    return net, gen


def present(net, patterns, targets, duration, learn=True, seed=7, **run_kwargs):
    """Both simulations from copies of ``net``, the same noise seed; patterns in sequence."""
    out = []
    for blocked in (False, True):
        twin = copy.deepcopy(net)
        torch.manual_seed(seed)
        for x, u_target in zip(patterns, targets, strict=True):
            if blocked:
                fast.simulate(twin, x, u_target, round(duration / twin.dt), learn, **run_kwargs)
            else:
                twin.run(x, u_target, duration, learn, blocked=False)
        out.append(twin)
    return out


def assert_same(step, blocked, start, atol, rtol, learned=True):
    """Every weight, filter, voltage, rate and potential agrees; and every plastic weight
    moved by far more than the tolerance (the comparison can fail)."""
    for name, w in step.weights().items():
        torch.testing.assert_close(blocked.weights()[name], w, atol=atol, rtol=rtol, msg=name)
        torch.testing.assert_close(
            blocked.weight_filter[name], step.weight_filter[name], atol=atol, rtol=rtol, msg=name
        )
        if learned:
            assert float((w - start.weights()[name]).abs().max()) > 1e3 * atol, f"{name} still"
    for name in STATE + POTENTIALS:
        for a, b in zip(getattr(blocked, name), getattr(step, name), strict=True):
            torch.testing.assert_close(a, b, atol=atol, rtol=rtol, msg=name)
    torch.testing.assert_close(blocked.input_rate, step.input_rate, atol=atol, rtol=rtol)
    assert blocked.t == step.t


FAST_LEARNING = {"eta_up": [0.4, 0.3, 0.2], "eta_IP": 0.3, "eta_PI": 0.4, "eta_down": 0.3}


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"prospective": True},
        {"bias": True},
        {"bias": True, "prospective": True, "phi": Transfer("logistic")},
        {"tau_w": 0.0},
        {"noise": 0.3},
        {"block": 1},
        {"block": 7, "batch": 1},
        {"batch": 1, "bias": True, "target": False},
    ],
    ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default",
)
def test_blocked_equals_step_by_step_in_float64(kwargs):
    """Three patterns of 20 ms (200 steps each, not a multiple of the block): the blocked
    recursion is the step-by-step one solved exactly, so they agree to float64 rounding
    (observed about 1e-14; the weights move by 1e-2 and more)."""
    kwargs = dict(kwargs)
    run_kwargs = {"block": kwargs.pop("block")} if "block" in kwargs else {}
    batch, target = kwargs.pop("batch", 2), kwargs.pop("target", True)
    kwargs = {"tau_w": 2.0, "noise": 0.0, **FAST_LEARNING, **kwargs}
    net, gen = scrambled([5, 7, 6, 3], batch=batch, **kwargs)
    patterns = [torch.rand(batch, 5, generator=gen, dtype=F64) * 2 - 1 for _ in range(3)]
    targets = [torch.rand(batch, 3, generator=gen, dtype=F64) * 4 if target else None] * 3
    step, blocked = present(net, patterns, targets, 20.0, **run_kwargs)
    assert_same(step, blocked, net, atol=1e-11, rtol=1e-9)


@pytest.mark.parametrize("frozen", [0, 1])
def test_frozen_weights_and_their_filters_stay_put(frozen):
    """A layer whose rate is 0 keeps its weights, biases and (non-zero) filters, as in
    step(); the others learn; and learn=False moves nothing."""
    net, gen = scrambled([5, 7, 6, 3], bias=True, tau_w=2.0, noise=0.0, **FAST_LEARNING)
    net.eta_up = [0.0 if l == frozen else 0.3 for l in range(3)]
    x = [torch.rand(2, 5, generator=gen, dtype=F64)]
    u_target = [torch.rand(2, 3, generator=gen, dtype=F64) * 4]
    step, blocked = present(net, x, u_target, 10.0)
    for name in (f"W_PP_up.{frozen}", f"b_PP_up.{frozen}"):
        assert torch.equal(blocked.weights()[name], net.weights()[name])
        assert torch.equal(blocked.weight_filter[name], net.weight_filter[name])
    for name in ("W_PP_up.2", "W_IP.0", "W_PI.1"):
        torch.testing.assert_close(
            blocked.weights()[name], step.weights()[name], atol=1e-11, rtol=1e-9
        )
        assert not torch.equal(blocked.weights()[name], net.weights()[name])
    step, blocked = present(net, x, u_target, 10.0, learn=False)
    assert_same(step, blocked, net, atol=1e-11, rtol=1e-9, learned=False)
    for name, w in blocked.weights().items():
        assert torch.equal(w, net.weights()[name]), name


def in_float64(net):
    twin = copy.deepcopy(net)
    twin.dtype = F64
    for name in ("W_PP_up", "b_PP_up", "W_PP_down", "W_IP", "b_IP", "W_PI", *STATE):
        setattr(twin, name, [t.double() for t in getattr(twin, name)])
    twin.weight_filter = {k: f.double() for k, f in twin.weight_filter.items()}
    twin.input_rate = twin.input_rate.double()
    return twin


def test_blocked_is_as_accurate_as_step_by_step_on_the_paper_network_in_float32():
    """784-500-500-10, one circuit, all four rules, 5 ms (50 steps, 1.6 blocks), from an
    arbitrary state. Both float32 simulations are compared with the step-by-step one in
    float64 (the reference): the blocked one may not be further from it than twice the
    step-by-step float32 loop is (that loop's own rounding is the tolerance, so it holds on
    any instruction set). Observed: the blocked weights are 3-30x *closer* (the loop rounds
    ``W += dt Delta`` at every step), voltages and rates 1-2x closer; a single step's outer
    product missing or counted twice would move the weights by ~1e-3, 100x the tolerance.
    (Noise off: float32 and float64 draw different numbers; the float64 tests cover it.)"""
    net, gen = scrambled(
        [784, 500, 500, 10],
        batch=1,
        dtype=torch.float32,
        filter_scale=1e-3,
        gain=1.0,
        phi=Transfer("softplus"),
        noise=0.0,
        eta_down=1e-3,
        eta_up=[1e-2, 1e-2, 1e-2],
        eta_IP=1e-2,
        eta_PI=1e-2,
    )
    x, u_target = torch.rand(1, 784, generator=gen) * 2 - 1, torch.rand(1, 10, generator=gen) * 4
    reference = in_float64(net)
    reference.run(x.double(), u_target.double(), 5.0, blocked=False)
    step, blocked = present(net, [x], [u_target], 5.0)

    def error(a, b):
        return float((a.double() - b).abs().max())

    for name, w in reference.weights().items():
        assert float((w - net.weights()[name].double()).abs().max()) > 1e-2, f"{name} still"
        assert error(blocked.weights()[name], w) <= 2 * error(step.weights()[name], w), name
        f, f_blocked = reference.weight_filter[name], blocked.weight_filter[name]
        assert error(f_blocked, f) <= 2 * error(step.weight_filter[name], f), name
    for name in STATE + POTENTIALS:
        states = (getattr(blocked, name), getattr(step, name), getattr(reference, name))
        for a, b, c in zip(*states, strict=True):
            assert error(a, c) <= 2 * error(b, c) + 1e-6, name


def test_run_picks_the_blocked_simulation_for_few_circuits():
    calls = []
    original = fast.simulate
    try:
        fast.simulate = lambda *args, **kwargs: calls.append((args[0].batch_size, args[3]))
        net = Microcircuit([6, 5, 4, 3])
        for batch in (1, fast.BLOCKED_BELOW - 1, fast.BLOCKED_BELOW):
            net.reset_state(batch)
            net.run(torch.rand(batch, 6), None, duration=1.0)
        net.reset_state(1)
        net.run(torch.rand(1, 6), None, duration=1.0, blocked=False)
        net.reset_state(fast.BLOCKED_BELOW)
        net.run(torch.rand(fast.BLOCKED_BELOW, 6), None, duration=1.0, blocked=True)
    finally:
        fast.simulate = original
    assert calls == [(1, 10), (fast.BLOCKED_BELOW - 1, 10), (fast.BLOCKED_BELOW, 10)]


def test_blocked_simulation_is_device_agnostic():
    """Every tensor the blocked simulation makes lives on the circuit's device (checked on
    PyTorch's "meta" device, where a tensor created on the CPU by mistake fails the first
    operation that mixes the two; there is no GPU here)."""
    net = Microcircuit([6, 5, 4, 3], bias=True, eta_down=1e-3, noise=0.1, device="meta")
    net.reset_state(2)
    x, u_target = torch.empty(2, 6, device="meta"), torch.empty(2, 3, device="meta")
    net.run(x, u_target, duration=4.0, blocked=True)
    assert all(w.device.type == "meta" for w in net.weights().values())
    assert all(f.device.type == "meta" for f in net.weight_filter.values())
    assert net.somatic_potential[0].device.type == "meta"
