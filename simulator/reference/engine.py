"""The reference engine: a ``LoweredProgram`` as simpy processes, written to be read.

How the model works (the numba core follows the same rules; ``simulator/README.md``):

- Every unit and every channel is one simpy process (``_resource``). It sleeps until its *bell*
  rings, then starts waiting tasks on its idle lanes, best first: the smallest
  ``(ready time, priority, task id)``.
- A started task is a short process (``_hold``): a compute task holds its lane for its cycles;
  a transfer holds its channel for ``ceil(bytes / bytes_per_cycle)`` cycles, releases it, and
  its data arrives ``latency`` cycles later.
- When a task completes, the tasks waiting for it are told (``_complete``); a task whose last
  dependency completed joins its resource's waiting list, and the resource's bell rings.
- simpy orders its event queue by ``(time, priority, event id)``. Our events use priority 2
  for completions (``END``, and a transfer's ``FREE`` of its channel) and 3 for bells
  (``DISPATCH``), so at any time every completion already due is applied before a resource
  chooses its next task. simpy's own events (0, 1: starting a process) only run our code in
  the order we scheduled it, so our events are processed in the order of
  ``(time, priority, sequence)``, where *sequence* counts the events we scheduled before.
"""

from __future__ import annotations

import heapq
from typing import NamedTuple

import numpy as np
import simpy

from simulator.engines import LayerTiming, assemble_result, register_engine
from simulator.program import COMPUTE, LoweredProgram, ProgramError
from simulator.result import ResourceStats, SimResult, Timeline

__all__ = ["SimpyEngine", "ReferenceRun", "simulate"]

END, FREE, DISPATCH = 0, 1, 2  # event kinds, as in simulator.core.kernel
COMPLETION_PRIORITY, DISPATCH_PRIORITY = 2, 3  # simpy uses 0 (URGENT) and 1 (NORMAL) itself


class _Signal(simpy.Event):
    """An event that succeeds ``delay`` cycles after ``fire`` with an explicit queue priority.

    ``Event.succeed()`` always queues with simpy's NORMAL priority; like simpy's own ``Timeout``,
    ``fire`` sets the outcome and hands the event to ``Environment.schedule`` itself.
    """

    def fire(self, delay: int, priority: int, kind: int, ident: int, seq: int) -> "_Signal":
        self.kind, self.ident, self.priority, self.seq = kind, ident, priority, seq
        self._ok = True
        self._value = None
        self.env.schedule(self, priority, delay)
        return self


class ReferenceRun(NamedTuple):
    start: list[int]
    end: list[int]
    busy: list[int]  # cycles each task held its lane
    ready: list[int]
    last_transfer: list[bool]
    lane: list[int]
    events: list[tuple[int, int, int, int, int]]  # (time, priority, seq, kind, id), in order


class _Model:
    def __init__(self, program: LoweredProgram):
        self.program = program
        self.env = simpy.Environment()
        n = program.n_tasks
        resources = program.resources
        self.res = [int(r) for r in program.resource]
        self.is_transfer = [int(k) != COMPUTE for k in program.kind]
        self.priority = [int(p) for p in program.priority]
        self.occupancy = [program.duration(t) for t in range(n)]  # cycles, or ceil(bytes / bandwidth)
        self.latency = [resources[self.res[t]].latency_cycles if self.is_transfer[t] else 0
                        for t in range(n)]
        self.users: list[list[int]] = [[] for _ in range(n)]
        for t in range(n):
            for d in program.deps(t):
                self.users[int(d)].append(t)
        self.remaining = [len(program.deps(t)) for t in range(n)]
        self.ready = [0] * n
        self.last_transfer = [False] * n
        self.start = [-1] * n
        self.end = [-1] * n
        self.lane = [-1] * n
        self.waiting: list[list[tuple[int, int, int]]] = [[] for _ in resources]  # heaps
        self.idle_lanes = [list(reversed(range(r.lanes))) for r in resources]  # stacks
        self.bell = [_Signal(self.env) for _ in resources]
        self.bell_rung = [False] * len(resources)
        self.seq = 0
        self.events: list[tuple[int, int, int, int, int]] = []
        for r in range(len(resources)):
            self.env.process(self._resource(r))
        for t in range(n):
            if self.remaining[t] == 0:
                self._release(t)

    # -- events -----------------------------------------------------------------------------
    def _signal(self, delay: int, kind: int, ident: int, event: _Signal | None = None) -> _Signal:
        """Schedule one of our events ``delay`` cycles from now (a new one unless given)."""
        priority = DISPATCH_PRIORITY if kind == DISPATCH else COMPLETION_PRIORITY
        event = event or _Signal(self.env)
        event.fire(delay, priority, kind, ident, self.seq)
        self.seq += 1
        return event

    def _processed(self, event: _Signal) -> None:
        self.events.append((int(self.env.now), event.priority, event.seq, event.kind, event.ident))

    # -- processes --------------------------------------------------------------------------
    def _resource(self, r: int):
        """A unit or channel: whenever its bell rings, fill idle lanes with the best waiting tasks."""
        while True:
            yield self.bell[r]
            self._processed(self.bell[r])
            self.bell[r] = _Signal(self.env)
            self.bell_rung[r] = False
            while self.idle_lanes[r] and self.waiting[r]:
                _ready, _priority, task = heapq.heappop(self.waiting[r])
                self.env.process(self._hold(task, self.idle_lanes[r].pop()))

    def _hold(self, t: int, lane: int):
        """A started task: hold a lane for its occupancy, then deliver its result."""
        r = self.res[t]
        self.start[t] = int(self.env.now)
        self.lane[t] = lane
        if not self.is_transfer[t]:
            done = self._signal(self.occupancy[t], END, t)
            yield done
            self._processed(done)
            self._lane_idle(r, lane)
            self._complete(t)
        else:
            free = self._signal(self.occupancy[t], FREE, t)
            arrived = self._signal(self.occupancy[t] + self.latency[t], END, t)
            yield free
            self._processed(free)
            self._lane_idle(r, lane)
            yield arrived
            self._processed(arrived)
            self._complete(t)

    # -- bookkeeping ------------------------------------------------------------------------
    def _complete(self, t: int) -> None:
        """Task ``t`` completed now: tell the tasks waiting for it."""
        now = int(self.env.now)
        self.end[t] = now
        for u in self.users[t]:
            if now > self.ready[u]:  # the latest dependency so far
                self.ready[u] = now
                self.last_transfer[u] = self.is_transfer[t]
            elif now == self.ready[u] and self.is_transfer[t]:  # a tie: a transfer counts
                self.last_transfer[u] = True
            self.remaining[u] -= 1
            if self.remaining[u] == 0:
                self._release(u)

    def _release(self, t: int) -> None:
        """All of ``t``'s dependencies are done: it waits for a lane of its resource."""
        r = self.res[t]
        heapq.heappush(self.waiting[r], (self.ready[t], self.priority[t], t))
        self._ring(r)

    def _lane_idle(self, r: int, lane: int) -> None:
        self.idle_lanes[r].append(lane)
        self._ring(r)

    def _ring(self, r: int) -> None:
        """Wake resource ``r`` if it has an idle lane, a waiting task, and no wake-up pending."""
        if not self.bell_rung[r] and self.idle_lanes[r] and self.waiting[r]:
            self.bell_rung[r] = True
            self._signal(0, DISPATCH, r, self.bell[r])

    def run(self) -> ReferenceRun:
        self.env.run()
        if any(e < 0 for e in self.end):
            raise _stuck(self.program, self.end, int(self.env.now))
        return ReferenceRun(self.start, self.end, self.occupancy, self.ready, self.last_transfer,
                            self.lane, self.events)


def _stuck(program: LoweredProgram, end: list[int], now: int, limit: int = 5) -> ProgramError:
    unfinished = [t for t in range(program.n_tasks) if end[t] < 0]
    lines = []
    for t in unfinished[:limit]:
        waits = [program.task_name(int(d)) for d in program.deps(t) if end[int(d)] < 0]
        lines.append(f"{program.task_name(t)} waits for {', '.join(waits) or 'its resource'}")
    more = f"; and {len(unfinished) - limit} more" if len(unfinished) > limit else ""
    return ProgramError(f"no event pending at cycle {now} but {len(unfinished)} of {program.n_tasks} "
                        f"tasks are unfinished (a dependency cycle?): {'; '.join(lines)}{more}")


def simulate(program: LoweredProgram, *, validate: bool = True) -> ReferenceRun:
    """Run ``program`` with simpy; every task's times, and every processed event in order."""
    if validate:
        program.validate()
    return _Model(program).run()


def layer_timing(program: LoweredProgram, run: ReferenceRun) -> LayerTiming:
    """Per-layer spans and stall attribution (the rules are in ``simulator/README.md``)."""
    timing = LayerTiming(len(program.layers))
    tasks: list[list[int]] = [[] for _ in program.layers]
    for t in range(program.n_tasks):
        if program.layer[t] >= 0:
            tasks[int(program.layer[t])].append(t)
    for i, mine in enumerate(tasks):
        if not mine:
            continue
        first = min(run.start[t] for t in mine)
        last = max(run.end[t] for t in mine)
        timing.start[i], timing.end[i] = first, last
        computes = sorted((t for t in mine if program.kind[t] == COMPUTE), key=lambda t: (run.start[t], t))
        prev = first  # where the previous compute task of the layer ended
        for c in computes:
            timing.busy[i] += int(program.cycles[c])
            waited_for_inputs = max(0, run.ready[c] - prev)
            if run.last_transfer[c]:
                timing.stall_memory[i] += waited_for_inputs
            else:
                timing.stall_dependency[i] += waited_for_inputs
            timing.stall_busy[i] += (run.start[c] - prev) - waited_for_inputs
            prev = run.end[c]
        timing.stall_memory[i] += last - prev  # stores draining after the last compute
    return timing


@register_engine("simpy")
class SimpyEngine:
    """Reference engine: the same event rules as the numba core, as readable simpy processes."""

    name = "simpy"

    def run(self, program: LoweredProgram, *, experiment: str = "", architecture: str = "",
            workload: str = "") -> SimResult:
        run = simulate(program)
        total = max(run.end, default=0)
        stats = []
        for i, r in enumerate(program.resources):
            mine = [t for t in range(program.n_tasks) if program.resource[t] == i]
            busy = sum(run.busy[t] for t in mine)
            moved = sum(int(program.nbytes[t]) for t in mine) if r.kind == "channel" else 0
            stats.append(ResourceStats(r.name, r.kind, busy, r.lanes * total - busy, len(mine), moved))
        timeline = Timeline(
            level="task", start=np.array(run.start, dtype=np.int64), end=np.array(run.end, dtype=np.int64),
            busy=np.array(run.busy, dtype=np.int64), lane=np.array(run.lane, dtype=np.int32),
            resource=program.resource, layer=program.layer, kind=program.kind,
            cycles=np.where(program.kind == COMPUTE, program.cycles, 0), nbytes=program.nbytes,
            count=program.count,
            labels=program.labels or tuple(f"task {t}" for t in range(program.n_tasks)),
            resource_names=tuple(r.name for r in program.resources),
            resource_kinds=tuple(r.kind for r in program.resources),
            resource_lanes=tuple(r.lanes for r in program.resources))
        return assemble_result(program, self.name, total, layer_timing(program, run), stats,
                               experiment=experiment, architecture=architecture, workload=workload,
                               extra={}, timeline=timeline)
