"""The ``fusemax`` template's planner: attention as a cascade of Einsums (FuseMax, Nayak et al.,
MICRO 2024, arXiv 2406.10491) or FLAT-style, and everything else on the 2D / 1D arrays.

Resources: units ``array2d`` (the matrix array) and ``array1d`` (the vector array), channel
``dram`` (DRAM <-> global buffer).

Attention is recognised by the LLM builders' names: ``<block>.attn.qk`` -> ``.attn.softmax`` ->
``.attn.av``. With queries ``P`` (``qk``'s M), keys ``M`` (``qk``'s N), head dims ``E`` / ``F``,
``BH`` batch x heads, ``S = BH * P * M`` scores, a 2D tile of ``rows x cols`` (queries x keys)
scores and ``T2 = BH * ceil(P / rows) * ceil(M / cols)`` tiles (cycles below are the 2D array's
per-Einsum cost ``T2 * temporal * ops`` and the 1D array's ``ceil(elements / pes) * ops``):

``mapper.attention_mapping: fusemax`` (one pass over K and V, online softmax; the keys are cut in
``M1 = ceil(M / cols)`` chunks of ``cols``):

======  =====================================  =====  =================================
Einsum  what                                   array  cycles
======  =====================================  =====  =================================
QK      scores of a chunk                      2D     T2 * E
LM      max of the chunk's scores              2D     T2
RM      running max                            1D     BH*M1*P / pes
SLN     exp(QK - RM): 6 MAC + 1 add            2D     T2 * 7
SLD     sum of SLN over the chunk              2D     T2
SLNV    SLN x V                                2D     T2 * F
PRM     exp(RM_old - RM_new): 6 MAC + 1 add    1D     BH*M1*P / pes * 7
SPD     rescale the running denominator        1D     BH*M1*P / pes
SPNV    rescale the running numerator          1D     BH*M1*P*F / pes
RD      running denominator += SLD             1D     BH*M1*P / pes
RNV     running numerator += SLNV              1D     BH*M1*P*F / pes
AV      numerator / denominator                1D     BH*P*F / pes
======  =====================================  =====  =================================

The two arrays run the cascade as a waterfall (the artifact's ``src/accel/proposal.py``):
``max(QK+LM, RD+RNV+AV) + RM + max(SLN+SLD, PRM+SPD) + max(SLNV, SPNV)`` cycles. The buffer holds
a chunk of K and V (``cols x (E + F)``) and, per query, its row of Q, RM, RD and RNV: ``P1``
blocks of ``rows`` queries at a time, ``P1`` the largest divisor of ``ceil(P / rows)`` that fits,
so the buffer need does not grow with the sequence and K and V are read ``ceil(P / rows) / P1``
times; Q is read and the output written once.

``flat`` (FLAT, Kao et al.: fused at row granularity): QK and AV on the 2D array (``T2 * E`` and
``T2 * F``), softmax on the 1D array, four passes of one operation per score per PE (max,
subtract-and-exp, sum, divide: ``4 * S / pes``; the artifact's ``stable_softmax.py``). Blocks of
``rows`` queries flow QK -> softmax -> AV, the 2D array doing QK of one block and AV of another
while the 1D array does the softmax of a third: ``QK_b + SM_b + AV_b + (n - 1) * max(QK_b + AV_b,
SM_b)`` cycles for ``n`` blocks. A block needs its ``rows x M`` scores, K and V of its head and
its Q and output rows in the buffer: the buffer need grows with the sequence. When that does not
fit, the fraction of the scores that does not fit goes through DRAM: written by QK, read and
written back as probabilities by the softmax, read by AV (4 passes of 2 bytes).

Both: the cascade's plan is on ``.attn.av`` (unit ``array2d``) with its tiles' DRAM loads and
stores; ``.attn.qk`` and ``.attn.softmax`` carry zero-cycle plans that keep their MACs and vector
ops. Other matrix operators run on the 2D array (``ceil(M / rows) * ceil(N / cols) * K`` cycles
per group, fully pipelined), other operators on the 1D array (``ceil(vector_ops / pes)``).

Counters: ``array2d_busy_cycles`` and ``array1d_busy_cycles`` (work of each array; their ratio to
the run's cycles is its utilization: ``array_utilization``), ``einsum.<name>_cycles`` per
Einsum, ``attention_cycles``, ``attention_buffer_bytes`` (the buffer a block needs),
``attention_kv_passes``, ``flat_spill_fraction``, the ``mappers.plan`` traffic counters
(``dram_*``, ``sram_*`` for the global buffer, compulsory / non-compulsory) and energy by
component (2D and 1D operations, buffer, DRAM).
"""

from __future__ import annotations

import math

import numpy as np

from architectures.fusemax import FuseMax
from architectures.systolic import FoldPlan
from mappers.annotations import OpPlan, Tiling
from mappers.lower import template_resources
from mappers.memory import Residency
from mappers.outputs import output_writers
from mappers.pipeline import MapperOptions
from mappers.plan import coalesce, planner, spread
from simulator.program import Resource
from workloads.graph import OpGraph
from workloads.ops import Embedding, MatMul, Op

__all__ = ["fusemax_resources", "plan_fusemax", "cascade", "array_utilization", "Cascade"]

SUFFIXES = (".attn.qk", ".attn.softmax", ".attn.av")


@template_resources("fusemax")
def fusemax_resources(arch: FuseMax) -> list[Resource]:
    d = arch.memory.dram
    return [Resource("array2d", "unit", 1, peak_macs_per_cycle=arch.pes),
            Resource("array1d", "unit", 1),
            Resource("dram", "channel", bytes_per_cycle=d.bandwidth_bytes_per_s / arch.freq_hz,
                     latency_cycles=int(math.ceil(d.latency_s * arch.freq_hz - 1e-9)), src="dram",
                     dst="global")]


def array_utilization(result) -> dict[str, float]:
    """``util_2d`` and ``util_1d``: each array's busy cycles over the run's cycles."""
    c = result.cycles or 1
    return {"util_2d": result.counter("array2d_busy_cycles") / c,
            "util_1d": result.counter("array1d_busy_cycles") / c}


# ---- the attention cascade -------------------------------------------------------------------

class Cascade:
    """One attention's Einsum costs under a mapping (see the module docstring)."""

    def __init__(self, qk: MatMul, av: MatMul, arch: FuseMax, mapping: str):
        R, C, pes = arch.array2d.rows, arch.array2d.cols, arch.array1d.pes
        self.mapping = mapping
        BH, P, M, E, F = qk.batch, qk.M, qk.N, qk.K, av.N
        self.dims = {"BH": BH, "P": P, "M": M, "E": E, "F": F}
        elem = qk.inputs[0].element_bytes
        S = BH * P * M
        T2 = BH * math.ceil(P / R) * math.ceil(M / C)
        M1 = math.ceil(M / C)
        rows1 = BH * M1 * P  # (chunk, query) pairs

        def d1(n: int) -> int:
            return math.ceil(n / pes)

        buf = arch.memory.global_sram.size_bytes
        q_b, k_b, v_b, o_b = qk.inputs[0].nbytes, qk.inputs[1].nbytes, av.inputs[1].nbytes, av.output.nbytes
        if mapping == "fusemax":
            e = {"QK": T2 * E, "LM": T2, "RM": d1(rows1), "SLN": T2 * 7, "SLD": T2, "SLNV": T2 * F,
                 "PRM": d1(rows1) * 7, "SPD": d1(rows1), "SPNV": d1(rows1 * F), "RD": d1(rows1),
                 "RNV": d1(rows1 * F), "AV": d1(BH * P * F)}
            self.einsums = e
            self.busy2d = e["QK"] + e["LM"] + e["SLN"] + e["SLD"] + e["SLNV"]
            self.busy1d = sum(e[k] for k in ("RM", "PRM", "SPD", "SPNV", "RD", "RNV", "AV"))
            self.cycles = (max(e["QK"] + e["LM"], e["RD"] + e["RNV"] + e["AV"]) + e["RM"]
                           + max(e["SLN"] + e["SLD"], e["PRM"] + e["SPD"]) + max(e["SLNV"], e["SPNV"]))
            # buffer: a chunk of K and V, and per query its Q row, RM, RD and RNV
            kv_chunk = C * (E + F) * elem
            per_query = (E + 1 + 1 + F) * elem
            self.buffer_bytes = kv_chunk + R * per_query
            ptiles = math.ceil(P / R)
            fit = max(1, int((buf - kv_chunk) // (per_query * R)))
            p1 = max(d for d in _divisors(ptiles) if d <= fit) if fit < ptiles else ptiles
            self.p1 = p1
            self.kv_passes = ptiles // p1
            self.spill_fraction = 0.0
            self.dram_read = q_b + (k_b + v_b) * self.kv_passes
            self.dram_write = o_b
            # 2D and 1D operations, for energy: (macs, adds, maxes, exps_1d, divides) per array
            ops2d = {"mac": S * E + S * 6 + S * F, "add": S + S, "max": S}
            ops1d = {"mac": rows1 * 6 + rows1 + rows1 * F, "add": rows1 + rows1 + rows1 * F,
                     "max": rows1, "divide": BH * P * F}
            # buffer: operands into the 2D array per tile (Q and K rows, V rows), running state
            self.buffer_read = T2 * (R * E + C * E + C * F) * elem + rows1 * (2 + F) * elem * 2
            self.buffer_write = self.dram_read + rows1 * (2 + F) * elem
        elif mapping == "flat":
            sm = 4 * d1(S)
            e = {"QK": T2 * E, "SM": sm, "AV": T2 * F}
            self.einsums = e
            self.busy2d = e["QK"] + e["AV"]
            self.busy1d = sm
            n = max(1, BH * math.ceil(P / R))
            qk_b, sm_b, av_b = e["QK"] / n, sm / n, e["AV"] / n
            self.cycles = math.ceil(qk_b + sm_b + av_b + (n - 1) * max(qk_b + av_b, sm_b))
            scores = R * M * elem
            heads_kv = M * (E + F) * elem
            self.buffer_bytes = scores + heads_kv + R * (E + F) * elem
            over = max(0, self.buffer_bytes - buf)
            self.spill_fraction = min(1.0, over / scores)
            self.p1 = 1
            self.kv_passes = 1
            spill = self.spill_fraction * S * elem
            self.dram_read = q_b + k_b + v_b + round(2 * spill)
            self.dram_write = o_b + round(2 * spill)
            ops2d = {"mac": S * E + S * F}
            ops1d = {"max": S, "add": 2 * S, "exp": S, "divide": S}
            onchip = (1 - self.spill_fraction) * S * elem
            self.buffer_read = T2 * (R * E + C * E + C * F) * elem + round(2 * onchip) + round(2 * spill)
            self.buffer_write = self.dram_read + round(2 * onchip)
        else:
            raise ValueError(f"unknown attention mapping {mapping!r}; expected fusemax or flat")
        self.ops2d, self.ops1d = ops2d, ops1d
        self.scores = S

    def energy(self, arch: FuseMax) -> dict[str, float]:
        em = arch.energy_model()
        per = {"mac": em.mac_pj.value, "add": em.vector_op_pj.value, "max": em.max_pj.value,
               "exp": em.exp_pj.value, "divide": em.divide_pj.value}
        e2 = sum(n * per[k] for k, n in self.ops2d.items())
        e1 = sum(n * per[k] for k, n in self.ops1d.items())
        sram = (self.buffer_read * em.sram_read_pj_per_byte["global"].value
                + self.buffer_write * em.sram_write_pj_per_byte["global"].value)
        dram = (self.dram_read * em.offchip_read_pj_per_byte["dram"].value
                + self.dram_write * em.offchip_write_pj_per_byte["dram"].value)
        return {"mac_energy_pj": e2, "vector_energy_pj": e1, "sram_energy_pj": sram, "dram_energy_pj": dram}


def cascade(qk: MatMul, av: MatMul, arch: FuseMax, mapping: str) -> Cascade:
    return Cascade(qk, av, arch, mapping)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _triples(graph: OpGraph) -> dict[str, tuple[str, str, str]]:
    """{op name: (qk, softmax, av)} for every attention the builders' names and edges show."""
    out: dict[str, tuple[str, str, str]] = {}
    for op in graph.ops():
        if not op.name.endswith(".attn.qk") or not isinstance(op, MatMul):
            continue
        base = op.name[: -len(".attn.qk")]
        sm, av = base + ".attn.softmax", base + ".attn.av"
        if sm in graph and av in graph and graph.op(sm).inputs[0].name == op.output.name \
                and isinstance(graph.op(av), MatMul) and graph.op(av).inputs[0].name == graph.op(sm).output.name:
            for name in (op.name, sm, av):
                out[name] = (op.name, sm, av)
    return out


# ---- the planner -------------------------------------------------------------------------------

def _einsum_counters(c: Cascade) -> dict[str, float]:
    out = {f"einsum.{k}_cycles": v for k, v in c.einsums.items()}
    out.update({"attention_cycles": c.cycles, "attention_buffer_bytes": c.buffer_bytes,
                "attention_kv_passes": c.kv_passes, "attention_query_blocks": c.p1,
                "flat_spill_fraction": c.spill_fraction,
                "array2d_busy_cycles": c.busy2d, "array1d_busy_cycles": c.busy1d})
    return out


def _traffic_counters(read: int, write: int, comp_r: int, comp_w: int, sram_r: int, sram_w: int,
                      energy: dict[str, float]) -> dict[str, float]:
    c = {"dram_read_bytes": read, "dram_write_bytes": write, "sram_read_bytes": sram_r,
         "sram_write_bytes": sram_w, "compulsory_dram_read_bytes": min(comp_r, read),
         "compulsory_dram_write_bytes": min(comp_w, write)}
    c["noncompulsory_dram_read_bytes"] = read - c["compulsory_dram_read_bytes"]
    c["noncompulsory_dram_write_bytes"] = write - c["compulsory_dram_write_bytes"]
    c.update(energy)
    c["energy_pj"] = sum(energy.values())
    return c


def _array_tiling(op: Op, R: int, C: int, why: str) -> Tiling:
    """The 2D array's mapping of a matrix op as a fold plan: M x N tiles, K streamed, one cycle per
    K step (consecutive tiles pipelined)."""
    g = op.gemm()
    return Tiling(FoldPlan("os", R, C, g, g.M, g.N, g.K, math.ceil(g.M / R), math.ceil(g.N / C), g.K), why)


def _zero_plan(unit: str, counters: dict[str, float], **info) -> OpPlan:
    empty = np.zeros(1, dtype=np.int64)
    return OpPlan(unit=unit, cycles=empty, counts=np.ones(1, dtype=np.int64), loads={}, stores={},
                  compute_cycles=0, counters=counters, **info)


def _tiles(total: int, read: int, write: int, n: int, max_tiles: int) -> dict:
    cycles = spread(np.ones(n), total)
    loads = {"dram": spread(np.ones(n), read)} if read else {}
    stores = {"dram": spread(np.ones(n), write)} if write else {}
    starts = coalesce(n, max_tiles)
    return dict(cycles=np.add.reduceat(cycles, starts), counts=np.add.reduceat(np.ones(n, dtype=np.int64), starts),
                loads={k: np.add.reduceat(v, starts) for k, v in loads.items()},
                stores={k: np.add.reduceat(v, starts) for k, v in stores.items()})


def _first_reads(op: Op, ctx: dict, onchip: frozenset[str]) -> int:
    return sum(t.nbytes for t in op.inputs if t.name in ctx["graph_inputs"]
               and ctx["first_reader"].get(t.name) == op.name and t.name not in onchip)


@planner("fusemax")
def plan_fusemax(op: Op, graph: OpGraph, arch: FuseMax, options: MapperOptions, ctx: dict):
    """An attention's cascade on its ``.attn.av`` (zero-cycle rows for QK and softmax), other
    matrix ops on the 2D array, the rest on the 1D array."""
    if "fusemax_triples" not in ctx:
        ctx["fusemax_triples"] = _triples(graph)
        ctx.setdefault("outputs", output_writers(graph))  # set by the plan pass; else here
    triple = ctx["fusemax_triples"].get(op.name)
    fused = ctx["fused_by"].get(op.name, [])
    fused_ops = sum(f.vector_ops for f in fused)
    residency = graph.get(op.name, Residency, Residency())
    onchip = residency.onchip_inputs
    gm = op.gemm() if op.is_matrix else None
    base_info = dict(fused=tuple(f.name for f in fused), vector_ops=op.vector_ops + fused_ops,
                     gemm=(gm.M, gm.K, gm.N, gm.groups) if gm else None)
    R, C, pes = arch.array2d.rows, arch.array2d.cols, arch.array1d.pes
    n_max = options.max_tiles_per_layer
    if triple is not None:
        qk, sm, av = (graph.op(n) for n in triple)
        info = dict(dataflow=None, folds=0, mapping_efficiency=None, compute_utilization=None,
                    peak_macs_per_cycle=arch.pes, **base_info)
        tiling = [_array_tiling(op, R, C, f"fusemax: {options.attention_mapping} attention cascade "
                                          f"(mapper.attention_mapping)")] if op.is_matrix else []
        if op.name != triple[2]:
            return tiling + [_zero_plan("array2d" if op.is_matrix else "array1d", {}, **info)]
        key = ("cascade", options.attention_mapping, qk.batch, qk.M, qk.N, qk.K, av.N,
               qk.inputs[0].precision, frozenset(n for n in onchip), residency.write_output)
        cache = ctx.setdefault("fusemax_plans", {})
        if key not in cache:
            c = cascade(qk, av, arch, options.attention_mapping)
            q_on = qk.inputs[0].name in graph.get(qk.name, Residency, Residency()).onchip_inputs
            read = c.dram_read - (qk.inputs[0].nbytes if q_on else 0)
            write = c.dram_write if residency.write_output else c.dram_write - av.output.nbytes
            comp_r = _first_reads(qk, ctx, frozenset()) + _first_reads(av, ctx, frozenset())
            comp_w = av.output.nbytes if av.name in ctx["outputs"] else 0
            counters = _einsum_counters(c)
            counters.update(_traffic_counters(read, write, comp_r, comp_w, c.buffer_read, c.buffer_write,
                                              c.energy(arch)))
            n = max(1, min(n_max, qk.batch * math.ceil(qk.M / R)))
            cache[key] = (c, counters, _tiles(c.cycles, read, write, n, ctx["max_tiles"]))
        c, counters, tiles = cache[key]
        return tiling + [OpPlan(unit="array2d", compute_cycles=c.cycles, counters=counters, **tiles, **info)]
    # ---- other operators -----------------------------------------------------------------
    em = arch.energy_model()
    out_bytes = op.output.nbytes if residency.write_output else 0
    reads = sum(t.nbytes for t in op.inputs if t.name not in onchip)
    params = op.gathered_bytes if isinstance(op, Embedding) else sum(t.nbytes for t in op.weights)
    comp_r = params + _first_reads(op, ctx, onchip)
    comp_w = op.output.nbytes if op.name in ctx["outputs"] and residency.write_output else 0
    annotations = []
    if op.is_matrix:
        g = op.gemm()
        cycles = g.groups * math.ceil(g.M / R) * math.ceil(g.N / C) * g.K
        extra = math.ceil(fused_ops / pes)
        cycles += extra
        tiling = _array_tiling(op, R, C, "fusemax: output-stationary, consecutive tiles pipelined "
                                         "(no fill or drain, as the FuseMax artifact models the array)")
        fold = tiling.plan
        annotations.append(tiling)
        energy = {"mac_energy_pj": op.macs * em.mac_pj.value, "vector_energy_pj": fused_ops * em.vector_op_pj.value}
        busy = {"array2d_busy_cycles": cycles}
        unit, units = "array2d", fold.folds
        info = dict(dataflow="os", folds=fold.folds, mapping_efficiency=fold.mapping_efficiency,
                    compute_utilization=op.macs / (cycles * arch.pes) if cycles else None,
                    peak_macs_per_cycle=arch.pes)
        sram_r = g.groups * math.ceil(g.M / R) * math.ceil(g.N / C) * g.K * (R + C) * op.inputs[0].element_bytes
    else:
        vops = op.vector_ops + fused_ops
        cycles = math.ceil(vops / pes)
        energy = {"mac_energy_pj": 0.0, "vector_energy_pj": vops * em.vector_op_pj.value}
        busy = {"array1d_busy_cycles": cycles}
        unit, units = "array1d", max(1, math.ceil(op.output.numel / pes))
        info = dict(dataflow=None, folds=0, mapping_efficiency=None, compute_utilization=None,
                    peak_macs_per_cycle=0)
        sram_r = sum(t.nbytes for t in op.inputs) + params
    sram_w = op.output.nbytes + reads + params
    energy["sram_energy_pj"] = (sram_r * em.sram_read_pj_per_byte["global"].value
                                + sram_w * em.sram_write_pj_per_byte["global"].value)
    energy["dram_energy_pj"] = ((reads + params) * em.offchip_read_pj_per_byte["dram"].value
                                + out_bytes * em.offchip_write_pj_per_byte["dram"].value)
    counters = _traffic_counters(reads + params, out_bytes, comp_r, comp_w, sram_r, sram_w, energy)
    counters.update(busy)
    n = max(1, min(n_max, units))
    annotations.append(OpPlan(unit=unit, compute_cycles=cycles, counters=counters,
                              **_tiles(cycles, reads + params, out_bytes, n, ctx["max_tiles"]),
                              **info, **base_info))
    return annotations
