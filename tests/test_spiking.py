"""creditlab.spiking: the LIF neuron against a slow scalar loop written here from the spec's
five steps, the PSP kernel and its traces against direct sums, rate coding, statistics."""

import math

import pytest
import torch

from creditlab.spiking import (
    LIF,
    PSPTrace,
    bernoulli_encode,
    exponential_trace,
    firing_rate,
    interspike_cv,
    psp_kernel,
    psp_kernel_with_reset,
    silent_fraction,
    spike_counts,
    spike_positions,
    time_major,
)


def slow_lif(current, threshold, tau_m=64.0, tau_s=8.0, t_ref=2, lateral=0.0):
    """The spec's update, one neuron and one step at a time, in plain Python floats.
    current[b][t][i] is the weighted presynaptic input sum_j w_ij spike_j(t)."""
    batch, steps, n = len(current), len(current[0]), len(current[0][0])
    out = [[[False] * n for _ in range(steps)] for _ in range(batch)]
    for b in range(batch):
        v, s, held = [0.0] * n, [0.0] * n, [0] * n
        for t in range(steps):
            for i in range(n):
                v[i] = v[i] - v[i] / tau_m
                s[i] = s[i] - s[i] / tau_s
                if t > 0:
                    s[i] += current[b][t - 1][i]
                    if lateral:
                        others = sum(out[b][t - 1][k] for k in range(n) if k != i)
                        s[i] -= lateral * others
                v[i] = v[i] + s[i] / tau_s
                if held[i] > 0:
                    v[i] = 0.0
                    held[i] -= 1
                if v[i] > threshold:
                    out[b][t][i] = True
                    v[i] = 0.0
                    held[i] = t_ref
    return torch.tensor(out)


@pytest.mark.parametrize("lateral", [0.0, 0.7])
def test_lif_equals_a_slow_reference_loop(lateral):
    torch.manual_seed(0)
    current = torch.rand(3, 120, 5, dtype=torch.float64) * 3 - 0.5
    lif = LIF(threshold=2.0, lateral=lateral)
    lif.reset((3, 5), dtype=torch.float64)
    # in three blocks of steps: the state carries across calls
    fast = torch.cat([lif(current[:, :37]), lif(current[:, 37:80]), lif(current[:, 80:])], 1)
    slow = slow_lif(current.tolist(), 2.0, lateral=lateral)
    assert fast.sum() > 20  # the test exercises firing, refractoriness and resets
    assert torch.equal(fast, slow)


def test_refractory_period_holds_the_membrane():
    lif = LIF(threshold=0.5, t_ref=3)
    lif.reset((1, 1))
    spikes = lif(torch.full((1, 40, 1), 50.0))[0, :, 0].nonzero().flatten()
    assert (spikes.diff() == 4).all()  # fires, then 3 held steps, then fires again


def test_psp_kernel_with_reset():
    s = torch.arange(0.0, 200.0)
    assert torch.allclose(psp_kernel_with_reset(s, torch.tensor(math.inf)), psp_kernel(s))
    # spike before the reset: the synaptic current carried over, the membrane starts at 0
    t = torch.tensor(30.0)
    value = psp_kernel_with_reset(torch.tensor(50.0), t)
    assert torch.isclose(value, math.exp(-20 / 8) * psp_kernel(t))
    assert float(psp_kernel(torch.tensor(0.0))) == 0.0
    # its integral is tau_m
    assert abs(float(psp_kernel(torch.arange(0.0, 5000.0)).sum()) - 64.0) < 0.5


def test_traces_equal_direct_sums_and_continue_across_blocks():
    torch.manual_seed(1)
    x = (torch.rand(2, 90, 3) < 0.2).double()
    whole = exponential_trace(x, 10.0)
    parts = [exponential_trace(x[:, :40], 10.0)]
    parts.append(exponential_trace(x[:, 40:], 10.0, parts[0][:, -1]))
    assert torch.allclose(torch.cat(parts, 1), whole)
    t = torch.arange(90.0, dtype=torch.float64)
    direct = torch.zeros_like(x)
    for step in range(90):
        weights = torch.where(t <= step, torch.exp(-(step - t) / 10.0), torch.zeros_like(t))
        direct[:, step] = torch.einsum("s,bsn->bn", weights, x)
        psp = psp_kernel(step - t).to(x.dtype)[: step + 1]
        direct_psp = torch.einsum("s,bsn->bn", psp, x[:, : step + 1])
        assert torch.allclose(PSPTrace()(x[:, : step + 1])[:, -1], direct_psp)
    assert torch.allclose(whole, direct)
    whole_psp = PSPTrace()(x)
    for length in (1, 7, 40):  # PSPTrace carries its traces across blocks of any length
        trace = PSPTrace()
        parts = [trace(x[:, t0 : t0 + length]) for t0 in range(0, 90, length)]
        assert torch.allclose(torch.cat(parts, 1), whole_psp, rtol=1e-12, atol=1e-12)


def test_bernoulli_encoding_rates():
    g = torch.Generator().manual_seed(0)
    x = torch.tensor([[0.0, 0.5, 1.0]])
    spikes = bernoulli_encode(x, 40000, scale=5.5, generator=g)
    assert spikes.dtype == torch.bool and spikes.shape == (1, 40000, 3)
    rate = spikes.double().mean(1)[0]
    assert torch.allclose(rate, x[0].double() / 5.5, atol=0.005)
    again = bernoulli_encode(x, 40000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(spikes, again)


@pytest.mark.parametrize("shape", [(5, 64, 13), (3, 7, 11), (1, 8)])
@pytest.mark.parametrize("p", [0.0, 0.02, 0.5])
def test_spike_positions_equal_nonzero(shape, p):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(shape, generator=g) < p
    expected = x.flatten().nonzero().flatten()
    assert torch.equal(spike_positions(x), expected)
    assert torch.equal(
        spike_positions(x.transpose(0, -1)), x.transpose(0, -1).flatten().nonzero().flatten()
    )
    assert torch.equal(spike_positions(x.flatten()[1:]), x.flatten()[1:].nonzero().flatten())


def test_encoded_trains_are_time_major_views():
    x = torch.rand(4, 3, 5)
    spikes = bernoulli_encode(x, 7, generator=torch.Generator().manual_seed(0))
    assert spikes.shape == (4, 7, 3, 5) and spikes.transpose(0, 1).is_contiguous()
    trains = time_major(spikes)
    assert trains.data_ptr() == spikes.data_ptr() and trains.shape == (7, 4, 15)
    assert torch.equal(trains, spikes.reshape(4, 7, 15).transpose(0, 1))
    batch_major = spikes.contiguous()  # a batch-major train is copied into the same layout
    assert torch.equal(time_major(batch_major), trains)
    lif = LIF(threshold=0.5)
    lif.reset((4, 15))
    out = lif(trains.float().transpose(0, 1) * 3)
    assert out.transpose(0, 1).is_contiguous()  # the LIF keeps its input's layout


def test_spike_train_statistics():
    regular = torch.zeros(1, 100, 2, dtype=torch.bool)
    regular[0, ::10, 0] = True
    assert spike_counts(regular).tolist() == [[10.0, 0.0]]
    assert firing_rate(regular) == pytest.approx(10 / 200)
    assert silent_fraction(regular) == 0.5
    assert interspike_cv(regular) == pytest.approx(0.0)
    g = torch.Generator().manual_seed(0)
    poisson = torch.rand(1, 200000, 1, generator=g) < 0.05
    assert interspike_cv(poisson) == pytest.approx(1.0, abs=0.05)
