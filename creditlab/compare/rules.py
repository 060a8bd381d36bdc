"""The rules ``creditlab compare`` knows: one small adapter each, on the shared learner protocol.

An adapter builds, for the task's network shape and budget, a learner that :func:`creditlab.
train.fit` can train (``train_step``, ``evaluate``, ``state_dict``, ``load_state_dict``) and
that also offers ``alignment_metrics(x, y)`` (the cosine of its update with the exact
backprop gradient) and, where its network allows, ``locality_probe()`` (see
:mod:`creditlab.compare.locality`). It declares what its update uses (:class:`Locality`).

The network, its widths, the optimiser, the learning rate and the number of steps are the
task's (:class:`creditlab.compare.experiments.CompareConfig`), never the rule's: a rule is a
mode of the same network, as in BioTorch's converter.

Not joined in this pass: the spiking rules (hm2bp, normad), sparse and dvae (their packages
are being reworked), coagent networks and the dendritic microcircuit (see docs/compare.md).
"""

from __future__ import annotations

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


def _feedback_rule(mode: str) -> Builder:
    def build(cfg: Any, n_in: int, n_out: int, total_steps: int, ctx: RunContext) -> Any:
        net = FeedbackNetwork(
            n_in,
            cfg.hidden,
            n_out,
            mode=mode,
            activation=cfg.activation,
            generator=ctx.generator("feedback"),
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
