"""Run folders, interruption and resume, divergence, and the bp baselines' learning."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from creditlab import registry, runner

CLI = [sys.executable, "-m", "creditlab"]
LONG_DIGITS = ["run", "bp.digits", "--scale", "smoke", "--set", "epochs=150"]


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())["metrics"]


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    start = time.monotonic()
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "run"
    subprocess.run([*CLI, *LONG_DIGITS, "--out", str(out)], check=True, capture_output=True)
    return out


def test_ctrl_c_leaves_a_checkpoint_and_resume_finishes_the_same_run(uninterrupted, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [*CLI, *LONG_DIGITS, "--out", str(out)],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    # interrupt once training is under way (some minibatch losses were logged)
    _wait_for(
        lambda: (out / "metrics.jsonl").exists() and (out / "metrics.jsonl").stat().st_size > 200,
        proc,
    )
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "resume" in err and "Traceback" not in err
    assert (out / "checkpoint.pt").exists() and not (out / "result.json").exists()

    done = subprocess.run([*CLI, "run", "--resume", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert _metrics(out) == _metrics(uninterrupted)
    assert (out / "metrics.jsonl").read_text() == (uninterrupted / "metrics.jsonl").read_text()
    assert not (out / "checkpoint.pt").exists()


def test_a_killed_run_resumes_from_its_last_periodic_checkpoint(uninterrupted, tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, CREDITLAB_CHECKPOINT_EVERY="0")  # checkpoint at every step
    proc = subprocess.Popen(
        [*CLI, *LONG_DIGITS, "--out", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for(
        lambda: (out / "metrics.jsonl").exists() and (out / "metrics.jsonl").stat().st_size > 300,
        proc,
    )
    proc.kill()
    proc.wait()
    assert (out / "checkpoint.pt").exists() and not (out / "result.json").exists()
    done = subprocess.run([*CLI, "run", "--resume", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert _metrics(out) == _metrics(uninterrupted)
    assert (out / "metrics.jsonl").read_text() == (uninterrupted / "metrics.jsonl").read_text()


def test_resume_refuses_finished_and_foreign_folders(uninterrupted, tmp_path):
    for target, message in [(uninterrupted, "already finished"), (tmp_path, "not a run folder")]:
        proc = subprocess.run(
            [*CLI, "run", "--resume", str(target)], capture_output=True, text=True
        )
        assert proc.returncode == 2 and message in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_nan_loss_stops_with_exit_3_and_keeps_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            *CLI,
            "run",
            "bp.digits",
            "--scale",
            "smoke",
            "--set",
            "optimizer=sgd",
            "--set",
            "lr=1e30",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 3, proc.stderr
    assert "became nan at step" in proc.stderr or "became inf at step" in proc.stderr
    assert "train_loss" in proc.stderr and "Traceback" not in proc.stderr
    assert (out / "checkpoint.pt").exists() and not (out / "result.json").exists()


def test_default_run_folder_is_named_by_time_and_seed(tmp_path):
    result = runner.run(registry.get("bp.digits"), scale="smoke", seed=7, runs_root=tmp_path)
    (folder,) = (tmp_path / "bp.digits").iterdir()
    assert folder.name.endswith("-s7") and folder.name[:8].isdigit()
    assert result["seed"] == 7


@pytest.mark.parametrize(
    ("name", "dataset", "threshold"),
    [
        ("bp.digits", "digits", 0.9),
        pytest.param("bp.mnist", "mnist", 0.85, marks=pytest.mark.genuine_data("mnist")),
        # the same experiment on the full-size protocol (smoke: 2,000 of its 60,000 images)
        pytest.param(
            "bp.mnist", "fashion_mnist", 0.7, marks=pytest.mark.genuine_data("fashion_mnist")
        ),
    ],
)
def test_backprop_smoke_runs_learn(name, dataset, threshold, tmp_path):
    result = runner.run(
        registry.get(name), scale="smoke", overrides={"dataset": dataset}, out=tmp_path / "r"
    )
    assert result["metrics"]["test_accuracy"] >= threshold
    assert result["data"]["name"] == dataset and result["config"]["dataset"] == dataset
    assert (
        result["data"]["n_test"] == {"digits": 359, "mnist": 2000, "fashion_mnist": 10000}[dataset]
    )


def test_result_names_the_threads_the_run_used(tmp_path):
    """An experiment whose config has ``threads`` runs with that many (the runner sets it) and
    is recorded with it, not with the setting restored after it."""
    exp = registry.Experiment(
        "test.threads",
        _log_twice,
        _ThreadsConfig,
        {"smoke": {}},
    )
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = runner.run(exp, scale="smoke", out=tmp_path / "threads")
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert result["machine"].endswith("torch threads 1"), result["machine"]
    assert "Ran with 1 torch CPU thread(s)" in result["notes"][0]
    assert after == 2  # restored afterwards


@dataclasses.dataclass
class _ThreadsConfig:
    threads: int = 1


def _log_twice(cfg, ctx):
    ctx.log(0, loss=1.0)
    ctx.log(1, loss=0.5)
    return {"loss": 0.5}


def test_derived_streams_are_the_run_seed_or_a_hash_of_seed_and_key():
    """`derive_seed`: no key is the seed itself; a key is blake2b of "seed/key/..." (computed
    here with hashlib, not through the code), so streams of different keys or seeds differ."""
    import hashlib

    assert runner.derive_seed(7) == 7
    digest = hashlib.blake2b(b"7/epoch/3", digest_size=8).digest()
    assert runner.derive_seed(7, "epoch", 3) == int.from_bytes(digest, "little") >> 1
    seeds = {runner.derive_seed(s, "epoch", e) for s in range(3) for e in range(3)}
    assert len(seeds) == 9 and all(0 <= x < 2**63 for x in seeds)
