"""The report: one self-contained HTML page, and the same summary as a Markdown table.

Both read run folders written by the runner (``config.json``, ``metrics.jsonl``, ``result.json``,
``plots/*.png``) found anywhere below ``runs_dir``. For each experiment the latest finished run
(by ``finished_utc``) is shown, with every metric the paper reports set beside the paper's value.
"""

from __future__ import annotations

import base64
import html
import json
import os
import platform
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from creditlab import __version__
from creditlab.plots import plot_learning_curves
from creditlab.rundir import (
    COMPARISON_HEADER,
    MEETS,
    METRICS_FILE,
    SHORT,
    Comparison,
    Run,
    comparisons,
    data_cell,
    find_runs,
    fmt,
    headline,
    is_number,
    latest_runs,
    read_metrics,
)

SUMMARY_HEADER = [
    "experiment",
    "scale",
    "seed",
    "data",
    *COMPARISON_HEADER,
    "wall time",
    "peak memory",
]


def _with_unit(value: object, spec: str, unit: str) -> str:
    return f"{value:{spec}} {unit}" if is_number(value) else "—"


def _wall_time(run: Run) -> str:
    return _with_unit(run.get("wall_seconds"), ".1f", "s")


def _peak_memory(run: Run) -> str:
    return _with_unit(run.get("peak_memory_mb"), ".0f", "MB")


def _machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"


def _relative(folder: Path, runs_dir: Path) -> str:
    try:
        return str(folder.resolve().relative_to(Path(runs_dir).resolve()))
    except ValueError:
        return str(folder)


# ----------------------------------------------------------------------------- Markdown


def markdown_table(runs_dir: Path) -> str:
    """The report's summary as a Markdown table: one row per experiment (its latest run).

    Cells with several headline metrics list them one per line (``<br>``). The machine column
    is the one recorded in the run's result.json (the machine building the table if absent).
    """
    latest = latest_runs(find_runs(runs_dir))
    if not latest:
        return f"No finished runs found under `{runs_dir}`.\n"
    header = [*SUMMARY_HEADER, "machine"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, (run, _) in latest.items():
        columns = zip(*(c.cells() for c in headline(run.result)), strict=True)
        metric_cells = ["<br>".join(column) for column in columns] or ["—"] * 6
        row = [
            name,
            str(run.get("scale", "—")),
            run.seeds,
            data_cell(run.result),
            *metric_cells,
            _wall_time(run),
            _peak_memory(run),
            str(run.get("machine") or _machine()),
        ]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- HTML

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 2rem auto; max-width: 1150px; padding: 0 1rem; color: #1d232b; line-height: 1.45; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.5rem; border-bottom: 2px solid #dde3ea; }
h3 { margin: 1.4rem 0 .4rem; font-size: 1.05rem; color: #3a4654; }
.meta, .muted { color: #5b6776; font-size: .9rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #dde3ea; padding: .3rem .6rem; text-align: left; vertical-align: top; }
th { background: #f1f4f8; } tr:nth-child(even) td { background: #fafbfc; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.short { background: #fde4e1 !important; color: #9b1c12; font-weight: 600; }
td.meets { color: #1b6b34; }
code { background: #f1f4f8; padding: 0 .25rem; border-radius: 3px; }
img { max-width: 100%; border: 1px solid #e4e8ee; margin: .3rem 0; }
figure { margin: .5rem 0 1rem; } figcaption { color: #5b6776; font-size: .85rem; }
details summary { cursor: pointer; color: #3a4654; font-weight: 600; margin: .8rem 0 .3rem; }
.notes li { margin: .2rem 0; }
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[str]]) -> str:
    """A table from pre-rendered ``<td>`` cells (each row a list of complete cells)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(f"<tr>{''.join(row)}</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(text: object, css: str = "", rowspan: int = 1) -> str:
    attrs = (f' class="{css}"' if css else "") + (f' rowspan="{rowspan}"' if rowspan > 1 else "")
    return f"<td{attrs}>{_e(text)}</td>"


def _comparison_tds(c: Comparison) -> list[str]:
    metric, measured, paper, diff, verdict, source = c.cells()
    mark = {SHORT: "short", MEETS: "meets"}.get(verdict, "muted" if verdict else "")
    return [
        _td(metric),
        _td(measured, "num"),
        _td(paper, "num"),
        _td(diff, f"num {mark}".strip()),
        _td(verdict, mark),
        _td(source),
    ]


def _kv_table(mapping: dict) -> str:
    rows = [[_td(k), _td(v if isinstance(v, str) else json.dumps(v))] for k, v in mapping.items()]
    return _table(["field", "value"], rows)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _anchor(name: str) -> str:
    return "exp-" + re.sub(r"[^A-Za-z0-9_.-]", "-", name)


def _summary(latest: dict[str, tuple[Run, int]]) -> str:
    rows = []
    for name, (run, _) in latest.items():
        metrics = headline(run.result) or [None]
        span = len(metrics)
        for i, c in enumerate(metrics):
            row = _comparison_tds(c) if c else [_td("—")] * len(COMPARISON_HEADER)
            if i == 0:
                link = f'<td rowspan="{span}"><a href="#{_anchor(name)}">{_e(name)}</a></td>'
                row = [
                    link,
                    _td(run.get("scale", "—"), rowspan=span),
                    _td(run.seeds, "num", span),
                    _td(data_cell(run.result), rowspan=span),
                    *row,
                    _td(_wall_time(run), "num", span),
                    _td(_peak_memory(run), "num", span),
                ]
            rows.append(row)
    return "<h2>Summary</h2>" + _table(SUMMARY_HEADER, rows)


def _section(name: str, run: Run, n_finished: int, runs_dir: Path, scratch: Path) -> str:
    r = run.result
    versions = r.get("versions") or {}
    meta = [
        f"scale <b>{_e(r.get('scale', '—'))}</b>",
        f"seed {_e(run.seeds)}",
        f"device {_e(run.config.get('device', '—'))}",
        f"finished {_e(r.get('finished_utc', '—'))}",
        f"wall time {_e(_wall_time(run))}",
        f"peak memory {_e(_peak_memory(run))}",
        ", ".join(f"{_e(k)} {_e(v)}" for k, v in versions.items()),
        f"commit <code>{_e(r.get('git_commit') or '—')}</code>",
        f"folder <code>{_e(_relative(run.folder, runs_dir))}</code>",
    ]
    parts = [f'<section id="{_anchor(name)}"><h2>{_e(name)}</h2>']
    if r.get("title"):
        parts.append(f"<p>{_e(r['title'])}</p>")
    if r.get("paper_title"):
        parts.append(f"<p>Paper: <i>{_e(r['paper_title'])}</i></p>")
    parts.append(f'<p class="meta">{" · ".join(m for m in meta if m)}</p>')
    if n_finished > 1:
        parts.append(f'<p class="muted">Latest of {n_finished} finished runs.</p>')
    data = r.get("data")
    if data:
        parts.append("<h3>Data</h3>")
        parts.append(_kv_table(data) if isinstance(data, dict) else f"<p>{_e(data)}</p>")
    if isinstance(r.get("config"), dict):
        parts.append(f"<details><summary>Config</summary>{_kv_table(r['config'])}</details>")
    parts.append("<h3>Metrics</h3>")
    parts.append(_table(COMPARISON_HEADER, [_comparison_tds(c) for c in comparisons(r)]))
    if run.is_aggregate:
        parts.append("<h3>Over seeds</h3>" + _seed_table(r["metrics"]))
    if r.get("notes"):
        items = "".join(f"<li>{_e(note)}</li>" for note in r["notes"])
        parts.append(f'<h3>Notes</h3><ul class="notes">{items}</ul>')
    curves = plot_learning_curves(run.metrics_files, scratch / _anchor(name), name)
    if curves:
        parts.append("<h3>Learning curves</h3>")
        parts += [_img(p, "learning curves") for p in curves]
    drawn = {p.name for p in curves}  # the runner saved the same curves in plots/
    figures = [p for p in sorted((run.folder / "plots").glob("*.png")) if p.name not in drawn]
    if figures:
        parts.append("<h3>Figures</h3>")
        parts += [
            f"<figure>{_img(p, p.stem)}<figcaption>{_e(p.name)}</figcaption></figure>"
            for p in figures
        ]
    return "".join(parts) + "</section>"


def _seed_table(metrics: dict) -> str:
    """Per metric of an aggregate: mean, std, min, max, 95% bootstrap interval, the values."""
    header = ["metric", "mean", "std", "min", "max", "95% interval", "per seed"]
    rows = []
    for name, stats in metrics.items():
        low, high = stats["ci95"]
        cells = [fmt(name, stats[k]) for k in ("mean", "std", "min", "max")]
        rows.append(
            [
                _td(name),
                *(_td(c, "num") for c in cells),
                _td(f"[{fmt(name, low)}, {fmt(name, high)}]", "num"),
                _td(", ".join(fmt(name, v) for v in stats["values"])),
            ]
        )
    return _table(header, rows)


def _incomplete(runs: list[Run], runs_dir: Path) -> str:
    rows = []
    for run in runs:
        records = read_metrics(run.folder / METRICS_FILE)
        steps = [m["step"] for m in records if is_number(m.get("step"))]
        rows.append(
            [
                _td(run.experiment),
                _td(run.get("scale", "—")),
                _td(run.get("seed", "—"), "num"),
                _td(max(steps, default="—"), "num"),
                _td("yes" if (run.folder / "checkpoint.pt").exists() else "no"),
                f"<td><code>{_e(_relative(run.folder, runs_dir))}</code></td>",
            ]
        )
    header = ["experiment", "scale", "seed", "last step", "checkpoint", "folder"]
    return "<h2>Incomplete runs</h2>" + _table(header, rows)


def build_report(runs_dir: Path, out: Path) -> Path:
    """Write one self-contained HTML page about the runs below ``runs_dir`` to ``out``.

    The page has a summary table (latest finished run per experiment, headline metrics beside
    the paper's), a section per experiment (config, metrics vs paper, notes, learning curves,
    the run's own figures) and a table of incomplete runs. Images are embedded as base64 PNG;
    the page loads nothing from anywhere else.
    """
    runs_dir, out = Path(runs_dir), Path(out)
    runs = find_runs(runs_dir)
    latest = latest_runs(runs)
    incomplete = [run for run in runs if run.result is None]
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    machine = f"{platform.platform()} · {_machine()} · Python {platform.python_version()}"
    body = [
        "<h1>creditlab report</h1>",
        f'<p class="meta">generated {_e(generated)} · creditlab {_e(__version__)} · '
        f"{_e(machine)} · runs from <code>{_e(runs_dir)}</code></p>",
    ]
    if not runs:
        body.append(f"<p>No runs found under <code>{_e(runs_dir)}</code>.</p>")
    elif not latest:
        body.append(f"<p>No finished runs found under <code>{_e(runs_dir)}</code>.</p>")
    if latest:
        body.append(_summary(latest))
        with tempfile.TemporaryDirectory(prefix="creditlab-report-") as scratch:
            body += [
                _section(name, run, n, runs_dir, Path(scratch)) for name, (run, n) in latest.items()
            ]
    if incomplete:
        body.append(_incomplete(incomplete, runs_dir))
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>creditlab report</title><style>{CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
