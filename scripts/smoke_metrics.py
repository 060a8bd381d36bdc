"""Every experiment's smoke-scale metrics in one JSON file, and a comparison of two such files.

A refactor that must not change behaviour is checked with it: write the file on the old commit,
again on the new one, and compare (timing metrics, which measure the machine, are left out)::

    git worktree add /tmp/before <old commit>
    PYTHONPATH=/tmp/before python scripts/smoke_metrics.py write before.json
    python scripts/smoke_metrics.py write after.json
    python scripts/smoke_metrics.py compare before.json after.json

``write`` runs each registered experiment (or the ones named after the file) at smoke scale with
seed 0 in a temporary folder and keeps going when one fails (its entry records the error); a
file that already has an experiment's entry is not run again, so an interrupted write resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path


def write(path: Path, only: list[str]) -> int:
    import creditlab
    from creditlab import registry, runner

    print(f"creditlab from {Path(creditlab.__file__).parent}", file=sys.stderr)
    os.environ.setdefault("CREDITLAB_QUIET", "1")
    results = json.loads(path.read_text()) if path.exists() else {}
    for name, exp in registry.load_all().items():
        if (only and name not in only) or name in results:
            continue
        with tempfile.TemporaryDirectory() as folder:
            try:
                results[name] = runner.run(exp, scale="smoke", seed=0, out=Path(folder) / "r")[
                    "metrics"
                ]
            except Exception as err:  # noqa: BLE001 - recorded, and the rest still run
                results[name] = {"error": f"{type(err).__name__}: {err}"}
        print(f"{name}: {len(results[name])} metrics", file=sys.stderr, flush=True)
        path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    return 0


def compare(before_path: Path, after_path: Path) -> int:
    """Print, per experiment, 'equal', the metrics that differ, or why it cannot be compared;
    exit 1 if any differs."""
    from creditlab.registry import is_timing_metric

    before, after = (json.loads(p.read_text()) for p in (before_path, after_path))
    differing = 0
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old is None or new is None or "error" in old or "error" in new:
            print(f"{name}: not compared ({'missing' if old is None or new is None else 'error'})")
            continue
        keys = sorted(k for k in set(old) | set(new) if not is_timing_metric(k))
        diff = [k for k in keys if old.get(k) != new.get(k)]
        if not diff:
            print(f"{name}: equal ({len(keys)} metrics)")
            continue
        differing += 1
        print(f"{name}: {len(diff)} of {len(keys)} metrics differ")
        for k in diff:
            print(f"    {k}: {old.get(k)!r} -> {new.get(k)!r}")
    return 1 if differing else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("write", help="run every experiment at smoke scale; write its metrics")
    p.add_argument("file", type=Path)
    p.add_argument("only", nargs="*", help="only these experiments")
    p = sub.add_parser("compare", help="compare two metric files")
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "write":
        return write(args.file, args.only)
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
