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


def _demo_with_mnist_mirror(monkeypatch, tmp_path, mirror_url, capsys):
    """Run the smoke demo of bp.digits and bp.mnist with no MNIST anywhere and MNIST's public
    source replaced by ``mirror_url``; return (exit code, printed lines)."""
    import dataclasses

    from creditlab.data import DATASETS

    empty = tmp_path / "fresh"
    empty.mkdir()
    monkeypatch.setenv("CREDITLAB_DATA", str(empty))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    spec = dataclasses.replace(DATASETS["mnist"], mirrors=(mirror_url,))
    monkeypatch.setitem(DATASETS, "mnist", spec)
    argv = ["demo", "--scale", "smoke", "--runs", str(tmp_path / "runs")]
    code = main([*argv, "--only", "bp.digits", "--only", "bp.mnist"])
    return code, capsys.readouterr().out.splitlines()


def test_demo_fetches_missing_data_first(capsys, tmp_path, monkeypatch, fake_data, http_mirror):
    served, url = http_mirror
    for path in fake_data("mnist", mnist_train=True).iterdir():  # checksums patched in
        path.rename(served / path.name)
    code, lines = _demo_with_mnist_mirror(monkeypatch, tmp_path, url, capsys)
    assert code == 0, lines
    assert lines[0].startswith("mnist: not found in") and "fetching" in lines[0]
    assert sum("fetched from http://127.0.0.1" in line for line in lines) == 4
    assert (tmp_path / "fresh" / "mnist" / "t10k-images-idx3-ubyte.gz").is_file()
    assert list((tmp_path / "runs" / "bp.mnist").iterdir()) and "skipped" not in "".join(lines)


def test_demo_offline_says_once_what_it_skips_and_runs_the_rest(capsys, tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nothing listens on: offline
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/"
    code, lines = _demo_with_mnist_mirror(monkeypatch, tmp_path, url, capsys)
    assert code == 0, lines
    skips = [line for line in lines if line.startswith("skipping")]
    assert len(skips) == 1 and lines.index(skips[0]) == 1  # once, at the top
    assert "skipping bp.mnist: data set 'mnist' is not here" in skips[0]
    assert "could not fetch" in skips[0] and "--mirror" in skips[0]
    assert any(line.startswith("[1/1] bp.digits") for line in lines)
    assert lines[-2] == "1 experiment(s) skipped for missing data: bp.mnist"
    assert lines[-1].startswith("the page: file://") and lines[-1].endswith("report.html")
    assert not (tmp_path / "runs" / "bp.mnist").exists()


def test_cuda_is_refused_in_one_line_where_it_cannot_be_honoured(capsys):
    """`creditlab run sparse.identity --device cuda` on this machine: exit 2, one line."""
    err = _one_line_error(capsys, ["run", "sparse.identity", "--device", "cuda"])
    assert "cuda" in err.lower()


def test_demo_line_leaves_out_paper_figures_the_run_did_not_measure():
    """A paper figure of another data set (measured None) crashed `creditlab demo` once."""
    from creditlab.cli import demo_line

    result = {
        "metrics": {"test_accuracy": 0.91234, "epochs": 3.0},
        "paper": {"reference_accuracy": {"value": 0.98, "source": "Table 2"}},
    }
    assert demo_line(result, 12.4) == "  test_accuracy=0.9123  (12 s)"
    result["paper"]["test_accuracy"] = {"value": 0.95, "source": "Table 1"}
    assert demo_line(result, 1) == "  test_accuracy=0.9123  (1 s)"


# --- the CLI's traps, closed (issue 31) ------------------------------------------------------


def test_a_count_of_seeds_cannot_mean_a_hundred_runs_by_accident(capsys, tmp_path):
    err = _one_line_error(capsys, ["run", "bp.digits", "--seeds", "100", "--runs", str(tmp_path)])
    assert "--seed 100" in err and "0-99" in err
    assert not any(tmp_path.iterdir())
    err = _one_line_error(capsys, ["tune", "bp.digits", "--grid", "lr=1", "--metric", "x",
                                   "--seeds", "0-99"])  # fmt: skip
    assert "tuning seeds must be >= 100" in err and len(err) < 200


def test_sizes_and_counts_are_checked_and_errors_name_the_flag_typed(capsys):
    assert "epochs=-1: must not be negative" in _one_line_error(
        capsys, ["run", "bp.digits", "--set", "epochs=-1"]
    )
    assert "epochs=0: must be positive" in _one_line_error(
        capsys, ["run", "bp.digits", "--set", "epochs=0"]
    )
    assert "hidden=64,0: must be positive" in _one_line_error(
        capsys, ["run", "bp.digits", "--set", "hidden=64,0"]
    )
    err = _one_line_error(capsys, ["tune", "bp.digits", "--grid", "lr=abc", "--metric", "x"])
    assert err.startswith("creditlab: error: --grid lr=abc")


def test_only_takes_names_with_spaces_or_commas(capsys, tmp_path, monkeypatch):
    from creditlab import cli

    seen = []
    monkeypatch.setattr(cli, "_fetch_missing_data", lambda needed: seen.extend(needed) or {})
    import creditlab.runner as runner

    monkeypatch.setattr(runner, "run", lambda exp, **kw: (_ for _ in ()).throw(
        cli.UserError("stopped here")))  # fmt: skip
    monkeypatch.setattr("creditlab.report.build_report", lambda runs, out: out)
    cli.main(["demo", "--only", "bp.digits,bp.mnist1d", "autodiff.mnist", "--runs", str(tmp_path)])
    assert seen == ["bp.digits", "bp.mnist1d", "autodiff.mnist"]


def test_help_shows_the_defaults():
    from creditlab.cli import build_parser

    text = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    assert "(default: quick)" in text and "(default: runs)" in text


def test_a_run_that_fails_before_its_first_step_leaves_no_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CREDITLAB_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    out = tmp_path / "runs" / "r"
    assert main(["run", "bp.mnist", "--scale", "smoke", "--out", str(out)]) == 2
    assert not out.exists()


def test_a_closed_pipe_is_no_traceback():
    proc = subprocess.run(
        f"{sys.executable} -m creditlab list | head -1", shell=True, capture_output=True, text=True
    )
    assert proc.stdout.startswith("experiment") and proc.stderr == "", proc.stderr


def test_progress_is_a_line_a_minute_when_not_on_a_terminal(capsys, monkeypatch):
    from creditlab.runner import LineProgress

    clock = iter([0.0, 30.0, 61.0, 62.0, 130.0, 131.0])  # start, 4 updates, close
    monkeypatch.setattr("creditlab.runner.time.monotonic", lambda: next(clock))
    bar = LineProgress(total=4, desc="bp.mnist")  # started at 0
    bar.update()  # 30 s: quiet
    bar.set_postfix({"loss": "0.5"})
    bar.update()  # 61 s: a line
    bar.update()  # 62 s: quiet (last line 1 s ago)
    bar.update()  # 130 s: a line
    bar.close()  # the end: a line
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "bp.mnist: 2/4 (50%), 1.0 min, ~1.0 min left, loss=0.5"
    assert lines[1] == "bp.mnist: 4/4 (100%), 2.2 min, loss=0.5" and len(lines) == 3


def test_list_and_a_typo_answer_without_importing_torch(tmp_path):
    """`creditlab list` (its rows kept while the sources are unchanged) and a mistyped command
    never import torch, the seconds-long import (imports deferred to where they are needed)."""
    probe = (
        "import sys, contextlib, io, json, pathlib\n"
        "from creditlab import cli\n"
        f"cli.CATALOGUE_FILE = pathlib.Path({str(tmp_path / 'rows.json')!r})\n"
        "row = ['kept.row', 'smoke', '', 'a row kept from an earlier listing']\n"
        "rows = {'stamp': cli.source_stamp(), 'rows': [row]}\n"
        "cli.CATALOGUE_FILE.write_text(json.dumps(rows))\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    cli.main(['list'])\n"
        "assert 'kept.row' in out.getvalue()\n"
        "try:\n"
        "    cli.main(['lsit'])\n"
        "except SystemExit as stop:\n"
        "    assert stop.code == 2\n"
        "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]" and "invalid choice: 'lsit'" in proc.stderr


def test_the_data_root_is_remembered_for_the_environment(capsys, tmp_path, monkeypatch):
    from creditlab.data import store

    monkeypatch.setattr(store, "REMEMBERED_FILE", tmp_path / "remembered")
    monkeypatch.delenv("CREDITLAB_DATA", raising=False)
    data = tmp_path / "data"
    data.mkdir()
    assert store.data_roots()[0] != data
    assert main(["data", "remember", str(data)]) == 0
    assert (tmp_path / "remembered").read_text().strip() == str(data)
    assert store.data_roots()[0] == data  # found without $CREDITLAB_DATA
    monkeypatch.setenv("CREDITLAB_DATA", str(tmp_path))
    assert store.data_roots()[0] == tmp_path and data not in store.data_roots()  # the env wins
    assert "not a folder" in _one_line_error(capsys, ["data", "remember", str(tmp_path / "x")])


def test_a_failed_stop_is_reported_and_the_page_still_written(capsys, tmp_path, monkeypatch):
    from creditlab import cli, runner

    monkeypatch.setattr(cli, "_fetch_missing_data", lambda needed: {})
    monkeypatch.setattr(runner, "run", lambda exp, **kw: (_ for _ in ()).throw(
        RuntimeError("boom")))  # fmt: skip
    code = cli.main(["demo", "--only", "bp.digits,bp.mnist", "--runs", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1 and lines.count("  failed: RuntimeError: boom") == 2
    assert "2 failed: bp.digits, bp.mnist (their folders say why)" in lines
    assert lines[-1] == f"the page: {(tmp_path / 'report.html').resolve().as_uri()}"
    assert (tmp_path / "report.html").is_file()
