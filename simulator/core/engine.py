"""The numba engine: validate, flatten, run the kernel, attribute stalls, assemble the result.

Contract: ``simulate(program)`` returns a ``CoreRun`` with every task's start, completion,
ready time and lane (and, with ``record_events=True``, the processed events in order);
``NumbaEngine().run(program)`` turns it into a ``SimResult`` with a task-level ``Timeline``.
A program that cannot finish raises ``ProgramError`` naming waiting tasks and what they wait
for. The kernels are compiled on first use and cached on disk (``cache=True``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from simulator.engines import assemble_result, register_engine
from simulator.program import COMPUTE, LoweredProgram, ProgramError
from simulator.result import ResourceStats, SimResult, Timeline

__all__ = ["NumbaEngine", "CoreRun", "EventLog", "simulate", "stuck_error"]


class EventLog(NamedTuple):
    """Processed events in order: ``kind`` is END (0), FREE (1) or DISPATCH (2); ``id`` is the
    task (END, FREE) or resource (DISPATCH)."""

    time: np.ndarray
    priority: np.ndarray
    seq: np.ndarray
    kind: np.ndarray
    id: np.ndarray


class CoreRun(NamedTuple):
    start: np.ndarray  # int64 [n]
    end: np.ndarray  # int64 [n] completion
    busy: np.ndarray  # int64 [n] cycles the task held its lane
    ready: np.ndarray  # int64 [n] latest dependency completion
    last_transfer: np.ndarray  # bool [n] a transfer completed last (ties: a transfer)
    lane: np.ndarray  # int32 [n]
    resource_busy: np.ndarray  # int64 [R] lane-cycles
    n_events: int
    events: EventLog | None


def stuck_error(program: LoweredProgram, end: np.ndarray, now: int, limit: int = 5) -> ProgramError:
    """The error for a run that ran out of events with tasks unfinished."""
    unfinished = np.nonzero(end < 0)[0]
    lines = []
    for t in unfinished[:limit]:
        waits = [int(d) for d in program.deps(int(t)) if end[d] < 0]
        what = ", ".join(program.task_name(d) for d in waits[:4]) + (" ..." if len(waits) > 4 else "")
        lines.append(f"{program.task_name(int(t))} waits for {what or 'its resource'}")
    more = f"; and {len(unfinished) - limit} more" if len(unfinished) > limit else ""
    return ProgramError(f"no event pending at cycle {now} but {len(unfinished)} of {program.n_tasks} "
                        f"tasks are unfinished (a dependency cycle?): {'; '.join(lines)}{more}")


def simulate(program: LoweredProgram, *, record_events: bool = False, validate: bool = True) -> CoreRun:
    """Run ``program`` event by event (see ``simulator.core.kernel`` for the rules)."""
    from simulator.core.flat import flatten
    from simulator.core.kernel import run_events

    if validate:
        program.validate()
    f = flatten(program)
    (start, end, ready, last_tr, lane, busy, n_done, n_events, lt, lp, ls, lk, li) = run_events(
        f.kind, f.res, f.occ, f.lat, f.prio, f.ndeps, f.user_ptr, f.user_idx, f.lanes, f.res_ptr,
        f.lane_ptr, record_events)
    if n_done < program.n_tasks:
        raise stuck_error(program, end, int(end.max(initial=0)))
    events = EventLog(lt, lp, ls, lk, li) if record_events else None
    return CoreRun(start, end, f.occ, ready, last_tr.astype(bool), lane, busy, int(n_events), events)


def task_timeline(program: LoweredProgram, run: CoreRun) -> Timeline:
    return Timeline(
        level="task", start=run.start, end=run.end, busy=run.busy, lane=run.lane,
        resource=program.resource, layer=program.layer, kind=program.kind,
        cycles=np.where(program.kind == COMPUTE, program.cycles, 0), nbytes=program.nbytes,
        count=program.count, labels=program.labels or tuple(f"task {t}" for t in range(program.n_tasks)),
        resource_names=tuple(r.name for r in program.resources),
        resource_kinds=tuple(r.kind for r in program.resources),
        resource_lanes=tuple(r.lanes for r in program.resources))


def resource_stats(program: LoweredProgram, run: CoreRun, total: int) -> list[ResourceStats]:
    n_res = len(program.resources)
    tasks = np.bincount(program.resource, minlength=n_res)
    moved = np.zeros(n_res, dtype=np.int64)
    np.add.at(moved, program.resource, np.where(program.kind == COMPUTE, 0, program.nbytes))
    return [ResourceStats(r.name, r.kind, int(run.resource_busy[i]), r.lanes * total - int(run.resource_busy[i]),
                          int(tasks[i]), int(moved[i]) if r.kind == "channel" else 0)
            for i, r in enumerate(program.resources)]


@register_engine("numba")
class NumbaEngine:
    """Event-driven core: the program's tasks on flat arrays, one numba-compiled event loop."""

    name = "numba"

    def run(self, program: LoweredProgram, *, experiment: str = "", architecture: str = "",
            workload: str = "") -> SimResult:
        from simulator.core.stalls import layer_timing

        run = simulate(program)
        total = int(run.end.max(initial=0))
        timing = layer_timing(len(program.layers), program.layer, program.kind,
                              np.where(program.kind == COMPUTE, program.cycles, 0), run.start, run.end,
                              run.ready, run.last_transfer)
        return assemble_result(program, self.name, total, timing, resource_stats(program, run, total),
                               experiment=experiment, architecture=architecture, workload=workload,
                               extra={}, timeline=task_timeline(program, run))
