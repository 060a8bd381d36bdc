"""Running an experiment: the run folder, the metric stream, progress, checkpoints, resume.

:class:`RunContext` is everything an experiment may touch outside its math. :func:`run`
creates the run folder, seeds every generator once, calls the experiment, and writes
``result.json``. The run-folder contract (relied on by the report and by outside checks):

``config.json``   experiment, scale, seed, device and the full config
``metrics.jsonl`` one JSON object a line, each with an integer ``step``
``result.json``   experiment, scale, seed, config, metrics, paper, wall_seconds,
                  peak_memory_mb, versions, git_commit (+ finished_utc, notes, data, titles)
``plots/``        PNG figures (learning curves are drawn from metrics.jsonl at the end)
``checkpoint.pt`` while running, and after an interruption, a crash or a divergence

Interruption: the first Ctrl-C (or SIGTERM) asks the experiment to stop at its next step
boundary (:meth:`RunContext.boundary`), where the exact state is saved; a second Ctrl-C
stops at once. A kill loses at most ``CREDITLAB_CHECKPOINT_EVERY`` seconds (default 60),
since boundaries also checkpoint on that clock. ``--resume DIR`` restores the state, the
random generators and the metric stream, so the finished run equals an uninterrupted one.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import math
import os
import platform
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import creditlab
from creditlab import rundir
from creditlab.errors import DivergedError, UserError
from creditlab.plots import plot_learning_curves
from creditlab.registry import Experiment


class Interrupted(Exception):
    """Raised at a step boundary after Ctrl-C, once the checkpoint is on disk."""

    def __init__(self, out: Path):
        self.out = out
        super().__init__(f"interrupted; resume with: creditlab run --resume {out}")


TENSORBOARD_DIR = "tensorboard"
"""The run folder's TensorBoard event files (``--tensorboard``): every logged metric as a
scalar. A run started with it keeps writing them when resumed."""


def tensorboard_writer(log_dir: Path | None = None, purge_step: int | None = None) -> Any:
    """A ``torch.utils.tensorboard.SummaryWriter`` on ``log_dir`` (None: only check that one
    can be made) that hides earlier events from ``purge_step`` on (those a resumed run logs
    again); one line (exit code 2) when the tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError(
            "--tensorboard needs the tensorboard package: pip install 'creditlab[tensorboard]'"
        ) from None
    if log_dir is None:
        return None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


def checkpoint_interval() -> float:
    return float(os.environ.get("CREDITLAB_CHECKPOINT_EVERY", "60"))


def derive_seed(seed: int, *key: object) -> int:
    """The seed of a derived random stream: ``seed`` itself for no key, else a 63-bit hash of
    ``(seed, *key)``. The one derivation every experiment uses (see :meth:`RunContext.generator`),
    so two streams with different keys never overlap the way ``seed * 1000 + i`` streams do."""
    if not key:
        return int(seed)
    text = "/".join(map(str, (seed, *key))).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


class _Streams:
    """Random streams and resumable loops, shared by :class:`RunContext` and
    :class:`StageContext` (each with its own ``seed``, ``resume`` and ``boundary``)."""

    seed: int

    def generator(self, *key: object, device: str | torch.device = "cpu") -> torch.Generator:
        """A torch generator for the stream named ``key`` (e.g. ``ctx.generator("init")`` or
        ``ctx.generator("episode", i)``), seeded with :func:`derive_seed`; no key: the run's
        seed itself."""
        return torch.Generator(device=device).manual_seed(derive_seed(self.seed, *key))

    def numpy_rng(self, *key: object) -> np.random.Generator:
        """A NumPy generator for the stream named ``key`` (:func:`derive_seed`)."""
        return np.random.default_rng(derive_seed(self.seed, *key))

    def loop(
        self,
        total: int,
        state: Callable[[], Any],
        restore: Callable[[Any], None] | None = None,
        *,
        desc: str = "",
        checkpoint_every: int = 0,
    ) -> Loop:
        """``for i in ctx.loop(n, state, restore): ...``: the resumable iteration every
        training loop uses (see :class:`Loop`)."""
        return Loop(self, total, state, restore, desc=desc, checkpoint_every=checkpoint_every)


class Loop:
    """A resumable loop over ``range(total)``: yields the index of each iteration, then (at
    the boundary after the body) advances the progress bar and offers the state to the
    context, which checkpoints it when a stop is requested or its clock says so (and always
    every ``checkpoint_every`` iterations, e.g. at an epoch's end). ``state()`` returns what
    the body needs to go on (nets, optimisers, running sums); on a resumed run ``restore`` is
    called with it once, before the first iteration, and the loop starts where it stopped,
    with the random generators as they were: the finished run equals an unbroken one.
    ``loop.postfix(loss=...)`` shows values beside the bar; ``loop.start`` is the first index
    this process runs."""

    def __init__(
        self,
        ctx: Any,
        total: int,
        state: Callable[[], Any],
        restore: Callable[[Any], None] | None,
        *,
        desc: str = "",
        checkpoint_every: int = 0,
    ):
        self.ctx, self.total, self.state = ctx, int(total), state
        self.checkpoint_every = checkpoint_every
        saved = ctx.resume()
        self.start = 0
        if saved is not None:
            if restore is not None:
                restore(saved["state"])
            self.start = saved["index"]
        else:  # a run that diverges or is killed early still leaves a checkpoint to go on from
            ctx.checkpoint(self._snapshot(0))
        self.bar = ctx.progress(self.total, desc=desc, initial=self.start)

    def _snapshot(self, index: int) -> dict[str, Any]:
        return {"index": index, "state": self.state()}

    def __iter__(self) -> Iterator[int]:
        try:
            for i in range(self.start, self.total):
                yield i
                self.bar.update()
                if self.checkpoint_every and (i + 1) % self.checkpoint_every == 0:
                    self.ctx.checkpoint(self._snapshot(i + 1))
                self.ctx.boundary(lambda i=i: self._snapshot(i + 1))
        finally:
            self.bar.close()

    def postfix(self, **values: Any) -> None:
        """Show ``values`` beside the progress bar (floats to 4 digits)."""
        self.bar.set_postfix(
            {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in values.items()}, refresh=False
        )


class LineProgress:
    """tqdm's ``update``/``set_postfix``/``close`` for output that is not a terminal: one line
    ``desc: i/total (p%), elapsed, ~remaining, postfix`` on stderr every ``interval`` seconds
    (``CREDITLAB_PROGRESS_EVERY``, default 60) and at the end."""

    def __init__(self, total: int, desc: str, initial: int = 0):
        self.total, self.desc, self.n, self.start_n = total, desc, initial, initial
        self.interval = float(os.environ.get("CREDITLAB_PROGRESS_EVERY", "60"))
        self.started = self.last = time.monotonic()
        self.postfix: dict[str, Any] = {}

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self._say(now)

    def set_postfix(self, values: Mapping[str, Any] | None = None, refresh: bool = True) -> None:
        self.postfix = dict(values or {})

    def close(self) -> None:
        if self.n > self.start_n:
            self._say(time.monotonic())

    def _say(self, now: float) -> None:
        self.last = now
        done, elapsed = self.n - self.start_n, now - self.started
        line = f"{self.desc}: {self.n}/{self.total}"
        if self.total:
            line += f" ({100 * self.n / self.total:.0f}%)"
        line += f", {elapsed / 60:.1f} min"
        if done and self.total > self.n:
            line += f", ~{elapsed / done * (self.total - self.n) / 60:.1f} min left"
        line += "".join(f", {k}={v}" for k, v in self.postfix.items())
        print(line, file=sys.stderr, flush=True)


class RunContext(_Streams):
    """The experiment's window on the outside world (see the module docstring)."""

    def __init__(self, exp: Experiment, cfg: Any, scale: str, seed: int, device: str, out: Path):
        self.experiment, self.cfg, self.scale, self.seed = exp, cfg, scale, seed
        self.device = torch.device(device)
        self.out = out
        self.plots = out / rundir.PLOTS_DIR
        self.plots.mkdir(parents=True, exist_ok=True)
        self.rng = np.random.default_rng(seed)
        self.notes: list[str] = []
        self.data: dict[str, Any] = {}
        self.elapsed_before = 0.0  # wall seconds spent before a resume
        self._resume_state: Any = None
        self._stop_requested = False
        self._boundaries_seen = 0
        self._last_checkpoint = self._started = time.monotonic()
        self._metrics = open(out / rundir.METRICS_FILE, "a", encoding="utf-8")
        self.threads_seen: set[int] = set()  # torch CPU threads while the run logged
        self.board: Any = None  # a TensorBoard writer when the run folder has TENSORBOARD_DIR

    # --- metrics -------------------------------------------------------------------------
    def log(self, step: int, **metrics: float) -> None:
        """Append ``{"step": step, **metrics}`` to metrics.jsonl; NaN or inf stops the run."""
        row = {"step": int(step)}
        self.threads_seen.add(torch.get_num_threads())
        for name, value in metrics.items():
            value = float(value)
            if not math.isfinite(value):
                raise DivergedError(step, name, value)
            row[name] = value
        self._metrics.write(json.dumps(row) + "\n")
        if self.board is not None:
            for name, value in row.items():
                if name != "step":
                    self.board.add_scalar(name, value, row["step"])

    def check_finite(self, step: int, **values: float) -> None:
        """Stop with exit code 3 if any value (e.g. this step's loss) is NaN or inf."""
        for name, value in values.items():
            if not math.isfinite(float(value)):
                raise DivergedError(step, name, float(value))

    def note(self, text: str) -> None:
        """A sentence for the report (e.g. whether a paper's claim holds here)."""
        self.notes.append(text)

    def progress(self, total: int, desc: str = "", initial: int = 0) -> Any:
        """A progress bar on a terminal; elsewhere (a log file, a pipe, a cluster job) a line
        about once a minute (`LineProgress`); nothing with ``CREDITLAB_QUIET`` set."""
        desc = desc or self.experiment.name
        quiet = bool(os.environ.get("CREDITLAB_QUIET"))
        if not sys.stderr.isatty() and not quiet:
            return LineProgress(total, desc, initial)
        return tqdm(
            total=total, initial=initial, desc=desc, leave=False, disable=quiet, dynamic_ncols=True
        )

    # --- checkpoints ---------------------------------------------------------------------
    def resume(self) -> Any:
        """The state saved by the last :meth:`checkpoint`, or None on a fresh run."""
        return self._resume_state

    def checkpoint(self, state: Any) -> None:
        """Save ``state`` with the random generators and the metric stream's position."""
        self._metrics.flush()
        payload = {
            "state": state,
            "rng": _rng_states(self.rng),
            "metrics_offset": self._metrics.tell(),
            "elapsed": self.elapsed_before + time.monotonic() - self._started,
        }
        tmp = self.out / (rundir.CHECKPOINT_FILE + ".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, self.out / rundir.CHECKPOINT_FILE)
        self._last_checkpoint = time.monotonic()

    def boundary(self, state_fn: Callable[[], Any]) -> None:
        """Call between steps with a function returning the exact state to resume from.
        Saves it when a stop was requested (then raises :class:`Interrupted`) or when the
        checkpoint interval has passed; otherwise costs nothing."""
        self._boundaries_seen += 1
        due = time.monotonic() - self._last_checkpoint >= checkpoint_interval()
        if self._stop_requested or due:
            self.checkpoint(state_fn())
        if self._stop_requested:
            raise Interrupted(self.out)

    # --- plumbing used by run() ----------------------------------------------------------
    def _restore(self, checkpoint: Mapping[str, Any]) -> None:
        self._metrics.close()
        with open(self.out / rundir.METRICS_FILE, "r+b") as f:  # drop lines logged after it
            f.truncate(checkpoint["metrics_offset"])
        self._metrics = open(self.out / rundir.METRICS_FILE, "a", encoding="utf-8")
        _set_rng_states(checkpoint["rng"], self.rng)
        self._resume_state = checkpoint["state"]
        self.elapsed_before = checkpoint["elapsed"]

    def _request_stop(self, signum: int, frame: Any) -> None:
        if self._stop_requested or self._boundaries_seen == 0:
            raise KeyboardInterrupt
        self._stop_requested = True
        print("\nstopping at the next step boundary (Ctrl-C again to stop now)", file=sys.stderr)


class StageContext(_Streams):
    """The run context as one part of a run sees it: one of several trainings, rows or seeds
    trained one after another inside one experiment. Its checkpoints carry the finished parts'
    results (``done``) beside its own state, ``resume()`` returns its own state only (None
    when the checkpoint belongs to another part), and each logged row gets a metric-name
    ``prefix``, a ``step_offset`` and fixed ``tags``. A part with a ``seed`` of its own (one
    seed of several inside a run) has it as ``.seed`` and tags its rows with it. Everything
    else is the run's context; :func:`finished_stages` reads ``done`` back when a run resumes."""

    def __init__(
        self,
        ctx: RunContext,
        stage: str | int,
        done: Any,
        *,
        prefix: str = "",
        step_offset: int = 0,
        seed: int | None = None,
        **tags: Any,
    ):
        self._ctx, self.stage, self.done = ctx, stage, done
        self._prefix, self._offset, self._tags = prefix, step_offset, tags
        if seed is not None:
            self.seed = seed
            self._tags = {"seed": seed, **tags}

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._ctx, attr)

    def _wrap(self, state: Any) -> dict[str, Any]:
        return {"stage": self.stage, "state": state, "done": copy.copy(self.done)}

    def resume(self) -> Any:
        saved = self._ctx.resume()
        return saved["state"] if saved is not None and saved["stage"] == self.stage else None

    def checkpoint(self, state: Any) -> None:
        self._ctx.checkpoint(self._wrap(state))

    def boundary(self, state_fn: Callable[[], Any]) -> None:
        self._ctx.boundary(lambda: self._wrap(state_fn()))

    def log(self, step: int, **metrics: float) -> None:
        named = {self._prefix + k: v for k, v in metrics.items()}
        self._ctx.log(self._offset + step, **self._tags, **named)


def finished_stages(ctx: RunContext, empty: Any = None) -> Any:
    """The ``done`` results a resumed run's :class:`StageContext` checkpoint carries (a copy),
    or ``empty`` for a fresh run."""
    saved = ctx.resume()
    return copy.copy(saved["done"]) if saved is not None else empty


def _rng_states(rng: np.random.Generator) -> dict[str, Any]:
    states = {
        "torch": torch.get_rng_state(),
        "numpy_global": np.random.get_state(),
        "python": random.getstate(),
        "ctx_rng": rng.bit_generator.state,
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: Mapping[str, Any], rng: np.random.Generator) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy_global"])
    random.setstate(states["python"])
    rng.bit_generator.state = states["ctx_rng"]
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


@contextmanager
def config_threads(cfg: Any, ctx: RunContext) -> Iterator[None]:
    """Run with ``cfg.threads`` torch CPU threads where the config has that field (0: leave
    the setting alone), noted in the result, and restore the setting afterwards. The runner
    applies it to every experiment: no experiment sets threads itself."""
    threads = getattr(cfg, "threads", 0)
    if not threads or threads <= 0:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    ctx.note(f"Ran with {threads} torch CPU thread(s) (setting threads).")
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> None:
    """Seed every generator once, at the top of a run (CleanRL's habit)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str, exp: Experiment | None = None) -> str:
    """``device`` if this experiment runs there and this machine has it; else one line
    (exit code 2). An experiment that declares only "cpu" refuses cuda: never ignored."""
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"unknown device {device!r}; use cpu or cuda")
    kind = device.split(":")[0]
    if exp is not None and kind not in exp.devices:
        only = " and ".join(d.upper() if d == "cpu" else d for d in exp.devices)
        raise UserError(f"{exp.name} runs on {only} only; drop --device {device}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but torch sees no CUDA device; use --device cpu")
    return device


def default_run_dir(root: Path, name: str, seed: int) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = root / name / f"{stamp}-s{seed}"
    suffix = 1
    while out.exists():  # two runs within one second
        suffix += 1
        out = root / name / f"{stamp}-s{seed}-{suffix}"
    return out


@contextmanager
def _signals_to(ctx: RunContext) -> Iterator[None]:
    """Route Ctrl-C and SIGTERM to the context while it runs (main thread only)."""
    if not _in_main_thread():
        yield
        return
    old = {s: signal.signal(s, ctx._request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def run(
    exp: Experiment,
    *,
    scale: str = "quick",
    seed: int = 0,
    overrides: Mapping[str, str] | None = None,
    out: Path | None = None,
    runs_root: Path = Path("runs"),
    device: str = "cpu",
    tensorboard: bool = False,
) -> dict[str, Any]:
    """Run ``exp`` in a new run folder and return the contents of its result.json;
    ``tensorboard``: also write every logged metric as TensorBoard scalars."""
    cfg = exp.make_config(scale, overrides)
    device = resolve_device(device, exp)
    out = Path(out) if out is not None else default_run_dir(runs_root, exp.name, seed)
    if (out / rundir.RESULT_FILE).exists() or (out / rundir.CHECKPOINT_FILE).exists():
        raise UserError(f"{out} already holds a run; choose another --out or --resume it")
    if tensorboard:
        tensorboard_writer()  # refused before any folder is made
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    if tensorboard:
        (out / TENSORBOARD_DIR).mkdir(exist_ok=True)
    (out / rundir.METRICS_FILE).write_text("")
    config = dict(
        zip(rundir.CONFIG_KEYS, (exp.name, scale, seed, device, asdict(cfg)), strict=True)
    )
    rundir.write_json(out / rundir.CONFIG_FILE, config)
    try:
        return _execute(exp, cfg, scale, seed, device, out, checkpoint=None)
    except BaseException:
        if made and not (out / rundir.CHECKPOINT_FILE).exists():  # failed before its first
            shutil.rmtree(out, ignore_errors=True)  # step: nothing to resume, no folder left
        raise


def resume(run_dir: Path, device: str | None = None) -> dict[str, Any]:
    """Finish the interrupted run in ``run_dir`` from its checkpoint."""
    from creditlab import registry

    run_dir = Path(run_dir)
    config = rundir.read_json(run_dir / rundir.CONFIG_FILE)
    if config is None:
        raise UserError(f"{run_dir} is not a run folder (no readable {rundir.CONFIG_FILE})")
    if (run_dir / rundir.RESULT_FILE).exists():
        raise UserError(f"{run_dir} has already finished (result.json exists); nothing to resume")
    if not (run_dir / rundir.CHECKPOINT_FILE).exists():
        raise UserError(f"{run_dir} has no checkpoint.pt to resume from; start a new run")
    exp = registry.get(config["experiment"])
    cfg = registry.apply_overrides(exp.config(), config["config"], where=exp.name)
    device = resolve_device(device or config["device"], exp)
    checkpoint = torch.load(
        run_dir / rundir.CHECKPOINT_FILE, weights_only=False, map_location=device
    )
    return _execute(exp, cfg, config["scale"], config["seed"], device, run_dir, checkpoint)


def _execute(
    exp: Experiment,
    cfg: Any,
    scale: str,
    seed: int,
    device: str,
    out: Path,
    checkpoint: Mapping[str, Any] | None,
) -> dict[str, Any]:
    seed_everything(seed)
    ctx = RunContext(exp, cfg, scale, seed, device, out)
    if checkpoint is not None:
        ctx._restore(checkpoint)
    if (out / TENSORBOARD_DIR).is_dir():  # resumed: the steps after the last kept row go again
        kept = rundir.read_metrics(out / rundir.METRICS_FILE)
        purge = kept[-1]["step"] + 1 if kept else None
        ctx.board = tensorboard_writer(out / TENSORBOARD_DIR, purge)
    reset_peak_memory()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    ctx._started = time.monotonic()
    try:
        with _signals_to(ctx), config_threads(cfg, ctx):
            metrics = exp.fn(cfg, ctx)
        for name, value in metrics.items():
            ctx.check_finite(-1, **{name: value})
    finally:
        ctx._metrics.close()
        if ctx.board is not None:
            ctx.board.close()
    wall = ctx.elapsed_before + time.monotonic() - ctx._started
    values = (
        exp.name,
        exp.title,
        exp.paper_title,
        scale,
        seed,
        device,
        asdict(cfg),
        {k: float(v) for k, v in metrics.items()},
        exp.paper_figures(),
        ctx.data,
        ctx.notes,
        round(wall, 3),
        round(peak_memory_mb(device), 1),
        versions(),
        machine(device, ctx.threads_seen),
        git_commit(),
        dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    result = dict(zip(rundir.RESULT_KEYS, values, strict=True))
    plot_learning_curves(out / rundir.METRICS_FILE, ctx.plots, title=exp.name)
    rundir.write_json(out / rundir.RESULT_FILE, result)
    (out / rundir.CHECKPOINT_FILE).unlink(missing_ok=True)
    return result


def reset_peak_memory() -> None:
    """Start a new peak-RSS window (Linux: writing 5 to clear_refs resets VmHWM), so a run
    reports its own peak even when several share one process (``creditlab demo``, tests)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # elsewhere the peak is the process's since it started


def peak_memory_mb(device: str = "cpu") -> float:
    """Peak resident memory since :func:`reset_peak_memory` (and peak CUDA allocation on a
    GPU), in MB."""
    try:
        status = Path("/proc/self/status").read_text()
        rss_mb = int(status.split("VmHWM:")[1].split()[0]) / 1024  # kB
    except (OSError, IndexError, ValueError):
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if device.startswith("cuda"):
        return rss_mb + torch.cuda.max_memory_allocated() / 2**20
    return rss_mb


def versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "creditlab": creditlab.__version__,
    }


def machine(device: str = "cpu", threads: set[int] | None = None) -> str:
    """One line naming the hardware a number was measured on; ``threads``: the torch CPU
    thread counts the run used (an experiment may set its own), else the current setting."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    text = f"{platform.machine()} {platform.system()}, {cpus} CPU cores"
    used = sorted(threads) if threads else [torch.get_num_threads()]
    text += f", torch threads {'/'.join(map(str, used))}"
    if device.startswith("cuda"):
        text += f", {torch.cuda.get_device_name()}"
    return text


def git_commit() -> str | None:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                cwd=Path(__file__).parent,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        return None
