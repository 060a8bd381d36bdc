"""ReLU liveness: the activation probability Pr[y > 0] of every ReLU layer and unit, and dead
units, counted while a network runs (Douglas & Yu, "Why ReLU Units Sometimes Die", 2018).

For a ReLU f(y) = max(0, y) with pre-activation y (the ReLU's input), the *activation
probability* of a unit is Pr[y > 0] over the data; a unit is *dead* over a pass when y <= 0 for
every example of the pass, so it passes no signal forward and no gradient back. A
:class:`ReluMonitor` counts both for any :class:`torch.nn.Module`:

- every ``nn.ReLU`` submodule gets a forward hook (other activation types can be named);
- functional calls are tracked by routing them through the monitor: ``mon.relu(y, "fc1")``,
  or ``act = mon.functional("fc1")`` passed into a model that calls ``act(y)``.

A *unit* is one index along ``unit_dim`` (dim 1: a feature of a dense layer, a **channel** of a
convolutional layer). A channel's counts are pooled over the examples *and* the spatial
positions, so its Pr[y > 0] is the fraction of (example, position) pairs where it fires, and it is
dead when it fires at no position of any example (keras-contrib's DeadReluDetector counts feature
maps the same way). Only integer counts are kept (two small tensors per layer, on the
activations' device): no activation is copied, and the hot path is one comparison and one
``count_nonzero`` reduction per call, with no host synchronisation.

The sign of the output equals the sign of the input for ReLU (and for ReLU6, LeakyReLU, ELU,
GELU, SiLU), so hooks count ``f(y) > 0``; that stays correct for ``nn.ReLU(inplace=True)``,
whose input tensor has been overwritten by the time a forward hook runs.

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.ReLU())
>>> with ReluMonitor(net, warn=False) as mon:
...     _ = net(torch.randn(100, 3))
>>> sorted(mon.summary())
['1', '3']
>>> 0.0 <= mon.activation_probability()["1"] <= 1.0
True
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

DEFAULT_DEAD_THRESHOLD = 0.1  # keras-contrib DeadReluDetector: warn at 10% dead or more


class DeadReluWarning(UserWarning):
    """A ReLU layer's fraction of dead units reached the monitor's threshold."""


def too_dead(dead_fraction: float, threshold: float = DEFAULT_DEAD_THRESHOLD) -> bool:
    """The warning rule: a layer is flagged when its dead fraction is *at least* ``threshold``
    (keras-contrib's DeadReluDetector warns at 10% dead or more), so 1 dead unit of 10 is
    flagged at threshold 0.1. Every warning and note about dead layers goes through here."""
    return dead_fraction >= threshold


@dataclass(frozen=True)
class LayerLiveness:
    """What one ReLU layer did over one pass (see the module docstring)."""

    name: str
    """the layer: a module's qualified name, or the name given to a functional call"""
    units: int
    """units in the layer (features of a dense layer, channels of a conv layer)"""
    samples: int
    """pre-activations seen per unit: examples, times positions for a conv layer"""
    activation_probability: float
    """Pr[y > 0] over all units and samples of the layer"""
    dead_fraction: float
    """fraction of units with y <= 0 on every sample of the pass"""
    unit_probability: torch.Tensor
    """Pr[y > 0] of each unit, shape (units,), on the CPU"""

    @property
    def dead_units(self) -> int:
        return round(self.dead_fraction * self.units)


class _Counts:
    """Running counts for one layer: positives per unit, and samples per unit."""

    __slots__ = ("positive", "samples")

    def __init__(self, units: int, device: torch.device):
        self.positive = torch.zeros(units, dtype=torch.int64, device=device)
        self.samples = 0


class ReluMonitor:
    """Count Pr[y > 0] and dead units of every ReLU layer of ``model`` while it runs.

    As a context manager the hooks are attached on entry and removed on exit (the counts stay
    readable afterwards)::

        with ReluMonitor(model) as mon:
            model(x_test)
        mon.summary()  # {layer name: LayerLiveness}

    As a training callback, keep it attached and call :meth:`epoch_end` once per epoch: it
    returns the epoch's summary, logs it to ``ctx`` (a :class:`creditlab.runner.RunContext`),
    warns about dead layers and starts a new pass. :meth:`paused` stops counting for a while
    (e.g. during an evaluation that should not count as training data).

    Args:
        model: hook every submodule of one of ``activation_types`` (None: functional use only).
        threshold: warn (:class:`DeadReluWarning`) when a layer's dead fraction is at least this.
        warn: whether :meth:`check` and :meth:`epoch_end` warn at all.
        activation_types: module types to hook; their output must have the sign of their input.
        unit_dim: the dimension that indexes units (1: features, or channels of NCHW maps).
        ctx: where :meth:`epoch_end` logs (``ctx.log(step, ...)``); None logs nothing.
        prefix: prepended to the metric names :meth:`epoch_end` logs.
        per_layer: :meth:`epoch_end` logs every layer (else only the mean and the worst layer).
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        *,
        threshold: float = DEFAULT_DEAD_THRESHOLD,
        warn: bool = True,
        activation_types: tuple[type[nn.Module], ...] = (nn.ReLU,),
        unit_dim: int = 1,
        ctx: Any = None,
        prefix: str = "relu_",
        per_layer: bool = True,
    ):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold is a fraction of units in [0, 1], got {threshold}")
        self.model, self.threshold, self.warn = model, threshold, warn
        self.activation_types, self.unit_dim = activation_types, unit_dim
        self.ctx, self.prefix, self.per_layer = ctx, prefix, per_layer
        self.enabled = True
        self.history: list[dict[str, LayerLiveness]] = []  # one summary per epoch_end
        self._counts: dict[str, _Counts] = {}  # insertion order = order of first call
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._in_forward = False
        self._seen_this_forward: set[str] = set()
        self._reused: set[str] = set()

    # --- hooks ---------------------------------------------------------------------------
    def attach(self) -> ReluMonitor:
        """Register the forward hooks (idempotent); returns ``self``."""
        if self._handles or self.model is None:
            return self
        for name, module in self.model.named_modules():
            if isinstance(module, self.activation_types):
                layer = name or type(module).__name__
                self._handles.append(module.register_forward_hook(self._hook(layer)))
        # Hooks on the root mark one whole forward pass, to spot a module that runs twice in
        # it (torchvision's BasicBlock reuses self.relu), whose two layers' counts would merge.
        self._handles.append(self.model.register_forward_pre_hook(self._forward_starts))
        self._handles.append(self.model.register_forward_hook(self._forward_ends))
        return self

    def detach(self) -> None:
        """Remove every hook this monitor registered; the counts are kept."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def __enter__(self) -> ReluMonitor:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def _forward_starts(self, module: nn.Module, args: Any) -> None:
        self._in_forward = True
        self._seen_this_forward.clear()

    def _forward_ends(self, module: nn.Module, args: Any, output: Any) -> None:
        self._in_forward = False

    def _hook(self, layer: str) -> Callable[[nn.Module, Any, torch.Tensor], None]:
        def hook(module: nn.Module, args: Any, output: torch.Tensor) -> None:
            if self._in_forward and layer in self._seen_this_forward and layer not in self._reused:
                self._reused.add(layer)
                warnings.warn(
                    f"ReLU module {layer!r} ran twice in one forward pass: the monitor merges "
                    "its calls into one layer; give each place its own nn.ReLU",
                    stacklevel=2,
                )
            self._seen_this_forward.add(layer)
            self.record(layer, output)

        return hook

    # --- functional tracking -------------------------------------------------------------
    def relu(self, y: torch.Tensor, name: str) -> torch.Tensor:
        """``max(0, y)``, counting ``y`` as the pre-activation of layer ``name``."""
        self.record(name, y)
        return torch.relu(y)

    def functional(self, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
        """A ``relu`` function that counts under ``name``: pass it into a model as its
        activation, e.g. ``Net(activation=mon.functional("block3"))``."""
        return lambda y: self.relu(y, name)

    # --- counting (the hot path) ---------------------------------------------------------
    @torch.no_grad()
    def record(self, name: str, y: torch.Tensor) -> None:
        """Add the pre-activations ``y`` of layer ``name`` to the counts (``y`` or ``f(y)``:
        only the sign matters). ``y`` of shape (N, C, ...) holds N examples of C units (for
        maps, each over the positions ...); a 1-D ``y`` is one example, a 0-D one one unit."""
        if not self.enabled:
            return
        y = y.detach()
        if y.dim() < 2:
            y = y.reshape(1, -1)
        units = y.shape[self.unit_dim]
        counts = self._counts.get(name)
        if counts is None:
            counts = self._counts[name] = _Counts(units, y.device)
        elif counts.positive.device != y.device:  # the model moved: the counts follow it
            counts.positive = counts.positive.to(y.device)
        if counts.positive.numel() != units:
            raise ValueError(
                f"ReLU layer {name!r} had {counts.positive.numel()} units, now {units}: "
                "a monitor needs a fixed layer width (call reset() between models)"
            )
        reduce = [d for d in range(y.dim()) if d != self.unit_dim % y.dim()]
        counts.positive += torch.count_nonzero(y > 0, dim=reduce)  # sum_n 1[y_n > 0] per unit
        counts.samples += y.numel() // units

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Count nothing inside the block (the hooks stay attached)."""
        before, self.enabled = self.enabled, False
        try:
            yield
        finally:
            self.enabled = before

    def reset(self) -> None:
        """Forget the counts: the next call starts a new pass."""
        self._counts.clear()

    # --- reading the counts --------------------------------------------------------------
    def summary(self) -> dict[str, LayerLiveness]:
        """Each layer's liveness over the pass so far, in the order the layers first ran."""
        out = {}
        for name, counts in self._counts.items():
            if counts.samples == 0:
                continue
            positive = counts.positive.cpu()
            unit_probability = positive.double() / counts.samples  # Pr[y > 0] per unit
            out[name] = LayerLiveness(
                name=name,
                units=positive.numel(),
                samples=counts.samples,
                activation_probability=float(unit_probability.mean()),
                dead_fraction=float((positive == 0).double().mean()),
                unit_probability=unit_probability,
            )
        return out

    def activation_probability(self) -> dict[str, float]:
        """Layer name -> Pr[y > 0] over its units and samples."""
        return {k: v.activation_probability for k, v in self.summary().items()}

    def dead_fraction(self) -> dict[str, float]:
        """Layer name -> fraction of its units never active in the pass."""
        return {k: v.dead_fraction for k, v in self.summary().items()}

    def check(self, summary: dict[str, LayerLiveness] | None = None) -> list[str]:
        """The layers whose dead fraction is at least the threshold; warns about each one
        (:class:`DeadReluWarning`) unless the monitor was made with ``warn=False``."""
        summary = self.summary() if summary is None else summary
        dead = [
            k for k, v in summary.items() if v.samples and too_dead(v.dead_fraction, self.threshold)
        ]
        if self.warn:
            for name in dead:
                layer = summary[name]
                warnings.warn(
                    f"ReLU layer {name!r}: {layer.dead_units} of {layer.units} units "
                    f"({layer.dead_fraction:.0%}) never active over {layer.samples} samples "
                    f"(threshold {self.threshold:.0%}); consider a lower learning rate, "
                    "another initialisation or a leaky activation",
                    DeadReluWarning,
                    stacklevel=2,
                )
        return dead

    def epoch_end(self, epoch: int, step: int | None = None) -> dict[str, LayerLiveness]:
        """Close the pass: summarise it, log it to ``ctx`` at ``step`` (default ``epoch``),
        warn about dead layers, keep the summary in :attr:`history`, and reset the counts.

        Logged metrics (with ``prefix``): ``activation_probability_layer_<k>`` and
        ``dead_fraction_layer_<k>`` for layer k = 1, 2, ... in the order the layers ran (only
        with ``per_layer``), and always ``activation_probability_mean`` (mean over layers) and
        ``dead_fraction_max`` (the worst layer)."""
        summary = self.summary()
        self.history.append(summary)
        if self.ctx is not None and summary:
            self.ctx.log(epoch if step is None else step, **self.metrics(summary, self.prefix))
        self.check(summary)
        self.reset()
        return summary

    def metrics(self, summary: dict[str, LayerLiveness], prefix: str = "") -> dict[str, float]:
        """Flat metric names for a summary (the names :meth:`epoch_end` logs)."""
        layers = list(summary.values())
        out: dict[str, float] = {}
        if self.per_layer:
            for k, layer in enumerate(layers, start=1):
                out[f"{prefix}activation_probability_layer_{k}"] = layer.activation_probability
                out[f"{prefix}dead_fraction_layer_{k}"] = layer.dead_fraction
        if layers:
            probabilities = [layer.activation_probability for layer in layers]
            out[f"{prefix}activation_probability_mean"] = sum(probabilities) / len(layers)
            out[f"{prefix}dead_fraction_max"] = max(layer.dead_fraction for layer in layers)
        return out

    # --- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The counts of the pass in progress, so a resumed run finishes the same pass."""
        return {k: (c.positive.cpu().clone(), c.samples) for k, c in self._counts.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._counts.clear()
        for name, (positive, samples) in state.items():
            counts = _Counts(positive.numel(), positive.device)
            counts.positive.copy_(positive)
            counts.samples = int(samples)
            self._counts[name] = counts
