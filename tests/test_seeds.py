"""Several seeds: parsing --seeds, the statistics of aggregate.json, folders, resume, report."""

from __future__ import annotations

import itertools
import json
import statistics

import numpy as np
import pytest
import scipy.stats

from creditlab import registry, runner, seeds
from creditlab.cli import main
from creditlab.errors import UserError
from creditlab.report import markdown_table


def test_parse_seeds_count_range_and_list() -> None:
    assert seeds.parse_seeds("5") == [0, 1, 2, 3, 4]
    assert seeds.parse_seeds("100-104") == [100, 101, 102, 103, 104]
    assert seeds.parse_seeds("3,7,9") == [3, 7, 9]
    for bad in ("0", "x", "4-2", "1,1", "-3", ""):
        with pytest.raises(UserError, match="--seeds"):
            seeds.parse_seeds(bad)


def test_summary_statistics_against_independent_computations() -> None:
    values = [0.91, 0.95, 0.93, 0.97, 0.90]
    stats = seeds.summarise(values)
    assert stats["mean"] == pytest.approx(statistics.mean(values), abs=1e-15)
    assert stats["std"] == pytest.approx(statistics.stdev(values), abs=1e-15)
    assert (stats["min"], stats["max"], stats["n"], stats["values"]) == (0.90, 0.97, 5, values)
    low, high = stats["ci95"]
    assert min(values) <= low < stats["mean"] < high <= max(values)
    assert seeds.summarise([0.5]) | {"values": None} == {
        "mean": 0.5, "std": 0.0, "min": 0.5, "max": 0.5, "ci95": [0.5, 0.5], "n": 1, "values": None
    }  # fmt: skip

    # with many seeds the bootstrap interval of the mean approaches mean +- 1.96 s / sqrt(n)
    sample = np.random.default_rng(3).normal(10.0, 2.0, 400)
    low, high = seeds.bootstrap_interval(sample)
    half = 1.96 * sample.std(ddof=1) / np.sqrt(len(sample))
    assert low == pytest.approx(sample.mean() - half, abs=0.05 * half + 0.01)
    assert high == pytest.approx(sample.mean() + half, abs=0.05 * half + 0.01)


def test_bootstrap_interval_against_the_exact_bootstrap_distribution() -> None:
    # five seeds have 5**5 equally likely resamples: their means are the exact bootstrap
    # distribution, and its percentiles the interval the 10,000 resamples estimate
    for values in ([0.91, 0.95, 0.93, 0.97, 0.90], [0.0, 0.0, 0.0, 0.0, 10.0]):
        x = np.array(values)
        exact = [x[list(draw)].mean() for draw in itertools.product(range(5), repeat=5)]
        expected = np.percentile(exact, [2.5, 97.5])
        assert seeds.bootstrap_interval(values) == pytest.approx(expected, abs=1e-12), values
    # the outlier is the last value: a resampler that never draws it would give [0, 0]
    assert seeds.bootstrap_interval([0.0, 0.0, 0.0, 0.0, 10.0]) == pytest.approx((0.0, 6.0))
    sample = np.random.default_rng(7).normal(0.0, 1.0, 12)  # and as scipy computes it
    theirs = scipy.stats.bootstrap((sample,), np.mean, method="percentile", random_state=1)
    ours = seeds.bootstrap_interval(sample)
    half = sample.std(ddof=1) / np.sqrt(len(sample))
    assert ours == pytest.approx(tuple(theirs.confidence_interval), abs=0.05 * half)


def test_aggregate_memory_is_the_peak_and_time_the_sum() -> None:
    per_seed = ((0, 0.5, 1.25, 300.0), (1, 0.7, 2.5, 512.5), (2, 0.6, 4.0, 100.0))
    runs = [
        {"experiment": "e", "scale": "smoke", "seed": seed, "config": {}, "metrics": {"m": m},
         "wall_seconds": wall, "peak_memory_mb": peak}
        for seed, m, wall, peak in per_seed
    ]  # fmt: skip
    summary = seeds.aggregate(runs)
    assert summary["peak_memory_mb"] == 512.5  # the largest seed's, not the last or the first
    assert summary["wall_seconds"] == 1.25 + 2.5 + 4.0  # all seeds' time together
    assert summary["seeds"] == [0, 1, 2] and summary["metrics"]["m"]["values"] == [0.5, 0.7, 0.6]


def _reproducible(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not registry.is_timing_metric(k)}


def test_seeds_run_a_folder_each_and_aggregate_them(tmp_path) -> None:
    exp = registry.get("bp.digits")
    out = tmp_path / "three"
    summary = seeds.run_seeds(exp, [0, 1, 2], scale="smoke", out=out, say=lambda line: None)
    assert summary == json.loads((out / "aggregate.json").read_text())
    assert summary["seeds"] == [0, 1, 2] and (out / "plots" / "learning_curves.png").is_file()
    per_seed = [json.loads((out / f"s{s}" / "result.json").read_text()) for s in (0, 1, 2)]
    assert [r["seed"] for r in per_seed] == [0, 1, 2]
    accuracy = [r["metrics"]["test_accuracy"] for r in per_seed]
    assert summary["metrics"]["test_accuracy"]["values"] == accuracy
    assert summary["metrics"]["test_accuracy"]["mean"] == pytest.approx(statistics.mean(accuracy))
    assert len(set(accuracy)) > 1  # the seeds differ
    single = runner.run(exp, scale="smoke", seed=1, out=tmp_path / "single")
    assert _reproducible(single["metrics"]) == _reproducible(per_seed[1]["metrics"])


def test_interrupted_seeds_resume_keeping_the_finished_ones(tmp_path, monkeypatch) -> None:
    exp = registry.get("bp.digits")
    reference = seeds.run_seeds(
        exp, [0, 1, 2], scale="smoke", out=tmp_path / "ref", say=lambda line: None
    )

    boundary = runner.RunContext.boundary

    def stop_seed_1_midway(ctx, state_fn):  # Ctrl-C during seed 1, at its 20th step
        if ctx.seed == 1 and ctx._boundaries_seen == 20:
            ctx._stop_requested = True
        return boundary(ctx, state_fn)

    monkeypatch.setattr(runner.RunContext, "boundary", stop_seed_1_midway)
    out = tmp_path / "cut"
    with pytest.raises(runner.Interrupted):
        seeds.run_seeds(exp, [0, 1, 2], scale="smoke", out=out, say=lambda line: None)
    assert (out / "s0" / "result.json").exists() and (out / "s1" / "checkpoint.pt").exists()
    assert not (out / "s2").exists() and not (out / "aggregate.json").exists()
    monkeypatch.setattr(runner.RunContext, "boundary", boundary)

    kept = (out / "s0" / "result.json").read_text()
    lines: list[str] = []
    resumed = seeds.resume_seeds(out, say=lines.append)
    assert lines[0].startswith("seed 0: finished before, kept")
    assert lines[1].startswith("seed 1: resuming from its checkpoint")
    assert lines[2].startswith("seed 2: running")
    assert (out / "s0" / "result.json").read_text() == kept
    for name, stats in resumed["metrics"].items():
        if not registry.is_timing_metric(name):
            assert stats["values"] == reference["metrics"][name]["values"], name


def test_cli_seeds_table_resume_and_report(tmp_path, capsys) -> None:
    out = tmp_path / "runs" / "bp.digits" / "two"
    assert main(["run", "bp.digits", "--scale", "smoke", "--seeds", "0-1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "aggregate.json").read_text())
    stats = summary["metrics"]["test_accuracy"]
    assert "2 seeds [0, 1]" in printed and "95% interval" in printed
    row = next(line for line in printed.splitlines() if line.strip().startswith("test_accuracy"))
    assert f"{stats['mean']:.6g}" in row and f"{stats['std']:.4g}" in row

    assert main(["run", "--resume", str(out)]) == 0  # nothing left to do: both kept
    assert capsys.readouterr().out.count("finished before, kept") == 2

    table = markdown_table(tmp_path / "runs")
    (row,) = [line for line in table.splitlines() if line.startswith("| bp.digits")]
    assert "0-1 (2 seeds)" in row
    assert f"{stats['mean']:.4f} ± {stats['std']:.4f} (n=2)" in row
    assert main(["run", "bp.digits", "--seeds", "two"]) == 2
    assert "--seeds 'two'" in capsys.readouterr().err
