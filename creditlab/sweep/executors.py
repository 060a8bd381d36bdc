"""Where a sweep's trials run: one small interface, a local process pool and Ray Core tasks.

An :class:`Executor` has three methods: ``submit(fn, trial)`` starts ``fn(trial)``
somewhere, ``next_finished()`` blocks until one submitted call ends and returns ``(trial,
result, error)``, and ``close()`` lets go of the workers. Retries, skipping finished trials
and gathering the table are the sweep's (:mod:`creditlab.sweep`), written once for every
backend; a backend only moves a call to a worker and its outcome back. A SLURM backend
(``submitit``: ``submit`` = ``executor.submit``, ``next_finished`` = poll ``job.done()``)
would be one more class of this size.

Ray backend: each trial is one Ray Core task (``num_cpus=1``). Ray Tune is not used: its
trial folders, working-directory changes and per-trial bookkeeping would duplicate what the
run folder already does (creditlab's checkpoints, resume and aggregate), and cost seconds a
trial; a Core task costs milliseconds.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from creditlab.errors import UserError
from creditlab.sweep.trial import Trial

BACKENDS = ("local", "ray")
Outcome = tuple[Trial, dict[str, Any] | None, BaseException | None]


class WorkerLost(Exception):
    """The process running a trial died (killed, out of memory, its node gone)."""


class Executor:
    """Runs trials somewhere (see the module docstring)."""

    def submit(self, fn: Callable[[Trial], dict[str, Any]], trial: Trial) -> None:
        raise NotImplementedError

    def next_finished(self) -> Outcome:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _worker_context() -> multiprocessing.context.BaseContext:
    """Fresh workers, no state of this process in them: forked from a server process that
    imported torch and the runner once (``forkserver``; a new worker then starts in a fraction
    of a second), or started from scratch (``spawn``) where there is no forkserver."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["creditlab.runner"])
    return context


class LocalExecutor(Executor):
    """A pool of ``workers`` processes on this machine (see :func:`_worker_context`). A
    worker that dies breaks the pool: the trials it held come back as :class:`WorkerLost`
    and the next submission starts a new pool."""

    def __init__(self, workers: int | None = None):
        self.workers = workers or available_cpus()
        self._pool: ProcessPoolExecutor | None = None
        self._running: dict[Future, tuple[Trial, ProcessPoolExecutor]] = {}

    def submit(self, fn: Callable[[Trial], dict[str, Any]], trial: Trial) -> None:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=_worker_context())
        self._running[self._pool.submit(fn, trial)] = (trial, self._pool)

    def next_finished(self) -> Outcome:
        done, _ = wait(self._running, return_when=FIRST_COMPLETED)
        future = next(iter(done))
        trial, pool = self._running.pop(future)
        error = future.exception()
        if isinstance(error, BrokenProcessPool):
            if pool is self._pool:
                self._pool = None
                pool.shutdown(wait=False)
            return trial, None, WorkerLost("its worker process died")
        return trial, None if error else future.result(), error

    def close(self) -> None:
        for pool in {pool for _, pool in self._running.values()} | {self._pool} - {None}:
            pool.shutdown(wait=True, cancel_futures=True)
        self._pool, self._running = None, {}


class RayExecutor(Executor):
    """Each trial a Ray Core task on the cluster at ``address`` (``None``: a Ray instance
    already started in this process, else a new local one; ``auto``: the cluster started on
    this machine with ``ray start --head``). Ray's own task retries are off: the sweep
    retries, the same way on every backend."""

    def __init__(self, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise UserError(
                "--backend ray needs Ray: pip install 'creditlab[distributed]'"
            ) from None
        self._ray = ray
        self._owns = not ray.is_initialized()
        if not self._owns and address:
            raise UserError("Ray is already started in this process; drop --address")
        if self._owns:
            where = f" at {address}" if address else ""
            _check_reachable(address)
            forwarded = {k: v for k, v in os.environ.items() if k.startswith("CREDITLAB_")}
            try:
                ray.init(
                    address=address,
                    include_dashboard=False,
                    logging_level=logging.WARNING,
                    runtime_env={"env_vars": forwarded} if address and forwarded else None,
                )
            except Exception as err:  # Ray raises ConnectionError, RuntimeError, ValueError
                reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
                raise UserError(f"could not start Ray{where}: {reason}") from None
        self._remote: dict[Callable, Any] = {}
        self._running: dict[Any, Trial] = {}

    def submit(self, fn: Callable[[Trial], dict[str, Any]], trial: Trial) -> None:
        if fn not in self._remote:
            self._remote[fn] = self._ray.remote(num_cpus=1, max_retries=0)(fn)
        self._running[self._remote[fn].remote(trial)] = trial

    def next_finished(self) -> Outcome:
        (ref,), _ = self._ray.wait(list(self._running), num_returns=1)
        trial = self._running.pop(ref)
        exceptions = self._ray.exceptions
        try:
            return trial, self._ray.get(ref), None
        except exceptions.RayTaskError as err:  # the trial raised: its own exception
            return trial, None, err.cause if err.cause is not None else err
        except exceptions.RayError as err:  # the worker or its node died
            return trial, None, WorkerLost(str(err).strip().splitlines()[0])

    def close(self) -> None:
        for ref in self._running:
            self._ray.cancel(ref, force=True)
        self._running = {}
        if self._owns:
            self._ray.shutdown()


def _check_reachable(address: str | None, seconds: float = 5.0) -> None:
    """Refuse a ``host:port`` nothing answers at, in seconds (``ray.init`` would retry for
    minutes); ``auto`` and ``ray://`` addresses are left to Ray."""
    host, sep, port = (address or "").rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as err:
        raise UserError(
            f"could not start Ray: no cluster answers at {address} ({err.strerror or err}); "
            "start one with `ray start --head` and pass the address it prints"
        ) from None


def make_executor(backend: str, workers: int | None = None, address: str | None = None):
    """The executor for ``--backend`` (refusing options it cannot honour, in one line)."""
    if backend == "local":
        if address:
            raise UserError("--address is for --backend ray (a Ray cluster's address)")
        if workers is not None and workers < 1:
            raise UserError(f"--workers {workers}: expected at least 1")
        return LocalExecutor(workers)
    if backend == "ray":
        if workers is not None:
            raise UserError(
                "--workers is for --backend local; Ray runs one trial on each free CPU of "
                "the cluster"
            )
        return RayExecutor(address)
    raise UserError(f"unknown --backend {backend!r}; choose one of {', '.join(BACKENDS)}")
