"""Coagent networks: an acyclic graph of coagents, executed with or without a clock.

A :class:`CoagentNetwork` is a set of named :class:`Node` s. At every atomic time step ``t``
the nodes run in a topological order of the graph (acyclic *within* a step, Kostas et al.
2020 Sec. 3): node ``i`` builds its input ``X^i_t`` from the environment state ``S_t``, the
outputs of upstream nodes at step ``t`` and, for recurrence, any node's output at ``t - 1``
(``"prev:<name>"``); its *execution function* gives the probability that it executes,
``E^i_t ~ Bernoulli(p^i_t)``; if it executes it samples ``U^i_t ~ pi_i(. | X^i_t)``, otherwise
it **holds its output**, ``U^i_t = U^i_{t-1}`` (Sec. 5). One node's output is the action.

Asynchronous CPGT (Kostas et al. 2020, Thm. 5): as long as ``p^i_t`` does not depend on
``theta_i``,

.. math::

    \\nabla_{\\theta_i} J = \\mathbb{E}\\Big[\\sum_t \\gamma^t E^i_t G_t\\,
        \\nabla_{\\theta_i} \\log \\pi_i(U^i_t \\mid X^i_t)\\Big],

so :meth:`CoagentNetwork.local_gradients` multiplies each coagent's broadcast signal by its
own execution indicators: a coagent learns only at the steps where it executed.

Choices the paper leaves open, made here:

* At the first step of an episode (``t = 0``) there is no earlier output to hold. The built-in
  execution functions (:class:`FixedProbability`, :class:`FixedPeriod`) therefore execute at
  ``t = 0``; a node whose rule says otherwise outputs its ``initial`` value (option-critic's
  termination node uses this: ``initial = 1``, "the previous option has ended").
* Execution indicators are drawn from torch's global generator, like the samples, so a seeded
  run is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from creditlab.methods.coagent.coagents import Coagent, SoftmaxCoagent

Tensor = torch.Tensor
STATE = "state"
PREVIOUS = "prev:"


# --- execution functions -----------------------------------------------------------------------


@dataclass
class ExecutionContext:
    """What an execution function may look at: never the coagent's own parameters."""

    t: Tensor
    """steps since the episode began, shape (B,)"""
    state: Tensor
    """the environment state S_t"""
    outputs: Mapping[str, Tensor]
    """outputs of the nodes already run at this step"""
    held: Mapping[str, Tensor]
    """every node's output at t - 1 (its held output)"""
    shape: tuple[int, ...]
    """(B,) for a single coagent, (B, units) for a layer: one indicator per unit"""


class ExecutionFunction:
    """An execution rule, stated once as ``P(E^i_t = 1 | ctx)`` (:meth:`probability`); calling it
    draws the indicators ``E^i_t ~ Bernoulli(p)`` (bool, ``ctx.shape``) from that probability,
    so the rule the network runs and the rule an exact computation reads cannot differ."""

    def probability(self, ctx: ExecutionContext) -> Tensor:
        raise NotImplementedError

    def __call__(self, ctx: ExecutionContext) -> Tensor:
        return torch.rand(ctx.shape) < self.probability(ctx).expand(ctx.shape)


def _per_episode(value: Tensor, ctx: ExecutionContext) -> Tensor:
    """A per-episode value ``(B,)`` broadcast to one entry per unit, ``ctx.shape``."""
    return value.view(-1, *([1] * (len(ctx.shape) - 1))).expand(ctx.shape)


class Always(ExecutionFunction):
    """Executes at every step: the synchronous (clocked) network."""

    def probability(self, ctx: ExecutionContext) -> Tensor:
        return torch.ones(ctx.shape)


@dataclass
class FixedProbability(ExecutionFunction):
    """Executes with probability ``p`` at every step (and always at ``t = 0``)."""

    p: float

    def probability(self, ctx: ExecutionContext) -> Tensor:
        return torch.where(_per_episode(ctx.t == 0, ctx), 1.0, float(self.p))


@dataclass
class FixedPeriod(ExecutionFunction):
    """Executes when ``(t + phase) % period == 0`` (and always at ``t = 0``)."""

    period: int
    phase: int = 0

    def probability(self, ctx: ExecutionContext) -> Tensor:
        t = _per_episode(ctx.t, ctx)
        return (((t + self.phase) % self.period == 0) | (t == 0)).float()


@dataclass
class StateDependent(ExecutionFunction):
    """Executes according to ``rule(ctx) -> probability`` (or a bool mask), e.g. the policy
    over options, which executes when the termination coagent has fired."""

    rule: Callable[[ExecutionContext], Tensor]

    def probability(self, ctx: ExecutionContext) -> Tensor:
        p = self.rule(ctx).float()
        return p.view(-1, *([1] * (len(ctx.shape) - 1))) if p.dim() < len(ctx.shape) else p


# --- the network ---------------------------------------------------------------------------


InputFn = Callable[[Tensor, Mapping[str, Tensor], Mapping[str, Tensor]], Tensor]


@dataclass
class Node:
    """A coagent in a network: where its input comes from and when it executes."""

    coagent: Coagent
    inputs: Sequence[str] | InputFn = (STATE,)
    """names concatenated into X^i ("state", an upstream node, or "prev:<node>" for that
    node's output at t - 1; a softmax node's output enters one-hot), or a function
    ``(state, outputs, held) -> X^i``"""
    execution: ExecutionFunction = field(default_factory=Always)
    """the execution function E^i (must not depend on this coagent's parameters)"""
    initial: float = 0.0
    """the held output at the start of an episode, before the node first executes"""
    after: Sequence[str] = ()
    """nodes whose output at this step an input function or execution rule reads"""


@dataclass
class Transition:
    """What each node did at one step: input X, output U and execution indicator E."""

    inputs: dict[str, Tensor]
    outputs: dict[str, Tensor]
    executed: dict[str, Tensor]


class CoagentNetwork(nn.Module):
    """An acyclic graph of coagents whose ``action`` node emits the action.

    >>> from creditlab.methods.coagent.coagents import BernoulliCoagent, SoftmaxCoagent
    >>> _ = torch.manual_seed(0)
    >>> net = CoagentNetwork({
    ...     "hidden": Node(BernoulliCoagent(4, units=8), ("state",), FixedProbability(0.5)),
    ...     "action": Node(SoftmaxCoagent(8, choices=2), ("hidden",)),
    ... }, action="action")
    >>> net.reset(batch=3)
    >>> a, step = net.act(torch.randn(3, 4), t=torch.zeros(3, dtype=torch.long))
    >>> a.shape, step.executed["hidden"].all().item()    # at t = 0 every coagent executes
    (torch.Size([3]), True)
    """

    def __init__(self, nodes: Mapping[str, Node], action: str):
        super().__init__()
        if action not in nodes:
            raise ValueError(f"the action node {action!r} is not one of {list(nodes)}")
        self.nodes = dict(nodes)
        self.coagents = nn.ModuleDict({name: node.coagent for name, node in nodes.items()})
        self.action = action
        self.order = topological_order(self.nodes)
        self.held: dict[str, Tensor] = {}
        self._true: dict[torch.Size, Tensor] = {}  # all-ones execution indicators, by shape

    # --- acting ------------------------------------------------------------------------------
    def _initial(self, name: str, batch: int) -> Tensor:
        coagent = self.nodes[name].coagent
        if isinstance(coagent, SoftmaxCoagent):
            return torch.full((batch,), int(self.nodes[name].initial), dtype=torch.long)
        shape = (batch, coagent.weight.shape[0])
        return torch.full(shape, float(self.nodes[name].initial), dtype=coagent.weight.dtype)

    def reset(self, batch: int | None = None, where: Tensor | None = None) -> None:
        """Set held outputs to their initial values: for all ``batch`` episodes, or for the
        episodes flagged in ``where`` (those that start anew)."""
        if batch is not None:
            self.held = {name: self._initial(name, batch) for name in self.order}
            return
        assert where is not None
        for name in self.order:
            held, start = self.held[name], self._initial(name, len(where))
            mask = where.view(-1, *([1] * (held.dim() - 1)))
            self.held[name] = torch.where(mask, start, held)

    def _all_true(self, shape: torch.Size) -> Tensor:
        if shape not in self._true:
            self._true[shape] = torch.ones(shape, dtype=torch.bool)
        return self._true[shape]

    def node_input(self, name: str, state: Tensor, outputs: Mapping[str, Tensor]) -> Tensor:
        """``X^i_t`` for node ``name`` given the state and this step's upstream outputs."""
        spec = self.nodes[name].inputs
        if callable(spec):
            return spec(state, outputs, self.held)
        parts = []
        for source in spec:
            if source == STATE:
                parts.append(state)
                continue
            if source.startswith(PREVIOUS):
                source, value = source[len(PREVIOUS) :], self.held[source[len(PREVIOUS) :]]
            else:
                value = outputs[source]
            parts.append(self.as_features(source, value, state.dtype))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def as_features(self, name: str, value: Tensor, dtype: torch.dtype) -> Tensor:
        """Node ``name``'s output as a feature block: bits or reals as they are, a softmax
        coagent's choice one-hot."""
        coagent = self.nodes[name].coagent
        if isinstance(coagent, SoftmaxCoagent):
            value = nn.functional.one_hot(value, coagent.choices)
        return value.to(dtype)

    def held_features(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """Every node's held output ``U^i_{t-1}`` (its initial value at ``t = 0``), as one
        feature vector per episode ``(B, sum of the blocks)``: the part of the network's state
        that a critic of an asynchronous network must see, ``v(S_t, U_{t-1})``."""
        return torch.cat([self.as_features(n, self.held[n], dtype) for n in self.order], dim=1)

    @torch.no_grad()
    def act(self, state: Tensor, t: Tensor) -> tuple[Tensor, Transition]:
        """Run every node once, in topological order; return the action and what each did."""
        step = Transition({}, {}, {})
        for name in self.order:
            node = self.nodes[name]
            x = self.node_input(name, state, step.outputs)
            held = self.held[name]
            if isinstance(node.execution, Always):  # P(E = 1) = 1: the draw is always True
                executed, u = self._all_true(held.shape), node.coagent(x)
            else:
                ctx = ExecutionContext(t, state, step.outputs, self.held, tuple(held.shape))
                executed = node.execution(ctx)
                u = torch.where(executed, node.coagent(x), held)  # not executing: hold U_{t-1}
            step.inputs[name], step.outputs[name], step.executed[name] = x, u, executed
        self.held = dict(step.outputs)  # a copy: reset() must not rewrite the record
        return step.outputs[self.action], step

    # --- learning ------------------------------------------------------------------------------
    def local_gradients(
        self, steps: Iterable[Transition], signal: Tensor
    ) -> dict[str, dict[str, Tensor]]:
        """Every coagent's own estimate ``sum_t E^i_t signal_t grad log pi_i(U^i_t | X^i_t)``.

        ``steps`` are the transitions of a rollout, ``signal`` is ``(T, B)``: the broadcast
        learning signal per step and episode (``gamma^t G_t``, or a TD error; zero where a step
        should not count). Coagent ``i`` reads only its own inputs, outputs and indicators.
        """
        steps = list(steps)
        grads = {}
        for name in self.order:
            x = _cat([s.inputs[name] for s in steps])
            u = _cat([s.outputs[name] for s in steps])
            e = _cat([s.executed[name] for s in steps]).to(signal.dtype)
            s = signal.reshape(-1)
            s = s.view(-1, *([1] * (e.dim() - 1))) * e  # E^i_t * signal_t (asynchronous CPGT)
            grads[name] = self.coagents[name].local_gradient(x, u, s)
        return grads

    def parameter_gradients(self, grads: Mapping[str, Mapping[str, Tensor]]) -> dict[str, Tensor]:
        """``{"<node>.<param>": tensor}``: the per-coagent estimates keyed like
        ``named_parameters()`` of :attr:`coagents`."""
        return {f"{node}.{p}": g for node, gs in grads.items() for p, g in gs.items()}


def _cat(tensors: list[Tensor]) -> Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=0)


def topological_order(nodes: Mapping[str, Node]) -> list[str]:
    """The nodes in an order where each comes after the nodes it reads at the same step;
    raises ValueError on a cycle or on an unknown input."""
    deps: dict[str, set[str]] = {}
    for name, node in nodes.items():
        deps[name] = set(node.after)
        for source in () if callable(node.inputs) else node.inputs:
            if source == STATE:
                continue
            base = source[len(PREVIOUS) :] if source.startswith(PREVIOUS) else source
            if base not in nodes:
                raise ValueError(f"node {name!r} reads {source!r}, which is not a node")
            if not source.startswith(PREVIOUS):
                deps[name].add(base)
    order: list[str] = []
    ready = [n for n in nodes if not deps[n]]
    while ready:
        name = ready.pop(0)
        order.append(name)
        for other in nodes:
            if name in deps[other]:
                deps[other].discard(name)
                if not deps[other] and other not in order and other not in ready:
                    ready.append(other)
    if len(order) != len(nodes):
        cycle = sorted(set(nodes) - set(order))
        raise ValueError(f"the coagent graph has a cycle within one step among {cycle}")
    return order
