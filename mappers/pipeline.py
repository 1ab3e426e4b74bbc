"""Mapper passes and the pipeline that runs them.

Contract: a pass is a named function ``(graph, arch, options) -> graph`` registered with
``@mapper_pass(name=..., requires=(...))``. It returns a new ``OpGraph`` with its typed
annotations added and never mutates its input. ``Pipeline.run`` checks each pass's
``requires`` against the passes already run and, with ``lint=True`` (tests), checks the graph
after every pass; a failure names the pass. The last step, ``lower``, turns the annotated graph
into a ``LoweredProgram``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from workloads.errors import ConfigError, Problem, did_you_mean
from workloads.graph import OpGraph
from workloads.schema import Schema

__all__ = ["MapperOptions", "MappingSearch", "MapperPass", "PASSES", "mapper_pass", "Pipeline", "DEFAULT_PASSES",
           "PassError", "TEMPLATE_OPTIONS", "option_templates", "template_option_problems"]


class MappingSearch(Schema):
    """Per-layer search over dataflow, fold loop order and blocking (the ``mapper.search`` section)."""

    budget: int = Field(64, gt=0, description="candidates evaluated per distinct layer shape")
    time_budget_s: float = Field(30.0, gt=0, description="wall-clock budget for the whole pass; "
                                 "layers after it keep the default mapping")
    seed: int = Field(0, description="sampling seed when a layer has more candidates than the budget")


class MapperOptions(Schema):
    """Options for the mapper passes (the experiment's ``mapper:`` section)."""

    dataflow: Literal["auto", "os", "ws", "is"] | None = Field(
        None, description="os | ws | is | auto (best per layer); unset: the architecture's dataflow "
        "(systolic_array, systolic_pim; other templates take only auto)")
    fidelity: Literal["layer", "tile"] = Field(
        "tile", description="layer: one load/compute/store per layer; tile: one per fold group")
    fuse_activations: bool = Field(
        True, description="apply single-input element-wise ops and norms that follow a matrix "
        "op in its output stage (as TPU/NVDLA activation units do) instead of as separate layers")
    onchip_residency: bool = Field(
        True, description="keep intermediate tensors in the on-chip scratchpad between layers "
        "when they fit (next-use eviction); false: every layer reads its inputs from and writes its "
        "output to off-chip memory, as SCALE-Sim assumes")
    tensor_placement: dict[Literal["weights", "kv_cache", "activations"], str] = Field(
        default_factory=dict, description="off-chip tier per tensor class (e.g. {weights: ddr}); "
        "unset classes go to the fastest tier with room")
    search: MappingSearch | None = Field(
        None, description="search each layer's mapping (dataflow unless fixed, loop order, "
        "blocking) under a budget; results are cached by layer shape (systolic_array, "
        "systolic_pim; other templates reject it at load)")
    attention: Literal["unfused", "fused"] = Field(
        "unfused", description="unfused: QK^T, softmax and AV are separate kernels whose scores go "
        "through memory; fused: FlashAttention-style, reading Q, K, V once and keeping the scores "
        "on chip")
    max_tiles_per_layer: int = Field(
        64, gt=0, description="tile fidelity: consecutive identical folds are coalesced so that a "
        "layer has at most this many compute tasks")
    max_tasks: int = Field(
        60_000, gt=0, description="tile fidelity: fewer tiles per layer when the whole program "
        "would otherwise exceed about this many tasks (big LLM graphs), so the event count stays "
        "bounded")
    spatial_fusion: bool = Field(
        True, description="rdu template: fuse each block's operators (a decoder layer) into one "
        "spatial pipeline whose intermediate tensors stay in PMUs; false: every operator is its "
        "own kernel through HBM")
    attention_mapping: Literal["fusemax", "flat"] = Field(
        "fusemax", description="fusemax template: fusemax (one pass over K/V, online softmax on "
        "the 2D array) | flat (QK and AV on the 2D array, softmax on the 1D array, fused by rows)")
    pim_placement: Literal["opb", "xpu", "pim"] = Field(
        "opb", description="templates with PIM (gpu_pim): opb: each matrix operator runs on the "
        "unit (xPU or PIM) whose roofline gives it the shorter time at its arithmetic intensity "
        "(mappers.opb_placement); xpu: nothing on PIM; pim: every matrix operator PIM can run")
    placement_overrides: dict[str, Literal["xpu", "pim"]] = Field(
        default_factory=dict, description="templates with PIM: {operator-name pattern: xpu | pim} "
        "(fnmatch, e.g. '*.attn.qk'); the first matching pattern wins over pim_placement")
    expert_coprocessing: bool = Field(
        False, description="templates with PIM: split each MoE layer's experts between the xPU and "
        "PIM, fewest-token experts to PIM, so that both finish together (Duplex's expert "
        "co-processing); false: each expert goes where its own arithmetic intensity sends it")


# Mapper options that only some templates' planners read: option -> the templates that honour it
# ("pim": every template with PIM, ``mappers.opb_placement``). On any other template a value other
# than the option's default would be silently ignored, so ``template_option_problems`` reports
# it (at load time, and from the ``plan`` pass for Python callers).
SYSTOLIC_PLANNER_TEMPLATES = ("systolic_array", "systolic_pim")  # mappers.plan.plan_systolic
TEMPLATE_OPTIONS: dict[str, tuple[str, ...] | str] = {
    "dataflow": SYSTOLIC_PLANNER_TEMPLATES,  # gpu: CTA tiles; rdu: best per PCU; fusemax: its cascade
    "search": SYSTOLIC_PLANNER_TEMPLATES,  # mappers.plan.search_mapping
    "spatial_fusion": ("rdu",),  # mappers.rdu_fusion
    "attention_mapping": ("fusemax",),  # mappers.attention_plan
    "pim_placement": "pim",  # mappers.opb_placement
    "expert_coprocessing": "pim",
}

_WHAT = {"search": "has no mapping search", "dataflow": "has no dataflow choice",
         "attention_mapping": "has no attention cascade mapping", "spatial_fusion": "has no spatial fusion",
         "pim_placement": "has no PIM", "expert_coprocessing": "has no PIM"}


def option_templates(option: str) -> tuple[str, ...]:
    """The templates whose planners read ``option`` (a key of ``TEMPLATE_OPTIONS``)."""
    honoured = TEMPLATE_OPTIONS[option]
    if honoured == "pim":
        from mappers.opb_placement import pim_templates

        return tuple(pim_templates())
    return tuple(honoured)


def template_option_problems(options: MapperOptions, arch) -> list[tuple[str, str]]:
    """(option, message) for each option of ``TEMPLATE_OPTIONS`` set to a value other than its
    default on an architecture whose template ignores it. Default values pass (a resolved config
    lists every option), so only what a user asked for and would not get is reported;
    ``dataflow: auto`` ("the best the template has") holds on every template."""
    template = arch.template
    out = []
    for option in TEMPLATE_OPTIONS:
        value = getattr(options, option)
        if value == MapperOptions.model_fields[option].default or (option, value) == ("dataflow", "auto"):
            continue
        templates = option_templates(option)
        if template in templates:
            continue
        shown = "a mapping search" if option == "search" else repr(value)
        out.append((option, f"{shown} has no effect on architecture '{arch.name}' (template '{template}', "
                    f"which {_WHAT[option]}); mapper.{option} is used by the templates "
                    f"{', '.join(templates)}: remove it, or pick an architecture of one of those"))
    return out


class PassError(RuntimeError):
    """A pass produced an ill-formed graph or ran without what it requires."""


@dataclass(frozen=True)
class MapperPass:
    name: str
    fn: Callable[..., OpGraph]
    requires: tuple[str, ...]
    doc: str


PASSES: dict[str, MapperPass] = {}


def mapper_pass(*, name: str, requires: tuple[str, ...] = ()):
    """Register a pass function under ``name``."""

    def deco(fn):
        if name in PASSES:
            raise ValueError(f"mapper pass '{name}' registered twice")
        PASSES[name] = MapperPass(name, fn, tuple(requires), (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return deco


DEFAULT_PASSES: tuple[str, ...] = ("place", "place_pim", "fuse", "place_tensors", "allocate", "plan")


def _load_builtin() -> None:
    from mappers import memory, passes, plan  # noqa: F401
    from mappers import gpu_plan  # noqa: F401  (the gpu template's planner and resources)
    from mappers import attention_plan, rdu_plan  # noqa: F401  (rdu and fusemax planners)
    from mappers import hetero_plan, opb_placement  # noqa: F401  (gpu_pim: place_pim pass, planner)


class Pipeline:
    """An ordered list of pass names, run over a graph for one architecture."""

    def __init__(self, passes: tuple[str, ...] | list[str] = DEFAULT_PASSES):
        _load_builtin()
        unknown = [p for p in passes if p not in PASSES]
        if unknown:
            raise ConfigError([Problem(None, "mapper.passes", f"unknown pass '{p}'",
                                       hint=did_you_mean(p, PASSES)) for p in unknown])
        self.passes = tuple(passes)

    def run(self, graph: OpGraph, arch, options: MapperOptions | None = None, *,
            lint: bool = False) -> OpGraph:
        options = options or MapperOptions()
        done: list[str] = []
        for name in self.passes:
            p = PASSES[name]
            missing = [r for r in p.requires if r not in done]
            if missing:
                raise PassError(f"pass '{name}' requires {missing} to run first (ran: {done or 'none'})")
            previous = done[-1] if done else "the start"
            graph = p.fn(graph, arch, options)
            if lint:
                problems = lint_graph(graph, done + [name])
                if problems:
                    raise PassError(f"pass '{name}' (after {previous}) left the graph ill-formed: "
                                    + "; ".join(problems))
            done.append(name)
        return graph

    def lower(self, graph: OpGraph, arch, options: MapperOptions | None = None, *, lint: bool = False):
        """Run the passes, then lower to a ``LoweredProgram``."""
        from mappers.lower import lower

        options = options or MapperOptions()
        return lower(self.run(graph, arch, options, lint=lint), arch, options)


def lint_graph(graph: OpGraph, done: list[str]) -> list[str]:
    """Structural checks after a pass: acyclic, shapes present, annotations the passes promise."""
    import networkx as nx

    from mappers.annotations import LinkPlan, OpPlan, Placement, Tiling

    out = []
    if not nx.is_directed_acyclic_graph(graph.nx):
        out.append("graph has a cycle")
    for op in graph.ops():
        if any(s <= 0 for s in op.output.shape):
            out.append(f"{op.name}: empty output shape {op.output.shape}")
        if "place" in done and not graph.has(op.name, Placement):
            out.append(f"{op.name}: not placed")
        runs = "place" in done and graph.get(op.name, Placement).unit not in ("none", "fused")
        if "plan" in done and runs and not (graph.has(op.name, OpPlan) or graph.has(op.name, LinkPlan)):
            out.append(f"{op.name}: not planned")
        if "plan" in done and runs and op.is_matrix and graph.get(op.name, Placement).unit == "array" \
                and not graph.has(op.name, Tiling):
            out.append(f"{op.name}: matrix op on the array without a Tiling")
    return out
