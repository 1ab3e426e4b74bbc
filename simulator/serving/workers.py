"""Helper processes that run independent jobs (iteration-shape simulations) on the other cores.

Contract: ``JobWorkers(run, count)`` calls ``run(job)`` for a batch of jobs with ``map(jobs)``,
in the order given, and returns exactly what calling ``run`` on each job in this process would:
``run`` must be deterministic and free of side effects the caller needs (its results are the
only thing that comes back). With ``count`` >= 2 and a batch of two or more jobs, ``count``
helper processes are forked from this one (at the first such batch, and again after ``close()``,
so they inherit its imports, compiled numba kernels and the objects ``run`` uses) and take the jobs one at a time as
they free up, while this process waits (the first such batch runs one job here before forking,
so that the helpers inherit what it loaded); otherwise (and in a process running other threads,
which ``fork`` is not safe from) the jobs run here. A job that fails in a helper, or a helper
that dies, is run again here, so errors surface with their own type and traceback. ``close()``
(also called when the object is collected, and at exit) ends the helpers; so does another
``JobWorkers`` starting its own (one set of helpers per process: runs take turns).

``default_workers()`` is how many to use when the caller does not say: ``TESSERA_SERVING_WORKERS``
if set, else the cores this process may run on (at most 4; on a machine other work keeps busy,
``TESSERA_SERVING_WORKERS=1`` may be faster: helpers compete for the same cores), but 1 where
forking helpers is not safe or not wanted: not on Linux (``fork`` is only safe there), or
inside a process that is itself a worker of another pool (a sweep's process pool or a Dask
worker: the pool already uses the cores), or a daemonic process (which may not have children).
"""

from __future__ import annotations

import contextlib
import copyreg
import gc
import io
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
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


def _no_workers() -> None:
    return None


_LAST: Callable[[], JobWorkers | None] = _no_workers  # the JobWorkers whose helpers run, if any


def _single_threaded() -> bool:
    return threading.active_count() == 1


def _mapping(d: dict) -> MappingProxyType:
    return MappingProxyType(d)


def _dumps(obj: Any) -> bytes:
    """Pickle, with read-only mappings (``LayerResult.counters``) sent as dicts and rebuilt."""
    buf = io.BytesIO()
    p = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    p.dispatch_table = copyreg.dispatch_table.copy()
    p.dispatch_table[MappingProxyType] = lambda m: (_mapping, (dict(m),))
    p.dump(obj)
    return buf.getvalue()


def _serve(run: Callable[[Any], Any], conn: Connection, parents: list[Connection]) -> None:
    """A helper's loop: a job in, ``(True, result)`` or ``(False, None)`` out, until the pipe closes.
    ``parents``: the parent's ends of the pipes, inherited by the fork; closed here, so that the
    parent closing its end is seen as the end of the input."""
    for c in parents:
        c.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes the pipe
    # what the fork inherited lives as long as this process: keep the collector off it (its
    # traversals would also copy every inherited page), and collect young objects rarely
    gc.freeze()
    gc.set_threshold(max(gc.get_threshold()[0], GC_YOUNG_THRESHOLD), *gc.get_threshold()[1:])
    while True:
        try:
            job = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        try:
            out = _dumps((True, run(job)))
        except Exception:  # the parent runs it again and raises the real error
            out = _dumps((False, None))
        conn.send_bytes(out)


def _stop(procs: list, conns: list) -> None:
    for c in conns:
        c.close()
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.terminate()
            p.join(timeout=5)
    procs.clear()
    conns.clear()


class JobWorkers:
    """Run batches of jobs on forked helper processes (see the module docstring)."""

    def __init__(self, run: Callable[[Any], Any], count: int):
        self.run, self.count = run, max(1, int(count))
        self._procs: list = []
        self._conns: list[Connection] = []
        self._started = False
        self._finalizer = weakref.finalize(self, _stop, self._procs, self._conns)
        self.remote_jobs = 0  # jobs the helpers ran

    def _start(self) -> None:
        global _LAST
        self._started = True
        if not sys.platform.startswith("linux") or not _single_threaded():  # fork is unsafe there
            return
        last = _LAST()
        if last is not None and last is not self:  # one set of helpers per process: runs take turns
            last.close()
        _LAST = weakref.ref(self)
        ctx = multiprocessing.get_context("fork")
        for _ in range(self.count):
            mine, theirs = ctx.Pipe()
            p = ctx.Process(target=_serve, args=(self.run, theirs, [*self._conns, mine]), daemon=True,
                            name="tessera-shape-worker")
            try:
                p.start()
            except OSError:  # cannot fork (limits): run here
                mine.close()
                break
            finally:
                theirs.close()
            self._procs.append(p)
            self._conns.append(mine)

    def map(self, jobs: Sequence[Any]) -> list[Any]:
        """``[run(job) for job in jobs]``, on the helpers when there are several jobs."""
        if len(jobs) < 2 or self.count < 2:
            return [self.run(j) for j in jobs]
        if not self._started:  # one job here first: the helpers inherit what it loaded and warmed up
            first = self.run(jobs[0])
            self._start()
            return [first, *self.map(jobs[1:])]
        out: list[Any] = [None] * len(jobs)
        again: list[int] = []  # failed in a helper: run here
        todo = list(range(len(jobs)))[::-1]  # popped from the end: in order
        busy: dict[Connection, int] = {}

        def give(c: Connection) -> None:
            i = todo.pop()
            try:
                c.send_bytes(_dumps(jobs[i]))
            except (OSError, ValueError):  # a dead helper
                self._drop(c)
                again.append(i)
                return
            busy[c] = i

        try:
            for c in list(self._conns):
                if todo:
                    give(c)
            while busy:
                for c in wait(list(busy)):
                    i = busy.pop(c)
                    try:
                        ok, val = pickle.loads(c.recv_bytes())
                    except (EOFError, OSError):
                        self._drop(c)
                        ok, val = False, None
                    if ok:
                        out[i] = val
                        self.remote_jobs += 1
                    else:
                        again.append(i)
                    if todo and c in self._conns:
                        give(c)
        except BaseException:  # interrupted with jobs in flight: their answers must not reach a later batch
            self.close()
            raise
        for i in sorted(again + todo):  # failures, and whatever no helper was left to take
            out[i] = self.run(jobs[i])
        return out

    def _drop(self, c: Connection) -> None:
        k = self._conns.index(c)
        self._conns.pop(k).close()
        p = self._procs.pop(k)
        p.join(timeout=1)

    def close(self) -> None:
        """End the helper processes (idempotent; a later batch forks new ones)."""
        _stop(self._procs, self._conns)
        self._started = False
