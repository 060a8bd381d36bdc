"""Shared by the scripts in benchmarks/: run one measurement in a fresh process, so that its
peak memory is its own and no library state carries over from the previous measurement."""

from __future__ import annotations

import multiprocessing as mp
import queue as queues
import resource
from collections.abc import Callable
from typing import Any


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (MB). Read before a measurement starts, it
    is the baseline (interpreter, libraries, data) that the measurement's peak includes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(fn: Callable[..., dict], args: tuple, queue: Any) -> None:
    out = fn(*args)
    out.setdefault("peak_rss_mb", peak_rss_mb())
    queue.put(out)


def run_in_child(fn: Callable[..., dict], *args: object) -> dict:
    """``fn(*args)`` (a module-level function returning a dict) in a spawned process; the
    dict comes back with ``peak_rss_mb``, the child's peak resident memory, added."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    while True:
        try:
            out = queue.get(timeout=1.0)
            break
        except queues.Empty:
            if not proc.is_alive():  # it raised: its traceback is already on stderr
                raise SystemExit(f"{fn.__name__} failed in its child process") from None
    proc.join()
    return out
