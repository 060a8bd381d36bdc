"""The ``creditlab`` command line: list, run, tune, compare, report, data, demo, explain.

Every failure a user can cause prints one line and exits 2; a run whose loss becomes NaN
or inf exits 3 with its checkpoint kept; an interrupted run exits 130 and says how to
resume it.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
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


# Named here so `--help` needs no torch import; tests/test_compare.py checks them against
# creditlab.compare.harness.TASKS and creditlab.compare.rules.RULES.
COMPARE_TASKS = ("digits", "mnist", "fashion_mnist", "fashion_mnist_lenet", "teacher")
COMPARE_RULES = ("bp", "fa", "dfa", "dendritic", "coagent", "hm2bp")


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


def _add_tensorboard(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write every logged metric as TensorBoard scalars (RUN_FOLDER/tensorboard)",
    )


def _add_sweep_options(p: argparse.ArgumentParser, required: bool) -> None:
    """What `tune` and `sweep` share: the grid, the metrics, the scale and the backend."""
    p.add_argument("name", help="experiment name (see `creditlab list`)")
    p.add_argument(
        "--grid",
        action="append",
        required=required,
        metavar="KEY=V1,V2,..",
        help="values to try for a config field (repeatable: the product of all, or see --zip)",
    )
    p.add_argument(
        "--metric",
        action="append",
        required=required,
        metavar="NAME",
        help="result metric to choose by (repeatable: the best point of each is printed)",
    )
    p.add_argument("--zip", action="store_true", help="pair the --grid lists by position")
    p.add_argument("--minimize", action="store_true", help="smaller is better (default: larger)")
    _add_scale(p)
    p.add_argument("--backend", default="local", help="local (a process pool here) or ray")
    p.add_argument(
        "--address",
        metavar="ADDR",
        help="the Ray cluster to use (host:port or auto, see `ray start --head`); default: a "
        "new Ray instance on this machine",
    )
    p.add_argument(
        "--workers", type=int, help="--backend local: trials at once (default: one a CPU core)"
    )
    p.add_argument(
        "--retries",
        type=int,
        default=2,
        help="times a failed trial is retried before it is reported (the sweep goes on)",
    )
    _add_tensorboard(p)


DEFERRED = {
    "data": ("creditlab.data.commands", "list, verify, remember and fetch data sets"),
    "explain": (
        "creditlab.autodiff.explain",
        "one training step of a tiny network, every value and gradient printed",
    ),
}
"""Sub-commands whose modules import torch: their parsers are built only when named, so that
``creditlab --help``, ``creditlab list`` and a mistyped command answer at once."""


def build_parser(commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; of the DEFERRED sub-commands only ``commands`` (all when None) get their
    full parser, the others a stand-in that lists them in ``--help``."""
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
    _add_tensorboard(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("tune", help="choose a setting: a grid, each point on tuning seeds")
    _add_sweep_options(p, required=True)
    p.add_argument(
        "--seeds", default="100-104", metavar="A-B|A,B,..", help="tuning seeds, all >= 100"
    )
    _add_run_options(p, "fixed settings", "the tuning folder (again, to resume it)")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser(
        "sweep", help="settings x seeds as trials on a process pool or a Ray cluster, one table"
    )
    _add_sweep_options(p, required=False)
    p.add_argument("--seeds", default="5", metavar="N|A-B|A,B,..", help="seeds (5: 0-4)")
    _add_run_options(p, "fixed settings", "the sweep folder (again, to resume it)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("compare", help="several learning rules on one task, one table")
    p.add_argument("task", help=" | ".join(COMPARE_TASKS))
    p.add_argument(
        "--rules", default="bp,fa,dfa", help=f"comma-separated rules ({','.join(COMPARE_RULES)})"
    )
    p.add_argument("--seeds", default="5", metavar="N|A-B|A,B,..", help="seeds (5: 0-4)")
    _add_scale(p)
    _add_run_options(p, "task settings", "the comparison folder (again, to resume it)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("report", help="the reproduction page: claims, verdicts, runs (HTML)")
    p.add_argument("runs_dir", nargs="?", type=Path, default=Path("runs"))
    p.add_argument("--out", type=Path, help="output file (default RUNS_DIR/report.html)")
    p.add_argument(
        "--markdown",
        type=Path,
        metavar="FILE",
        help="also write the page as Markdown (e.g. docs/reproductions.md)",
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "demo",
        help="a tour: one experiment per paper (about 10 minutes), then the report",
        description="The tour runs one representative experiment per paper at a scale chosen "
        "for it (about 10 minutes on 2 idle cores); --full runs every demo experiment. A run "
        "finished before (same experiment, scale, seed and config) is reused, a failed one is "
        "reported, and the page is written either way.",
    )
    p.add_argument("--runs", type=Path, default=Path("runs"), help="root of run folders")
    p.add_argument(
        "--scale",
        help="run every stop at this scale instead of the tour's own (quick with the tour's "
        "settings; --full: quick)",
    )
    p.add_argument("--full", action="store_true", help="every demo experiment, not the tour")
    p.add_argument(
        "--only",
        action="append",
        nargs="+",
        metavar="NAME",
        help="run only these experiments (--only a b, --only a,b or --only a --only b)",
    )
    p.set_defaults(func=cmd_demo)

    for name, (module, help_text) in DEFERRED.items():
        if commands is None or name in commands:
            importlib.import_module(module).add_parser(sub)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def cmd_list(args: argparse.Namespace) -> int:
    if args.name:
        return _show(registry.get(args.name))
    rows = [("experiment", "scales", "demo", "what it shows (paper)"), *catalogue()]
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, width, strict=False)) + "  " + r[3])
    return 0


CATALOGUE_FILE = Path(sys.prefix) / "creditlab-experiments.json"
"""`creditlab list`'s rows, saved with a fingerprint of the package's source files."""


def source_stamp() -> list[list]:
    """[path, modification time (ns), size] of every source file of the package, sorted."""
    package = Path(__file__).parent
    return sorted(
        [str(path.relative_to(package)), path.stat().st_mtime_ns, path.stat().st_size]
        for path in package.rglob("*.py")
    )


def catalogue() -> list[tuple[str, str, str, str]]:
    """(name, scales, demo, title (paper)) of every registered experiment. Importing every
    method takes seconds (torch), so the rows are kept in CATALOGUE_FILE and used while no
    source file of the package has changed (size or modification time)."""
    stamp = source_stamp()
    saved = rundir.read_json(CATALOGUE_FILE) or {}
    if saved.get("stamp") == stamp:
        return [tuple(row) for row in saved["rows"]]
    rows = []
    for exp in registry.load_all().values():
        paper = f" ({exp.paper_title})" if exp.paper_title else ""
        demo = "yes" if exp.demo else ""
        rows.append((exp.name, ",".join(registry.SCALES), demo, exp.title + paper))
    try:
        rundir.write_json(CATALOGUE_FILE, {"stamp": stamp, "rows": rows})
    except OSError:  # a read-only environment: list slowly every time
        pass
    return rows


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
        if args.tensorboard and not (args.resume / runner.TENSORBOARD_DIR).is_dir():
            raise UserError(
                f"{args.resume} was started without --tensorboard (a resumed run keeps its "
                "own setting); drop --tensorboard"
            )
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
            if args.tensorboard:
                raise UserError(
                    "--tensorboard runs one seed; for several: creditlab sweep NAME --seeds "
                    f"{args.seeds} --tensorboard"
                )
            chosen = seeds.parse_seeds(args.seeds)
            out = args.out or seeds.default_seeds_dir(args.runs, exp.name, chosen)
            _print_aggregate(seeds.run_seeds(exp, chosen, out=out, **common), out)
            return 0
        out = args.out or runner.default_run_dir(args.runs, exp.name, args.seed)
        result = runner.run(exp, seed=args.seed, out=out, tensorboard=args.tensorboard, **common)
    _print_result(result, out)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from creditlab import seeds, sweep, tuning

    table = tuning.tune(
        registry.get(args.name),
        sweep.parse_grid(args.grid or [], zipped=args.zip),
        args.metric,
        seeds=seeds.parse_seeds(args.seeds),
        **_sweep_options(args),
    )
    print("\n".join(sweep.format_table(table)))
    return 1 if table["failed"] else 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from creditlab import seeds, sweep

    table = sweep.sweep(
        registry.get(args.name),
        sweep.parse_grid(args.grid or [], zipped=args.zip),
        seeds.parse_seeds(args.seeds),
        metrics=args.metric or [],
        **_sweep_options(args),
    )
    print("\n".join(sweep.format_table(table)))
    return 1 if table["failed"] else 0


def _sweep_options(args: argparse.Namespace) -> dict[str, typing.Any]:
    return {
        "scale": args.scale,
        "overrides": registry.parse_set_args(args.overrides),
        "minimize": args.minimize,
        "out": args.out,
        "runs_root": args.runs,
        "device": args.device or "cpu",
        "backend": args.backend,
        "workers": args.workers,
        "address": args.address,
        "retries": args.retries,
        "tensorboard": args.tensorboard,
    }


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


@dataclasses.dataclass(frozen=True)
class Stop:
    """One stop of the demo tour: an experiment, the scale and settings chosen for it, and the
    seconds it took on this project's 2-core machine (README's "wall per seed", recorded while
    the machine was shared, so an upper bound)."""

    name: str
    scale: str = "quick"
    overrides: tuple[tuple[str, str], ...] = ()
    seconds: int = 0


TOUR = (
    Stop("bp.digits", seconds=3),
    Stop("bp.mnist1d", seconds=92),
    Stop("autodiff.mnist", seconds=20),
    Stop("relu.single_unit", seconds=12),
    Stop("coagent.cartpole", seconds=39),
    Stop("dendritic.mnist", seconds=80),
    Stop("dvae.bmnist", overrides=(("iterations", "600"), ("eval_every", "300")), seconds=150),
    Stop("hm2bp.mnist", seconds=108),
    Stop("sparse.identity", seconds=70),
    Stop("normad.xor", overrides=(("problems", "2"),), seconds=60),
)
"""One representative experiment per paper (bp.digits for the backprop baseline); dvae.bmnist
at a fifth of its quick budget and normad.xor on two problems keep the tour near 10 minutes."""
TOUR_COMPARE = ("digits", ("bp", "fa", "dfa"), (0, 1, 2), 30)
"""The tour's last stop: `creditlab compare digits --rules bp,fa,dfa --seeds 0-2` (task,
rules, seeds, recorded seconds), so the page has its comparison table."""


def demo_stops(args: argparse.Namespace) -> list[Stop]:
    """What ``creditlab demo`` runs: the tour, every demo experiment (``--full``) or the
    ``--only`` names (the tour's settings where the tour has the experiment), each at
    ``--scale`` (without the tour's settings) when it is given."""
    if args.only:
        names = [n for group in args.only for item in group for n in item.split(",") if n]
        tour = {stop.name: stop for stop in TOUR}
        stops = [tour.get(registry.get(name).name, Stop(name)) for name in dict.fromkeys(names)]
    elif args.full:
        stops = [Stop(e.name) for e in registry.load_all().values() if e.demo]
    else:
        stops = list(TOUR)
    if args.scale:
        stops = [Stop(s.name, args.scale, (), s.seconds) for s in stops]
    return stops


def finished_run(runs_root: Path, exp: registry.Experiment, scale: str, cfg: object) -> Path | None:
    """A finished seed-0 run of ``exp`` below ``runs_root`` with this scale and config (the
    git commit and the machine do not matter), or None."""
    wanted = json.loads(json.dumps(dataclasses.asdict(cfg)))  # as config.json holds it
    for result in sorted((Path(runs_root) / exp.name).glob(f"*/{rundir.RESULT_FILE}")):
        saved = rundir.read_json(result.parent / rundir.CONFIG_FILE) or {}
        if (saved.get("scale"), saved.get("seed"), saved.get("config")) == (scale, 0, wanted):
            return result.parent
    return None


def cmd_demo(args: argparse.Namespace) -> int:
    """The tour (or ``--full``: every experiment marked ``demo``), one after another, then
    the report. A run finished before is reused; a failure is reported and the rest go on.

    Data sets the runs need and this machine lacks are fetched first (checksummed, with a
    progress bar); when that fails (offline), one line at the top says which experiments are
    skipped and why, and the rest run.
    """
    from creditlab import report, runner

    if args.full and args.only:
        raise UserError("--full and --only exclude each other")
    stops = demo_stops(args)
    experiments = {s.name: registry.get(s.name) for s in stops}
    needed = {s.name: experiments[s.name].data_sets(s.scale) for s in stops}
    unavailable = _fetch_missing_data(needed)
    skipped = [name for name, sets in needed.items() if set(sets) & set(unavailable)]
    for data_set, reason in unavailable.items():
        users = [name for name, sets in needed.items() if data_set in sets]
        print(f"skipping {', '.join(users)}: data set '{data_set}' is not here and {reason}")
    stops = [s for s in stops if s.name not in skipped]
    compare = not (args.only or args.full)
    minutes = (sum(s.seconds for s in stops) + compare * TOUR_COMPARE[3]) / 60
    if not args.scale and not args.full:
        print(f"the tour: {len(stops) + compare} stops, about {minutes:.0f} min on 2 idle cores")
    failed = []
    for i, stop in enumerate(stops, 1):
        exp = experiments[stop.name]
        setting = " ".join(f"{k}={v}" for k, v in stop.overrides)
        print(f"[{i}/{len(stops)}] {exp.name} ({stop.scale}{', ' + setting if setting else ''})")
        cfg = exp.make_config(stop.scale, dict(stop.overrides))
        before = finished_run(args.runs, exp, stop.scale, cfg)
        start = time.monotonic()
        try:
            if before is not None:
                result = rundir.read_json(before / rundir.RESULT_FILE) or {}
                print(f"  finished before, reused: {before}")
            else:
                result = runner.run(
                    exp, scale=stop.scale, overrides=dict(stop.overrides), runs_root=args.runs
                )
            print(demo_line(result, time.monotonic() - start), flush=True)
        except Exception as err:  # noqa: BLE001 - the tour goes on; the page says what failed
            print(f"  failed: {type(err).__name__}: {err}", flush=True)
            failed.append(exp.name)
    if compare:
        from creditlab.compare import harness

        task, rules, chosen, _ = TOUR_COMPARE
        print(f"[compare] {task}: {', '.join(rules)}, seeds {chosen[0]}-{chosen[-1]}")
        try:
            harness.run_compare(
                task, rules, chosen, scale=args.scale or "quick", runs_root=args.runs,
                say=lambda line: print(f"  {line}"),
            )  # fmt: skip
        except Exception as err:  # noqa: BLE001
            print(f"  failed: {type(err).__name__}: {err}", flush=True)
            failed.append(f"compare {task}")
    out = report.build_report(args.runs, args.runs / "report.html")
    if skipped:
        print(f"{len(skipped)} experiment(s) skipped for missing data: {', '.join(skipped)}")
    if failed:
        print(f"{len(failed)} failed: {', '.join(failed)} (their folders say why)")
    print(f"the page: {out.resolve().as_uri()}")
    return 1 if failed else 0


def demo_line(result: dict, seconds: float) -> str:
    """The demo's line for a finished run: its headline metrics (at most three, measured ones
    only) and how long it took."""
    headline = ", ".join(c.short() for c in rundir.headline(result)[:3])
    return f"  {headline}  ({seconds:.0f} s)"


def _fetch_missing_data(needed: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Fetch every data set the runs read (experiment -> data sets) that no data root holds;
    return the ones that could not be had, each with the reason (one line)."""
    from creditlab import data
    from creditlab.data.store import find_folder

    unavailable = {}
    for name in dict.fromkeys(n for sets in needed.values() for n in sets):
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
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser([name for name in argv[:1] if name in DEFERRED]).parse_args(argv)
    try:
        return args.func(args)
    except UserError as err:
        print(f"creditlab: error: {err}", file=sys.stderr)
        return err.exit_code
    except DivergedError as err:
        print(f"creditlab: diverged: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("creditlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `creditlab list | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush is quiet too
        return 0
    except Exception as err:
        runner = sys.modules.get("creditlab.runner")  # not imported (torch): not raised either
        if runner is None or not isinstance(err, runner.Interrupted):
            raise
        print(f"creditlab: {err}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
