"""LLM phases: prefill, decode steps, and the two combined (``generate``).

Contract: ``run_llm(plan, simulate_graph)`` simulates the graphs a phase needs and returns one
``SimResult`` whose layers are named ``prefill:<op>`` and ``decode:<op>`` and whose metrics add
``ttft_s`` (prefill latency: the first token comes out of the prefill), ``tpot_s`` (mean time per
output token of one sequence, over the decode steps), ``throughput_tokens_per_s`` (generated
tokens of all sequences per second of the whole run; prompt tokens per second for prefill
alone), ``energy_pj_per_token`` (per generated token; per prompt token for prefill alone),
``prefill_cycles``, ``decode_cycles``, ``prompt_tokens`` and ``generated_tokens``.

Several devices: the layers are what the simulated graph's devices did (one tensor-parallel
device; under expert parallelism device 0's attention, data or tensor parallel, and every
device's experts); ``energy_pj`` sums them.
The run's totals count every device (``Parallelism.replicas``): ``system_energy_pj``,
``energy_pj_per_token`` and ``power_w``; ``area_mm2`` and ``sram_bytes`` are ``devices`` x one
device's, so ``throughput_per_mm2`` is per mm^2 of the whole system.

Decode steps: step i of ``generate`` runs with ``sequence + i`` tokens in the KV cache. With
``decode_steps: mean`` one step is simulated, at the mean context ``sequence + (generate - 1) / 2``
rounded half up, and scaled to all steps: when a step's cost is affine in the context, as
attention's is (linear layers do not depend on it), this is within half a token of context of
exact (relative error at most 1 / (2 x context) on the attention part); fold-count ceil effects
add a little. ``decode_steps: all`` simulates every step.
Decode layers are the sum over all steps (their start and end are weighted sums, for plots).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from simulator.result import LayerResult, ResourceStats, SimResult
from workloads.graph import OpGraph
from workloads.llm_parallel import SINGLE, Parallelism

__all__ = ["LLMPlan", "run_llm", "decode_samples"]


@dataclass(frozen=True)
class LLMPlan:
    """What an LLM experiment runs: phase, shapes, and a builder for each graph."""

    phase: str  # prefill | decode | generate
    batch: int
    sequence: int
    generate: int
    decode_steps: str  # mean | all
    build: Callable[..., OpGraph]  # build(phase="prefill"|"decode", context=int|None) -> OpGraph
    parallelism: Parallelism = SINGLE  # how the graphs split the model over devices

    def prefill_graph(self) -> OpGraph:
        return self.build(phase="prefill", context=None)

    def decode_graph(self, context: int) -> OpGraph:
        return self.build(phase="decode", context=context)


def decode_samples(sequence: int, generate: int, steps: str) -> list[tuple[int, float]]:
    """(context, weight) pairs whose weighted step costs sum to the cost of all decode steps."""
    if steps == "all":
        return [(sequence + i, 1.0) for i in range(generate)]
    # the mean context, rounded half up: within half a token of the exact mean
    return [(sequence + generate // 2, float(generate))]


def _scaled_layer(parts: list[tuple[LayerResult, float]], offset: int, prefix: str,
                  peak_macs_per_cycle: int) -> LayerResult:
    first = parts[0][0]

    def wsum(get) -> float:
        return sum(get(l) * w for l, w in parts)

    counters = {k: wsum(lambda l, k=k: l.counters.get(k, 0.0)) for k in first.counters}
    start = offset + round(wsum(lambda l: l.start_cycle))
    end = offset + round(wsum(lambda l: l.end_cycle))
    macs = round(wsum(lambda l: l.macs))
    span = end - start
    util = macs / (span * peak_macs_per_cycle) if span and peak_macs_per_cycle and first.utilization else 0.0
    return dataclasses.replace(
        first, name=f"{prefix}{first.name}", start_cycle=start, end_cycle=end,
        compute_cycles=round(wsum(lambda l: l.compute_cycles)),
        stall_cycles=span - round(wsum(lambda l: l.compute_cycles)),
        stall_memory_cycles=round(wsum(lambda l: l.stall_memory_cycles)),
        stall_dependency_cycles=round(wsum(lambda l: l.stall_dependency_cycles)),
        stall_busy_cycles=round(wsum(lambda l: l.stall_busy_cycles)),
        macs=macs, vector_ops=round(wsum(lambda l: l.vector_ops)),
        folds=round(wsum(lambda l: l.folds)), utilization=util,
        latency_s=wsum(lambda l: l.latency_s), counters=counters)


def run_llm(plan: LLMPlan, simulate_graph: Callable[[OpGraph], SimResult], *, name: str = "") -> SimResult:
    """Simulate the phase's graphs and combine them (see the module docstring)."""
    layers: list[LayerResult] = []
    resources: dict[str, list] = {}
    prefill = None
    decode_cycles = 0.0
    decode_parts: list[tuple[SimResult, float]] = []
    if plan.phase in ("prefill", "generate"):
        prefill = simulate_graph(plan.prefill_graph())
        layers += [dataclasses.replace(l, name=f"prefill:{l.name}") for l in prefill.layers]
        for r in prefill.resources:
            resources[r.name] = [r, r.busy_cycles, r.tasks, r.bytes]
    offset = prefill.cycles if prefill else 0
    if plan.phase in ("decode", "generate"):
        for context, weight in decode_samples(plan.sequence, plan.generate, plan.decode_steps):
            r = simulate_graph(plan.decode_graph(context))
            decode_parts.append((r, weight))
            decode_cycles += r.cycles * weight
            for res in r.resources:
                entry = resources.setdefault(res.name, [res, 0, 0, 0])
                entry[1] += res.busy_cycles * weight
                entry[2] += res.tasks * weight
                entry[3] += res.bytes * weight
        by_name: dict[str, list[tuple[LayerResult, float]]] = {}
        for r, w in decode_parts:
            for l in r.layers:
                by_name.setdefault(l.name, []).append((l, w))
        peak = decode_parts[0][0].peak_macs_per_cycle
        layers += [_scaled_layer(parts, offset, "decode:", peak) for parts in by_name.values()]
    base = prefill or decode_parts[0][0]
    total = offset + round(decode_cycles)
    stats = tuple(ResourceStats(r.name, r.kind, round(busy), total - round(busy), round(tasks), round(nbytes))
                  for r, busy, tasks, nbytes in resources.values())
    freq = base.freq_hz
    prompt_tokens = plan.batch * plan.sequence if prefill else 0
    generated = plan.batch * plan.generate if plan.phase != "prefill" else 0
    combined = SimResult(experiment=name or base.experiment, engine=base.engine,
                         architecture=base.architecture, workload=base.workload.rsplit("-", 1)[0],
                         freq_hz=freq, cycles=total, peak_macs_per_cycle=base.peak_macs_per_cycle,
                         layers=tuple(layers), resources=stats, timeline=base.timeline)
    par = plan.parallelism
    energy = sum(l.energy_pj * par.replicas(l.name, l.kind) for l in layers)  # every device's
    seconds = total / freq
    extra = {"devices": par.devices, "system_energy_pj": energy, "prefill_cycles": offset, "decode_cycles": round(decode_cycles),
             "prompt_tokens": prompt_tokens, "generated_tokens": generated,
             "ttft_s": offset / freq if prefill else 0.0,
             "tpot_s": decode_cycles / plan.generate / freq if generated else 0.0}
    if generated:
        extra["throughput_tokens_per_s"] = generated / seconds if seconds else 0.0
        extra["energy_pj_per_token"] = energy / generated
    else:
        extra["throughput_tokens_per_s"] = prompt_tokens / seconds if seconds else 0.0
        extra["energy_pj_per_token"] = energy / prompt_tokens if prompt_tokens else 0.0
    # per-design constants carry over (for every device); rates are recomputed for the whole run
    for key in ("area_mm2", "sram_bytes"):
        if key in base.extra:
            extra[key] = base.extra[key] * par.devices
    extra["power_w"] = energy * 1e-12 / seconds if seconds else 0.0
    if extra.get("area_mm2"):
        extra["throughput_per_mm2"] = extra["throughput_tokens_per_s"] / extra["area_mm2"]
    return dataclasses.replace(combined, extra=extra)
