"""Config parsing: typed --set overrides, field docstrings, scales."""

from dataclasses import dataclass
from typing import Literal

import pytest

from creditlab import registry
from creditlab.errors import UserError


@dataclass
class Cfg:
    lr: float = 0.1
    """learning rate"""
    hidden: tuple[int, ...] = (4, 5)
    """widths"""
    kind: Literal["a", "b"] = "a"
    """which"""
    flag: bool = False
    """a switch"""
    cap: int | None = None
    """optional cap"""


def test_field_docs_read_from_source():
    assert registry.field_docs(Cfg) == {
        "lr": "learning rate",
        "hidden": "widths",
        "kind": "which",
        "flag": "a switch",
        "cap": "optional cap",
    }


def test_overrides_are_parsed_to_the_field_types():
    cfg = registry.apply_overrides(
        Cfg(), {"lr": "1e-3", "hidden": "[8,16]", "kind": "b", "flag": "true", "cap": "3"}
    )
    assert cfg == Cfg(lr=1e-3, hidden=(8, 16), kind="b", flag=True, cap=3)
    assert registry.apply_overrides(Cfg(), {"hidden": "32", "cap": "none"}).hidden == (32,)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("lr", "fast", "expected a number"),
        ("hidden", "8,x", "expected an integer"),
        ("kind", "c", "expected one of a, b"),
        ("flag", "maybe", "true or false"),
        ("nope", "1", "valid keys: lr, hidden, kind, flag, cap"),
    ],
)
def test_bad_overrides_say_what_is_wrong(key, value, message):
    with pytest.raises(UserError, match=message):
        registry.apply_overrides(Cfg(), {key: value})


def test_set_arguments_need_key_and_value():
    assert registry.parse_set_args(["a=1", "b = x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(UserError, match="key=value"):
        registry.parse_set_args(["lr"])


def test_unknown_experiment_suggests_close_names():
    with pytest.raises(UserError, match="did you mean bp.mnist"):
        registry.get("bp.mnsit")


def test_every_experiment_documents_every_field_and_scale():
    for exp in registry.load_all().values():
        assert set(registry.field_docs(exp.config)) >= {f for f in exp.config.__dataclass_fields__}
        for scale in registry.SCALES:
            exp.make_config(scale)  # every scale builds a valid config
        with pytest.raises(UserError, match="unknown scale"):
            exp.make_config("huge")


def test_each_experiment_is_named_after_the_package_that_registers_it():
    """`registry.get` imports only the module of the name's package (a fresh process runs one
    method without importing all); every registered name keeps that convention, and a fresh
    process finds its experiment importing no other method."""
    import subprocess
    import sys

    for name, exp in registry.load_all().items():
        assert exp.fn.__module__.split(".")[-2] == name.split(".", 1)[0], name
    probe = (
        "import sys; from creditlab import registry; registry.get('bp.digits'); "
        "print(sorted(m for m in sys.modules if m.endswith('.experiments')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['creditlab.methods.bp.experiments']"
