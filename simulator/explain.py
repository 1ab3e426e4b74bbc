"""Why each layer costs what it costs: its bound, its intensity against the ridge, its folds, and
one sentence on what would make it faster.

Contract: ``explain_experiment(exp)`` runs the experiment (``simulator.run.run_experiment``),
runs the mapper passes once more to read each operator's annotations (``Tiling``: the fold plan;
``Traffic``: bytes per operand and ``dram_loads`` refetch counts; ``Residency``) and returns an
``Explanation``: per layer a ``LayerExplanation`` whose every statement comes from those numbers:

- ``bound``: the largest of the layer's compute cycles, its kernel launches and its three stall
  kinds (the result's stall attribution): ``compute``, ``kernel launch`` (the fixed cost per
  kernel a GPU or PIM planner puts before a kernel's body, ``OpPlan.overhead_cycles``, which the
  engines count as compute but no faster unit shortens), ``memory`` (waiting on off-chip
  transfers), ``dependency`` (waiting on another layer's result) or ``busy unit`` (its unit ran
  other work). A GPU kernel's or PIM operator's body (its compute and memory stall) is bound by
  the larger side of its unit's model (``gpu_model_*``/``pim_model_*`` counters), which is the
  unit's roofline; a layer on a systolic array by the larger of its compute and memory stall.
- ``intensity``: MACs per off-chip byte, against the roofline ridge ``peak MAC/s / bytes/s`` of
  the unit that ran the layer: PIM's own (its MAC rate, its bank bandwidth) for a layer on PIM,
  ``arch.roofline()`` otherwise.
- ``advice`` (with ``advice_kind``): for a memory-bound layer, the operand re-fetched most (and
  the buffer size that stops it, found by re-running the traffic model on a larger buffer), or
  else the operand whose compulsory traffic dominates (weights read for only M rows, a KV cache,
  activations) with the bandwidth it would need; for a compute-bound layer, whichever loses more
  PE-cycles: the mapping (which GEMM dimension leaves rows or columns empty) or the fill and
  drain of each fold (with the lever that shortens it: a larger M where M is streamed, another
  dataflow or array shape where K or N is), plus another dataflow when the mapper's roofline
  estimate says it is faster; for a GPU kernel, the CTA tiling's largest loss; for PIM, its MAC
  units against its banks; for kernel launches, fusion or a bigger batch; for stalls on
  dependencies or a busy unit, what it waited for.
- ``folds``/``mapping``: a systolic layer's fold count, and what ``mapper.search`` or
  ``mapper.dataflow: auto`` chose against what; a GPU kernel's CTA tiling (CTAs, waves on the
  SMs, main-loop iterations) as its planner chose it (``simulator.explain_units``).

``Explanation.lines()`` is the text ``tessera explain`` prints (also ``str()``); in Jupyter an
``Explanation`` shows as a table (``simulator.notebook.explanation_html``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from simulator.explain_format import _bytes, _num, _pct, _rate, _seconds
from simulator.explain_memory import memory_advice
from simulator.explain_units import unit_kind
from simulator.result import LayerResult, SimResult

__all__ = ["LayerExplanation", "Explanation", "explain_experiment", "explain_result", "annotated_graphs"]

PARTS = ("compute", "kernel launch", "memory", "dependency", "busy unit")
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
    mapping: str | None = None  # what chose the mapping and against what (search, auto), or None
    ridge_label: str = ""  # whose ridge: "PIM" for a layer on PIM, "" for the device's
    sides: tuple[float, float] | None = None  # the unit model's (compute, memory) cycles (GPU, PIM)
    bound_cycles: int | None = None  # cycles of the span the bound accounts for (None: parts[bound])
    sustained_ridge: float | None = None  # the ridge at the sustained bandwidth the unit model uses

    @property
    def bound_share(self) -> float:
        spent = self.parts[self.bound] if self.bound_cycles is None else self.bound_cycles
        return spent / self.cycles if self.cycles else 0.0

    def lines(self) -> list[str]:
        spent = ", ".join(f"{k} {v:,}" for k, v in self.parts.items() if v)
        where = self.unit + (f", {self.dataflow}" if self.dataflow and self.dataflow != self.unit else "")
        model = ""
        if self.sides is not None and self.bound in ("compute", "memory"):
            first, second = ("memory", "compute") if self.bound == "memory" else ("compute", "memory")
            value = dict(zip(("compute", "memory"), self.sides))
            model = (f"; the {self.unit} model: {first} {value[first]:,.0f} vs {second} "
                     f"{value[second]:,.0f} cycles")
        out = [f"{self.name} ({self.kind} on {where}): {self.cycles:,} cycles; bound: {self.bound} "
               f"({self.bound_share:.0%}; {spent or 'no cycles'}{model})"]
        facts = []
        if self.intensity is not None:
            side = ""
            if self.ridge is not None:
                ridge = self.sustained_ridge or self.ridge
                which = "compute" if self.intensity >= ridge else "memory"
                whose = f"{self.ridge_label} " if self.ridge_label else ""
                at = f", {_num(ridge)} at its sustained bandwidth" if self.sustained_ridge else ""
                side = f" vs {whose}ridge {_num(self.ridge)} MAC/B{at} ({which} side)"
            facts.append(f"intensity {_num(self.intensity)} MAC/B{side}")
        else:
            facts.append(f"no MACs; {_bytes(self.dram_bytes)} off chip")
        if self.folds:
            facts.append(self.folds)
        if self.mapping_efficiency is not None and unit_kind(self.unit) != "gpu":
            facts.append(f"mapping efficiency {_pct(self.mapping_efficiency)}")
        elif self.mapping_efficiency is not None and (self.dataflow or "").startswith("cta"):
            facts.append(f"tile padding efficiency {_pct(self.mapping_efficiency)}")
        out.append("    " + "; ".join(facts))
        if self.mapping:
            out.append(f"    mapping: {self.mapping}")
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

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        """Jupyter: the report as a table (``simulator.notebook.explanation_html``)."""
        from simulator.notebook import explanation_html

        return explanation_html(self)

    def summary_lines(self) -> list[str]:
        r = self.result
        m = r.metrics()
        total = sum(l.cycles for l in self.layers) or 1
        shares = {p: sum(l.parts[p] for l in self.layers) / total for p in PARTS}
        if not any(l.parts["kernel launch"] for l in self.layers):
            del shares["kernel launch"]
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
                 "layer time: " + ", ".join(f"{p} {v:.0%}" for p, v in shares.items())]
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
                          notes=tuple(notes), weights=step_weights(exp))


def step_weights(exp) -> dict[str, float]:
    """Per layer-name prefix, how many runs of the annotated graph a result layer sums: the decode
    steps for ``decode:`` (``simulator.llm`` sums a decode layer over every step)."""
    if exp.llm is None or exp.llm.phase not in ("decode", "generate"):
        return {}
    from simulator.llm import decode_samples

    plan = exp.llm
    return {"decode:": sum(w for _, w in decode_samples(plan.sequence, plan.generate, plan.decode_steps))}


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
                   notes: tuple[str, ...] = (), weights: dict[str, float] | None = None) -> Explanation:
    """Explain a result already computed. ``graphs``: as ``annotated_graphs`` returns (without
    them, explanations use the result's numbers only: no refetch counts, no alternatives, no
    kernel launches); ``weights``: as ``step_weights`` returns."""
    peak, bandwidth = arch.roofline()
    ops = {}
    for prefix, graph in (graphs or {}).items():
        for op in graph.ops():
            ops[prefix + op.name] = (op, graph, (weights or {}).get(prefix, 1.0))
    layers = []
    for layer in result.layers:
        key = re.sub(r"mb\d+:", "", layer.name)
        op, graph, weight = ops.get(key, (None, None, 1.0))
        layers.append(_explain_layer(layer, op, graph, arch, result.freq_hz, mapper, weight))
    return Explanation(result, peak, bandwidth, tuple(layers), notes)


# ---- one layer -------------------------------------------------------------------------------

def _explain_layer(layer: LayerResult, op, graph, arch, freq_hz: float, mapper, weight: float) -> LayerExplanation:
    from simulator.explain_units import gpu_mapping_text, launch_cycles, model_sides, unit_roofline

    ann = _annotations(op, graph)
    peak, bandwidth, sustained, label = unit_roofline(arch, layer.unit)
    ridge = None if not bandwidth or math.isinf(bandwidth) else peak / bandwidth
    sustained_ridge = None if ridge is None or not sustained or sustained == bandwidth else peak / sustained
    launch = launch_cycles(layer, ann.get("plan"), weight)
    parts = {"compute": layer.compute_cycles - launch, "kernel launch": launch,
             "memory": layer.stall_memory_cycles, "dependency": layer.stall_dependency_cycles,
             "busy unit": max(0, layer.stall_busy_cycles)}
    sides = model_sides(layer)
    bound, bound_cycles = max(PARTS, key=lambda p: parts[p]), None
    if sides is not None:  # the body (compute + memory stall) is bound by its unit model's larger side
        body = parts["compute"] + parts["memory"]
        others = {p: parts[p] for p in ("kernel launch", "dependency", "busy unit")}
        if body >= max(others.values()):
            bound, bound_cycles = ("memory" if sides[1] > sides[0] else "compute"), body
        else:
            bound = max(others, key=others.get)
    dram = float(layer.counters.get("dram_read_bytes", 0) + layer.counters.get("dram_write_bytes", 0))
    intensity = (layer.macs / dram if dram else math.inf) if layer.macs else None
    tiling = ann.get("tiling")
    folds = None
    per_step = " per decode step" if layer.name.startswith("decode:") else ""
    if tiling is not None and unit_kind(layer.unit) == "gpu" and hasattr(arch, "sms"):
        folds = gpu_mapping_text(tiling, arch, layer.dataflow, per_step)
    elif tiling is not None and tiling.plan.dataflow in DIMS:
        folds = _fold_text(tiling.plan, layer.name)
    ctx = _Ctx(layer, op, graph, arch, sustained_ridge or ridge, sustained or bandwidth, freq_hz, mapper,
               ann, dram, intensity, parts, label, sides)
    advise = {"memory": memory_advice, "compute": _compute_advice, "dependency": _dependency_advice,
              "busy unit": _busy_advice, "kernel launch": _launch_advice}[bound]
    kind, advice = advise(ctx)
    return LayerExplanation(
        name=layer.name, kind=layer.kind, unit=layer.unit, dataflow=layer.dataflow, cycles=layer.total_cycles,
        parts=parts, bound=bound, macs=layer.macs, dram_bytes=dram, intensity=intensity, ridge=ridge,
        folds=folds, mapping_efficiency=layer.mapping_efficiency, utilization=layer.utilization,
        advice_kind=kind, advice=advice, mapping=_mapping(ctx), ridge_label=label, sides=sides,
        bound_cycles=bound_cycles, sustained_ridge=sustained_ridge)


@dataclass
class _Ctx:
    layer: LayerResult
    op: object
    graph: object
    arch: object
    ridge: float | None  # of the unit that ran the layer
    bandwidth: float  # of the unit that ran the layer
    freq_hz: float
    mapper: object
    ann: dict
    dram: float
    intensity: float | None
    parts: dict
    label: str = ""  # whose roofline: "PIM", or "" for the device's
    sides: tuple[float, float] | None = None


def _annotations(op, graph) -> dict:
    if op is None or graph is None:
        return {}
    from mappers.annotations import OpPlan, Tiling, Traffic
    from mappers.memory import Residency

    return {"tiling": graph.get(op.name, Tiling, None), "traffic": graph.get(op.name, Traffic, None),
            "residency": graph.get(op.name, Residency, Residency()), "plan": graph.get(op.name, OpPlan, None)}


def _fold_text(fp, name: str) -> str:
    rows, cols, _ = DIMS[fp.dataflow]
    g = f"{fp.gemm.groups} groups x " if fp.gemm.groups > 1 else ""
    step = " per decode step" if name.startswith("decode:") else ""
    return (f"folds {g}ceil({rows}/R)={fp.row_folds} x ceil({cols}/C)={fp.col_folds} = {fp.folds:,}"
            f" of {fp.fold_cycles:,} cycles{step}")


# ---- compute-bound ---------------------------------------------------------------------------

def _compute_advice(c: _Ctx) -> tuple[str, str]:
    layer, tiling = c.layer, c.ann.get("tiling")
    unit = unit_kind(layer.unit)
    if unit == "pim" and hasattr(c.arch, "pim"):
        from simulator.explain_units import pim_compute_advice

        return pim_compute_advice(layer, c.arch, c.intensity, c.ridge, c.sides)
    if unit == "gpu" and layer.macs and hasattr(c.arch, "sms"):
        from simulator.explain_units import gpu_compute_advice

        body = c.sides[0] if c.sides else c.parts["compute"]
        return gpu_compute_advice(layer, tiling, c.arch, c.op, body)
    if unit != "array" or tiling is None or tiling.plan.dataflow not in DIMS:
        if layer.macs == 0 and layer.vector_ops:
            if unit != "vector":
                return "vector_compute", (f"{layer.vector_ops:,} element operations take "
                                          f"{c.parts['compute']:,} cycles on the {layer.unit} unit")
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
    return "fill_drain", _fill_drain_text(fp, alt, then)


def _fill_drain_text(fp, alt: str, then: str) -> str:
    """A fold that spends most of its cycles filling and draining the array, and the lever that
    shortens it: the streamed dimension is M (ws) only where the batch or the token count grows it;
    os streams the reduction K and is the output width N, which a layer fixes."""
    rows, cols, streamed = DIMS[fp.dataflow]
    overhead = fp.fold_cycles - fp.T
    formula = "R + C - 2" if fp.dataflow == "os" else "2R + C - 2"
    whole = "K + R + C - 2" if fp.dataflow == "os" else f"2R + C + {streamed} - 2"
    values = f"only {streamed}={fp.T:,} value" if fp.T == 1 else f"{streamed}={fp.T:,} values"
    head = (f"each of its {fp.folds:,} folds streams {values} but takes {fp.fold_cycles:,} cycles ({whole}): "
            f"{formula} = {overhead:,} of them fill and drain the {fp.rows}x{fp.cols} array, so "
            f"{_pct(fp.T / fp.fold_cycles)} of each fold does work")
    if alt:
        return head + alt
    if streamed == "M":
        return head + f"; a larger M (a bigger batch, more tokens) amortizes it{then}"
    what = "reduction length" if streamed == "K" else "output width"
    return (head + f"; {streamed} is the layer's {what} (the batch does not change it), and no other "
            f"dataflow is faster here (roofline estimate): an array with a smaller {formula} (fewer rows "
            f"or columns) wastes less per fold{then}")


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


def _estimate(c: _Ctx, df: str, nest=None) -> tuple[int, int]:
    """The mapper's roofline estimate of the layer under dataflow ``df`` and loop nest ``nest``
    (None: the default nest): (cycles, off-chip bytes)."""
    from mappers.plan import estimate_cycles
    from mappers.traffic import systolic_traffic

    tiling, res = c.ann["tiling"], c.ann["residency"]
    fp = c.arch.fold(tiling.plan.gemm, df, tiling.plan.cost)
    kw = {} if nest is None else {"nest": nest}
    traffic = systolic_traffic(c.op, fp, c.arch, res.onchip_inputs, res.write_output, **kw)
    return estimate_cycles(fp, traffic, c.arch), traffic.dram_read_bytes + traffic.dram_write_bytes


def _better_dataflow(c: _Ctx) -> str:
    """Another dataflow the mapper's roofline estimate finds >= 10 % faster, as a clause."""
    from architectures.systolic import DATAFLOWS

    tiling = c.ann["tiling"]
    if tiling is None or c.ann.get("traffic") is None or not hasattr(c.arch, "fold"):
        return ""

    def estimate(df: str) -> int:  # the mapping's own loop nest, the default one for the others
        return _estimate(c, df, getattr(tiling, "nest", None) if df == tiling.dataflow else None)[0]

    here = estimate(tiling.dataflow)
    best = min((d for d in DATAFLOWS if d != tiling.dataflow), key=estimate)
    there = estimate(best)
    if there < 0.9 * here:
        return (f"; mapper.dataflow: {best} would take about {there:,} cycles instead of {here:,} "
                f"({1 - there / here:.0%} fewer, roofline estimate)")
    return ""


def _mapping(c: _Ctx) -> str | None:
    """What mapper.search or mapper.dataflow: auto chose for a systolic layer, against what."""
    from simulator.explain_units import mapping_choice

    tiling = c.ann.get("tiling")
    if tiling is None or unit_kind(c.layer.unit) != "array" or c.ann.get("traffic") is None \
            or not hasattr(c.arch, "fold"):
        return None
    return mapping_choice(tiling, c.op, c.arch, c.ann["residency"], c.mapper,
                          lambda df, nest: _estimate(c, df, nest))


def _launch_advice(c: _Ctx) -> tuple[str, str]:
    from simulator.explain_units import launch_advice

    per = getattr(c.ann.get("plan"), "overhead_cycles", 0)
    return launch_advice(c.layer, c.parts["kernel launch"], per, c.freq_hz, c.mapper)


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


def default_top(n_layers: int) -> int | None:
    """Layers shown without --top/--all: all of a small graph, the 15 slowest of a big one."""
    return None if n_layers <= 30 else 15

