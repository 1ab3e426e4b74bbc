"""Lowering: annotated ``OpGraph`` -> ``LoweredProgram`` (tasks on units and channels).

Resources of a systolic array: unit ``array`` (the R x C PEs), unit ``vector``, and channel
``dram`` (DRAM <-> the operand SRAMs, shared by reads and writes).

Each layer becomes a sequence of *tiles*. At ``fidelity: layer`` a layer is one tile; at
``fidelity: tile`` a tile is a fold of the array (SCALE-Sim's order: group, column fold, row
fold), and consecutive folds are coalesced so a layer has at most ``max_tiles_per_layer``
tiles. Per tile: ``load`` (DRAM -> SRAM, what this tile needs that is not already on chip),
``compute`` (on the array or vector unit), ``store`` (SRAM -> DRAM, the outputs or spilled
partial sums it produces). Double buffering is written as dependencies: with two buffer halves,
load t waits for compute t-2 (its half is free again), compute t waits for load t and for
store t-2 (the output half is drained), where t counts the unit's tiles in program order
across layers: the next layer's first load overlaps the previous layer's last compute, and no
load runs further ahead than the buffers allow. Each unit runs its tiles in program order;
loads and stores are issued in order. A layer's first load also waits for the last store of
every layer that produces its inputs (feature maps travel through DRAM between layers, as in
SCALE-Sim). Per-tile bytes partition the
layer's ``Traffic`` totals exactly.
"""

from __future__ import annotations

import math

import numpy as np

from architectures.systolic import FoldPlan, SystolicArray
from mappers.annotations import Placement, Tiling, Traffic
from mappers.pipeline import MapperOptions
from mappers.traffic import OPERANDS, _operand_bytes
from simulator.program import LayerInfo, LoweredProgram, ProgramBuilder, Resource
from workloads.graph import OpGraph
from workloads.ops import Op

__all__ = ["lower", "systolic_resources", "layer_counters", "fold_streams"]


def systolic_resources(arch: SystolicArray) -> list[Resource]:
    dram = arch.memory.dram
    bpc = dram.bandwidth_bytes_per_s / arch.freq_hz
    return [
        Resource("array", "unit", 1, peak_macs_per_cycle=arch.pes),
        Resource("vector", "unit", 1),
        Resource("dram", "channel", bytes_per_cycle=bpc,
                 latency_cycles=int(math.ceil(dram.latency_s * arch.freq_hz - 1e-9)),
                 src="dram", dst="sram"),
    ]


def layer_counters(traffic: Traffic, macs: int, vector_ops: int, arch: SystolicArray,
                   on_array: bool) -> dict[str, float]:
    """Bytes per operand and tier, and energy by component (pJ), for one layer."""
    em = arch.energy_model()
    c: dict[str, float] = {}
    for o in OPERANDS:
        c[f"{o}_sram_read_bytes"] = traffic.sram_read[o]
        c[f"{o}_sram_write_bytes"] = traffic.sram_write[o]
        c[f"{o}_dram_read_bytes"] = traffic.dram_read[o]
        c[f"{o}_dram_write_bytes"] = traffic.dram_write[o]
    for kind in ("sram_read", "sram_write", "dram_read", "dram_write"):
        c[f"{kind}_bytes"] = sum(c[f"{o}_{kind}_bytes"] for o in OPERANDS)
    c["compulsory_dram_read_bytes"] = traffic.compulsory_read
    c["compulsory_dram_write_bytes"] = traffic.compulsory_write
    sram = 0.0
    for o in OPERANDS:
        rd, wr = em.sram_read_pj_per_byte[o].value, em.sram_write_pj_per_byte[o].value
        # array-side accesses, plus DRAM fills (SRAM writes) and drains (SRAM reads)
        sram += (traffic.sram_read[o] + traffic.dram_write[o]) * rd
        sram += (traffic.sram_write[o] + traffic.dram_read[o]) * wr
    c["mac_energy_pj"] = macs * em.mac_pj.value if on_array else 0.0
    c["vector_energy_pj"] = vector_ops * em.vector_op_pj.value
    c["sram_energy_pj"] = sram
    c["dram_energy_pj"] = (traffic.dram_read_bytes * em.dram_read_pj_per_byte.value
                           + traffic.dram_write_bytes * em.dram_write_pj_per_byte.value)
    c["energy_pj"] = c["mac_energy_pj"] + c["vector_energy_pj"] + c["sram_energy_pj"] + c["dram_energy_pj"]
    return c


def _spread(weights: np.ndarray, total: int) -> np.ndarray:
    """Integers proportional to ``weights`` summing exactly to ``total``."""
    s = weights.sum()
    if total == 0 or s <= 0:
        return np.zeros(len(weights), dtype=np.int64)
    cum = np.cumsum(weights) / s
    cum[-1] = 1.0
    return np.diff(np.concatenate(([0], np.round(cum * total)))).astype(np.int64)


def fold_streams(op: Op, plan: FoldPlan, traffic: Traffic) -> tuple[np.ndarray, np.ndarray]:
    """Per-fold DRAM (read, write) bytes in fold order (group, column fold, row fold)."""
    g = plan.gemm
    R, C = plan.rows, plan.cols
    I, O = plan.row_folds, plan.col_folds
    used_r = np.minimum(R, plan.Sr - np.arange(I) * R).astype(np.float64)  # per row fold
    used_c = np.minimum(C, plan.Sc - np.arange(O) * C).astype(np.float64)  # per column fold
    first_o = (np.arange(O) == 0).astype(np.float64)[:, None]
    first_i = (np.arange(I) == 0).astype(np.float64)[None, :]
    last_i = (np.arange(I) == I - 1).astype(np.float64)[None, :]
    every = np.ones((O, I))
    rr, cc = used_r[None, :], used_c[:, None]
    loads = traffic.dram_loads
    spill = loads.get("ofmap", 1) > 1
    if plan.dataflow == "os":  # rows: M, cols: N
        w_i = (every if loads["ifmap"] > 1 else first_o) * rr
        w_f = (every if loads["filter"] > 1 else first_i) * cc
        w_out = rr * cc
        w_back = np.zeros((O, I))
    elif plan.dataflow == "ws":  # rows: K, cols: N
        w_i = (every if loads["ifmap"] > 1 else first_o) * rr
        w_f = rr * cc
        w_out = (every if spill else last_i) * cc
        w_back = (1 - first_i) * cc if spill else np.zeros((O, I))
    else:  # is: rows: K, cols: M
        w_i = rr * cc
        w_f = (every if loads["filter"] > 1 else first_o) * rr
        w_out = (every if spill else last_i) * cc
        w_back = (1 - first_i) * cc if spill else np.zeros((O, I))

    def stream(w: np.ndarray, total: int) -> np.ndarray:
        return _spread(np.tile(w.ravel(), g.groups), total)

    reads = (stream(w_i, traffic.dram_read["ifmap"]) + stream(w_f, traffic.dram_read["filter"])
             + stream(w_back, traffic.dram_read["ofmap"]))
    writes = stream(w_out, traffic.dram_write["ofmap"])
    return reads, writes


def _coalesce(n: int, max_tiles: int) -> np.ndarray:
    """Start indices of at most ``max_tiles`` near-equal groups of ``n`` consecutive items."""
    k = min(n, max_tiles)
    return (np.arange(k, dtype=np.int64) * n) // k


def _tiles(op: Op, graph: OpGraph, arch: SystolicArray, options: MapperOptions, vector_cycles: int):
    """(unit, cycles[], reads[], writes[], counts[]) per tile of one layer."""
    placement = graph.get(op.name, Placement).unit
    traffic = graph.get(op.name, Traffic)
    max_tiles = 1 if options.fidelity == "layer" else options.max_tiles_per_layer
    if placement == "array":
        plan = graph.get(op.name, Tiling).plan
        reads, writes = fold_streams(op, plan, traffic)
        cycles = np.full(plan.folds, plan.fold_cycles, dtype=np.int64)
        counts = np.ones(plan.folds, dtype=np.int64)
    else:
        total = vector_cycles
        n = max(1, min(max_tiles, math.ceil(traffic.dram_read_bytes / (arch.memory.ifmap_sram.size_bytes / 2))))
        cycles = _spread(np.ones(n), total)
        reads = _spread(np.ones(n), traffic.dram_read_bytes)
        writes = _spread(np.ones(n), traffic.dram_write_bytes)
        counts = np.ones(n, dtype=np.int64)
    starts = _coalesce(len(cycles), max_tiles)
    return (placement, np.add.reduceat(cycles, starts), np.add.reduceat(reads, starts),
            np.add.reduceat(writes, starts), np.add.reduceat(counts, starts))


class _UnitQueue:
    """One unit's tiles in program order: double buffering continues across layer boundaries."""

    def __init__(self) -> None:
        self.computes: list[int] = []
        self.stores: list[int | None] = []
        self.last_load: int | None = None
        self.last_store: int | None = None


def lower(graph: OpGraph, arch: SystolicArray, options: MapperOptions) -> LoweredProgram:
    """Build the task program for an annotated graph (see the module docstring)."""
    b = ProgramBuilder(arch.freq_hz, systolic_resources(arch))
    last_store: dict[str, list[int]] = {}  # op name -> tasks after which its output is readable
    queues: dict[str, _UnitQueue] = {}  # per unit: tiles in program order, across layers
    fused_by: dict[str, list[Op]] = {}
    for op in graph.ops():
        into = graph.get(op.name, Placement).fused_into
        if into is not None:
            fused_by.setdefault(into, []).append(op)
    for op in graph.ops():
        placement = graph.get(op.name, Placement).unit
        if placement in ("none", "fused"):  # a view or a fused op: its output is its inputs'
            last_store[op.name] = [t for p in graph.predecessors(op.name) for t in last_store.get(p, [])]
            continue
        traffic = graph.get(op.name, Traffic)
        tiling = graph.get(op.name, Tiling, None)
        plan = tiling.plan if tiling else None
        index = len(b.layers)
        on_array = placement == "array"
        unit_pes = arch.pes if on_array else 0
        compute_total = plan.compute_cycles if plan else math.ceil(
            (op.vector_ops + sum(f.vector_ops for f in fused_by.get(op.name, []))) / arch.vector_lanes)
        gm = op.gemm() if op.is_matrix else None
        fused = fused_by.get(op.name, [])
        fused_ops = sum(f.vector_ops for f in fused)
        counters = layer_counters(traffic, op.macs, op.vector_ops + fused_ops, arch, on_array)
        b.layers.append(LayerInfo(
            index=index, name=op.name, kind=op.kind, unit=placement,
            dataflow=plan.dataflow if plan else None, block=op.block, macs=op.macs,
            vector_ops=op.vector_ops + fused_ops, compute_cycles=compute_total,
            folds=plan.folds if plan else 0,
            mapping_efficiency=plan.mapping_efficiency if plan else None,
            compute_utilization=plan.compute_utilization if plan else None,
            peak_macs_per_cycle=unit_pes, gemm=(gm.M, gm.K, gm.N, gm.groups) if gm else None,
            counters=counters, fused=tuple(f.name for f in fused)))

        unit, cycles, reads, writes, counts = _tiles(op, graph, arch, options, compute_total)
        producer_deps = [t for p in graph.predecessors(op.name) for t in last_store.get(p, [])]
        q = queues.setdefault(unit, _UnitQueue())
        first_store = None
        for t in range(len(cycles)):
            g = len(q.computes)  # this tile's position in the unit's program order
            # the producers' results are needed by the first task of this layer that starts
            deps = list(producer_deps) if producer_deps else []
            deps += [q.last_load, q.computes[g - 2] if g >= 2 else None]
            ld = None
            if reads[t] > 0:
                ld = b.transfer("dram", int(reads[t]), layer=index, deps=deps, count=int(counts[t]),
                                label=f"{op.name} load {t}")
                q.last_load = ld
                producer_deps = []  # taken: later tiles follow this load
            cdeps = [ld, q.computes[g - 1] if g else None, q.stores[g - 2] if g >= 2 else None]
            if ld is None:
                cdeps += deps
                producer_deps = []  # taken by this compute
            c = b.compute(unit, int(cycles[t]), layer=index, deps=cdeps, count=int(counts[t]),
                          label=f"{op.name} compute {t}")
            q.computes.append(c)
            st = None
            if writes[t] > 0:
                st = b.transfer("dram", int(writes[t]), layer=index, deps=[c, q.last_store],
                                count=int(counts[t]), label=f"{op.name} store {t}")
                q.last_store = st
                first_store = st if first_store is None else first_store
            q.stores.append(st)
        last_store[op.name] = [q.last_store if first_store is not None else q.computes[-1]]
    return b.build(meta={"graph": graph.name, "fidelity": options.fidelity,
                         "dram_bytes_per_cycle": arch.dram_bytes_per_cycle})
