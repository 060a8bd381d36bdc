"""The ``creditlab`` command line: list, run, tune, compare, report, data, demo, explain.

Every failure a user can cause prints one line and exits 2; a run whose loss becomes NaN
or inf exits 3 with its checkpoint kept; an interrupted run exits 130 and says how to
resume it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import typing
from collections.abc import Sequence
from pathlib import Path

from creditlab import registry, rundir
from creditlab.errors import DivergedError, UserError


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default in --help, except where it is None or a flag's False."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2), not a usage block, and
    ``--help`` shows every option's default."""

    def __init__(self, *args: typing.Any, **kwargs: typing.Any):
        kwargs.setdefault("formatter_class", _DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_scale(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scale",
        default=registry.DEFAULT_SCALE,
        help="smoke (seconds) | quick (a minute or two) | paper (the paper's protocol)",
    )


def _add_run_options(
    p: argparse.ArgumentParser,
    set_help: str,
    out_help: str,
    device_help: str = "cpu or cuda (default cpu)",
) -> None:
    """--set, --out, --runs and --device, as every command that runs experiments takes them."""
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE", help=set_help)
    p.add_argument("--out", type=Path, help=out_help)
    p.add_argument("--runs", type=Path, default=Path("runs"), help="root of run folders")
    p.add_argument("--device", default=None, help=device_help)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="creditlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("list", help="registered experiments, or one experiment's settings")
    p.add_argument("name", nargs="?", help="show this experiment's config fields and scales")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="run one experiment")
    p.add_argument("name", nargs="?", help="experiment name (see `creditlab list`)")
    _add_scale(p)
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument(
        "--seeds",
        metavar="N|A-B|A,B,..",
        help="run several seeds (5 = seeds 0-4, a count of at most 20, so --seeds 100 is "
        "refused: the seed 100 is --seed 100; 100-104; 3,7,9): a run folder each and an "
        "aggregate (mean, std, min, max, 95%% bootstrap interval)",
    )
    _add_run_options(
        p,
        "override a config field, e.g. --set lr=0.01 (repeatable)",
        "use this folder as the run folder",
        "cpu or cuda (default cpu; on --resume the run's own)",
    )
    p.add_argument("--resume", type=Path, metavar="DIR", help="finish an interrupted run")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("tune", help="choose a setting: a grid, each point on tuning seeds")
    p.add_argument("name", help="experiment name (see `creditlab list`)")
    p.add_argument(
        "--grid",
        action="append",
        required=True,
        metavar="KEY=V1,V2,..",
        help="values to try for a config field (repeatable: the product of all, or see --zip)",
    )
    p.add_argument(
        "--metric",
        action="append",
        required=True,
        metavar="NAME",
        help="result metric to choose by (repeatable: the best point of each is printed)",
    )
    p.add_argument("--zip", action="store_true", help="pair the --grid lists by position")
    p.add_argument("--minimize", action="store_true", help="smaller is better (default: larger)")
    p.add_argument(
        "--seeds", default="100-104", metavar="A-B|A,B,..", help="tuning seeds, all >= 100"
    )
    _add_scale(p)
    _add_run_options(p, "fixed settings", "the tuning folder (again, to resume it)")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("compare", help="several learning rules on one task, one table")
    p.add_argument("task", help="digits | mnist | fashion_mnist")
    p.add_argument("--rules", default="bp,fa,dfa", help="comma-separated rules (bp,fa,dfa)")
    p.add_argument("--seeds", default="5", metavar="N|A-B|A,B,..", help="seeds (5: 0-4)")
    _add_scale(p)
    _add_run_options(p, "task settings", "the comparison folder (again, to resume it)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("report", help="one HTML page of the latest runs")
    p.add_argument("runs_dir", nargs="?", type=Path, default=Path("runs"))
    p.add_argument("--out", type=Path, help="output file (default RUNS_DIR/report.html)")
    p.add_argument(
        "--markdown",
        type=Path,
        metavar="FILE",
        help="also write the summary table as Markdown (e.g. docs/reproductions.md)",
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="every method's quick experiment, then the report")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="root of run folders")
    p.add_argument("--scale", default="quick", help="scale to run the demo suite at")
    p.add_argument(
        "--only",
        action="append",
        nargs="+",
        metavar="NAME",
        help="run only these experiments (--only a b, --only a,b or --only a --only b)",
    )
    p.set_defaults(func=cmd_demo)

    from creditlab.autodiff.explain import add_parser as add_explain_parser
    from creditlab.data.commands import add_parser as add_data_parser

    add_data_parser(sub)
    add_explain_parser(sub)
    return parser


def cmd_list(args: argparse.Namespace) -> int:
    if args.name:
        return _show(registry.get(args.name))
    experiments = registry.load_all()
    rows = [("experiment", "scales", "demo", "what it shows (paper)")]
    for exp in experiments.values():
        paper = f" ({exp.paper_title})" if exp.paper_title else ""
        rows.append(
            (exp.name, ",".join(registry.SCALES), "yes" if exp.demo else "", exp.title + paper)
        )
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, width, strict=False)) + "  " + r[3])
    return 0


def _show(exp: registry.Experiment) -> int:
    print(f"{exp.name}: {exp.title}")
    if exp.paper_title:
        print(f"paper: {exp.paper_title}")
    docs, hints = registry.field_docs(exp.config), typing.get_type_hints(exp.config)
    defaults = exp.config()
    print("\nsettings (--set KEY=VALUE) and their defaults:")
    for f in dataclasses.fields(exp.config):
        kind = registry.describe_type(hints[f.name])
        print(f"  {f.name} ({kind}) = {getattr(defaults, f.name)!r}\n      {docs.get(f.name, '')}")
    print("\nscales:")
    for scale in registry.SCALES:
        changes = ", ".join(f"{k}={v!r}" for k, v in exp.scales.get(scale, {}).items())
        print(f"  {scale}: {changes or 'the defaults'}")
    for metric, figure in exp.paper_figures().items():
        print(f"paper figure: {metric} = {figure['value']} ({figure['source']})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from creditlab import runner, seeds

    if args.resume:
        if args.name:
            saved = rundir.saved_experiment(args.resume)
            if saved and saved != args.name:
                raise UserError(f"{args.resume} holds a run of {saved}, not {args.name}")
        if rundir.is_seeds_folder(args.resume):
            _print_aggregate(seeds.resume_seeds(args.resume, device=args.device), args.resume)
            return 0
        result = runner.resume(args.resume, device=args.device)
        out = args.resume
    else:
        if not args.name:
            raise UserError("creditlab run needs an experiment name (or --resume DIR)")
        exp = registry.get(args.name)
        common = {
            "scale": args.scale,
            "overrides": registry.parse_set_args(args.overrides),
            "device": args.device or "cpu",
        }
        if args.seeds:
            chosen = seeds.parse_seeds(args.seeds)
            out = args.out or seeds.default_seeds_dir(args.runs, exp.name, chosen)
            _print_aggregate(seeds.run_seeds(exp, chosen, out=out, **common), out)
            return 0
        out = args.out or runner.default_run_dir(args.runs, exp.name, args.seed)
        result = runner.run(exp, seed=args.seed, out=out, **common)
    _print_result(result, out)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from creditlab import seeds, tuning

    table = tuning.tune(
        registry.get(args.name),
        tuning.parse_grid(args.grid, zipped=args.zip),
        args.metric,
        seeds=seeds.parse_seeds(args.seeds),
        scale=args.scale,
        overrides=registry.parse_set_args(args.overrides),
        minimize=args.minimize,
        out=args.out,
        runs_root=args.runs,
        device=args.device or "cpu",
    )
    print("\n".join(tuning.format_table(table)))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from creditlab import seeds
    from creditlab.compare import harness, rules, table

    chosen = seeds.parse_seeds(args.seeds)
    rows = harness.run_compare(
        args.task,
        rules.parse_rules(args.rules),
        chosen,
        scale=args.scale,
        overrides=registry.parse_set_args(args.overrides),
        out=args.out,
        runs_root=args.runs,
        device=args.device or "cpu",
    )
    print(table.terminal(rows))
    return 0


def _print_aggregate(summary: dict, out: Path) -> None:
    seeds = summary["seeds"]
    print(f"{summary['experiment']} ({summary['scale']}, {len(seeds)} seeds {seeds}) -> {out}")
    print(f"  data: {rundir.data_cell(summary)}")
    print(f"  {'metric':28s} {'mean':>11s} {'std':>10s} {'min':>10s} {'max':>10s}  95% interval")
    for c in rundir.comparisons(summary):
        stats = summary["metrics"].get(c.metric)
        if stats is None:
            continue
        low, high = stats["ci95"]
        line = (
            f"  {c.metric:28s} {stats['mean']:11.6g} {stats['std']:10.4g} {stats['min']:10.6g} "
            f"{stats['max']:10.6g}  [{low:.6g}, {high:.6g}]"
        )
        if c.paper is not None:
            line += f"   paper: {c.paper:g}" + ("" if c.comparable else f" ({c.verdict})")
        print(line)


def _print_result(result: dict, out: Path) -> None:
    print(f"{result['experiment']} ({result['scale']}, seed {result['seed']}) -> {out}")
    print(f"  data: {rundir.data_cell(result)}")
    for c in rundir.comparisons(result):
        if c.measured is None:
            continue
        beside = ""
        if c.paper is not None:
            beside = f"   paper: {c.paper:g} ({c.source})"
            beside += "" if c.comparable else f": {c.verdict}"
        print(f"  {c.metric:28s} {c.measured:12.6g}{beside}")
    print(f"  {'wall_seconds':28s} {result['wall_seconds']:12.1f}")
    print(f"  {'peak_memory_mb':28s} {result['peak_memory_mb']:12.1f}")


def cmd_report(args: argparse.Namespace) -> int:
    from creditlab.report import build_report

    if not args.runs_dir.is_dir():
        raise UserError(f"no runs folder at {args.runs_dir}; run an experiment first")
    out = build_report(args.runs_dir, args.out or args.runs_dir / "report.html")
    print(f"report: {out}")
    if args.markdown:
        from creditlab.report import markdown_table

        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown_table(args.runs_dir))
        print(f"markdown: {args.markdown}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The quick suite: every experiment marked ``demo``, one after another, then the report.

    Data sets the suite needs and this machine lacks are fetched first (checksummed, with a
    progress bar); when that fails (offline), one line at the top says which experiments are
    skipped and why, and the rest run.
    """
    from creditlab import report, runner

    experiments = [e for e in registry.load_all().values() if e.demo]
    if args.only:
        names = [n for group in args.only for item in group for n in item.split(",") if n]
        experiments = [registry.get(name) for name in dict.fromkeys(names)]
    unavailable = _fetch_missing_data(experiments, args.scale)
    skipped = [e.name for e in experiments if set(e.data_sets(args.scale)) & set(unavailable)]
    for name, reason in unavailable.items():
        users = [e.name for e in experiments if name in e.data_sets(args.scale)]
        print(f"skipping {', '.join(users)}: data set '{name}' is not here and {reason}")
    experiments = [e for e in experiments if e.name not in skipped]
    failed = []
    for i, exp in enumerate(experiments, 1):
        print(f"[{i}/{len(experiments)}] {exp.name} ({args.scale}) ...", flush=True)
        start = time.monotonic()
        try:
            result = runner.run(exp, scale=args.scale, runs_root=args.runs)
        except (UserError, DivergedError) as err:
            print(f"  failed: {err}")
            failed.append(exp.name)
            continue
        print(demo_line(result, time.monotonic() - start))
    out = report.build_report(args.runs, args.runs / "report.html")
    print(f"report: {out}")
    if skipped:
        print(f"{len(skipped)} experiment(s) skipped for missing data: {', '.join(skipped)}")
    if failed:
        print(f"{len(failed)} experiment(s) failed: {', '.join(failed)}")
        return 1
    return 0


def demo_line(result: dict, seconds: float) -> str:
    """The demo's line for a finished run: its headline metrics (at most three, measured ones
    only) and how long it took."""
    headline = ", ".join(c.short() for c in rundir.headline(result)[:3])
    return f"  {headline}  ({seconds:.0f} s)"


def _fetch_missing_data(experiments: list[registry.Experiment], scale: str) -> dict[str, str]:
    """Fetch every data set the experiments read that no data root holds; return the ones that
    could not be had, each with the reason (one line)."""
    from creditlab import data
    from creditlab.data.store import find_folder

    needed = dict.fromkeys(n for e in experiments for n in e.data_sets(scale))
    unavailable = {}
    for name in needed:
        spec = data.DATASETS[name]
        if spec.kind != "files" or find_folder(spec) is not None:
            continue
        print(f"{name}: not found in {data.data_roots()[0]}; fetching it ...", flush=True)
        try:
            data.fetch(name, log=lambda line: print(f"  {line}", flush=True))
        except UserError as err:
            unavailable[name] = f"could not be fetched ({err})"
    return unavailable


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from creditlab.runner import Interrupted

    try:
        return args.func(args)
    except UserError as err:
        print(f"creditlab: error: {err}", file=sys.stderr)
        return err.exit_code
    except DivergedError as err:
        print(f"creditlab: diverged: {err}", file=sys.stderr)
        return err.exit_code
    except Interrupted as err:
        print(f"creditlab: {err}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("creditlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `creditlab list | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush is quiet too
        return 0


if __name__ == "__main__":
    sys.exit(main())
