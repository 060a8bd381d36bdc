"""The autodiff engine against torch.autograd (float64) and against finite differences.

Every operation is checked forward and backward (to 1e-6) on the same numbers in torch,
including broadcasting, strided and padded convolutions, max-pooling and the fused
cross-entropy; random compositions with shared sub-expressions are checked the same way;
random-direction central differences (HIPS autograd's ``check_grads``) check the gradients
without torch; and a 10,000-operation chain checks that backward() needs no recursion.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from creditlab import registry, runner
from creditlab.autodiff import nn
from creditlab.autodiff.engine import Tensor, topological_order, unbroadcast
from creditlab.autodiff.learner import from_torch
from creditlab.models import cnn, mlp

TOL = {"rtol": 1e-6, "atol": 1e-6}


def rand(rng: np.random.Generator, *shape: int, positive: bool = False) -> np.ndarray:
    x = rng.standard_normal(shape)
    return np.abs(x) + 0.5 if positive else x


def check_against_torch(fn, *arrays: np.ndarray, seed: int = 0) -> None:
    """``fn`` applied to engine Tensors and to torch tensors: same value, same gradients (the
    output is reduced to a scalar with random weights, so every output entry matters)."""
    ours = [Tensor(a.copy()) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, ref = fn(*ours), fn(*theirs)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), **TOL)
    weights = np.random.default_rng(seed).standard_normal(out.shape)
    (out * weights).sum().backward()
    (ref * torch.tensor(weights)).sum().backward()
    for mine, torch_input in zip(ours, theirs, strict=True):
        assert mine.grad is not None and mine.grad.shape == mine.shape
        np.testing.assert_allclose(mine.grad, torch_input.grad.numpy(), **TOL)


def check_grads(fn, *arrays: np.ndarray, eps: float = 1e-6, seed: int = 0) -> None:
    """HIPS autograd's check: the derivative of ``fn`` along a random direction d, by central
    differences (f(x + εd) - f(x - εd)) / 2ε, equals the backprop gradient · d."""
    rng = np.random.default_rng(seed)
    direction = [rng.standard_normal(a.shape) for a in arrays]

    def scalar(xs: list[np.ndarray]) -> float:
        return float(fn(*[Tensor(x) for x in xs]).data)

    inputs = [Tensor(a.copy()) for a in arrays]
    fn(*inputs).backward()
    analytic = sum(float((t.grad * d).sum()) for t, d in zip(inputs, direction, strict=True))
    plus = scalar([a + eps * d for a, d in zip(arrays, direction, strict=True)])
    minus = scalar([a - eps * d for a, d in zip(arrays, direction, strict=True)])
    numeric = (plus - minus) / (2 * eps)
    assert numeric == pytest.approx(analytic, rel=1e-6, abs=1e-6)


# --- every operation against torch ------------------------------------------------------------


def permute(a, *axes):
    """``Tensor.transpose(*axes)`` is NumPy's; torch calls it ``permute``."""
    return a.transpose(*axes) if isinstance(a, Tensor) else a.permute(*axes)


UNARY = {
    "neg": lambda a: -a,
    "exp": lambda a: a.exp(),
    "relu": lambda a: a.relu(),
    "tanh": lambda a: a.tanh(),
    "sigmoid": lambda a: a.sigmoid(),
    "square": lambda a: a**2,
    "cube": lambda a: a**3,
    "reciprocal": lambda a: a**-1,
    "reshape": lambda a: a.reshape(4, 6),
    "transpose": lambda a: permute(a, 2, 0, 1),
    "transpose_negative": lambda a: permute(a, -1, 0, 1),
    "sum": lambda a: a.sum(),
    "sum_axis": lambda a: a.sum(axis=1),
    "sum_axes_keepdims": lambda a: a.sum(axis=(0, -1), keepdims=True),
    "mean": lambda a: a.mean(),
    "mean_axis": lambda a: a.mean(axis=-1),
    "mean_keepdims": lambda a: a.mean(axis=0, keepdims=True),
    "scalar_ops": lambda a: 2.0 - a * 3.0 + 1.5 / (a * a + 1.0),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_ops_match_torch(name):
    a = rand(np.random.default_rng(1), 2, 3, 4)
    if name == "reciprocal":
        a = np.abs(a) + 0.5
    check_against_torch(UNARY[name], a)


def test_log_and_sqrt_match_torch():
    a = rand(np.random.default_rng(2), 3, 5, positive=True)
    check_against_torch(lambda x: x.log(), a)
    check_against_torch(lambda x: x**0.5, a)


def test_transpose_without_axes_and_T_match_torch():
    a = rand(np.random.default_rng(3), 3, 5)
    check_against_torch(lambda x: x.T, a)
    check_against_torch(lambda x: x.transpose() if isinstance(x, Tensor) else x.permute(1, 0), a)


BROADCAST_SHAPES = [
    ((3, 4), (3, 4)),
    ((3, 4), (4,)),
    ((3, 1), (1, 4)),
    ((2, 3, 4), (3, 1)),
    ((4,), (2, 3, 4)),
    ((2, 1, 4), (1, 3, 1)),
    ((), (2, 3)),
]
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_ops_broadcast_like_torch(name, shapes):
    rng = np.random.default_rng(4)
    a = rand(rng, *shapes[0])
    b = rand(rng, *shapes[1], positive=name == "div")  # keep the divisor away from zero
    check_against_torch(BINARY[name], a, b)


def test_numbers_on_either_side_become_constants():
    a = rand(np.random.default_rng(5), 3, 2)
    check_against_torch(lambda x: 1.0 + x, a)
    check_against_torch(lambda x: 1.0 - x, a)
    check_against_torch(lambda x: 2.0 * x, a)
    check_against_torch(lambda x: 2.0 / (x * x + 1.0), a)
    offset = np.arange(2.0)  # an ndarray on the left: NumPy must defer to Tensor.__radd__
    check_against_torch(
        lambda x: offset + x if isinstance(x, Tensor) else torch.from_numpy(offset) + x, a
    )


@pytest.mark.parametrize(
    "shapes",
    [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((1, 3, 4), (2, 4, 5))],
    ids=str,
)
def test_matmul_matches_torch(shapes):
    rng = np.random.default_rng(6)
    check_against_torch(lambda a, b: a @ b, rand(rng, *shapes[0]), rand(rng, *shapes[1]))


def test_matmul_of_a_vector_says_to_use_a_column():
    with pytest.raises(ValueError, match="vector"):
        Tensor(np.ones((2, 3))) @ Tensor(np.ones(3))


def test_cross_entropy_matches_torch_and_is_stable():
    rng = np.random.default_rng(7)
    labels = np.array([0, 3, 1, 3, 2])
    target = torch.tensor(labels)
    for scale in (1.0, 1000.0):  # 1000: exp would overflow without the max shift
        logits = scale * rand(rng, 5, 4)
        check_against_torch(
            lambda z: (
                z.cross_entropy(labels) if isinstance(z, Tensor) else F.cross_entropy(z, target)
            ),
            logits,
        )
    # classes along axis 0 (one example per column), as `creditlab explain` uses it
    column = rand(rng, 4, 1)
    ours = Tensor(column)
    ours.cross_entropy([2], axis=0).backward()
    theirs = torch.tensor(column.T, requires_grad=True)
    F.cross_entropy(theirs, torch.tensor([2])).backward()
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy().T, **TOL)


# rtol: a few ulps of float32, thousands of float64 ulps (exp is rounded differently on AVX2,
# AVX-512 and ARM, so never bitwise); atol: below the smallest normal number only subnormals
# remain (torch's float32 sigmoid already returns 0 below -88.7)
SIGMOID_TOL = {
    np.float32: {"rtol": 2e-6, "atol": float(np.finfo(np.float32).tiny)},
    np.float64: {"rtol": 1e-12, "atol": float(np.finfo(np.float64).tiny)},
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda t: t.__name__)
def test_sigmoid_is_accurate_from_minus_100_to_100_and_its_log_stays_finite(dtype):
    # 0.5·(1 + tanh(x/2)) cancels: it gave σ(-40) = 0 in float64 (torch: 4e-18), σ(-20) = 0 in
    # float32 (torch: 2e-9), so log σ(x) was -inf and the loss of a confident mistake infinite
    tol, eps = SIGMOID_TOL[dtype], float(np.finfo(dtype).eps)
    x = np.concatenate([np.linspace(-100, 100, 4001), [-40.0, -20.0, 0.0, 20.0, 40.0]])
    x = x.astype(dtype)
    ours = Tensor(x)
    y = ours.sigmoid()
    y.sum().backward()
    theirs = torch.tensor(x, requires_grad=True)
    ref = torch.sigmoid(theirs)
    ref.sum().backward()
    assert y.dtype == dtype and ours.grad.dtype == dtype
    np.testing.assert_allclose(y.data, ref.detach().numpy(), **tol)
    assert np.all(y.data > 0) and np.all(y.data <= 1)
    # the gradient: torch's y(1 - y) is 0 once y rounds to 1 (its error is up to ~eps) ...
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=tol["rtol"], atol=4 * eps)
    # ... while σ(x)σ(-x) keeps every digit on both sides
    exact = (torch.sigmoid(torch.tensor(x)) * torch.sigmoid(torch.tensor(-x))).numpy()
    np.testing.assert_allclose(ours.grad, exact, **tol)
    # log σ(x): finite everywhere; as accurate as σ where σ(x) is a normal float (x > -87 in
    # float32), then as coarse as float32's subnormals (σ(-100) ≈ 3.7e-44 has 5 bits)
    log_y = y.log()
    assert np.all(np.isfinite(log_y.data))
    log_ref = F.logsigmoid(torch.tensor(x)).numpy()
    normal = log_ref > np.log(np.finfo(dtype).tiny)
    np.testing.assert_allclose(log_y.data[normal], log_ref[normal], rtol=tol["rtol"], atol=eps)
    np.testing.assert_allclose(log_y.data[~normal], log_ref[~normal], rtol=0, atol=0.05)
    # and its gradient, d log σ(x)/dx = σ(-x), where 1/σ(x) is representable
    ours = Tensor(x[normal])
    ours.sigmoid().log().sum().backward()
    theirs = torch.tensor(x[normal], requires_grad=True)
    F.logsigmoid(theirs).sum().backward()
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=tol["rtol"], atol=eps)


@pytest.mark.parametrize(
    ("shape", "kernel", "stride", "padding"),
    [
        ((2, 3, 7, 7), (4, 3, 3, 3), 1, 0),
        ((2, 3, 7, 7), (4, 3, 3, 3), 1, 1),
        ((2, 2, 9, 8), (3, 2, 3, 3), 2, 1),
        ((1, 1, 6, 6), (2, 1, 2, 2), 2, 0),
        ((2, 2, 5, 7), (3, 2, 3, 2), 3, 2),
    ],
)
def test_conv2d_matches_torch(shape, kernel, stride, padding):
    rng = np.random.default_rng(8)
    check_against_torch(
        lambda x, w: (
            x.conv2d(w, stride=stride, padding=padding)
            if isinstance(x, Tensor)
            else F.conv2d(x, w, stride=stride, padding=padding)
        ),
        rand(rng, *shape),
        rand(rng, *kernel),
    )


@pytest.mark.parametrize(
    ("shape", "size"), [((2, 3, 8, 8), 2), ((2, 2, 7, 9), 2), ((1, 2, 9, 7), 3)]
)
def test_max_pool2d_matches_torch(shape, size):
    x = rand(np.random.default_rng(9), *shape)
    check_against_torch(
        lambda a: a.max_pool2d(size) if isinstance(a, Tensor) else F.max_pool2d(a, size), x
    )


def test_max_pool2d_sends_a_tied_gradient_to_one_winner_like_torch():
    x = np.zeros((1, 1, 2, 2))  # every entry ties, as after a ReLU
    check_against_torch(
        lambda a: a.max_pool2d(2) if isinstance(a, Tensor) else F.max_pool2d(a, 2), x
    )


def test_unbroadcast_sums_over_the_broadcast_axes():
    grad = np.ones((2, 3, 4))
    assert unbroadcast(grad, (3, 1)).tolist() == [[8.0]] * 3
    assert unbroadcast(grad, (4,)).tolist() == [6.0] * 4
    assert unbroadcast(grad, ()).item() == 24.0
    assert unbroadcast(grad, (2, 3, 4)) is grad


# --- compositions ------------------------------------------------------------------------------

OPS = [
    lambda a, b: a + b,
    lambda a, b: a - b,
    lambda a, b: a * b,
    lambda a, b: a / (b * b + 1.0),
    lambda a, b: a @ b,
    lambda a, b: a.tanh(),
    lambda a, b: a.sigmoid(),
    lambda a, b: a.relu() + b,
    lambda a, b: (a * a + 1.0).log(),
    lambda a, b: a.tanh().exp(),
    lambda a, b: a.T,
    lambda a, b: a.mean(axis=0, keepdims=True) * b,
]


@pytest.mark.parametrize("seed", range(6))
def test_random_compositions_match_torch(seed):
    """Random expression DAGs over 4x4 matrices; nodes are reused, so gradients accumulate."""
    rng = np.random.default_rng(seed)
    plan = [(int(rng.integers(len(OPS))), rng.integers(0, 3 + i, 2)) for i in range(12)]

    def program(*leaves):
        pool = list(leaves)
        for op, (i, j) in plan:
            pool.append(OPS[op](pool[i], pool[j]))
        return pool[-1] + pool[-2] * pool[-3] + sum(leaves)  # every leaf is used

    arrays = [0.5 * rand(rng, 4, 4) for _ in range(3)]
    check_against_torch(program, *arrays, seed=seed)
    check_grads(lambda *xs: (program(*xs) ** 2).mean(), *arrays, seed=seed)


# --- finite differences (no torch) ------------------------------------------------------------


def test_finite_differences_of_an_mlp_loss():
    rng = np.random.default_rng(10)
    x, labels = rand(rng, 6, 5), np.array([0, 2, 1, 1, 0, 2])

    def loss(w1, b1, w2, b2):
        return ((Tensor(x, requires_grad=False) @ w1 + b1).tanh() @ w2 + b2).cross_entropy(labels)

    check_grads(loss, rand(rng, 5, 4), rand(rng, 4), rand(rng, 4, 3), rand(rng, 3))


def test_finite_differences_of_a_conv_net_loss():
    rng = np.random.default_rng(11)
    x, labels = rand(rng, 2, 1, 6, 6), np.array([1, 0])

    def loss(k, w):
        h = Tensor(x, requires_grad=False).conv2d(k, padding=1).sigmoid().max_pool2d(2)
        return (h.reshape(2, -1) @ w).cross_entropy(labels)

    check_grads(loss, rand(rng, 3, 1, 3, 3), rand(rng, 27, 2))


def test_finite_differences_of_elementwise_functions():
    rng = np.random.default_rng(12)
    check_grads(lambda a, b: ((a * b).exp() / (b**2 + 1.0)).sum(), rand(rng, 3, 2), rand(rng, 2))
    check_grads(lambda a: (a**3 - a.sigmoid() * 2.0).mean(), rand(rng, 7))


# --- the algorithm itself ----------------------------------------------------------------------


def test_a_10000_op_chain_backpropagates_without_recursion():
    x = Tensor(np.array([0.5]))
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    assert x.grad[0] == pytest.approx(1.0001**10_000, rel=1e-9)
    assert len(topological_order(y)) == 10_001 + 10_000  # x, the products, their constants


def test_a_value_used_twice_receives_the_sum_of_its_gradients():
    x = Tensor(np.array([3.0, -2.0]))
    (x * x).sum().backward()  # the same node on both sides
    np.testing.assert_allclose(x.grad, 2 * x.data)

    a = Tensor(np.array([0.3, -0.7]))
    h = a.tanh()  # h feeds three places
    (h * h + h + a).sum().backward()
    t = np.tanh(a.data)
    np.testing.assert_allclose(a.grad, (2 * t + 1) * (1 - t**2) + 1)


def test_leaf_gradients_accumulate_across_backward_calls_and_interior_ones_do_not():
    w = Tensor(np.array([1.5, -0.5]))
    z = w * 2.0
    loss = (z * z).sum()
    loss.backward()
    first = w.grad.copy()
    loss.backward()  # a second call adds to the leaf...
    np.testing.assert_allclose(w.grad, 2 * first)
    np.testing.assert_allclose(z.grad, 2 * z.data)  # ...while interior grads are recomputed
    x = Tensor(np.ones(2), requires_grad=False)
    (x * w).sum().backward()
    assert x.grad is None


def test_dtype_follows_the_inputs():
    x = Tensor(np.ones((2, 3), np.float32))
    w = Tensor(np.ones((3, 2), np.float32))
    loss = ((x @ w).relu() * 0.5 + 1.0).cross_entropy([0, 1])
    loss.backward()
    assert loss.dtype == np.float32 and x.grad.dtype == np.float32 and w.grad.dtype == np.float32
    assert Tensor([1, 2]).dtype == np.float64  # integers become floats


# --- layers and optimisers ---------------------------------------------------------------------


def test_mlp_and_cnn_copied_from_torch_compute_torchs_logits_and_gradients():
    torch.manual_seed(0)
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    y = torch.tensor([1, 0, 2])
    for model in (mlp(64, [7, 5], 3, "tanh"), cnn((1, 8, 8), 3, channels=(2, 3), hidden=6)):
        model = model.double()
        ours = from_torch(model, dtype=np.float64)
        loss = ours(Tensor(x.numpy(), requires_grad=False)).cross_entropy(y.numpy())
        loss.backward()
        ref = F.cross_entropy(model(x), y)
        ref.backward()
        assert float(loss.data) == pytest.approx(ref.item(), abs=1e-12)
        torch_grads = [p.grad for p in model.parameters()]
        for p, g in zip(ours.parameters(), torch_grads, strict=True):
            g = g.numpy().T if p.ndim == 2 else g.numpy()  # Linear weights are stored (in, out)
            np.testing.assert_allclose(p.grad, g, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_optimisers_and_cosine_schedule_follow_torch(name):
    torch.manual_seed(1)
    model = mlp(6, [5], 3).double()
    ours = from_torch(model, dtype=np.float64)
    x, y = torch.randn(8, 6, dtype=torch.float64), torch.randint(0, 3, (8,))
    steps = 6
    if name == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=0.01)
        mine: nn.Optimizer = nn.Adam(ours.parameters(), lr=0.01, weight_decay=0.01)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
        mine = nn.SGD(ours.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    base = mine.lr
    for step in range(steps):
        F.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()
        schedule.step()
        mine.lr = nn.cosine_lr(base, step, steps)
        ours(Tensor(x.numpy(), requires_grad=False)).cross_entropy(y.numpy()).backward()
        mine.step()
        mine.zero_grad()
    for p, q in zip(ours.parameters(), model.parameters(), strict=True):
        q = q.detach().numpy()
        np.testing.assert_allclose(p.data, q.T if p.ndim == 2 else q, rtol=1e-9, atol=1e-12)


def test_cosine_lr_goes_from_base_to_zero():
    assert nn.cosine_lr(0.1, 0, 10) == 0.1
    assert nn.cosine_lr(0.1, 5, 10) == pytest.approx(0.05)
    assert nn.cosine_lr(0.1, 10, 10) == pytest.approx(0.0, abs=1e-15)
    assert math.isclose(nn.cosine_lr(1.0, 3, 12), (1 + math.cos(math.pi / 4)) / 2)


# --- the experiment ------------------------------------------------------------------------------


@pytest.mark.genuine_data("mnist")
def test_autodiff_mnist_matches_bp_mnist_at_smoke_scale(tmp_path):
    """Same network, same initial weights, same batches, same Adam: only the engine differs."""
    ours = runner.run(registry.get("autodiff.mnist"), scale="smoke", seed=0, out=tmp_path / "a")
    ref = runner.run(registry.get("bp.mnist"), scale="smoke", seed=0, out=tmp_path / "b")
    assert ours["data"]["protocol"] == ref["data"]["protocol"]
    assert ours["metrics"]["parameters"] == ref["metrics"]["parameters"]
    assert ours["metrics"]["test_accuracy"] > 0.5  # it learned
    assert abs(ours["metrics"]["test_accuracy"] - ref["metrics"]["test_accuracy"]) <= 0.01
    assert ours["metrics"]["samples_per_second"] > 0
