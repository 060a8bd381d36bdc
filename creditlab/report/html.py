"""The reproduction page: one self-contained HTML page, and the same content as Markdown.

Both read run folders written by the runner (``config.json``, ``result.json``, ``plots/*.png``)
found anywhere below ``runs_dir``. For each experiment the latest finished run is used (a
multi-seed aggregate before any single run, then the newest). The page opens with a summary in
the manner of the ML Reproducibility Challenge's reports, then one row per claim
(:mod:`creditlab.report.claims`) and per goal of the project, the comparison of learning
rules, and the runs themselves (metrics, notes, figures), folded.
"""

from __future__ import annotations

import base64
import html
import json
import os
import platform
import re
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from creditlab import __version__
from creditlab.report.claims import (
    MET,
    NOT_COMPARABLE,
    NOT_MET,
    NOT_REPRODUCED,
    NOT_RUN,
    PARTLY,
    PARTLY_MET,
    REPRODUCED,
    Row,
    build_rows,
)
from creditlab.rundir import (
    COMPARISON_HEADER,
    METRICS_FILE,
    PLOTS_DIR,
    Run,
    comparisons,
    data_cell,
    find_runs,
    fmt,
    headline,
    is_number,
    latest_runs,
    read_json,
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


def runs_markdown(latest: dict[str, tuple[Run, int]]) -> str:
    """The runs as a Markdown table: one row per experiment (its latest run).

    Cells with several headline metrics list them one per line (``<br>``). The machine column
    is the one recorded in the run's result.json (the machine building the table if absent).
    """
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


# ----------------------------------------------------------------------------- shared content


def command(run: Run) -> str:
    """The command that makes a run like this one: its experiment, scale, seed(s) and every
    config field that differs from the scale's (as ``--set``)."""
    from creditlab import registry

    name, scale = run.experiment, str(run.get("scale", "quick"))
    words = ["creditlab", "run", name, "--scale", scale]
    seeds = run.config.get("seeds") if run.is_aggregate else None
    if seeds:
        words += ["--seeds", ",".join(map(str, seeds))]
    elif run.get("seed", 0) != 0:
        words += ["--seed", str(run.get("seed"))]
    try:
        defaults = json.loads(json.dumps(asdict(registry.get(name).make_config(scale))))
    except Exception:  # noqa: BLE001 - an experiment no longer registered: the command as far as known
        defaults = None
    config = (run.result or {}).get("config") or {}
    for key, value in config.items() if defaults is not None else ():
        if key in defaults and defaults[key] != value:
            text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            words.append(f"--set {key}={text}")
    return " ".join(words)


def _measured_text(row: Row) -> str:
    name = row.claim.metric
    if row.mean is None:
        return "—"
    text = fmt(name, row.mean)
    if row.std is not None:
        text += f" ± {fmt(name, row.std)}"
    return text


def _interval_text(row: Row) -> str:
    n = len(row.values)
    if row.ci95 and n > 1:
        low, high = row.ci95
        return f"[{fmt(row.claim.metric, low)}, {fmt(row.claim.metric, high)}], n={n}"
    return f"n={n}" if n else ""


def _reference_text(row: Row) -> str:
    claim = row.claim
    if claim.paper_figure:
        return fmt(claim.metric, row.paper)
    if isinstance(claim.reference, str):
        target = row.target
        return f"{claim.op} {claim.reference}" + (
            f" ({fmt(claim.reference, target)})" if target is not None else ""
        )
    return f"{claim.op} {fmt(claim.metric, claim.reference)}"


def _difference_text(row: Row) -> str:
    if row.difference is None or row.verdict == NOT_COMPARABLE:
        return "—"
    text = fmt(row.claim.metric, row.difference, signed=True)
    return text + (f" ({row.relative:+.1%})" if row.relative is not None else "")


def _verdict_text(row: Row) -> str:
    return f"{row.verdict}: {row.why}" if row.why else row.verdict


def _tally(rows: list[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for row in rows:
        out.setdefault(row.verdict, []).append(row)
    return out


def _claim_name(row: Row) -> str:
    return f"{row.claim.experiment}: {row.claim.text}"


HARD = (
    "Only the 10,000 MNIST test images are here (the mnist10k protocol, 8,000 train / 2,000 "
    "test): no MNIST figure of a paper trained on 60,000 images is comparable.",
    "Budgets: 2 CPU cores, shared; quick scale trains for minutes where the papers trained for "
    "hours or days, so a shortfall at quick scale is not counted against a paper.",
    "Several papers give no number for their claims (Douglas & Yu, Bloem's figures), only "
    "the abstract or a plot: those claims are checked as stated, against the stated threshold.",
)


def summary_points(rows: list[Row], latest: dict[str, tuple[Run, int]]) -> dict[str, list[str]]:
    """The summary in the manner of the ML Reproducibility Challenge's reports: scope, what
    reproduced, what did not, what was hard (plain sentences, rendered by both outputs)."""
    paper = [r for r in rows if not r.claim.goal]
    goals = [r for r in rows if r.claim.goal]
    tally, goal_tally = _tally(paper), _tally(goals)
    experiments = sorted({r.run.experiment for r in rows if r.run is not None})
    papers = {str(run.get("paper_title")) for run, _ in latest.values() if run.get("paper_title")}
    scales = sorted({str(run.get("scale")) for run, _ in latest.values()})
    scope = [
        f"{len(paper)} claims of {len(papers)} papers and {len(goals)} goals of this project, "
        f"checked with {len(latest)} experiments' latest runs ({', '.join(scales)} scale) on "
        f"this machine; {len(tally.get(NOT_RUN, []) + goal_tally.get(NOT_RUN, []))} claims "
        "and goals have no run here.",
        "A claim is reproduced when the measured mean is within tolerance of the paper's "
        "figure (or better, or the 95% interval holds it), or when a stated relation holds on "
        "every seed; partly when it holds on the mean or on some seeds only.",
    ]
    return {
        "Scope": scope + [f"Experiments with a claim here: {', '.join(experiments) or 'none'}."],
        "What reproduced": [_claim_name(r) for r in tally.get(REPRODUCED, [])]
        + [f"Goal met: {_claim_name(r)}" for r in goal_tally.get(MET, [])],
        "What did not": [
            f"{_claim_name(r)} ({_verdict_text(r)})"
            for r in tally.get(NOT_REPRODUCED, []) + tally.get(PARTLY, [])
        ]
        + [
            f"Goal {_verdict_text(r)}: {_claim_name(r)}"
            for r in goal_tally.get(NOT_MET, []) + goal_tally.get(PARTLY_MET, [])
        ],
        "What was hard": [
            f"{len(tally.get(NOT_COMPARABLE, []))} claims not comparable: "
            + "; ".join(sorted({r.why for r in tally.get(NOT_COMPARABLE, [])}))
        ]
        + list(HARD),
    }


def markdown_table(runs_dir: Path) -> str:
    """The page as Markdown (docs/reproductions.md): the summary, the claims and goals, and
    one row per experiment's latest run."""
    latest = latest_runs(find_runs(runs_dir))
    if not latest:
        return f"No finished runs found under `{runs_dir}`.\n"
    rows = build_rows(latest)
    out = [
        "# Reproductions",
        "",
        f"Generated by `creditlab report {runs_dir} --markdown FILE` on {_machine()}; "
        "every number below comes from the run folders named in its row.",
    ]
    for title, points in summary_points(rows, latest).items():
        out += ["", f"## {title}", ""] + [f"- {p}" for p in points or ["none"]]
    header = ["claim", "paper / reference", "measured (mean ± std)", "95% interval, n",
              "difference", "verdict", "source", "command"]  # fmt: skip
    for title, goal in (("Claims", False), ("Goals of this project", True)):
        out += ["", f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * 8]
        for row in (r for r in rows if r.claim.goal == goal):
            cells = [
                _claim_name(row), _reference_text(row), _measured_text(row), _interval_text(row),
                _difference_text(row), _verdict_text(row), row.source,
                f"`{command(row.run)}`" if row.run else "—",
            ]  # fmt: skip
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    out += ["", "## Runs", "", runs_markdown(latest)]
    return "\n".join(out)


# ----------------------------------------------------------------------------- HTML

CSS = """
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 1.2rem auto; max-width: 1300px; padding: 0 1rem; color: #1d232b; line-height: 1.4;
       font-size: 15px; }
h1 { margin: 0 0 .2rem; } h2 { margin-top: 1.8rem; border-bottom: 2px solid #dde3ea; }
h3 { margin: 1rem 0 .3rem; font-size: 1rem; color: #3a4654; }
.meta, .muted { color: #5b6776; font-size: .85rem; }
.summary { display: grid; grid-template-columns: 1fr 1fr; gap: .2rem 2rem; }
.summary ul { margin: .2rem 0 .6rem; padding-left: 1.2rem; } .summary li { margin: .1rem 0; }
table { border-collapse: collapse; margin: .4rem 0 1rem; font-size: .85rem; width: 100%; }
table.claims { table-layout: fixed; }
th, td { border: 1px solid #dde3ea; padding: .25rem .45rem; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #f1f4f8; } tr:nth-child(even) td { background: #fafbfc; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.v { font-weight: 600; } .v-good { color: #1b6b34; } .v-bad { color: #9b1c12; }
.v-part { color: #8a5a00; } .v-na { color: #5b6776; }
code { background: #f1f4f8; padding: 0 .2rem; border-radius: 3px; font-size: .8rem;
       overflow-wrap: anywhere; }
img { max-width: 100%; height: auto; border: 1px solid #e4e8ee; }
figure { margin: .4rem 0 .8rem; display: inline-block; max-width: 48%; vertical-align: top; }
figcaption { color: #5b6776; font-size: .8rem; }
details { margin: .3rem 0; } details summary { cursor: pointer; font-weight: 600; }
svg.dots { display: block; margin-top: .2rem; }
.creditlab-compare { font-size: .8rem; }
"""

VERDICT_CLASS = {
    REPRODUCED: "v-good", MET: "v-good", PARTLY: "v-part", PARTLY_MET: "v-part",
    NOT_REPRODUCED: "v-bad", NOT_MET: "v-bad",
}  # fmt: skip


def _e(value: object) -> str:
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[str]], css: str = "", widths: tuple = ()) -> str:
    """A table from pre-rendered ``<td>`` cells (each row a list of complete cells)."""
    cols = "".join(f'<col style="width:{w}%">' for w in widths)
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(f"<tr>{''.join(row)}</tr>" for row in rows)
    attrs = f' class="{css}"' if css else ""
    return f"<table{attrs}>{cols}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(text: object, css: str = "", rowspan: int = 1) -> str:
    attrs = (f' class="{css}"' if css else "") + (f' rowspan="{rowspan}"' if rowspan > 1 else "")
    return f"<td{attrs}>{_e(text)}</td>"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _anchor(name: str) -> str:
    return "exp-" + re.sub(r"[^A-Za-z0-9_.-]", "-", name)


def dots(values: list[float], target: float | None, width: int = 150, height: int = 18) -> str:
    """An inline SVG strip: one dot per seed, a tick at the mean, a red line at the reference."""
    if not values:
        return ""
    points = [*values, *([target] if target is not None else [])]
    low, high = min(points), max(points)
    span = (high - low) or abs(high) or 1.0
    low, high = low - 0.08 * span, high + 0.08 * span

    def x(v: float) -> float:
        return 4 + (width - 8) * (v - low) / (high - low)

    mean = sum(values) / len(values)
    parts = [f'<line x1="4" y1="{height / 2}" x2="{width - 4}" y2="{height / 2}" stroke="#ccd"/>']
    if target is not None:
        parts.append(f'<line x1="{x(target):.1f}" y1="1" x2="{x(target):.1f}" y2="{height - 1}" '
                     'stroke="#c0392b" stroke-width="2"/>')  # fmt: skip
    parts.append(f'<line x1="{x(mean):.1f}" y1="3" x2="{x(mean):.1f}" y2="{height - 3}" '
                 'stroke="#1d232b"/>')  # fmt: skip
    parts += [
        f'<circle cx="{x(v):.1f}" cy="{height / 2}" r="3.2" fill="#2f6db5" fill-opacity=".6"/>'
        for v in values
    ]
    label = f"{len(values)} seeds; red: reference" if target is not None else f"{len(values)} seeds"
    return (f'<svg class="dots" width="{width}" height="{height}" role="img" '
            f'aria-label="{_e(label)}">{"".join(parts)}</svg>')  # fmt: skip


def _run_link(row: Row, runs_dir: Path, out_dir: Path) -> str:
    if row.run is None:
        return f"<td><code>creditlab run {_e(row.claim.experiment)} --scale quick</code></td>"
    folders = [row.run.folder]
    links = []
    for folder in folders:
        href = os.path.relpath(folder.resolve(), out_dir.resolve())
        links.append(f'<a href="{_e(href)}">{_e(_relative(folder, runs_dir))}</a>')
    anchor = f'<a href="#{_anchor(row.claim.experiment)}">details</a>'
    return f"<td>{' '.join(links)} · {anchor}<br><code>{_e(command(row.run))}</code></td>"


def _claims_table(rows: list[Row], runs_dir: Path, out_dir: Path, goal: bool) -> str:
    header = ["claim", "paper / reference", "measured (per-seed dots)", "difference", "verdict",
              "runs and command"]  # fmt: skip
    body = []
    for row in (r for r in rows if r.claim.goal == goal):
        claim = f"<b>{_e(row.claim.experiment)}</b> {_e(row.claim.text)}"
        claim += f'<br><span class="muted">metric {_e(row.claim.metric)}</span>'
        ref = _e(_reference_text(row)) + (
            f'<br><span class="muted">{_e(row.source)}</span>' if row.source else ""
        )
        measured = f"{_e(_measured_text(row))}<br><span class='muted'>"
        measured += f"{_e(_interval_text(row))}</span>{dots(row.values, row.target)}"
        css = VERDICT_CLASS.get(row.verdict, "v-na")
        verdict = f'<span class="v {css}">{_e(row.verdict)}</span>'
        verdict += f'<br><span class="muted">{_e(row.why)}</span>' if row.why else ""
        body.append(
            [f"<td>{claim}</td>", f"<td>{ref}</td>", f"<td>{measured}</td>",
             _td(_difference_text(row), "num"), f"<td>{verdict}</td>",
             _run_link(row, runs_dir, out_dir)]
        )  # fmt: skip
    return _table(header, body, "claims", (25, 14, 15, 9, 13, 24))


def _summary(rows: list[Row], latest: dict[str, tuple[Run, int]]) -> str:
    blocks = []
    for title, points in summary_points(rows, latest).items():
        items = "".join(f"<li>{_e(p)}</li>" for p in points) or "<li>none</li>"
        blocks.append(f"<div><h3>{_e(title)}</h3><ul>{items}</ul></div>")
    return f'<h2>Summary</h2><div class="summary">{"".join(blocks)}</div>'


def _comparisons(runs_dir: Path) -> str:
    """Every comparison of learning rules below ``runs_dir`` (`creditlab compare`)."""
    from creditlab.compare.table import html as comparison_html

    parts = []
    for path in sorted(Path(runs_dir).rglob("comparison.json")):
        saved = read_json(path) or {}
        if not saved.get("rows"):
            continue
        plan = read_json(path.parent / "compare.json") or {}
        rules = ",".join(plan.get("rules", []))
        seeds = plan.get("seeds") or []
        label = f"{plan.get('task', '?')}, {plan.get('scale', '?')} scale, seeds {seeds}"
        cmd = (f"creditlab compare {plan.get('task', '?')} --rules {rules} --seeds "
               f"{','.join(map(str, seeds))} --scale {plan.get('scale', '?')}")  # fmt: skip
        parts.append(
            f"<h3>{_e(label)}</h3>{comparison_html(saved['rows'], timing=False)}"
            f'<p class="muted">Mean ± std over seeds, 95% bootstrap interval; cos: the update '
            f"against the exact gradient; P(&gt;bp): bootstrap probability of beating "
            f"backprop. <code>{_e(cmd)}</code></p>"
        )
    if not parts:
        return ""
    return "<h2>Learning rules compared</h2>" + "".join(parts)


def _runs_table(latest: dict[str, tuple[Run, int]]) -> str:
    rows = []
    for name, (run, n) in latest.items():
        head = ", ".join(c.short() for c in headline(run.result)[:2])
        rows.append(
            [f'<td><a href="#{_anchor(name)}">{_e(name)}</a></td>',
             _td(run.get("scale", "—")), _td(run.seeds), _td(data_cell(run.result)), _td(head),
             _td(_wall_time(run), "num"), _td(_peak_memory(run), "num"), _td(n, "num")]
        )  # fmt: skip
    header = ["experiment", "scale", "seeds", "data", "headline", "wall time", "peak memory",
              "finished runs"]  # fmt: skip
    return _table(header, rows, "", (17, 6, 11, 17, 26, 8, 8, 7))


def _figures(run: Run) -> list[Path]:
    """The run's own figures, at most two; the runner's generic learning curves only where the
    run drew none and its metrics hold one training (not several seeds joined in one stream)."""
    folder = run.folder
    if run.is_aggregate and run.config.get("seeds"):
        folder = folder / f"s{run.config['seeds'][0]}"
    found = sorted((folder / PLOTS_DIR).glob("*.png"))
    own = [p for p in found if p.stem != "learning_curves"][:2]
    if own or any("seed" in record for record in read_metrics(folder / METRICS_FILE)):
        return own
    return [p for p in found if p.stem == "learning_curves"]


def _section(name: str, run: Run, n_finished: int, runs_dir: Path) -> str:
    r = run.result
    meta = [
        f"scale {_e(r.get('scale', '—'))}", f"seeds {_e(run.seeds)}",
        f"finished {_e(r.get('finished_utc', '—'))}", f"wall time {_e(_wall_time(run))}",
        f"peak memory {_e(_peak_memory(run))}", f"machine {_e(r.get('machine') or '—')}",
        f"commit <code>{_e(r.get('git_commit') or '—')}</code>",
        f"folder <code>{_e(_relative(run.folder, runs_dir))}</code>",
        f"latest of {n_finished} finished runs" if n_finished > 1 else "",
    ]  # fmt: skip
    parts = [f'<details id="{_anchor(name)}"><summary>{_e(name)}: {_e(r.get("title", ""))}'
             "</summary>"]  # fmt: skip
    if r.get("paper_title"):
        parts.append(f"<p>Paper: <i>{_e(r['paper_title'])}</i></p>")
    parts.append(f'<p class="meta">{" · ".join(m for m in meta if m)}</p>')
    parts.append(f"<p><code>{_e(command(run))}</code></p>")
    if r.get("notes"):
        items = "".join(f"<li>{_e(note)}</li>" for note in r["notes"])
        parts.append(f"<h3>Notes</h3><ul>{items}</ul>")
    scope = f"{r.get('scale', '')} scale, seed(s) {run.seeds}"
    for i, path in enumerate(_figures(run), 1):
        caption = f"Figure {i}: {path.stem.replace('_', ' ')} ({name}, {scope})."
        parts.append(
            f"<figure>{_img(path, caption)}<figcaption>{_e(caption)}</figcaption></figure>"
        )
    metric_rows = [[_td(c) for c in comp.cells()] for comp in comparisons(r)]
    parts.append("<details><summary>All metrics</summary>"
                 + _table(COMPARISON_HEADER, metric_rows) + "</details>")  # fmt: skip
    return "".join(parts) + "</details>"


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
    """Write the reproduction page about the runs below ``runs_dir`` to ``out``.

    Summary, claims, goals, the comparison of learning rules, the runs (each folded, with its
    notes, figures and metrics) and any incomplete runs. Images are embedded as base64 PNG and
    the per-seed dots are inline SVG: the page loads nothing from anywhere else.
    """
    runs_dir, out = Path(runs_dir), Path(out)
    runs = find_runs(runs_dir)
    latest = latest_runs(runs)
    incomplete = [run for run in runs if run.result is None]
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    machine = f"{platform.platform()} · {_machine()} · Python {platform.python_version()}"
    body = [
        "<h1>creditlab: what reproduced</h1>",
        f'<p class="meta">generated {_e(generated)} · creditlab {_e(__version__)} · '
        f"{_e(machine)} · runs from <code>{_e(runs_dir)}</code></p>",
    ]
    if not runs:
        body.append(f"<p>No runs found under <code>{_e(runs_dir)}</code>.</p>")
    elif not latest:
        body.append(f"<p>No finished runs found under <code>{_e(runs_dir)}</code>.</p>")
    if latest:
        rows = build_rows(latest)
        body += [
            _summary(rows, latest),
            "<h2>Claims</h2>",
            '<p class="muted">One row per claim of a paper; the dots are the seeds, the black '
            "tick their mean, the red line the paper's figure or the stated reference.</p>",
            _claims_table(rows, runs_dir, out.parent, goal=False),
            "<h2>Goals of this project</h2>",
            _claims_table(rows, runs_dir, out.parent, goal=True),
            _comparisons(runs_dir),
            "<h2>Runs</h2>",
            _runs_table(latest),
            *(_section(name, run, n, runs_dir) for name, (run, n) in latest.items()),
        ]
    if incomplete:
        body.append(_incomplete(incomplete, runs_dir))
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>creditlab: what reproduced</title><style>{CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
