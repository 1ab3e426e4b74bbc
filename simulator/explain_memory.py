"""What ``simulator.explain`` says about a memory-bound layer.

Contract: ``memory_advice(ctx)`` returns ``(advice_kind, sentence)`` for a layer whose bound is
memory, from the run's counters and the mapper's annotations (``ctx``: ``explain._Ctx``): for a
layer on a systolic array that re-fetches an operand, which operand, why (the working set that
does not fit half its double-buffered SRAM) and the smallest buffer that stops it, found by
re-running the traffic model (``refetch``); else which bytes dominate and whether they are
compulsory: weights read for only M rows (``weights``), a KV cache (``kv_cache``), activations
(``activations``) or, without MACs, a vector layer's input, parameters or output
(``vector_memory``), each with the bandwidth it would need against the bandwidth of the unit
that ran it (off-chip memory, a GPU's sustained HBM, PIM's banks).
"""

from __future__ import annotations

import math

from simulator.explain_format import _bytes, _num, _pct, _rate
from simulator.explain_units import unit_kind

__all__ = ["memory_advice", "_refetch_text"]

BUFFER = {"ifmap": "ifmap_sram", "filter": "filter_sram", "ofmap": "ofmap_sram"}


def _nest(tiling) -> dict:
    """The mapping's fold-loop nest as keyword arguments for the traffic model (when it has one)."""
    nest = getattr(tiling, "nest", None)
    return {} if nest is None else {"nest": nest}


def _scalesim_order(tiling) -> bool:
    """Whether the folds run in SCALE-Sim's order (column folds outer, one at a time)."""
    nest = getattr(tiling, "nest", None)
    return nest is None or (getattr(nest, "order", "cols_outer") == "cols_outer" and getattr(nest, "block", 1) == 1)


def _refetch_text(df: str, operand: str, loads: int, working_set: str | None, scalesim_order: bool) -> str:
    size = f" = {working_set}" if working_set else ""
    noun = {"filter": "weights are", "ifmap": "the input is", "ofmap": "partial sums are"}[operand]
    if not scalesim_order:  # a searched loop nest: the model's working set, without a name
        held = f" ({working_set})" if working_set else ""
        return f"{noun} fetched {loads} times because the working set its loop nest reuses{held}"
    if operand == "filter":
        what = f"the filter column block (K x C{size})" if df == "os" else f"the whole filter (K x N{size})"
        per = "row fold" if df == "os" else "column fold"
        return f"weights are re-read {loads} times (once per {per}) because {what}"
    if operand == "ifmap":
        return (f"the input is re-read {loads} times (once per column fold) because the input feature "
                f"map{f' ({working_set})' if working_set else ''}")
    return (f"partial sums go to DRAM and back over its {loads} K-folds because the partial sums of a "
            f"column fold{f' ({working_set})' if working_set else ''}")


def memory_advice(c) -> tuple[str, str]:
    traffic, tiling = c.ann.get("traffic"), c.ann.get("tiling")
    memory = getattr(c.arch, "memory", None)
    systolic = unit_kind(c.layer.unit) == "array" and all(hasattr(memory, b) for b in BUFFER.values())
    if traffic is not None and tiling is not None and systolic:
        best = None
        counters = c.layer.counters
        for o, loads in traffic.dram_loads.items():
            if loads <= 1:
                continue
            # bytes from the result's counters (decode layers are summed over steps)
            read = counters.get(f"{o}_dram_read_bytes", 0)
            write = counters.get(f"{o}_dram_write_bytes", 0)
            extra = read - read / loads if o != "ofmap" else read + write - write / loads
            if best is None or extra > best[1]:
                best = (o, extra, loads)
        if best is not None and best[1] >= 0.2 * c.dram:
            return "refetch", _refetch_advice(c, *best)
    return _bandwidth_advice(c)


def _refetch_advice(c, operand: str, extra: float, loads: int) -> str:
    from mappers.traffic import systolic_traffic

    tiling, res = c.ann["tiling"], c.ann["residency"]
    buf = BUFFER[operand]
    size = getattr(c.arch.memory, buf).size_bytes

    def loads_with(nbytes: float) -> int:
        arch = _with_buffer(c.arch, buf, nbytes)
        traffic = systolic_traffic(c.op, tiling.plan, arch, res.onchip_inputs, res.write_output, **_nest(tiling))
        return traffic.dram_loads[operand]

    # the smallest buffer that stops the re-fetch, by bisection on the traffic model itself
    lo, hi = size, size * 2
    while loads_with(hi) > 1 and hi < size * 2 ** 40:
        hi *= 2
    name = buf.replace("_sram", " SRAM")
    order = _scalesim_order(tiling)
    if loads_with(hi) > 1:
        return (f"{_refetch_text(tiling.dataflow, operand, loads, None, order)} does not fit half the "
                f"{name} ({_bytes(size / 2)}): no buffer size changes that here; another dataflow does")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if loads_with(mid) == 1 else (mid, hi)
    factor = 2 ** math.ceil(math.log2(hi / size))
    article = "an" if str(factor).startswith("8") else "a"
    return (f"{_refetch_text(tiling.dataflow, operand, loads, _bytes(hi / 2), order)} does not fit half "
            f"the {name} ({_bytes(size / 2)}): {article} {factor}x larger {name} ({_bytes(size * factor)}) "
            f"removes that, {_bytes(extra)} less off-chip traffic ({_pct(extra / c.dram)} of this layer's)")


def _with_buffer(arch, buf: str, nbytes: float):
    tier = getattr(arch.memory, buf)
    memory = arch.memory.model_copy(update={buf: tier.model_copy(update={"size_bytes": float(nbytes)})})
    return arch.model_copy(update={"memory": memory})


def _bandwidth_advice(c) -> tuple[str, str]:
    layer, op = c.layer, c.op
    need = ""
    busy = c.parts["compute"]  # the unit's own work, kernel launches excluded
    if busy and c.dram and c.bandwidth and not math.isinf(c.bandwidth):
        need_bw = c.dram / (busy / c.freq_hz)
        sustained = hasattr(c.arch, "hbm_sustained_bytes_per_s")  # a GPU or PIM model's bandwidth
        source = ("PIM's banks sustain" if c.label == "PIM" else "its HBM sustains" if sustained
                  else "off-chip memory gives")
        need = f"; it needs {_rate(need_bw)} to keep its unit busy, {source} {_rate(c.bandwidth)}"
    whose = ", at the sustained bandwidth" if hasattr(c.arch, "hbm_sustained_bytes_per_s") else ""
    whose = f" ({c.label}'s{whose})" if c.label else (f" ({whose[2:]})" if whose else "")
    ridge = f" against a ridge of {_num(c.ridge)} MAC/B{whose}" if c.ridge else ""
    if not layer.macs:
        return _vector_memory_advice(c, need)
    reads = {o: c.layer.counters.get(f"{o}_dram_read_bytes", 0) for o in ("ifmap", "filter", "ofmap")}
    second = _second_operand(op)
    share = reads.get("filter", 0) / c.dram if c.dram else 0.0
    M = layer.gemm[0] if layer.gemm else None
    if share >= 0.5 and second is not None and M is not None:
        per_byte = layer.macs / max(reads["filter"], 1)
        prec = second.precision
        if second.role == "kv_cache":
            fused = "" if getattr(c.mapper, "attention", None) == "fused" else \
                ", fused attention (mapper.attention: fused)"
            return "kv_cache", (f"reads the KV cache ({share:.0%} of its off-chip bytes) for M={M} query "
                                f"row(s) per head: {_num(per_byte)} MAC per byte{ridge}, so it waits on "
                                f"memory{need}; a narrower KV cache (workload.precision.kv_cache, now {prec}){fused} "
                                f"or fewer KV heads (GQA) help")
        where = (f"decode at batch {M} (M={M}) reads every weight once per token"
                 if layer.name.startswith("decode:")
                 else f"each weight read from memory is used by only M={M} row{'s' if M != 1 else ''}")
        return "weights", (f"{where}: {_num(per_byte)} MAC per weight byte{ridge}, so it is "
                           f"memory-bound{need}; batching (intensity grows with M) or quantizing the "
                           f"{prec} weights (workload.precision.weights) helps")
    act = 1 - share
    counters = layer.counters
    avoidable = counters.get("noncompulsory_dram_read_bytes", 0) + counters.get("noncompulsory_dram_write_bytes", 0)
    head = (f"activations are {act:.0%} of its {_bytes(c.dram)} off-chip traffic ({_num(c.intensity)} "
            f"MAC/B{ridge}){need}")
    if avoidable >= 0.2 * c.dram:
        return "activations", (f"{head}; {_bytes(avoidable)} of it is not compulsory (tensors that did not "
                               f"stay on chip, or re-reads): more on-chip room (mapper.onchip_residency, "
                               f"a larger ifmap SRAM) or more bandwidth helps")
    return "activations", (f"{head}; it is compulsory (each input read once, each output written once): "
                           f"only more bandwidth or narrower activations (workload.precision.activations) "
                           f"help")


def _vector_memory_advice(c, need: str) -> tuple[str, str]:
    """A layer without MACs waiting on memory: which of its operands moves the bytes."""
    counters = c.layer.counters
    moved = {"input": counters.get("ifmap_dram_read_bytes", 0),
             "parameters": counters.get("filter_dram_read_bytes", 0),
             "output": counters.get("ofmap_dram_write_bytes", 0) + counters.get("ofmap_dram_read_bytes", 0)}
    what = max(moved, key=moved.get)
    ops = c.layer.vector_ops
    head = (f"moves {_bytes(c.dram)} off chip ({what}: {_pct(moved[what] / max(c.dram, 1))}) for "
            f"{ops:,} element operations ({ops / max(c.dram, 1):.2g} per byte), so it waits on memory{need}")
    unit = unit_kind(c.layer.unit)
    if unit == "pim":
        return "vector_memory", (f"{head}; PIM has no cache (every operand comes from the banks and the "
                                 f"result goes back), so only narrower activations (workload.precision."
                                 f"activations) or more internal bandwidth (architecture.pim.internal_bandwidth) "
                                 f"help")
    on_chip = "in the L2" if unit == "gpu" else "on chip"
    buffer = "" if unit == "gpu" else ", a larger ifmap SRAM"
    if what == "parameters":
        return "vector_memory", (f"{head}; only fewer or narrower parameters (workload.precision) or more "
                                 f"bandwidth help")
    if what == "output":
        return "vector_memory", (f"{head}; keeping its output {on_chip} for the next layer "
                                 f"(mapper.onchip_residency{buffer}) helps")
    return "vector_memory", (f"{head}; keeping its input {on_chip} (mapper.onchip_residency{buffer}) or "
                             f"fusing it into its producer (mapper.fuse_activations: single-input "
                             f"element-wise ops and norms) avoids the traffic")


def _second_operand(op):
    if op is None:
        return None
    from workloads.ops import MatMul

    if isinstance(op, MatMul) and len(op.inputs) > 1:
        return op.inputs[1]
    return op.weights[0] if op.weights else None
