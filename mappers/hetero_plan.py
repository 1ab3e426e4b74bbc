"""Planners and resources of the templates with PIM (``gpu_pim``, ``systolic_pim``): xPU operators
and PIM operators on shared banks.

Resources (per device): the xPU's (``mappers.gpu_plan``: unit ``gpu``, channel ``hbm`` at the
sustained external bandwidth; ``mappers.lower.systolic_resources``: units ``array`` and
``vector``, channel ``dram``), a unit ``pim`` (the PIM MAC units of all stacks, one operator at
a time), and, with ``pim.sharing: bank_partition``, a channel ``pim_banks`` at PIM's sustained
internal bandwidth: the xPU's and PIM's bank accesses go to different bank bundles and run
concurrently. With ``time_share`` there is no second channel: PIM's transfers go over the xPU's
channel (``xpu_channel``: ``hbm`` or ``dram``), each holding it for ``bytes / PIM bandwidth``
(its byte count on the channel is scaled by ``xPU bandwidth / PIM bandwidth``; the counters keep
the real bytes), so the xPU and PIM take turns on the banks, first come first served.

Planning. An operator the ``place_pim`` pass left on the xPU is planned by the xPU's planner
(``gpu``: ``mappers.gpu_plan``; ``systolic_array``: ``mappers.plan``), after one adjustment: data
exchanged with PIM goes through the DRAM (PIM cannot read the xPU's L2 or SRAM), so an xPU
operator whose output a PIM operator reads writes it to DRAM, and an input produced on PIM is
read from DRAM even if the ``allocate`` pass counted it as resident. An operator on PIM
(``architectures.pim``) reads its inputs and weights from the banks and writes its output back;
it takes the xPU's launch cost (``pim_launch_s``: a GPU launches a PIM operator like a kernel,
and with ``mapper.attention: fused`` attention's three phases share one launch, as on the GPU;
a systolic xPU has none), then ``max(compute, memory)`` from PIM's rates, cut into equal chunks
(compute cycles at the xPU clock, bytes on the bank channel) which the lowering double-buffers,
so the event engines reproduce the roofline up to one chunk of fill. The chunks follow the plan
pass's tile budget, recounted here with the PIM operators (the plan pass counts xPU operators
only).

Counters of a PIM operator: its bank traffic counts as DRAM/HBM traffic (``dram_*``, ``hbm_*``,
the COSMA split) and again as ``pim_read_bytes``/``pim_write_bytes``; energy by component
(``dram_energy_pj`` at PIM's energy per byte, MACs and vector ops at the device's energy table,
no SRAM); ``pim_model_compute_cycles`` and ``pim_model_memory_cycles`` are the model's two sides.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from architectures.hetero import GpuPim, SystolicPim
from mappers.annotations import OpPlan, Placement, Traffic
from mappers.gpu_plan import ATTENTION_PHASES, gpu_resources, plan_gpu
from mappers.lower import systolic_resources, template_resources
from mappers.memory import Residency
from mappers.pipeline import MapperOptions
from mappers.plan import plan_systolic, planner, spread
from simulator.program import Resource
from workloads.graph import OpGraph
from workloads.ops import MatMul, Op

__all__ = ["gpu_pim_resources", "plan_gpu_pim", "systolic_pim_resources", "plan_systolic_pim", "pim_channel"]

OPERANDS = ("ifmap", "filter", "ofmap")


def pim_channel(arch: GpuPim | SystolicPim) -> str:
    """The channel PIM's bank transfers use."""
    return "pim_banks" if arch.pim.sharing == "bank_partition" else arch.xpu_channel


@template_resources("gpu_pim")
def gpu_pim_resources(arch: GpuPim) -> list[Resource]:
    return _with_pim(arch, gpu_resources(arch))


@template_resources("systolic_pim")
def systolic_pim_resources(arch: SystolicPim) -> list[Resource]:
    return _with_pim(arch, systolic_resources(arch))


def _with_pim(arch: GpuPim | SystolicPim, out: list[Resource]) -> list[Resource]:
    f = arch.freq_hz
    out.append(Resource("pim", "unit", 1, peak_macs_per_cycle=int(round(arch.pim_macs_per_s / f))))
    if arch.pim.sharing == "bank_partition":
        xpu = next(r for r in out if r.name == arch.xpu_channel)  # the same DRAM's latency
        out.append(Resource("pim_banks", "channel", bytes_per_cycle=arch.pim_bandwidth_bytes_per_s / f,
                            latency_cycles=xpu.latency_cycles, src="banks", dst="pim"))
    return out


def _producer(graph: OpGraph, tensor: str) -> str | None:
    """The operator that computes a tensor, looking through views and fused operators (a fused
    op's output is its root's)."""
    p = graph.producer(tensor)
    while p is not None:
        placement = graph.get(p, Placement)
        if placement.unit == "none":
            p = graph.producer(graph.op(p).inputs[0].name)
        elif placement.unit == "fused":
            p = placement.fused_into
        else:
            break
    return p


def _exchange_through_dram(op: Op, graph: OpGraph, ctx: dict) -> None:
    """An xPU operator's residency, adjusted for data exchanged with PIM (see the docstring)."""
    if "pim_exchange" not in ctx:  # per plan pass: who feeds PIM, which tensors PIM produced
        pim = [o for o in graph.ops() if graph.get(o.name, Placement).unit == "pim"]
        feeds = {p for o in pim for t in o.inputs if (p := _producer(graph, t.name)) is not None}
        ctx["pim_exchange"] = (feeds, {o.name for o in pim})
    feeds, pim_ops = ctx["pim_exchange"]
    if not pim_ops:
        return
    res = graph.get(op.name, Residency, Residency())
    from_pim = {t.name for t in op.inputs if (p := _producer(graph, t.name)) is not None and p in pim_ops}
    onchip = res.onchip_inputs - from_pim
    write = res.write_output or op.name in feeds
    if onchip != res.onchip_inputs or write != res.write_output:
        graph.annotate(op.name, dataclasses.replace(res, onchip_inputs=onchip, write_output=write))


@planner("gpu_pim")
def plan_gpu_pim(op: Op, graph: OpGraph, arch: GpuPim, options: MapperOptions, ctx: dict):
    """PIM operators with the PIM model; the rest with the gpu planner (see the docstring)."""
    if graph.get(op.name, Placement).unit == "pim":
        return _plan_pim(op, arch, options, ctx)
    _exchange_through_dram(op, graph, ctx)
    return plan_gpu(op, graph, arch, options, ctx)


@planner("systolic_pim")
def plan_systolic_pim(op: Op, graph: OpGraph, arch: SystolicPim, options: MapperOptions, ctx: dict):
    """PIM operators with the PIM model; the rest with the systolic planner (see the docstring)."""
    if graph.get(op.name, Placement).unit == "pim":
        return _plan_pim(op, arch, options, ctx)
    _exchange_through_dram(op, graph, ctx)
    return plan_systolic(op, graph, arch, options, ctx)


def _operands(op: Op) -> dict[str, int]:
    """Bytes PIM reads per operand: the first input, the second operand (weights or the other
    matrix), and any further inputs counted with the second."""
    first = op.inputs[0].nbytes if op.inputs else 0
    rest = sum(t.nbytes for t in op.inputs[1:]) + sum(t.nbytes for t in op.weights)
    return {"ifmap": first, "filter": rest}


def _plan_pim(op: Op, arch: GpuPim | SystolicPim, options: MapperOptions, ctx: dict) -> list:
    # launched by the xPU like a kernel; a fused attention's three phases share one launch
    launch = not (options.attention == "fused" and op.name.endswith(ATTENTION_PHASES)
                  and not op.name.endswith(".attn.qk"))
    cache = ctx.setdefault("pim_plans", {})
    key = (launch, op.kind, op.macs, op.vector_ops, tuple((t.nbytes, t.precision, t.role) for t in op.inputs),
           tuple(t.nbytes for t in op.weights), op.output.nbytes, op.output.precision,
           op.gemm() if op.is_matrix else None, ctx.get("max_tiles", 64),
           tuple(t.name in ctx["graph_inputs"] and ctx["first_reader"].get(t.name) == op.name for t in op.inputs),
           op.name in ctx["outputs"])
    if key not in cache:
        cache[key] = _pim_kernel(op, arch, ctx, launch)
    return cache[key]


def _pim_kernel(op: Op, arch: GpuPim | SystolicPim, ctx: dict, launch: bool) -> list:
    f = arch.freq_hz
    pim = arch.pim
    reads = _operands(op)
    read_total = reads["ifmap"] + reads["filter"]
    write_total = op.output.nbytes
    compute_s, memory_s = pim.pim_time(op.macs, op.vector_ops, read_total + write_total,
                                       arch.pim_default_efficiency)
    compute_cycles = int(round(compute_s * f))
    # chunks of near-equal work, double-buffered by the lowering
    launch_cycles = int(math.ceil(arch.pim_launch_s * f - 1e-9)) if launch else 0
    head = 2 if launch_cycles else 0  # launch, then an empty tile its first loads wait for (gpu_plan)
    n = max(1, ctx.get("max_tiles", 64) - head)
    share = np.ones(n, dtype=np.float64)
    channel = pim_channel(arch)
    scale = 1.0 if channel == "pim_banks" else arch.xpu_bandwidth_bytes_per_s / arch.pim_bandwidth_bytes_per_s
    zero = np.zeros(head, dtype=np.int64)
    cycles = np.concatenate(([launch_cycles, 0] if head else [], spread(share, compute_cycles))).astype(np.int64)
    loads = {channel: np.concatenate((zero, spread(share, int(round(read_total * scale))))).astype(np.int64)}
    stores = {channel: np.concatenate((zero, spread(share, int(round(write_total * scale))))).astype(np.int64)}
    n += head

    c: dict[str, float] = {}
    writes = {"ifmap": 0, "filter": 0, "ofmap": write_total}
    reads = {**reads, "ofmap": 0}
    for o in OPERANDS:
        c[f"{o}_sram_read_bytes"] = 0
        c[f"{o}_sram_write_bytes"] = 0
        c[f"{o}_dram_read_bytes"] = reads[o]
        c[f"{o}_dram_write_bytes"] = writes[o]
    c["spill_dram_write_bytes"] = 0
    for kind in ("sram_read", "sram_write", "dram_read", "dram_write"):
        c[f"{kind}_bytes"] = sum(c[f"{o}_{kind}_bytes"] for o in OPERANDS)
    comp_r = sum(t.nbytes for t in op.weights)
    comp_r += sum(t.nbytes for t in op.inputs if t.name in ctx["graph_inputs"]
                  and ctx["first_reader"].get(t.name) == op.name)
    c["compulsory_dram_read_bytes"] = min(comp_r, c["dram_read_bytes"])
    # a graph output (through views: the step's new K/V rows) must reach memory once
    c["compulsory_dram_write_bytes"] = c["dram_write_bytes"] if op.name in ctx["outputs"] else 0
    c["noncompulsory_dram_read_bytes"] = c["dram_read_bytes"] - c["compulsory_dram_read_bytes"]
    c["noncompulsory_dram_write_bytes"] = c["dram_write_bytes"] - c["compulsory_dram_write_bytes"]
    c["hbm_read_bytes"] = c["dram_read_bytes"]
    c["hbm_write_bytes"] = c["dram_write_bytes"]
    c["pim_read_bytes"] = read_total
    c["pim_write_bytes"] = write_total
    precision = None
    if op.is_matrix:
        b = op.inputs[1] if isinstance(op, MatMul) else op.weights[0]
        precision, _ = arch.xpu_matrix_rate(op.inputs[0].precision, b.precision)
    c["mac_energy_pj"] = op.macs * arch.pim_mac_pj(precision).value if precision else 0.0
    c["vector_energy_pj"] = op.vector_ops * arch.pim_vector_pj(op.output.precision).value
    c["sram_energy_pj"] = 0.0
    c["dram_energy_pj"] = pim.dram_energy_pj(read_total + write_total)
    c["energy_pj"] = c["mac_energy_pj"] + c["vector_energy_pj"] + c["dram_energy_pj"]
    c["pim_model_compute_cycles"] = compute_s * f
    c["pim_model_memory_cycles"] = memory_s * f

    traffic = Traffic({o: 0 for o in OPERANDS}, {o: 0 for o in OPERANDS}, reads, writes,
                      compulsory_read=int(c["compulsory_dram_read_bytes"]),
                      compulsory_write=int(c["compulsory_dram_write_bytes"]),
                      dram_loads={"ifmap": 1, "filter": 1, "ofmap": 1})
    g = op.gemm() if op.is_matrix else None
    peak = int(round(arch.pim_macs_per_s / f))
    return [traffic, OpPlan(
        unit="pim", cycles=cycles.astype(np.int64), counts=np.ones(n, dtype=np.int64), loads=loads,
        stores=stores, compute_cycles=int(cycles.sum()), counters=c, dataflow="pim",
        compute_utilization=(op.macs / (arch.pim_macs_per_s * compute_s)) if op.is_matrix and compute_s else None,
        peak_macs_per_cycle=peak if op.is_matrix else 0, vector_ops=op.vector_ops,
        gemm=(g.M, g.K, g.N, g.groups) if g else None, overhead_cycles=launch_cycles)]
