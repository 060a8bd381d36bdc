"""One trial of a sweep: an experiment at one setting and one seed, in its own run folder.

A trial is plain data (it travels to a worker process or a Ray node by pickling), and
:func:`run_trial` is what a worker runs: it finishes the trial in its folder, whatever state
a previous attempt left there. A finished folder (``result.json``) is read back, an
interrupted one (``checkpoint.pt``, e.g. from a worker killed mid-trial) resumes from its
checkpoint, an empty one starts. So re-running a trial never loses what was checkpointed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from creditlab.rundir import CHECKPOINT_FILE, RESULT_FILE, read_json

TRIAL_THREADS = 1
"""torch CPU threads a trial runs with (one trial a core, on every backend, so the same seed
gives the same metrics whichever backend ran it); a config's own ``threads`` field wins."""


def point_label(point: Mapping[str, str]) -> str:
    """The folder name of a setting: ``lr=0.005,lr_bp=0.01`` (``defaults`` for no grid)."""
    return ",".join(f"{k}={v}" for k, v in point.items()) or "defaults"


def trial_name(point: Mapping[str, str], seed: int) -> str:
    """A trial's folder below the sweep folder, named from its setting and seed alone:
    ``lr=0.1/s100``. The experiment is the sweep's, so (experiment, setting, seed) name it.

    >>> trial_name({"lr": "0.1", "hidden": "16"}, 100)
    'lr=0.1,hidden=16/s100'
    """
    return f"{point_label(point)}/s{seed}"


@dataclass(frozen=True, eq=False)
class Trial:
    """What a worker needs to run one trial (``folder`` is absolute: workers may start
    elsewhere). Trials compare (and hash) by identity: the sweep keys its bookkeeping on them."""

    experiment: str
    scale: str
    seed: int
    point: Mapping[str, str]
    overrides: Mapping[str, str]
    """every --set and grid setting of the trial (the point's included)"""
    device: str
    folder: str
    tensorboard: bool = False
    threads: int = TRIAL_THREADS

    @property
    def name(self) -> str:
        return trial_name(self.point, self.seed)

    def state(self) -> str:
        """``finished``, ``interrupted`` (a checkpoint to resume) or ``new``."""
        folder = Path(self.folder)
        if (folder / RESULT_FILE).exists():
            return "finished"
        return "interrupted" if (folder / CHECKPOINT_FILE).exists() else "new"


def run_trial(trial: Trial) -> dict[str, Any]:
    """Finish ``trial`` in its folder (start, resume or read back) and return its result.json."""
    import torch

    from creditlab import registry, runner

    folder = Path(trial.folder)
    state = trial.state()
    if state == "finished":
        return read_json(folder / RESULT_FILE)
    torch.set_num_threads(trial.threads)
    if state == "interrupted":
        return runner.resume(folder, device=trial.device)
    return runner.run(
        registry.get(trial.experiment),
        scale=trial.scale,
        seed=trial.seed,
        overrides=dict(trial.overrides),
        out=folder,
        device=trial.device,
        tensorboard=trial.tensorboard,
    )
