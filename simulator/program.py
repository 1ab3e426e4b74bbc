"""``LoweredProgram``: what the mapper hands the engines.

Contract: a program is a flat table of tasks plus the resources they run on.
- A *compute* task occupies one lane of a compute unit for ``cycles`` cycles (``count`` identical
  tiles coalesced into one task run back to back: ``cycles`` is their total).
- A *transfer* task moves ``bytes`` over a channel; it occupies the channel for
  ``ceil(bytes / bytes_per_cycle)`` cycles and completes ``latency_cycles`` later.
- A task starts when all its dependencies have completed and its resource is free; waiting
  tasks are served first-come first-served, ties broken by ``(ready time, priority, task id)``.
- ``layers`` carries the timing-independent facts of each layer (MACs, fold counts, bytes per
  operand and tier, energy by component), which the engines copy into the result.
Tasks are stored column-wise in numpy arrays so the numba engine reads them without conversion;
``ProgramBuilder`` is the one place that builds them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mappers.annotations import MappingChoice

__all__ = ["Resource", "LayerInfo", "LoweredProgram", "ProgramBuilder", "ProgramError",
           "COMPUTE", "TRANSFER"]

COMPUTE, TRANSFER = 0, 1


class ProgramError(ValueError):
    """A malformed program (dependency cycle, unknown resource, negative duration)."""


@dataclass(frozen=True)
class Resource:
    """A compute unit (``kind='unit'``, ``lanes`` identical lanes) or a channel between tiers."""

    name: str
    kind: str  # unit | channel
    lanes: int = 1
    bytes_per_cycle: float = math.inf  # channels
    latency_cycles: int = 0  # channels
    src: str | None = None  # channels: tier names
    dst: str | None = None
    peak_macs_per_cycle: int = 0  # units: for utilization


@dataclass(frozen=True)
class LayerInfo:
    """Timing-independent facts about one layer, fixed at lowering time."""

    index: int
    name: str
    kind: str  # operator kind
    unit: str  # resource name that computes it
    dataflow: str | None
    block: str | None
    macs: int
    vector_ops: int
    compute_cycles: int  # at unlimited bandwidth
    folds: int
    mapping_efficiency: float | None
    compute_utilization: float | None
    peak_macs_per_cycle: int  # of the unit that runs it
    gemm: tuple[int, int, int, int] | None  # (M, K, N, groups)
    counters: Mapping[str, float] = field(default_factory=dict)  # bytes per tier/operand, energy
    fused: tuple[str, ...] = ()  # ops applied in this layer's output stage
    overhead_cycles: int = 0  # part of compute_cycles that nothing overlaps (e.g. a kernel launch)
    mapping: MappingChoice | None = None  # loop order, blocking, how it was chosen (systolic layers)

    def __post_init__(self) -> None:
        object.__setattr__(self, "counters", MappingProxyType(dict(self.counters)))

    @property
    def dram_bytes(self) -> float:
        return self.counters.get("dram_read_bytes", 0) + self.counters.get("dram_write_bytes", 0)


@dataclass(frozen=True, eq=False)
class LoweredProgram:
    freq_hz: float
    resources: tuple[Resource, ...]
    layers: tuple[LayerInfo, ...]
    kind: np.ndarray  # int8 [n]: COMPUTE | TRANSFER
    resource: np.ndarray  # int32 [n]
    layer: np.ndarray  # int32 [n]: index into layers (-1: none)
    cycles: np.ndarray  # int64 [n]: compute cycles (compute tasks)
    nbytes: np.ndarray  # int64 [n]: bytes moved (transfer tasks)
    count: np.ndarray  # int64 [n]: tiles coalesced into the task
    priority: np.ndarray  # int64 [n]
    dep_ptr: np.ndarray  # int64 [n + 1]: CSR row pointers into dep_idx
    dep_idx: np.ndarray  # int32: the tasks each task waits for
    labels: tuple[str, ...] = ()
    meta: Mapping[str, object] = field(default_factory=dict)

    @property
    def n_tasks(self) -> int:
        return int(self.kind.shape[0])

    def resource_index(self, name: str) -> int:
        for i, r in enumerate(self.resources):
            if r.name == name:
                return i
        raise KeyError(name)

    def deps(self, task: int) -> np.ndarray:
        return self.dep_idx[self.dep_ptr[task]:self.dep_ptr[task + 1]]

    def duration(self, task: int) -> int:
        """Cycles the task occupies its resource."""
        if self.kind[task] == COMPUTE:
            return int(self.cycles[task])
        r = self.resources[self.resource[task]]
        return transfer_cycles(int(self.nbytes[task]), r.bytes_per_cycle)

    def task_name(self, task: int) -> str:
        if self.labels:
            return self.labels[task]
        return f"task {task}"

    def validate(self) -> None:
        """Raise ``ProgramError`` naming the task for a malformed program."""
        n = self.n_tasks
        for arr, name in ((self.resource, "resource"), (self.layer, "layer"), (self.cycles, "cycles"),
                          (self.nbytes, "nbytes"), (self.count, "count"), (self.priority, "priority")):
            if arr.shape != (n,):
                raise ProgramError(f"column '{name}' has shape {arr.shape}, expected ({n},)")
        if self.dep_ptr.shape != (n + 1,) or self.dep_ptr[0] != 0 or self.dep_ptr[-1] != len(self.dep_idx):
            raise ProgramError("dependency pointers do not cover the dependency list")
        bad = np.nonzero((self.resource < 0) | (self.resource >= len(self.resources)))[0]
        if len(bad):
            t = int(bad[0])
            raise ProgramError(f"{self.task_name(t)} uses unknown resource {int(self.resource[t])} "
                               f"(the program has {len(self.resources)})")
        kinds = np.array([0 if r.kind == "unit" else 1 for r in self.resources], dtype=np.int8)
        mismatch = np.nonzero(kinds[self.resource] != self.kind)[0]
        if len(mismatch):
            t = int(mismatch[0])
            r = self.resources[self.resource[t]]
            raise ProgramError(f"{self.task_name(t)} is a {'compute' if self.kind[t] == COMPUTE else 'transfer'} "
                               f"task on {r.kind} '{r.name}'")
        neg = np.nonzero((self.cycles < 0) | (self.nbytes < 0) | (self.count < 1))[0]
        if len(neg):
            t = int(neg[0])
            raise ProgramError(f"{self.task_name(t)} has a negative duration or size "
                               f"(cycles={int(self.cycles[t])}, bytes={int(self.nbytes[t])}, "
                               f"count={int(self.count[t])})")
        if len(self.dep_idx) and (self.dep_idx.min() < 0 or self.dep_idx.max() >= n):
            t = int(np.searchsorted(self.dep_ptr, int(np.argmax((self.dep_idx < 0) | (self.dep_idx >= n))),
                                    side="right") - 1)
            raise ProgramError(f"{self.task_name(t)} depends on a task that does not exist")
        for r in self.resources:
            if r.kind == "channel" and not (r.bytes_per_cycle > 0):
                raise ProgramError(f"channel '{r.name}' has bandwidth {r.bytes_per_cycle} bytes/cycle")
            if r.lanes < 1:
                raise ProgramError(f"unit '{r.name}' has {r.lanes} lanes")
        # ProgramBuilder only lets a task depend on earlier tasks: then there can be no cycle
        owner = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.dep_ptr))
        if len(self.dep_idx) and not (self.dep_idx < owner).all():
            cyc = find_cycle(self.dep_ptr, self.dep_idx, n)
        else:
            cyc = []
        if cyc:
            names = " -> ".join(self.task_name(t) for t in cyc[:6])
            raise ProgramError(f"dependency cycle: {names}{' -> ...' if len(cyc) > 6 else ''}")


def transfer_cycles(nbytes: int, bytes_per_cycle: float) -> int:
    if nbytes <= 0 or math.isinf(bytes_per_cycle):
        return 0
    return int(math.ceil(nbytes / bytes_per_cycle - 1e-9))


def find_cycle(dep_ptr: np.ndarray, dep_idx: np.ndarray, n: int) -> list[int]:
    """A dependency cycle as a list of task ids, or [] (Kahn's algorithm, then a walk)."""
    indeg = np.diff(dep_ptr).astype(np.int64)
    users: list[list[int]] = [[] for _ in range(n)]
    for t in range(n):
        for d in dep_idx[dep_ptr[t]:dep_ptr[t + 1]]:
            users[int(d)].append(t)
    stack = [t for t in range(n) if indeg[t] == 0]
    seen = 0
    while stack:
        t = stack.pop()
        seen += 1
        for u in users[t]:
            indeg[u] -= 1
            if indeg[u] == 0:
                stack.append(u)
    if seen == n:
        return []
    # walk back along unfinished dependencies until a task repeats
    t = int(np.nonzero(indeg > 0)[0][0])
    path, pos = [], {}
    while t not in pos:
        pos[t] = len(path)
        path.append(t)
        t = next(int(d) for d in dep_idx[dep_ptr[t]:dep_ptr[t + 1]] if indeg[int(d)] > 0)
    return list(reversed(path[pos[t]:]))


class ProgramBuilder:
    """Appends tasks; ``build()`` freezes them into a ``LoweredProgram``."""

    def __init__(self, freq_hz: float, resources: list[Resource]):
        self.freq_hz = freq_hz
        self.resources = list(resources)
        self._index = {r.name: i for i, r in enumerate(self.resources)}
        self._kind: list[int] = []
        self._res: list[int] = []
        self._layer: list[int] = []
        self._cycles: list[int] = []
        self._bytes: list[int] = []
        self._count: list[int] = []
        self._deps: list[list[int]] = []
        self._labels: list[str] = []
        self.layers: list[LayerInfo] = []

    def _add(self, kind: int, resource: str, layer: int, cycles: int, nbytes: int, count: int,
             deps, label: str) -> int:
        try:
            r = self._index[resource]
        except KeyError:
            raise ProgramError(f"task '{label}' uses unknown resource '{resource}'") from None
        self._kind.append(kind)
        self._res.append(r)
        self._layer.append(layer)
        self._cycles.append(cycles)
        self._bytes.append(nbytes)
        self._count.append(count)
        self._deps.append([d for d in deps if d is not None])
        self._labels.append(label)
        return len(self._kind) - 1

    def compute(self, unit: str, cycles: int, *, layer: int = -1, deps=(), count: int = 1,
                label: str = "") -> int:
        return self._add(COMPUTE, unit, layer, cycles, 0, count, deps, label)

    def transfer(self, channel: str, nbytes: int, *, layer: int = -1, deps=(), count: int = 1,
                 label: str = "") -> int:
        return self._add(TRANSFER, channel, layer, 0, nbytes, count, deps, label)

    def build(self, meta: dict | None = None) -> LoweredProgram:
        n = len(self._kind)
        ptr = np.zeros(n + 1, dtype=np.int64)
        ptr[1:] = np.cumsum([len(d) for d in self._deps]) if n else []
        idx = np.fromiter((d for ds in self._deps for d in ds), dtype=np.int32, count=int(ptr[-1]))
        return LoweredProgram(
            freq_hz=self.freq_hz, resources=tuple(self.resources), layers=tuple(self.layers),
            kind=np.asarray(self._kind, dtype=np.int8), resource=np.asarray(self._res, dtype=np.int32),
            layer=np.asarray(self._layer, dtype=np.int32), cycles=np.asarray(self._cycles, dtype=np.int64),
            nbytes=np.asarray(self._bytes, dtype=np.int64), count=np.asarray(self._count, dtype=np.int64),
            priority=np.arange(n, dtype=np.int64), dep_ptr=ptr, dep_idx=idx,
            labels=tuple(self._labels), meta=MappingProxyType(dict(meta or {})))
