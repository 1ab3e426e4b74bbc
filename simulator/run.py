"""The one path, as functions: experiment -> mapper passes -> program -> engine -> result.

Python users call ``simulate(graph, arch)`` with objects they built, or ``run_experiment(path)``;
the CLI and the sweep runner call the same functions.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from architectures.base import Architecture
from mappers.pipeline import MapperOptions, Pipeline
from simulator.engines import get_engine
from simulator.experiment import Experiment, load_experiment
from simulator.program import LoweredProgram
from simulator.result import SimResult
from workloads.graph import OpGraph

__all__ = ["simulate", "run_experiment", "lower_workload", "design_metrics", "run_metrics"]


def lower_workload(graph: OpGraph, arch: Architecture, mapper: MapperOptions | None = None,
                   *, lint: bool = False) -> LoweredProgram:
    """Run the mapper passes and lower ``graph`` onto ``arch``."""
    program = Pipeline().lower(graph, arch, mapper or MapperOptions(), lint=lint)
    program.validate()
    return program


def simulate(graph: OpGraph, arch: Architecture, *, mapper: MapperOptions | dict | None = None,
             engine: str = "analytical", name: str = "") -> SimResult:
    """Simulate ``graph`` on ``arch`` with the named engine."""
    if isinstance(mapper, dict):
        mapper = MapperOptions(**mapper)
    program = lower_workload(graph, arch, mapper)
    result = get_engine(engine).run(program, experiment=name or graph.name, architecture=arch.name,
                                    workload=graph.name)
    return replace(result, extra={**result.extra, **design_metrics(arch)})


def design_metrics(arch: Architecture) -> dict[str, float]:
    """Metrics of the hardware, the same for any part of a run (``simulate`` adds them):
    ``area_mm2`` where the template has an area model, ``sram_bytes`` (on-chip SRAM capacity)."""
    from architectures.area import onchip_sram_bytes

    out: dict[str, float] = {}
    sram = onchip_sram_bytes(arch)
    if sram is not None:
        out["sram_bytes"] = sram
    area = getattr(arch, "area_mm2", None)
    if area is not None:
        out["area_mm2"] = float(area)
    return out


def run_metrics(result: SimResult, batch: int = 1) -> SimResult:
    """The result with the metrics of a whole run added (``run_experiment`` adds them; a key the
    result already has is kept): ``power_w`` (energy / latency: dynamic, no leakage),
    ``throughput_per_s`` (inferences per second: batch / latency) and ``throughput_per_mm2``."""
    latency = result.latency_s
    extra = {"power_w": result.energy_pj * 1e-12 / latency if latency > 0 else 0.0,
             "throughput_per_s": batch / latency if latency > 0 else 0.0}
    area = result.extra.get("area_mm2")
    if area is not None:
        extra["throughput_per_mm2"] = extra["throughput_per_s"] / area if 0 < area < float("inf") else 0.0
    return replace(result, extra={**extra, **result.extra})


def run_experiment(experiment: Experiment | str | Path, *, engine: str | None = None) -> SimResult:
    """Run an experiment (object or YAML path); ``engine`` overrides the file's choice."""
    exp = experiment if isinstance(experiment, Experiment) else load_experiment(experiment)
    engine = engine or exp.engine
    batch = int(exp.workload.meta.get("batch", 1))
    if exp.serving is not None:  # continuous batching (simulator.serving)
        from simulator.serving import run_serving

        return run_serving(exp, engine=engine)
    if exp.llm is not None:
        from simulator.llm import run_llm

        result = run_llm(exp.llm, lambda g: simulate(g, exp.architecture, mapper=exp.mapper,
                                                     engine=engine, name=exp.name), name=exp.name)
        return run_metrics(result, batch)
    return run_metrics(simulate(exp.workload, exp.architecture, mapper=exp.mapper, engine=engine,
                                name=exp.name), batch)
