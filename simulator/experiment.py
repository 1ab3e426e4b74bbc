"""The experiment file: YAML -> validated ``Experiment`` (architecture + workload + options).

Contract: ``load_experiment(path)`` reads and validates everything before anything runs and
raises one ``ConfigError`` listing every problem in every section (file, line, key path,
expected, found, did-you-mean). ``Experiment.resolved_config()`` is the experiment with every
default filled in; written beside the results, it loads back as an experiment that gives the
same result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from architectures.base import Architecture
from architectures.presets import build_architecture
from mappers.pipeline import MapperOptions
from workloads.errors import ConfigError, Problem, Problems
from workloads.graph import OpGraph, PrecisionPolicy
from workloads.precision import Precision
from workloads.schema import Schema, validate
from workloads.yamlio import load_yaml, parse_yaml

__all__ = ["Experiment", "ExperimentSpec", "WorkloadSpec", "load_experiment", "experiment_from_dict",
           "build_workload"]

ENGINE_NAMES = ("numba", "simpy", "analytical")


class PrecisionSpec(Schema):
    """Storage precision per tensor class (unset: the PE's precision)."""

    weights: Precision | None = None
    activations: Precision | None = None
    kv_cache: Precision | None = None
    group_size: int | None = Field(None, gt=0, description="quantization group size for weights")


class GemmSpec(Schema):
    """A single GEMM: (M x K) @ (K x N), ``groups`` times."""

    M: int = Field(gt=0, description="rows of the input matrix (output pixels / tokens)")
    K: int = Field(gt=0, description="reduction dimension")
    N: int = Field(gt=0, description="columns of the output (filters / features)")
    groups: int = Field(1, gt=0, description="independent GEMMs of this shape")


class WorkloadSpec(Schema):
    """The ``workload:`` section: exactly one source (``model``, ``gemm``, ``scalesim_topology``)."""

    model: str | None = Field(None, description="a shipped model (see 'tessera list models')")
    gemm: GemmSpec | None = Field(None, description="a single GEMM {M, K, N, groups}")
    scalesim_topology: str | None = Field(None, description="path to a SCALE-Sim topology CSV")
    scalesim_format: Literal["conv", "gemm"] = Field("conv", description="topology CSV format")
    batch: int | None = Field(None, gt=0, description="batch size (models)")
    image_size: int | None = Field(None, gt=0, description="input resolution (CNN models)")
    precision: PrecisionSpec = Field(PrecisionSpec(), description="storage precisions")


class OutputOptions(Schema):
    trace: bool = Field(False, description="write trace.json (Chrome trace format, opens in Perfetto)")
    plots: bool = Field(False, description="write PNG plots")


class ExperimentSpec(Schema):
    """The experiment file's top level."""

    name: str = Field(description="experiment name (names the output folder)")
    description: str = ""
    architecture: dict[str, Any] | str = Field(description="preset: NAME | template: NAME + fields; "
                                                "overrides: {dotted.path: value}")
    workload: WorkloadSpec
    mapper: MapperOptions = MapperOptions()
    engine: Literal["numba", "simpy", "analytical"] = Field(
        "numba", description="numba (event-driven core, default) | simpy (its readable reference) | "
        "analytical (per-layer roofline)")
    outputs: OutputOptions = OutputOptions()


@dataclass(frozen=True)
class Experiment:
    """A validated experiment, ready to run."""

    name: str
    architecture: Architecture
    workload: OpGraph
    mapper: MapperOptions
    engine: str
    outputs: OutputOptions
    description: str = ""
    source: str | None = None  # the YAML file it came from
    workload_spec: dict = field(default_factory=dict)

    def resolved_config(self) -> dict[str, Any]:
        arch = {"template": self.architecture.template, **self.architecture.model_dump(mode="python")}
        return {"name": self.name, "description": self.description, "architecture": arch,
                "workload": self.workload_spec, "mapper": self.mapper.model_dump(),
                "engine": self.engine, "outputs": self.outputs.model_dump()}


def build_workload(spec: WorkloadSpec, arch: Architecture, *, file: str | None = None,
                   lines: dict | None = None) -> tuple[OpGraph, dict]:
    """The ``OpGraph`` a workload section describes, and the section with defaults filled in."""
    from workloads.registry import build_model

    probs = Problems(file, lines)
    sources = [k for k in ("model", "gemm", "scalesim_topology") if getattr(spec, k) is not None]
    if len(sources) != 1:
        probs.add("workload", "give exactly one of 'model', 'gemm', 'scalesim_topology'"
                  + (f"; found {', '.join(sources)}" if sources else ""))
        probs.raise_if_any()
    pe = getattr(arch, "pe", None)
    default = pe.precision if pe is not None else "fp16"
    prec = spec.precision
    policy = PrecisionPolicy(weights=prec.weights or default, activations=prec.activations or default,
                             kv_cache=prec.kv_cache, group_size=prec.group_size)
    if pe is not None:
        for cls in ("weights", "activations"):
            p = getattr(policy, cls)
            if not pe.supports(p):
                probs.add(("workload", "precision", cls),
                          f"{p} cannot run on the architecture's {pe.precision} PE "
                          f"(set workload.precision.{cls} or the preset's pe.precision)")
    probs.raise_if_any()
    resolved: dict[str, Any] = {"precision": {"weights": policy.weights, "activations": policy.activations,
                                              "kv_cache": policy.kv_cache, "group_size": policy.group_size}}
    try:
        if spec.model is not None:
            opts: dict[str, Any] = {"precision": policy}
            if spec.batch is not None:
                opts["batch"] = spec.batch
            if spec.image_size is not None:
                opts["image_size"] = spec.image_size
            graph = build_model(spec.model, **opts)
            resolved = {"model": spec.model, **{k: graph.meta[k] for k in ("batch", "image_size")
                                                 if k in graph.meta}, **resolved}
        elif spec.gemm is not None:
            from workloads.gemm import gemm_graph

            graph = gemm_graph(**spec.gemm.model_dump(), precision=policy)
            resolved = {"gemm": spec.gemm.model_dump(), **resolved}
        else:
            from workloads.scalesim import load_topology

            path = Path(spec.scalesim_topology)
            if file and not path.is_absolute() and not path.exists():
                path = Path(file).parent / path
            graph = load_topology(path, fmt=spec.scalesim_format, precision=policy)
            resolved = {"scalesim_topology": str(path), "scalesim_format": spec.scalesim_format, **resolved}
    except ConfigError as exc:
        # attribute builder problems without a file to the experiment's workload section
        raise ConfigError([Problem(p.file or file, p.path, p.message,
                                   p.line if p.file else probs.line_of(tuple(p.path.split("."))), p.hint)
                           for p in exc.problems]) from None
    except ValueError as exc:
        probs.add("workload", str(exc))
        probs.raise_if_any()
    return graph, resolved


def experiment_from_dict(data: Any, *, file: str | None = None, lines: dict | None = None) -> Experiment:
    """Validate an experiment given as plain data (as read from YAML)."""
    lines = lines or {}
    problems: list[Problem] = []
    spec = None
    try:
        spec = validate(ExperimentSpec, data, file=file, lines=lines)
    except ConfigError as exc:
        problems.extend(exc.problems)
    arch = None
    raw_arch = data.get("architecture") if isinstance(data, dict) else None
    if raw_arch is not None and (spec is not None or not any(p.path.startswith("architecture")
                                                             for p in problems)):
        try:
            arch = build_architecture(raw_arch, file=file, lines=lines)
        except ConfigError as exc:
            problems.extend(exc.problems)
    graph, resolved = None, {}
    workload = spec.workload if spec is not None else None
    raw_workload = data.get("workload") if isinstance(data, dict) else None
    if workload is None and isinstance(raw_workload, dict) and \
            not any(p.path.startswith("workload") for p in problems):
        try:
            workload = validate(WorkloadSpec, raw_workload, file=file, prefix=("workload",), lines=lines)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if workload is not None and arch is not None:
        try:
            graph, resolved = build_workload(workload, arch, file=file, lines=lines)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    assert spec is not None and arch is not None and graph is not None
    return Experiment(name=spec.name, architecture=arch, workload=graph, mapper=spec.mapper,
                      engine=spec.engine, outputs=spec.outputs, description=spec.description,
                      source=file, workload_spec=resolved)


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment YAML (see the module docstring)."""
    data, lines = load_yaml(path)
    return experiment_from_dict(data, file=str(path), lines=lines)


def parse_experiment(text: str, file: str = "<string>") -> Experiment:
    data, lines = parse_yaml(text, file)
    return experiment_from_dict(data, file=file, lines=lines)
