"""The adaptive sparse hyperlayer against independent references: the density path by
gradcheck and by the formula, the layer against a dense matrix built by hand, no dense
n x m tensor at n = 2^20, quicksort and NeuralSort against argsort, the held-out sorting and
canvas data, and learning."""

import math

import pytest
import torch

from creditlab import data, registry, runner
from creditlab.errors import UserError
from creditlab.methods.sparse import attention, canvas, hyperlayer, recovery, sorting, tasks
from creditlab.methods.sparse.hyperlayer import (
    EPSILON,
    SparseHyperLayer,
    duplicates,
    integer_candidates,
    pooled_weights,
    sample_entries,
    sparse_product,
)

F64 = torch.float64


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- the density path ------------------------------------------------------------------------


def test_density_path_gradcheck_with_sampled_indices_fixed():
    torch.manual_seed(0)
    sizes = (6, 5)
    means = (torch.rand(2, 3, 2, dtype=F64) * torch.tensor([5.0, 4.0], dtype=F64)).requires_grad_()
    sigmas = (0.5 + torch.rand(2, 3, 2, dtype=F64)).requires_grad_()
    values = torch.randn(2, 3, dtype=F64, requires_grad=True)
    candidates = integer_candidates(means, torch.tensor(sizes, dtype=F64), 3, 3, 3)
    candidates[:, :, -1] = candidates[:, :, 0]  # a duplicate on every tuple
    points = candidates.flatten(1, 2)  # one pool of all 3 tuples' candidates
    assert not points.requires_grad

    def entries(m, s, v):
        return (pooled_weights(points, m, s, sizes) * v[..., None]).sum(-2)

    assert torch.autograd.gradcheck(entries, (means, sigmas, values))


def brute_force_pooled(points, means, sigmas, values, chunk):
    """The pooled matrix entry by entry, in plain Python: for each chunk of tuples, the set of
    distinct points (first occurrence kept), each tuple's density exp(-1/2 sum (c - p)^2 /
    (eps + sigma)) (sigma a variance) normalised over that set, each point's value the sum over
    the chunk's tuples of weight * value; later copies of a point get 0."""
    out = []
    k = len(means)
    per = len(points) // (k // chunk)
    for c0 in range(0, k, chunk):
        pool = points[(c0 // chunk) * per : (c0 // chunk + 1) * per]
        seen, first = set(), []
        for p in pool:
            first.append(tuple(p) not in seen)
            seen.add(tuple(p))
        entry = [0.0] * len(pool)
        for j in range(c0, c0 + chunk):
            rho = [
                math.exp(-0.5 * sum((p[d] - means[j][d]) ** 2 / (EPSILON + sigmas[j][d])
                                    for d in range(len(p)))) if f else 0.0
                for p, f in zip(pool, first, strict=True)
            ]  # fmt: skip
            total = sum(rho)
            for i, r in enumerate(rho):
                entry[i] += r / total * values[j]
        out.extend(entry)
    return out


@pytest.mark.parametrize("chunk", [1, 2, 4])
def test_pooled_normalisation_matches_a_brute_force_computation(chunk):
    """A tiny 5 x 4 layer with 4 tuples: the layer's training-mode entries (points and values)
    against :func:`brute_force_pooled` on the same sampled points."""
    torch.manual_seed(13)
    layer = SparseHyperLayer((4,), (5,), k=4, n_global=3, n_local=2, region=2, chunk_size=chunk)
    layer.double().train()
    with torch.no_grad():
        layer.raw[:, 2] = torch.tensor([-1.0, 0.5, -2.5, 1.0], dtype=F64)  # varied sigmas
    means, sigmas, values = layer.tuples(torch.zeros(1, 4))
    torch.manual_seed(14)
    points, entries = layer.entries(torch.zeros(1, 4))
    assert points.shape == (4 * (4 + 3 + 2), 2)
    torch.manual_seed(14)  # the same draws: the candidates are those of integer_candidates
    expect = integer_candidates(means, layer.size_t.double(), 3, 2, 2).flatten(0, 1)
    assert torch.equal(points, expect)
    assert points.unique(dim=0).shape[0] < len(points)  # the pool does hold duplicates
    reference = brute_force_pooled(
        points.tolist(), means.tolist(), sigmas.tolist(), values.tolist(), chunk
    )
    torch.testing.assert_close(entries, torch.tensor(reference, dtype=F64), rtol=1e-10, atol=1e-12)


def test_sigma_is_a_variance():
    """One tuple on two points one step apart on each side: the weights are in the ratio of
    a Gaussian density of *variance* sigma, exp(-1/2 * 1 / sigma) (not 1 / sigma^2)."""
    means = torch.tensor([[2.0, 2.0]], dtype=F64)
    sigmas = torch.tensor([[4.0, 4.0]], dtype=F64)
    points = torch.tensor([[2, 2], [3, 2], [2, 0]])
    w = pooled_weights(points, means, sigmas, (5, 5))[0]
    assert w[1] / w[0] == pytest.approx(math.exp(-0.5 / (4.0 + EPSILON)), rel=1e-12)
    assert w[2] / w[0] == pytest.approx(math.exp(-0.5 * 4 / (4.0 + EPSILON)), rel=1e-12)


def test_fixed_values_give_point_values_summing_to_the_tuples():
    """Values fixed to 1: every tuple spreads a total of 1 over its pool, so the entries of
    each chunk sum to the number of tuples in it, and evaluation uses value 1."""
    torch.manual_seed(15)
    layer = SparseHyperLayer((9,), (9,), k=6, n_global=4, n_local=4, fix_values=True, chunk_size=3)
    _, entries = layer.entries(torch.zeros(1, 9))
    torch.testing.assert_close(entries.view(2, -1).sum(1), torch.tensor([3.0, 3.0]))
    _, values = layer.eval().entries(torch.zeros(1, 9))
    assert torch.equal(values, torch.ones(6))


def test_chunk_size_must_divide_k():
    with pytest.raises(ValueError):
        SparseHyperLayer((4,), (4,), k=6, chunk_size=4)
    with pytest.raises(ValueError):
        sample_entries(torch.rand(6, 2), torch.ones(6, 2), torch.ones(6), (4, 4),
                       training=True, chunk_size=4)  # fmt: skip


def test_candidates_neighbours_global_and_local():
    torch.manual_seed(1)
    sizes = torch.tensor([9.0, 40.0])
    means = torch.tensor([[2.4, 37.8], [8.0, 0.2]], requires_grad=True)
    c = integer_candidates(means, sizes, n_global=50, n_local=50, region=4)
    assert c.shape == (2, 4 + 50 + 50, 2) and c.dtype == torch.long
    expected = {(2, 37), (2, 38), (3, 37), (3, 38)}
    assert {tuple(t) for t in c[0, :4].tolist()} == expected
    assert {tuple(t) for t in c[1, :4].tolist()} == {(8, 0), (8, 1)}  # floor = ceil in dim 0
    assert (c >= 0).all() and (c < sizes.long()).all()
    local = c[:, 54:]
    # a box of side 4 around round(mean), shifted inside: [0, 4) x [36, 40) and [5, 9) x [0, 4)
    assert local[0, :, 0].min() >= 0 and local[0, :, 0].max() <= 3
    assert local[0, :, 1].min() >= 36 and local[1, :, 0].min() >= 5 and local[1, :, 1].max() <= 3
    assert c[:, 4:54, 1].max() > 20  # global samples reach the whole space


def test_global_samples_reach_every_index_including_the_last():
    torch.manual_seed(16)
    sizes = torch.tensor([3.0, 7.0])
    c = integer_candidates(torch.tensor([[1.0, 3.0]]), sizes, n_global=400, n_local=0, region=4)
    g = c[0, 4:]
    assert set(g[:, 0].tolist()) == {0, 1, 2} and set(g[:, 1].tolist()) == set(range(7))


def test_duplicates_keep_exactly_one_copy():
    codes = torch.tensor([[3, 1, 3, 3, 2, 1]])
    assert duplicates(codes).tolist() == [[False, False, True, True, False, True]]


# --- the layer against a dense matrix --------------------------------------------------------


def dense_from_tuples(means, values, out_shape, in_shape):
    """The dense matrix with the rounded tuples' values (summed where tuples coincide), built
    entry by entry."""
    w = torch.zeros(*out_shape, *in_shape, dtype=values.dtype)
    for mean, value in zip(means.round().long().tolist(), values.tolist(), strict=True):
        w[tuple(mean)] += value
    return w.reshape(math.prod(out_shape), math.prod(in_shape))


@pytest.mark.parametrize(("in_shape", "out_shape"), [((7,), (5,)), ((3, 4), (5,)), ((4,), (2, 3))])
@pytest.mark.parametrize("training", [True, False])
def test_tiny_sigma_without_samples_is_the_dense_matrix(in_shape, out_shape, training):
    torch.manual_seed(2)
    layer = SparseHyperLayer(in_shape, out_shape, k=6, min_sigma=1e-4).double()
    with torch.no_grad():
        layer.raw[:, -2] = -60.0  # sigma (a variance) -> min_sigma
    layer.train(training)
    x = torch.randn(4, *in_shape, dtype=F64)
    means, _, values = layer.tuples(x)
    w = dense_from_tuples(means, values, out_shape, in_shape)
    y = layer(x).reshape(4, -1)
    torch.testing.assert_close(y, x.reshape(4, -1) @ w.T, rtol=1e-9, atol=1e-9)


def test_hypernetwork_gives_each_example_its_own_matrix():
    torch.manual_seed(3)
    n = 6
    net = torch.nn.Sequential(torch.nn.Linear(n, 5 * 4), torch.nn.Unflatten(1, (5, 4))).double()
    layer = SparseHyperLayer((n,), (n,), k=5, hypernetwork=net).double().eval()
    x = torch.randn(3, n, dtype=F64)
    means, _, values = layer.tuples(x)
    y = layer(x)
    for b in range(3):
        w = dense_from_tuples(means[b], values[b], (n,), (n,))
        torch.testing.assert_close(y[b], w @ x[b])


def test_sparse_product_matches_dense_for_shared_and_per_example_entries():
    torch.manual_seed(4)
    x = torch.randn(3, 7, 2, dtype=F64)
    out_i, in_i, v = torch.randint(5, (9,)), torch.randint(7, (9,)), torch.randn(9, dtype=F64)
    w = torch.zeros(5, 7, dtype=F64).index_put((out_i, in_i), v, accumulate=True)
    torch.testing.assert_close(
        sparse_product(x, out_i, in_i, v, 5), torch.einsum("ij,bjd->bid", w, x)
    )
    torch.testing.assert_close(sparse_product(x[..., 0], out_i, in_i, v, 5), x[..., 0] @ w.T)
    per = [torch.randint(5, (3, 9)), torch.randint(7, (3, 9)), torch.randn(3, 9, dtype=F64)]
    y = sparse_product(x, *per, 5)
    for b in range(3):
        wb = torch.zeros(5, 7, dtype=F64).index_put(
            (per[0][b], per[1][b]), per[2][b], accumulate=True
        )
        torch.testing.assert_close(y[b], wb @ x[b])


def test_no_dense_matrix_at_n_two_to_the_twenty():
    """A dense 2^20 x 2^20 float32 matrix is 4 TiB: the layer must never build one."""
    torch.manual_seed(5)
    n = 2**20
    layer = SparseHyperLayer((n,), (n,), k=64, n_global=4, n_local=4, region=8)
    x = torch.randn(2, n)
    y = layer(x)
    y.square().sum().backward()
    assert y.shape == (2, n) and (y != 0).sum() <= 2 * 64 * 12
    assert layer.raw.grad.abs().sum() > 0


# --- sorting ---------------------------------------------------------------------------------


def test_hard_quicksort_is_argsort_and_keeps_padding_at_the_end():
    torch.manual_seed(6)
    for n in (2, 5, 8, 15, 16):
        keys = torch.randn(30, n)
        assert torch.equal(sorting.quicksort_order(keys), keys.argsort(1))


def test_soft_split_is_a_weighted_sum_of_permutations():
    torch.manual_seed(7)
    x, keys = torch.randn(5, 8, 3), torch.randn(5, 8)
    moved, moved_keys = sorting.split(x, keys, 1, certainty=2.0, additional=4, training=True)
    torch.testing.assert_close(moved.sum(1), x.sum(1))  # weights of permutations sum to 1
    torch.testing.assert_close(moved_keys.sum(1), keys.sum(1))
    hard, _ = sorting.split(x, keys, 1, certainty=2.0, additional=0, training=False)
    sharp, _ = sorting.split(x, keys, 1, certainty=1e4, additional=4, training=True)
    torch.testing.assert_close(sharp, hard)  # a sharp comparison puts all weight on one vector


def test_split_moves_lower_keys_to_the_lower_part_of_each_bucket():
    keys = torch.tensor([[5.0, 1.0, 7.0, 3.0, 0.0, 9.0, 2.0, 8.0]])
    x = keys[..., None]
    moved, _ = sorting.split(x, keys, 1, certainty=1.0, additional=0, training=False)
    assert moved[0, :, 0].tolist() == [1.0, 3.0, 5.0, 7.0, 0.0, 2.0, 9.0, 8.0]


def test_neuralsort_tends_to_the_sorting_permutation():
    torch.manual_seed(8)
    scores = torch.randn(4, 6, dtype=F64)
    p_hat = sorting.neuralsort(scores, tau=1e-3)
    truth = torch.nn.functional.one_hot(scores.argsort(1, descending=True), 6).to(F64)
    torch.testing.assert_close(p_hat, truth)
    torch.testing.assert_close(sorting.neuralsort(scores, 2.0).sum(-1), torch.ones(4, 6, dtype=F64))


def test_order_metrics_count_ties_as_correct():
    labels = torch.tensor([[3, 1, 1], [2, 0, 1]])
    order = torch.tensor([[2, 1, 0], [1, 0, 2]])
    assert sorting.order_metrics(labels, order) == pytest.approx((0.5, 4 / 6))


@pytest.mark.parametrize(("loss", "sampling"), [("plain", "balanced"), ("layers", "bernoulli")])
def test_quicksort_learns_an_order_from_the_order_alone(loss, sampling):
    """Keys = w . features (in [0, 1], as pixels); the true value is a fixed linear function of
    the features; only the ranks supervise. A broken density or split (e.g. the weights
    detached) stays at chance."""
    torch.manual_seed(9)
    truth = torch.randn(5)
    w = torch.zeros(5, requires_grad=True)
    opt = torch.optim.Adam([w], lr=0.05)
    for _ in range(150):
        f = torch.rand(32, 8, 5)
        ranks = (f @ truth).argsort(1).argsort(1)
        loss_value = sorting.quicksort_loss(
            f, f @ w, ranks, certainty=10.0, additional=2, loss=loss, sampling=sampling
        )
        opt.zero_grad()
        loss_value.backward()
        opt.step()
    f = torch.rand(500, 8, 5)
    all_correct, ranks_correct = sorting.order_metrics(f @ truth, sorting.quicksort_order(f @ w))
    assert ranks_correct > 0.8 and all_correct > 0.3  # chance: 1/8! and 1/8


def test_number_sequences_put_digits_side_by_side():
    digits = torch.arange(10.0).view(10, 1, 1, 1).expand(10, 1, 28, 28)
    images, values = sorting.number_sequences(digits, torch.arange(10), 3, 4, 4, torch.Generator())
    assert images.shape == (3, 4, 1, 28, 112)
    read = images[:, :, 0, 0, ::28].long()  # each digit's pixel value is its label
    assert torch.equal((read * torch.tensor([1000, 100, 10, 1])).sum(-1), values)


def split_dataset(train_value: float, test_value: float, n: int = 40):
    x_train = torch.full((n, 1, 28, 28), train_value)
    x_test = torch.full((n, 1, 28, 28), test_value)
    labels = torch.arange(n) % 10
    return data.Dataset("mnist", "test", "test", x_train, labels, x_test, labels)


def test_sorting_accuracy_reads_held_out_digits_only():
    ds = split_dataset(math.nan, 0.5)
    images, values = tasks.held_out_sequences(ds, 5, 4, 64, seed=0)
    assert not images.isnan().any() and values.max() <= 9999


def test_test_canvases_are_built_from_test_digits_only():
    ds = split_dataset(1.0, 0.0)
    cfg = registry.get("sparse.attention").make_config("smoke")
    x_train, _, x_test, _ = tasks.attention_data(cfg, "canvas", ds)
    assert x_test.max() == 0 and x_train.max() == 255


def test_canvas_holds_the_scaled_digit_inside():
    digit = torch.zeros(1, 1, 28, 28)
    digit[..., 4:24, 4:24] = 1.0
    g = torch.Generator().manual_seed(0)
    canvases, labels = canvas.cluttered_canvases(
        digit, torch.tensor([7]), 20, g, size=100, clutter=0
    )
    area = (canvases > 127).flatten(1).sum(1).float()
    # a 20x20 square scaled 1-2x: 400-1600 pixels, whatever the rotation; never cut off
    assert labels.eq(7).all() and area.min() > 380 and area.max() < 1650


# --- attention -------------------------------------------------------------------------------


def test_sparse_glimpses_pass_gradients_to_the_boxes_and_reinforce_reads_do_not():
    torch.manual_seed(10)
    x = torch.rand(4, 1, 28, 28)
    for kind, reaches in (("sparse", True), ("reinforce", False)):
        model = attention.GlimpseClassifier((28, 28), attention=kind, channels=(4,), hyper_hidden=8)
        model.train()
        model.classifier(model.read(x, model.boxes(x))).sum().backward()
        grad = model.hypernetwork[-1].weight.grad
        assert (grad is not None and grad.abs().sum() > 0) == reaches


def test_evaluation_glimpses_read_the_pixels_at_the_rounded_grid():
    torch.manual_seed(11)
    model = attention.GlimpseClassifier((28, 28), channels=(4,), hyper_hidden=8).eval()
    x = torch.rand(2, 1, 28, 28)
    raw = model.boxes(x)
    means = attention.box_grid(raw, model.k, model.size_t).flatten(1, 2).round().long()
    expected = torch.stack([x[b, 0, means[b, :, 0], means[b, :, 1]] for b in range(2)])
    torch.testing.assert_close(model.read(x, raw), expected)


# --- experiments -----------------------------------------------------------------------------


def test_identity_smoke_run_learns(runs_of):
    m = runs_of("sparse.identity").unbroken["metrics"]  # the contract's smoke run (seed 1)
    # chance is about 1/8; a layer whose densities pass no gradient to the means stays near it
    assert m["index_accuracy_identity"] + m["index_accuracy_permutation"] >= 0.9
    assert m["test_mse_identity"] + m["test_mse_permutation"] < 1.6


@pytest.mark.parametrize(
    ("name", "key", "value"),
    [
        ("sparse.identity", "size", "0"),
        ("sparse.identity", "targets", "[]"),
        ("sparse.sort", "single_iterations", "[10]"),
        ("sparse.sort", "lengths", "[1]"),
        ("sparse.sort", "eval_every", "0"),
        ("sparse.identity", "k", "-2"),
        ("sparse.attention", "canvas_size", "40"),
        ("sparse.attention", "k", "-1"),
    ],
)
def test_bad_settings_are_one_line_user_errors(name, key, value, tmp_path):
    with pytest.raises(UserError):
        runner.run(registry.get(name), scale="smoke", overrides={key: value}, out=tmp_path)


def test_means_and_sigmas_from_raw_parameters():
    sizes = torch.tensor([10.0, 4.0])
    torch.testing.assert_close(
        hyperlayer.means_from_raw(torch.zeros(2), sizes), torch.tensor([4.5, 1.5])
    )
    sigma = hyperlayer.sigmas_from_raw(torch.zeros(3), sizes, sigma_scale=0.1, min_sigma=0.5)
    expected = (math.log1p(math.exp(2.0)) + EPSILON) * 0.1 * sizes + 0.5  # globalsampling.py
    torch.testing.assert_close(sigma, expected.expand(3, 2))


@pytest.mark.parametrize("features", [(), (3,)])
def test_sparse_product_gradcheck(features, monkeypatch):
    monkeypatch.setattr(hyperlayer, "CHUNK", 4)  # several chunks of entries
    torch.manual_seed(12)
    x = torch.randn(2, 7, *features, dtype=F64, requires_grad=True)
    out_i, in_i = torch.randint(5, (11,)), torch.randint(7, (11,))
    v = torch.randn(11, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, v: sparse_product(x, out_i, in_i, v, 5), (x, v))
    per = torch.randn(2, 11, dtype=F64, requires_grad=True)
    out_b, in_b = torch.randint(5, (2, 11)), torch.randint(7, (2, 11))
    assert torch.autograd.gradcheck(lambda x, v: sparse_product(x, out_b, in_b, v, 5), (x, per))


TINY = {
    "sparse.sort": {
        "lengths": "[3]",
        "iterations": "12",
        "single_lengths": "[4]",
        "single_iterations": "[12]",
        "batch_size": "4",
        "channels": "[2]",
        "hidden": "[4]",
        "test_sequences": "10",
        "eval_every": "6",
        "log_every": "3",
    },
    "sparse.attention": {"epochs": "3", "channels": "[2, 2, 2]", "hyper_hidden": "4"},
}


@pytest.mark.parametrize(
    ("name", "stop_at"), [("sparse.sort", 5), ("sparse.sort", 17), ("sparse.attention", 4)]
)
def test_an_interrupted_run_resumes_exactly(
    name, stop_at, fake_data, tmp_path, check_resumes_exactly
):
    """Stopped at a step boundary (in the first or a later stage), resumed: the same metrics
    and metric stream as an unbroken run (on a small generated data set)."""
    fake_data("mnist")
    exp = registry.get(name)
    reference = runner.run(exp, scale="smoke", overrides=TINY[name], out=tmp_path / "ref")
    check_resumes_exactly(
        exp, stop_at, reference, tmp_path / "ref", scale="smoke", overrides=TINY[name]
    )


# --- tests the suite lacked (issue 26) -------------------------------------------------------


def test_balanced_choices_split_every_bucket_in_half_uniformly():
    """Each sampled vector puts exactly half of every bucket on each side, and over many
    draws every one of the C(4, 2) = 6 arrangements of a 4-element bucket appears about
    equally often (a chi-square-free check: each within 30% of 1/6)."""
    torch.manual_seed(19)
    c = sorting.balanced_choices(500, 4, 8, 2)
    assert (c.view(500, 4, 2, 4).sum(-1) == 2).all()
    codes = (c.view(-1, 4) * torch.tensor([8.0, 4.0, 2.0, 1.0])).sum(1).long()
    counts = torch.bincount(codes, minlength=16).float()
    seen = counts[counts > 0]
    assert len(seen) == 6 and (seen / seen.sum() - 1 / 6).abs().max() < 0.05


def test_neuralsort_loss_is_lower_for_the_true_order_than_for_the_reversed_one():
    keys = torch.tensor([[0.3, -1.2, 2.0, 0.9, -0.4]], dtype=F64) * 3
    labels = keys.argsort(1).argsort(1)  # the keys' own order is the truth
    true = sorting.neuralsort_loss(keys, labels, tau=1.0)
    reversed_ = sorting.neuralsort_loss(-keys, labels, tau=1.0)
    assert true < reversed_ and true < 0.5 * reversed_


def test_box_grid_on_known_raw_values():
    """raw 0 everywhere on an 11 x 21 image: with the offset (-1, 1, -1, 1) the corners are
    sigmoid(-1) and sigmoid(1) times 10 (rows) and 20 (columns), and the 3 x 3 grid sits at
    fractions 0, 1/3, 2/3 of the way from the low corner to the high one, row-major."""
    lo, hi = 1 / (1 + math.exp(1)), 1 / (1 + math.exp(-1))
    rows = [10 * (lo + f * (hi - lo)) for f in (0, 1 / 3, 2 / 3)]
    cols = [20 * (lo + f * (hi - lo)) for f in (0, 1 / 3, 2 / 3)]
    grid = attention.box_grid(torch.zeros(4, dtype=F64), 3, torch.tensor([11.0, 21.0], dtype=F64))
    torch.testing.assert_close(grid, torch.tensor([[r, c] for r in rows for c in cols], dtype=F64))
    # raw (+50, -50, ...): a flipped box from the far corner back to the origin
    flipped = torch.tensor([50.0, -50.0, 50.0, -50.0], dtype=F64)
    grid = attention.box_grid(flipped, 2, torch.tensor([11.0, 21.0], dtype=F64))
    torch.testing.assert_close(grid[0], torch.tensor([10.0, 20.0], dtype=F64))
    torch.testing.assert_close(grid[-1], torch.tensor([5.0, 10.0], dtype=F64))


def test_reinforce_step_above_the_baseline_raises_the_log_probability_of_the_sampled_box():
    """One REINFORCE update where every example is classified right (reward 1 > baseline 0):
    the log-probability of the boxes sampled in that step rises (the draws replayed from the
    same seed; the hard reads pass the hypernetwork no other gradient)."""
    torch.manual_seed(17)
    model = attention.GlimpseClassifier((28, 28), attention="reinforce", channels=(4,),
                                        hyper_hidden=8, policy_std=0.5).train()  # fmt: skip
    learner = attention.ReinforceClassifier(model, torch.optim.SGD(model.parameters(), lr=0.05))
    x = torch.rand(6, 1, 28, 28)
    with torch.no_grad():
        raw = model.boxes(x)
        torch.manual_seed(18)
        sampled = torch.distributions.Normal(raw, 0.5).sample()
        torch.manual_seed(18)
        y = model(x).argmax(1)  # what the model predicts on that draw: reward 1 everywhere
    before = torch.distributions.Normal(raw, 0.5).log_prob(sampled).sum()
    torch.manual_seed(18)
    learner.train_step(x, y)
    assert learner.baseline > 0  # the reward was 1
    with torch.no_grad():
        after = torch.distributions.Normal(model.boxes(x), 0.5).log_prob(sampled).sum()
    assert after > before


def test_reinforce_identity_layer_moves_its_policy_towards_low_loss_tuples():
    """The Fig. 2 baseline: the surrogate's gradient is REINFORCE's (reward -MSE). One tuple,
    n = 6, target y_0 = x_3: after training by the surrogate alone its rounded tuple is (0, 3)
    on most seeds; a sign error sends it away."""
    hits = 0
    for seed in range(5):
        torch.manual_seed(seed)
        layer = recovery.ReinforceLayer(6, 1)
        opt = torch.optim.Adam(layer.parameters(), lr=0.05)
        perm = torch.tensor([3, 0, 1, 2, 4, 5])
        for _ in range(300):
            loss = recovery.recovery_loss(layer.train(), torch.randn(64, 6), perm)
            opt.zero_grad()
            loss.backward()
            opt.step()
        tuples, _ = layer.eval().entries(torch.zeros(1, 6))
        hits += tuples[0].tolist() in ([0, 3], [1, 0], [2, 1], [3, 2], [4, 4], [5, 5])
    assert hits >= 4


def test_diffsort_loss_is_near_zero_for_the_true_order_and_large_for_the_reversed_one():
    """diffsort's relaxed permutation against the true one: with a steep relaxation and
    well-separated keys in the true order the loss is near 0; for the reversed keys it is not.
    The keys' order (2, 0, 1, 3) is a 3-cycle, so a transposed target would not pass."""
    keys = torch.tensor([[2.0, 0.0, 1.0, 3.0], [0.5, 3.0, -1.0, 1.5]], dtype=F64)
    labels = keys.argsort(1).argsort(1) * 7  # values in the keys' order
    true = sorting.diffsort_loss(keys, labels, steepness=1000.0)
    reversed_ = sorting.diffsort_loss(-keys, labels, steepness=1000.0)
    assert true < 1e-3 and reversed_ > 1.0
    assert sorting.diffsort_loss(keys, labels) < sorting.diffsort_loss(-keys, labels)


def test_reference_networks_have_the_references_layers():
    """Parameter counts worked out by hand from the reference's layer lists: the sorting key
    network (9 convs of 16/64/128 channels, 3 batch norms, 3 pools to 3 x 3, dense 256, 128,
    1) and the attention hypernetwork (convs 32, 32, 64, 64, 128, 128; the first dense layer
    reads floor(w / (2 * pool^3))^2 * 128 values: 128 at 28 x 28, 4,608 at 100 x 100)."""
    from creditlab.methods.sparse.networks import attention_hypernetwork, key_network

    def conv(a, b):
        return a * b * 9 + b

    convs = conv(1, 16) + 2 * conv(16, 16) + conv(16, 64) + 2 * conv(64, 64)
    convs += conv(64, 128) + 2 * conv(128, 128)
    dense = (9 * 128 * 256 + 256) + (256 * 128 + 128) + (128 + 1)
    net = key_network((1, 28, 28))
    assert sum(p.numel() for p in net.parameters()) == convs + 2 * (16 + 64 + 128) + dense
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net) == 9
    for side, reads in ((28, 128), (100, 4608)):
        hyper = attention_hypernetwork((1, side, side), 16, pool=2)
        linears = [m for m in hyper if isinstance(m, torch.nn.Linear)]
        assert [(m.in_features, m.out_features) for m in linears] == [
            (reads, 512), (512, 512), (512, 16)
        ]  # fmt: skip
        assert [m.out_channels for m in hyper if isinstance(m, torch.nn.Conv2d)] == [
            32, 32, 64, 64, 128, 128
        ]  # fmt: skip
        assert hyper(torch.zeros(2, 1, side, side)).shape == (2, 16)
