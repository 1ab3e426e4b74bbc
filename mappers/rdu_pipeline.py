"""One spatial pipeline on the ``rdu`` template: stages, PCU/PMU allocation, chunks and timing.

A kernel (a chain of operators ``mappers.rdu_fusion`` fused) is a spatial pipeline whose stages
are its operators (ops the ``fuse`` pass folded into an operator ride in its stage):

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
  another stage of the chain (K and V in prefill attention). A kernel whose stages need more PMUs
  than exist does not fit (``build_kernel`` returns None; ``mappers.rdu_fusion`` splits it).

Contract: ``make_stage`` prices an operator alone (on one PCU); ``build_kernel`` takes fresh
stages (from ``make_stage``, ``ext_in`` / ``out_store`` empty), fills in every stage's
allocation and timing in place and returns the timed ``Kernel``, or None when the stages do not
fit the socket's PCUs and PMUs (their ``need`` is then set, for the error message).
``kernel_time`` estimates a built kernel's cycles including its off-chip traffic and call.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from architectures.rdu import RDU
from architectures.systolic import DATAFLOWS, FoldPlan, fold_plan
from mappers.memory import TensorHomes
from workloads.ops import Embedding, MatMul, Op, TensorSpec

__all__ = ["Stage", "Kernel", "make_stage", "build_kernel", "kernel_time", "pipeline_cycles"]


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


def make_stage(op: Op, fused: tuple[Op, ...], arch: RDU, homes: TensorHomes, default_tier: str) -> Stage:
    """``op`` (with the ops in ``fused`` riding in it) as a stage on one PCU: its fold (for a GEMM),
    compute cycles, work units and weight bytes by tier; the kernel fields are left at their defaults."""
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


def _classify(stages: list[Stage], consumers: dict[str, list[str]], outputs: set[str],
              homes: dict[str, TensorHomes], default_tier: str, src_of: Callable[[str], str | None]) -> None:
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


def kernel_time(k: Kernel, arch: RDU) -> int:
    """Estimated cycles of a kernel: its pipeline or its off-chip traffic, plus the call."""
    reads, writes = _offchip(k)
    tiers = arch.offchip_tiers()
    mem = max((math.ceil((reads.get(t, 0) + writes.get(t, 0)) * arch.freq_hz / tier.bandwidth_bytes_per_s)
               for t, tier in tiers.items() if tier.bandwidth_bytes_per_s != math.inf), default=0)
    return max(k.total, mem) + arch.kernel_call_cycles


def build_kernel(stages: list[Stage], arch: RDU, consumers: dict[str, list[str]], outputs: set[str],
                 homes: dict[str, TensorHomes], default_tier: str,
                 src_of: Callable[[str], str | None]) -> Kernel | None:
    """The kernel of ``stages`` if its buffers fit the PMUs, else None (needs are set).

    ``consumers`` maps a canonical tensor to the operators reading it, ``outputs`` holds the
    graph's output tensors, ``homes`` each operator's ``TensorHomes`` and ``src_of`` gives the
    running operator producing a tensor (None for a graph input)."""
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
