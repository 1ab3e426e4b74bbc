"""The ``plan`` pass: per operator, what runs where, for how many cycles, moving which bytes.

Contract: a planner is registered per template (``@planner("systolic_array")``) and turns one
placed operator into an ``OpPlan``: the unit that runs it, its tiles (cycles and coalesced
counts), per tile the bytes loaded and stored over each off-chip channel, and the layer's
counters (bytes per operand and level, energy by component). The generic lowering
(``mappers.lower``) turns OpPlans into tasks; a new template needs only its planner.

Off-chip counters: ``dram_read_bytes``/``dram_write_bytes`` count all off-chip traffic; a tier
other than the main one adds its share as ``<tier>_read_bytes`` (e.g. ``ddr_read_bytes``).
``compulsory_dram_*``: what any schedule must move (each graph input and weight read once, each
graph output written once: outputs looked for through views, ``mappers.outputs``, so the KV-cache
writes count); ``noncompulsory_dram_*``: everything else (spills, reloads,
re-reads forced by tiling) - the COSMA split.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from architectures.pe import PECost
from architectures.systolic import DATAFLOWS, MAC_STEP, FoldPlan, StepCost, SystolicArray
from mappers.annotations import LinkPlan, MappingChoice, OpPlan, Placement, Tiling, Traffic
from mappers.memory import Residency, TensorHomes
from mappers.outputs import output_writers
from mappers.pipeline import MapperOptions, PassError, mapper_pass, template_option_problems
from mappers.annotations import DEFAULT_NEST, LoopNest
from mappers.traffic import DEPENDS, OPERANDS, InvalidMapping, systolic_traffic, vector_traffic
from workloads.errors import ConfigError, Problem
from workloads.graph import OpGraph
from workloads.ops import Collective, Embedding, MatMul, Op

__all__ = ["PLANNERS", "planner", "plan", "fold_streams", "spread", "coalesce", "estimate_cycles",
           "search_mapping", "mapping_candidates"]

PLANNERS: dict[str, Callable[..., OpPlan]] = {}


def planner(template: str):
    """Register the planner of a template."""

    def deco(fn):
        if template in PLANNERS:
            raise ValueError(f"planner for '{template}' registered twice")
        PLANNERS[template] = fn
        return fn

    return deco


@mapper_pass(name="plan", requires=("allocate",))
def plan(graph: OpGraph, arch, options: MapperOptions) -> OpGraph:
    """Plan every operator that runs (tiles, cycles, bytes per channel, counters)."""
    fn = PLANNERS.get(arch.template)
    if fn is None:
        raise PassError(f"no planner for template '{arch.template}' (planners: {', '.join(PLANNERS)})")
    ignored = template_option_problems(options, arch)  # Python callers (experiments check at load)
    if ignored:
        raise ConfigError([Problem(None, f"mapper.{option}", message) for option, message in ignored])
    g = graph.copy()
    fused_by: dict[str, list[Op]] = {}
    for op in g.ops():
        into = g.get(op.name, Placement).fused_into
        if into is not None:
            fused_by.setdefault(into, []).append(op)
    first_reader: dict[str, str] = {}
    for op in g.ops():
        for t in op.inputs:
            first_reader.setdefault(t.name, op.name)
    running = sum(1 for op in g.ops() if g.get(op.name, Placement).unit not in ("none", "fused", "link"))
    # a tile is up to three tasks (load, compute, store): keep the program near max_tasks
    tiles = max(1, min(options.max_tiles_per_layer, options.max_tasks // max(1, 3 * running)))
    # "outputs": the ops that write a graph output (through views and fusion), one rule for
    # every planner's compulsory split (mappers.outputs)
    ctx = {"fused_by": fused_by, "graph_inputs": {t.name for t in g.graph_inputs},
           "first_reader": first_reader, "outputs": output_writers(g),
           "max_tiles": 1 if options.fidelity == "layer" else tiles}
    link = g.meta.get("link", {})
    for op in g.ops():
        unit = g.get(op.name, Placement).unit
        if unit in ("none", "fused"):
            continue
        if unit == "link":
            g.annotate(op.name, plan_collective(op, link.get("energy_pj_per_byte") or 0.0))
            continue
        for ann in fn(op, g, arch, options, ctx):
            g.annotate(op.name, ann)
    return g


def plan_collective(op: Collective, energy_pj_per_byte: float) -> LinkPlan:
    """Ring all-reduce: 2(n-1) steps of payload/n on each device's link; ring all-gather: n-1
    steps of the device's shard; all-to-all: each device sends what ``per_device_bytes`` says;
    send: the payload once. The simulated device's link stands for every device's in a
    symmetric collective (tensor parallelism)."""
    n = len(op.group)
    payload = op.payload_bytes
    if op.collective == "all_reduce":
        transfers = ((op.device, round(2 * (n - 1) * payload / n), 2 * (n - 1)),) if n > 1 else ()
    elif op.collective == "all_gather":
        transfers = ((op.device, (n - 1) * payload, n - 1),) if n > 1 else ()
    elif op.collective == "all_to_all":
        sizes = op.per_device_bytes or (round(payload * (n - 1) / n),) * n
        transfers = tuple((d, int(b), 1) for d, b in zip(op.group, sizes) if b > 0)
    elif op.collective == "send":
        transfers = ((op.device, payload, 1),)
    else:
        raise PassError(f"{op.name}: unknown collective '{op.collective}'")
    total = sum(b for _, b, _ in transfers)
    energy = total * energy_pj_per_byte
    return LinkPlan(transfers, {"link_bytes": total, "link_energy_pj": energy, "energy_pj": energy})


# ---- shared helpers --------------------------------------------------------------------------

def spread(weights: np.ndarray, total: int) -> np.ndarray:
    """Integers proportional to ``weights`` summing exactly to ``total``."""
    s = weights.sum()
    if total == 0 or s <= 0:
        return np.zeros(len(weights), dtype=np.int64)
    cum = np.cumsum(weights) / s
    cum[-1] = 1.0
    return np.diff(np.concatenate(([0], np.round(cum * total)))).astype(np.int64)


def coalesce(n: int, max_tiles: int) -> np.ndarray:
    """Start indices of at most ``max_tiles`` near-equal groups of ``n`` consecutive items."""
    k = min(n, max_tiles)
    return (np.arange(k, dtype=np.int64) * n) // k


def estimate_cycles(plan: FoldPlan, traffic: Traffic, arch: SystolicArray) -> int:
    """Per-layer roofline: compute cycles or off-chip cycles, whichever is larger."""
    bpc = arch.dram_bytes_per_cycle
    dram = traffic.dram_read_bytes + traffic.dram_write_bytes
    return max(plan.compute_cycles, 0 if math.isinf(bpc) else math.ceil(dram / bpc))


def fold_streams(op: Op, plan: FoldPlan, traffic: Traffic,
                 nest: LoopNest = DEFAULT_NEST) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per operand, per-fold off-chip (read, write) bytes in execution order.

    Execution order: per group, outer blocks of ``nest.block`` outer folds; within a block, the
    inner folds; within those, the block's outer folds. An operand that depends on both fold
    indices is loaded every fold; one that depends on the inner index only (swept) is loaded at
    the first outer fold of each block (only in the first block if it stays on chip); one that
    depends on the outer index only (stationary) is loaded at the first inner fold of its block
    (every fold if it does not fit). Outputs: os writes every fold; ws/is write a column's
    results after its last row fold, or, when partial sums spill, write every fold and read back
    every fold but the first.
    """
    g = plan.gemm
    R, C = plan.rows, plan.cols
    I, O = plan.row_folds, plan.col_folds
    used = {"A": np.minimum(R, plan.Sr - np.arange(I) * R).astype(np.float64),
            "B": np.minimum(C, plan.Sc - np.arange(O) * C).astype(np.float64)}
    inner, outer = ("A", "B") if nest.order == "cols_outer" else ("B", "A")
    n = {"A": I, "B": O}
    b = max(1, min(nest.block, n[outer]))
    # execution order of one group's folds: (block, inner index, outer index within the block)
    blk_start = np.arange(0, n[outer], b)
    sizes = np.minimum(b, n[outer] - blk_start)
    y = np.concatenate([np.tile(np.arange(s0, s0 + sz), n[inner]) for s0, sz in zip(blk_start, sizes)])
    x = np.concatenate([np.repeat(np.arange(n[inner]), sz) for sz in sizes])
    first_block = np.concatenate([np.full(n[inner] * sz, k == 0) for k, sz in enumerate(sizes)])
    block_first_y = np.concatenate([np.tile(np.arange(s0, s0 + sz) == s0, n[inner])
                                    for s0, sz in zip(blk_start, sizes)])
    idx = {outer: y, inner: x}
    a, bb = idx["A"], idx["B"]
    size_a, size_b = used["A"][a], used["B"][bb]
    loads = traffic.dram_loads
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    zero = np.zeros(len(a))
    for operand, dep in DEPENDS[plan.dataflow].items():
        if operand == "ofmap":
            if dep == "AB":
                rd, wr = zero, size_a * size_b
            elif loads.get("ofmap", 1) > 1:  # partial sums spill: out and back every fold
                wr, rd = size_b, size_b * (a > 0)
            else:
                rd, wr = zero, size_b * (a == I - 1)
        elif dep == "AB":
            rd, wr = size_a * size_b, zero
        elif dep == inner:
            mask = block_first_y & (first_block if loads[operand] == 1 else True)
            rd, wr = (size_a if dep == "A" else size_b) * mask, zero
        else:  # stationary
            mask = (x == 0) if loads[operand] == 1 else np.ones(len(x), dtype=bool)
            rd, wr = (size_a if dep == "A" else size_b) * mask, zero
        out[operand] = (rd, wr)

    def stream(w: np.ndarray, total: int) -> np.ndarray:
        return spread(np.tile(np.asarray(w, dtype=np.float64), g.groups), total)

    return {o: (stream(rd, traffic.dram_read[o]), stream(wr, traffic.dram_write[o] if o == "ofmap" else 0))
            for o, (rd, wr) in out.items()}


# ---- mapping search -----------------------------------------------------------------------

def _within_budget(ctx: dict, options: MapperOptions) -> bool:
    import time

    start = ctx.setdefault("search_started", time.perf_counter())
    if time.perf_counter() - start > options.search.time_budget_s:
        ctx["search_out_of_time"] = ctx.get("search_out_of_time", 0) + 1
        return False
    return True


def mapping_candidates(plan_of, wanted: str) -> list[tuple[str, LoopNest]]:
    """Every (dataflow, loop nest) to try: dataflows (one if fixed), both loop orders, and power-
    of-two blocks up to the outer fold count."""
    out = []
    for df in (DATAFLOWS if wanted == "auto" else (wanted,)):
        fp = plan_of(df)
        for order in ("cols_outer", "rows_outer"):
            outer = fp.col_folds if order == "cols_outer" else fp.row_folds
            block = 1
            while block <= max(1, outer):
                out.append((df, LoopNest(order, block)))
                block *= 2
    return out


def search_mapping(op: Op, arch: SystolicArray, options: MapperOptions, onchip, write_out,
                   wanted: str, step: StepCost | None = None) -> tuple[Tiling, Traffic]:
    """Evaluate candidates (sampled to the budget with the seed; the default mapping and each
    dataflow's default loop nest are always among them), reject invalid ones with their reason,
    and keep the fastest (then the one moving the fewest off-chip bytes). ``step``: the PE's step
    cost for the op (None: the PE's nominal one)."""
    import random

    gemm = op.gemm()
    plans = {}

    def plan_of(df: str) -> FoldPlan:
        if df not in plans:
            plans[df] = arch.fold(gemm, df, step)
        return plans[df]

    default = (wanted if wanted != "auto" else arch.dataflow, DEFAULT_NEST)
    cands = mapping_candidates(plan_of, wanted)
    if len(cands) > options.search.budget:
        # always the default and each dataflow's default nest (what auto compares), so the
        # search never does worse than auto by its estimate; the rest sampled to the budget
        rng = random.Random(options.search.seed)
        keep = ([default] + [c for c in cands if c[1] == DEFAULT_NEST and c != default])[:options.search.budget]
        rest = [c for c in cands if c not in keep]
        cands = keep + rng.sample(rest, max(0, options.search.budget - len(keep)))
    best, rejected = None, []
    default_cost = None
    for df, nest in cands:
        fp = plan_of(df)
        try:
            t = systolic_traffic(op, fp, arch, onchip, write_out, nest)
        except InvalidMapping as exc:
            rejected.append(f"{df}/{nest.order}/block {nest.block}: {exc}")
            continue
        cost = (estimate_cycles(fp, t, arch), t.dram_read_bytes + t.dram_write_bytes)
        if (df, nest) == default:
            default_cost = cost
        if best is None or cost < best[0]:
            best = (cost, df, nest, fp, t)
    cost, df, nest, fp, t = best
    why = (f"search: {len(cands)} candidates, {len(rejected)} rejected"
           + (f" (e.g. {rejected[0]})" if rejected else "")
           + f"; best {df}/{nest.order}/block {nest.block}: {cost[0]} cycles, {cost[1]:,} off-chip B"
           + (f" (default {default[0]}/{default[1].order}/block 1: {default_cost[0]} cycles, "
              f"{default_cost[1]:,} B)" if default_cost else ""))
    return Tiling(fp, why, nest, candidates=len(cands), rejected=len(rejected)), t


# ---- the systolic array's planner ------------------------------------------------------------

def _operand_tensors(op: Op) -> dict[str, str]:
    second = op.inputs[1] if isinstance(op, MatMul) else (op.weights[0] if op.weights else None)
    out = {"ifmap": op.inputs[0].name, "ofmap": op.output.name}
    if second is not None:
        out["filter"] = second.name
    return out


def _pe_work(op: Op, arch: SystolicArray, fp: FoldPlan, pc: PECost) -> dict[str, float]:
    """Energy of the PE array for one op (module docstring of architectures.systolic): active
    PE-cycles x energy per PE-cycle (the tile model charges every PE every compute cycle), plus
    dequantizations and LUT table builds. The mac kind gives macs x energy per MAC."""
    g = op.gemm()
    e = pc.energy_pj_per_cycle.value
    out: dict[str, float] = {}
    if arch.compute_model == "tile":
        cycles = fp.compute_cycles * arch.pe_count
        out["pe_cycles"] = cycles
        out["mac_energy_pj"] = cycles * e
    elif fp.cost is MAC_STEP and pc.dot_width == 1 and pc.step_cycles == 1.0:
        out["mac_energy_pj"] = op.macs * e
    else:
        cycles = op.macs * pc.step_cycles / pc.dot_width
        out["pe_cycles"] = cycles
        out["mac_energy_pj"] = cycles * e
    second = op.inputs[1] if isinstance(op, MatMul) else op.weights[0]
    group = second.group_size if second.role == "weight" else None
    if group and pc.dequant in ("per_group", "per_weight"):
        ops = (g.groups * g.M * g.N * -(-g.K // group)) if pc.dequant == "per_group" else op.macs
        out["dequant_ops"] = ops
        out["dequant_energy_pj"] = ops * pc.dequant_energy_pj.value
    if pc.table_build_adds:
        builds = -(-fp.ifmap_reads // pc.dot_width)  # one table per activation group entering the array
        out["lut_table_builds"] = builds
        out["lut_table_energy_pj"] = builds * pc.table_build_adds * pc.table_add_pj.value
    return out


def _counters(op: Op, traffic: Traffic, residency: Residency, homes: TensorHomes, arch: SystolicArray,
              ctx: dict, macs: int, vector_ops: int, on_array: bool,
              tiers_of: dict[str, str], pe_work: dict[str, float] | None = None) -> dict[str, float]:
    em = arch.energy_model()
    c: dict[str, float] = {}
    for o in OPERANDS:
        c[f"{o}_sram_read_bytes"] = traffic.sram_read[o]
        c[f"{o}_sram_write_bytes"] = traffic.sram_write[o]
        c[f"{o}_dram_read_bytes"] = traffic.dram_read[o]
        c[f"{o}_dram_write_bytes"] = traffic.dram_write[o]
    spill = sum(b for _, b, _ in residency.spills)
    c["spill_dram_write_bytes"] = spill
    for kind in ("sram_read", "sram_write", "dram_read", "dram_write"):
        c[f"{kind}_bytes"] = sum(c[f"{o}_{kind}_bytes"] for o in OPERANDS)
    c["dram_write_bytes"] += spill
    # the COSMA split: compulsory = graph inputs (first reader) and weights read once, graph
    # outputs written once
    comp_r = op.gathered_bytes if isinstance(op, Embedding) else sum(t.nbytes for t in op.weights)
    comp_r += sum(t.nbytes for t in op.inputs if t.name in ctx["graph_inputs"]
                  and ctx["first_reader"].get(t.name) == op.name and t.name not in residency.onchip_inputs)
    comp_w = op.output.nbytes if residency.write_output and op.name in ctx["outputs"] else 0
    c["compulsory_dram_read_bytes"] = min(comp_r, c["dram_read_bytes"])
    c["compulsory_dram_write_bytes"] = min(comp_w, c["dram_write_bytes"])
    c["noncompulsory_dram_read_bytes"] = c["dram_read_bytes"] - c["compulsory_dram_read_bytes"]
    c["noncompulsory_dram_write_bytes"] = c["dram_write_bytes"] - c["compulsory_dram_write_bytes"]
    # per off-chip tier
    per_tier_r: dict[str, float] = {}
    per_tier_w: dict[str, float] = {}
    for o in OPERANDS:
        tier = tiers_of.get(o, "dram")
        per_tier_r[tier] = per_tier_r.get(tier, 0) + traffic.dram_read[o]
        per_tier_w[tier] = per_tier_w.get(tier, 0) + traffic.dram_write[o]
    for _, b, tier in residency.spills:
        per_tier_w[tier] = per_tier_w.get(tier, 0) + b
    for tier in arch.offchip_tiers():
        if tier != "dram":
            c[f"{tier}_read_bytes"] = per_tier_r.get(tier, 0)
            c[f"{tier}_write_bytes"] = per_tier_w.get(tier, 0)
    # energy
    sram = 0.0
    for o in OPERANDS:
        rd, wr = em.sram_read_pj_per_byte[o].value, em.sram_write_pj_per_byte[o].value
        sram += (traffic.sram_read[o] + traffic.dram_write[o]) * rd  # array reads, drains
        sram += (traffic.sram_write[o] + traffic.dram_read[o]) * wr  # array writes, fills
    sram += spill * em.sram_read_pj_per_byte["ifmap"].value
    extra = 0.0
    if on_array and pe_work is not None:
        for k, v in pe_work.items():
            c[k] = v
        extra = pe_work.get("dequant_energy_pj", 0.0) + pe_work.get("lut_table_energy_pj", 0.0)
    else:
        c["mac_energy_pj"] = macs * em.mac_pj.value if on_array else 0.0
    c["vector_energy_pj"] = vector_ops * em.vector_op_pj.value
    c["sram_energy_pj"] = sram
    c["dram_energy_pj"] = sum(per_tier_r.get(t, 0) * em.offchip_read_pj_per_byte[t].value
                              + per_tier_w.get(t, 0) * em.offchip_write_pj_per_byte[t].value
                              for t in arch.offchip_tiers())
    c["energy_pj"] = c["mac_energy_pj"] + c["vector_energy_pj"] + c["sram_energy_pj"] + c["dram_energy_pj"]
    if extra:
        c["energy_pj"] += extra
    return c


def _channel_streams(per_operand: dict[str, tuple[np.ndarray, np.ndarray]], tiers_of: dict[str, str],
                     n: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    loads: dict[str, np.ndarray] = {}
    stores: dict[str, np.ndarray] = {}
    for o, (rd, wr) in per_operand.items():
        ch = tiers_of.get(o, "dram")
        loads[ch] = loads.get(ch, np.zeros(n, dtype=np.int64)) + rd
        stores[ch] = stores.get(ch, np.zeros(n, dtype=np.int64)) + wr
    return loads, stores


def _signature(op: Op, graph: OpGraph, residency: Residency, homes: TensorHomes, ctx: dict,
               fused_ops: int) -> tuple:
    """What an op's plan depends on, without its names: identical layers share one plan."""
    def tensor(t):
        return (t.shape, t.precision, t.role, t.group_size, t.scale_bits,
                t.name in residency.onchip_inputs, homes.of(t.name, ""))
    first_graph_inputs = tuple(t.name in ctx["graph_inputs"] and ctx["first_reader"].get(t.name) == op.name
                               for t in op.inputs)
    attrs = tuple(sorted((k, v) for k, v in vars(op).items()
                         if k not in ("name", "inputs", "output", "weights", "block", "phase")))
    return (type(op), attrs, tuple(map(tensor, op.inputs)), tuple(map(tensor, op.weights)),
            tensor(op.output), residency.write_output, tuple((b, tier) for _, b, tier in residency.spills),
            first_graph_inputs, op.name in ctx["outputs"], fused_ops, graph.get(op.name, Placement).unit)


@planner("systolic_array")
def plan_systolic(op: Op, graph: OpGraph, arch: SystolicArray, options: MapperOptions, ctx: dict):
    """Dataflow choice, the reuse model and fold streams for one operator on a systolic array.
    Plans are cached by the op's signature within a pass: an LLM's identical layers cost one."""
    if "outputs" not in ctx:  # called outside the plan pass
        ctx["outputs"] = output_writers(graph)
    residency = graph.get(op.name, Residency, Residency())
    homes = graph.get(op.name, TensorHomes, TensorHomes({}))
    fused = ctx["fused_by"].get(op.name, [])
    key = _signature(op, graph, residency, homes, ctx, sum(f.vector_ops for f in fused))
    cache = ctx.setdefault("plans", {})
    if key not in cache:
        cache[key] = _plan_systolic(op, graph, arch, options, ctx, residency, homes, fused)
    *rest, plan_ = cache[key]
    return [*rest, dataclasses.replace(plan_, fused=tuple(f.name for f in fused))]


def _plan_systolic(op: Op, graph: OpGraph, arch: SystolicArray, options: MapperOptions, ctx: dict,
                   residency: Residency, homes: TensorHomes, fused: list[Op]) -> list:
    placement = graph.get(op.name, Placement).unit
    onchip, write_out = residency.onchip_inputs, residency.write_output
    # a fused op's output is its root's: resident inputs may be named by the fused op's output
    names = _operand_tensors(op)
    tiers_of = {o: homes.of(t, "dram") for o, t in names.items()}
    fused_ops = sum(f.vector_ops for f in fused)
    max_tiles = ctx["max_tiles"]
    annotations = []
    pe_work = None
    if placement == "array":
        wanted = options.dataflow or arch.dataflow
        gemm = op.gemm()
        second = op.inputs[1] if isinstance(op, MatMul) else op.weights[0]
        step, pe_cost = arch.step_cost(second.precision, op.inputs[0].precision,
                                       second.group_size if second.role == "weight" else None)
        if arch.compute_model == "tile":  # BitMoD's analytic model: output stationary only
            if wanted not in ("os", "auto"):
                raise PassError(f"{op.name}: compute_model 'tile' is output stationary; mapper "
                                f"dataflow '{wanted}' does not apply (use os or auto)")
            wanted = "os"
        if options.search is not None and _within_budget(ctx, options):
            tiling, traffic = search_mapping(op, arch, options, onchip, write_out, wanted, step)
            fp = tiling.plan
        elif wanted != "auto":
            fp = arch.fold(gemm, wanted, step)
            traffic = systolic_traffic(op, fp, arch, onchip, write_out)
            tiling = Tiling(fp, "mapper option" if options.dataflow else "architecture")
        else:
            scored = []
            for df in DATAFLOWS:
                fp = arch.fold(gemm, df, step)
                t = systolic_traffic(op, fp, arch, onchip, write_out)
                scored.append((estimate_cycles(fp, t, arch), t.dram_read_bytes + t.dram_write_bytes,
                               DATAFLOWS.index(df), fp, t))
            scored.sort(key=lambda s: s[:3])
            why = "auto: " + ", ".join(f"{s[3].dataflow} {s[0]}" for s in sorted(scored, key=lambda s: s[2])) + " cycles"
            fp, traffic = scored[0][3], scored[0][4]
            tiling = Tiling(fp, why, candidates=len(scored), rejected=0)
        per_operand = fold_streams(op, fp, traffic, tiling.nest)
        cycles = np.full(fp.folds, fp.fold_cycles, dtype=np.int64)
        counts = np.ones(fp.folds, dtype=np.int64)
        compute_total = fp.compute_cycles
        info = {"dataflow": fp.dataflow, "folds": fp.folds, "mapping_efficiency": fp.mapping_efficiency,
                "compute_utilization": fp.compute_utilization, "peak_macs_per_cycle": arch.pes,
                "mapping": MappingChoice.of(tiling)}
        if step is not MAC_STEP or pe_cost.dequant != "none" or pe_cost.table_build_adds:
            pe_work = _pe_work(op, arch, fp, pe_cost)
        annotations.append(tiling)
    else:
        traffic = vector_traffic(op, onchip, write_out)
        compute_total = math.ceil((op.vector_ops + fused_ops) / arch.vector_lanes)
        n = max(1, min(max_tiles, math.ceil(traffic.dram_read_bytes / (arch.memory.ifmap_sram.size_bytes / 2))))
        cycles = spread(np.ones(n), compute_total)
        counts = np.ones(n, dtype=np.int64)
        per_operand = {o: (spread(np.ones(n), traffic.dram_read[o]), spread(np.ones(n), traffic.dram_write[o]))
                       for o in OPERANDS}
        info = {"dataflow": None, "folds": 0, "mapping_efficiency": None, "compute_utilization": None,
                "peak_macs_per_cycle": 0}
    n = len(cycles)
    loads, stores = _channel_streams(per_operand, tiers_of, n)
    # spills of tensors this op's output evicted go out after its last tile
    for _, b, tier in residency.spills:
        stores[tier] = stores.get(tier, np.zeros(n, dtype=np.int64))
        stores[tier][-1] += b
    starts = coalesce(n, max_tiles)
    counters = _counters(op, traffic, residency, homes, arch, ctx, op.macs, op.vector_ops + fused_ops,
                         placement == "array", tiers_of, pe_work)
    gm = op.gemm() if op.is_matrix else None
    annotations.append(traffic)
    annotations.append(OpPlan(
        unit=placement, cycles=np.add.reduceat(cycles, starts), counts=np.add.reduceat(counts, starts),
        loads={ch: np.add.reduceat(a, starts) for ch, a in loads.items()},
        stores={ch: np.add.reduceat(a, starts) for ch, a in stores.items()},
        compute_cycles=compute_total, counters=counters, fused=tuple(f.name for f in fused),
        vector_ops=op.vector_ops + fused_ops,
        gemm=(gm.M, gm.K, gm.N, gm.groups) if gm else None, **info))
    return annotations
