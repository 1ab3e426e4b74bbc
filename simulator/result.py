"""``SimResult``: what every engine returns. Frozen data; printing is the CLI's job.

Metric names carry their unit and are stable (DSE loops read them): ``cycles``, ``latency_s``,
``energy_pj``, ``utilization``, ``macs``, ``sram_read_bytes``, ``sram_write_bytes``,
``dram_read_bytes``, ``dram_write_bytes``, plus per operand (``ifmap_dram_read_bytes``, ...) and
energy by component (``mac_energy_pj``, ``sram_energy_pj``, ``dram_energy_pj``, ...).
Per layer (``LayerResult.row()``: ``results.json`` "layers" and ``layers.csv``), where the
template has a mapping choice (systolic arrays): ``dataflow``, ``loop_order``, ``loop_block``,
``chosen_by`` (architecture | mapper option | auto | search), ``mapping_candidates``,
``mapping_rejected`` (``mappers.annotations.MappingChoice``).

An optional ``Timeline`` (when each task ran, and on which lane of which unit or channel) rides
along for the trace export; it is not part of ``to_dict()`` or ``metrics()``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mappers.annotations import MappingChoice

__all__ = ["LayerResult", "ResourceStats", "SimResult", "Timeline", "LAYER_CSV_COLUMNS", "energy_components"]


@dataclass(frozen=True)
class LayerResult:
    index: int
    name: str
    kind: str
    unit: str
    dataflow: str | None
    block: str | None
    start_cycle: int
    end_cycle: int
    compute_cycles: int  # cycles the layer's unit was busy with it
    stall_cycles: int  # the rest of its span
    stall_memory_cycles: int  # waiting for DRAM transfers
    stall_dependency_cycles: int  # waiting for other layers' results
    stall_busy_cycles: int  # waiting for its unit, busy with other work
    macs: int
    vector_ops: int
    folds: int
    mapping_efficiency: float | None
    compute_utilization: float | None
    utilization: float  # MACs / (cycles x PEs of its unit)
    latency_s: float
    gemm: tuple[int, int, int, int] | None
    counters: Mapping[str, float] = field(default_factory=dict)
    fused: tuple[str, ...] = ()  # ops applied in this layer's output stage
    mapping: "MappingChoice | None" = None  # loop order, blocking, how chosen (systolic layers)

    def __post_init__(self) -> None:
        object.__setattr__(self, "counters", MappingProxyType(dict(self.counters)))

    @property
    def total_cycles(self) -> int:
        return self.end_cycle - self.start_cycle

    @property
    def energy_pj(self) -> float:
        return float(self.counters.get("energy_pj", 0.0))

    def _repr_html_(self) -> str:
        """Jupyter: this layer's fields and counters as a table (``simulator.notebook``)."""
        from simulator.notebook import layer_html

        return layer_html(self)

    def row(self) -> dict[str, Any]:
        """One flat row for layers.csv / tables."""
        m, k, n, g = self.gemm or (None, None, None, None)
        out = {"layer": self.name, "kind": self.kind, "unit": self.unit, "dataflow": self.dataflow or "",
               "start_cycle": self.start_cycle, "end_cycle": self.end_cycle,
               "compute_cycles": self.compute_cycles, "stall_cycles": self.stall_cycles,
               "total_cycles": self.total_cycles, "stall_memory_cycles": self.stall_memory_cycles,
               "stall_dependency_cycles": self.stall_dependency_cycles,
               "stall_busy_cycles": self.stall_busy_cycles, "latency_s": self.latency_s,
               "utilization": self.utilization,
               "mapping_efficiency": "" if self.mapping_efficiency is None else self.mapping_efficiency,
               "compute_utilization": "" if self.compute_utilization is None else self.compute_utilization,
               "macs": self.macs, "vector_ops": self.vector_ops, "folds": self.folds,
               "M": m if m is not None else "", "K": k if k is not None else "",
               "N": n if n is not None else "", "groups": g if g is not None else "",
               "fused": "+".join(self.fused)}
        if self.mapping is not None:  # loop_order, loop_block, chosen_by, mapping_candidates, ..._rejected
            out.update(self.mapping.row())
        for key, value in self.counters.items():
            out[key] = value
        return out


LAYER_CSV_COLUMNS = ("layer", "dataflow", "compute_cycles", "stall_cycles", "total_cycles",
                     "utilization", "macs", "sram_read_bytes", "sram_write_bytes",
                     "dram_read_bytes", "dram_write_bytes", "energy_pj")


@dataclass(frozen=True)
class ResourceStats:
    """Busy time of a unit or channel over the run (and bytes, for channels)."""

    name: str
    kind: str  # unit | channel
    busy_cycles: int
    idle_cycles: int
    tasks: int
    bytes: int = 0


@dataclass(frozen=True, eq=False)
class Timeline:
    """Slices in simulated time: tasks (event engines) or whole layers (analytical engine).

    Slice ``i`` holds lane ``lane[i]`` of resource ``resource[i]`` from cycle ``start[i]`` for
    ``busy[i]`` cycles; its result is available at ``end[i]`` (for a transfer,
    ``start + busy + latency``; for compute, ``start + busy``). ``layer[i]`` indexes
    ``SimResult.layers`` (-1: none). ``level`` is ``"task"`` or ``"layer"``.
    """

    level: str
    start: np.ndarray  # int64 [n] cycle
    end: np.ndarray  # int64 [n] cycle the result is available
    busy: np.ndarray  # int64 [n] cycles the lane is held
    lane: np.ndarray  # int32 [n]
    resource: np.ndarray  # int32 [n] index into resource_names
    layer: np.ndarray  # int32 [n]
    kind: np.ndarray  # int8 [n] 0 compute, 1 transfer (simulator.program.COMPUTE/TRANSFER)
    cycles: np.ndarray  # int64 [n] compute cycles (compute slices)
    nbytes: np.ndarray  # int64 [n] bytes moved (transfer slices)
    count: np.ndarray  # int64 [n] tiles coalesced into the slice
    labels: tuple[str, ...]
    resource_names: tuple[str, ...]
    resource_kinds: tuple[str, ...]  # unit | channel
    resource_lanes: tuple[int, ...]

    @property
    def n_slices(self) -> int:
        return int(self.start.shape[0])


def energy_components(layer_counters: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Sum the ``*_energy_pj`` counters (but ``energy_pj``) of the layers by component name,
    largest first, leaving out zeros."""
    parts: dict[str, float] = {}
    for counters in layer_counters:
        for k, v in counters.items():
            if k.endswith("_energy_pj") and k != "energy_pj" and v:
                name = k.removesuffix("_energy_pj")
                parts[name] = parts.get(name, 0.0) + float(v)
    return dict(sorted(((k, v) for k, v in parts.items() if v > 0), key=lambda kv: -kv[1]))


@dataclass(frozen=True)
class SimResult:
    experiment: str
    engine: str
    architecture: str
    workload: str
    freq_hz: float
    cycles: int
    peak_macs_per_cycle: int
    layers: tuple[LayerResult, ...]
    resources: tuple[ResourceStats, ...] = ()
    extra: Mapping[str, float] = field(default_factory=dict)  # engine-specific metrics
    timeline: Timeline | None = field(default=None, compare=False, repr=False)  # for the trace

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    @property
    def latency_s(self) -> float:
        return self.cycles / self.freq_hz

    def counter(self, name: str) -> float:
        return sum(layer.counters.get(name, 0.0) for layer in self.layers)

    @property
    def energy_pj(self) -> float:
        return self.counter("energy_pj")

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def layer(self, name: str) -> LayerResult:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer '{name}'; layers: {', '.join(l.name for l in self.layers[:8])}...")

    def energy_components(self) -> dict[str, float]:
        """Energy by component (``mac``, ``sram``, ``dram``, ``link``, ...), in pJ: the layers'
        ``*_energy_pj`` counters, largest first; they add up to ``energy_pj``."""
        return energy_components(layer.counters for layer in self.layers)

    def metrics(self) -> dict[str, float]:
        """The stable metric names (see the module docstring)."""
        compute = sum(l.compute_cycles for l in self.layers if l.unit == "array")
        out: dict[str, float] = {
            "cycles": self.cycles,
            "latency_s": self.latency_s,
            "energy_pj": self.energy_pj,
            "utilization": self.macs / (self.cycles * self.peak_macs_per_cycle)
            if self.cycles and self.peak_macs_per_cycle else 0.0,
            "macs": self.macs,
            "array_compute_cycles": compute,
            "stall_memory_cycles": sum(l.stall_memory_cycles for l in self.layers),
            "stall_dependency_cycles": sum(l.stall_dependency_cycles for l in self.layers),
            "stall_busy_cycles": sum(l.stall_busy_cycles for l in self.layers),
        }
        names: list[str] = []
        for layer in self.layers:
            for key in layer.counters:
                if key not in names:
                    names.append(key)
        for key in names:
            out[key] = self.counter(key)
        out["edp_j_s"] = out["energy_pj"] * 1e-12 * self.latency_s
        out.update(self.extra)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "engine": self.engine,
            "architecture": self.architecture,
            "workload": self.workload,
            "freq_hz": self.freq_hz,
            "metrics": self.metrics(),
            "layers": [layer.row() for layer in self.layers],
            "resources": [vars(r) for r in self.resources],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def extra_files(self) -> dict[str, str]:
        """Result files beyond ``results.json``/``layers.csv`` (name -> text) that
        ``simulator.report.write_results`` writes next to them; a serving run adds ``requests.csv``."""
        return {}

    # ---- notebooks: a table and figures (simulator.notebook, simulator.plots) ----
    def _repr_html_(self) -> str:
        """Jupyter: the key metrics and one row per layer as an HTML table."""
        from simulator.notebook import result_html

        return result_html(self)

    def plot(self, kind: str = "layers") -> Any:
        """A matplotlib ``Figure``: ``"layers"`` (compute and stall cycles per layer) or ``"energy"``
        (energy by component); ``plot_roofline`` draws the roofline."""
        from simulator import plots

        figures = {"layers": plots.layers_figure, "energy": plots.energy_figure}
        if kind not in figures:
            raise ValueError(f"unknown plot '{kind}'; expected one of {', '.join(figures)} (or plot_roofline)")
        return figures[kind](self)

    def plot_roofline(self, arch: Any = None, *, dram_bytes_per_s: float | None = None) -> Any:
        """A matplotlib ``Figure``: each matrix layer on the roofline of ``arch`` (its ``roofline()``),
        or of this result's peak MAC/s and the given ``dram_bytes_per_s``."""
        from simulator.plots import roofline_figure

        if arch is not None:
            peak, bandwidth = arch.roofline()
        elif dram_bytes_per_s is not None:
            peak, bandwidth = self.peak_macs_per_cycle * self.freq_hz, dram_bytes_per_s
        else:
            raise ValueError("plot_roofline needs the architecture (result.plot_roofline(arch)) or "
                             "dram_bytes_per_s")
        return roofline_figure(self, peak, bandwidth)
