"""The report: plots from metrics.jsonl, the self-contained HTML page and the Markdown table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from creditlab.plots import line_plot, plot_learning_curves
from creditlab.report import build_report, markdown_table
from creditlab.rundir import read_metrics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HOSTILE = "<script>alert('x')</script> & co"


def _write_metrics(path: Path, steps: int = 30, truncated: bool = False) -> None:
    lines = [json.dumps({"step": s, "train_loss": 2.0 * 0.8**s}) for s in range(steps)]
    lines += [
        json.dumps({"step": s, "epoch": s // 10, "test_accuracy": 0.5 + 0.01 * s, "tag": "x"})
        for s in range(0, steps, 10)
    ]
    lines.append(json.dumps({"step": steps, "samples_per_second": 1234.5}))
    text = "\n".join(lines) + "\n"
    path.write_text(text + ('{"step": 99, "train_lo' if truncated else ""))


def _make_run(
    folder: Path,
    experiment: str,
    *,
    seed: int = 0,
    finished: str | None,
    metrics: dict | None = None,
    paper: dict | None = None,
    notes: list[str] | None = None,
) -> Path:
    """A run folder as the runner writes it; ``finished=None`` leaves it incomplete."""
    folder.mkdir(parents=True)
    config = {"lr": 0.1, "hidden": [256, 256]}
    (folder / "config.json").write_text(
        json.dumps(
            {
                "experiment": experiment,
                "scale": "smoke",
                "seed": seed,
                "device": "cpu",
                "config": config,
            }
        )
    )
    _write_metrics(folder / "metrics.jsonl")
    if finished is None:
        (folder / "checkpoint.pt").write_bytes(b"fake")
        return folder
    (folder / "plots").mkdir()
    line_plot(folder / "plots" / "own.png", {"sim": ([0, 1], [0, 1])}, xlabel="x", ylabel="y")
    result = {
        "experiment": experiment, "scale": "smoke", "seed": seed, "config": config,
        "metrics": metrics or {}, "paper": paper or {}, "wall_seconds": 12.345,
        "peak_memory_mb": 321.7, "versions": {"python": "3.11", "torch": "2.13"},
        "git_commit": "abc1234", "finished_utc": finished, "notes": notes or [],
        "data": {"name": "digits", "n_train": 1437}, "title": "MLP on digits",
        "paper_title": "A paper",
    }  # fmt: skip
    (folder / "result.json").write_text(json.dumps(result))
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report") / "runs"
    _make_run(
        root / "bp.mnist" / "20260101T000000Z-s0", "bp.mnist",
        finished="2026-01-01T00:00:00+00:00", metrics={"test_accuracy": 0.8123},
        paper={"test_accuracy": {"value": 0.9811, "source": "Table 1"}},
    )  # fmt: skip
    _make_run(
        root / "bp.mnist" / "20260102T000000Z-s1", "bp.mnist", seed=1,
        finished="2026-01-02T00:00:00+00:00", metrics={"test_accuracy": 0.9612, "test_loss": 0.13},
        paper={"test_accuracy": {"value": 0.9811, "source": "Table 1 of the paper"}},
        notes=[HOSTILE],
    )  # fmt: skip
    _make_run(
        root / "relu.dying" / "20260103T000000Z-s0", "relu.dying",
        finished="2026-01-03T00:00:00Z", metrics={"dead_fraction": 0.4321},
    )  # fmt: skip
    _make_run(root / "dendritic.mnist" / "20260104T000000Z-s0", "dendritic.mnist", finished=None)
    _make_run(
        root / "my" / "own" / "layout", "sparse.sort", finished="2026-01-05T00:00:00Z",
        metrics={"test_accuracy": 0.7777},
        paper={"test_accuracy": {"value": 0.75, "source": "Fig 3"}},
    )  # fmt: skip
    return root


@pytest.fixture(scope="module")
def page(runs: Path) -> str:
    """The report on ``runs``, built once for the tests that read it."""
    return build_report(runs, runs.parent / "out" / "report.html").read_text()


def test_report_shows_latest_run_against_paper(page: str) -> None:
    assert "0.9612" in page and "0.8123" not in page  # latest run of bp.mnist only
    assert "0.9811" in page and "Table 1 of the paper" in page
    assert "-0.0199" in page and "falls short of paper" in page  # below the paper, and says so
    assert "matches or beats paper" in page  # sparse.sort: 0.7777 vs 0.75
    assert "0.4321" in page and "sparse.sort" in page  # the custom-layout run is found
    assert "12.3 s" in page and "322 MB" in page
    assert "latest of 2 finished runs" in page
    # 3 experiment sections x their own plot (the generic learning curves are left out)
    assert page.count("data:image/png;base64,") == 3
    assert "Figure 1: own (bp.mnist, smoke scale, seed(s) 1)." in page  # a caption, no file name


def test_report_is_self_contained_and_escaped(page: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)""", page, re.I)
    assert "url(" not in page and "@import" not in page and "http" not in page
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in page


def test_incomplete_run_is_listed(page: str) -> None:
    incomplete = page.split("<h2>Incomplete runs</h2>", 1)[1]
    assert "dendritic.mnist" in incomplete and "20260104T000000Z-s0" in incomplete
    assert 'id="exp-dendritic.mnist"' not in page  # no section: it never finished


def test_empty_runs_dir_says_so(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    page = build_report(tmp_path / "runs", tmp_path / "report.html").read_text()
    assert "No runs found" in page and "<table" not in page
    missing = build_report(tmp_path / "nowhere", tmp_path / "r2.html").read_text()
    assert "No runs found" in missing
    assert "No finished runs" in markdown_table(tmp_path / "runs")


def _runs_rows(markdown: str) -> list[str]:
    """The rows of the Markdown's table of runs (its last section)."""
    runs = markdown.split("## Runs", 1)[1]
    return [line for line in runs.splitlines() if line.startswith("| ")][1:]


def test_markdown_table_has_a_row_per_experiment(runs: Path) -> None:
    table = markdown_table(runs)
    rows = _runs_rows(table)
    assert [row.split(" | ")[0] for row in rows] == ["| bp.mnist", "| relu.dying", "| sparse.sort"]
    assert "0.9612" in table and "0.8123" not in table and "Table 1 of the paper" in table
    assert "smoke" in table and "CPUs" in table
    assert all(row.count(" | ") == rows[0].count(" | ") for row in rows)


def test_read_metrics_skips_truncated_last_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    _write_metrics(path, steps=5, truncated=True)
    records = read_metrics(path)
    assert len(records) == 5 + 1 + 1 and records[-1] == {"step": 5, "samples_per_second": 1234.5}


def test_learning_curves_are_pngs(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    _write_metrics(path, truncated=True)
    written = plot_learning_curves(path, tmp_path / "plots", title="demo")
    assert written and all(p.read_bytes().startswith(PNG_MAGIC) for p in written)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert plot_learning_curves(empty, tmp_path / "none") == []
    assert not (tmp_path / "none").exists()


def test_line_plot_with_reference_line(tmp_path: Path) -> None:
    out = line_plot(
        tmp_path / "sub" / "theory.png",
        {"theory": ([1, 2, 3], [1.0, 0.1, 0.01]), "simulation": ([1, 2, 3], [0.9, 0.12, 0.02])},
        xlabel="depth", ylabel="P(dead)", title="dying", logy=True, hlines={"paper": 0.05},
    )  # fmt: skip
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_paper_figure_of_another_protocol_is_not_compared(tmp_path: Path) -> None:
    """A run on 8,000 MNIST images is 'not comparable' with a figure from the 60k protocol;
    a figure from the same protocol gets its verdict; the data column names the protocol."""
    paper = {"test_accuracy": {"value": 0.98, "source": "Table 1", "protocol": "mnist60k"}}

    def run_on(protocol: str, name: str) -> Path:
        folder = _make_run(
            tmp_path / "runs" / name / "20260101T000000Z-s0", name, finished="2026-01-01T00:00",
            metrics={"test_accuracy": 0.95}, paper=paper,
        )  # fmt: skip
        result = json.loads((folder / "result.json").read_text())
        result["data"] = {"name": "mnist", "protocol": protocol, "n_train": 8000}
        (folder / "result.json").write_text(json.dumps(result))
        return folder

    run_on("mnist10k", "a.small")
    run_on("mnist60k", "b.full")
    table = markdown_table(tmp_path / "runs")
    small, full = _runs_rows(table)
    assert "mnist10k (8,000 train)" in small
    assert "not comparable (mnist10k here, mnist60k in the paper)" in small
    assert "falls short" not in small and "-0.0300" not in small
    assert "falls short of paper" in full and "-0.0300" in full
    page = build_report(tmp_path / "runs", tmp_path / "report.html").read_text()
    assert "not comparable (mnist10k here, mnist60k in the paper)" in page


def test_one_experiment_on_two_protocols_gets_a_row_each(tmp_path: Path) -> None:
    for protocol, day, accuracy in (("mnist10k", "01", 0.95), ("fashion_mnist", "02", 0.88)):
        folder = _make_run(
            tmp_path / "runs" / "bp.mnist" / f"202601{day}T000000Z-s0", "bp.mnist",
            finished=f"2026-01-{day}T00:00", metrics={"test_accuracy": accuracy},
        )  # fmt: skip
        result = json.loads((folder / "result.json").read_text())
        result["data"] = {"name": protocol, "protocol": protocol, "n_train": 100}
        (folder / "result.json").write_text(json.dumps(result))
    rows = _runs_rows(markdown_table(tmp_path / "runs"))
    assert [row.split(" | ")[0] for row in rows] == [
        "| bp.mnist [fashion_mnist]",
        "| bp.mnist [mnist10k]",
    ]
    assert "0.8800" in rows[0] and "0.9500" in rows[1]


# --- which run is shown, and the claims' verdicts (issue 31) ----------------------------------


def _aggregate(folder: Path, experiment: str, finished: str, metrics: dict, **extra) -> Path:
    """A multi-seed folder as creditlab.seeds writes it: seeds.json, aggregate.json."""
    folder.mkdir(parents=True)
    seeds = len(next(iter(metrics.values())))
    plan = {"experiment": experiment, "scale": "quick", "seeds": list(range(seeds))}
    (folder / "seeds.json").write_text(json.dumps(plan))
    summary = {
        name: {"mean": sum(v) / len(v), "std": 0.01, "min": min(v), "max": max(v),
               "ci95": [min(v), max(v)], "values": v, "n": len(v)}
        for name, v in metrics.items()
    }  # fmt: skip
    result = {"experiment": experiment, "scale": "quick", "seeds": plan["seeds"],
              "metrics": summary, "paper": {}, "finished_utc": finished, "wall_seconds": 1.0,
              "peak_memory_mb": 1.0, **extra}  # fmt: skip
    (folder / "aggregate.json").write_text(json.dumps(result))
    return folder


def test_an_older_aggregate_is_shown_before_a_newer_single_run(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    _aggregate(root / "bp.digits" / "seeds0-1", "bp.digits", "2026-01-01T00:00:00Z",
               {"test_accuracy": [0.91, 0.93]})  # fmt: skip
    _make_run(root / "bp.digits" / "single", "bp.digits", finished="2026-02-01T00:00:00Z",
              metrics={"test_accuracy": 0.5})  # fmt: skip
    (row,) = _runs_rows(markdown_table(root))
    assert "0-1 (2 seeds)" in row and "0.9200" in row and "0.5000" not in row


def _claim_row(markdown: str, text: str) -> str:
    return next(line for line in markdown.splitlines() if text in line and line.startswith("|"))


def test_relative_difference_keeps_its_sign_with_a_negative_paper_value(tmp_path: Path) -> None:
    """A return of -98 against the paper's -100 is 2 more: +2, +2.0% (not -2.0%)."""
    _make_run(tmp_path / "runs" / "coagent.acrobot" / "r", "coagent.acrobot",
              finished="2026-01-01T00:00:00Z", metrics={"eval_return": -98.0},
              paper={"eval_return": {"value": -100.0, "source": "Fig. 4"}})  # fmt: skip
    markdown = markdown_table(tmp_path / "runs")
    row = _claim_row(markdown, "The paper reports eval_return")
    paper, measured = -100.0, -98.0
    relative = (measured - paper) / abs(paper)  # the independent computation
    assert f"| +2 ({relative:+.1%}) | reproduced |" in row and relative > 0


def test_a_run_with_a_protocol_gets_a_verdict_against_a_figure_naming_none(tmp_path: Path) -> None:
    paper = {"test_accuracy": {"value": 0.68, "source": "MNIST-1D table"}}  # no protocol
    folder = _make_run(tmp_path / "runs" / "bp.mnist1d" / "r", "bp.mnist1d",
                       finished="2026-01-01T00:00:00Z", metrics={"test_accuracy": 0.62},
                       paper=paper)  # fmt: skip
    result = json.loads((folder / "result.json").read_text())
    result["data"] = {"name": "mnist1d", "protocol": "mnist1d", "n_train": 4000}
    result["scale"] = "paper"  # at the paper's budget a shortfall counts
    (folder / "result.json").write_text(json.dumps(result))
    row = _claim_row(markdown_table(tmp_path / "runs"), "bp.mnist1d: An MLP")
    assert "| not reproduced: 0.06 short |" in row and "not comparable" not in row


def test_a_claim_failing_at_smoke_scale_is_not_comparable_and_at_quick_not_reproduced(
    tmp_path: Path,
) -> None:
    """A paper's relation (dvae: RBM posterior's NLL below the factorial one's) failing in a
    seconds-long smoke run says nothing of the claim; at quick scale it is a verdict."""
    folder = _make_run(tmp_path / "runs" / "dvae.bmnist" / "r", "dvae.bmnist",
                       finished="2026-01-01T00:00:00Z",
                       metrics={"nll_gain_over_factorial": -0.7})  # fmt: skip
    row = _claim_row(markdown_table(tmp_path / "runs"), "lower test NLL than a factorial")
    assert "| not comparable: budget: smoke scale" in row
    result = json.loads((folder / "result.json").read_text())
    (folder / "result.json").write_text(json.dumps({**result, "scale": "quick"}))
    row = _claim_row(markdown_table(tmp_path / "runs"), "lower test NLL than a factorial")
    assert "| not reproduced |" in row


def test_a_goal_met_on_some_seeds_is_partly_met(tmp_path: Path) -> None:
    metrics = {"index_accuracy_identity": [0.99, 0.94, 0.97],
               "index_accuracy_permutation": [0.5, 0.6, 0.7]}  # fmt: skip
    _aggregate(tmp_path / "runs" / "sparse.identity" / "s", "sparse.identity",
               "2026-01-01T00:00:00Z", metrics)  # fmt: skip
    markdown = markdown_table(tmp_path / "runs")
    identity = _claim_row(markdown, "learns a 32x32 identity")
    assert "| partly met: holds on 2 of 3 seeds |" in identity
    assert "| not met: holds on 0 of 3 seeds |" in _claim_row(markdown, "random permutation")
    assert "| not run here |" in _claim_row(markdown, "coagent.cartpole")


def test_sweeps_over_settings_are_not_reported_but_a_sweep_of_the_defaults_is(tmp_path):
    """find_runs: a grid sweep explores settings (left out, as tuning folders are); a sweep with
    no grid is seeds of the defaults, on a cluster, and is reported."""
    from creditlab.rundir import SWEEP_FILE, find_runs, write_json

    for sweep, grid in (("grid", [{"lr": "0.1"}, {"lr": "0.3"}]), ("defaults", [{}])):
        run = tmp_path / sweep / "point" / "s0"
        run.mkdir(parents=True)
        write_json(tmp_path / sweep / SWEEP_FILE, {"grid": grid})
        write_json(run / "result.json", {"experiment": "bp.digits", "seed": 0})
    reported = {run.folder.relative_to(tmp_path).parts[0] for run in find_runs(tmp_path)}
    assert reported == {"defaults"}
