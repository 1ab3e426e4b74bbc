"""The one path, as functions: experiment -> mapper passes -> program -> engine -> result.

Python users call ``simulate(graph, arch)`` with objects they built, or ``run_experiment(path)``;
the CLI and the sweep runner call the same functions.
"""

from __future__ import annotations

from pathlib import Path

from architectures.base import Architecture
from mappers.pipeline import MapperOptions, Pipeline
from simulator.engines import get_engine
from simulator.experiment import Experiment, load_experiment
from simulator.program import LoweredProgram
from simulator.result import SimResult
from workloads.graph import OpGraph

__all__ = ["simulate", "run_experiment", "lower_workload"]


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
    return get_engine(engine).run(program, experiment=name or graph.name, architecture=arch.name,
                                  workload=graph.name)


def run_experiment(experiment: Experiment | str | Path, *, engine: str | None = None) -> SimResult:
    """Run an experiment (object or YAML path); ``engine`` overrides the file's choice."""
    exp = experiment if isinstance(experiment, Experiment) else load_experiment(experiment)
    return simulate(exp.workload, exp.architecture, mapper=exp.mapper, engine=engine or exp.engine,
                    name=exp.name)
