"""Why each layer costs what it costs: its bound, its intensity against the ridge, its folds, and
one sentence on what would make it faster.

Contract: ``explain_experiment(exp)`` runs the experiment (``simulator.run.run_experiment``),
runs the mapper passes once more to read each operator's annotations (``Tiling``: the fold plan;
``Traffic``: bytes per operand and ``dram_loads`` refetch counts; ``Residency``) and returns an
``Explanation``: per layer a ``LayerExplanation`` whose every statement comes from those numbers:

- ``bound``: the largest of the layer's compute cycles and its three stall kinds (the result's
  stall attribution): ``compute``, ``memory`` (waiting on off-chip transfers), ``dependency``
  (waiting on another layer's result) or ``busy unit`` (its unit ran other work).
- ``intensity``: MACs per off-chip byte, against the roofline ridge ``peak MAC/s / bytes/s``
  from ``arch.roofline()``.
- ``advice`` (with ``advice_kind``): for a memory-bound layer, the operand re-fetched most (and
  the buffer size that stops it, found by re-running the traffic model on a larger buffer), or
  else the operand whose compulsory traffic dominates (weights read for only M rows, a KV cache,
  activations) with the bandwidth it would need; for a compute-bound layer, whichever loses more
  PE-cycles: the mapping (which GEMM dimension leaves rows or columns empty) or the fill and
  drain of each fold, plus another dataflow when the mapper's roofline estimate says it is
  faster; for stalls on dependencies or a busy unit, what it waited for.

``Explanation.lines()`` is the text ``tessera explain`` prints.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from simulator.result import LayerResult, SimResult

__all__ = ["LayerExplanation", "Explanation", "explain_experiment", "explain_result", "annotated_graphs"]

PARTS = ("compute", "memory", "dependency", "busy unit")
PEAK_UTILIZATION = 0.8  # above this a compute-bound layer is "at peak"
DIMS = {"os": ("M", "N", "K"), "ws": ("K", "N", "M"), "is": ("K", "M", "N")}  # rows, cols, streamed


@dataclass(frozen=True)
class LayerExplanation:
    """One layer's explanation (module docstring). ``parts``: cycles per part of its span."""

    name: str
    kind: str
    unit: str
    dataflow: str | None
    cycles: int
    parts: dict[str, int]
    bound: str
    macs: int
    dram_bytes: float
    intensity: float | None  # MACs per off-chip byte (None: no MACs)
    ridge: float | None  # peak MAC/s / off-chip bytes/s (None: unlimited bandwidth)
    folds: str | None  # the fold count with its factors, e.g. "ceil(K/R)=2 x ceil(N/C)=1 = 2 folds"
    mapping_efficiency: float | None
    utilization: float
    advice_kind: str
    advice: str

    @property
    def bound_share(self) -> float:
        return self.parts[self.bound] / self.cycles if self.cycles else 0.0

    def lines(self) -> list[str]:
        spent = ", ".join(f"{k} {v:,}" for k, v in self.parts.items() if v)
        where = self.unit + (f", {self.dataflow}" if self.dataflow and self.dataflow != self.unit else "")
        out = [f"{self.name} ({self.kind} on {where}): {self.cycles:,} cycles; bound: {self.bound} "
               f"({self.bound_share:.0%}; {spent or 'no cycles'})"]
        facts = []
        if self.intensity is not None:
            side = ""
            if self.ridge is not None:
                which = "compute" if self.intensity >= self.ridge else "memory"
                side = f" vs ridge {_num(self.ridge)} MAC/B ({which} side)"
            facts.append(f"intensity {_num(self.intensity)} MAC/B{side}")
        else:
            facts.append(f"no MACs; {_bytes(self.dram_bytes)} off chip")
        if self.folds:
            facts.append(self.folds)
        if self.mapping_efficiency is not None:
            facts.append(f"mapping efficiency {_pct(self.mapping_efficiency)}")
        out.append("    " + "; ".join(facts))
        out.append(f"    faster: {self.advice}")
        return out


@dataclass(frozen=True)
class Explanation:
    """The explanations of one run, with the roofline it was measured against."""

    result: SimResult
    peak_macs_per_s: float
    bandwidth_bytes_per_s: float
    layers: tuple[LayerExplanation, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def ridge(self) -> float | None:
        bw = self.bandwidth_bytes_per_s
        return None if not bw or math.isinf(bw) else self.peak_macs_per_s / bw

    def layer(self, name: str) -> LayerExplanation:
        for l in self.layers:
            if l.name == name:
                return l
        raise KeyError(f"no layer '{name}'")

    def summary_lines(self) -> list[str]:
        r = self.result
        m = r.metrics()
        total = sum(l.cycles for l in self.layers) or 1
        shares = {p: sum(l.parts[p] for l in self.layers) / total for p in PARTS}
        dram = m.get("dram_read_bytes", 0) + m.get("dram_write_bytes", 0)
        ai = r.macs / dram if dram else math.inf
        ridge = self.ridge
        bw = "unlimited" if ridge is None else _rate(self.bandwidth_bytes_per_s)
        lines = [f"{r.experiment}: {r.workload} on {r.architecture} ({r.engine} engine): {r.cycles:,} cycles, "
                 f"{_seconds(r.latency_s)}, utilization {m['utilization']:.1%}",
                 f"roofline: peak {_num(self.peak_macs_per_s)} MAC/s, off-chip {bw}"
                 + ("" if ridge is None else f" -> ridge {_num(ridge)} MAC/B")
                 + f"; the whole run: {_num(ai)} MAC/B"
                 + ("" if ridge is None else f" ({'compute' if ai >= ridge else 'memory'} side)"),
                 "layer time: " + ", ".join(f"{p} {shares[p]:.0%}" for p in PARTS)]
        return lines + list(self.notes)

    def lines(self, top: int | None = None, match: str | None = None) -> list[str]:
        """The report: the summary, then each layer (``top``: only the ``top`` layers taking the
        most cycles, slowest first; ``match``: only layers whose name contains it)."""
        chosen = [l for l in self.layers if match is None or match in l.name]
        if top is not None and top < len(chosen):
            chosen = sorted(chosen, key=lambda l: -l.cycles)[:top]
            head = [f"the {top} layers taking the most cycles, of {len(self.layers)} (--all shows every layer):"]
        else:
            head = []
        out = self.summary_lines() + [""] + head
        for l in chosen:
            out += l.lines()
        return out


# ---- entry points ----------------------------------------------------------------------------

def explain_experiment(experiment, *, engine: str | None = None) -> Explanation:
    """Run an experiment (object or YAML path) and explain each layer (module docstring)."""
    from simulator.experiment import Experiment, load_experiment
    from simulator.run import run_experiment

    exp = experiment if isinstance(experiment, Experiment) else load_experiment(experiment)
    result = run_experiment(exp, engine=engine)
    notes = []
    if exp.source and _has_study(exp.source):
        notes.append("note: the file has a sweep:/search: section; this explains its base point "
                     "(the file as written, without the section)")
    return explain_result(result, exp.architecture, annotated_graphs(exp), mapper=exp.mapper,
                          notes=tuple(notes))


def _has_study(path: str) -> bool:
    from pathlib import Path

    from workloads.yamlio import load_yaml

    if not Path(path).is_file():  # parsed from a string
        return False
    data, _ = load_yaml(path)
    return isinstance(data, dict) and ("sweep" in data or "search" in data)


def annotated_graphs(exp) -> dict[str, object]:
    """Per layer-name prefix, the graph the run simulated with the mapper's annotations: ``""``
    for one-graph workloads; ``"prefill:"`` and ``"decode:"`` for LLMs (the decode step at the
    middle sampled context, standing for every step)."""
    from mappers.pipeline import Pipeline

    def mapped(graph):
        return Pipeline().run(graph, exp.architecture, exp.mapper)

    if exp.llm is None:
        return {"": mapped(exp.workload)}
    from simulator.llm import decode_samples

    plan = exp.llm
    out = {}
    if plan.phase in ("prefill", "generate"):
        out["prefill:"] = mapped(plan.prefill_graph())
    if plan.phase in ("decode", "generate"):
        samples = decode_samples(plan.sequence, plan.generate, plan.decode_steps)
        out["decode:"] = mapped(plan.decode_graph(samples[len(samples) // 2][0]))
    return out


def explain_result(result: SimResult, arch, graphs: dict[str, object] | None = None, *, mapper=None,
                   notes: tuple[str, ...] = ()) -> Explanation:
    """Explain a result already computed. ``graphs``: as ``annotated_graphs`` returns (without
    them, explanations use the result's numbers only: no refetch counts, no alternatives)."""
    peak, bandwidth = arch.roofline()
    ridge = None if not bandwidth or math.isinf(bandwidth) else peak / bandwidth
    ops = {}
    for prefix, graph in (graphs or {}).items():
        for op in graph.ops():
            ops[prefix + op.name] = (op, graph)
    layers = []
    for layer in result.layers:
        key = re.sub(r"mb\d+:", "", layer.name)
        op, graph = ops.get(key, (None, None))
        layers.append(_explain_layer(layer, op, graph, arch, ridge, bandwidth, result.freq_hz, mapper))
    return Explanation(result, peak, bandwidth, tuple(layers), notes)


# ---- one layer -------------------------------------------------------------------------------

def _explain_layer(layer: LayerResult, op, graph, arch, ridge: float | None, bandwidth: float,
                   freq_hz: float, mapper) -> LayerExplanation:
    parts = {"compute": layer.compute_cycles, "memory": layer.stall_memory_cycles,
             "dependency": layer.stall_dependency_cycles, "busy unit": max(0, layer.stall_busy_cycles)}
    bound = max(PARTS, key=lambda p: parts[p])
    dram = float(layer.counters.get("dram_read_bytes", 0) + layer.counters.get("dram_write_bytes", 0))
    intensity = (layer.macs / dram if dram else math.inf) if layer.macs else None
    ann = _annotations(op, graph)
    tiling = ann.get("tiling")
    folds = None
    if tiling is not None and tiling.plan.dataflow in DIMS:
        folds = _fold_text(tiling.plan, layer.name)
    ctx = _Ctx(layer, op, graph, arch, ridge, bandwidth, freq_hz, mapper, ann, dram, intensity, parts)
    advise = {"memory": _memory_advice, "compute": _compute_advice, "dependency": _dependency_advice,
              "busy unit": _busy_advice}[bound]
    kind, advice = advise(ctx)
    return LayerExplanation(
        name=layer.name, kind=layer.kind, unit=layer.unit, dataflow=layer.dataflow, cycles=layer.total_cycles,
        parts=parts, bound=bound, macs=layer.macs, dram_bytes=dram, intensity=intensity, ridge=ridge,
        folds=folds, mapping_efficiency=layer.mapping_efficiency, utilization=layer.utilization,
        advice_kind=kind, advice=advice)


@dataclass
class _Ctx:
    layer: LayerResult
    op: object
    graph: object
    arch: object
    ridge: float | None
    bandwidth: float
    freq_hz: float
    mapper: object
    ann: dict
    dram: float
    intensity: float | None
    parts: dict


def _annotations(op, graph) -> dict:
    if op is None or graph is None:
        return {}
    from mappers.annotations import Tiling, Traffic
    from mappers.memory import Residency

    return {"tiling": graph.get(op.name, Tiling, None), "traffic": graph.get(op.name, Traffic, None),
            "residency": graph.get(op.name, Residency, Residency())}


def _fold_text(fp, name: str) -> str:
    rows, cols, _ = DIMS[fp.dataflow]
    g = f"{fp.gemm.groups} groups x " if fp.gemm.groups > 1 else ""
    step = " per decode step" if name.startswith("decode:") else ""
    return (f"folds {g}ceil({rows}/R)={fp.row_folds} x ceil({cols}/C)={fp.col_folds} = {fp.folds:,}"
            f" of {fp.fold_cycles:,} cycles{step}")


# ---- memory-bound ----------------------------------------------------------------------------

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


def _memory_advice(c: _Ctx) -> tuple[str, str]:
    traffic, tiling = c.ann.get("traffic"), c.ann.get("tiling")
    memory = getattr(c.arch, "memory", None)
    systolic = c.layer.unit == "array" and all(hasattr(memory, b) for b in BUFFER.values())
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


def _refetch_advice(c: _Ctx, operand: str, extra: float, loads: int) -> str:
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


def _bandwidth_advice(c: _Ctx) -> tuple[str, str]:
    layer, op = c.layer, c.op
    need = ""
    if layer.compute_cycles and c.dram and c.bandwidth and not math.isinf(c.bandwidth):
        need_bw = c.dram / (layer.compute_cycles / c.freq_hz)
        need = f"; it needs {_rate(need_bw)} to keep its unit busy, off-chip memory gives {_rate(c.bandwidth)}"
    ridge = f" against a ridge of {_num(c.ridge)} MAC/B" if c.ridge else ""
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
            return "kv_cache", (f"reads the KV cache ({share:.0%} of its off-chip bytes) for M={M} query "
                                f"row(s) per head: {_num(per_byte)} MAC per byte{ridge}, so it waits on "
                                f"memory{need}; a narrower KV cache (workload.precision.kv_cache, now {prec}), "
                                f"fewer KV heads (GQA) or fused attention (mapper.attention: fused) helps")
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


def _vector_memory_advice(c: _Ctx, need: str) -> tuple[str, str]:
    """A layer without MACs waiting on memory: which of its operands moves the bytes."""
    counters = c.layer.counters
    moved = {"input": counters.get("ifmap_dram_read_bytes", 0),
             "parameters": counters.get("filter_dram_read_bytes", 0),
             "output": counters.get("ofmap_dram_write_bytes", 0) + counters.get("ofmap_dram_read_bytes", 0)}
    what = max(moved, key=moved.get)
    ops = c.layer.vector_ops
    head = (f"moves {_bytes(c.dram)} off chip ({what}: {_pct(moved[what] / max(c.dram, 1))}) for "
            f"{ops:,} element operations ({ops / max(c.dram, 1):.2g} per byte), so it waits on memory{need}")
    if what == "parameters":
        return "vector_memory", (f"{head}; only fewer or narrower parameters (workload.precision) or more "
                                 f"bandwidth help")
    if what == "output":
        return "vector_memory", (f"{head}; keeping its output on chip for the next layer "
                                 f"(mapper.onchip_residency, a larger ifmap SRAM) helps")
    return "vector_memory", (f"{head}; keeping its input on chip (mapper.onchip_residency, a larger ifmap "
                             f"SRAM) or fusing it into its producer (mapper.fuse_activations: single-input "
                             f"element-wise ops and norms) avoids the traffic")


def _second_operand(op):
    if op is None:
        return None
    from workloads.ops import MatMul

    if isinstance(op, MatMul) and len(op.inputs) > 1:
        return op.inputs[1]
    return op.weights[0] if op.weights else None


# ---- compute-bound ---------------------------------------------------------------------------

def _compute_advice(c: _Ctx) -> tuple[str, str]:
    layer, tiling = c.layer, c.ann.get("tiling")
    if layer.unit != "array" or tiling is None or tiling.plan.dataflow not in DIMS:
        if layer.macs == 0 and layer.vector_ops:
            if layer.unit != "vector":
                return "vector_compute", (f"{layer.vector_ops:,} element operations take "
                                          f"{layer.compute_cycles:,} cycles on the {layer.unit} unit")
            lanes = getattr(c.arch, "vector_lanes", None)
            on = f" on {lanes} lanes" if lanes else ""
            return "vector_compute", (f"{layer.vector_ops:,} element operations{on} take "
                                      f"{layer.compute_cycles:,} cycles: more vector lanes (vector.lanes) "
                                      f"make it faster")
        return "compute", f"compute-bound at {layer.utilization:.0%} utilization of its unit"
    fp = tiling.plan
    eff = fp.mapping_efficiency
    fill = fp.T / fp.fold_cycles
    util = layer.compute_cycles and layer.macs / (layer.compute_cycles * c.arch.pes)
    alt = _better_dataflow(c)
    if util >= PEAK_UTILIZATION:
        return "peak", (f"the array does useful MACs in {util:.0%} of its compute cycles: only more PEs "
                        f"or a higher clock make it faster")
    then = ""
    if c.ridge is not None and c.intensity is not None and c.intensity < c.ridge:
        then = (f"; with that fixed, memory would bound it (intensity {_num(c.intensity)} MAC/B is below "
                f"the ridge {_num(c.ridge)} MAC/B)")
    if 1 - eff >= eff * (1 - fill):
        return "mapping", _mapping_text(fp) + (alt or then)
    rows, cols, streamed = DIMS[fp.dataflow]
    formula = "K + R + C - 2" if fp.dataflow == "os" else f"2R + C + {streamed} - 2"
    fix = alt or f"; a larger {streamed} (a bigger batch) amortizes it{then}"
    return "fill_drain", (f"each of its {fp.folds:,} folds streams {streamed}={fp.T:,} values but takes "
                          f"{fp.fold_cycles:,} cycles ({formula}) to fill and drain the "
                          f"{fp.rows}x{fp.cols} array: {_pct(fill)} of each fold does work{fix}")


def _mapping_text(fp) -> str:
    rows, cols, _ = DIMS[fp.dataflow]
    parts = []
    for dim, extent, size, folds, side in ((rows, fp.Sr, fp.rows, fp.row_folds, "rows"),
                                           (cols, fp.Sc, fp.cols, fp.col_folds, "columns")):
        use = extent / (folds * size)
        if use >= 0.9:
            continue
        if extent < size:
            parts.append(f"{dim}={extent:,} fills {extent:,} of {size:,} {side}")
        else:
            parts.append(f"{dim}={extent:,} needs {folds:,} {side[:-1]} folds of {size:,}: the last fills "
                         f"{extent - (folds - 1) * size:,} {side}")
    if fp.gemm.groups > 1:
        parts.append(f"each of the {fp.gemm.groups:,} groups is its own GEMM")
    return " and ".join(parts) + f": mapping efficiency {_pct(fp.mapping_efficiency)}"


def _better_dataflow(c: _Ctx) -> str:
    """Another dataflow the mapper's roofline estimate finds >= 10 % faster, as a clause."""
    from architectures.systolic import DATAFLOWS
    from mappers.plan import estimate_cycles
    from mappers.traffic import systolic_traffic

    tiling, res = c.ann["tiling"], c.ann["residency"]
    if tiling is None or c.ann.get("traffic") is None or not hasattr(c.arch, "fold"):
        return ""
    gemm = tiling.plan.gemm

    def estimate(df: str) -> int:  # the mapping's own loop nest, the default one for the others
        fp = c.arch.fold(gemm, df)
        nest = _nest(tiling) if df == tiling.dataflow else {}
        traffic = systolic_traffic(c.op, fp, c.arch, res.onchip_inputs, res.write_output, **nest)
        return estimate_cycles(fp, traffic, c.arch)

    here = estimate(tiling.dataflow)
    best = min((d for d in DATAFLOWS if d != tiling.dataflow), key=estimate)
    there = estimate(best)
    if there < 0.9 * here:
        return (f"; mapper.dataflow: {best} would take about {there:,} cycles instead of {here:,} "
                f"({1 - there / here:.0%} fewer, roofline estimate)")
    return ""


# ---- stalls on other layers ------------------------------------------------------------------

def _dependency_advice(c: _Ctx) -> tuple[str, str]:
    n = c.parts["dependency"]
    preds = []
    if c.op is not None and c.graph is not None:
        preds = c.graph.predecessors(c.op.name)
    who = ", ".join(preds[:3]) + (f" and {len(preds) - 3} more" if len(preds) > 3 else "") if preds else \
        "the layers before it"
    overlap = ""
    if c.mapper is not None and getattr(c.mapper, "fidelity", None) == "layer":
        overlap = "; mapper.fidelity: tile lets transfers overlap compute across layers"
    return "dependency", (f"waits {n:,} cycles ({n / max(1, c.layer.total_cycles):.0%} of its span) for "
                          f"the result of {who}: a faster producer shortens it{overlap}")


def _busy_advice(c: _Ctx) -> tuple[str, str]:
    n = c.parts["busy unit"]
    return "busy", (f"waits {n:,} cycles ({n / max(1, c.layer.total_cycles):.0%} of its span) for the "
                    f"{c.layer.unit}, which was running other layers' work: the unit, not this layer, "
                    f"sets the pace here")


# ---- formatting ------------------------------------------------------------------------------

def _num(x: float | None) -> str:
    if x is None:
        return "-"
    if math.isinf(x):
        return "inf"
    for scale, p in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {p}"
    return f"{x:.3g}"


def _bytes(x: float) -> str:
    for scale, p in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {p}"
    return f"{x:.3g} B"


def _pct(x: float) -> str:
    """A fraction as a percentage with enough digits to tell small ones apart."""
    p = 100 * x
    return f"{p:.0f}%" if p >= 10 or p == 0 else f"{p:.2g}%"


def _rate(x: float) -> str:
    n = _num(x)
    return f"{n}B/s" if n[-1].isalpha() else f"{n} B/s"


def _seconds(s: float) -> str:
    for scale, unit in ((1, "s"), (1e-3, "ms"), (1e-6, "us")):
        if s >= scale:
            return f"{s / scale:.4g} {unit}"
    return f"{s * 1e9:.4g} ns"


def default_top(n_layers: int) -> int | None:
    """Layers shown without --top/--all: all of a small graph, the 15 slowest of a big one."""
    return None if n_layers <= 30 else 15

