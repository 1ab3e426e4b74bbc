"""Timeline export: a ``SimResult`` as a Chrome trace-event JSON file (opens in Perfetto).

Contract: ``write_trace(result, path, experiment=None)`` writes ``path`` atomically and returns
it. Each unit and each channel is a process (named with "M" metadata events, ordered units
first), with one thread per lane; every slice of ``result.timeline`` is a complete ("X") event
named by its task label, with ``ts``/``dur`` in microseconds of simulated time
(``cycles / freq_hz * 1e6``) and ``args`` giving its layer, cycles, and bytes for transfers.
A transfer's slice is the time it holds its channel; its data arrives ``latency`` cycles after
(``args.arrival_cycle``). A result without a timeline gets one slice per layer on its unit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from simulator.program import COMPUTE
from simulator.report import atomic_write
from simulator.result import SimResult, Timeline

__all__ = ["write_trace", "trace_events"]


def _layers_only(result: SimResult) -> Timeline:
    units = sorted({layer.unit for layer in result.layers})
    n = len(result.layers)
    start = np.array([layer.start_cycle for layer in result.layers], dtype=np.int64)
    end = np.array([layer.end_cycle for layer in result.layers], dtype=np.int64)
    return Timeline(
        level="layer", start=start, end=end, busy=end - start, lane=np.zeros(n, dtype=np.int32),
        resource=np.array([units.index(layer.unit) for layer in result.layers], dtype=np.int32),
        layer=np.arange(n, dtype=np.int32), kind=np.full(n, COMPUTE, dtype=np.int8),
        cycles=np.array([layer.compute_cycles for layer in result.layers], dtype=np.int64),
        nbytes=np.zeros(n, dtype=np.int64), count=np.ones(n, dtype=np.int64),
        labels=tuple(layer.name for layer in result.layers), resource_names=tuple(units),
        resource_kinds=("unit",) * len(units), resource_lanes=(1,) * len(units))


def trace_events(result: SimResult, experiment: Any = None) -> dict[str, Any]:
    """The trace as a JSON-ready dict ``{"traceEvents": [...], "displayTimeUnit": ..., ...}``."""
    tl = result.timeline if result.timeline is not None else _layers_only(result)
    us_per_cycle = 1e6 / result.freq_hz
    events: list[dict[str, Any]] = []
    # units first, then channels, each in program order; pid 0 is avoided (some viewers drop it)
    order = sorted(range(len(tl.resource_names)), key=lambda r: (tl.resource_kinds[r] != "unit", r))
    for sort_index, r in enumerate(order):
        pid = r + 1
        kind = tl.resource_kinds[r]
        events.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                       "args": {"name": f"{kind} {tl.resource_names[r]}"}})
        events.append({"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0,
                       "args": {"sort_index": sort_index}})
        lanes = tl.resource_lanes[r]
        for lane in range(lanes):
            name = tl.resource_names[r] if lanes == 1 else f"{tl.resource_names[r]} lane {lane}"
            events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": lane + 1,
                           "args": {"name": name}})
    layer_names = [layer.name for layer in result.layers]
    level = "layer" if tl.level == "layer" else "task"
    for i in np.argsort(tl.start, kind="stable"):
        i = int(i)
        start, busy = int(tl.start[i]), int(tl.busy[i])
        layer = int(tl.layer[i])
        args: dict[str, Any] = {"layer": layer_names[layer] if 0 <= layer < len(layer_names) else "",
                                "start_cycle": start}
        if tl.kind[i] == COMPUTE:
            args["cycles"] = int(tl.cycles[i])
            if level == "layer":
                args["span_cycles"] = busy
                if 0 <= layer < len(result.layers):
                    args["macs"] = result.layers[layer].macs
                    args["dram_bytes"] = int(result.layers[layer].counters.get("dram_read_bytes", 0)
                                             + result.layers[layer].counters.get("dram_write_bytes", 0))
            if int(tl.count[i]) > 1:
                args["tiles"] = int(tl.count[i])
            category = "compute"
        else:
            args["bytes"] = int(tl.nbytes[i])
            args["channel_cycles"] = busy
            args["arrival_cycle"] = int(tl.end[i])
            if int(tl.count[i]) > 1:
                args["tiles"] = int(tl.count[i])
            category = "transfer"
        events.append({"name": tl.labels[i] if i < len(tl.labels) else f"task {i}", "cat": category,
                       "ph": "X", "pid": int(tl.resource[i]) + 1, "tid": int(tl.lane[i]) + 1,
                       "ts": start * us_per_cycle, "dur": busy * us_per_cycle, "args": args})
    name = getattr(experiment, "name", experiment) or result.experiment
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"experiment": str(name), "engine": result.engine,
                          "architecture": result.architecture, "workload": result.workload,
                          "freq_hz": result.freq_hz, "cycles": result.cycles, "timeline": level}}


def write_trace(result: SimResult, path: str | Path, experiment: Any = None) -> Path:
    """Write ``result``'s timeline to ``path`` as Chrome trace-event JSON; return the path."""
    path = Path(path)
    atomic_write(path, json.dumps(trace_events(result, experiment), separators=(",", ":")))
    return path
