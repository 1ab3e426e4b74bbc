"""Where design points run: in this process, in local worker processes, or on a Dask cluster.

Contract: ``backend.map(fn, ctx, tasks)`` calls ``fn(ctx, task)`` for every task and yields the
rows as they finish (in completion order). ``fn`` must be a module-level function (it is sent to
other processes by name) that returns a row and does not raise for a bad point
(``simulator.dse.evaluate.evaluate``). Whatever the backend, a task's row is the same: the
backends only change where and when it runs.

Worker death: with processes, when a worker dies (the pool breaks) the points that were in
flight are run again one at a time in a fresh pool; a point that kills its worker while running
alone is yielded with ``status: "lost"``. Dask retries a task whose worker died (up to its
``distributed.scheduler.allowed-failures``); the backend then runs the points of a failed
chunk one per task and reports a point lost only when it fails alone. ``--resume`` runs lost
points again.

Connecting to a scheduler (``--cluster tcp://...``) is ``simulator.dse.cluster.connect``: bad
addresses, listeners that are not Dask schedulers, hangs and schedulers without workers are
``ConfigError``s within seconds. A process pool whose workers cannot start at all (spawn cannot
import the main script again) is a ``ConfigError`` too, not a column of lost points.

Dask sends points in chunks of up to ``MAX_CHUNK`` per task (at least 4 chunks per worker),
which keeps the scheduler's per-task cost (a few ms) small next to a point's.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from simulator.dse.evaluate import EvalContext, Task, evaluate_in_worker
from simulator.dse.extras import require
from workloads.errors import ConfigError, Problem

__all__ = ["Backend", "InlineBackend", "ProcessBackend", "DaskBackend", "make_backend", "lost_row",
           "CONNECT_TIMEOUT_S"]

CONNECT_TIMEOUT_S = 3.0


def lost_row(task: Task, reason: str) -> dict[str, Any]:
    index, pid, values = task
    return {"point": index, "point_id": pid, "params": dict(values), "status": "lost",
            "error": reason, "metrics": {}, "wall_s": 0.0}


class Backend:
    """Base: a context manager with ``map``; ``workers`` is how many points run at once."""

    name = "?"
    workers = 1

    def map(self, fn: Callable, ctx: EvalContext, tasks: Iterable[Task]) -> Iterator[dict]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def warm_up(self) -> None:
        """Start the workers before timing anything (no-op where there is nothing to start)."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def describe(self) -> str:
        return f"{self.name} ({self.workers} worker{'s' if self.workers != 1 else ''})"


class InlineBackend(Backend):
    """Points run one after another in this process (no start-up cost; for small runs and tests)."""

    name = "inline"
    workers = 1

    def map(self, fn: Callable, ctx: EvalContext, tasks: Iterable[Task]) -> Iterator[dict]:
        for task in tasks:
            try:
                yield fn(ctx, task)
            except Exception as exc:  # noqa: BLE001 - fn broke its contract; keep going
                yield lost_row(task, f"{type(exc).__name__}: {exc}")


class ProcessBackend(Backend):
    """A pool of ``workers`` local processes started with ``spawn`` (safe with numba and threads).

    The pool starts on the first ``map`` and is kept for later calls (a search maps one batch
    at a time) until ``close``; a pool broken by a dying worker is replaced."""

    name = "processes"

    def __init__(self, workers: int | None = None):
        self.workers = max(1, int(workers or os.cpu_count() or 1))
        self._pool: ProcessPoolExecutor | None = None
        self._finished = 0  # points any pool of this backend has returned

    def _ensure_pool(self, fresh: bool = False) -> ProcessPoolExecutor:
        if fresh:
            self._shutdown()
        if self._pool is None:
            check_spawnable()
            self._pool = ProcessPoolExecutor(max_workers=self.workers,
                                             mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def _shutdown(self) -> None:
        if self._pool is not None:
            # wait: a pool left to wind down on its own is woken again at interpreter exit,
            # through pipes a broken pool has already closed
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def warm_up(self) -> None:
        """Start the workers now (they import the simulator), so that timing excludes it."""
        pool = self._ensure_pool()
        for f in [pool.submit(_ready) for _ in range(self.workers)]:
            f.result()

    def map(self, fn: Callable, ctx: EvalContext, tasks: Iterable[Task]) -> Iterator[dict]:
        pending = deque(tasks)
        suspects: deque[Task] = deque()  # in flight when a worker died: rerun one at a time
        inflight: dict = {}  # future -> (task, isolated)
        # Finished futures arrive through a queue filled by their done-callbacks: unlike
        # concurrent.futures.wait, a blocking SimpleQueue.get can be interrupted (Ctrl-C)
        # without leaving futures' locks held, which would hang the pool at exit.
        finished: queue.SimpleQueue = queue.SimpleQueue()
        limit = 2 * self.workers
        pool = self._ensure_pool()

        def submit(task: Task, isolated: bool) -> None:
            fut = pool.submit(evaluate_in_worker, fn, ctx, task)
            inflight[fut] = (task, isolated)
            fut.add_done_callback(finished.put)

        completed = False
        try:
            while pending or suspects or inflight:
                if suspects:
                    if not inflight:
                        submit(suspects.popleft(), True)
                else:
                    while pending and len(inflight) < limit:
                        submit(pending.popleft(), False)
                fut = finished.get()
                if fut not in inflight:
                    continue  # from a pool replaced after a worker died
                task, isolated = inflight.pop(fut)
                row, broken = self._outcome(fut, task, isolated)
                if broken and isolated and not self._finished:
                    self._check_workers_start()  # raises if no worker can start at all
                if row is not None:
                    self._finished += not broken
                    yield row
                elif broken:
                    suspects.append(task)
                if broken:
                    for other, (t, iso) in list(inflight.items()):
                        r = self._outcome(other, t, iso)[0] if other.done() else None
                        if r is not None:
                            yield r
                        else:
                            suspects.append(t)
                    inflight.clear()
                    pool = self._ensure_pool(fresh=True)
            completed = True
        finally:
            if not completed:  # the caller stopped early (an error, Ctrl-C): stop the workers now
                for fut in inflight:
                    fut.cancel()
                self._terminate()

    def _check_workers_start(self) -> None:
        """After a point was lost alone and no point has ever finished: can a worker start at
        all? A fresh pool runs a no-op; if that breaks too, every point would be 'lost' for a
        reason that is not theirs, so stop with what happened."""
        pool = self._ensure_pool(fresh=True)
        try:
            pool.submit(_ready).result()
        except BrokenProcessPool:
            self._terminate()
            raise ConfigError(Problem(None, "--workers", "no worker process could start: each one exited "
                                      "before running anything (its error is printed above by the worker). "
                                      "Workers are started with 'spawn', which imports the main script again: "
                                      "run it from a file, with the study behind an "
                                      "'if __name__ == \"__main__\":' guard, or run the points in this "
                                      "process (--workers 0, workers=0)")) from None
        self._ensure_pool(fresh=True)

    def _terminate(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def _outcome(fut, task: Task, isolated: bool) -> tuple[dict | None, bool]:
        """(row or None to retry, whether the pool broke)."""
        try:
            return fut.result(), False
        except BrokenProcessPool:
            if isolated:
                return lost_row(task, "the worker process died while running this point alone "
                                "(killed, out of memory or crashed); --resume runs it again"), True
            return None, True
        except Exception as exc:  # noqa: BLE001 - e.g. a row that cannot be pickled
            return lost_row(task, f"{type(exc).__name__}: {exc}"), False

    def close(self) -> None:
        self._shutdown()


MAX_CHUNK = 8


def check_spawnable() -> None:
    """ConfigError if worker processes cannot be started with 'spawn' from this program: spawn
    runs the main script again in each worker, which is impossible when it is not a file (a
    script fed on stdin: its ``__file__`` is '<stdin>')."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is not None and not os.path.exists(path):
        raise ConfigError(Problem(None, "--workers", f"worker processes cannot start from this program: "
                                  f"they are started with 'spawn', which runs the main script again, and "
                                  f"the main script '{path}' is not a file (a script read from stdin?); "
                                  "save it to a file, or run the points in this process (--workers 0, "
                                  "workers=0)"))


def evaluate_chunk(fn: Callable, ctx: EvalContext, tasks: list[Task]) -> list[dict]:
    """Run ``fn(ctx, task)`` for a few tasks in one Dask task (module level: workers import it)."""
    return [fn(ctx, task) for task in tasks]


def _ready() -> bool:
    import simulator.dse.evaluate  # noqa: F401
    import simulator.run  # noqa: F401

    return True


class DaskBackend(Backend):
    """Points run as Dask tasks: on ``LocalCluster`` (``address="local"``) or an existing scheduler."""

    name = "dask"

    def __init__(self, address: str = "local", workers: int | None = None,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S):
        distributed = require("distributed", "--cluster")
        self._cluster = None
        self.address = address
        if address == "local":
            import dask

            n = max(1, int(workers or os.cpu_count() or 1))
            # the workers' statistical profiler samples every task's stack every 10 ms: a few ms
            # per point of pure-Python simulation that nobody reads here
            with dask.config.set({"distributed.worker.profile.enabled": False}):
                self._cluster = distributed.LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                    silence_logs=logging.ERROR)
            self.client = distributed.Client(self._cluster)
        else:
            from simulator.dse.cluster import connect

            self.client = connect(address, connect_timeout_s)  # ConfigError, never a hang
        self.workers = max(1, sum(self.client.nthreads().values()))

    def map(self, fn: Callable, ctx: EvalContext, tasks: Iterable[Task]) -> Iterator[dict]:
        distributed = require("distributed", "--cluster")
        pending = deque(tasks)
        # Points travel in chunks of a few (one Dask task each), so that the scheduler's per-task
        # cost is shared; a chunk that fails (its worker died, after Dask's own retries) is split
        # and its points run one per task, so only a point that kills its worker alone is lost.
        # The context travels with each task (a few kB) rather than scattered once: data
        # scattered to a worker that dies is lost for good, and every task needing it with it.
        chunk = max(1, min(MAX_CHUNK, len(pending) // (4 * self.workers)))
        singles: deque[Task] = deque()
        futures: dict = {}  # future -> list of tasks
        queue = distributed.as_completed()
        limit = 2 * self.workers

        def submit() -> None:
            while (singles or pending) and len(futures) < limit:
                if singles:
                    part = [singles.popleft()]
                else:
                    part = [pending.popleft() for _ in range(min(chunk, len(pending)))]
                fut = self.client.submit(evaluate_chunk, fn, ctx, part, pure=False)
                futures[fut] = part
                queue.add(fut)

        submit()
        try:
            for fut in queue:
                part = futures.pop(fut)
                try:
                    rows = fut.result()
                except Exception as exc:  # noqa: BLE001 - KilledWorker and friends
                    if len(part) > 1:
                        singles.extend(part)
                        rows = []
                    else:
                        rows = [lost_row(part[0], f"{type(exc).__name__}: {exc}; --resume runs it again")]
                fut.release()
                yield from rows
                submit()
        finally:
            for fut in futures:
                fut.cancel()

    def warm_up(self) -> None:
        self.client.run(_ready)

    def describe(self) -> str:
        where = "local cluster" if self._cluster is not None else self.address
        return f"dask {where} ({self.workers} worker{'s' if self.workers != 1 else ''})"

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()


def make_backend(workers: int | None = None, cluster: str | None = None) -> Backend:
    """``--cluster`` (Dask), else ``--workers`` local processes; ``workers=0`` runs inline."""
    if cluster:
        return DaskBackend(cluster, workers, connect_timeout_s=CONNECT_TIMEOUT_S)
    if workers == 0:
        return InlineBackend()
    return ProcessBackend(workers)
