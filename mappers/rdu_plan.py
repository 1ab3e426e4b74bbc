"""The ``rdu`` template's planner and resources: spatial pipelines of fused operators.

Resources: one compute unit ``pcus`` (the socket's PCUs and PMUs, configured for one kernel at a
time), a channel per off-chip tier (``hbm``, ``ddr``: tier <-> PMUs) and ``ddr_hbm``, the node's
DDR->HBM copy path (composition-of-experts model switching, ``simulator.coe``).

The model is in three modules: ``mappers.rdu_fusion`` groups the running operators into kernels
(chains of a block, split when they do not fit the PMUs or cut when fusing is slower; one
kernel per operator with ``mapper.spatial_fusion: false``), ``mappers.rdu_pipeline`` allocates a
kernel's PCUs and PMUs to its stages and times the pipeline and its off-chip traffic, and this
module turns each operator's place in its kernel into its plan (``@planner("rdu")``).

How a kernel is lowered: the last operator of the chain carries the kernel's ``OpPlan``: tiles
(the chunks, coalesced to the plan pass's tile budget) with ``fill + t_max`` cycles for the first,
``t_max`` for the middle ones and ``t_max + drain`` for the last, and per tile its share of the
loads and stores per channel. The other operators carry zero-cycle plans that hold their MACs,
vector ops and stage counters (one layer row per stage, for the breakdown); they run before the
last one, so the kernel also waits for every input any of its operators reads.

Counters: per operator ``stage.<op>.{pcus, pmus, pmu_bytes, cycles, compute_cycles, pmu_cycles,
network_cycles, slowest}`` (``<op>`` without its block prefix: ``attn.q``; ``cycles`` is per
chunk; the largest of compute/PMU/network says why a stage is slow). On the kernel's last
operator: ``pipeline_{cycles, iterations, stages, fill_cycles, drain_cycles,
slowest_stage_cycles, pcus, pmus, pmu_bytes}``, ``kernel_calls``, ``fusion_split``,
``fusion_cut``, and the
traffic counters of ``mappers.plan``: ``dram_*`` (all off-chip), ``hbm_*``, ``ddr_*``,
``sram_*`` (PMU), the compulsory / non-compulsory split, energy by component.

``Stage``, ``Kernel``, ``kernels`` and ``pipeline_cycles`` are re-exported from the two modules
above.
"""

from __future__ import annotations

import math

import numpy as np

from architectures.rdu import RDU
from mappers.annotations import OpPlan, Tiling
from mappers.lower import template_resources
from mappers.pipeline import MapperOptions
from mappers.plan import coalesce, planner, spread
from mappers.rdu_fusion import kernels
from mappers.rdu_pipeline import Kernel, Stage, pipeline_cycles
from simulator.program import Resource
from workloads.coe import COE_KINDS
from workloads.graph import OpGraph
from workloads.ops import Op

__all__ = ["rdu_resources", "plan_rdu", "Stage", "Kernel", "kernels", "pipeline_cycles", "UNIT",
           "SWITCH_CHANNEL", "stage_table"]

UNIT = "pcus"
SWITCH_CHANNEL = "ddr_hbm"


@template_resources("rdu")
def rdu_resources(arch: RDU) -> list[Resource]:
    """The ``pcus`` unit, one channel per off-chip tier (tier -> PMUs) and, when the node has a
    DDR->HBM copy path, the ``ddr_hbm`` switch channel."""
    out = [Resource(UNIT, "unit", 1, peak_macs_per_cycle=arch.pes)]
    for name, tier in arch.offchip_tiers().items():
        out.append(Resource(name, "channel", bytes_per_cycle=tier.bandwidth_bytes_per_s / arch.freq_hz,
                            latency_cycles=int(math.ceil(tier.latency_s * arch.freq_hz - 1e-9)),
                            src=name, dst="pmu"))
    if arch.node_ddr_to_hbm_bytes_per_s > 0:
        out.append(Resource(SWITCH_CHANNEL, "channel",
                            bytes_per_cycle=arch.node_ddr_to_hbm_bytes_per_s / arch.freq_hz,
                            src="ddr", dst="hbm"))
    return out


# ---- the planner ---------------------------------------------------------------------------

def _short(op: Op) -> str:
    if op.block and op.name.startswith(op.block + "."):
        return op.name[len(op.block) + 1:]
    return op.name


def _stage_counters(s: Stage, k: Kernel, arch: RDU) -> dict[str, float]:
    em = arch.energy_model()
    p = f"stage.{_short(s.op)}."
    macs = s.op.macs + sum(f.macs for f in s.fused)
    sram_r = s.in_bytes + s.weight_bytes
    sram_w = s.out.nbytes + sum(s.ext_in.values()) + s.weight_bytes
    c = {p + "pcus": s.pcus, p + "pmus": s.pmus, p + "pmu_bytes": s.need, p + "cycles": s.cycles,
         p + "compute_cycles": s.compute, p + "pmu_cycles": s.pmu_cycles,
         p + "network_cycles": s.net_cycles,
         p + "slowest": 1.0 if k.stages[k.slowest] is s else 0.0,
         "sram_read_bytes": sram_r, "sram_write_bytes": sram_w,
         "mac_energy_pj": macs * em.mac_pj.value,
         "vector_energy_pj": s.vector_ops * em.vector_op_pj.value,
         "sram_energy_pj": sram_r * em.sram_read_pj_per_byte["pmu"].value
         + sram_w * em.sram_write_pj_per_byte["pmu"].value}
    return c


def _kernel_counters(k: Kernel, arch: RDU, graph_inputs: set[str], first_reader: dict[str, str],
                     outputs: set[str]) -> dict[str, float]:
    em = arch.energy_model()
    tiers = list(arch.offchip_tiers())
    reads = {t: 0 for t in tiers}
    writes = {t: 0 for t in tiers}
    comp_r = comp_w = 0
    for s in k.stages:
        for t, b in s.weights.items():
            reads[t] += b
        for t, b in s.ext_in.items():
            reads[t] += b
        for t, b in s.out_store.items():
            writes[t] += b
        comp_r += s.weight_bytes
        comp_r += sum(x.nbytes for x in s.op.inputs if x.name in graph_inputs and first_reader.get(x.name) == s.name)
        if s.name in outputs or s.op.output.role == "kv_cache":  # graph outputs (by op), KV-cache writes
            comp_w += sum(s.out_store.values())
    c: dict[str, float] = {
        "pipeline_cycles": k.total, "pipeline_iterations": k.n, "pipeline_stages": len(k.stages),
        "pipeline_fill_cycles": k.fill, "pipeline_drain_cycles": k.drain,
        "pipeline_slowest_stage_cycles": k.stages[k.slowest].cycles,
        "pipeline_pcus": sum(s.pcus for s in k.stages), "pipeline_pmus": sum(s.pmus for s in k.stages),
        "pipeline_pmu_bytes": k.pmu_bytes, "kernel_calls": 1, "fusion_split": 1.0 if k.split else 0.0,
        "fusion_cut": 1.0 if k.cut else 0.0,
        "dram_read_bytes": sum(reads.values()), "dram_write_bytes": sum(writes.values())}
    for t in tiers:
        c[f"{t}_read_bytes"] = reads[t]
        c[f"{t}_write_bytes"] = writes[t]
    c["compulsory_dram_read_bytes"] = min(comp_r, c["dram_read_bytes"])
    c["compulsory_dram_write_bytes"] = min(comp_w, c["dram_write_bytes"])
    c["noncompulsory_dram_read_bytes"] = c["dram_read_bytes"] - c["compulsory_dram_read_bytes"]
    c["noncompulsory_dram_write_bytes"] = c["dram_write_bytes"] - c["compulsory_dram_write_bytes"]
    c["dram_energy_pj"] = sum(reads[t] * em.offchip_read_pj_per_byte[t].value
                              + writes[t] * em.offchip_write_pj_per_byte[t].value for t in tiers)
    return c


def _add(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    out = dict(a)
    for key, v in b.items():
        out[key] = out.get(key, 0) + v
    return out


def _energy_total(c: dict[str, float]) -> dict[str, float]:
    c = dict(c)
    for key in ("mac_energy_pj", "vector_energy_pj", "sram_energy_pj", "dram_energy_pj"):
        c.setdefault(key, 0.0)
    c["energy_pj"] = c["mac_energy_pj"] + c["vector_energy_pj"] + c["sram_energy_pj"] + c["dram_energy_pj"]
    return c


def _tiling(s: Stage) -> Tiling | None:
    if not s.matrix:
        return None
    return Tiling(s.fold, f"rdu: the fastest of os/ws/is on one {s.fold.rows}x{s.fold.cols} PCU; "
                          f"{s.pcus} PCUs share its {s.fold.folds} folds")


@planner("rdu")
def plan_rdu(op: Op, graph: OpGraph, arch: RDU, options: MapperOptions, ctx: dict):
    """The operator's stage of its kernel; the kernel's plan on its last operator."""
    if op.kind in COE_KINDS:
        from simulator.coe import plan_coe_op

        return plan_coe_op(op, graph, arch, options, ctx, unit=UNIT, switch_channel=SWITCH_CHANNEL)
    ks = kernels(graph, arch, options, ctx)
    k = ks[op.name]
    s = next(x for x in k.stages if x.name == op.name)
    if "outputs" not in ctx:
        ctx["outputs"] = {o.name for o in graph.ops() if graph.nx.out_degree(o.name) == 0}
    counters = _stage_counters(s, k, arch)
    info = {"dataflow": s.fold.dataflow if s.matrix else None, "folds": s.fold.folds if s.matrix else 0,
            "mapping_efficiency": s.fold.mapping_efficiency if s.matrix else None,
            "compute_utilization": s.fold.compute_utilization if s.matrix else None,
            "peak_macs_per_cycle": arch.pes}
    gm = op.gemm() if op.is_matrix else None
    common = dict(unit=UNIT, fused=tuple(f.name for f in s.fused), vector_ops=s.vector_ops,
                  gemm=(gm.M, gm.K, gm.N, gm.groups) if gm else None, **info)
    anns = [t for t in (_tiling(s),) if t is not None]
    if s is not k.tail:
        empty = np.zeros(1, dtype=np.int64)
        anns.append(OpPlan(cycles=empty, counts=np.ones(1, dtype=np.int64), loads={}, stores={},
                           compute_cycles=0, counters=_energy_total(counters), **common))
        return anns
    kc = _kernel_counters(k, arch, ctx["graph_inputs"], ctx["first_reader"], ctx["outputs"])
    counters = _energy_total(_add(counters, kc))
    n = k.n
    t_max = k.stages[k.slowest].cycles
    cycles = np.full(n, t_max, dtype=np.int64)
    cycles[0] += k.fill + arch.kernel_call_cycles
    cycles[-1] += k.drain
    total = int(cycles.sum())
    loads: dict[str, np.ndarray] = {}
    stores: dict[str, np.ndarray] = {}
    for t in arch.offchip_tiers():
        r = int(counters.get(f"{t}_read_bytes", 0))
        w = int(counters.get(f"{t}_write_bytes", 0))
        if r:
            loads[t] = spread(np.ones(n), r)
        if w:
            stores[t] = spread(np.ones(n), w)
    starts = coalesce(n, ctx["max_tiles"])
    anns.append(OpPlan(cycles=np.add.reduceat(cycles, starts),
                       counts=np.add.reduceat(np.ones(n, dtype=np.int64), starts),
                       loads={ch: np.add.reduceat(a, starts) for ch, a in loads.items()},
                       stores={ch: np.add.reduceat(a, starts) for ch, a in stores.items()},
                       compute_cycles=total, counters=counters, **common))
    return anns


def stage_table(result, kernel_layer: str) -> list[dict[str, object]]:
    """The stages of the kernel whose last operator is ``kernel_layer`` in a ``SimResult``: one row
    per stage with its PCUs, PMUs, cycles per chunk and what bounds it (compute, pmu, network),
    slowest first. For reports and tests."""
    layers = {l.name: l for l in result.layers}
    tail = layers[kernel_layer]
    n = int(tail.counters.get("pipeline_stages", 1))
    idx = [i for i, l in enumerate(result.layers) if l.name == kernel_layer][0]
    rows = []
    for layer in result.layers[idx - n + 1: idx + 1]:
        prefix = next((k[: -len("cycles")] for k in layer.counters
                       if k.startswith("stage.") and k.endswith(".cycles") and not k.endswith(
                           ("compute_cycles", "pmu_cycles", "network_cycles"))), None)
        if prefix is None:
            continue
        c = layer.counters
        bounds = {"compute": c[prefix + "compute_cycles"], "pmu": c[prefix + "pmu_cycles"],
                  "network": c[prefix + "network_cycles"]}
        rows.append({"stage": layer.name, "pcus": int(c[prefix + "pcus"]), "pmus": int(c[prefix + "pmus"]),
                     "cycles_per_chunk": int(c[prefix + "cycles"]), "bound": max(bounds, key=bounds.get),
                     "slowest": bool(c[prefix + "slowest"]), **{f"{b}_cycles": int(v) for b, v in bounds.items()}})
    return sorted(rows, key=lambda r: -r["cycles_per_chunk"])
