"""Choosing settings on tuning seeds: the grid, the seed rule, the choice, resume, the report."""

from __future__ import annotations

import json
import statistics

import pytest

from creditlab import registry, sweep, tuning
from creditlab.cli import main
from creditlab.errors import UserError
from creditlab.rundir import find_runs


def test_grid_product_and_zip() -> None:
    assert sweep.parse_grid(["lr=1,2", "hidden=8,16"]) == [
        {"lr": "1", "hidden": "8"},
        {"lr": "1", "hidden": "16"},
        {"lr": "2", "hidden": "8"},
        {"lr": "2", "hidden": "16"},
    ]
    assert sweep.parse_grid(["lr=1,2", "lr_bp=3,4"], zipped=True) == [
        {"lr": "1", "lr_bp": "3"},
        {"lr": "2", "lr_bp": "4"},
    ]
    assert sweep.parse_grid([]) == [{}]  # a sweep of the defaults; tune refuses it
    for bad in (["lr"], ["lr="], ["=1,2"], ["lr=1", "lr=2"], ["data=a/b"]):
        with pytest.raises(UserError, match="--grid"):
            sweep.parse_grid(bad)
    with pytest.raises(UserError, match="same number"):
        sweep.parse_grid(["lr=1,2", "lr_bp=3"], zipped=True)
    with pytest.raises(UserError, match="tune needs at least one --grid"):
        tuning.tune(registry.get("bp.digits"), [], ["test_accuracy"])


def test_reporting_seeds_are_refused_in_one_line(tmp_path, capsys) -> None:
    argv = ["tune", "bp.digits", "--grid", "lr=0.1", "--metric", "test_accuracy"]
    assert main([*argv, "--seeds", "99-101", "--runs", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and ">= 100" in err and "(99: reporting seeds)" in err
    assert not any(tmp_path.iterdir())  # nothing ran
    # a bad value of a grid point fails before anything runs, too
    assert main(["tune", "bp.digits", "--grid", "lr=0.1,fast", "--metric", "x"]) == 2
    # a metric the experiment does not report, before any trial starts (or any folder is made)
    argv += ["--metric", "no_such_metric", "--scale", "smoke", "--seeds", "100-100"]
    argv += ["--runs", str(tmp_path)]
    assert main(argv) == 2
    assert "no metric no_such_metric" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_tune_chooses_the_best_mean_over_tuning_seeds_and_resumes(tmp_path, capsys) -> None:
    out = tmp_path / "tune"
    argv = ["tune", "bp.digits", "--scale", "smoke", "--seeds", "100-101", "--out", str(out)]
    argv += ["--grid", "lr=0.003,0.1", "--metric", "test_accuracy", "--metric", "test_loss"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    table = json.loads((out / "tune.json").read_text())
    means = {}
    for lr in ("0.003", "0.1"):  # independently: the per-seed result files of each point
        results = [
            json.loads((out / f"lr={lr}" / f"s{s}" / "result.json").read_text()) for s in (100, 101)
        ]
        assert [r["config"]["lr"] for r in results] == [float(lr)] * 2
        means[lr] = {
            m: statistics.mean(r["metrics"][m] for r in results)
            for m in ("test_accuracy", "test_loss")
        }
    assert means["0.1"]["test_accuracy"] != means["0.003"]["test_accuracy"]
    best_accuracy = max(means, key=lambda lr: means[lr]["test_accuracy"])
    assert table["best"]["test_accuracy"] == {"lr": best_accuracy}
    # larger is better by default, also for a loss; --minimize flips it
    assert table["best"]["test_loss"] == {"lr": max(means, key=lambda lr: means[lr]["test_loss"])}
    for p in table["points"]:
        stats = p["metrics"]["test_accuracy"]
        assert stats["n"] == 2
        assert stats["mean"] == pytest.approx(means[p["point"]["lr"]]["test_accuracy"])
    assert f"best test_accuracy (largest mean): lr={best_accuracy}" in printed
    row = next(line for line in printed.splitlines() if line.strip().startswith("lr=0.1 "))
    assert f"{means['0.1']['test_accuracy']:.4g} +- " in row

    # the same command again runs nothing: every point is kept
    before = {p: p.stat().st_mtime_ns for p in out.rglob("result.json")}
    assert main(argv) == 0
    capsys.readouterr()
    assert {p: p.stat().st_mtime_ns for p in out.rglob("result.json")} == before
    # a different plan in the same folder is refused: grid, seeds, metrics, overrides
    same = ["--grid", "lr=0.003,0.1", "--metric", "test_accuracy", "--metric", "test_loss"]
    for other in (
        [*argv[:-6], "--grid", "lr=0.5", "--metric", "test_accuracy", "--metric", "test_loss"],
        [*argv[:4], "--seeds", "100-102", *argv[6:]],
        [*argv[:-6], "--grid", "lr=0.003,0.1", "--metric", "test_accuracy"],
        [*argv, "--set", "hidden=16"],
    ):
        assert main(other) == 2
        assert "holds a sweep with other" in capsys.readouterr().err
    assert argv[-6:] == same

    # tuning runs never reach the report (they are on tuning seeds)
    assert find_runs(tmp_path) == []


def test_minimize_chooses_the_smallest(tmp_path) -> None:
    exp = registry.get("bp.digits")
    table = tuning.tune(
        exp,
        [{"lr": "0.003"}, {"lr": "0.1"}],
        ["test_loss"],
        seeds=[100],
        scale="smoke",
        minimize=True,
        out=tmp_path / "t",
        say=lambda line: None,
    )
    losses = {p["point"]["lr"]: p["metrics"]["test_loss"]["mean"] for p in table["points"]}
    assert table["best"]["test_loss"] == {"lr": min(losses, key=losses.get)}
    assert "smallest mean" in sweep.format_table(table)[-1]
