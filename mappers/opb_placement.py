"""The ``place_pim`` pass: which operators of a device with PIM run on PIM, by arithmetic intensity.

Contract: on a template with PIM (``gpu_pim``, ``systolic_pim``: ``architectures.hetero``) the
pass, run after ``place``, moves operators to the unit ``pim`` and attaches a ``UnitChoice`` (the unit, the operator's Op/B, both roofline
times, why) to every operator it considered; on any other template it returns the graph
unchanged. The planner (``mappers.hetero_plan``) then costs each operator on its unit.

The rule (``mapper.pim_placement: opb``, the default), per matrix operator (Linear, MatMul):

- Op/B = FLOPs (2 per MAC) / bytes of its operands (inputs, weights, output at their stored
  precisions);
- its time on each unit's roofline: ``max(MACs / MAC rate, bytes / bandwidth)``, the xPU at its
  matrix rate for the operands' precision (``xpu_matrix_rate``: a GPU's tensor cores, a systolic
  array's PEs) and its sustained off-chip bandwidth, PIM at its MAC rate and sustained internal
  bandwidth (all stacks). PIM moves every operand through the banks; the xPU moves weights and
  KV cache, and activations only when they are larger than what it can keep on chip
  (``scratchpad_bytes()``: the ``allocate`` pass keeps the others in its L2 or SRAM);
- it runs on PIM when PIM's time is shorter. Equivalently: below the xPU's ridge, PIM wins while
  Op/B < PIM's MAC rate x 2 / the xPU's bandwidth (about 32 FLOP/B for Logic-PIM beside an
  H100, 16 for bank-level PIM). Decode attention (Op/B about the GQA group size) and decode
  experts with few tokens go to PIM; prefill GEMMs (Op/B in the hundreds) stay on the xPU.

Element-wise operators, softmax and norms run on PIM when every operator that produces their
inputs and every operator that reads their output runs on PIM (the softmax between QK^T and AV,
an expert's activation between its up and down projections), so intermediate data does not
bounce between the units; views are looked through. Embeddings, top-k, convolutions and
collectives stay on the xPU.

Options: ``pim_placement: xpu`` puts nothing on PIM, ``pim`` every matrix operator;
``placement_overrides`` ({pattern: xpu | pim}, fnmatch on operator names, first match wins)
overrides the rule for the operators it names (operators PIM cannot run stay on the xPU; on a
template without PIM, ``xpu`` overrides are no-ops and a ``pim`` one is an error).
``override_problems`` checks the patterns at load time (``simulator.experiment``): a pattern that
matches no operator of the workload is an error with the closest name.
``expert_coprocessing: true`` (Duplex's expert co-processing): per MoE layer and device the
experts are sorted by the rows routed to them and the fewest-token ones go to PIM, at the split
that minimizes ``max(PIM time of its experts, xPU time of the others)`` from the same roofline
estimates: both units work on the layer's experts at once.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

from mappers.annotations import Placement
from mappers.pipeline import MapperOptions, mapper_pass
from workloads.errors import ConfigError, Problem, did_you_mean
from workloads.graph import OpGraph
from workloads.ops import Linear, MatMul, Op

__all__ = ["UnitChoice", "place_pim", "has_pim", "roofline_times", "PIM_VECTOR_KINDS", "override_problems"]

PIM_VECTOR_KINDS = ("elementwise", "softmax", "norm")
_EXPERT = re.compile(r"^(?P<block>.*)\.moe\.expert(?P<expert>\d+)\.(?P<part>dispatch|gate|up|act|down)$")


@dataclass(frozen=True)
class UnitChoice:
    """Why an operator runs where it does (the ``place_pim`` pass)."""

    unit: str  # "pim" | "xpu"
    ops_per_byte: float  # FLOPs per byte moved
    xpu_s: float  # roofline time on the xPU
    pim_s: float  # roofline time on PIM
    reason: str


def has_pim(arch) -> bool:
    return getattr(arch, "pim", None) is not None and hasattr(arch, "pim_bandwidth_bytes_per_s")


def pim_templates() -> list[str]:
    """Names of the registered templates with PIM (for error messages)."""
    from architectures.base import TEMPLATES, _load_builtin

    _load_builtin()
    return sorted(n for n, cls in TEMPLATES.items() if "pim" in getattr(cls, "model_fields", {}))


def _bytes(op: Op) -> int:
    return sum(t.nbytes for t in op.inputs) + sum(t.nbytes for t in op.weights) + op.output.nbytes


def _xpu_bytes(op: Op, onchip_bytes: float) -> int:
    """Bytes the xPU must move off chip: weights and KV cache always, activations only when they
    do not fit the on-chip capacity the ``allocate`` pass can keep them in."""
    out = sum(t.nbytes for t in op.weights)
    for t in (*op.inputs, op.output):
        if t.role != "activation" or t.nbytes > onchip_bytes:
            out += t.nbytes
    return out


@dataclass(frozen=True)
class _Rates:
    onchip: float
    xpu_bw: float
    xpu_vector: float
    pim_macs: float
    pim_bw: float
    pim_vector: float


def _rates(arch) -> _Rates:
    return _Rates(arch.scratchpad_bytes(), arch.xpu_bandwidth_bytes_per_s, arch.xpu_vector_ops_per_s,
                  arch.pim_macs_per_s, arch.pim_bandwidth_bytes_per_s, arch.pim_vector_ops_per_s)


def roofline_times(op: Op, arch, rates: _Rates | None = None) -> tuple[float, float, float]:
    """(Op/B, xPU seconds, PIM seconds) of an operator on the two units' rooflines. Op/B is its
    FLOPs per byte of all its operands; PIM reads every operand from the banks, the xPU only
    what cannot stay in its on-chip memory (``_xpu_bytes``)."""
    r = rates or _rates(arch)
    nbytes = _bytes(op)
    xbytes = _xpu_bytes(op, r.onchip)
    if op.is_matrix:
        b = op.inputs[1] if isinstance(op, MatMul) else op.weights[0]
        _, xpu_rate = arch.xpu_matrix_rate(op.inputs[0].precision, b.precision)
        flops = 2 * op.macs
        xpu = max(op.macs / xpu_rate, xbytes / r.xpu_bw)
        pim = max(op.macs / r.pim_macs, nbytes / r.pim_bw)
    else:
        flops = op.vector_ops
        xpu = max(op.vector_ops / r.xpu_vector, xbytes / r.xpu_bw)
        pim = max(op.vector_ops / r.pim_vector, nbytes / r.pim_bw)
    return flops / max(1, nbytes), xpu, pim


def override_problems(options: MapperOptions, op_names: Iterable[str], arch=None) -> list[tuple[str, str, str | None]]:
    """Problems with ``mapper.placement_overrides`` found at load time: (pattern, message, hint)
    for a pattern that matches none of ``op_names`` (the hint: the closest operator name, or
    ``*.<a trailing part of one>``), and, when ``arch`` is given and has no PIM, for a ``pim``
    override."""
    names = list(dict.fromkeys(op_names))
    out: list[tuple[str, str, str | None]] = []
    if arch is not None and not has_pim(arch):
        for pattern, unit in options.placement_overrides.items():
            if unit == "pim":
                out.append((pattern, f"'{pattern}: pim', but the architecture '{arch.name}' (template "
                            f"{arch.template}) has no PIM (templates with PIM: {', '.join(pim_templates())})",
                            None))
    suffixes = sorted({"*." + ".".join(parts[k:]) for n in names for parts in [n.split(".")]
                       for k in range(1, len(parts))})  # '*.attn.qk' for 'layers.0.decode.attn.qk'
    for pattern in options.placement_overrides:
        if any(fnmatch.fnmatchcase(n, pattern) for n in names):
            continue
        hint = did_you_mean(pattern, suffixes if pattern.startswith("*") else names + suffixes)
        out.append((pattern, f"'{pattern}' matches no operator of the workload (patterns are fnmatch on "
                    f"operator names such as '{_example(names)}')", hint))
    return out


def _example(names: list[str]) -> str:
    return next((n for n in names if ".attn." in n), names[0] if names else "layers.0.attn.qk")


def _pim_can_run(op: Op) -> bool:
    return isinstance(op, (Linear, MatMul)) or op.kind in PIM_VECTOR_KINDS


def _neighbours(g: OpGraph, name: str, forward: bool) -> list[str]:
    """Running operators that produce (``forward=False``) or read (``True``) an operator's data,
    looking through views."""
    out, stack, seen = [], [name], {name}
    while stack:
        cur = stack.pop()
        nxt = g.nx.successors(cur) if forward else g.nx.predecessors(cur)
        for n in nxt:
            if n in seen:
                continue
            seen.add(n)
            if g.get(n, Placement).unit == "none":
                stack.append(n)
            else:
                out.append(n)
    return out


@mapper_pass(name="place_pim", requires=("place",))
def place_pim(graph: OpGraph, arch, options: MapperOptions) -> OpGraph:
    """Put operators on PIM by arithmetic intensity (templates with PIM; a no-op elsewhere)."""
    if not has_pim(arch):
        wanted = [p for p, u in options.placement_overrides.items() if u == "pim"]
        if wanted:
            raise ConfigError(Problem(None, "mapper.placement_overrides", f"'{wanted[0]}: pim', but the "
                                      f"architecture '{arch.name}' (template {arch.template}) has no PIM "
                                      f"(templates with PIM: {', '.join(pim_templates())})"))
        return graph
    g = graph.copy()
    unit: dict[str, str] = {}
    choice: dict[str, UnitChoice] = {}
    running = [op for op in g.ops() if g.get(op.name, Placement).unit in ("array", "vector")]
    rates = _rates(arch)
    for op in running:
        if not _pim_can_run(op):
            continue
        opb, xpu_s, pim_s = roofline_times(op, arch, rates)
        if not op.is_matrix:
            choice[op.name] = UnitChoice("xpu", opb, xpu_s, pim_s, "element-wise: follows its neighbours")
            continue
        if options.pim_placement == "xpu":
            u, why = "xpu", "mapper.pim_placement: xpu"
        elif options.pim_placement == "pim":
            u, why = "pim", "mapper.pim_placement: pim"
        else:
            u = "pim" if pim_s < xpu_s else "xpu"
            why = (f"Op/B {opb:.3g}: roofline {pim_s * 1e6:.3g} us on PIM vs {xpu_s * 1e6:.3g} us on the xPU")
        unit[op.name] = u
        choice[op.name] = UnitChoice(u, opb, xpu_s, pim_s, why)
    if options.expert_coprocessing and options.pim_placement == "opb":
        _coprocess_experts(g, running, choice, unit)
    # the user's word is final: matrix operators first, so that element-wise ones follow them
    _override(running, options, choice, unit, matrix=True)
    _place_vector_ops(g, running, choice, unit)
    _override(running, options, choice, unit, matrix=False)
    for op in running:
        if op.name in choice:
            c = choice[op.name]
            g.annotate(op.name, c if c.unit == unit.get(op.name, "xpu") else
                       UnitChoice(unit.get(op.name, "xpu"), c.ops_per_byte, c.xpu_s, c.pim_s, c.reason))
        if unit.get(op.name) == "pim":
            g.annotate(op.name, Placement("pim"))
    return g


def _override(running: list[Op], options: MapperOptions, choice: dict, unit: dict, *, matrix: bool) -> None:
    for op in running:
        if op.is_matrix != matrix or op.name not in choice:
            continue
        for pattern, wanted in options.placement_overrides.items():
            if fnmatch.fnmatchcase(op.name, pattern):
                unit[op.name] = wanted
                c = choice[op.name]
                choice[op.name] = UnitChoice(wanted, c.ops_per_byte, c.xpu_s, c.pim_s,
                                             f"mapper.placement_overrides: '{pattern}'")
                break


def _place_vector_ops(g: OpGraph, running: list[Op], choice: dict, unit: dict) -> None:
    """Element-wise ops go to PIM when all their producers and readers run there (fixpoint)."""
    cand = {op.name for op in running if not op.is_matrix and op.name in choice}
    near = {n: (_neighbours(g, n, False), _neighbours(g, n, True)) for n in cand}
    cand = {n for n in cand if near[n][0] and near[n][1]}
    changed = True
    while changed:
        changed = False
        for name in sorted(cand):
            if any(unit.get(m) != "pim" and m not in cand for side in near[name] for m in side):
                cand.discard(name)
                changed = True
    for name in cand:
        unit[name] = "pim"
        c = choice[name]
        choice[name] = UnitChoice("pim", c.ops_per_byte, c.xpu_s, c.pim_s,
                                  "element-wise between operators on PIM")


def _coprocess_experts(g: OpGraph, running: list[Op], choice: dict, unit: dict) -> None:
    """Duplex's expert co-processing: per (MoE layer, device), fewest-token experts to PIM."""
    groups: dict[tuple[str, int], dict[int, dict]] = {}
    for op in g.ops():
        m = _EXPERT.match(op.name)
        if not m:
            continue
        e = groups.setdefault((m["block"], op.device), {}).setdefault(int(m["expert"]), {"ops": [], "rows": 0})
        if m["part"] == "dispatch":
            e["rows"] = op.output.shape[0]
        elif op.name in choice:
            e["ops"].append(op.name)
    for experts in groups.values():
        order = sorted(experts, key=lambda e: (experts[e]["rows"], e))
        t_pim = [sum(choice[n].pim_s for n in experts[e]["ops"]) for e in order]
        t_xpu = [sum(choice[n].xpu_s for n in experts[e]["ops"]) for e in order]
        best_k, best = 0, None
        for k in range(len(order) + 1):
            t = max(sum(t_pim[:k]), sum(t_xpu[k:]))
            if best is None or t < best - 1e-15:
                best_k, best = k, t
        for i, e in enumerate(order):
            u = "pim" if i < best_k else "xpu"
            for n in experts[e]["ops"]:
                c = choice[n]
                if c.unit == "xpu" and not g.op(n).is_matrix:
                    continue  # element-wise: placed with its neighbours
                unit[n] = u
                choice[n] = UnitChoice(u, c.ops_per_byte, c.xpu_s, c.pim_s,
                                       f"expert co-processing: {best_k} of {len(order)} experts "
                                       f"(fewest tokens) on PIM, both units {best * 1e6:.3g} us")
