"""The command line: every user mistake is one line and exit code 2, never a traceback."""

import subprocess
import sys

import pytest

from creditlab.cli import main


def _one_line_error(capsys, argv, code=2) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_unknown_experiment_suggests_the_closest_names(capsys):
    err = _one_line_error(capsys, ["run", "bp.mnits"])
    assert "unknown experiment 'bp.mnits'" in err and "bp.mnist" in err


def test_unknown_set_key_lists_the_valid_ones(capsys):
    err = _one_line_error(capsys, ["run", "bp.digits", "--set", "learning_rate=1"])
    assert "learning_rate" in err and "lr" in err and "epochs" in err


def test_wrong_value_type_and_unknown_scale(capsys):
    assert "expected an integer" in _one_line_error(
        capsys, ["run", "bp.digits", "--set", "epochs=many"]
    )
    assert "unknown scale 'huge'" in _one_line_error(
        capsys, ["run", "bp.digits", "--scale", "huge"]
    )


def test_usage_errors_are_one_line_too(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "bp.digits", "--seed", "x"])
    assert exit_.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_cuda_without_a_gpu_is_a_clear_error(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "no CUDA device" in _one_line_error(capsys, ["run", "bp.digits", "--device", "cuda"])


def test_list_shows_every_experiment_and_one_experiments_settings(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("bp.digits", "bp.mnist1d", "bp.mnist"):
        assert name in out
    assert main(["list", "bp.mnist"]) == 0
    out = capsys.readouterr().out
    assert "lr (float) = 0.001" in out and "smoke:" in out and "0.9847" in out


def test_run_prints_metrics_and_report_embeds_them(capsys, tmp_path):
    out = tmp_path / "runs" / "one"
    assert main(["run", "bp.digits", "--scale", "smoke", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "test_accuracy" in printed and str(out) in printed
    table = tmp_path / "table.md"
    assert main(["report", str(tmp_path / "runs"), "--markdown", str(table)]) == 0
    assert "| bp.digits | smoke |" in table.read_text()
    page = (tmp_path / "runs" / "report.html").read_text()
    assert "bp.digits" in page and "data:image/png;base64" in page
    assert "no runs folder" in _one_line_error(capsys, ["report", str(tmp_path / "nowhere")])


def test_demo_runs_the_suite_and_writes_the_report(capsys, tmp_path):
    runs = tmp_path / "runs"
    assert main(["demo", "--scale", "smoke", "--runs", str(runs), "--only", "bp.digits"]) == 0
    assert (runs / "report.html").exists() and list((runs / "bp.digits").iterdir())


def test_entry_point_runs_as_a_module():
    proc = subprocess.run(
        [sys.executable, "-m", "creditlab", "list"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "bp.mnist" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "creditlab", "run", "nope"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
