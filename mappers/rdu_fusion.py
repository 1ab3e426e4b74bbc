"""Spatial fusion on the ``rdu`` template: which running operators share a kernel.

Fusion (``mapper.spatial_fusion: true``, the default). Operators that run are grouped into chains:
consecutive operators (in the graph's topological order) of the same block (``layers.3``: a whole
decoder layer) on the same device; collectives and CoE operators end a chain. A chain becomes one
kernel, a spatial pipeline whose stages are its operators (``mappers.rdu_pipeline`` allocates
and times it). Operators are added to a kernel in order; when the next one would make the stages
need more PMUs than exist, the kernel is closed and a new one starts (``fusion_split = 1`` on
both). An operator that does not fit alone is a ``ConfigError`` with the numbers. One more cut:
when adding an operator leaves the slowest stage bound on PMU bandwidth (capacity reservations
starved the others) and the fused kernel would be slower than the two run one after the other,
the kernel is closed (``fusion_cut = 1``).

Unfused (``mapper.spatial_fusion: false``): every operator is its own kernel on the whole socket
(a one-stage pipeline), reading its inputs and weights from and writing its output to off-chip
memory (no on-chip residency between kernels), paying ``kernel_call_s`` each.

Contract: ``kernels`` is called by the planner for each operator and computes the grouping once
per graph, cached in the plan pass's ``ctx`` (``rdu_kernels``; stages and identical chains are
memoized there too), so every operator of a kernel sees the same ``Kernel`` object.
"""

from __future__ import annotations

import dataclasses
import math

from architectures.rdu import RDU
from mappers.annotations import Placement
from mappers.memory import TensorHomes
from mappers.outputs import output_tensors
from mappers.pipeline import MapperOptions
from mappers.rdu_pipeline import Kernel, Stage, build_kernel, kernel_time, make_stage
from workloads.coe import COE_KINDS
from workloads.errors import ConfigError, Problem
from workloads.graph import OpGraph
from workloads.ops import Op

__all__ = ["kernels"]


_STAGE_NUMBERS = ("ext_in", "out_store", "materialized", "forwarded", "need", "pcus", "pmus", "compute",
                  "pmu_cycles", "net_cycles", "cycles")
_KERNEL_NUMBERS = ("n", "split", "cut", "total", "fill", "drain", "slowest")


def _describe_need(s: Stage) -> str:
    parts = [f"double-buffered chunks {_mib(s.need - s.materialized)}"]
    if s.materialized:
        parts.append(f"a materialized second operand {_mib(s.materialized)}")
    return " + ".join(parts)


def _mib(b: float) -> str:
    return f"{b / 2**20:.4g} MiB"


def kernels(graph: OpGraph, arch: RDU, options: MapperOptions, ctx: dict) -> dict[str, Kernel]:
    """Group the graph's running operators into kernels (see the module docstring); cached in
    ``ctx``. Returns {operator name: its kernel}."""
    if "rdu_kernels" in ctx:
        return ctx["rdu_kernels"]
    default_tier = next(iter(arch.offchip_tiers()))
    fused_by = ctx["fused_by"]
    place = {op.name: graph.get(op.name, Placement) for op in graph.ops()}

    def src_of(tensor: str) -> str | None:
        """The running operator whose stage produces ``tensor`` (through views and fused ops)."""
        p = graph.producer(tensor)
        while p is not None:
            pl = place[p]
            if pl.unit == "none":
                p = graph.producer(graph.op(p).inputs[0].name)
            elif pl.unit == "fused":
                return pl.fused_into
            else:
                return p
        return None

    consumers: dict[str, list[str]] = {}
    for op in graph.ops():
        pl = place[op.name]
        reader = pl.fused_into if pl.unit == "fused" else op.name
        if pl.unit == "none":
            continue
        for t in op.inputs:
            consumers.setdefault(_canonical(graph, place, t.name), []).append(reader)
    outputs = {_canonical(graph, place, t) for t in output_tensors(graph)}
    homes = {op.name: graph.get(op.name, TensorHomes, TensorHomes({})) for op in graph.ops()}
    for op in graph.ops():  # fused ops' homes count for the stage that holds them
        pl = place[op.name]
        if pl.unit == "fused" and op.name in homes:
            merged = dict(homes[pl.fused_into].tiers)
            merged.update(homes[op.name].tiers)
            homes[pl.fused_into] = TensorHomes(merged)

    stage_cache = ctx.setdefault("rdu_stage_cache", {})

    def stage_key(op: Op) -> tuple:
        fused = tuple(fused_by.get(op.name, ()))
        h = homes[op.name]
        return (_op_key(op), tuple(_op_key(f) for f in fused),
                tuple(sorted((t.name.rsplit(".", 1)[-1], h.of(t.name, default_tier)) for t in op.weights)))

    def stage(op: Op) -> Stage:
        fused = tuple(fused_by.get(op.name, ()))
        h = homes[op.name]
        key = stage_key(op)
        if key not in stage_cache:
            stage_cache[key] = make_stage(op, fused, arch, h, default_tier)
        proto = stage_cache[key]
        return dataclasses.replace(proto, op=op, fused=fused, out=fused[-1].output if fused else op.output,
                                   ext_in={}, out_store={})

    chains: list[list[Op]] = []
    key = None
    for op in graph.ops():
        unit = place[op.name].unit
        if unit in ("none", "fused"):  # views and fused ops do not break a chain
            continue
        if unit not in ("array", "vector") or op.kind in COE_KINDS:  # collectives, CoE ops do
            key = None
            continue
        k = (op.block, op.device)
        if options.spatial_fusion and chains and k == key:
            chains[-1].append(op)
        else:
            chains.append([op])
        key = k
    out: dict[str, Kernel] = {}
    problems: list[Problem] = []

    def build(stages: list[Stage]) -> Kernel | None:
        """The kernel of ``stages`` if its buffers fit the PMUs, else None (needs are set)."""
        return build_kernel(stages, arch, consumers, outputs, homes, default_tier, src_of)

    def signature(chain: list[Op]) -> tuple:
        """What a chain's kernels depend on, without names: identical layers share their kernels."""
        idx = {op.name: i for i, op in enumerate(chain)}
        sig = []
        for op in chain:
            h = homes[op.name]
            ins = []
            for t in op.inputs:
                src = src_of(t.name)
                ins.append(("in", idx[src]) if src in idx else ("ext", h.of(t.name, default_tier)))
            outside = tuple(c in idx for c in consumers.get(op.output.name, []))
            sig.append((stage_key(op), tuple(ins), outside, op.output.name in outputs,
                        h.of(op.output.name, default_tier)))
        return tuple(sig)

    memo = ctx.setdefault("rdu_chain_memo", {})
    for chain in chains:
        sig = signature(chain)
        if sig in memo:
            for indices, numbers, knum in memo[sig]:
                stages = [stage(chain[i]) for i in indices]
                for st, num in zip(stages, numbers):
                    for f, v in num.items():
                        setattr(st, f, dict(v) if isinstance(v, dict) else v)
                k = Kernel(stages, **knum)
                for st in stages:
                    out[st.name] = k
            continue
        pieces: list[Kernel] = []
        current: Kernel | None = None
        for op in chain:
            before = kernel_time(current, arch) if current else 0
            trial = build((current.stages if current else []) + [stage(op)])
            if trial is not None:
                if current is None:
                    current = trial
                    continue
                slow = trial.stages[trial.slowest]
                starved = slow.pmu_cycles > max(slow.compute, slow.net_cycles)
                if not starved:  # fusing is never worse unless PMU buffers starve its bandwidth
                    current = trial
                    continue
                fused_time = kernel_time(trial, arch)
                trial_stages = trial.stages
                alone = build([stage(op)])
                if alone is None or fused_time <= before + kernel_time(alone, arch):
                    current = build(trial_stages)  # rebuilt: building ``alone`` did not touch it
                    continue
                pieces.append(build(current.stages))
                current = build([stage(op)])
                current.cut = True
                pieces[-1].cut = True
                continue
            if current is not None:
                pieces.append(build(current.stages))  # rebuilt: the trial changed its stages
                pieces[-1].split = True
            alone_stages = [stage(op)]
            current = build(alone_stages)
            if current is not None and pieces:
                current.split = True
            if current is None:
                s = alone_stages[0]
                problems.append(Problem(None, "workload", (
                    f"{op.name}: one operator needs {_mib(s.need)} of PMU memory "
                    f"({_describe_need(s)}) in {max(1, math.ceil(s.need / arch.pmu.size_bytes))} PMUs, "
                    f"but the RDU has {_mib(arch.pmu_capacity_bytes)} ({arch.pmus} PMUs x "
                    f"{_mib(arch.pmu.size_bytes)}); it cannot run even as a kernel of its own "
                    f"(a smaller batch or sequence, or more PMUs, would fit)")))
        if current is not None:
            pieces.append(current)
        position = {op.name: i for i, op in enumerate(chain)}
        entry = []
        for k in pieces:
            for st in k.stages:
                out[st.name] = k
            entry.append(([position[st.name] for st in k.stages],
                          [{f: getattr(st, f) for f in _STAGE_NUMBERS} for st in k.stages],
                          {f: getattr(k, f) for f in _KERNEL_NUMBERS}))
        if len(entry) and sum(len(e[0]) for e in entry) == len(chain):
            memo[sig] = entry
    if problems:
        raise ConfigError(problems)
    ctx["rdu_kernels"] = out
    return out


def _canonical(graph: OpGraph, place: dict, tensor: str) -> str:
    """The tensor holding ``tensor``'s data: through views and ops fused into their root."""
    p = graph.producer(tensor)
    while p is not None:
        pl = place[p]
        if pl.unit == "none":
            tensor = graph.op(p).inputs[0].name
            p = graph.producer(tensor)
        elif pl.unit == "fused":
            return graph.op(pl.fused_into).output.name
        else:
            return tensor
    return tensor


def _op_key(op: Op) -> tuple:
    attrs = tuple(sorted((k, repr(v)) for k, v in vars(op).items()
                         if k not in ("name", "inputs", "output", "weights", "block", "phase", "device")))
    def t(x):
        return (x.shape, x.precision, x.role, x.group_size, x.scale_bits)
    return (type(op), attrs, tuple(map(t, op.inputs)), tuple(map(t, op.weights)), t(op.output))
