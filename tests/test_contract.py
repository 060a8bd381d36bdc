"""The contract every registered experiment meets, checked the moment it is registered
(scikit-learn's estimator_checks habit): its smoke scale runs, writes the run-folder
contract, produces finite metrics, and gives identical metrics for the same seed."""

import json
import math

import pytest

from creditlab import registry, runner
from creditlab.data import DATASETS

RESULT_KEYS = {
    "experiment",
    "scale",
    "seed",
    "config",
    "metrics",
    "paper",
    "wall_seconds",
    "peak_memory_mb",
    "versions",
    "git_commit",
}


def _optional(exp: registry.Experiment) -> tuple[str, ...]:
    return tuple(n for n in exp.data_sets("smoke") if DATASETS[n].optional)


# An experiment whose smoke config names a data set needs its genuine files (marked so), except
# an optional one (N-MNIST: not on the CI machine), which the run reads as generated files.
EXPERIMENTS = [
    pytest.param(name, marks=pytest.mark.genuine_data(*exp.data_sets("smoke")))
    if not _optional(exp)
    else name
    for name, exp in registry.load_all().items()
]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_smoke_run_meets_the_run_folder_contract(name, tmp_path, fake_data):
    exp = registry.get(name)
    for data_set in _optional(exp):
        fake_data(data_set)
    first = runner.run(exp, scale="smoke", seed=1, out=tmp_path / "a")
    second = runner.run(exp, scale="smoke", seed=1, out=tmp_path / "b")

    result = json.loads((tmp_path / "a" / "result.json").read_text())
    assert RESULT_KEYS <= set(result)
    assert result == json.loads(json.dumps(first))
    assert result["experiment"] == name and result["scale"] == "smoke" and result["seed"] == 1
    assert set(result["versions"]) == {"python", "torch", "creditlab"}
    assert result["metrics"] and all(math.isfinite(v) for v in result["metrics"].values())
    for figure in result["paper"].values():
        assert {"value", "source"} <= set(figure) <= {"value", "source", "protocol"}
        assert isinstance(figure["value"], float | int)
    for metric, value in result["metrics"].items():
        if metric.endswith("_accuracy"):
            assert 0.0 <= value <= 1.0, metric
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["experiment"] == name and config["config"] == result["config"]
    lines = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    assert lines and all(isinstance(json.loads(line)["step"], int) for line in lines)
    assert list((tmp_path / "a" / "plots").glob("*.png"))
    assert not (tmp_path / "a" / "checkpoint.pt").exists()

    def reproducible(metrics):
        return {k: v for k, v in metrics.items() if not registry.is_timing_metric(k)}

    assert reproducible(second["metrics"]) == reproducible(first["metrics"])
