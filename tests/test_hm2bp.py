"""HM2-BP: the factorised S-PSP against the spec's explicit double sum, the batched backward
against a slow per-example reference of the spec's equations, the analytic gradient against a
finite difference, and the experiments (smoke learns; N-MNIST without data exits 2)."""

import math
import subprocess
import sys

import pytest
import torch

from creditlab import registry, runner
from creditlab.methods.hm2bp import learner as learner_module
from creditlab.methods.hm2bp import loss as loss_module
from creditlab.methods.hm2bp import spsp as spsp_module
from creditlab.methods.hm2bp.learner import HM2BPLearner
from creditlab.methods.hm2bp.loss import rate_error
from creditlab.methods.hm2bp.network import Conv, Dense, Pool, Record, SpikingNetwork
from creditlab.methods.hm2bp.spsp import post_spike_weights, spike_train_psp
from creditlab.methods.hm2bp.training import output_alignment
from creditlab.spiking import TAU_M, TAU_S


def eps(s, t):
    """The spec's kernel with reset, written out: exp(-max(s-t,0)/tau_s) eps(min(s,t))."""
    m = min(s, t)
    base = (math.exp(-m / TAU_M) - math.exp(-m / TAU_S)) / (1 - TAU_S / TAU_M)
    return math.exp(-max(s - t, 0) / TAU_S) * base


def explicit_spsp(pre, post):
    """e_{i|j} = sum_f sum_{g: t_j^g <= t_i^f} eps(t_i^f - t_j^g, t_i^f - t_i^{f-1}), one
    example: pre (T, n_pre), post (T, n_post) -> (n_post, n_pre)."""
    n_pre, n_post = pre.shape[1], post.shape[1]
    e = torch.zeros(n_post, n_pre, dtype=torch.float64)
    for i in range(n_post):
        post_times = post[:, i].nonzero().flatten().tolist()
        for f, tf in enumerate(post_times):
            since = tf - post_times[f - 1] if f > 0 else math.inf
            for j in range(n_pre):
                for tg in pre[:, j].nonzero().flatten().tolist():
                    if tg <= tf:
                        e[i, j] += eps(tf - tg, since)
    return e


def random_trains(batch, steps, n, p, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, steps, n, generator=g) < p


@pytest.mark.parametrize("resets", [False, True])
def test_factorised_spsp_equals_the_explicit_double_sum(resets):
    pre = random_trains(3, 150, 6, 0.08, 0)
    post = random_trains(3, 150, 4, 0.06, 1)
    if not resets:  # at most one post spike per train: no reset ever matters
        first = post.cumsum(1) == 1
        post = post & first
        assert post.sum(1).max() == 1
    else:
        assert post.sum(1).min() >= 3
    fast = spike_train_psp(pre.double(), post)
    slow = torch.stack([explicit_spsp(pre[b], post[b]) for b in range(3)])
    assert slow.abs().max() > 1.0
    assert torch.allclose(fast, slow, rtol=1e-10, atol=1e-12)


def test_post_spike_weights_equal_a_direct_loop_and_continue_across_blocks():
    post = random_trains(2, 90, 5, 0.1, 3)
    whole = post_spike_weights(post, dtype=torch.float64)
    direct = torch.zeros_like(whole)
    for b in range(2):
        for i in range(5):
            times = post[b, :, i].nonzero().flatten().tolist()
            for f, t in enumerate(times):
                later = times[f + 1] if f + 1 < len(times) else math.inf
                direct[b, t, i] = 1 - math.exp(-(later - t) / TAU_M)
    assert torch.allclose(whole, direct, rtol=1e-12, atol=0)
    trains = post.transpose(0, 1).contiguous()  # time-major, in blocks of 25 steps
    lists = spsp_module.post_spike_lists(trains, 25, dtype=torch.float64)
    parts = [spsp_module.on_grid(part, (25, 2, 5)) for part in lists[:-1]]
    parts.append(spsp_module.on_grid(lists[-1], (15, 2, 5)))
    assert torch.equal(torch.cat(parts).transpose(0, 1), whole)


def tiny_network(
    block_elements=2**22, seed=0, thresholds=(3.0, 2.0), bias=0.1, reference=False, lateral=0.0
):
    g = torch.Generator().manual_seed(seed)
    layers = [Dense((8,), 6, 0.4, g), Dense((6,), 3, 0.5, g)]
    for layer in layers:
        layer.weight = layer.weight.double() + bias  # mostly excitatory: most neurons fire
    return SpikingNetwork(
        layers,
        thresholds,
        block_elements=block_elements,
        reference_timing=reference,
        lateral=lateral,
    )


def authors_spsp(pre, post, t_ref=2):
    """The reference code's S-PSP, written from d_Spiking_accumulate_effect
    (common/cuBase.cu): pre spikes in [max(1, t_f - 4 tau_m), t_f), shifted by t_ref; the reset
    clock starts at 1, then at each post spike + t_ref. One example, (n_post, n_pre)."""
    n_pre, n_post = pre.shape[1], post.shape[1]
    e = torch.zeros(n_post, n_pre, dtype=torch.float64)
    c = 1 / (1 - TAU_S / TAU_M)
    for i in range(n_post):
        for j in range(n_pre):
            last, total = 1, 0.0
            for tf in post[:, i].nonzero().flatten().tolist():
                for tg in pre[:, j].nonzero().flatten().tolist():
                    if tg < max(1, tf - 4 * TAU_M) or tg >= tf or tg + t_ref > tf:
                        continue
                    s, t = tf - last, tf - (tg + t_ref)
                    m = min(s, t)
                    total += (
                        math.exp(-max(t - s, 0) / TAU_S)
                        * c
                        * (math.exp(-m / TAU_M) - math.exp(-m / TAU_S))
                    )
                last = tf + t_ref
            e[i, j] = total
    return e


def reference_gradients(
    x, record, weights, thresholds, delta_out, silent_psp, authors=False, out_factor=None
):
    """The backward, one example and one synapse at a time, on explicit S-PSPs: the spec's,
    or with ``authors`` the reference code's S-PSP timing and silent side effect
    0.5 sum_l w_il / nu (g_Spiking_wgrad_sideEffect); ``out_factor`` (batch, n_out) scales the
    output weight gradient (g_Spiking_wgrad_spiketime's latFac)."""
    inputs = [x, *record.spikes[:-1]]
    grads = [torch.zeros_like(w) for w in weights]
    batch = x.shape[0]
    for b in range(batch):
        delta = delta_out[b].tolist()
        for layer in reversed(range(len(weights))):
            w, nu = weights[layer], thresholds[layer]
            spsp = authors_spsp if authors else explicit_spsp
            e = spsp(inputs[layer][b], record.spikes[layer][b])
            o = record.counts[layer][b].tolist()
            o_pre = inputs[layer][b].sum(0).tolist()
            n_post, n_pre = w.shape
            for i in range(n_post):
                psp_sum = sum(w[i, l].item() * e[i, l].item() for l in range(n_pre))
                quiet = 0.5 * w[i].sum().item() / nu if authors else 0.5
                side = psp_sum / (nu * o[i]) if o[i] > 0 else quiet
                lat = 1.0
                if out_factor is not None and layer == len(weights) - 1:
                    lat = out_factor[b, i].item()
                for j in range(n_pre):
                    e_ij = e[i, j].item() if o[i] > 0 else silent_psp * (o_pre[j] > 0)
                    grads[layer][i, j] += delta[i] * e_ij * (1 + side) * lat
            if layer == 0:
                break
            nu_pre = thresholds[layer - 1]
            new = []
            for j in range(n_pre):
                total = 0.0
                for i in range(n_post):
                    ratio = e[i, j].item() / o_pre[j] if o[i] > 0 and o_pre[j] > 0 else 1.0
                    total += delta[i] * w[i, j].item() * ratio
                new.append(total / nu_pre)
            delta = new
    return grads


@pytest.mark.parametrize("block_elements", [2**22, 40])
def test_batched_backward_equals_the_per_example_reference(block_elements):
    net = tiny_network(block_elements, thresholds=(4.0, 3.0))
    x = random_trains(3, 160, 8, 0.15, 5)
    record = net.simulate(x)
    counts = [c.tolist() for c in record.counts]
    flat = [v for c in counts for row in c for v in row]
    assert 0.0 in flat and max(flat) > 2  # silent neurons and firing ones both occur
    g = torch.Generator().manual_seed(6)
    delta_out = torch.randn(3, 3, generator=g, dtype=torch.float64)
    fast = net.gradients(x, record, delta_out, silent_psp=0.1, silent_side_effect="half")
    slow = reference_gradients(x, record, net.weights, net.thresholds, delta_out, 0.1)
    for f, s in zip(fast, slow, strict=True):
        assert torch.allclose(f, s, rtol=1e-8, atol=1e-10)


def test_side_effect_sums_from_the_forward_pass_equal_w_times_e():
    net = tiny_network(block_elements=50)
    x = random_trains(2, 200, 8, 0.15, 7)
    record = net.simulate(x)
    inputs = [x, record.spikes[0]]
    for layer, w in enumerate(net.weights):
        e = spike_train_psp(inputs[layer].double(), record.spikes[layer])
        assert torch.allclose(record.psp_sums[layer], torch.einsum("il,bil->bi", w, e))


def test_analytic_gradient_agrees_with_a_finite_difference():
    """The decoupled approximation, made an explicit function of the weights.

    With the spike trains held fixed, the count o_i = (1/nu) sum_j w_ij e_{i|j} (the S-PSP
    expression) does not depend on the hidden weights at all; HM2-BP's approximation is that
    each S-PSP scales with the counts of its two neurons, e_{i|j} ~ o_j (pre) and ~ o_i (post,
    to first order: the side effect). So the function checked here is, for every layer,

        a_i(W) = sum_j w_ij e0_ij               (the direct effect of neuron i's own weights)
        e_ij(W) = e0_ij r_j(W) a_i(W)/a_i(W0)   (S-PSP grown with both neurons' counts;
                                                 r_j = o_j(W)/o_j(W0), 1 for the input)
        o_i(W) = (1/nu_i) sum_j w_ij e_ij(W)

    (the post count's growth enters through neuron i's own weights only, as in HM2-BP, whose
    hidden deltas carry no (1 + S_i) factor),

    and E = 1/2 sum (o - y)^2 over the output, with e0 the S-PSPs of the simulated trains.
    At W0 its counts are the S-PSP estimates o_i = a_i/nu_i (they stand in for the spike counts
    in the analytic gradient, so both sides differentiate the same function), S_i = 1, and its
    exact gradient is HM2-BP's: delta_i e_ij (1 + S_i) with delta_j = (1/nu_j) sum_i delta_i
    w_ij e_ij / o_j. Tolerance: E is a polynomial in W of low degree, so central differences
    with h = 1e-5 in float64 are exact to about h^2 * E''' / E' ~ 1e-9 relative; rtol 1e-6.
    That the spike trains really are fixed is checked: W0 +- h gives the same spikes.
    """
    net = tiny_network(seed=2, thresholds=(2.0, 1.5), bias=0.3)
    x = random_trains(2, 150, 8, 0.2, 8)
    record = net.simulate(x)
    assert all(float(c.min()) > 0 for c in record.counts)  # no silent neuron: smooth ratios
    e0 = [
        spike_train_psp(x.double(), record.spikes[0]),
        spike_train_psp(record.spikes[0].double(), record.spikes[1]),
    ]
    w0 = [w.clone() for w in net.weights]
    nu = net.thresholds
    a0 = [torch.einsum("ij,bij->bi", w0[0], e0[0])]
    o0 = [a0[0] / nu[0]]
    a0.append(torch.einsum("ij,bij->bi", w0[1], e0[1]))
    o0.append(a0[1] / nu[1])
    y = o0[1] + torch.tensor([[6.0, -4.0, 3.0], [-5.0, 2.0, 7.0]], dtype=torch.float64)

    def energy(weights):
        ratio = torch.ones(x.shape[0], 8, dtype=torch.float64)
        for layer, w in enumerate(weights):
            a = torch.einsum("ij,bij->bi", w, e0[layer])
            e = e0[layer] * ratio[:, None, :] * (a / a0[layer])[:, :, None]
            o = torch.einsum("ij,bij->bi", w, e) / nu[layer]
            ratio = o / o0[layer]
        return 0.5 * ((o - y) ** 2).sum()

    h = 1e-5
    numeric = [torch.zeros_like(w) for w in w0]
    for layer, w in enumerate(w0):
        for index in range(w.numel()):
            plus = [v.clone() for v in w0]
            minus = [v.clone() for v in w0]
            plus[layer].view(-1)[index] += h
            minus[layer].view(-1)[index] -= h
            numeric[layer].view(-1)[index] = (energy(plus) - energy(minus)) / (2 * h)
    for shift in (h, -h):  # the counts do not jump: the spike trains are those of W0
        net.weights[0].add_(shift)
        net.weights[1].add_(shift)
        shifted = net.simulate(x)
        net.weights[0].sub_(shift)
        net.weights[1].sub_(shift)
        assert all(torch.equal(a, b) for a, b in zip(shifted.spikes, record.spikes, strict=True))

    estimated = Record(record.spikes, o0, record.psp_sums)
    delta_out = (o0[1] - y) / nu[1]
    analytic = net.gradients(x, estimated, delta_out, silent_psp=0.0)
    for a, n in zip(analytic, numeric, strict=True):
        assert n.abs().max() > 1e-3
        assert torch.allclose(a, n, rtol=1e-6, atol=1e-8 * float(n.abs().max()))


def test_conv_and_pool_contractions_equal_their_dense_equivalents():
    """A convolution's gradient is the dense layer's summed over tied weights; the pooling
    layer passes deltas back through its fixed weights like a dense layer would."""
    g = torch.Generator().manual_seed(4)
    conv = Conv((2, 6, 6), 3, 3, 0.6, g)
    conv.weight = conv.weight.double() + 0.15
    pool = Pool(conv.out_shape, 2, 1.0)
    head = Dense(pool.out_shape, 4, 0.5, g)
    head.weight = head.weight.double() + 0.2
    net = SpikingNetwork([conv, pool, head], (1.5, 0.8, 1.0), block_elements=5000)
    x = random_trains(2, 120, 72, 0.1, 9)
    record = net.simulate(x)
    delta_out = torch.randn(2, 4, generator=g, dtype=torch.float64)
    fast = net.gradients(x, record, delta_out, silent_psp=0.1)

    def dense_of(layer, n_in):
        basis = torch.eye(n_in, dtype=torch.float64)
        return layer.forward(basis).T.contiguous()  # (n_out, n_in)

    dense_layers = []
    for layer, n_in in ((conv, 72), (pool, 48), (head, 12)):
        d = Dense((n_in,), 1, 0.0)
        d.weight = dense_of(layer, n_in)
        d.out_shape = (d.weight.shape[0],)
        d.learned = True
        dense_layers.append(d)
    twin = SpikingNetwork(dense_layers, net.thresholds, block_elements=5000)
    twin_record = twin.simulate(x)
    assert all(torch.equal(a, b) for a, b in zip(twin_record.spikes, record.spikes, strict=True))
    dense_grads = twin.gradients(x, twin_record, delta_out, silent_psp=0.1)
    assert torch.allclose(fast[-1], dense_grads[-1])
    # the conv kernel's gradient: chain the dense gradient through W_dense(kernel)
    kernel = conv.weight.clone().requires_grad_(True)
    with torch.enable_grad():
        basis = torch.eye(72, dtype=torch.float64).view(72, 2, 6, 6)
        w_dense = torch.nn.functional.conv2d(basis, kernel).flatten(1).T
        (expected,) = torch.autograd.grad((w_dense * dense_grads[0]).sum(), kernel)
    assert torch.allclose(fast[0], expected)


def test_margin_and_targets():
    counts = torch.tensor([[36.0, 12.0, 5.0]])
    targets = loss_module.rate_targets(torch.tensor([0]), 3)
    assert rate_error(counts, targets, 5.0).tolist() == [[0.0, 7.0, 0.0]]
    assert loss_module.rate_loss(counts, targets, 5.0).tolist() == [24.5]


def test_alignment_with_the_exact_output_gradient_is_high_but_not_one():
    net = tiny_network(seed=3)
    learner = HM2BPLearner(
        net, lambda xb, g: xb, 3, lr=1e-3, targets=learner_module.RateTargets(9.0, 1.0, 0.0)
    )
    x = random_trains(4, 150, 8, 0.2, 10)
    y = torch.tensor([0, 1, 2, 0])
    cosine = output_alignment(learner, x, y)
    assert 0.5 < cosine < 1.0 - 1e-6  # the side effect (1 + S_i) reweights rows


def test_a_step_leaves_no_subnormal_weights():
    """A silent neuron's weights decay geometrically under Adam and the regulariser; below
    learner.TINY they are set to 0 (subnormal floats make CPU products many times slower)."""
    net = tiny_network(seed=5)
    targets = learner_module.RateTargets(9.0, 1.0, 0.0)
    learner = HM2BPLearner(net, lambda xb, g: xb, 3, lr=1e-3, targets=targets, silent_psp=0.0)
    x, y = random_trains(4, 100, 8, 0.2, 13), torch.tensor([0, 1, 2, 0])
    learner.train_step(x, y)
    state = learner.optimizer.state[net.weights[0]]
    # neuron 0 as after a long decay: silent (no gradient but the regulariser's), tiny
    # weights, a second moment remembering large steps
    net.weights[0][0].fill_(1e-40)  # subnormal in float32, and in float64 far below TINY
    state["exp_avg"][0] = 0.0
    state["exp_avg_sq"][0] = 1e6
    net.weights[0][1, 0] = 1e-3
    learner.train_step(x, y)
    assert torch.equal(net.weights[0][0], torch.zeros(8, dtype=net.weights[0].dtype))
    assert abs(float(net.weights[0][1, 0])) > learner_module.TINY  # ordinary weights kept


@pytest.mark.genuine_data("mnist")
def test_smoke_run_learns(tmp_path):
    result = runner.run(registry.get("hm2bp.mnist"), scale="smoke", seed=0, out=tmp_path / "r")
    assert result["metrics"]["test_accuracy"] > 0.35  # chance is 0.1
    assert result["metrics"]["alignment_cosine"] > 0.9


@pytest.mark.genuine_data("mnist")
def test_cnn_smoke_run_learns(runs_of):
    result = runs_of("hm2bp.mnist_cnn").unbroken  # the contract's smoke run (seed 1)
    assert result["metrics"]["test_accuracy"] > 0.2  # chance is 0.1


def test_nmnist_without_data_exits_2_naming_where_to_put_it(tmp_path):
    env = {"CREDITLAB_DATA": str(tmp_path / "empty"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "creditlab",
            "run",
            "hm2bp.nmnist",
            "--scale",
            "smoke",
            "--runs",
            str(tmp_path / "runs"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "nmnist" in lines[0] and "Traceback" not in proc.stderr


def test_nmnist_runs_on_spike_lists(tmp_path, monkeypatch):
    """With the loader monkeypatched to generated spikes (the digit's class lights its own
    channels), the experiment trains on frames built a batch at a time."""
    import numpy as np

    from creditlab.data import nmnist

    class FakeSpikes:
        def __init__(self, n, n_steps, seed):
            rng = np.random.default_rng(seed)
            self.labels = torch.arange(n) % 10
            self.n_steps, self.source = n_steps, "generated"
            self.dense = torch.from_numpy(rng.random((n, n_steps, 2312)) < 0.01)
            for k in range(n):
                lo = 200 * int(self.labels[k])
                self.dense[k, :, lo : lo + 200] |= torch.from_numpy(
                    rng.random((n_steps, 200)) < 0.08
                )

        def __len__(self):
            return len(self.labels)

        def frames(self, index):
            return self.dense[torch.as_tensor(index)].to(torch.uint8)

    def fake(split, n_steps=540, bin_us=600, limit=None, stabilized=True):
        return FakeSpikes(limit or 50, n_steps, 0 if split == "train" else 1)

    monkeypatch.setattr(nmnist, "load_nmnist_spikes", fake)
    result = runner.run(
        registry.get("hm2bp.nmnist"),
        scale="smoke",
        seed=0,
        out=tmp_path / "r",
        overrides={"n_steps": "40", "epochs": "2", "n_train": "100", "n_test": "50"},
    )
    assert result["data"]["protocol"] == "nmnist"
    assert result["metrics"]["test_accuracy"] > 0.3


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_every_device_gives_the_cpu_spikes_and_gradients(device):
    """A second network on ``device`` (on a CPU-only machine: a second CPU network) gives the
    same spike trains and the same gradients: the simulation depends on its inputs only."""
    x = random_trains(2, 100, 8, 0.2, 11)
    cpu = tiny_network()
    other = tiny_network().to(device)
    a, b = cpu.simulate(x), other.simulate(x.to(device))
    assert all(torch.equal(p, q.cpu()) for p, q in zip(a.spikes, b.spikes, strict=True))
    delta = torch.ones(2, 3, dtype=torch.float64)
    for p, q in zip(
        cpu.gradients(x, a, delta), other.gradients(x.to(device), b, delta.to(device)), strict=True
    ):
        assert torch.allclose(p, q.cpu())


def test_layer_maps_transpose_and_weight_grad_are_the_adjoints_of_forward():
    """<L x, g> = <x, L^T g> for every layer, and weight_grad(g, x) = d<L x, g>/dW."""
    g = torch.Generator().manual_seed(12)
    conv = Conv((2, 7, 7), 3, 3, 1.0, g)
    layers = [Dense((5, 4), 6, 1.0, g), conv, Pool((3, 6, 4), 2, 0.7)]
    for layer in layers:
        layer.weight = layer.weight.double()
        layer.dtype = torch.float64
        n_in = math.prod(layer.in_shape)
        x = torch.rand(4, n_in, generator=g, dtype=torch.float64)
        out = layer.forward(x)
        grad_out = torch.randn(out.shape, generator=g, dtype=torch.float64)
        lhs = (out * grad_out).sum()
        assert torch.isclose(lhs, (x * layer.transpose(grad_out)).sum())
        if layer.learned:
            w = layer.weight.clone().requires_grad_(True)
            saved, layer.weight = layer.weight, w
            with torch.enable_grad():
                (expected,) = torch.autograd.grad((layer.forward(x) * grad_out).sum(), w)
            layer.weight = saved
            assert torch.allclose(layer.weight_grad(grad_out, x).view_as(w), expected)


# --- the reference code's choices (issue 28), each against an independent slow reference ----


def no_step_zero(trains):
    trains = trains.clone()
    trains[:, 0] = False  # the reference never has a spike at step 0 (input or neuron)
    return trains


@pytest.mark.parametrize("block", [400, 7])
def test_reference_timing_spsp_equals_the_authors_loop(block):
    pre = no_step_zero(random_trains(2, 140, 5, 0.1, 21))
    post = no_step_zero(random_trains(2, 140, 4, 0.07, 22))
    assert post.sum(1).min() >= 3  # resets matter
    fast = spike_train_psp(pre.double(), post, t_ref=2)
    slow = torch.stack([authors_spsp(pre[b], post[b]) for b in range(2)])
    assert slow.abs().max() > 1.0
    assert torch.allclose(fast, slow, rtol=1e-10, atol=1e-12)
    exact = spike_train_psp(pre.double(), post)  # the spec's timing differs
    assert not torch.allclose(exact, slow, rtol=1e-3)
    # block by block (the output layer's path), the same
    net = tiny_network(block_elements=block * 2 * 5, reference=True)
    pairs = net._pair_psp(pre.transpose(0, 1).contiguous(), post.transpose(0, 1).contiguous(),
                          torch.float64)  # fmt: skip
    assert torch.allclose(pairs.transpose(0, 1), slow, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("block_elements", [2**22, 40])
def test_reference_mode_backward_equals_the_authors_per_synapse_loop(block_elements):
    """Reference timing, silent side effect 0.5 sum w / nu, forced label spikes and the
    lateral factor, against loops written from the reference's kernels."""
    from creditlab.methods.hm2bp.output import force_label_spikes, lateral_factor

    net = tiny_network(block_elements, thresholds=(4.0, 3.0), bias=0.3, reference=True, lateral=0.4)
    x = no_step_zero(random_trains(3, 160, 8, 0.15, 5))
    record = net.simulate(x)
    labels = torch.tensor([0, 1, 2])
    counts_before = record.counts[-1].clone()
    out_before = record.spikes[-1].clone()
    flat = [v for c in record.counts for row in c.tolist() for v in row]
    assert 0.0 in flat and max(flat) > 2
    assert counts_before[1, 1] == 0  # example 1's label neuron is silent: it is forced
    assert counts_before[0, 1] == 0  # a silent neuron that is not the label: side effect
    g = torch.Generator().manual_seed(6)
    delta_out = torch.randn(3, 3, generator=g, dtype=torch.float64)
    factor = lateral_factor(out_before, counts_before, labels, 0.4, 3.0, delay=2)
    slow_factor = authors_lateral_factor(out_before, counts_before, labels, 0.4, 3.0)
    assert torch.allclose(factor, slow_factor, rtol=1e-10)
    assert (factor - 1).abs().max() > 1e-3
    forced = force_label_spikes(record, labels, 20)
    slow_record = Record([s.clone() for s in record.spikes], [c.clone() for c in record.counts],
                         record.psp_sums)  # fmt: skip
    slow_record.spikes[-1] = out_before.clone()
    slow_record.counts[-1] = counts_before.clone()
    for b, label in enumerate(labels.tolist()):  # g_modifySpikes, written out
        if counts_before[b, label] == 0:
            for t in range(160 // 20, 160, 160 // 20):
                slow_record.spikes[-1][b, t, label] = True
            slow_record.counts[-1][b, label] = float(len(range(8, 160, 8)))
    assert forced.any()
    assert torch.equal(slow_record.spikes[-1], record.spikes[-1])
    assert torch.equal(slow_record.counts[-1], record.counts[-1])
    fast = net.gradients(x, record, delta_out, silent_psp=0.1, forced=forced, out_factor=factor)
    slow = reference_gradients(
        x, slow_record, net.weights, net.thresholds, delta_out, 0.1, authors=True,
        out_factor=slow_factor,
    )  # fmt: skip
    for f, s in zip(fast, slow, strict=True):
        assert torch.allclose(f, s, rtol=1e-8, atol=1e-10)


def authors_lateral_factor(out, counts, labels, w0, vth):
    """g_getLateralFactor_output (layers/Spiking.cu), one (example, neuron) at a time."""
    batch, _, n = out.shape
    factor = torch.zeros(batch, n, dtype=torch.float64)
    for b in range(batch):
        e = authors_spsp(out[b], out[b])  # e[post, pre]
        o = counts[b].tolist()
        y = int(labels[b])
        for j in range(n):
            d_j = 1 / vth if o[j] > 0 or j == y else 0.0
            total = 0.0
            for l in range(n):
                if l == j:
                    continue
                d_l = 1 / vth if o[l] > 0 or l == y else 0.0
                r_jl = 1.0 if o[j] == 0 or o[l] == 0 else e[l, j].item() / o[j]
                r_lj = 1.0 if o[l] == 0 or o[j] == 0 else e[j, l].item() / o[l]
                total += r_jl * d_l * r_lj * d_j
            factor[b, j] = 1 / (1 - total * w0 * w0)
    return factor


def test_reference_side_effect_sums_from_the_forward_pass():
    net = tiny_network(block_elements=50, reference=True)
    x = no_step_zero(random_trains(2, 200, 8, 0.15, 7))
    record = net.simulate(x)
    inputs = [x, record.spikes[0]]
    for layer, w in enumerate(net.weights):
        e = torch.stack([authors_spsp(inputs[layer][b], record.spikes[layer][b]) for b in range(2)])
        assert torch.allclose(record.psp_sums[layer], torch.einsum("il,bil->bi", w, e))


def test_fixed_input_trains_are_drawn_once_per_image():
    from creditlab.methods.hm2bp.learner import fixed_rate_encoder

    images = torch.rand(6, 20) * (torch.rand(6, 20) > 0.3)
    encode = fixed_rate_encoder(images, (20,), 3000, 2.0, seed=4)
    a = encode(torch.tensor([3, 1, 5]), None)
    b = encode(torch.tensor([1, 5]), torch.Generator().manual_seed(9))
    assert torch.equal(a[1:], b)  # the same trains whatever the batch or generator
    assert not a[:, 0].any()  # no spike at step 0, as the reference draws steps 1..T-1
    rate = a[:, 1:].double().mean(1)
    expected = (images[[3, 1, 5]] / 2.0).double()
    assert torch.allclose(rate, expected, atol=0.04)  # 2999 draws: 4 standard errors
    other = fixed_rate_encoder(images, (20,), 3000, 2.0, seed=5)(torch.tensor([3]), None)
    assert not torch.equal(other[0], a[0])  # another seed, other trains


@pytest.mark.genuine_data("mnist")
def test_reference_initialisation_and_regulariser_defaults():
    from creditlab.methods.hm2bp.experiments import CnnConfig, MnistConfig, NmnistConfig

    assert MnistConfig().init_w == (1.0, 1.0) and NmnistConfig().init_w == (1.0, 1.0)
    assert CnnConfig().init_w == (0.5, 0.5, 1.0, 1.0) and CnnConfig().reg_lambda == 0.0
    assert MnistConfig().lateral_inhibition == 1.0 and MnistConfig().label_spikes
    layers = __import__("creditlab.methods.hm2bp.network", fromlist=["x"]).dense_layers(
        784, (800,), 10, MnistConfig().init_w, torch.Generator().manual_seed(0)
    )
    for layer in layers:  # uniform in +-1: the extremes are near +-1, the mean near 0
        w = layer.weight
        assert w.abs().max() <= 1.0 and w.abs().max() > 0.99
        assert abs(float(w.mean())) < 0.05 and abs(float(w.abs().mean()) - 0.5) < 0.02


def test_lif_resets_with_no_refractory_period():
    """t_ref = 0 against a hand loop, on a varying current: spikes a few steps apart (where the
    reset to 0 decides the next spike) and a strong pulse (consecutive spikes: no hold)."""
    from creditlab.spiking import LIF

    g = torch.Generator().manual_seed(13)
    current = torch.rand(1, 120, 2, generator=g, dtype=torch.float64) * 0.6
    current[0, 60:64] = 12.0  # the pulse
    lif = LIF(threshold=1.0, t_ref=0)
    lif.reset((1, 2), dtype=torch.float64)
    spikes = lif(current)[0]
    # by hand: leak, input of the step before, integrate, fire and reset to 0, no hold
    v, s, pending, expected = [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], []
    for t in range(120):
        row = []
        for i in range(2):
            v[i] -= v[i] / TAU_M
            s[i] = s[i] - s[i] / TAU_S + pending[i]
            v[i] += s[i] / TAU_S
            row.append(v[i] > 1.0)
            v[i] = 0.0 if row[-1] else v[i]
            pending[i] = float(current[0, t, i])
        expected.append(row)
    assert spikes.tolist() == expected
    gaps = torch.diff(spikes[:, 0].nonzero().flatten())
    assert int(gaps.min()) == 1  # with no refractory period a neuron can fire on consecutive steps
    assert int(gaps.max()) >= 3 and int(spikes[:60].sum()) >= 6  # resets between spikes matter


def test_interspike_cv_with_a_spike_at_step_zero_and_unequal_intervals():
    from creditlab.spiking import interspike_cv

    train = torch.zeros(1, 30, 1, dtype=torch.bool)
    train[0, [0, 2, 7, 17], 0] = True  # intervals 2, 5, 10
    isi = torch.tensor([2.0, 5.0, 10.0])
    assert interspike_cv(train) == pytest.approx(float(isi.std() / isi.mean()), rel=1e-6)


def test_learner_gradient_is_the_mean_of_per_example_gradients_with_the_output_delta():
    net = tiny_network(seed=3, reference=True, lateral=0.3)
    targets = learner_module.RateTargets(9.0, 1.0, 0.0)
    learner = HM2BPLearner(net, lambda xb, g: xb, 3, targets=targets)
    x, y = no_step_zero(random_trains(4, 120, 8, 0.2, 31)), torch.tensor([0, 1, 2, 0])
    grads, _ = learner.gradient(x, y)
    singles = [learner.gradient(x[b : b + 1], y[b : b + 1])[0] for b in range(4)]
    for layer, g in enumerate(grads):
        mean = sum(s[layer] for s in singles) / 4
        assert torch.allclose(g, mean, rtol=1e-10, atol=1e-12)  # scale, not only direction
    # the output delta (o - y)/nu on a hand-made record
    counts = torch.tensor([[12.0, 0.0, 3.0]], dtype=torch.float64)
    record = Record([], [counts], [])
    delta = learner.output_delta(record, torch.tensor([0]))
    assert delta.tolist() == [[(12 - 9) / 2.0, (0 - 1) / 2.0, (3 - 1) / 2.0]]


def test_learning_rate_after_k_epochs():
    net = tiny_network(seed=3)
    learner = HM2BPLearner(net, lambda xb, g: xb, 3, lr=0.01, batches_per_epoch=2, silent_psp=0.0)
    x, y = random_trains(2, 60, 8, 0.2, 41), torch.tensor([0, 1])
    seen = []
    for _ in range(7):
        learner.train_step(x, y)
        seen.append(learner.optimizer.param_groups[0]["lr"])
    expected = [0.01 / math.sqrt(k // 2 + 1) for k in range(7)]
    assert seen == pytest.approx(expected, rel=1e-12)


def test_no_training_set_pass_gives_the_epochs_minibatch_means(tmp_path):
    """fit(evaluate_train=False), as the experiments run it: train_loss / train_accuracy are
    the last epoch's minibatch means from train_step, and only the test set is evaluated;
    train_step's accuracy is that of the forward pass before its update."""
    import time

    from creditlab.train import fit

    targets = learner_module.RateTargets(9.0, 1.0, 0.0)
    x, y = no_step_zero(random_trains(6, 80, 8, 0.2, 51)), torch.tensor([0, 1, 2, 0, 1, 2])
    net = tiny_network(seed=3, reference=True, lateral=0.3, bias=0.3)
    counts = net.simulate(x).counts[-1]
    assert (counts.max(1).values > counts.min(1).values).all()  # no example all tied
    learner = HM2BPLearner(net, lambda xb, g: xb, 3, lr=0.05, targets=targets)
    assert learner.train_step(x, counts.argmax(1))["accuracy"] == 1.0  # labelled as predicted
    net = tiny_network(seed=3, reference=True, lateral=0.3)
    learner = HM2BPLearner(net, lambda xb, g: xb, 3, lr=0.05, targets=targets)
    seen, evaluated = [], []
    step, evaluate = learner.train_step, learner.evaluate
    learner.train_step = lambda xb, yb: seen.append(step(xb, yb)) or seen[-1]
    learner.evaluate = lambda xb, yb: evaluated.append(len(xb)) or evaluate(xb, yb)
    ctx = runner.RunContext(registry.get("hm2bp.mnist"), None, "smoke", 0, "cpu", tmp_path)
    ctx._started = time.monotonic()
    metrics = fit(ctx, learner, x, y, x[:4], y[:4], epochs=2, batch_size=2, evaluate_train=False)
    assert len(seen) == 6 and evaluated == [4, 4]  # the test set after each epoch, no more
    first, last = (sum(s["loss"] for s in part) / 3 for part in (seen[:3], seen[3:]))
    assert first != pytest.approx(last)  # the epochs differ: which one is reported matters
    assert metrics["train_loss"] == pytest.approx(last, rel=1e-12)
    assert metrics["train_accuracy"] == pytest.approx(sum(s["accuracy"] for s in seen[3:]) / 3)
