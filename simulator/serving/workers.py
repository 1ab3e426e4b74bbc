"""Helper processes that run independent jobs (iteration-shape simulations) on the other cores.

Contract: ``JobWorkers(run, count)`` calls ``run(job)`` for a batch of jobs with ``map(jobs)``,
in the order given, and returns exactly what calling ``run`` on each job in this process would:
``run`` must be deterministic and free of side effects the caller needs (its results are the
only thing that comes back). With ``count`` >= 2 and a batch of two or more jobs, a
``concurrent.futures.ProcessPoolExecutor`` of ``count`` helper processes is forked from this one
(at the first such batch, and again after ``close()``, so they inherit its imports, compiled
numba kernels and the objects ``run`` uses; ``run`` reaches them through the fork, unpickled, while
jobs and results are pickled) and takes the jobs as helpers free up, while this process waits
(the first such batch runs one job here before forking, so that the helpers inherit what it
loaded); otherwise (and in a process running other threads, which ``fork`` is not safe from) the
jobs run here. A job that fails in a helper is run again here, so errors surface with their own
type and traceback; a helper that dies breaks the pool: the batch's unfinished jobs run here and
the next batch forks a new set. ``close()`` (idempotent; also called when the object is collected,
and at exit) ends the helpers; so does another ``JobWorkers`` starting its own (one set of
helpers per process: runs take turns).

``default_workers()`` is how many to use when the caller does not say: ``TESSERA_SERVING_WORKERS``
if set, else the cores this process may run on (at most 4; on a machine other work keeps busy,
``TESSERA_SERVING_WORKERS=1`` may be faster: helpers compete for the same cores), but 1 where
forking helpers is not safe or not wanted: not on Linux (``fork`` is only safe there), or
inside a process that is itself a worker of another pool (a sweep's process pool or a Dask
worker: the pool already uses the cores), or a daemonic process (which may not have children).
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import signal
import sys
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.reduction import ForkingPickler
from types import MappingProxyType
from typing import Any

__all__ = ["JobWorkers", "default_workers", "relaxed_gc", "WORKERS_ENV"]

WORKERS_ENV = "TESSERA_SERVING_WORKERS"
GC_YOUNG_THRESHOLD = 20_000  # allocations between young-generation collections while simulating
MAX_DEFAULT_WORKERS = 4  # beyond this, batches of misses (up to ~12 shapes) rarely keep more busy


def default_workers() -> int:
    """Helper processes to use by default (see the module docstring)."""
    env = os.environ.get(WORKERS_ENV, "").strip()
    if env:
        if not (env.isdigit() and int(env) >= 1):
            from workloads.errors import ConfigError, Problem

            raise ConfigError(Problem("environment", WORKERS_ENV, f"expected a whole number of shape workers "
                                      f">= 1 (1: no helper processes), found {env!r}"))
        return int(env)
    if not sys.platform.startswith("linux"):  # pragma: no cover - only Linux runs the tests
        return 1
    if multiprocessing.parent_process() is not None or multiprocessing.current_process().daemon:
        return 1
    return max(1, min(MAX_DEFAULT_WORKERS, len(os.sched_getaffinity(0))))


@contextlib.contextmanager
def relaxed_gc(young: int = GC_YOUNG_THRESHOLD) -> Iterator[None]:
    """Run the block with the cyclic garbage collector's first threshold at least ``young``
    (restored after): lowering a graph allocates hundreds of thousands of objects, few of them in
    cycles, and at the default threshold (700) collecting took 10-20 % of a shape's time."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], young), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def _mapping(d: dict) -> MappingProxyType:
    return MappingProxyType(d)


# results come back pickled by multiprocessing: read-only mappings (``LayerResult.counters``) as dicts
ForkingPickler.register(MappingProxyType, lambda m: (_mapping, (dict(m),)))


def _no_workers() -> None:
    return None


_LAST: Callable[[], JobWorkers | None] = _no_workers  # the JobWorkers whose helpers run, if any
_RUN: Callable[[Any], Any] | None = None  # in a helper: the ``run`` it inherited


def _single_threaded() -> bool:
    return threading.active_count() == 1


def _helper_init(run: Callable[[Any], Any]) -> None:
    """In a new helper: keep ``run`` (handed over by the fork, not pickled), leave Ctrl-C to the
    parent, and keep the collector off what the fork inherited (it lives as long as the helper;
    traversing it would also copy every inherited page) and rarely on young objects."""
    global _RUN
    _RUN = run
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.freeze()
    gc.set_threshold(max(gc.get_threshold()[0], GC_YOUNG_THRESHOLD), *gc.get_threshold()[1:])


def _call(job: Any) -> Any:
    return _RUN(job)


class JobWorkers:
    """Run batches of jobs on forked helper processes (see the module docstring)."""

    def __init__(self, run: Callable[[Any], Any], count: int):
        self.run, self.count = run, max(1, int(count))
        self._pool: ProcessPoolExecutor | None = None
        self._shutdown: Callable[[], Any] = _no_workers  # ends the pool's helpers (once)
        self.remote_jobs = 0  # jobs the helpers ran

    def _start(self) -> None:
        global _LAST
        if not sys.platform.startswith("linux"):  # fork is unsafe there
            return
        last = _LAST()
        if last is not None and last is not self:  # one set of helpers per process: runs take turns
            last.close()
        if not _single_threaded():  # fork is unsafe with other threads running
            return
        try:  # the helpers fork at the first submit, before the pool starts its own thread
            self._pool = ProcessPoolExecutor(self.count, mp_context=multiprocessing.get_context("fork"),
                                             initializer=_helper_init, initargs=(self.run,))
        except (OSError, ImportError, NotImplementedError):  # no working semaphores here: run here
            return
        self._shutdown = weakref.finalize(self, self._pool.shutdown, cancel_futures=True)
        _LAST = weakref.ref(self)

    def _submit(self, job: Any) -> Future | None:
        try:
            return None if self._pool is None else self._pool.submit(_call, job)
        except BrokenProcessPool:  # a helper died since the last batch
            return None

    def map(self, jobs: Sequence[Any]) -> list[Any]:
        """``[run(job) for job in jobs]``, on the helpers when there are several jobs."""
        if len(jobs) < 2 or self.count < 2:
            return [self.run(j) for j in jobs]
        out: list[Any] = []
        if self._pool is None:  # one job here first: the helpers inherit what it loaded and warmed up
            out.append(self.run(jobs[0]))
            jobs = jobs[1:]
            self._start()
        futures = [self._submit(j) for j in jobs]
        try:
            for job, f in zip(jobs, futures):
                if f is not None and f.exception() is None:
                    out.append(f.result())
                    self.remote_jobs += 1
                else:  # failed in a helper (or it died, or no helper): here, the real error surfaces
                    out.append(self.run(job))
        except BaseException:  # an error, or interrupted: the jobs not started are not run
            for f in futures:
                if f is not None:
                    f.cancel()
            raise
        if any(f is None or isinstance(f.exception(), BrokenProcessPool) for f in futures):
            self.close()  # a dead helper broke the pool: the next batch forks a new one
        return out

    def close(self) -> None:
        """End the helper processes (idempotent; a later batch forks new ones)."""
        self._shutdown()
        self._pool = None
