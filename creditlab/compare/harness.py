"""Rules x seeds on one task, into one folder that a second call resumes.

``creditlab compare digits --rules bp,fa,dfa --seeds 5 --scale quick`` writes::

    runs/compare/digits/quick-seeds0-4/
        compare.json      task, scale, seeds, overrides, device, rules
        bp/ fa/ dfa/      one multi-seed folder each (creditlab.seeds: s0/ ... aggregate.json)
        table.md          the table as Markdown (table.html: an HTML fragment)
        comparison.json   the table's rows
        plots/            learning curves of all rules on one axis; alignment over training

The folder name holds no timestamp: the same command again keeps every finished seed,
resumes an interrupted one from its checkpoint (creditlab.seeds.resume_seeds) and runs the
rest; adding rules to the command adds them to the comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from creditlab import registry, seeds
from creditlab.compare import figures, table
from creditlab.compare.feedback import MODES
from creditlab.compare.rules import get_rule
from creditlab.errors import UserError
from creditlab.rundir import AGGREGATE_FILE, is_seeds_folder, read_json, write_json

TASKS = ("digits", "mnist", "fashion_mnist", "fashion_mnist_lenet", "teacher")
"""The shared tasks; each is the registered experiment ``compare.<task>``."""
TASK_RULES = {"fashion_mnist_lenet": MODES, "teacher": MODES}
"""tasks that only some rules join (the others: every rule)"""
PLAN_FILE = "compare.json"
ROWS_FILE = "comparison.json"


def task_experiment(task: str) -> registry.Experiment:
    if task not in TASKS:
        raise UserError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    return registry.get(f"compare.{task}")


def default_dir(runs_root: Path, task: str, scale: str, chosen: Sequence[int]) -> Path:
    return Path(runs_root) / "compare" / task / f"{scale}-seeds{seeds.seeds_label(chosen)}"


def run_compare(
    task: str,
    rules: Sequence[str],
    chosen_seeds: Sequence[int],
    *,
    scale: str = "quick",
    overrides: Mapping[str, str] | None = None,
    out: Path | None = None,
    runs_root: Path = Path("runs"),
    device: str = "cpu",
    say: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run every rule on ``task`` over ``chosen_seeds`` (resuming what ``out`` holds) and
    write the table and the plots; return the table's rows."""
    exp = task_experiment(task)
    for name in rules:
        get_rule(name)
        if name not in TASK_RULES.get(task, (name,)):
            raise UserError(f"the {task} task runs {', '.join(TASK_RULES[task])} only, not {name}")
    overrides = dict(overrides or {})
    if "rule" in overrides:
        raise UserError("choose rules with --rules, not --set rule=...")
    exp.make_config(scale, overrides)  # a bad --set fails before any folder is made
    out = Path(out) if out is not None else default_dir(runs_root, task, scale, chosen_seeds)
    plan = {
        "task": task,
        "scale": scale,
        "seeds": list(chosen_seeds),
        "overrides": overrides,
        "device": device,
        "rules": list(rules),
    }
    old = read_json(out / PLAN_FILE)
    if old is not None:
        for key in ("task", "scale", "seeds", "overrides"):
            if old[key] != plan[key]:
                raise UserError(
                    f"{out} holds a comparison with {key}={old[key]!r}, not {plan[key]!r}; "
                    "choose another --out"
                )
        plan["rules"] = old["rules"] + [r for r in rules if r not in old["rules"]]
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / PLAN_FILE, plan)
    for name in plan["rules"]:
        folder = out / name
        if (folder / AGGREGATE_FILE).exists():
            say(f"{name}: finished before, kept ({folder})")
        elif is_seeds_folder(folder):
            say(f"{name}: resuming ({folder})")
            seeds.resume_seeds(folder, device=device, say=say)
        else:
            say(f"{name}: {len(chosen_seeds)} seed(s) -> {folder}")
            seeds.run_seeds(
                exp,
                chosen_seeds,
                scale=scale,
                overrides={**overrides, "rule": name},
                out=folder,
                device=device,
                say=say,
            )
    rows = table.collect(out, plan["rules"])
    write_json(out / ROWS_FILE, {"plan": plan, "rows": rows})
    (out / "table.md").write_text(table.markdown(rows) + "\n")
    (out / "table.html").write_text(table.html(rows) + "\n")
    figures.draw(out, plan["rules"], title=f"{task} ({scale}, seeds {plan['seeds']})")
    return rows
