"""NormAD against its peers, from finished multi-seed runs: prints the markdown tables of
docs/normad.md (mean +- std over the seeds of each experiment's aggregate.json).

    creditlab run normad.single --scale quick --seeds 0-4 --runs runs/   # and .xor, .mapping
    .venv/bin/python benchmarks/normad_table.py runs/

Each experiment's newest ``*-seeds*`` folder is read; an experiment without one is skipped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

METHODS = {
    "normad.single": (("NormAD", "normad_"), ("ReSuMe", "resume_"), ("surrogate", "surrogate_")),
    "normad.xor": (("NormAD", ""), ("surrogate", "surrogate_")),
    "normad.mapping": (("NormAD", ""), ("surrogate", "surrogate_")),
}
COLUMNS = {
    "normad.single": (
        ("epochs to converge (median over problems)", "epochs_to_converge"),
        ("fraction converged", "fraction_converged"),
        ("final coincidence accuracy", "final_coincidence"),
        ("final van Rossum", "final_van_rossum"),
        ("wall s", "wall_seconds"),
    ),
    "normad.xor": (
        ("test accuracy", "test_accuracy"),
        ("epochs to converge (median)", "epochs_to_converge"),
        ("fraction converged", "fraction_converged"),
        ("final coincidence accuracy", "final_coincidence"),
        ("final van Rossum", "final_van_rossum"),
        ("wall s", "wall_seconds"),
    ),
    "normad.mapping": (
        ("epochs to converge (median)", "epochs_to_converge"),
        ("fraction converged", "fraction_converged"),
        ("final coincidence accuracy", "final_coincidence_accuracy"),
        ("final van Rossum", "final_van_rossum"),
        ("wall s", "wall_seconds"),
    ),
}


def _cell(metrics: dict, name: str) -> str:
    m = metrics.get(name)
    if m is None:
        return "—"
    return f"{m['mean']:.3g} ± {m['std']:.2g}"


def main(root: Path) -> None:
    for exp, methods in METHODS.items():
        folders = sorted((root / exp).glob("*-seeds*"))
        folders = [f for f in folders if (f / "aggregate.json").exists()]
        if not folders:
            continue
        agg = json.loads((folders[-1] / "aggregate.json").read_text())
        metrics = agg["metrics"]
        print(f"\n{exp} ({agg['scale']}, seeds {agg['seeds']}, {folders[-1]})\n")
        cols = COLUMNS[exp]
        print("| method | " + " | ".join(c for c, _ in cols) + " |")
        print("|---" * (len(cols) + 1) + "|")
        for label, prefix in methods:
            print(f"| {label} | " + " | ".join(_cell(metrics, prefix + k) for _, k in cols) + " |")
        for ratio in ("resume_over_normad_epochs", "surrogate_over_normad_epochs"):
            if ratio in metrics:
                print(f"\n{ratio}: {_cell(metrics, ratio)} (values {metrics[ratio]['values']})")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs"))
