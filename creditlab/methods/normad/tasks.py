"""The tasks: random spike-train mappings (one neuron or a network, several patterns) and
spike-time encoded XOR, each a batch of independent problems ``(P, K, T, n)`` in {0, 1}
(P problems, K patterns each, T steps of ``dt``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Task:
    """Input trains (P, K, T, n_in), desired output trains (P, K, T, n_out)."""

    inputs: torch.Tensor
    desired: torch.Tensor


def poisson_trains(shape: tuple[int, ...], rate: float, dt: float, gen: torch.Generator):
    """Bernoulli(rate * dt) per step: (..., T, n) trains of ``rate`` Hz."""
    return (torch.rand(shape, generator=gen, dtype=torch.float64) < rate * dt).double()


def random_train(
    shape: tuple[int, ...], rate: float, min_gap: int, start: int, gen: torch.Generator
) -> torch.Tensor:
    """(..., T, n) trains with intervals min_gap + Exponential (mean 1/rate - min_gap steps'
    worth), the first spike at step >= start: random desired trains a neuron can produce
    (min_gap above the refractory period). ``rate`` in spikes per step."""
    *lead, steps, n = shape
    mean = max(1.0 / rate - min_gap, 1.0)
    most = int(steps * rate * 3) + 4
    gaps = min_gap + torch.empty(*lead, n, most, dtype=torch.float64).exponential_(
        1 / mean, generator=gen
    )
    times = (start + gaps.cumsum(-1) - min_gap).floor().long()
    out = torch.zeros(*lead, n, steps + 1, dtype=torch.float64)
    out.scatter_(-1, times.clamp(max=steps), 1.0)
    return out[..., :steps].transpose(-1, -2).contiguous()


def mapping_task(
    problems: int,
    patterns: int,
    steps: int,
    n_in: int,
    n_out: int,
    in_rate: float,
    out_rate: float,
    min_gap: int,
    dt: float,
    gen: torch.Generator,
) -> Task:
    """Random Poisson input patterns (in_rate Hz) mapped to random desired trains (out_rate Hz,
    first spike after 5 ms)."""
    inputs = poisson_trains((problems, patterns, steps, n_in), in_rate, dt, gen)
    desired = random_train(
        (problems, patterns, steps, n_out), out_rate * dt, min_gap, round(5e-3 / dt), gen
    )
    return Task(inputs, desired)


XOR_TABLE = ((0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 0))


def xor_task(
    problems: int,
    per_input: int,
    steps: int,
    early: float,
    late: float,
    shift: float,
    jitter: float,
    target_true: float,
    target_false: float,
    dt: float,
    gen: torch.Generator,
) -> Task:
    """Spike-time XOR: two logical inputs and a bias, ``per_input`` afferents each; an afferent
    fires once, at its fixed random offset in [0, jitter) plus ``early`` (bit 0 and the bias) or
    ``early + shift`` (bit 1); the bias group fires at ``late`` plus its offsets. The output
    must fire one spike at ``target_true`` for XOR = 1, at ``target_false`` for XOR = 0. Times
    in s; the 4 patterns are the same for every problem except the afferents' offsets (each
    problem its own)."""
    offsets = torch.rand(problems, 1, 3 * per_input, generator=gen, dtype=torch.float64) * jitter
    inputs = torch.zeros(problems, 4, steps, 3 * per_input, dtype=torch.float64)
    desired = torch.zeros(problems, 4, steps, 1, dtype=torch.float64)
    for k, (x1, x2, y) in enumerate(XOR_TABLE):
        times = [early + x1 * shift] * per_input + [early + x2 * shift] * per_input
        base = torch.tensor(times + [late] * per_input, dtype=torch.float64)
        step = ((base + offsets[:, 0]) / dt).round().long()  # (P, 3m)
        for p in range(problems):
            inputs[p, k, step[p], torch.arange(3 * per_input)] = 1.0
        desired[:, k, round((target_true if y else target_false) / dt), 0] = 1.0
    return Task(inputs, desired)
