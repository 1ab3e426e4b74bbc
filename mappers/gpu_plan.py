"""The ``gpu`` template's planner and resources: one kernel per operator.

Resources: one compute unit ``gpu`` with one lane (one kernel at a time, in program order) and
one channel ``hbm`` running at the *sustained* HBM bandwidth (``hbm_efficiency`` x peak), so the
event engines move bytes at the rate the efficiency model assumes.

How a kernel becomes tasks. The efficiency model (``architectures.gpu``) gives a kernel
``launch + max(compute, memory)``. The planner emits, per kernel:

- tile 0, *launch*: ``launch`` cycles of compute, no transfers;
- tile 1, *sync*: 0 cycles, no transfers. The lowering lets the loads of tile t start once
  compute t-2 is done; this empty tile makes the kernel's first loads wait for its launch, so the
  launch is never overlapped (without it they would run during the launch);
- tiles 2.., the *body*: the kernel's work cut into at most (the plan pass's tile budget - 2)
  chunks of near-equal work; each chunk carries its share of the compute cycles, of the HBM
  reads and of the C writes (posted writes: a wave's C tiles drain while the next wave
  computes). Work units: a CTA-tiled GEMM's main-loop iterations (waves x K iterations);
  kernels without CTA tiles (element-wise, GEMV-like), waves of 1024 elements per SM.

The lowering double-buffers the chunks, so compute and HBM transfers overlap and the event
engines reproduce ``launch + max(compute, memory)`` up to one chunk of pipeline fill and drain
(tests/mappers/test_gpu_plan.py checks the numba engine within 2 % on the calibration shapes).
The ``analytical`` engine keeps the launch outside the roofline (``OpPlan.overhead_cycles``): it
gives ``launch + max(compute, memory)`` too.

Attention (``mapper.attention``): ``unfused`` runs QK^T, softmax and AV as three kernels; the
scores go through HBM unless the ``allocate`` pass kept them in L2. ``fused``: one
FlashAttention-style kernel per layer, reported as its three phases (so that MACs and vector ops
stay with their operators): only QK^T pays the launch, the scores never leave the chip (the
``allocate`` pass pins them), and Q, K and V are read from HBM once (re-reads hit in L2).

Counters follow ``mappers.plan``: ``dram_*`` is all HBM traffic (also ``hbm_*``), ``sram_*`` is
L2 traffic (SM reads of A and B panels, C writes), the compulsory / non-compulsory split, energy
by component; plus ``gpu_kernel_launches``, ``gpu_model_{compute,memory,kernel}_cycles`` (the
efficiency model's numbers for the kernel) and ``gpu_waves``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from architectures.gpu import GPU, KernelTime
from architectures.systolic import FoldPlan
from mappers.annotations import OpPlan, Placement, Tiling, Traffic
from mappers.lower import template_resources
from mappers.memory import Residency
from mappers.outputs import output_writers
from mappers.pipeline import MapperOptions
from mappers.plan import coalesce, planner, spread
from simulator.program import Resource
from workloads.coe import COE_KINDS
from workloads.graph import OpGraph
from workloads.ops import Conv2D, Embedding, MatMul, Op

__all__ = ["gpu_resources", "plan_gpu", "ATTENTION_PHASES"]

ATTENTION_PHASES = (".attn.qk", ".attn.softmax", ".attn.av")
OPERANDS = ("ifmap", "filter", "ofmap")


@template_resources("gpu")
def gpu_resources(arch: GPU) -> list[Resource]:
    hbm = arch.memory.hbm
    out = [Resource("gpu", "unit", 1, peak_macs_per_cycle=arch.peak_macs_per_cycle),
           Resource("hbm", "channel", bytes_per_cycle=arch.hbm_sustained_bytes_per_s / arch.freq_hz,
                    latency_cycles=int(math.ceil(hbm.latency_s * arch.freq_hz - 1e-9)), src="hbm",
                    dst="l2")]
    if arch.node.host_link_bandwidth_bytes_per_s:  # host -> GPU copies (model switching)
        out.append(Resource("host", "channel", bytes_per_cycle=arch.node.host_link_bandwidth_bytes_per_s
                            / arch.freq_hz, src="host", dst="hbm"))
    return out


def _second_operand(op: Op):
    if isinstance(op, MatMul):
        return op.inputs[1]
    return op.weights[0]


def _matrix_kernel(op: Op, arch: GPU, onchip: frozenset[str], write_out: int, launch: bool,
                   reread: bool) -> tuple[KernelTime, dict]:
    """The kernel of a matrix op, and the bytes of A and B (each read once)."""
    a, b = op.inputs[0], _second_operand(op)
    a_data = op.unique_input_bytes if isinstance(op, Conv2D) else a.nbytes
    b_data = b.nbytes if isinstance(op, MatMul) else sum(t.nbytes for t in op.weights)
    prec, _ = arch.tensor_precision(a.precision, b.precision)
    k = arch.gemm_kernel(op.gemm(), precision=prec, a_elem=a.element_bytes, b_elem=b.element_bytes,
                         a_hbm=0 if a.name in onchip else a_data, b_hbm=0 if b.name in onchip else b_data,
                         c_hbm=write_out, reread=reread, launch=launch)
    return k, {"ifmap": a_data, "filter": b_data}


def _vector_reads(op: Op, onchip: frozenset[str]) -> tuple[int, int, int]:
    """(off-chip input bytes, parameter bytes, all input bytes) of a vector kernel."""
    params = op.gathered_bytes if isinstance(op, Embedding) else sum(t.nbytes for t in op.weights)
    off = sum(t.nbytes for t in op.inputs if t.name not in onchip)
    return off, params, sum(t.nbytes for t in op.inputs)


def _body(units: int, n: int) -> np.ndarray:
    """Work units per chunk for ``units`` cut into ``n`` near-equal consecutive chunks."""
    return np.diff(np.append(coalesce(units, n), units))


def _element_waves(elements: int, arch: GPU) -> int:
    """Work units of a kernel without CTA tiles: waves of 1024 elements per SM."""
    return max(1, math.ceil(elements / (arch.sms * 1024)))


def _signature(op: Op, graph: OpGraph, residency: Residency, ctx: dict, fused_ops: int,
               flash: bool, launch: bool) -> tuple:
    """What a kernel's plan depends on, without names: identical layers share one plan."""
    def tensor(t):
        return (t.shape, t.precision, t.role, t.group_size, t.scale_bits, t.name in residency.onchip_inputs)
    attrs = tuple(sorted((k, repr(v)) for k, v in vars(op).items()
                         if k not in ("name", "inputs", "output", "weights", "block", "phase")))
    first = tuple(t.name in ctx["graph_inputs"] and ctx["first_reader"].get(t.name) == op.name
                  for t in op.inputs)
    return (type(op), attrs, tuple(map(tensor, op.inputs)), tuple(map(tensor, op.weights)),
            tensor(op.output), residency.write_output, tuple(b for _, b, _ in residency.spills), first,
            op.name in ctx["outputs"], fused_ops, graph.get(op.name, Placement).unit, flash, launch)


@planner("gpu")
def plan_gpu(op: Op, graph: OpGraph, arch: GPU, options: MapperOptions, ctx: dict):
    """One kernel: the efficiency model's time, cut into launch, sync and body tiles. Plans are
    cached by the op's signature within a pass (an LLM's identical layers cost one). A
    composition-of-experts stream's switches go over the host link (``simulator.coe``)."""
    if op.kind in COE_KINDS:
        from simulator.coe import plan_coe_op

        return plan_coe_op(op, graph, arch, options, ctx, unit="gpu", switch_channel="host")
    if "outputs" not in ctx:  # called outside the plan pass
        ctx["outputs"] = output_writers(graph)
    residency = graph.get(op.name, Residency, Residency())
    fused = ctx["fused_by"].get(op.name, [])
    fused_ops = sum(f.vector_ops for f in fused)
    flash = options.attention == "fused" and op.name.endswith(ATTENTION_PHASES)
    launch = not (flash and not op.name.endswith(".attn.qk"))  # one launch per fused attention
    key = _signature(op, graph, residency, ctx, fused_ops, flash, launch)
    cache = ctx.setdefault("gpu_plans", {})
    if key not in cache:
        cache[key] = _plan_kernel(op, graph, arch, ctx, residency, fused_ops, flash, launch)
    *rest, plan_ = cache[key]
    return [*rest, dataclasses.replace(plan_, fused=tuple(f.name for f in fused))]


def _plan_kernel(op: Op, graph: OpGraph, arch: GPU, ctx: dict, residency: Residency, fused_ops: int,
                 flash: bool, launch: bool) -> list:
    placement = graph.get(op.name, Placement).unit
    onchip = residency.onchip_inputs
    out_bytes = op.output.nbytes if residency.write_output else 0
    spill = sum(b for _, b, _ in residency.spills)
    f = arch.freq_hz
    annotations: list = []
    if placement == "array":
        k, data = _matrix_kernel(op, arch, onchip, out_bytes + spill, launch, reread=not flash)
        reads = {"ifmap": k.hbm_read["a"], "filter": k.hbm_read["b"], "ofmap": 0}
        l2_reads = {"ifmap": k.l2_read["a"], "filter": k.l2_read["b"], "ofmap": 0}
        g = op.gemm()
        units = k.waves * k.k_iters if k.tile else _element_waves(g.groups * g.K * g.N, arch)
        if k.tile is not None:
            rate = arch.tensor.macs_per_s(k.precision)
            gm, gn = math.ceil(g.M / k.tile[0]), math.ceil(g.N / k.tile[1])
            # the CTA grid as an output-stationary fold plan: a fold is a CTA tile, its cycles a wave's
            fold = FoldPlan("os", k.tile[0], k.tile[1], g, g.M, g.N, g.K, gm, gn, round(k.compute_s / k.waves * f))
            why = (f"gpu: CTA tile {'x'.join(map(str, k.tile))}, the least modelled time of "
                   f"{len(arch.kernel.cta_tiles)} candidates and the CUDA cores; {k.tiles} CTAs in "
                   f"{k.waves} waves on {arch.sms} SMs")
            dataflow = "cta " + "x".join(map(str, k.tile))
        else:
            rate = arch.vector_ops_per_s  # MAC/s of the CUDA cores (an FMA per lane per cycle)
            fold = FoldPlan("os", 1, 1, g, g.M, g.N, g.K, g.M, g.N, round(k.compute_s * f))
            why = "gpu: a GEMV-like kernel on the CUDA cores (faster than every CTA tile on the tensor cores)"
            dataflow = "cuda cores"
        annotations.append(Tiling(fold, why))
        tensor_rate = arch.tensor.macs_per_s(k.precision) or arch.peak_macs_per_s
        info = {"dataflow": dataflow, "folds": k.tiles, "mapping_efficiency": k.padding_efficiency,
                "compute_utilization": op.macs / (rate * k.compute_s) if k.compute_s else None,
                "peak_macs_per_cycle": int(round(tensor_rate / f))}  # utilization: of the tensor cores
        precision = k.precision
    else:
        off, params, all_in = _vector_reads(op, onchip)
        k = arch.vector_kernel(op.vector_ops + fused_ops, off + params, out_bytes + spill, launch=launch)
        reads = {"ifmap": off, "filter": params, "ofmap": 0}
        l2_reads = {"ifmap": all_in, "filter": params, "ofmap": 0}
        data = {"ifmap": all_in, "filter": params}
        units = _element_waves(op.output.numel, arch)
        info = {"dataflow": None, "folds": 0, "mapping_efficiency": None, "compute_utilization": None,
                "peak_macs_per_cycle": 0}
        precision = None
    writes = {"ifmap": 0, "filter": 0, "ofmap": out_bytes}
    l2_writes = {"ifmap": reads["ifmap"], "filter": reads["filter"],  # HBM fills
                 "ofmap": op.output.nbytes}  # C is written into L2 (write-back)

    # ---- tiles: launch, sync, body -------------------------------------------------------------
    max_tiles = ctx.get("max_tiles", 64)  # the plan pass's tile budget (1 at layer fidelity)
    head = 2 if launch else 0
    body_max = max(1, max_tiles - head)
    n = max(1, min(body_max, units))
    share = _body(units, n)
    compute_cycles = int(round(k.compute_s * f))
    launch_cycles = int(math.ceil(k.launch_s * f - 1e-9))
    body_cycles = spread(share.astype(np.float64), compute_cycles)
    total_read = int(round(sum(reads.values())))
    body_loads = spread(share.astype(np.float64), total_read)
    total_write = int(round(out_bytes + spill))
    # C is written as the CTAs finish: spread like the work, so the stores of one wave overlap
    # the next wave's main loop (writes are posted) instead of stalling it
    body_stores = spread(share.astype(np.float64), total_write)
    zero = np.zeros(head, dtype=np.int64)
    cycles = np.concatenate(([launch_cycles, 0] if launch else [], body_cycles)).astype(np.int64)
    counts = np.concatenate((np.ones(head, dtype=np.int64), np.maximum(share, 1))).astype(np.int64)
    loads = {"hbm": np.concatenate((zero, body_loads)).astype(np.int64)}
    stores = {"hbm": np.concatenate((zero, body_stores)).astype(np.int64)}

    counters = _counters(op, arch, ctx, residency, k, reads, writes, l2_reads, l2_writes, spill, data,
                         precision, op.vector_ops + fused_ops, launch)
    traffic = Traffic(l2_reads, l2_writes, reads, writes,
                      compulsory_read=int(sum(data.values())), compulsory_write=op.output.nbytes,
                      dram_loads={o: max(1, math.ceil(reads[o] / data[o] - 1e-9)) if data.get(o) else 1
                                  for o in ("ifmap", "filter")} | {"ofmap": 1})
    gm_ = op.gemm() if op.is_matrix else None
    annotations += [traffic, OpPlan(
        unit="gpu", cycles=cycles, counts=counts, loads=loads, stores=stores,
        compute_cycles=int(cycles.sum()), counters=counters, vector_ops=op.vector_ops + fused_ops,
        overhead_cycles=launch_cycles if launch else 0,
        gemm=(gm_.M, gm_.K, gm_.N, gm_.groups) if gm_ else None, **info)]
    return annotations


def _counters(op: Op, arch: GPU, ctx: dict, residency: Residency, k: KernelTime, reads: dict,
              writes: dict, l2_reads: dict, l2_writes: dict, spill: int, data: dict,
              precision: str | None, vector_ops: int, launch: bool) -> dict[str, float]:
    em = arch.energy_model()
    f = arch.freq_hz
    c: dict[str, float] = {}
    for o in OPERANDS:
        c[f"{o}_sram_read_bytes"] = l2_reads[o]
        c[f"{o}_sram_write_bytes"] = l2_writes[o]
        c[f"{o}_dram_read_bytes"] = reads[o]
        c[f"{o}_dram_write_bytes"] = writes[o]
    c["spill_dram_write_bytes"] = spill
    for kind in ("sram_read", "sram_write", "dram_read", "dram_write"):
        c[f"{kind}_bytes"] = sum(c[f"{o}_{kind}_bytes"] for o in OPERANDS)
    c["dram_write_bytes"] += spill
    # the COSMA split: weights and first reads of graph inputs, graph outputs written once
    comp_r = data.get("filter", 0) if (op.weights or isinstance(op, Embedding)) else 0
    comp_r += sum(t.nbytes for t in op.inputs if t.name in ctx["graph_inputs"]
                  and ctx["first_reader"].get(t.name) == op.name and t.name not in residency.onchip_inputs)
    comp_w = op.output.nbytes if residency.write_output and op.name in ctx["outputs"] else 0
    c["compulsory_dram_read_bytes"] = min(comp_r, c["dram_read_bytes"])
    c["compulsory_dram_write_bytes"] = min(comp_w, c["dram_write_bytes"])
    c["noncompulsory_dram_read_bytes"] = c["dram_read_bytes"] - c["compulsory_dram_read_bytes"]
    c["noncompulsory_dram_write_bytes"] = c["dram_write_bytes"] - c["compulsory_dram_write_bytes"]
    c["hbm_read_bytes"] = c["dram_read_bytes"]
    c["hbm_write_bytes"] = c["dram_write_bytes"]
    # energy by component
    l2r, l2w = em.sram_read_pj_per_byte["l2"].value, em.sram_write_pj_per_byte["l2"].value
    act = op.output.precision
    c["mac_energy_pj"] = op.macs * em.mac_pj_at(precision).value if precision else 0.0
    c["vector_energy_pj"] = vector_ops * em.vector_pj_at(act).value
    c["sram_energy_pj"] = (c["sram_read_bytes"] + c["dram_write_bytes"]) * l2r + c["sram_write_bytes"] * l2w
    c["dram_energy_pj"] = (c["dram_read_bytes"] * em.offchip_read_pj_per_byte["hbm"].value
                           + c["dram_write_bytes"] * em.offchip_write_pj_per_byte["hbm"].value)
    c["energy_pj"] = c["mac_energy_pj"] + c["vector_energy_pj"] + c["sram_energy_pj"] + c["dram_energy_pj"]
    # the efficiency model's own numbers for this kernel
    c["gpu_kernel_launches"] = 1 if launch else 0
    c["gpu_model_compute_cycles"] = k.compute_s * f
    c["gpu_model_memory_cycles"] = k.memory_s * f
    c["gpu_model_kernel_cycles"] = k.time_s * f
    c["gpu_waves"] = k.waves
    return c
