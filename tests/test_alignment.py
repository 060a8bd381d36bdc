"""The alignment diagnostic against cases with known answers."""

import math

import pytest
import torch
from torch import nn

from creditlab.diagnostics.alignment import alignment, backprop_gradient, gradient_alignment
from creditlab.models import mlp


@pytest.fixture
def batch():
    torch.manual_seed(0)
    model = mlp(10, [32, 16], 4)
    x, y = torch.randn(64, 10), torch.randint(0, 4, (64,))
    return model, x, y


def test_backprop_gradient_matches_loss_backward_and_leaves_grad_alone(batch):
    model, x, y = batch
    grads = backprop_gradient(model, nn.functional.cross_entropy, x, y)
    assert all(p.grad is None for p in model.parameters())
    nn.functional.cross_entropy(model(x), y).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads[name], p.grad)


def test_an_sgd_step_is_perfectly_aligned(batch):
    model, x, y = batch
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    with torch.no_grad():  # the update the optimiser actually applied, at the old weights
        update = {n: p - before[n] for n, p in model.named_parameters()}
        for n, p in model.named_parameters():
            p.copy_(before[n])
    result = gradient_alignment(model, x, y, update)
    assert result.overall_cosine == pytest.approx(1.0, abs=1e-6)
    assert all(c == pytest.approx(1.0, abs=1e-5) for c in result.cosine.values())
    assert result.overall_angle_degrees < 0.2
    assert gradient_alignment(model, x, y, {n: -u for n, u in update.items()}).overall_cosine == (
        pytest.approx(-1.0, abs=1e-6)
    )


def test_a_random_update_is_nearly_orthogonal(batch):
    model, x, y = batch
    generator = torch.Generator().manual_seed(1)
    update = {n: torch.randn(p.shape, generator=generator) for n, p in model.named_parameters()}
    result = gradient_alignment(model, x, y, update)
    d = sum(p.numel() for p in model.parameters())
    assert abs(result.overall_cosine) < 4 / math.sqrt(d)  # 4 standard deviations
    assert 80 < result.overall_angle_degrees < 100


def test_overall_cosine_is_over_the_concatenation_and_metrics_are_named():
    update = {"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([0.0, 2.0])}
    reference = {"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([0.0, -1.0])}
    result = alignment(update, reference)
    assert result.cosine == {"a": 1.0, "b": -1.0}
    assert result.overall_cosine == pytest.approx((1 - 2) / (math.sqrt(5) * math.sqrt(2)))
    assert result.metrics(per_tensor=True)["alignment_cosine/b"] == -1.0
    assert alignment({"a": torch.zeros(2)}, reference).overall_cosine == 0.0
    with pytest.raises(KeyError):
        alignment({"c": torch.zeros(2)}, reference)
