"""The flat arrays the numba kernels see, built in one place from a ``LoweredProgram``.

Contract: ``flatten(program)`` returns a ``FlatProgram`` of contiguous numpy arrays with fixed
dtypes (int64 for times and sizes, int32 for indices, int8 for kinds), so every kernel is
compiled once for one set of types. Nothing else in the core reads a ``LoweredProgram``.
Pure numpy: importing this module does not import numba.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from simulator.program import COMPUTE, LoweredProgram

__all__ = ["FlatProgram", "flatten", "occupancy", "dependents"]


class FlatProgram(NamedTuple):
    kind: np.ndarray  # int8 [n]: COMPUTE | TRANSFER
    res: np.ndarray  # int32 [n]: resource index
    occ: np.ndarray  # int64 [n]: cycles the task holds one lane of its resource
    lat: np.ndarray  # int64 [n]: cycles from releasing the lane to completion (channel latency)
    prio: np.ndarray  # int64 [n]
    ndeps: np.ndarray  # int32 [n]: dependencies (a dependency listed twice counts twice)
    dep_ptr: np.ndarray  # int64 [n + 1]: CSR into dep_idx
    dep_idx: np.ndarray  # int32
    user_ptr: np.ndarray  # int64 [n + 1]: CSR into user_idx (the tasks that wait for each task)
    user_idx: np.ndarray  # int32
    lanes: np.ndarray  # int32 [R]
    res_ptr: np.ndarray  # int64 [R + 1]: task-count prefix sums (ready-queue regions)
    lane_ptr: np.ndarray  # int64 [R + 1]: lane-count prefix sums (idle-lane stacks)
    layer: np.ndarray  # int32 [n]
    cycles: np.ndarray  # int64 [n]: compute cycles (0 for transfers)
    n_layers: int


def occupancy(program: LoweredProgram) -> np.ndarray:
    """Cycles each task holds its resource: ``simulator.program.transfer_cycles``, vectorized."""
    occ = program.cycles.astype(np.int64).copy()
    transfer = program.kind != COMPUTE
    if not transfer.any():
        return occ
    bpc = np.array([r.bytes_per_cycle for r in program.resources], dtype=np.float64)[program.resource]
    nbytes = program.nbytes.astype(np.int64)
    moving = transfer & (nbytes > 0) & np.isfinite(bpc)
    with np.errstate(divide="ignore", invalid="ignore"):
        # the same float64 expression as transfer_cycles: ceil(nbytes / bytes_per_cycle - 1e-9)
        cyc = np.ceil(nbytes / bpc - 1e-9)
    occ[transfer] = 0
    occ[moving] = cyc[moving].astype(np.int64)
    return occ


def dependents(dep_ptr: np.ndarray, dep_idx: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The reverse of the dependency CSR: for each task, the tasks waiting for it, in task order."""
    owner = np.repeat(np.arange(n, dtype=np.int32), np.diff(dep_ptr))
    order = np.argsort(dep_idx, kind="stable")  # stable: users of a task stay in task order
    user_idx = owner[order].astype(np.int32)
    counts = np.bincount(dep_idx, minlength=n) if len(dep_idx) else np.zeros(n, dtype=np.int64)
    user_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=user_ptr[1:])
    return user_ptr, user_idx


def flatten(program: LoweredProgram) -> FlatProgram:
    """Copy a (validated) program into the kernels' arrays."""
    n = program.n_tasks
    res = np.ascontiguousarray(program.resource, dtype=np.int32)
    n_res = len(program.resources)
    lat_by_res = np.array([r.latency_cycles if r.kind == "channel" else 0 for r in program.resources],
                          dtype=np.int64)
    lanes = np.array([r.lanes for r in program.resources], dtype=np.int32)
    dep_ptr = np.ascontiguousarray(program.dep_ptr, dtype=np.int64)
    dep_idx = np.ascontiguousarray(program.dep_idx, dtype=np.int32)
    user_ptr, user_idx = dependents(dep_ptr, dep_idx, n)
    res_ptr = np.zeros(n_res + 1, dtype=np.int64)
    np.cumsum(np.bincount(res, minlength=n_res), out=res_ptr[1:])
    lane_ptr = np.zeros(n_res + 1, dtype=np.int64)
    np.cumsum(lanes, out=lane_ptr[1:])
    kind = np.ascontiguousarray(program.kind, dtype=np.int8)
    return FlatProgram(
        kind=kind, res=res, occ=occupancy(program),
        lat=np.where(kind == COMPUTE, 0, lat_by_res[res]).astype(np.int64),
        prio=np.ascontiguousarray(program.priority, dtype=np.int64),
        ndeps=np.diff(dep_ptr).astype(np.int32), dep_ptr=dep_ptr, dep_idx=dep_idx,
        user_ptr=user_ptr, user_idx=user_idx, lanes=lanes, res_ptr=res_ptr, lane_ptr=lane_ptr,
        layer=np.ascontiguousarray(program.layer, dtype=np.int32),
        cycles=np.where(kind == COMPUTE, program.cycles, 0).astype(np.int64),
        n_layers=len(program.layers))

