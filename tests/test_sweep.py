"""Sweeps: named trial folders, the local pool and Ray Core giving the same result set, a
worker killed mid-trial (kill -9), retries, refusals, TensorBoard scalars.

One local Ray instance serves the module (two CPUs, no dashboard); each backend runs one
shared sweep of bp.digits at smoke scale (2 settings x 2 seeds).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import sys
from pathlib import Path

import pytest
import ray
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from creditlab import registry, runner, sweep
from creditlab.cli import main
from creditlab.rundir import read_metrics
from creditlab.sweep.trial import Trial, run_trial

GRID = [{"lr": "0.003"}, {"lr": "0.1"}]
SEEDS = [0, 1]
NAMES = {"lr=0.003/s0", "lr=0.003/s1", "lr=0.1/s0", "lr=0.1/s1"}
VICTIM = "lr=0.1/s1"
"""The trial whose worker is killed (SIGKILL) after its third checkpoint (epoch 2 of 5)."""


def kill_victim_once(trial: Trial) -> dict:
    """`run_trial`, except that the first attempt at VICTIM kills its own worker process
    right after its third checkpoint, and the retry notes each `runner.resume` it makes."""
    sweep_folder = Path(trial.folder).parent.parent
    marker = sweep_folder / "killed"
    if trial.name == VICTIM and marker.exists():
        resume = runner.resume

        def noted_resume(folder, **options):
            (sweep_folder / "resumed").write_text(str(folder))
            return resume(folder, **options)

        runner.resume = noted_resume
    elif trial.name == VICTIM:
        save, saved = runner.RunContext.checkpoint, []

        def checkpoint_then_die(ctx, state):
            save(ctx, state)
            saved.append(1)
            if len(saved) == 3:
                marker.write_text("")
                os.kill(os.getpid(), signal.SIGKILL)

        runner.RunContext.checkpoint = checkpoint_then_die
    return run_trial(trial)


def fail_seed_1(trial: Trial) -> dict:
    if trial.seed == 1:
        raise RuntimeError("planted failure")
    return run_trial(trial)


def _sweep(out: Path, **options) -> tuple[dict, list[str]]:
    lines: list[str] = []
    table = sweep.sweep(
        registry.get("bp.digits"),
        GRID,
        SEEDS,
        metrics=["test_accuracy"],
        scale="smoke",
        out=out,
        say=lines.append,
        trial_fn=kill_victim_once,
        **options,
    )
    return table, lines


def _results(out: Path) -> dict[str, dict]:
    return {
        str(p.parent.relative_to(out)): json.loads(p.read_text())
        for p in out.glob("*/s*/result.json")
    }


def _reproducible(result: dict) -> dict:
    return {k: v for k, v in result["metrics"].items() if not registry.is_timing_metric(k)}


def test_a_backend_that_cannot_start_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    # first in the module: Ray is not started in this process yet
    argv = [
        "sweep",
        "bp.digits",
        "--scale",
        "smoke",
        "--seeds",
        "0-0",
        "--out",
        str(tmp_path / "s"),
    ]
    assert main([*argv, "--backend", "ray", "--address", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no cluster answers at 127.0.0.1:1" in err
    assert main([*argv, "--backend", "local", "--address", "127.0.0.1:1"]) == 2
    assert "--address is for --backend ray" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    assert main([*argv, "--backend", "ray"]) == 2
    assert "pip install 'creditlab[distributed]'" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # nothing was written


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "sweep"
    return (out, *_sweep(out, backend="local", workers=1))


@pytest.fixture(scope="module")
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the trial functions here
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def on_ray(ray_instance, tmp_path_factory):
    out = tmp_path_factory.mktemp("ray") / "sweep"
    return (out, *_sweep(out, backend="ray"))


def test_trials_are_named_run_folders_gathered_in_one_table(local) -> None:
    out, table, lines = local
    results = _results(out)
    assert set(results) == NAMES
    for point in GRID:  # independently: the per-seed result files of each setting
        label = sweep.point_label(point)
        accuracy = [results[f"{label}/s{s}"]["metrics"]["test_accuracy"] for s in SEEDS]
        assert [results[f"{label}/s{s}"]["config"]["lr"] for s in SEEDS] == [float(point["lr"])] * 2
        (row,) = [p for p in table["points"] if p["point"] == point]
        stats = row["metrics"]["test_accuracy"]
        assert stats["mean"] == pytest.approx(statistics.mean(accuracy), abs=1e-15)
        assert stats["std"] == pytest.approx(statistics.stdev(accuracy), abs=1e-15)
        assert stats["n"] == 2 and row["seeds"] == SEEDS
        aggregate = json.loads((out / label / "aggregate.json").read_text())
        assert aggregate["metrics"]["test_accuracy"]["values"] == accuracy
    means = {p["point"]["lr"]: p["metrics"]["test_accuracy"]["mean"] for p in table["points"]}
    assert table["best"]["test_accuracy"] == {"lr": max(means, key=means.get)}
    assert json.loads((out / "sweep.json").read_text()) == table
    printed = sweep.format_table(table)
    best = max(means, key=means.get)
    assert f"best test_accuracy (largest mean): lr={best}" in "\n".join(printed)


def test_a_worker_killed_mid_trial_resumes_from_its_checkpoint(local, on_ray, tmp_path) -> None:
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a trial runs
    try:
        unbroken = runner.run(
            registry.get("bp.digits"), scale="smoke", seed=1, overrides={"lr": "0.1"}, out=tmp_path
        )
    finally:
        torch.set_num_threads(torch_threads)
    for out, table, lines in (local, on_ray):
        assert any(line.strip().startswith(f"{VICTIM}: failed (WorkerLost") for line in lines)
        assert (out / "resumed").read_text() == str(out / VICTIM)  # resumed, not restarted
        assert _reproducible(_results(out)[VICTIM]) == _reproducible(unbroken)
        assert table["failed"] == {}


def test_local_and_ray_give_the_same_result_set(local, on_ray) -> None:
    here, there = _results(local[0]), _results(on_ray[0])
    assert set(here) == set(there) == NAMES
    for name in NAMES:
        assert _reproducible(here[name]) == _reproducible(there[name]), name
    assert local[1]["points"] == on_ray[1]["points"]


def test_a_rerun_skips_finished_trials(local) -> None:
    out = local[0]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("result.json")}
    # nothing is left to run, so no backend is started (nothing answers at this address)
    table, lines = _sweep(out, backend="ray", address="127.0.0.1:1")
    assert "4 trials, 4 finished before, 0 to run" in lines[0]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("result.json")} == before
    assert table["points"] == local[1]["points"]


def test_a_rerun_with_another_plan_is_refused(local, capsys) -> None:
    argv = ["sweep", "bp.digits", "--scale", "smoke", "--out", str(local[0])]
    argv += ["--grid", "lr=0.003,0.1", "--metric", "test_accuracy"]
    for extra, named in (
        (["--seeds", "0-2"], "seeds"),
        (["--seeds", "0-1", "--set", "hidden=16"], "overrides"),
        (["--seeds", "0-1", "--metric", "test_loss"], "metrics"),
        (["--seeds", "0-1", "--scale", "quick"], "scale"),
    ):
        assert main([*argv, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and f"holds a sweep with other {named}" in err, err


def test_a_failing_trial_is_retried_then_reported_and_the_sweep_goes_on(
    ray_instance, tmp_path
) -> None:
    exp, out, lines = registry.get("bp.digits"), tmp_path / "flaky", []
    options = {"scale": "smoke", "out": out, "backend": "ray", "retries": 1, "tensorboard": True}
    table = sweep.sweep(exp, [], SEEDS, say=lines.append, trial_fn=fail_seed_1, **options)
    assert table["failed"] == {"defaults/s1": "RuntimeError: planted failure"}
    assert sum("defaults/s1: failed (RuntimeError: planted failure); retry 1 of 1" in line
               for line in lines) == 1  # fmt: skip
    assert any("defaults/s1: failed 2 times" in line for line in lines)
    (point,) = table["points"]
    assert point["seeds"] == [0] and point["metrics"]["test_accuracy"]["n"] == 1
    assert not (out / "defaults" / "aggregate.json").exists()
    assert any((out / "defaults" / "s0" / runner.TENSORBOARD_DIR).iterdir())

    lines = []  # the same sweep again: seed 0 is kept, seed 1 runs, the setting is complete
    table = sweep.sweep(exp, [], SEEDS, say=lines.append, **options)
    assert "2 trials, 1 finished before, 1 to run" in lines[0] and table["failed"] == {}
    assert (out / "defaults" / "aggregate.json").exists()
    assert table["points"][0]["seeds"] == SEEDS


def test_tensorboard_holds_every_logged_metric_across_a_resume(
    tmp_path, capsys, monkeypatch
) -> None:
    out, boundary = tmp_path / "run", runner.RunContext.boundary

    class Crash(BaseException):
        pass

    def crash_midway(ctx, state_fn):  # dies after step 52: its last checkpoint is step 42's
        if ctx._boundaries_seen == 52:  # (epochs of 14 steps), its batch_loss row of 50 is not
            raise Crash
        return boundary(ctx, state_fn)

    monkeypatch.setattr(runner.RunContext, "boundary", crash_midway)
    with pytest.raises(Crash):
        runner.run(registry.get("bp.digits"), scale="smoke", out=out, tensorboard=True)
    monkeypatch.setattr(runner.RunContext, "boundary", boundary)
    # the steps logged after the checkpoint are logged again on resume, and shown once
    assert main(["run", "--resume", str(out), "--tensorboard"]) == 0
    events = EventAccumulator(str(out / runner.TENSORBOARD_DIR))
    events.Reload()
    logged: dict[str, list[tuple[int, float]]] = {}
    for row in read_metrics(out / "metrics.jsonl"):
        for name, value in row.items():
            if name != "step":
                logged.setdefault(name, []).append((row["step"], value))
    assert sorted(events.Tags()["scalars"]) == sorted(logged)
    for name, series in logged.items():
        board = [(e.step, e.value) for e in events.Scalars(name)]
        assert [s for s, _ in board] == [s for s, _ in series], name
        assert [v for _, v in board] == pytest.approx([v for _, v in series], rel=1e-6), name
    capsys.readouterr()
    assert main(["run", "bp.digits", "--seeds", "2", "--tensorboard"]) == 2
    assert "creditlab sweep NAME --seeds 2 --tensorboard" in capsys.readouterr().err
    (out / runner.TENSORBOARD_DIR).rename(tmp_path / "elsewhere")
    assert main(["run", "--resume", str(out), "--tensorboard"]) == 2
    assert "started without --tensorboard" in capsys.readouterr().err


class _TrialsWouldStart(Exception):
    pass


def test_the_metric_check_runs_smoke_without_the_budget_overrides(tmp_path, monkeypatch) -> None:
    # a long sweep (--set epochs=100000 at quick scale) must not run its budget in the
    # up-front check of the metric names: that check is a smoke run with the overrides of
    # fields the two scales share (lr, activation), and the smoke scale's own sizes
    seen: list[dict] = []

    def noted_run(exp, *, scale, overrides, **options):
        seen.append({"scale": scale, **overrides})
        return {"metrics": {"test_accuracy": 1.0}}

    def no_executor(*args):
        raise _TrialsWouldStart

    monkeypatch.setattr(runner, "run", noted_run)
    monkeypatch.setattr(sweep, "make_executor", no_executor)
    with pytest.raises(_TrialsWouldStart):
        sweep.sweep(
            registry.get("bp.digits"),
            [{"lr": "0.1"}],
            [0],
            metrics=["test_accuracy"],
            scale="quick",
            overrides={"epochs": "100000", "activation": "tanh", "hidden": "64"},
            out=tmp_path / "s",
            say=lambda line: None,
        )
    assert seen == [{"scale": "smoke", "activation": "tanh", "lr": "0.1"}]
