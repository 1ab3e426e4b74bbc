"""A serving experiment end to end: the plan's requests through ``serve`` at ``IterationCosts``.

Contract: ``run_serving(experiment, engine=)`` simulates ``experiment.serving`` (a
``ServingPlan``) and returns a ``ServingResult`` with the metrics the package docstring lists.
Its layers are every simulated iteration shape's layers summed by name, weighted by how much
of each iteration's energy the shape gave (with ``cost_model.layers: extrapolate``, the middle
layers are one row ``layers.1-{n-1}``, which in a model of dense and MoE layers holds both kinds'
operators: ``mlp.*`` for the dense ones, ``moe.*`` for the MoE ones); its resources are summed the same way with the time
weights, and its cycles are the last finish at the architecture's clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from workloads.graph import OpGraph
from simulator.result import LayerResult, ResourceStats, SimResult
from simulator.serving.costs import IterationCosts, extrapolates
from simulator.serving.plan import ServingPlan, ServingResult
from simulator.serving.process import ServingOutcome, serve

if TYPE_CHECKING:
    from simulator.experiment import Experiment


def run_serving(exp: Experiment, *, engine: str | None = None) -> ServingResult:
    """Simulate a serving experiment (see the module docstring); ``engine`` overrides the
    experiment's for every iteration shape."""
    from simulator.run import run_metrics, simulate

    plan: ServingPlan = exp.serving
    spec = plan.spec
    engine = engine or exp.engine
    mapper = exp.mapper

    def simulate_graph(graph: OpGraph, tiles: int | None) -> SimResult:
        m = mapper if tiles is None else mapper.model_copy(update={"max_tiles_per_layer": tiles,
                                                                   "max_tasks": 10 ** 12})
        return simulate(graph, exp.architecture, mapper=m, engine=engine, name=exp.name)

    costs = IterationCosts(plan, simulate_graph, max_tasks=mapper.max_tasks,
                           max_tiles_per_layer=mapper.max_tiles_per_layer,
                           tile_fidelity=mapper.fidelity == "tile")
    outcome = serve(plan.requests, costs.cost, max_batch=spec.max_batch,
                    kv_capacity_tokens=plan.kv_capacity_tokens, max_prefill_tokens=spec.max_prefill_tokens,
                    on_iteration=costs.record)
    return _result(exp, plan, costs, outcome, engine, run_metrics)


def _result(exp: Experiment, plan: ServingPlan, costs: IterationCosts, outcome: ServingOutcome, engine: str,
            run_metrics: Callable[[SimResult, int], SimResult]) -> ServingResult:
    # layers and resources: every simulated shape's, weighted by how often iterations used it
    by_name: dict[str, list[tuple[LayerResult, float]]] = {}
    resources: dict[str, list] = {}
    peak, freq = 0, exp.architecture.freq_hz
    n_layers = plan.cfg.num_hidden_layers
    extrapolated = extrapolates(plan)
    for shape, (use_t, use_e) in sorted(costs.usage.items()):
        s = costs.shapes.get(shape) or costs.untimed[shape]
        peak = max(peak, s.peak_macs_per_cycle)
        for l, w in s.layers:  # what the layers did: energy weights (linear in the tokens)
            name = l.name
            if extrapolated and l.block == "layers.1":
                name = name.replace("layers.1.", f"layers.1-{n_layers - 1}.", 1)
            if use_e > 0:
                by_name.setdefault(name, []).append((l, w * use_e))
        for rname, (stats, busy, tasks, nbytes) in s.resources.items():  # busy time: time weights
            entry = resources.setdefault(rname, [stats, 0.0, 0.0, 0.0])
            entry[1] += busy * use_t
            entry[2] += tasks * use_t
            entry[3] += nbytes * use_t
    layers = tuple(_summed_layer(name, parts, i) for i, (name, parts) in enumerate(by_name.items()))
    cycles = int(round(outcome.end_s * freq))
    stats = tuple(ResourceStats(r.name, r.kind, round(b), max(0, cycles - round(b)), round(t), round(nb))
                  for r, b, t, nb in resources.values())
    recs = outcome.records
    generated = sum(r.output_tokens for r in recs)
    span_s = outcome.end_s - outcome.start_s
    ttft = np.array([r.first_token_s - r.arrival_s for r in recs])
    e2e = np.array([r.finished_s - r.arrival_s for r in recs])
    queue = np.array([r.admitted_s - r.arrival_s for r in recs])
    tbt = outcome.tbt

    def pct(a: np.ndarray, q: float) -> float:
        return float(np.percentile(a, q)) if len(a) else 0.0

    base = SimResult(experiment=exp.name, engine=engine, architecture=exp.architecture.name,
                     workload=f"{plan.cfg.name}-serving", freq_hz=freq, cycles=cycles,
                     peak_macs_per_cycle=peak * plan.devices, layers=layers, resources=stats)
    energy = base.energy_pj
    extra = {
        "throughput_tokens_per_s": generated / span_s if span_s > 0 else 0.0,
        "ttft_s": pct(ttft, 50), "ttft_p99_s": pct(ttft, 99),
        "tbt_s": pct(tbt, 50), "tbt_p99_s": pct(tbt, 99),
        "tpot_s": float(tbt.mean()) if len(tbt) else 0.0,
        "energy_pj_per_token": energy / generated if generated else 0.0,
        "requests_completed": len(recs), "requests": len(plan.requests),
        "generated_tokens": generated, "prompt_tokens": sum(r.input_tokens for r in recs),
        "e2e_s": pct(e2e, 50), "e2e_p99_s": pct(e2e, 99), "queue_s": pct(queue, 50),
        "iterations": outcome.iterations,
        "mean_batch": outcome.batch_sum / outcome.iterations if outcome.iterations else 0.0,
        "kv_capacity_tokens": plan.kv_capacity_tokens, "devices": plan.devices,
        "serving_simulations": costs.simulations, "serving_shapes": len(costs.shapes) + len(costs.untimed),
        "serving_span_s": span_s, "system_energy_pj": energy,
    }
    from simulator.run import design_metrics

    extra.update({k: v * plan.devices for k, v in design_metrics(exp.architecture).items()})
    result = ServingResult(**{f.name: getattr(base, f.name) for f in dataclasses.fields(SimResult)},
                           requests=tuple(recs))
    result = dataclasses.replace(result, extra=extra)
    return run_metrics(result, len(recs))


def _summed_layer(name: str, parts: list[tuple[LayerResult, float]], index: int) -> LayerResult:
    first = parts[0][0]

    def wsum(get: Callable[[LayerResult], float]) -> float:
        return sum(get(l) * w for l, w in parts)

    keys: list[str] = []
    for l, _ in parts:
        for k in l.counters:
            if k not in keys:
                keys.append(k)
    counters = {k: wsum(lambda l, k=k: l.counters.get(k, 0.0)) for k in keys}
    start, end = round(wsum(lambda l: l.start_cycle)), round(wsum(lambda l: l.end_cycle))
    compute = round(wsum(lambda l: l.compute_cycles))
    block = first.block
    if block == "layers.1" and "layers.1-" in name:
        block = name.split(".")[0] + "." + name.split(".")[1]
    return dataclasses.replace(
        first, index=index, name=f"serving:{name}", block=block, start_cycle=start, end_cycle=end,
        compute_cycles=compute, stall_cycles=max(0, end - start - compute),
        stall_memory_cycles=round(wsum(lambda l: l.stall_memory_cycles)),
        stall_dependency_cycles=round(wsum(lambda l: l.stall_dependency_cycles)),
        stall_busy_cycles=round(wsum(lambda l: l.stall_busy_cycles)),
        macs=round(wsum(lambda l: l.macs)), vector_ops=round(wsum(lambda l: l.vector_ops)),
        folds=round(wsum(lambda l: l.folds)), utilization=first.utilization,
        latency_s=wsum(lambda l: l.latency_s), counters=counters)
