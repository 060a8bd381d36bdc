"""The contract every registered experiment meets, as named checks generated from the registry
(scikit-learn's ``parametrize_with_checks`` habit): ``test_contract[bp.digits-resumes_exactly]``.

For each experiment, two smoke runs with seed 1 are made once per session (``runs_of`` in
conftest.py; a method's own learning checks may read them too): an unbroken one, and one
stopped (as Ctrl-C would) at the middle one of its step boundaries and resumed from its
checkpoint. The checks read them: the run folder and result.json schema,
finite metrics, the resumed run equal to the unbroken one (metrics and metric stream: so the
same seed gives the same metrics), ``--device`` honoured or refused with one line, and what a
user reads of it: ``creditlab run``'s lines, ``run --seeds``'s table, ``demo``'s line and the
report's row and section.
"""

from __future__ import annotations

import json
import math

import pytest
from conftest import Runs, optional_data_sets, reproducible

from creditlab import cli, registry, rundir, seeds
from creditlab.report import build_report, markdown_table

EXPERIMENTS = registry.load_all()


# ----------------------------------------------------------------------------- the checks


def check_result_schema(r: Runs, capsys) -> None:
    """result.json holds exactly the schema's keys, and config.json the config keys."""
    result = rundir.read_json(r.unbroken_dir / rundir.RESULT_FILE)
    assert tuple(result) == rundir.RESULT_KEYS
    assert result == json.loads(json.dumps(r.unbroken))
    assert (result["experiment"], result["scale"], result["seed"]) == (r.exp.name, "smoke", 1)
    assert tuple(result["versions"]) == rundir.VERSION_KEYS
    assert result["title"] and result["wall_seconds"] >= 0 and result["peak_memory_mb"] > 0
    for figure in result["paper"].values():
        assert {"value", "source"} <= set(figure) <= set(rundir.PAPER_FIGURE_KEYS)
        assert isinstance(figure["value"], float | int)
    config = rundir.read_json(r.unbroken_dir / rundir.CONFIG_FILE)
    assert tuple(config) == rundir.CONFIG_KEYS and config["config"] == result["config"]


def check_run_folder(r: Runs, capsys) -> None:
    """metrics.jsonl has integer steps; plots were drawn; no checkpoint is left behind."""
    records = rundir.read_metrics(r.unbroken_dir / rundir.METRICS_FILE)
    assert records and all(isinstance(row["step"], int) for row in records)
    assert list((r.unbroken_dir / rundir.PLOTS_DIR).glob("*.png"))
    assert not (r.unbroken_dir / rundir.CHECKPOINT_FILE).exists()


def check_metrics_finite(r: Runs, capsys) -> None:
    """Every metric is a finite number; an accuracy lies in [0, 1]."""
    metrics = r.unbroken["metrics"]
    assert metrics and all(math.isfinite(v) for v in metrics.values())
    for name, value in metrics.items():
        if name.endswith("_accuracy"):
            assert 0.0 <= value <= 1.0, name


def check_resumes_exactly(r: Runs, capsys) -> None:
    """Stopped at its middle step boundary and resumed: the same metrics and the same metric
    stream as the unbroken run (so the same seed also gives the same metrics)."""
    assert r.boundaries > 0, "no step boundary: the run cannot be stopped and resumed"
    assert r.interrupted, f"asked to stop at boundary {r.stop_at} of {r.boundaries}; it did not"
    assert not (r.cut_dir / rundir.CHECKPOINT_FILE).exists()
    assert reproducible(r.resumed["metrics"]) == reproducible(r.unbroken["metrics"])
    cut = (r.cut_dir / rundir.METRICS_FILE).read_text()
    assert cut == (r.unbroken_dir / rundir.METRICS_FILE).read_text()


def check_device(r: Runs, capsys) -> None:
    """``--device cuda``: honoured where declared and present, else one line and exit 2."""
    import torch

    argv = ["run", r.exp.name, "--scale", "smoke", "--device", "cuda", "--out"]
    argv.append(str(r.root / "cuda"))
    if "cuda" in r.exp.devices and torch.cuda.is_available():
        assert cli.main(argv) == 0
        result = rundir.read_json(r.root / "cuda" / rundir.RESULT_FILE)
        assert result["device"] == "cuda"
        return
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    expected = "no CUDA device" if "cuda" in r.exp.devices else "runs on CPU only"
    assert expected in err
    assert not (r.root / "cuda").exists()  # refused before any folder was made


def check_cli_run_output(r: Runs, capsys) -> None:
    """``creditlab run``: a line per measured metric, the paper figure beside it."""
    cli._print_result(r.unbroken, r.unbroken_dir)
    out = capsys.readouterr().out
    assert out.startswith(f"{r.exp.name} (smoke, seed 1)")
    for name in r.unbroken["metrics"]:
        assert f"  {name} " in out
    assert "wall_seconds" in out and "None" not in out and "nan" not in out


def check_cli_seeds_output(r: Runs, capsys) -> None:
    """``creditlab run --seeds``: the aggregate's table (two copies of the run here)."""
    twice = [r.unbroken, {**r.unbroken, "seed": 2}]
    cli._print_aggregate(json.loads(json.dumps(seeds.aggregate(twice))), r.root)
    out = capsys.readouterr().out
    assert f"{r.exp.name} (smoke, 2 seeds [1, 2])" in out
    for name in r.unbroken["metrics"]:
        assert f"  {name} " in out
    assert "None" not in out


def check_demo_line(r: Runs, capsys) -> None:
    """``creditlab demo``: the headline line names its (at most three) measured metrics only."""
    line = cli.demo_line(r.unbroken, 1.0)
    assert line and "None" not in line and "—" not in line
    for c in rundir.headline(r.unbroken)[:3]:
        assert c.measured is not None and c.metric in line


def check_report_row(r: Runs, capsys) -> None:
    """The report: its summary row (Markdown and HTML) and its section."""
    table = markdown_table(r.root / r.exp.name)
    row = next(line for line in table.splitlines() if line.startswith(f"| {r.exp.name} |"))
    assert "| smoke | 1 |" in row and "None" not in row
    page = build_report(r.root / r.exp.name, r.root / "report.html").read_text()
    assert f'id="exp-{r.exp.name}"' in page and "None" not in page


CHECKS = [
    check_result_schema,
    check_run_folder,
    check_metrics_finite,
    check_resumes_exactly,
    check_device,
    check_cli_run_output,
    check_cli_seeds_output,
    check_demo_line,
    check_report_row,
]


def _params():
    for name, exp in EXPERIMENTS.items():
        marks = (
            () if optional_data_sets(exp) else (pytest.mark.genuine_data(*exp.data_sets("smoke")),)
        )
        for check in CHECKS:
            yield pytest.param(name, check, id=f"{name}-{check.__name__[6:]}", marks=marks)


@pytest.mark.parametrize(("name", "check"), list(_params()))
def test_contract(name, check, runs_of, capsys):
    check(runs_of(name), capsys)
