"""Where tensors live: off-chip tier placement, and on-chip scratchpad residency across layers.

``place_tensors``: each tensor class (weights, kv_cache, activations) gets a home tier among
the architecture's off-chip tiers, fastest first: a class goes to the fastest tier with room
left for all of it, in the order weights, KV cache, activations; ``mapper.tensor_placement``
overrides it per class. A model that fits no tier is a ``ConfigError`` with the numbers.

``allocate``: which intermediate tensors stay in the on-chip scratchpad between the layer that
writes them and the layers that read them (ILP-free, after COSMA's framing). Ops run in graph
order; after each op the tensors with no further use are freed; a produced tensor (or an input
just fetched) with further uses is kept if room can be made for it: victims are taken clean
first (they have an off-chip copy, so evicting them costs only a reload), then by next-use
distance (Belady: farthest next use first), and the tensor is kept only if evicting them costs
less than leaving it off chip. An evicted tensor without an off-chip copy is written back (a
spill) and read again at its next use (a reload). On random small graphs this is within 4 % of
the exact optimum on average (tests/mappers/test_memory.py measures it). Reads of a tensor already
on chip cost no off-chip traffic. With ``mapper.attention: fused`` the attention scores and
probabilities (``*.attn.qk``, ``*.attn.softmax``) never leave the chip and take no room
(FlashAttention-style: the kernel holds one tile of them at a time). Compulsory traffic (each graph input and weight read once,
each graph output written once; outputs through views, ``mappers.outputs``) is reported apart
from the rest (spills, reloads, re-reads).

``optimal_residency`` computes the exact minimum of the same cost by dynamic programming over
resident sets (exponential: tests and teaching on small graphs only).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from mappers.annotations import Placement
from mappers.outputs import output_tensors
from mappers.pipeline import MapperOptions, mapper_pass
from workloads.errors import ConfigError, Problem
from workloads.graph import OpGraph
from workloads.ops import TensorSpec

__all__ = ["TensorHomes", "Residency", "place_tensors", "allocate", "ScheduleModel", "peak_live_bytes",
           "schedule_model", "belady", "optimal_residency", "TENSOR_CLASSES"]

TENSOR_CLASSES = ("weights", "kv_cache", "activations")


def tensor_class(t: TensorSpec) -> str:
    return {"weight": "weights", "kv_cache": "kv_cache"}.get(t.role, "activations")


@dataclass(frozen=True)
class TensorHomes:
    """Per operator: the off-chip tier each of its tensors lives in."""

    tiers: dict[str, str]  # tensor name -> tier name

    def of(self, tensor: str, default: str) -> str:
        return self.tiers.get(tensor, default)


@dataclass(frozen=True)
class Residency:
    """Per operator: which tensors it finds on chip, and the off-chip traffic residency causes.

    ``onchip_inputs``: input tensors already resident (no off-chip read).
    ``write_output``: the output must be written off-chip now (a graph output, or not kept).
    ``spills``: (tensor, bytes, tier) written back because this op's output evicted them.
    ``reloads``: input tensors that are read again after an eviction (non-compulsory).
    """

    onchip_inputs: frozenset[str] = frozenset()
    write_output: bool = True
    spills: tuple[tuple[str, int, str], ...] = ()
    reloads: frozenset[str] = frozenset()


def offchip_tiers(arch) -> dict[str, object]:
    """The architecture's off-chip tiers, fastest first (templates provide ``offchip_tiers()``)."""
    return arch.offchip_tiers()


@mapper_pass(name="place_tensors", requires=("place",))
def place_tensors(graph: OpGraph, arch, options: MapperOptions) -> OpGraph:
    """Give each tensor class a home off-chip tier: the fastest with room, or the user's choice."""
    g = graph.copy()
    tiers = offchip_tiers(arch)
    need_by_device: dict[int, dict[str, int]] = {}
    seen: set[str] = set()
    for op in g.ops():  # weights and KV cache count on the device of the first op touching them
        need = need_by_device.setdefault(op.device, {c: 0 for c in TENSOR_CLASSES})
        for t in op.tensors:
            if t.name not in seen and tensor_class(t) != "activations":
                seen.add(t.name)
                need[tensor_class(t)] += t.nbytes
    devices = sorted(need_by_device)
    for device in devices:  # activations come and go: what is live at the busiest moment
        m = schedule_model(g, device if len(devices) > 1 else None)
        need_by_device[device]["activations"] = peak_live_bytes(m)
    wanted = dict(options.tensor_placement or {})
    problems: list[Problem] = []
    homes: dict[int, dict[str, str]] = {}
    for device, need in need_by_device.items():
        homes[device] = _place_classes(need, tiers, wanted, problems,
                                       f" on device {device}" if len(need_by_device) > 1 else "")
    if problems:
        raise ConfigError(problems)
    for op in g.ops():
        home = homes[op.device]
        g.annotate(op.name, TensorHomes({t.name: home[tensor_class(t)] for t in op.tensors}))
    g.meta["tensor_homes"] = dict(homes[min(homes)])
    g.meta["offchip_need_bytes"] = dict(need_by_device[min(need_by_device)])
    return g


def peak_live_bytes(m: ScheduleModel) -> int:
    """The most activation bytes live at once: a tensor lives from the step that writes it (or
    the start, for inputs) to its last read; a step's inputs and output are live together."""
    last = {t: uses[-1] for t, uses in m.uses.items()}
    live = {t: m.size[t] for t in m.graph_inputs}
    peak = sum(live.values())
    for i, out in enumerate(m.produces):
        if out is not None:
            live[out] = m.size[out]
        peak = max(peak, sum(live.values()))
        for t in [t for t in live if last.get(t, -1) <= i and t != out]:
            del live[t]
        if out is not None and last.get(out, -1) < i and out not in m.graph_outputs:
            live.pop(out, None)
    return peak


def _place_classes(need: dict[str, int], tiers: dict, wanted: dict, problems: list,
                   where: str) -> dict[str, str]:
    names = list(tiers)
    free = {n: tiers[n].size_bytes for n in names}
    home: dict[str, str] = {}
    for cls in TENSOR_CLASSES:
        if need[cls] == 0:
            home[cls] = names[0]
            continue
        if cls in wanted:
            tier = wanted[cls]
            if tier not in tiers:
                problems.append(Problem(None, f"mapper.tensor_placement.{cls}",
                                        f"'{tier}' is not an off-chip tier of this architecture; "
                                        f"tiers: {', '.join(names)}"))
                continue
            candidates = [tier]
        else:
            candidates = names
        for tier in candidates:
            if need[cls] <= free[tier]:
                home[cls] = tier
                free[tier] -= need[cls]
                break
        else:
            have = ", ".join(f"{n} {_gb(free[n])} free of {_gb(tiers[n].size_bytes)}" for n in candidates)
            problems.append(Problem(None, f"mapper.tensor_placement.{cls}" if cls in wanted else "workload",
                                    f"{cls} need {_gb(need[cls])} ({need[cls]:,} B){where} but no tier "
                                    f"has room ({have})"))
            home[cls] = names[0]
    return home


def _gb(n: float) -> str:
    if math.isinf(n):
        return "unlimited"
    return f"{n / 2**30:.3g} GiB"


# ---- residency ------------------------------------------------------------------------------

@dataclass
class ScheduleModel:
    """The graph reduced to what residency needs: steps, tensor sizes, uses, graph I/O."""

    steps: list[str]  # op names that run, in order
    produces: list[str | None]  # canonical tensor each step writes
    reads: list[list[str]]  # canonical activation tensors each step reads
    literal: list[dict[str, list[str]]]  # per step: canonical -> the op's own input names
    size: dict[str, int]
    graph_inputs: set[str]
    graph_outputs: set[str]
    uses: dict[str, list[int]] = field(default_factory=dict)  # tensor -> steps that read it


def schedule_model(graph: OpGraph, device: int | None = None) -> ScheduleModel:
    """Steps are the ops that run (not views, not fused ops); aliases resolve to the tensor that
    holds the data (a fused ReLU's output is its conv's output; a flatten's is its input).
    With ``device``, only that device's ops are steps; tensors other devices produce arrive over
    the links and count as inputs (their first read is free)."""
    alias: dict[str, str] = {}
    steps, produces, reads, literal = [], [], [], []
    external: set[str] = set()
    size: dict[str, int] = {}
    for t in graph.graph_inputs:
        size[t.name] = t.nbytes
    for op in graph.ops():
        unit = graph.get(op.name, Placement).unit
        ins = [alias.get(t.name, t.name) for t in op.inputs]
        if unit in ("none", "fused"):
            alias[op.output.name] = ins[0] if unit == "none" else alias.get(
                graph.op(graph.get(op.name, Placement).fused_into).output.name,
                graph.op(graph.get(op.name, Placement).fused_into).output.name)
            continue
        if device is not None and op.device != device:
            external.add(op.output.name)
            size[op.output.name] = op.output.nbytes
            continue
        steps.append(op.name)
        reads.append([t for t in dict.fromkeys(ins) if _is_activation(graph, t)])
        names: dict[str, list[str]] = {}
        for t in op.inputs:
            names.setdefault(alias.get(t.name, t.name), []).append(t.name)
        literal.append(names)
        produces.append(op.output.name)
        size[op.output.name] = op.output.nbytes
        for t in op.inputs:
            size.setdefault(alias.get(t.name, t.name), t.nbytes)
    consumed = {t for r in reads for t in r}
    outputs = {alias.get(t, t) for t in output_tensors(graph)}  # through views, then fusion
    inputs = {t.name for t in graph.graph_inputs if t.name in consumed} | (external & consumed)
    m = ScheduleModel(steps, produces, reads, literal, size, inputs, outputs)
    for i, r in enumerate(reads):
        for t in r:
            m.uses.setdefault(t, []).append(i)
    return m


def _is_activation(graph: OpGraph, name: str) -> bool:
    try:
        return graph.tensor(name).role == "activation"
    except KeyError:
        return True


def _next_use(m: ScheduleModel, t: str, after: int) -> float:
    for u in m.uses.get(t, []):
        if u > after:
            return u
    return math.inf


@dataclass
class ResidencyResult:
    per_step: list[Residency]
    compulsory_read: int
    compulsory_write: int
    spill_bytes: int
    reload_bytes: int
    peak_bytes: int

    @property
    def noncompulsory(self) -> int:
        return self.spill_bytes + self.reload_bytes


def belady(m: ScheduleModel, capacity: float, tier_of=lambda t: "dram",
           pinned: frozenset[str] = frozenset()) -> ResidencyResult:
    """The next-use-distance heuristic described in the module docstring.

    ``pinned`` tensors never leave the chip and take no scratchpad room (fused attention's scores:
    the kernel tiles them, so only a tile is ever held, in its own buffers).
    """
    resident: dict[str, int] = {}
    offchip_copy = set(m.graph_inputs)  # tensors with a valid off-chip copy
    per_step: list[Residency] = []
    comp_r = sum(m.size[t] for t in m.graph_inputs)
    comp_w = spill_b = reload_b = peak = 0
    first_read: set[str] = set()

    def reload_cost(v: str) -> int:
        """Bytes an eviction of ``v`` costs: a write-back (if it has no off-chip copy) + a reload."""
        return m.size[v] * (1 if v in offchip_copy else 2)

    def try_insert(t: str, i: int, spills: list) -> bool:
        """Make room for ``t``; keep it only if evicting costs less than leaving it off chip."""
        nonlocal spill_b
        need = m.size[t]
        if need > capacity or _next_use(m, t, i) == math.inf:
            return False
        room = capacity - sum(resident.values())
        victims = []
        # clean tensors first (no write-back), then the farthest next use (Belady)
        for v in sorted(resident, key=lambda v: (reload_cost(v) / m.size[v], -_next_use(m, v, i), v)):
            if room >= need:
                break
            victims.append(v)
            room += resident[v]
        if room < need or sum(reload_cost(v) for v in victims) >= reload_cost(t):
            return False
        for v in victims:
            del resident[v]
            if v not in offchip_copy:
                spills.append((v, m.size[v], tier_of(v)))
                spill_b += m.size[v]
                offchip_copy.add(v)
        resident[t] = need
        return True

    for i, name in enumerate(m.steps):
        onchip = frozenset(n for t in m.reads[i] if t in resident or t in pinned
                           for n in m.literal[i].get(t, [t]))
        reloads: set[str] = set()
        fetched = []
        for t in m.reads[i]:
            if t in resident or t in pinned:
                continue
            if t in m.graph_inputs and t not in first_read:
                first_read.add(t)  # compulsory: counted once above
            else:
                reloads.add(t)
                reload_b += m.size[t]
            fetched.append(t)
        for t in [t for t in resident if _next_use(m, t, i) == math.inf]:
            del resident[t]  # nobody reads it any more
        spills: list[tuple[str, int, str]] = []
        for t in fetched:  # inputs fetched from off chip may stay for their next use
            try_insert(t, i, spills)
        out = m.produces[i]
        keep = out is not None and (out in pinned or try_insert(out, i, spills))
        write_output = out is not None and (out in m.graph_outputs or
                                            (not keep and _next_use(m, out, i) < math.inf))
        if write_output:
            offchip_copy.add(out)
            if out in m.graph_outputs:
                comp_w += m.size[out]
            else:
                spill_b += m.size[out]  # written off chip only to be read back later
        peak = max(peak, sum(resident.values()))
        reloads_lit = frozenset(n for t in reloads for n in m.literal[i].get(t, [t]))
        per_step.append(Residency(onchip, write_output, tuple(spills), reloads_lit))
    return ResidencyResult(per_step, comp_r, comp_w, spill_b, reload_b, peak)


def optimal_residency(m: ScheduleModel, capacity: float) -> int:
    """Minimum non-compulsory off-chip bytes over all residency schedules (exact; small graphs).

    The state after step i is the set of resident tensors. A tensor enters the set when it is
    produced (free) or reloaded for a read (costs its size); it may leave at any time (costs its
    size once, the write-back, if it has no off-chip copy yet). Reads of non-resident tensors cost
    their size. Same cost model as ``belady``.
    """
    tensors = sorted({t for r in m.reads for t in r} | {p for p in m.produces if p})
    index = {t: k for k, t in enumerate(tensors)}
    if len(tensors) > 14:
        raise ValueError(f"optimal_residency is exponential; {len(tensors)} tensors is too many")
    size = [m.size[t] for t in tensors]

    def bytes_of(mask: int) -> int:
        return sum(size[k] for k in range(len(tensors)) if mask >> k & 1)

    # state: (resident mask, offchip-copy mask) -> min cost
    start_copy = 0
    for t in m.graph_inputs:
        if t in index:
            start_copy |= 1 << index[t]
    frontier = {(0, start_copy): 0}
    first_reads = {t for t in m.graph_inputs}
    for i in range(len(m.steps)):
        nxt: dict[tuple[int, int], int] = {}
        need = 0
        for t in m.reads[i]:
            need |= 1 << index[t]
        for (res, copy), cost in frontier.items():
            # reads: resident ones are free; others cost their size unless it is the first read of
            # a graph input (compulsory)
            c = cost
            for t in m.reads[i]:
                k = index[t]
                if not res >> k & 1:
                    if t in first_reads and _first_use(m, t) == i:
                        continue
                    c += size[k]
            # optionally keep the read inputs resident (subsets of the missing ones)
            missing = [index[t] for t in m.reads[i] if not res >> index[t] & 1]
            for keep_in in _subsets(missing):
                r1 = res | keep_in
                out = m.produces[i]
                outs = [None]
                if out is not None:
                    outs = [0, 1 << index[out]]
                for add_out in outs:
                    r2 = r1 | (add_out or 0)
                    copy2 = copy
                    c2 = c
                    if out is not None and not add_out:
                        # not kept: written off-chip now (compulsory if a graph output)
                        if out not in m.graph_outputs and _next_use(m, out, i) < math.inf:
                            c2 += size[index[out]]
                        copy2 |= 1 << index[out]
                    elif out is not None and out in m.graph_outputs:
                        copy2 |= 1 << index[out]  # written once (compulsory) and kept
                    # evictions: any subset of r2; dropping a tensor without a copy that is used
                    # later costs a write-back
                    live = [k for k in range(len(tensors)) if r2 >> k & 1]
                    for drop in _subsets(live):
                        r3 = r2 & ~drop
                        if bytes_of(r3) > capacity:
                            continue
                        c3 = c2
                        copy3 = copy2
                        for k in range(len(tensors)):
                            if drop >> k & 1:
                                if not copy3 >> k & 1 and _next_use(m, tensors[k], i) < math.inf:
                                    c3 += size[k]
                                copy3 |= 1 << k
                        # tensors not needed again can be dropped for free: canonicalize
                        for k in range(len(tensors)):
                            if r3 >> k & 1 and _next_use(m, tensors[k], i) == math.inf:
                                r3 &= ~(1 << k)
                        key = (r3, copy3 & _mask_live(m, tensors, i))
                        if c3 < nxt.get(key, math.inf):
                            nxt[key] = c3
        frontier = nxt
    return min(frontier.values()) if frontier else 0


def _first_use(m: ScheduleModel, t: str) -> int:
    return m.uses.get(t, [-1])[0]


def _mask_live(m: ScheduleModel, tensors: list[str], i: int) -> int:
    mask = 0
    for k, t in enumerate(tensors):
        if _next_use(m, t, i) < math.inf:
            mask |= 1 << k
    return mask


def _subsets(items: list[int]):
    for n in range(len(items) + 1):
        for combo in itertools.combinations(items, n):
            mask = 0
            for k in combo:
                mask |= 1 << k
            yield mask


ATTENTION_INTERMEDIATES = (".attn.qk", ".attn.softmax")


def fused_attention_tensors(graph: OpGraph) -> frozenset[str]:
    """Outputs of attention's score and softmax ops (by the LLM builders' naming), which a fused
    (FlashAttention-style) kernel keeps on chip, and of ops fused into them."""
    roots = {op.name for op in graph.ops() if op.name.endswith(ATTENTION_INTERMEDIATES)}
    out = set()
    for op in graph.ops():
        into = graph.get(op.name, Placement).fused_into
        if op.name in roots or into in roots:
            out.add(graph.op(into).output.name if into in roots else op.output.name)
    return frozenset(out)


@mapper_pass(name="allocate", requires=("place_tensors",))
def allocate(graph: OpGraph, arch, options: MapperOptions) -> OpGraph:
    """Keep intermediate tensors in the on-chip scratchpad between layers (next-use eviction)."""
    g = graph.copy()
    capacity = arch.scratchpad_bytes() if options.onchip_residency else 0
    homes = g.meta.get("tensor_homes", {})
    act_tier = homes.get("activations", next(iter(offchip_tiers(arch))))
    pinned = fused_attention_tensors(g) if options.attention == "fused" else frozenset()
    devices = g.devices
    totals = {"capacity_bytes": capacity, "spill_bytes": 0, "reload_bytes": 0, "peak_bytes": 0}
    for device in devices:  # every device has its own scratchpad
        m = schedule_model(g, device if len(devices) > 1 else None)
        result = belady(m, capacity, tier_of=lambda t: act_tier, pinned=pinned)
        for name, res in zip(m.steps, result.per_step):
            g.annotate(name, res)
        totals["spill_bytes"] += result.spill_bytes
        totals["reload_bytes"] += result.reload_bytes
        totals["peak_bytes"] = max(totals["peak_bytes"], result.peak_bytes)
    g.meta["residency"] = totals
    return g
