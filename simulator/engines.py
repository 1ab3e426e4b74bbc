"""Engines: ``Engine.run(program) -> SimResult``, one registry, one way to build the result.

Contract: every engine takes a ``LoweredProgram`` and returns a ``SimResult`` built by
``assemble_result`` from per-layer spans and stall attribution, so results from different
engines have the same shape and can be compared field by field.

- ``analytical``: per-layer roofline, layers one after another: a layer takes its fixed overhead
  (a kernel launch, if the template has one) plus the larger of its remaining compute cycles and,
  per off-chip channel, its bytes on that channel / the channel's bytes-per-cycle; the
  difference is a memory stall.
  The fast path, and the cross-check for the event engines.
- ``numba`` / ``simpy``: the event-driven core and its reference (``simulator.core``,
  ``simulator.reference``).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from simulator.program import COMPUTE, LoweredProgram, transfer_cycles
from simulator.result import LayerResult, ResourceStats, SimResult, Timeline
from workloads.errors import ConfigError, Problem, did_you_mean

__all__ = ["Engine", "ENGINES", "register_engine", "get_engine", "assemble_result", "AnalyticalEngine",
           "LayerTiming", "layer_timeline"]


class Engine(Protocol):
    name: str

    def run(self, program: LoweredProgram, *, experiment: str = "", architecture: str = "",
            workload: str = "") -> SimResult: ...


ENGINES: dict[str, type] = {}


def register_engine(name: str):
    def deco(cls):
        if name in ENGINES:
            raise ValueError(f"engine '{name}' registered twice")
        cls.name = name
        ENGINES[name] = cls
        return cls

    return deco


def get_engine(name: str) -> Engine:
    _load_builtin()
    if name not in ENGINES:
        raise ConfigError(Problem(None, "engine", f"'{name}' is not an engine; available: "
                                  f"{', '.join(sorted(ENGINES))}", hint=did_you_mean(name, ENGINES)))
    return ENGINES[name]()


def _load_builtin() -> None:
    import importlib

    for module in ("simulator.core", "simulator.reference"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:  # engine package not present in this build
            if exc.name != module:
                raise


class LayerTiming:
    """Per-layer spans and stall attribution, filled in by an engine."""

    def __init__(self, n_layers: int):
        self.start = np.zeros(n_layers, dtype=np.int64)
        self.end = np.zeros(n_layers, dtype=np.int64)
        self.busy = np.zeros(n_layers, dtype=np.int64)
        self.stall_memory = np.zeros(n_layers, dtype=np.int64)
        self.stall_dependency = np.zeros(n_layers, dtype=np.int64)
        self.stall_busy = np.zeros(n_layers, dtype=np.int64)


def assemble_result(program: LoweredProgram, engine: str, cycles: int, timing: LayerTiming,
                    resources: list[ResourceStats], *, experiment: str = "", architecture: str = "",
                    workload: str = "", extra: dict | None = None,
                    timeline: Timeline | None = None) -> SimResult:
    layers = []
    for info in program.layers:
        i = info.index
        span = int(timing.end[i] - timing.start[i])
        busy = int(timing.busy[i])
        util = info.macs / (span * info.peak_macs_per_cycle) if span and info.peak_macs_per_cycle else 0.0
        layers.append(LayerResult(
            index=i, name=info.name, kind=info.kind, unit=info.unit, dataflow=info.dataflow,
            block=info.block, start_cycle=int(timing.start[i]), end_cycle=int(timing.end[i]),
            compute_cycles=busy, stall_cycles=span - busy,
            stall_memory_cycles=int(timing.stall_memory[i]),
            stall_dependency_cycles=int(timing.stall_dependency[i]),
            stall_busy_cycles=int(timing.stall_busy[i]), macs=info.macs, vector_ops=info.vector_ops,
            folds=info.folds, mapping_efficiency=info.mapping_efficiency,
            compute_utilization=info.compute_utilization, utilization=util,
            latency_s=span / program.freq_hz, gemm=info.gemm, counters=info.counters,
            fused=info.fused, mapping=info.mapping))
    peak = max((r.peak_macs_per_cycle for r in program.resources), default=0)
    return SimResult(experiment=experiment, engine=engine, architecture=architecture,
                     workload=workload or str(program.meta.get("graph", "")), freq_hz=program.freq_hz,
                     cycles=int(cycles), peak_macs_per_cycle=peak, layers=tuple(layers),
                     resources=tuple(resources), extra=extra or {}, timeline=timeline)


def layer_timeline(program: LoweredProgram, timing: LayerTiming) -> Timeline:
    """A layer-level ``Timeline``: one slice per layer, on its unit, spanning start to end."""
    n = len(program.layers)
    start = timing.start.astype(np.int64)
    end = timing.end.astype(np.int64)
    names = tuple(r.name for r in program.resources)
    return Timeline(
        level="layer", start=start, end=end, busy=end - start, lane=np.zeros(n, dtype=np.int32),
        resource=np.array([names.index(info.unit) if info.unit in names else 0
                           for info in program.layers], dtype=np.int32),
        layer=np.arange(n, dtype=np.int32), kind=np.full(n, COMPUTE, dtype=np.int8),
        cycles=timing.busy.astype(np.int64),
        nbytes=np.array([int(info.dram_bytes) for info in program.layers], dtype=np.int64),
        count=np.ones(n, dtype=np.int64), labels=tuple(info.name for info in program.layers),
        resource_names=names, resource_kinds=tuple(r.kind for r in program.resources),
        resource_lanes=tuple(r.lanes for r in program.resources))


@register_engine("analytical")
class AnalyticalEngine:
    """Per-layer roofline, layers in sequence (see the module docstring)."""

    name = "analytical"

    def run(self, program: LoweredProgram, *, experiment: str = "", architecture: str = "",
            workload: str = "") -> SimResult:
        n_layers, n_res = len(program.layers), len(program.resources)
        # bytes and tasks per (layer, resource), from the program's own transfers
        key = np.where(program.layer >= 0, program.layer, n_layers) * n_res + program.resource
        size = (n_layers + 1) * n_res
        nbytes = np.bincount(key, weights=program.nbytes, minlength=size).reshape(n_layers + 1, n_res)
        ntasks = np.bincount(key, minlength=size).reshape(n_layers + 1, n_res).sum(axis=0)
        timing = LayerTiming(n_layers)
        busy = np.zeros(n_res, dtype=np.int64)
        t = 0
        for info in program.layers:
            unit = program.resource_index(info.unit)
            memory = 0
            for r, res in enumerate(program.resources):
                if res.kind == "channel":
                    cyc = transfer_cycles(int(nbytes[info.index, r]), res.bytes_per_cycle)
                    busy[r] += cyc
                    memory = max(memory, cyc)
            # a fixed overhead (a kernel launch) precedes the roofline; the rest overlaps memory
            overhead = min(info.overhead_cycles, info.compute_cycles)
            span = overhead + max(info.compute_cycles - overhead, memory)
            timing.start[info.index] = t
            timing.end[info.index] = t + span
            timing.busy[info.index] = info.compute_cycles
            timing.stall_memory[info.index] = span - info.compute_cycles
            busy[unit] += info.compute_cycles
            t += span
        stats = [ResourceStats(r.name, r.kind, int(busy[i]), t - int(busy[i]), int(ntasks[i]),
                               int(nbytes[:, i].sum()) if r.kind == "channel" else 0)
                 for i, r in enumerate(program.resources)]
        return assemble_result(program, self.name, t, timing, stats, experiment=experiment,
                               architecture=architecture, workload=workload,
                               timeline=layer_timeline(program, timing))
