"""The built-in mapper passes: place -> dataflow -> traffic (then ``mappers.lower``)."""

from __future__ import annotations

import math

from architectures.systolic import DATAFLOWS, SystolicArray
from mappers.annotations import Placement, Tiling, Traffic
from mappers.pipeline import MapperOptions, PassError, mapper_pass
from mappers.traffic import systolic_traffic, vector_traffic
from workloads.graph import OpGraph
from workloads.ops import Op

__all__ = ["place", "fuse", "choose_dataflow", "annotate_traffic", "estimate_cycles", "FUSIBLE"]


def _require_systolic(arch, pass_name: str) -> SystolicArray:
    if not isinstance(arch, SystolicArray):
        raise PassError(f"pass '{pass_name}' does not support template '{arch.template}'")
    return arch


@mapper_pass(name="place")
def place(graph: OpGraph, arch, options: MapperOptions) -> OpGraph:
    """Put matrix ops on the array, other ops on the vector unit, views nowhere."""
    g = graph.copy()
    for op in g.ops():
        unit = "none" if op.kind == "reshape" else ("array" if op.is_matrix else "vector")
        g.annotate(op.name, Placement(unit))
    return g


FUSIBLE = ("elementwise", "norm")


@mapper_pass(name="fuse", requires=("place",))
def fuse(graph: OpGraph, arch, options: MapperOptions) -> OpGraph:
    """Fuse single-input element-wise ops and norms into the op they directly follow.

    Into a matrix op: applied in the array's output stage (no extra cycles: the activation unit
    keeps pace with the array). Into a vector op: one pass over the data instead of two (the
    ops still cost vector-unit cycles, but no DRAM round trip).
    """
    g = graph.copy()
    if not options.fuse_activations:
        return g
    for op in g.ops():
        if op.kind not in FUSIBLE or len(op.inputs) != 1:
            continue
        producer = g.producer(op.inputs[0].name)
        if producer is None:
            continue
        target = g.get(producer, Placement)
        root = target.fused_into or producer
        if g.get(root, Placement).unit not in ("array", "vector"):
            continue
        if g.nx.out_degree(producer) != 1:  # someone else reads the pre-activation value
            continue
        g.annotate(op.name, Placement("fused", fused_into=root))
    return g


def estimate_cycles(op: Op, plan, traffic: Traffic, arch: SystolicArray) -> int:
    """Per-layer roofline: compute cycles or DRAM cycles, whichever is larger."""
    dram = traffic.dram_read_bytes + traffic.dram_write_bytes
    bpc = arch.dram_bytes_per_cycle
    dram_cycles = 0 if math.isinf(bpc) else math.ceil(dram / bpc)
    return max(plan.compute_cycles, dram_cycles)


@mapper_pass(name="dataflow", requires=("place",))
def choose_dataflow(graph: OpGraph, arch, options: MapperOptions) -> OpGraph:
    """Fold each matrix op onto the array: fixed dataflow, or ``auto``: fastest, then least DRAM."""
    arch = _require_systolic(arch, "dataflow")
    g = graph.copy()
    wanted = options.dataflow or arch.dataflow
    for op in g.ops():
        if g.get(op.name, Placement).unit != "array":
            continue
        gemm = op.gemm()
        if wanted != "auto":
            why = "mapper option" if options.dataflow else "architecture"
            g.annotate(op.name, Tiling(arch.fold(gemm, wanted), why))
            continue
        scored = []
        for df in DATAFLOWS:
            plan = arch.fold(gemm, df)
            t = systolic_traffic(op, plan, arch)
            scored.append((estimate_cycles(op, plan, t, arch), t.dram_read_bytes + t.dram_write_bytes,
                           DATAFLOWS.index(df), plan))
        scored.sort(key=lambda s: s[:3])
        why = "auto: " + ", ".join(f"{s[3].dataflow} {s[0]}" for s in sorted(scored, key=lambda s: s[2])) + " cycles"
        g.annotate(op.name, Tiling(scored[0][3], why))
    return g


@mapper_pass(name="traffic", requires=("dataflow",))
def annotate_traffic(graph: OpGraph, arch, options: MapperOptions) -> OpGraph:
    """Bytes per operand at SRAM and DRAM for every placed op (the analytical reuse model)."""
    arch = _require_systolic(arch, "traffic")
    g = graph.copy()
    for op in g.ops():
        unit = g.get(op.name, Placement).unit
        if unit == "array":
            g.annotate(op.name, systolic_traffic(op, g.get(op.name, Tiling).plan, arch))
        elif unit == "vector":
            g.annotate(op.name, vector_traffic(op))
    return g
