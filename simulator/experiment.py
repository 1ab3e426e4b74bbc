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
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from architectures.base import Architecture
from architectures.presets import build_architecture
from architectures.system import SystemSpec
from mappers.pipeline import MapperOptions, template_option_problems
from simulator.dse.spec import SearchField, SweepField  # sweep:/search: sections (validated there)
from workloads.coe import CoESpec
from workloads.errors import ConfigError, Problem, Problems
from workloads.graph import OpGraph, PrecisionPolicy
from workloads.precision import Precision
from workloads.schema import FieldProblems, Schema, validate
from workloads.serving import ServingSpec
from workloads.yamlio import load_yaml, parse_yaml

if TYPE_CHECKING:  # imported lazily at run time (they import this module)
    from simulator.llm import LLMPlan
    from simulator.serving import ServingPlan

__all__ = ["Experiment", "ExperimentSpec", "WorkloadSpec", "load_experiment", "experiment_from_dict",
           "build_workload"]

ENGINE_NAMES = ("numba", "simpy", "analytical")


class PrecisionSpec(Schema):
    """Storage precision per tensor class (unset: the PE's precision)."""

    weights: Precision | None = None
    activations: Precision | None = None
    kv_cache: Precision | None = None
    group_size: int | None = Field(None, gt=0, description="quantization group size for weights")
    scale_bits: int = Field(16, ge=1, le=32, description="bits of each weight group's scale (with "
                            "group_size): a weight costs bits + scale_bits / group_size, e.g. BitMoD's "
                            "8-bit scales: int3 in groups of 128 = 3.0625 bits")

    @model_validator(mode="after")
    def _scales_need_groups(self) -> "PrecisionSpec":
        if self.scale_bits != 16 and not self.group_size:
            raise FieldProblems([("scale_bits", f"{self.scale_bits}-bit group scales need group_size "
                                                "(without groups the weights carry no scales)")])
        return self


class GemmSpec(Schema):
    """A single GEMM: (M x K) @ (K x N), ``groups`` times."""

    M: int = Field(gt=0, description="rows of the input matrix (output pixels / tokens)")
    K: int = Field(gt=0, description="reduction dimension")
    N: int = Field(gt=0, description="columns of the output (filters / features)")
    groups: int = Field(1, gt=0, description="independent GEMMs of this shape")


class WorkloadSpec(Schema):
    """The ``workload:`` section: exactly one source (``model``, ``config``, ``gemm``,
    ``scalesim_topology``, ``coe``)."""

    model: str | None = Field(None, description="a shipped model (see 'tessera list models')")
    config: str | None = Field(None, description="path to a Hugging-Face-style config.json (an LLM)")
    gemm: GemmSpec | None = Field(None, description="a single GEMM {M, K, N, groups}")
    scalesim_topology: str | None = Field(None, description="path to a SCALE-Sim topology CSV")
    scalesim_format: Literal["conv", "gemm"] = Field("conv", description="topology CSV format")
    batch: int | None = Field(None, gt=0, description="batch size (models)")
    image_size: int | None = Field(None, gt=0, description="input resolution (CNN models)")
    phase: Literal["prefill", "decode", "generate", "serving"] | None = Field(
        None, description="LLMs: prefill | decode | generate (prefill, then decode) | serving "
        "(continuous batching of the workload.serving section)")
    sequence: int | None = Field(None, gt=0, description="LLMs: prompt length (prefill) / tokens "
                                 "already in the KV cache at the first decode step (decode)")
    generate: int | None = Field(None, gt=0, description="LLMs: tokens to generate (decode, generate)")
    decode_steps: Literal["mean", "all"] = Field(
        "mean", description="LLMs: simulate the decode step at the mean context and scale by the "
        "number of steps (exact when a step's cost is affine in the context), or every step")
    expert_load: dict[str, Any] | None = Field(
        None, description="MoE routing: {distribution: uniform} | {distribution: zipf, alpha, seed} "
        "| {distribution: explicit, shares: [...]}")
    coe: CoESpec | None = Field(None, description="a composition-of-experts request stream "
                                "(workloads.coe): {experts, expert_model, requests, routing, seed, ...}")
    serving: ServingSpec | None = Field(None, description="an LLM served with continuous batching "
                                        "(simulator.serving): {model, arrival, requests, input_length, "
                                        "output_length, max_batch, kv_capacity, seed, ...}")
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
    system: SystemSpec | None = Field(None, description="several devices: devices, link, parallelism")
    workload: WorkloadSpec
    mapper: MapperOptions = MapperOptions()
    engine: Literal["numba", "simpy", "analytical"] = Field(
        "numba", description="numba (event-driven core, default) | simpy (its readable reference) | "
        "analytical (per-layer roofline)")
    outputs: OutputOptions = OutputOptions()
    # design-space exploration (simulator.dse): declared after the sections they refer to
    sweep: SweepField = Field(None, description="design points: grid / zip / random over dotted paths")
    search: SearchField = Field(None, description="optuna search: objectives, constraints, space, budget")


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
    llm: "LLMPlan | None" = None  # LLM phases to run (simulator.llm), None for one-graph workloads
    serving: "ServingPlan | None" = None  # a continuous-batching run (simulator.serving)
    system: SystemSpec | None = None  # several devices (architectures.system)

    def resolved_config(self) -> dict[str, Any]:
        """The experiment with every default filled in: loading it again gives the same run."""
        arch = {"template": self.architecture.template, **self.architecture.model_dump(mode="python")}
        out = {"name": self.name, "description": self.description, "architecture": arch}
        if self.system is not None:
            out["system"] = self.system.model_dump(mode="python", exclude_none=True)
        return {**out, "workload": self.workload_spec, "mapper": self.mapper.model_dump(),
                "engine": self.engine, "outputs": self.outputs.model_dump()}


LLM_FIELDS = ("phase", "sequence", "generate", "expert_load")


def build_workload(spec: WorkloadSpec, arch: Architecture, *, file: str | None = None,
                   lines: dict | None = None,
                   system: SystemSpec | None = None) -> tuple[OpGraph, dict, "LLMPlan | None"]:
    """The ``OpGraph`` a workload section describes, the section with defaults filled in, and
    for LLMs the phases to run."""
    from workloads.registry import MODELS, model_names

    probs = Problems(file, lines)
    sources = [k for k in ("model", "config", "gemm", "scalesim_topology", "coe", "serving")
               if getattr(spec, k) is not None]
    if len(sources) != 1:
        probs.add("workload", "give exactly one of 'model', 'config', 'gemm', 'scalesim_topology', 'coe', "
                  "'serving'" + (f"; found {', '.join(sources)}" if sources else ""))
        probs.raise_if_any()
    if spec.serving is not None or spec.phase == "serving":
        return _build_serving(spec, arch, file, lines, system)
    if spec.coe is not None and spec.batch is not None:
        probs.add(("workload", "batch"), "a CoE stream sets its requests' batch as workload.coe.batch")
    model_names()
    is_llm = spec.config is not None or (spec.model in MODELS and MODELS[spec.model].family in ("llm", "encoder"))
    if not is_llm:
        for key in LLM_FIELDS:
            if getattr(spec, key) is not None:
                probs.add(("workload", key), f"applies to LLM workloads only ('model' of family llm, or "
                          f"'config'); this workload is {sources[0]} {getattr(spec, sources[0])!r}")
    elif spec.image_size is not None:
        probs.add(("workload", "image_size"), "applies to CNN models only")
    if system is not None and system.devices > 1 and not is_llm:
        probs.add(("system", "devices"), "multi-device systems split LLMs (tensor, pipeline, expert "
                  "parallelism); this workload is not an LLM")
    probs.raise_if_any()
    pe = getattr(arch, "pe", None)
    default = pe.precision if pe is not None else "fp16"
    prec = spec.precision
    policy = PrecisionPolicy(weights=prec.weights or getattr(pe, "default_weights", default),
                             activations=prec.activations or default,
                             kv_cache=prec.kv_cache, group_size=prec.group_size,
                             scale_bits=prec.scale_bits)
    if pe is not None:
        _check_pe_precisions(pe, policy, probs)
    probs.raise_if_any()
    resolved: dict[str, Any] = {"precision": {"weights": policy.weights, "activations": policy.activations,
                                              "kv_cache": policy.kv_cache, "group_size": policy.group_size,
                                              "scale_bits": policy.scale_bits}}
    graph, resolved, llm = _build_graph(spec, arch, policy, resolved, is_llm, file, probs, system)
    if pe is not None and hasattr(pe, "problems"):
        _check_pe_precisions(pe, policy, probs, graph)
        _check_pe_groups(pe, graph, policy, probs)
        probs.raise_if_any()
    return graph, resolved, llm


def _check_pe_precisions(pe, policy: PrecisionPolicy, probs: Problems, graph: OpGraph | None = None) -> None:
    """Operand pairs the architecture's PE must run. PE kinds of architectures.pe check pairs:
    before the graph is built, (weights, activations); after, every matrix op's (second operand,
    first operand), e.g. attention's (KV cache, activations). Other templates' PEs check each
    precision."""
    if not hasattr(pe, "problems"):
        if graph is None:
            for cls in ("weights", "activations"):
                p = getattr(policy, cls)
                if not pe.supports(p):
                    probs.add(("workload", "precision", cls),
                              f"{p} cannot run on the architecture's {pe.precision} PE "
                              f"(set workload.precision.{cls} or the preset's pe.precision)")
        return
    if graph is None:
        pairs = {("weights", policy.weights, policy.activations): None}
    else:
        from workloads.ops import MatMul

        pairs = {}
        for op in graph.ops():
            if not op.is_matrix:
                continue
            second = op.inputs[1] if isinstance(op, MatMul) else op.weights[0]
            cls = {"weight": "weights", "kv_cache": "kv_cache"}.get(second.role, "activations")
            pairs.setdefault((cls, second.precision, op.inputs[0].precision), op.name)
    seen = set()
    for (cls, w, a), where in pairs.items():
        for msg in pe.problems(w, a, operand={"kv_cache": "KV cache"}.get(cls, cls)):
            if msg in seen:
                continue
            seen.add(msg)
            key = "activations" if msg.startswith(f"{a} activations") else cls
            at = f" in '{where}'" if where else ""
            probs.add(("workload", "precision", key),
                      f"{msg}{at} (architecture pe.kind '{pe.kind}'; set workload.precision.{key} or "
                      f"choose another PE)")


def _check_pe_groups(pe, graph: OpGraph, policy: PrecisionPolicy, probs: Problems) -> None:
    """Group-quantized weights on the PE: a kind without per-group scales refuses them, one that
    dequantizes once per group needs groups that tile every reduction dimension
    (``architectures.pe`` ``group_problems``)."""
    g = policy.group_size
    if not g or not hasattr(pe, "group_problems"):
        return
    reductions: dict[int, str] = {}
    for op in graph.ops():
        if op.is_matrix and op.weights and op.weights[0].group_size:
            reductions.setdefault(op.gemm().K, op.name)
    for msg in pe.group_problems(g, reductions):
        probs.add(("workload", "precision", "group_size"), msg)


def _build_graph(spec: WorkloadSpec, arch: Architecture, policy: PrecisionPolicy, resolved: dict,
                 is_llm: bool, file: str | None, probs: Problems,
                 system: SystemSpec | None) -> tuple[OpGraph, dict, "LLMPlan | None"]:
    from workloads.registry import build_model

    try:
        if is_llm:
            return _build_llm(spec, policy, resolved, file, probs, system)
        if spec.model is not None:
            opts: dict[str, Any] = {"precision": policy}
            if spec.batch is not None:
                opts["batch"] = spec.batch
            if spec.image_size is not None:
                opts["image_size"] = spec.image_size
            graph = build_model(spec.model, **opts)
            resolved = {"model": spec.model, **{k: graph.meta[k] for k in ("batch", "image_size")
                                                 if k in graph.meta}, **resolved}
        elif spec.coe is not None:
            from simulator.coe import build_coe_workload

            graph = build_coe_workload(spec.coe, arch, policy)
            resolved = {"coe": spec.coe.model_dump(), **resolved}
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
    return graph, resolved, None


def _build_serving(spec: WorkloadSpec, arch: Architecture, file: str | None, lines: dict | None,
                   system: SystemSpec | None) -> tuple[OpGraph, dict, "ServingPlan"]:
    """A continuous-batching run (simulator.serving): phase 'serving' with a serving section."""
    from simulator.serving import build_serving_workload

    probs = Problems(file, lines)
    if spec.serving is None:
        probs.add(("workload", "phase"), "phase 'serving' needs a workload.serving section "
                  "{model, arrival, requests, input_length, output_length, ...}")
    elif spec.phase not in (None, "serving"):
        probs.add(("workload", "phase"), f"a workload.serving section runs phase 'serving', found {spec.phase!r}")
    for key in ("batch", "sequence", "generate", "image_size"):
        if getattr(spec, key) is not None:
            probs.add(("workload", key), "not used by serving: requests set their lengths "
                      "(workload.serving.input_length / output_length), max_batch the batch")
    probs.raise_if_any()
    prec = spec.precision
    pe = getattr(arch, "pe", None)
    default = pe.precision if pe is not None else "fp16"
    policy = PrecisionPolicy(weights=prec.weights or getattr(pe, "default_weights", default),
                             activations=prec.activations or default,
                             kv_cache=prec.kv_cache, group_size=prec.group_size,
                             scale_bits=prec.scale_bits)
    if pe is not None and not hasattr(pe, "problems"):  # PE kinds with pairs: on the graph below
        _check_pe_precisions(pe, policy, probs)
        probs.raise_if_any()
    try:
        graph, resolved, plan = build_serving_workload(spec.serving, arch, policy, system, file=file,
                                                       expert_load=spec.expert_load)
    except ConfigError as exc:
        raise ConfigError([Problem(p.file or file, p.path, p.message,
                                   p.line if p.file and p.line else probs.line_of(tuple(p.path.split("."))), p.hint)
                           for p in exc.problems]) from None
    if pe is not None and hasattr(pe, "problems"):
        # the PE's operand pairs and quantization groups, on an iteration with every operator
        # kind: prompt tokens and a decoding sequence (prefill and decode attention), one layer
        from workloads.serving import IterationShape

        n = plan.requests[0].input_tokens
        mixed = plan.iteration_graph(IterationShape(n, n, 1, n), layers=1)
        _check_pe_precisions(pe, policy, probs, mixed)
        _check_pe_groups(pe, mixed, policy, probs)
        probs.raise_if_any()
    resolved = {**resolved, **({"expert_load": spec.expert_load} if spec.expert_load is not None else {}),
                "precision": {"weights": policy.weights, "activations": policy.activations,
                              "kv_cache": policy.kv_cache, "group_size": policy.group_size,
                              "scale_bits": policy.scale_bits}}
    return graph, resolved, plan


def _build_llm(spec: WorkloadSpec, policy: PrecisionPolicy, resolved: dict, file: str | None,
               probs: Problems, system: SystemSpec | None = None) -> tuple[OpGraph, dict, "LLMPlan"]:
    """Prefill/decode phases of an LLM (shipped model or a user's config.json)."""
    from simulator.llm import LLMPlan
    from workloads.registry import MODELS

    phase = spec.phase or "prefill"
    batch = spec.batch or 1
    sequence = spec.sequence or 512
    generate = spec.generate if spec.generate is not None else (128 if phase != "prefill" else 0)
    if phase == "prefill" and spec.generate is not None:
        probs.add(("workload", "generate"), "phase 'prefill' generates no tokens; use phase: generate")
    if spec.config is not None:
        path = Path(spec.config)
        if file and not path.is_absolute() and not path.exists():
            path = Path(file).parent / path
        from workloads.llm import build_llm_from_file

        def build(**kw):
            return build_llm_from_file(str(path), **kw)
        source = {"config": str(path)}
    else:
        family = MODELS[spec.model].family
        if family == "encoder" and phase != "prefill":
            probs.add(("workload", "phase"), f"'{spec.model}' is an encoder: only phase 'prefill'")
        builder = MODELS[spec.model].builder

        def build(**kw):
            if family == "encoder":
                kw.pop("context", None)
                kw.pop("expert_load", None)
            return builder(**kw)
        source = {"model": spec.model}
    probs.raise_if_any()
    options = {"batch": batch, "sequence": sequence, "precision": policy}
    if spec.expert_load is not None:
        options["expert_load"] = spec.expert_load
    if system is not None and system.devices > 1:
        options["parallelism"] = system.parallelism.model_dump()
    link = system.link.model_dump() if system is not None and system.link is not None else None

    def build_phase(*, phase: str, context: int | None) -> OpGraph:
        g = build(phase=phase, context=context, **options) if phase == "decode" else \
            build(phase=phase, **options)
        if link:
            g.meta["link"] = link
        return g

    from workloads.llm_parallel import Parallelism

    plan = LLMPlan(phase=phase, batch=batch, sequence=sequence, generate=generate,
                   decode_steps=spec.decode_steps, build=build_phase,
                   parallelism=Parallelism(**options.get("parallelism", {})))
    # the graph users inspect (validated now, so bad options fail at load): the first one run
    graph = plan.prefill_graph() if phase != "decode" else plan.decode_graph(sequence)
    resolved = {**source, "phase": phase, "batch": batch, "sequence": sequence,
                **({"generate": generate} if phase != "prefill" else {}),
                **({"decode_steps": spec.decode_steps} if phase != "prefill" else {}),
                **({"expert_load": spec.expert_load} if spec.expert_load is not None else {}),
                **resolved}
    return graph, resolved, plan


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
    graph, resolved, llm = None, {}, None
    workload = spec.workload if spec is not None else None
    raw_workload = data.get("workload") if isinstance(data, dict) else None
    if workload is None and isinstance(raw_workload, dict) and \
            not any(p.path.startswith("workload") for p in problems):
        try:
            workload = validate(WorkloadSpec, raw_workload, file=file, prefix=("workload",), lines=lines)
        except ConfigError as exc:
            problems.extend(exc.problems)
    # the system section on its own (when another section failed the whole file's validation):
    # the workload's checks (KV-cache capacity, parallelism) depend on it; a system section
    # with problems of its own is not trusted, and the workload is not built against it
    system, system_ok = (spec.system if spec is not None else None), True
    raw_system = data.get("system") if isinstance(data, dict) else None
    if spec is None and raw_system is not None:
        if any(p.path.startswith("system") for p in problems):
            system_ok = False
        else:
            try:
                system = validate(SystemSpec, raw_system, file=file, prefix=("system",), lines=lines)
            except ConfigError:
                system_ok = False  # reported by the whole file's validation
    if workload is not None and arch is not None and system_ok:
        try:
            graph, resolved, llm = build_workload(workload, arch, file=file, lines=lines, system=system)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if not problems and spec is not None and spec.mapper.placement_overrides:
        problems.extend(_override_problems(spec.mapper, arch, graph, llm, file, lines))
    # mapper options this template would silently ignore (the section on its own when another
    # section failed the whole file's validation)
    mapper = spec.mapper if spec is not None else None
    raw_mapper = data.get("mapper") if isinstance(data, dict) else None
    if mapper is None and isinstance(raw_mapper, dict) and not any(p.path.startswith("mapper") for p in problems):
        try:
            mapper = validate(MapperOptions, raw_mapper, file=file, prefix=("mapper",), lines=lines)
        except ConfigError:
            pass  # reported by the whole file's validation
    if mapper is not None and arch is not None:
        probs = Problems(file, lines)
        for option, message in template_option_problems(mapper, arch):
            probs.add(("mapper", option), message)
        problems.extend(probs.items)
    if problems:
        raise ConfigError(problems)
    assert spec is not None and arch is not None and graph is not None
    from simulator.serving import ServingPlan

    serving = llm if isinstance(llm, ServingPlan) else None
    return Experiment(name=spec.name, architecture=arch, workload=graph, mapper=spec.mapper,
                      engine=spec.engine, outputs=spec.outputs, description=spec.description,
                      source=file, workload_spec=resolved, llm=None if serving else llm, serving=serving,
                      system=spec.system)


def _override_problems(mapper: MapperOptions, arch: Architecture, graph: OpGraph, plan: Any,
                       file: str | None, lines: dict) -> list[Problem]:
    """``mapper.placement_overrides`` patterns that match no operator of the run (every layer;
    for serving, the operators of iterations with prompt tokens and decoding sequences), and
    ``pim`` overrides on an architecture without PIM."""
    from mappers.opb_placement import override_problems
    from simulator.serving import ServingPlan

    names = [op.name for op in graph.ops()]
    if isinstance(plan, ServingPlan):  # a mixed iteration's operators, every layer (dense or MoE)
        from workloads.serving import IterationShape

        n = plan.requests[0].input_tokens
        names += [op.name for op in plan.iteration_graph(IterationShape(n, n, 1, n)).ops()]
    probs = Problems(file, lines)
    for pattern, message, hint in override_problems(mapper, names, arch):
        probs.add(("mapper", "placement_overrides", pattern), message, hint=hint)
    return probs.items


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment YAML (see the module docstring)."""
    data, lines = load_yaml(path)
    return experiment_from_dict(data, file=str(path), lines=lines)


def parse_experiment(text: str, file: str = "<string>") -> Experiment:
    data, lines = parse_yaml(text, file)
    return experiment_from_dict(data, file=file, lines=lines)
