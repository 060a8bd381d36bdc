"""The microcircuit as a classifier for :func:`creditlab.train.fit`, in either mode.

* :class:`SweepsClassifier` (``mode="sweeps"``): the paper's MNIST protocol; every
  minibatch gets the two-sweep steady state of :mod:`~creditlab.methods.dendritic.sweeps`
  and one plain SGD step along the microcircuit's own updates (Eqs. 7-8).
* :class:`ContinuousClassifier` (``mode="continuous"``): the full dynamics; each example of
  a minibatch is one circuit, shown its image (and target) for ``pattern_ms`` while all
  plasticity runs; the circuits' voltages carry over from one minibatch to the next.

Both predict with the network's steady state without a target (a feedforward pass, see
:meth:`Microcircuit.predict`) and report as ``loss`` the squared distance between the output
rates and the target rates (0.1 for wrong classes, 0.8 for the right one in the paper).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from creditlab.diagnostics.alignment import alignment
from creditlab.methods.dendritic.microcircuit import (
    Microcircuit,
    backprop_reference,
    topdown_alignment,
)
from creditlab.methods.dendritic.sweeps import (
    MixingFactors,
    sweep_errors,
    sweep_updates,
    two_sweeps,
)
from creditlab.train import load_optimizer_state, make_optimizer, optimizer_state

Monitor = Callable[[int], None]


class _Classifier:
    """What both modes share: targets, prediction, evaluation, timing."""

    def __init__(self, net: Microcircuit, target_rates: tuple[float, float], n_classes: int):
        self.net, self.n_classes = net, n_classes
        self.target_rates = target_rates
        self.steps, self.train_seconds, self.samples = 0, 0.0, 0

    def target_rate(self, y: torch.Tensor) -> torch.Tensor:
        low, high = self.target_rates
        r = torch.full((len(y), self.n_classes), low, dtype=self.net.dtype, device=y.device)
        return r.scatter_(1, y[:, None], high)

    def target_voltage(self, y: torch.Tensor) -> torch.Tensor:
        return self.net.phi.inverse(self.target_rate(y))

    @torch.no_grad()
    def evaluate(
        self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2000
    ) -> dict[str, float]:
        loss, correct = 0.0, 0
        for i in range(0, len(x), batch_size):
            rate = self.net.phi(self.net.predict(x[i : i + batch_size])[-1])
            yb = y[i : i + batch_size]
            loss += (rate - self.target_rate(yb)).pow(2).sum().item()
            correct += (rate.argmax(1) == yb).sum().item()
        return {"loss": loss / len(x), "accuracy": correct / len(x)}

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.train_seconds if self.train_seconds else 0.0

    def _counters(self) -> dict[str, Any]:
        return {"steps": self.steps, "train_seconds": self.train_seconds, "samples": self.samples}

    def _load_counters(self, state: dict[str, Any]) -> None:
        self.steps, self.train_seconds = state["steps"], state["train_seconds"]
        self.samples = state["samples"]


class SweepsClassifier(_Classifier):
    """Two sweeps and one optimiser step per minibatch (see the module docstring).

    The microcircuit's own update (Eq. 7 for the forward weights, Eq. 8 for the
    interneurons), averaged over the minibatch, is handed to a torch optimiser as the
    negative gradient: ``"sgd"`` with ``momentum`` 0 is the paper's plain rule; the optional
    cosine schedule decays the rates to 0 over ``total_steps``. ``lr`` gives one learning
    rate per pyramidal layer; each interneuron layer learns at ``lr[k+1] * c_{k+1} / c_I``
    (times ``interneuron_lr_factor``), the rate at which its prediction
    :math:`c_I W^{IP}_k r_k` follows the change of the prediction
    :math:`c_{k+1} W^{PP}_{k+1,k} r_k` it must match.

    Use SGD: SGD (with or without momentum) is linear in the updates, so an interneuron that
    starts in the self-predicting state stays there to first order. Adam rescales every
    weight by its own gradient history, breaks that lockstep, and the interneurons' stale
    predictions then swamp the lower layers' apical errors (the sweeps amplify them by the
    inverse mixing factors). ``interneurons="ideal"`` replaces Eq. 8 by its fixed point (the
    self-predicting weights are set after every step): an ablation that measures what
    imperfect interneuron tracking costs.

    ``lr_PI`` and ``lr_down`` (0: fixed, the paper's 784-500-500-10 run) make the
    interneuron-to-pyramidal weights learn by Eq. 9 and the top-down weights by Eq. 10 (the
    paper's 784-1000-10 run). A layer whose ``lr`` is 0 is frozen (the comparison rows).

    Every ``monitor_every`` steps ``monitor(step)`` is called (to log :meth:`diagnostics`).
    """

    def __init__(
        self,
        net: Microcircuit,
        lam: MixingFactors,
        lr: Sequence[float],
        *,
        optimizer: str = "sgd",
        momentum: float = 0.0,
        total_steps: int = 0,
        interneurons: str = "plastic",
        interneuron_lr_factor: float = 1.0,
        lr_PI: float = 0.0,
        lr_down: float = 0.0,
        target_rates: tuple[float, float] = (0.1, 0.8),
        n_classes: int = 10,
        monitor: Monitor | None = None,
        monitor_every: int = 100,
    ):
        super().__init__(net, target_rates, n_classes)
        if len(lr) != net.n_layers:
            raise ValueError(f"lr needs {net.n_layers} values (one per layer), got {len(lr)}")
        if interneurons not in ("plastic", "ideal"):
            raise ValueError(f"interneurons must be 'plastic' or 'ideal', not {interneurons!r}")
        self.lam, self.ideal = lam, interneurons == "ideal"
        c_I = net.g.dendrite_attenuation
        lr_IP = [
            lr[l + 1] * net.attenuation[l + 1] / c_I * interneuron_lr_factor
            for l in range(net.n_layers - 1)
        ]
        w = net.weights()
        groups = []
        for l, rate in enumerate(lr):
            names = [f"W_PP_up.{l}"] + ([f"b_PP_up.{l}"] if net.bias else [])
            groups.append({"params": [w[n] for n in names], "lr": float(rate), "names": names})
        for l, rate in enumerate([] if self.ideal else lr_IP):
            names = [f"W_IP.{l}"] + ([f"b_IP.{l}"] if net.bias else [])
            groups.append({"params": [w[n] for n in names], "lr": float(rate), "names": names})
        self.plastic_PI, self.plastic_down = lr_PI > 0, lr_down > 0
        for kind, rate in (("W_PI", lr_PI), ("W_PP_down", lr_down)):
            for l in range(net.n_layers - 1) if rate > 0 else ():
                names = [f"{kind}.{l}"]
                groups.append({"params": [w[names[0]]], "lr": float(rate), "names": names})
        self.optimizer = make_optimizer(groups, optimizer, lr[0], momentum)
        self.schedule = (
            torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=total_steps)
            if total_steps > 0
            else None
        )
        self.monitor, self.monitor_every = monitor, monitor_every

    @torch.no_grad()
    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        start = time.perf_counter()
        x = x.to(self.net.dtype).flatten(1)
        updates, state = sweep_updates(
            self.net,
            x,
            self.target_voltage(y),
            self.lam,
            plastic_PI=self.plastic_PI,
            plastic_down=self.plastic_down,
        )
        for group in self.optimizer.param_groups:  # the rule's update, as a descent step
            for name, param in zip(group["names"], group["params"], strict=True):
                param.grad = updates[name].div_(-len(x))
        self.optimizer.step()
        if self.schedule is not None:
            self.schedule.step()
        if self.ideal:  # Eq. 8 taken as converged: the interneurons predict exactly
            self.net.self_predicting_()
        self.train_seconds += time.perf_counter() - start
        self.steps += 1
        self.samples += len(x)
        loss = (self.net.phi(state.basal[-1]) - self.target_rate(y)).pow(2).sum(1).mean()
        if self.monitor is not None and self.steps % self.monitor_every == 0:
            self.monitor(self.steps)
        return {"loss": loss.item()}

    @torch.no_grad()
    def diagnostics(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Alignment of the hidden layers' updates with backprop's on the batch ``(x, y)``,
        and of the top-down weights with the transposed forward weights."""
        x = x.to(self.net.dtype).flatten(1)
        state = two_sweeps(self.net, x, self.target_voltage(y), self.lam)
        errors, _ = sweep_errors(self.net, x, state, self.lam)
        pre = [x, *(self.net.phi(v) for v in state.basal[:-1])]
        return hidden_alignment(self.net, x, errors, pre) | topdown_alignment(self.net)

    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            **optimizer_state(self.optimizer, self.schedule),
            **self._counters(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        load_optimizer_state(state, self.optimizer, self.schedule)
        self._load_counters(state)


def hidden_alignment(
    net: Microcircuit,
    x: torch.Tensor,
    errors: Sequence[torch.Tensor],
    pre: Sequence[torch.Tensor],
) -> dict[str, float]:
    """Cosine between the microcircuit's hidden-layer forward updates (``errors[l].T @
    pre[l]``, Eq. 7) and backprop's for the same output error ``errors[-1]`` on the inputs
    ``x``: overall (``alignment_cosine``, hidden layers concatenated) and per layer
    (``alignment_cosine/W_PP_up.l``). The output layer is left out: its update is the delta
    rule, backprop's own, by construction."""
    update = {f"W_PP_up.{l}": errors[l].T @ pre[l] for l in range(net.n_layers - 1)}
    if not update:
        return {}
    reference = backprop_reference(net, x, errors[-1])
    return alignment(update, reference).metrics(per_tensor=True)


class ContinuousClassifier(_Classifier):
    """The full dynamics as a classifier: each minibatch example drives one circuit for
    ``pattern_ms`` with its target current on and every plasticity rule running."""

    def __init__(
        self,
        net: Microcircuit,
        pattern_ms: float = 100.0,
        *,
        target_rates: tuple[float, float] = (0.1, 0.8),
        n_classes: int = 10,
    ):
        super().__init__(net, target_rates, n_classes)
        self.pattern_ms = pattern_ms

    @torch.no_grad()
    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        rate = self.net.phi(self.net.predict(x)[-1])  # before learning from this batch
        loss = (rate - self.target_rate(y)).pow(2).sum(1).mean().item()
        start = time.perf_counter()
        if self.net.batch_size != len(x):
            self.net.reset_state(len(x))
        self.net.run(x, self.target_voltage(y), self.pattern_ms, learn=True)
        self.train_seconds += time.perf_counter() - start
        self.steps += 1
        self.samples += len(x)
        return {"loss": loss}

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), **self._counters()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self._load_counters(state)
