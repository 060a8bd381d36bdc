"""The claims the reproduction page checks, and each one's verdict from the latest runs.

A claim is a sentence from a paper (its spec sheet in the project's design notes, or its
abstract) or a goal the project set itself, tied to one metric of one experiment and to a
reference: the paper's figure for that metric (read from the run's result.json, as the
experiment registered it), a fixed threshold, or another metric of the same run. Every paper
figure a run carries and measures that no claim below names becomes a claim of its own ("The
paper reports ...").

Verdicts (:func:`judge`): ``reproduced``, ``partly``, ``not reproduced``, ``not comparable``
(different data or budget, with the reason), ``not run here``; for the project's goals ``met``,
``partly met``, ``not met``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from creditlab.rundir import Run, data_protocol, higher_is_better, is_number

REPRODUCED, PARTLY, NOT_REPRODUCED = "reproduced", "partly", "not reproduced"
NOT_COMPARABLE, NOT_RUN = "not comparable", "not run here"
MET, PARTLY_MET, NOT_MET = "met", "partly met", "not met"

OPS = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
}


@dataclass(frozen=True)
class Claim:
    """One checkable statement about one metric of one experiment.

    ``reference`` is a number (a threshold), the name of another metric of the same run
    (``"test_mse_shallow"``: a comparison of two learners), or None: the paper's own figure
    for ``metric``, compared within ``tolerance`` (absolute; default 0.01 for accuracies, else
    5% of the figure)."""

    experiment: str
    metric: str
    text: str
    op: str = ""
    reference: float | str | None = None
    source: str = ""
    goal: bool = False
    tolerance: float | None = None

    @property
    def paper_figure(self) -> bool:
        return self.reference is None


CLAIMS: tuple[Claim, ...] = (
    Claim("bp.mnist1d", "test_accuracy", "An MLP reaches about 68% test accuracy on MNIST-1D."),
    Claim("bp.mnist", "test_accuracy", "A backprop 784-500-500-10 MLP: 1.53% MNIST test error."),
    Claim(
        "dendritic.mnist", "test_accuracy",
        "Dendritic microcircuits learn MNIST to 1.96% test error, close to backprop.",
    ),
    Claim(
        "dendritic.teacher", "test_mse",
        "The microcircuit learns a teacher network better than a shallow learner.",
        "<", "test_mse_shallow", "Sacramento et al. 2018, Fig. 2",
    ),
    Claim(
        "dendritic.self_predicting", "final_apical_rms",
        "Plastic interneurons learn to cancel top-down input (the self-predicting state).",
        "<", "initial_apical_rms", "Sacramento et al. 2018, Sec. 3.1",
    ),
    Claim(
        "relu.layers", "activation_probability_mean",
        "Without skips, Pr[y>0] of ReLU units at convergence is below 0.5.",
        "<", 0.5, "Douglas & Yu 2018, abstract (CIFAR-10)",
    ),
    Claim(
        "relu.layers", "depth_spearman_pvalue",
        "Pr[y>0] falls from the input layer towards the output (Spearman test, p < 0.05).",
        "<", 0.05, "Douglas & Yu 2018, abstract (CIFAR-10)",
    ),
    Claim(
        "relu.single_unit", "max_relative_gap_convergence_time",
        "A single unit converges more slowly as Pr[y>0] -> 0, as the derived rate predicts "
        "(within 10% of simulation).",
        "<=", 0.1, "Douglas & Yu 2018, single-unit analysis",
    ),
    Claim(
        "coagent.gradient_check", "final_angle_degrees",
        "The coagent policy-gradient estimate approaches the exact gradient.",
        "<", "first_angle_degrees", "Kostas, Nota & Thomas 2020, CPGT",
    ),
    Claim(
        "dvae.bmnist", "nll_gain_over_factorial",
        "An RBM (undirected) posterior gives a lower test NLL than a factorial one.",
        ">", 0.0, "Vahdat et al. 2019, abstract",
    ),
    Claim(
        "hm2bp.mnist", "test_accuracy",
        "HM2-BP trains a 784-800-10 spiking MLP to 98.93% on MNIST.",
    ),
    Claim(
        "normad.xor", "fraction_converged",
        "Multilayer NormAD learns spike-time XOR (every training problem converges).",
        ">=", 1.0,
        "Anwani & Rajendran 2020, XOR task (our threshold: the paper's numbers were not found)",
    ),
    Claim(
        "coagent.cartpole", "eval_return",
        "Coagent network solves CartPole (evaluation return >= 195).",
        ">=", 195.0, "project goal (CartPole-v0's solved threshold)", goal=True,
    ),
    Claim(
        "coagent.async_cartpole", "eval_return",
        "Fully asynchronous coagents still solve CartPole (return >= 195).",
        ">=", 195.0, "project goal; the paper: asynchronous coagents still learn", goal=True,
    ),
    Claim(
        "hm2bp.mnist", "test_accuracy",
        "HM2-BP at quick scale reaches >= 0.93 on MNIST.",
        ">=", 0.93, "project goal", goal=True,
    ),
    Claim(
        "sparse.identity", "index_accuracy_identity",
        "The sparse hyperlayer learns a 32x32 identity (index accuracy >= 0.95).",
        ">=", 0.95, "project goal (the paper's Fig. 2 task)", goal=True,
    ),
    Claim(
        "sparse.identity", "index_accuracy_permutation",
        "... and a random permutation (index accuracy >= 0.85).",
        ">=", 0.85, "project goal", goal=True,
    ),
)  # fmt: skip
"""The claims, paper claims first, then the project's goals."""


@dataclass
class Row:
    """A claim with what the runs say about it."""

    claim: Claim
    run: Run | None = None
    values: list[float] = field(default_factory=list)
    """the measured value per seed"""
    reference_values: list[float] = field(default_factory=list)
    """per seed, where the reference is another metric"""
    paper: float | None = None
    source: str = ""
    ci95: tuple[float, float] | None = None
    verdict: str = NOT_RUN
    why: str = ""

    @property
    def mean(self) -> float | None:
        return sum(self.values) / len(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        n = len(self.values)
        if n < 2:
            return None
        mean = sum(self.values) / n
        return math.sqrt(sum((v - mean) ** 2 for v in self.values) / (n - 1))

    @property
    def target(self) -> float | None:
        """The number the measurement is compared with (paper figure, threshold or the mean of
        the other metric)."""
        if self.claim.paper_figure:
            return self.paper
        if isinstance(self.claim.reference, str):
            refs = self.reference_values
            return sum(refs) / len(refs) if refs else None
        return float(self.claim.reference)

    @property
    def difference(self) -> float | None:
        if self.mean is None or self.target is None:
            return None
        return self.mean - self.target

    @property
    def relative(self) -> float | None:
        """The difference as a fraction of the reference's size (its sign is the difference's,
        whatever the reference's sign)."""
        target = self.target
        if self.difference is None or not target:
            return None
        return self.difference / abs(target)


def per_seed(run: Run, metric: str) -> tuple[list[float], tuple[float, float] | None]:
    """A metric's value per seed (one value for a single run) and its 95% interval, if any."""
    entry = (run.result or {}).get("metrics", {}).get(metric)
    if isinstance(entry, Mapping):
        ci = entry.get("ci95")
        return [float(v) for v in entry.get("values", [])], (tuple(ci) if ci else None)
    return ([float(entry)], None) if is_number(entry) else ([], None)


def _tolerance(claim: Claim, paper: float) -> float:
    if claim.tolerance is not None:
        return claim.tolerance
    return 0.01 if "accuracy" in claim.metric else 0.05 * abs(paper)


def judge(row: Row) -> tuple[str, str]:
    """(verdict, why) for a row whose run and values are filled in."""
    claim, run = row.claim, row.run
    if run is None:
        return NOT_RUN, ""
    result = run.result or {}
    scale = str(result.get("scale", ""))
    if not row.values:
        return NOT_COMPARABLE, f"not measured in this run ({scale} scale)"
    if claim.paper_figure:
        return _judge_figure(row, scale, result)
    holds = [OPS[claim.op](v, r) for v, r in zip(row.values, _references(row), strict=False)]
    all_, mean = all(holds), OPS[claim.op](row.mean, row.target)
    words = (MET, PARTLY_MET, NOT_MET) if claim.goal else (REPRODUCED, PARTLY, NOT_REPRODUCED)
    n = len(holds)
    tally = f"holds on {sum(holds)} of {n} seeds" if n > 1 else ""
    if all_ and mean:
        return words[0], tally
    if scale == "smoke" and not claim.goal:  # a check that the code runs, not a budget
        return NOT_COMPARABLE, "budget: smoke scale (seconds), not a test of the claim"
    if mean or any(holds):
        return words[1], tally or "the mean holds, not every seed"
    return words[2], tally


def _references(row: Row) -> list[float]:
    if isinstance(row.claim.reference, str):
        return row.reference_values
    return [float(row.claim.reference)] * len(row.values)


def _judge_figure(row: Row, scale: str, result: Mapping[str, Any]) -> tuple[str, str]:
    paper_protocol = str(
        ((result.get("paper") or {}).get(row.claim.metric) or {}).get("protocol", "")
    )
    protocol = str(data_protocol(result) or "")
    if protocol and paper_protocol and protocol != paper_protocol:
        return NOT_COMPARABLE, f"different data: {protocol} here, {paper_protocol} in the paper"
    if row.paper is None:
        return NOT_COMPARABLE, "the paper gives no figure for this metric"
    better = higher_is_better(row.claim.metric)
    tol = _tolerance(row.claim, row.paper)
    gap = row.difference if better is not False else -row.difference
    low, high = row.ci95 or (row.mean, row.mean)
    inside = low <= row.paper <= high
    if (gap >= -tol if better is not None else abs(gap) <= tol) or inside:
        return REPRODUCED, f"within {tol:.3g} of the paper" if gap < 0 else ""
    if scale != "paper":
        return NOT_COMPARABLE, f"budget: {scale} scale, the paper trained to convergence"
    if gap >= -3 * tol:
        return PARTLY, f"{-gap:.3g} short (tolerance {tol:.3g})"
    return NOT_REPRODUCED, f"{-gap:.3g} short"


def build_rows(
    latest: Mapping[str, tuple[Run, int]], claims: Sequence[Claim] = CLAIMS
) -> list[Row]:
    """One row per claim (the claims' experiments looked up among the latest runs by their
        name, the first label of an experiment run on several protocols), plus one row per paper
        figure a run carries and measures that no claim names (a figure of another data set or
    size, which the run does not measure, gets none). Paper claims first, goals last."""
    by_experiment: dict[str, Run] = {}
    for run, _ in latest.values():
        by_experiment.setdefault(run.experiment, run)
    named = {(c.experiment, c.metric) for c in claims if c.paper_figure}
    extra = [
        Claim(run.experiment, metric, f"The paper reports {metric}.")
        for run in by_experiment.values()
        for metric in (run.result or {}).get("paper") or {}
        if (run.experiment, metric) not in named and metric in run.result.get("metrics", {})
    ]
    rows = []
    for claim in sorted([*claims, *extra], key=lambda c: c.goal):
        row = Row(claim, by_experiment.get(claim.experiment))
        if row.run is not None:
            row.values, row.ci95 = per_seed(row.run, claim.metric)
            if isinstance(claim.reference, str):
                row.reference_values, _ = per_seed(row.run, claim.reference)
            figure = ((row.run.result or {}).get("paper") or {}).get(claim.metric)
            if isinstance(figure, Mapping):
                row.paper, row.source = figure.get("value"), str(figure.get("source", ""))
        row.source = row.source or claim.source
        row.verdict, row.why = judge(row)
        rows.append(row)
    return rows
