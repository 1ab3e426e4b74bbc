"""The ``rdu`` template's planner and resources: spatial pipelines of fused operators.

Resources: one compute unit ``pcus`` (the socket's PCUs and PMUs, configured for one kernel at a
time), a channel per off-chip tier (``hbm``, ``ddr``: tier <-> PMUs) and ``ddr_hbm``, the node's
DDR->HBM copy path (composition-of-experts model switching, ``simulator.coe``).

Fusion (``mapper.spatial_fusion: true``, the default). Operators that run are grouped into chains:
consecutive operators (in the graph's topological order) of the same block (``layers.3``: a whole
decoder layer) on the same device; collectives and CoE operators end a chain. A chain becomes one
kernel, a spatial pipeline whose stages are its operators (ops the ``fuse`` pass folded into an
operator ride in its stage):

- *allocation*: every stage gets at least one PCU and PMU. PCUs go in proportion to each stage's
  time on one PCU (``max(compute, its bytes over one mesh link)``), then one at a time to the
  stage that is slowest on its PCUs (a GEMM computes no faster on more PCUs than it has folds, but
  more PCUs still add mesh links). PMUs: each stage first gets the PMUs its buffers need (below),
  the rest in proportion to the bytes it moves through PMUs, then one at a time to the stage
  slowest on PMU bandwidth;
- *chunks*: the pipeline streams its data in ``n`` chunks, as many as every stage can be cut into
  with at least one unit of work per PCU (a unit: one vector of a fold's streamed operand for a
  GEMM, one SIMD vector of ``lanes x stages`` operations for other operators);
- *stage time*: ``W_s = max(compute, PMU, network)`` cycles (``architectures.rdu``'s unit
  models) and per chunk ``t_s = ceil(W_s / n)``;
- *pipeline time*: ``fill + n * t_max + drain``, fill the stages before the slowest, drain the
  stages after it (``= sum(t_s) + (n - 1) * t_max``), plus ``kernel_call_s`` once per kernel;
- *memory*: intermediate tensors stay in PMUs and never touch HBM. Off-chip traffic is only the
  chain's weights, its inputs produced outside it (each loaded once, then forwarded on chip to
  every stage that reads it) and KV caches, and its outputs read outside it and KV-cache writes,
  spread evenly over the chunks; the event engines overlap it with the pipeline (double
  buffering) and report a memory stall when the kernel is bandwidth-bound;
- *PMU capacity*: a stage needs two chunks (double buffering) of its weights, inputs from off
  chip or forwarded, and output, plus, in full, the second operand of a MatMul produced by
  another stage of the chain (K and V in prefill attention). Operators are added to a kernel in
  order; when the next one would make the stages need more PMUs than exist, the kernel is closed
  and a new one starts (``fusion_split = 1`` on both). An operator that does not fit alone is a
  ``ConfigError`` with the numbers. One more cut: when adding an operator leaves the slowest
  stage bound on PMU bandwidth (capacity reservations starved the others) and the fused kernel
  would be slower than the two run one after the other, the kernel is closed
  (``fusion_cut = 1``).

Unfused (``mapper.spatial_fusion: false``): every operator is its own kernel on the whole socket
(a one-stage pipeline), reading its inputs and weights from and writing its output to off-chip
memory (no on-chip residency between kernels), paying ``kernel_call_s`` each.

How a kernel is lowered: the last operator of the chain carries the kernel's ``OpPlan``: tiles
(the chunks, coalesced to the plan pass's tile budget) with ``fill + t_max`` cycles for the first,
``t_max`` for the middle ones and ``t_max + drain`` for the last, and per tile its share of the
loads and stores per channel. The other operators carry zero-cycle plans that hold their MACs,
vector ops and stage counters (one layer row per stage, for the breakdown); they run before the
last one, so the kernel also waits for every input any of its operators reads.

Counters: per operator ``stage.<op>.{pcus, pmus, pmu_bytes, cycles, compute_cycles, pmu_cycles,
network_cycles, slowest}`` (``<op>`` without its block prefix: ``attn.q``; ``cycles`` is per
chunk; the largest of compute/PMU/network says why a stage is slow). On the kernel's last
operator: ``pipeline_{cycles, iterations, stages, fill_cycles, drain_cycles,
slowest_stage_cycles, pcus, pmus, pmu_bytes}``, ``kernel_calls``, ``fusion_split``,
``fusion_cut``, and the
traffic counters of ``mappers.plan``: ``dram_*`` (all off-chip), ``hbm_*``, ``ddr_*``,
``sram_*`` (PMU), the compulsory / non-compulsory split, energy by component.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from architectures.rdu import RDU
from architectures.systolic import DATAFLOWS, FoldPlan, fold_plan
from mappers.annotations import OpPlan, Placement, Tiling
from mappers.lower import template_resources
from mappers.memory import TensorHomes
from mappers.pipeline import MapperOptions
from mappers.plan import coalesce, planner, spread
from simulator.program import Resource
from workloads.coe import COE_KINDS
from workloads.errors import ConfigError, Problem
from workloads.graph import OpGraph
from workloads.ops import Embedding, MatMul, Op, TensorSpec

__all__ = ["rdu_resources", "plan_rdu", "Stage", "Kernel", "kernels", "pipeline_cycles", "UNIT",
           "SWITCH_CHANNEL", "stage_table"]

UNIT = "pcus"
SWITCH_CHANNEL = "ddr_hbm"


@template_resources("rdu")
def rdu_resources(arch: RDU) -> list[Resource]:
    out = [Resource(UNIT, "unit", 1, peak_macs_per_cycle=arch.pes)]
    for name, tier in arch.offchip_tiers().items():
        out.append(Resource(name, "channel", bytes_per_cycle=tier.bandwidth_bytes_per_s / arch.freq_hz,
                            latency_cycles=int(math.ceil(tier.latency_s * arch.freq_hz - 1e-9)),
                            src=name, dst="pmu"))
    if arch.node_ddr_to_hbm_bytes_per_s > 0:
        out.append(Resource(SWITCH_CHANNEL, "channel",
                            bytes_per_cycle=arch.node_ddr_to_hbm_bytes_per_s / arch.freq_hz,
                            src="ddr", dst="hbm"))
    return out


def pipeline_cycles(stage_cycles: list[int], n: int) -> tuple[int, int, int, int]:
    """(total, fill, drain, slowest index) of ``n`` chunks through stages taking ``stage_cycles``
    per chunk: ``fill + n * t_max + drain`` (the first slowest stage counts as the slowest)."""
    j = int(np.argmax(stage_cycles))
    fill = int(sum(stage_cycles[:j]))
    drain = int(sum(stage_cycles[j + 1:]))
    return fill + n * int(stage_cycles[j]) + drain, fill, drain, j


# ---- stages ------------------------------------------------------------------------------------

@dataclass
class Stage:
    """One operator (with the ops fused into it) as a pipeline stage, before allocation."""

    op: Op
    fused: tuple[Op, ...]
    matrix: bool
    fold: FoldPlan | None
    single_cycles: int  # compute cycles on one PCU
    cap: int  # PCUs it can use
    units: int  # work units (folds, vectors): the most chunks it can be cut into
    vector_ops: int
    weights: dict[str, int]  # off-chip bytes of parameters, by tier
    in_bytes: int  # all activation bytes read
    out: TensorSpec
    # filled by the kernel:
    ext_in: dict[str, int] = field(default_factory=dict)  # inputs from off-chip, by tier
    out_store: dict[str, int] = field(default_factory=dict)  # output written off-chip, by tier
    materialized: int = 0
    forwarded: int = 0  # external inputs another stage loaded, kept on chip until this one reads them
    need: int = 0  # PMU bytes
    pcus: int = 1
    pmus: int = 1
    compute: int = 0
    pmu_cycles: int = 0
    net_cycles: int = 0
    cycles: int = 0  # per chunk

    @property
    def name(self) -> str:
        return self.op.name

    @property
    def weight_bytes(self) -> int:
        return sum(self.weights.values())

    @property
    def pmu_traffic(self) -> int:
        """Bytes through the stage's PMUs and links: activations in, weights, output."""
        return self.in_bytes + sum(self.weights.values()) + self.out.nbytes

    def work(self, k: int) -> int:
        """Compute cycles on ``k`` PCUs (no faster beyond ``cap``)."""
        k = min(k, self.cap)
        if self.matrix:
            extra = self.single_cycles - self.fold.compute_cycles  # fused element-wise work
            return math.ceil(self.fold.folds / k) * self.fold.fold_cycles + math.ceil(extra / k)
        return math.ceil(self.single_cycles / k)


def _best_fold(op: Op, arch: RDU) -> FoldPlan:
    """The dataflow with the fewest cycles on one PCU (then os, ws, is)."""
    g = op.gemm()
    plans = [fold_plan(g, arch.pcu.stages, arch.pcu.lanes, df) for df in DATAFLOWS]
    return min(plans, key=lambda p: (p.compute_cycles, DATAFLOWS.index(p.dataflow)))


def _make_stage(op: Op, fused: tuple[Op, ...], arch: RDU, homes: TensorHomes, default_tier: str) -> Stage:
    lanes, depth = arch.pcu.lanes, arch.pcu.stages
    vops = op.vector_ops + sum(f.vector_ops for f in fused)
    weights: dict[str, int] = {}
    for t in op.weights:
        tier = homes.of(t.name, default_tier)
        nbytes = op.gathered_bytes if isinstance(op, Embedding) else t.nbytes
        weights[tier] = weights.get(tier, 0) + nbytes
    for f in fused:
        for t in f.weights:
            tier = homes.of(t.name, default_tier)
            weights[tier] = weights.get(tier, 0) + t.nbytes
    out = fused[-1].output if fused else op.output
    if op.is_matrix:
        fp = _best_fold(op, arch)
        extra = math.ceil(vops / (lanes * depth))  # fused element-wise work in the output stage
        single = fp.compute_cycles + extra
        units = fp.folds * max(1, math.ceil(fp.T / lanes))  # a chunk: one vector of a fold's stream
        return Stage(op, fused, True, fp, single, max(1, fp.folds), units, vops, weights,
                     sum(t.nbytes for t in op.inputs), out)
    vectors = max(1, math.ceil(max(vops, 1) / (lanes * depth)))
    return Stage(op, fused, False, None, vectors, vectors, vectors, vops, weights,
                 sum(t.nbytes for t in op.inputs), out)


# ---- kernels (groups of stages) --------------------------------------------------------------

@dataclass
class Kernel:
    """A chain of stages run as one spatial pipeline."""

    stages: list[Stage]
    n: int = 1
    split: bool = False  # a piece of a chain cut because it did not fit the PMUs
    cut: bool = False  # a piece of a chain cut because fusing made it slower
    total: int = 0
    fill: int = 0
    drain: int = 0
    slowest: int = 0

    @property
    def tail(self) -> Stage:
        return self.stages[-1]

    @property
    def pmu_bytes(self) -> int:
        return sum(s.need for s in self.stages)


_STAGE_NUMBERS = ("ext_in", "out_store", "materialized", "forwarded", "need", "pcus", "pmus", "compute",
                  "pmu_cycles", "net_cycles", "cycles")
_KERNEL_NUMBERS = ("n", "split", "cut", "total", "fill", "drain", "slowest")


def _classify(stages: list[Stage], consumers: dict[str, list[str]], outputs: set[str],
              homes: dict[str, TensorHomes], default_tier: str, src_of) -> None:
    """Which inputs come from off chip, which outputs go off chip, what must be materialized."""
    names = {s.name for s in stages}
    loaded: set[str] = set()  # an input several stages read is loaded once and forwarded on chip
    for s in stages:
        h = homes.get(s.name) or TensorHomes({})
        s.ext_in, s.out_store, s.materialized, s.forwarded = {}, {}, 0, 0
        for i, t in enumerate(s.op.inputs):
            src = src_of(t.name)
            if src not in names:
                if t.name in loaded:
                    s.forwarded += t.nbytes
                    continue
                loaded.add(t.name)
                tier = h.of(t.name, default_tier)
                s.ext_in[tier] = s.ext_in.get(tier, 0) + t.nbytes
            elif i == 1 and isinstance(s.op, MatMul) and src != s.name:
                s.materialized += t.nbytes  # K or V produced by another stage: held in full
        canon = s.op.output.name  # a running op's output is canonical (fused ops alias it)
        leaves = canon in outputs or s.op.output.role == "kv_cache" or \
            any(c not in names for c in consumers.get(canon, []))
        if leaves:
            tier = h.of(s.out.name, default_tier)
            s.out_store[tier] = s.out.nbytes


def _needs(stages: list[Stage], n: int) -> None:
    for s in stages:
        streamed = s.weight_bytes + sum(s.ext_in.values()) + s.forwarded + s.out.nbytes
        if isinstance(s.op, MatMul):
            g = s.op.gemm().groups
            b = s.op.inputs[1].nbytes
            if s.materialized == 0 and n > g:  # each chunk needs its group's whole second operand
                streamed += b / g * n - b
        s.need = math.ceil(2 * streamed / n) + s.materialized


def _choose_n(stages: list[Stage]) -> int:
    """Chunks: as many as every stage can be cut into with at least one work unit per PCU."""
    return max(1, min(s.units // max(1, min(s.pcus, s.cap)) for s in stages))


def _fits(stages: list[Stage], arch: RDU) -> bool:
    pmus = sum(max(1, math.ceil(s.need / arch.pmu.size_bytes)) for s in stages)
    return len(stages) <= arch.pcus and len(stages) <= arch.pmus and pmus <= arch.pmus


def _pcu_time(s: Stage, k: int, link: float) -> int:
    """Cycles of a stage on ``k`` PCUs: compute, or moving its bytes over its PCUs' links."""
    return max(s.work(k), math.ceil(s.pmu_traffic / (k * link)))


def _allocate_pcus(stages: list[Stage], arch: RDU) -> None:
    """PCUs in proportion to work, then one at a time to the slowest stage."""
    P = arch.pcus
    link = arch.network.link_bytes_per_cycle
    single = [_pcu_time(s, 1, link) for s in stages]
    total = sum(single) or 1
    spare = P - len(stages)
    for s, w in zip(stages, single):
        s.pcus = 1 + min(s.cap - 1, int(spare * w / total))
    left = P - sum(s.pcus for s in stages)
    heap = [(-_pcu_time(s, s.pcus, link), i) for i, s in enumerate(stages)]
    heapq.heapify(heap)
    while left > 0 and heap:
        _, i = heapq.heappop(heap)
        s = stages[i]
        s.pcus += 1
        left -= 1
        heapq.heappush(heap, (-_pcu_time(s, s.pcus, link), i))


def _allocate_pmus(stages: list[Stage], arch: RDU) -> None:
    """PMUs for capacity, then in proportion to the bytes moved, then one at a time to the stage
    slowest on PMU bandwidth."""
    M = arch.pmus
    bw = arch.pmu.bandwidth_bytes_per_cycle
    base = [max(1, math.ceil(s.need / arch.pmu.size_bytes)) for s in stages]
    spare = M - sum(base)
    traffic = sum(s.pmu_traffic for s in stages) or 1
    for s, b in zip(stages, base):
        s.pmus = b + int(spare * s.pmu_traffic / traffic)
    left = M - sum(s.pmus for s in stages)
    heap = [(-math.ceil(s.pmu_traffic / (s.pmus * bw)), i) for i, s in enumerate(stages)]
    heapq.heapify(heap)
    while left > 0 and heap:
        _, i = heapq.heappop(heap)
        s = stages[i]
        s.pmus += 1
        left -= 1
        heapq.heappush(heap, (-math.ceil(s.pmu_traffic / (s.pmus * bw)), i))


def _time(kernel: Kernel, arch: RDU) -> None:
    link, bw = arch.network.link_bytes_per_cycle, arch.pmu.bandwidth_bytes_per_cycle
    for s in kernel.stages:
        s.compute = s.work(s.pcus)
        s.pmu_cycles = math.ceil(s.pmu_traffic / (s.pmus * bw))
        s.net_cycles = math.ceil(s.pmu_traffic / (s.pcus * link))
        s.cycles = math.ceil(max(s.compute, s.pmu_cycles, s.net_cycles) / kernel.n)
    kernel.total, kernel.fill, kernel.drain, kernel.slowest = pipeline_cycles(
        [s.cycles for s in kernel.stages], kernel.n)


def _offchip(k: Kernel) -> tuple[dict[str, int], dict[str, int]]:
    """Bytes the kernel reads and writes per off-chip tier."""
    reads: dict[str, int] = {}
    writes: dict[str, int] = {}
    for s in k.stages:
        for t, b in list(s.weights.items()) + list(s.ext_in.items()):
            reads[t] = reads.get(t, 0) + b
        for t, b in s.out_store.items():
            writes[t] = writes.get(t, 0) + b
    return reads, writes


def _kernel_time(k: Kernel, arch: RDU) -> int:
    """Estimated cycles of a kernel: its pipeline or its off-chip traffic, plus the call."""
    reads, writes = _offchip(k)
    tiers = arch.offchip_tiers()
    mem = max((math.ceil((reads.get(t, 0) + writes.get(t, 0)) * arch.freq_hz / tier.bandwidth_bytes_per_s)
               for t, tier in tiers.items() if tier.bandwidth_bytes_per_s != math.inf), default=0)
    return max(k.total, mem) + arch.kernel_call_cycles


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
    outputs = {_canonical(graph, place, op.output.name) for op in graph.ops() if graph.nx.out_degree(op.name) == 0}
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
            stage_cache[key] = _make_stage(op, fused, arch, h, default_tier)
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
        if len(stages) > min(arch.pcus, arch.pmus):
            return None
        _classify(stages, consumers, outputs, homes, default_tier, src_of)
        _allocate_pcus(stages, arch)
        n = _choose_n(stages)
        _needs(stages, n)
        if not _fits(stages, arch):
            return None
        _allocate_pmus(stages, arch)
        k = Kernel(stages, n=n)
        _time(k, arch)
        return k

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
            before = _kernel_time(current, arch) if current else 0
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
                fused_time = _kernel_time(trial, arch)
                trial_stages = trial.stages
                alone = build([stage(op)])
                if alone is None or fused_time <= before + _kernel_time(alone, arch):
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


# ---- the planner ---------------------------------------------------------------------------

def _short(op: Op) -> str:
    if op.block and op.name.startswith(op.block + "."):
        return op.name[len(op.block) + 1:]
    return op.name


def _stage_counters(s: Stage, k: Kernel, arch: RDU) -> dict[str, float]:
    em = arch.energy_model()
    p = f"stage.{_short(s.op)}."
    macs = s.op.macs + sum(f.macs for f in s.fused)
    sram_r = s.in_bytes + s.weight_bytes
    sram_w = s.out.nbytes + sum(s.ext_in.values()) + s.weight_bytes
    c = {p + "pcus": s.pcus, p + "pmus": s.pmus, p + "pmu_bytes": s.need, p + "cycles": s.cycles,
         p + "compute_cycles": s.compute, p + "pmu_cycles": s.pmu_cycles,
         p + "network_cycles": s.net_cycles,
         p + "slowest": 1.0 if k.stages[k.slowest] is s else 0.0,
         "sram_read_bytes": sram_r, "sram_write_bytes": sram_w,
         "mac_energy_pj": macs * em.mac_pj.value,
         "vector_energy_pj": s.vector_ops * em.vector_op_pj.value,
         "sram_energy_pj": sram_r * em.sram_read_pj_per_byte["pmu"].value
         + sram_w * em.sram_write_pj_per_byte["pmu"].value}
    return c


def _kernel_counters(k: Kernel, arch: RDU, graph_inputs: set[str], first_reader: dict[str, str],
                     outputs: set[str]) -> dict[str, float]:
    em = arch.energy_model()
    tiers = list(arch.offchip_tiers())
    reads = {t: 0 for t in tiers}
    writes = {t: 0 for t in tiers}
    comp_r = comp_w = 0
    for s in k.stages:
        for t, b in s.weights.items():
            reads[t] += b
        for t, b in s.ext_in.items():
            reads[t] += b
        for t, b in s.out_store.items():
            writes[t] += b
        comp_r += s.weight_bytes
        comp_r += sum(x.nbytes for x in s.op.inputs if x.name in graph_inputs and first_reader.get(x.name) == s.name)
        if s.name in outputs or s.op.output.role == "kv_cache":  # graph outputs (by op), KV-cache writes
            comp_w += sum(s.out_store.values())
    c: dict[str, float] = {
        "pipeline_cycles": k.total, "pipeline_iterations": k.n, "pipeline_stages": len(k.stages),
        "pipeline_fill_cycles": k.fill, "pipeline_drain_cycles": k.drain,
        "pipeline_slowest_stage_cycles": k.stages[k.slowest].cycles,
        "pipeline_pcus": sum(s.pcus for s in k.stages), "pipeline_pmus": sum(s.pmus for s in k.stages),
        "pipeline_pmu_bytes": k.pmu_bytes, "kernel_calls": 1, "fusion_split": 1.0 if k.split else 0.0,
        "fusion_cut": 1.0 if k.cut else 0.0,
        "dram_read_bytes": sum(reads.values()), "dram_write_bytes": sum(writes.values())}
    for t in tiers:
        c[f"{t}_read_bytes"] = reads[t]
        c[f"{t}_write_bytes"] = writes[t]
    c["compulsory_dram_read_bytes"] = min(comp_r, c["dram_read_bytes"])
    c["compulsory_dram_write_bytes"] = min(comp_w, c["dram_write_bytes"])
    c["noncompulsory_dram_read_bytes"] = c["dram_read_bytes"] - c["compulsory_dram_read_bytes"]
    c["noncompulsory_dram_write_bytes"] = c["dram_write_bytes"] - c["compulsory_dram_write_bytes"]
    c["dram_energy_pj"] = sum(reads[t] * em.offchip_read_pj_per_byte[t].value
                              + writes[t] * em.offchip_write_pj_per_byte[t].value for t in tiers)
    return c


def _add(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    out = dict(a)
    for key, v in b.items():
        out[key] = out.get(key, 0) + v
    return out


def _energy_total(c: dict[str, float]) -> dict[str, float]:
    c = dict(c)
    for key in ("mac_energy_pj", "vector_energy_pj", "sram_energy_pj", "dram_energy_pj"):
        c.setdefault(key, 0.0)
    c["energy_pj"] = c["mac_energy_pj"] + c["vector_energy_pj"] + c["sram_energy_pj"] + c["dram_energy_pj"]
    return c


def _tiling(s: Stage) -> Tiling | None:
    if not s.matrix:
        return None
    return Tiling(s.fold, f"rdu: the fastest of os/ws/is on one {s.fold.rows}x{s.fold.cols} PCU; "
                          f"{s.pcus} PCUs share its {s.fold.folds} folds")


@planner("rdu")
def plan_rdu(op: Op, graph: OpGraph, arch: RDU, options: MapperOptions, ctx: dict):
    """The operator's stage of its kernel; the kernel's plan on its last operator."""
    if op.kind in COE_KINDS:
        from simulator.coe import plan_coe_op

        return plan_coe_op(op, graph, arch, options, ctx, unit=UNIT, switch_channel=SWITCH_CHANNEL)
    ks = kernels(graph, arch, options, ctx)
    k = ks[op.name]
    s = next(x for x in k.stages if x.name == op.name)
    if "outputs" not in ctx:
        ctx["outputs"] = {o.name for o in graph.ops() if graph.nx.out_degree(o.name) == 0}
    counters = _stage_counters(s, k, arch)
    info = {"dataflow": s.fold.dataflow if s.matrix else None, "folds": s.fold.folds if s.matrix else 0,
            "mapping_efficiency": s.fold.mapping_efficiency if s.matrix else None,
            "compute_utilization": s.fold.compute_utilization if s.matrix else None,
            "peak_macs_per_cycle": arch.pes}
    gm = op.gemm() if op.is_matrix else None
    common = dict(unit=UNIT, fused=tuple(f.name for f in s.fused), vector_ops=s.vector_ops,
                  gemm=(gm.M, gm.K, gm.N, gm.groups) if gm else None, **info)
    anns = [t for t in (_tiling(s),) if t is not None]
    if s is not k.tail:
        empty = np.zeros(1, dtype=np.int64)
        anns.append(OpPlan(cycles=empty, counts=np.ones(1, dtype=np.int64), loads={}, stores={},
                           compute_cycles=0, counters=_energy_total(counters), **common))
        return anns
    kc = _kernel_counters(k, arch, ctx["graph_inputs"], ctx["first_reader"], ctx["outputs"])
    counters = _energy_total(_add(counters, kc))
    n = k.n
    t_max = k.stages[k.slowest].cycles
    cycles = np.full(n, t_max, dtype=np.int64)
    cycles[0] += k.fill + arch.kernel_call_cycles
    cycles[-1] += k.drain
    total = int(cycles.sum())
    loads: dict[str, np.ndarray] = {}
    stores: dict[str, np.ndarray] = {}
    for t in arch.offchip_tiers():
        r = int(counters.get(f"{t}_read_bytes", 0))
        w = int(counters.get(f"{t}_write_bytes", 0))
        if r:
            loads[t] = spread(np.ones(n), r)
        if w:
            stores[t] = spread(np.ones(n), w)
    starts = coalesce(n, ctx["max_tiles"])
    anns.append(OpPlan(cycles=np.add.reduceat(cycles, starts),
                       counts=np.add.reduceat(np.ones(n, dtype=np.int64), starts),
                       loads={ch: np.add.reduceat(a, starts) for ch, a in loads.items()},
                       stores={ch: np.add.reduceat(a, starts) for ch, a in stores.items()},
                       compute_cycles=total, counters=counters, **common))
    return anns


def stage_table(result, kernel_layer: str) -> list[dict[str, object]]:
    """The stages of the kernel whose last operator is ``kernel_layer`` in a ``SimResult``: one row
    per stage with its PCUs, PMUs, cycles per chunk and what bounds it (compute, pmu, network),
    slowest first. For reports and tests."""
    layers = {l.name: l for l in result.layers}
    tail = layers[kernel_layer]
    n = int(tail.counters.get("pipeline_stages", 1))
    idx = [i for i, l in enumerate(result.layers) if l.name == kernel_layer][0]
    rows = []
    for layer in result.layers[idx - n + 1: idx + 1]:
        prefix = next((k[: -len("cycles")] for k in layer.counters
                       if k.startswith("stage.") and k.endswith(".cycles") and not k.endswith(
                           ("compute_cycles", "pmu_cycles", "network_cycles"))), None)
        if prefix is None:
            continue
        c = layer.counters
        bounds = {"compute": c[prefix + "compute_cycles"], "pmu": c[prefix + "pmu_cycles"],
                  "network": c[prefix + "network_cycles"]}
        rows.append({"stage": layer.name, "pcus": int(c[prefix + "pcus"]), "pmus": int(c[prefix + "pmus"]),
                     "cycles_per_chunk": int(c[prefix + "cycles"]), "bound": max(bounds, key=bounds.get),
                     "slowest": bool(c[prefix + "slowest"]), **{f"{b}_cycles": int(v) for b, v in bounds.items()}})
    return sorted(rows, key=lambda r: -r["cycles_per_chunk"])
