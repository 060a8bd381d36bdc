"""The experiment registry: a name, a typed config, three scales, and the paper's numbers.

An experiment is a function ``fn(cfg, ctx) -> dict[str, float]`` registered with
:func:`experiment`. Its config is a dataclass whose fields carry one-line docstrings (the
string literal right below the field, as CleanRL and tyro read them); ``creditlab list``
and ``--set`` are generated from it, so a flag and its documentation cannot drift apart.

Each scale is a set of overrides of the dataclass defaults; the defaults are usually the
paper's protocol, so ``paper`` often overrides nothing::

    @experiment("bp.digits", config=DigitsConfig, paper_title="...",
                scales={"smoke": {"epochs": 1}, "quick": {"epochs": 20}},
                paper={"test_accuracy": (0.98, "Table 1", "mnist60k")}, demo=True,
                devices=("cpu", "cuda"))
    def bp_digits(cfg: DigitsConfig, ctx: RunContext) -> dict[str, float]: ...
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import importlib
import inspect
import json
import textwrap
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from creditlab.errors import UserError

SCALES = ("smoke", "quick", "paper")
DEFAULT_SCALE = "quick"

# Metrics that measure the machine rather than the method (excluded from reproducibility checks).
TIMING_SUFFIXES = ("_per_second", "_seconds")


def is_timing_metric(name: str) -> bool:
    return name.endswith(TIMING_SUFFIXES)


PaperFigure = tuple[float, str] | tuple[float, str, str]
"""A paper's number for a metric: (value, source) or (value, source, data protocol). With a
protocol (e.g. "mnist60k"), the report compares it only with runs on that protocol."""


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: everything ``creditlab list/run/report`` needs to know."""

    name: str
    fn: Callable[..., dict[str, float]]
    config: type
    scales: Mapping[str, Mapping[str, Any]]
    paper_title: str = ""
    paper: Mapping[str, PaperFigure] = field(default_factory=dict)
    demo: bool = False
    devices: tuple[str, ...] = ("cpu",)
    """where it runs: ("cpu",) or ("cpu", "cuda"); ``--device`` elsewhere is refused"""

    @property
    def title(self) -> str:
        """First line of the experiment function's docstring."""
        return (inspect.getdoc(self.fn) or self.name).splitlines()[0]

    def make_config(
        self, scale: str, overrides: Mapping[str, str] | None = None, flag: str = "--set"
    ) -> Any:
        """The config at ``scale`` with ``--set key=value`` strings applied (type-checked, and
        sizes and counts checked: see :func:`check_value`); ``flag`` is what errors name."""
        if scale not in SCALES:
            raise UserError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
        cfg = self.config(**self.scales.get(scale, {}))
        return apply_overrides(cfg, overrides or {}, where=self.name, flag=flag)

    def data_sets(self, scale: str) -> tuple[str, ...]:
        """The data sets the run reads at ``scale``: its config's ``dataset`` field, if any."""
        name = getattr(self.make_config(scale), "dataset", None)
        return (name,) if isinstance(name, str) else ()

    def paper_figures(self) -> dict[str, dict[str, Any]]:
        """metric -> {"value", "source"} and, where the figure names it, "protocol"."""
        figures = {}
        for metric, (value, source, *protocol) in self.paper.items():
            figures[metric] = {"value": value, "source": source}
            if protocol:
                figures[metric]["protocol"] = protocol[0]
        return figures


_REGISTRY: dict[str, Experiment] = {}


def experiment(
    name: str,
    *,
    config: type,
    scales: Mapping[str, Mapping[str, Any]],
    paper_title: str = "",
    paper: Mapping[str, PaperFigure] | None = None,
    demo: bool = False,
    devices: tuple[str, ...] = ("cpu",),
) -> Callable[[Callable], Callable]:
    """Register ``fn(cfg, ctx) -> metrics`` under ``name`` (see the module docstring)."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"{name}: config must be a dataclass")
    fields_ = {f.name for f in dataclasses.fields(config)}
    for scale, overrides in scales.items():
        assert scale in SCALES, f"{name}: unknown scale {scale}"
        unknown = set(overrides) - fields_
        assert not unknown, f"{name}: scale {scale} sets unknown fields {unknown}"
    assert set(devices) <= {"cpu", "cuda"} and "cpu" in devices, f"{name}: devices {devices}"
    missing_docs = fields_ - set(field_docs(config))
    assert not missing_docs, f"{name}: config fields without a docstring: {sorted(missing_docs)}"

    def register(fn: Callable) -> Callable:
        assert name not in _REGISTRY, f"experiment {name} registered twice"
        _REGISTRY[name] = Experiment(
            name, fn, config, scales, paper_title, paper or {}, demo, tuple(devices)
        )
        return fn

    return register


@functools.cache
def experiment_modules() -> tuple[str, ...]:
    """Every ``experiments`` module in the package, found on disk (nothing is imported): a
    method registers by having one."""
    root = Path(__file__).parent
    return tuple(
        sorted(
            ".".join(("creditlab", *path.relative_to(root).with_suffix("").parts))
            for path in root.rglob("experiments.py")
        )
    )


def load_all() -> dict[str, Experiment]:
    """Import every method's experiments module and return the registry, sorted by name."""
    for module in experiment_modules():
        importlib.import_module(module)
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> Experiment:
    """The experiment called ``name``; an unknown name suggests the closest ones.

    An experiment is named after the package that registers it (``bp.digits`` in
    ``methods/bp/experiments.py``), so only that module is imported: a run in a fresh process
    (a subprocess, a sweep's worker) does not pay for every method's imports. Any other name
    imports them all."""
    if name not in _REGISTRY:
        package = name.split(".", 1)[0]
        for module in experiment_modules():
            if module.split(".")[-2] == package:
                importlib.import_module(module)
    if name in _REGISTRY:
        return _REGISTRY[name]
    registry = load_all()
    if name in registry:
        return registry[name]
    close = difflib.get_close_matches(name, registry, n=3, cutoff=0.4)
    close += [n for n in registry if n.startswith(name + ".") and n not in close]
    hint = f"; did you mean {', '.join(close)}?" if close else "; `creditlab list` shows them all"
    raise UserError(f"unknown experiment {name!r}{hint}")


# --- config dataclasses: field docstrings and typed overrides -----------------------------


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of a dataclass (inherited fields included)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def parse_set_args(items: list[str] | None) -> dict[str, str]:
    """``["lr=0.1", "hidden=[256,128]"]`` -> ``{"lr": "0.1", "hidden": "[256,128]"}``."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def apply_overrides(
    cfg: Any, overrides: Mapping[str, Any], where: str = "config", flag: str = "--set"
) -> Any:
    """A copy of ``cfg`` with fields replaced; string values are parsed to the field's type and
    checked with :func:`check_value`; an error names ``flag`` (the option the user typed)."""
    hints = typing.get_type_hints(type(cfg))
    names = [f.name for f in dataclasses.fields(cfg)]
    changes = {}
    for key, raw in overrides.items():
        if key not in names:
            raise UserError(f"{where} has no setting {key!r}; valid keys: {', '.join(names)}")
        try:
            if isinstance(raw, str):
                changes[key] = coerce(raw, hints[key])
                check_value(type(cfg), key, changes[key], getattr(cfg, key))
            else:  # a value from config.json: JSON has no tuples
                changes[key] = tuple(raw) if typing.get_origin(hints[key]) is tuple else raw
        except (ValueError, TypeError) as err:
            raise UserError(f"{flag} {key}={raw}: {err}") from None
    return dataclasses.replace(cfg, **changes)


def check_value(cls: type, name: str, value: Any, default: Any) -> None:
    """Refuse a size or count that cannot be meant (ValueError with the reason): a negative
    number where the default is not negative, and an integer zero where the default is
    positive, unless the field's docstring gives zero a meaning ("0: ..."); the same for each
    entry of a tuple of sizes (``hidden=(0,)``)."""
    doc = field_docs(cls).get(name, "")
    if isinstance(value, tuple | list):  # each entry against the default's first entry
        first = default[0] if isinstance(default, tuple | list) and default else None
        pairs = [(v, first) for v in value]
    else:
        pairs = [(value, default)]
    for v, d in pairs:
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        if not isinstance(d, int | float) or isinstance(d, bool):
            continue
        if v < 0 <= d:
            raise ValueError(f"must not be negative (default {default!r})")
        counts = isinstance(v, int) and isinstance(d, int)  # a size or a count
        if counts and v == 0 and d > 0 and "0:" not in doc and "0 =" not in doc:
            raise ValueError(f"must be positive (default {default!r})")


def coerce(text: str, tp: Any) -> Any:
    """Parse ``text`` as a value of type ``tp`` (bool, int, float, str, Literal, tuple, list,
    Optional); raise ValueError with a message a user can act on."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null") and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(text, arg)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError("; ".join(errors))
    if origin is typing.Literal:
        for choice in args:
            if str(choice) == text:
                return choice
        raise ValueError(f"expected one of {', '.join(map(str, args))}")
    if origin in (tuple, list):
        try:
            values = json.loads(text) if text.startswith("[") else text.split(",")
        except json.JSONDecodeError:
            raise ValueError(f"expected a list like [1,2] or 1,2, got {text!r}") from None
        if not isinstance(values, list):
            values = [values]
        item_type = args[0] if args else str
        return origin(coerce(str(v), item_type) for v in values if str(v) != "")
    if tp is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {text!r}")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
    if tp is str:
        return text
    raise ValueError(f"cannot set a field of type {tp}")


def describe_type(tp: Any) -> str:
    """A short human name for a field type, for ``creditlab list NAME``."""
    if typing.get_origin(tp) is typing.Literal:
        return "|".join(map(str, typing.get_args(tp)))
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))
