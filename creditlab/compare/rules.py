"""The rules ``creditlab compare`` knows: one small adapter each, on the shared learner protocol.

An adapter builds, for the task's network shape and budget, a learner that :func:`creditlab.
train.fit` can train (``train_step``, ``evaluate``, ``state_dict``, ``load_state_dict``) and
that also offers ``alignment_metrics(x, y)`` (the cosine of its update with the exact
backprop gradient) and, where its network allows, ``locality_probe()`` (see
:mod:`creditlab.compare.locality`). It declares what its update uses (:class:`Locality`).

The network, its widths, the optimiser, the learning rate and the number of steps are the
task's (:class:`creditlab.compare.experiments.CompareConfig`), not the rule's: a rule is a
mode of the same network, as in BioTorch's converter. Two exceptions, each because the
optimiser is part of the rule: the dendritic microcircuit keeps its SGD (Adam breaks the
interneurons' lockstep) and HM2-BP its Adam schedule, regulariser and clipping.

Beyond the feedback-alignment family (:mod:`creditlab.compare.feedback`), three families
join through one adapter module each: ``dendritic`` (:mod:`creditlab.compare.dendritic`, the
microcircuit's two-sweep rule), ``coagent`` (:mod:`creditlab.compare.coagent`, classification
as a contextual bandit) and ``hm2bp`` (:mod:`creditlab.compare.spiking`, a spiking network on
rate-coded inputs). Their builders import the method package when called. Not joined: normad
(one neuron learning spike times, no classifier), sparse and dvae (no rule for a shared
classifier; see docs/compare.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from creditlab.compare.feedback import FeedbackClassifier, FeedbackNetwork
from creditlab.compare.locality import Locality
from creditlab.errors import UserError
from creditlab.runner import RunContext
from creditlab.train import make_optimizer

Builder = Callable[[Any, int, int, int, RunContext], Any]
"""``build(cfg, n_in, n_out, total_steps, ctx) -> learner``"""


@dataclass(frozen=True)
class Rule:
    name: str
    summary: str
    locality: Locality
    build: Builder


def _adapter(module: str) -> Builder:
    """``creditlab.compare.<module>.build``, imported when a learner is built."""

    def build(cfg: Any, n_in: int, n_out: int, total_steps: int, ctx: RunContext) -> Any:
        adapter = importlib.import_module(f"creditlab.compare.{module}")
        return adapter.build(cfg, n_in, n_out, total_steps, ctx)

    return build


def _feedback_rule(mode: str) -> Builder:
    def build(cfg: Any, n_in: int, n_out: int, total_steps: int, ctx: RunContext) -> Any:
        net = FeedbackNetwork(
            n_in,
            cfg.hidden,
            n_out,
            mode=mode,
            activation=cfg.activation,
            generator=ctx.generator("feedback"),
            loss=getattr(cfg, "loss", "cross_entropy"),
        ).to(ctx.device)
        optimizer = make_optimizer(
            net.parameters(), cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay
        )
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
        return FeedbackClassifier(net, optimizer, schedule)

    return build


RULES: dict[str, Rule] = {
    "bp": Rule(
        "bp",
        "backprop (Rumelhart et al. 1986): the error passes down through W^T",
        Locality("backprop_vector", "magnitude", separate_phase=True),
        _feedback_rule("bp"),
    ),
    "fa": Rule(
        "fa",
        "feedback alignment (Lillicrap et al. 2016): down through fixed random B",
        Locality("backprop_vector", "none", separate_phase=True),
        _feedback_rule("fa"),
    ),
    "dfa": Rule(
        "dfa",
        "direct feedback alignment (Nokland 2016): output error to each layer by fixed D",
        Locality("broadcast_vector", "none", separate_phase=True),
        _feedback_rule("dfa"),
    ),
    "dendritic": Rule(
        "dendritic",
        "dendritic microcircuit (Sacramento et al. 2018): apical prediction errors, two sweeps",
        # the apical potential, carried from the layer above by fixed top-down weights (whose
        # own nudge comes from the layer above it: passed down layer by layer); no forward
        # weight read; no phase (the continuous model learns with the target on all the
        # time; the sweeps are its steady state)
        Locality("backprop_vector", "none", separate_phase=False),
        _adapter("dendritic"),
    ),
    "coagent": Rule(
        "coagent",
        "coagent network (Kostas et al. 2020): contextual bandit, reward = correct label",
        Locality("broadcast_scalar", "none", separate_phase=False),
        _adapter("coagent"),
    ),
    "hm2bp": Rule(
        "hm2bp",
        "HM2-BP (Jin et al. 2018): LIF network on rate-coded inputs, S-PSP backprop",
        Locality("backprop_vector", "magnitude", separate_phase=True),
        _adapter("spiking"),
    ),
}


def get_rule(name: str) -> Rule:
    """The rule called ``name``; an unknown one is one line naming the known ones."""
    if name not in RULES:
        raise UserError(f"unknown rule {name!r}; choose from {', '.join(RULES)}")
    return RULES[name]


def parse_rules(text: str) -> list[str]:
    """``"bp,fa,dfa"`` -> ["bp", "fa", "dfa"], each checked, no repeats."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise UserError("--rules needs at least one rule, e.g. --rules bp,fa,dfa")
    if len(set(names)) != len(names):
        raise UserError(f"--rules {text!r} names a rule twice")
    for name in names:
        get_rule(name)
    return names
