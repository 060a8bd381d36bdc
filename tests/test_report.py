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
    assert "Latest of 2 finished runs" in page
    # 3 experiment sections x (learning curves + own plot)
    assert page.count("data:image/png;base64,") == 6


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


def test_markdown_table_has_a_row_per_experiment(runs: Path) -> None:
    table = markdown_table(runs)
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]
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
    small, full = [line for line in table.splitlines() if line.startswith("| ")][1:]
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
    rows = markdown_table(tmp_path / "runs").splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == [
        "| bp.mnist [fashion_mnist]",
        "| bp.mnist [mnist10k]",
    ]
    assert "0.8800" in rows[0] and "0.9500" in rows[1]
