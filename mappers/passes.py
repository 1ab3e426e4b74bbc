"""Placement and fusion passes (template-independent). The pipeline: place -> fuse ->
place_tensors -> allocate (``mappers.memory``) -> plan (``mappers.plan``), then lowering."""

from __future__ import annotations


from mappers.annotations import Placement
from mappers.pipeline import MapperOptions, mapper_pass
from workloads.graph import OpGraph

__all__ = ["place", "fuse", "FUSIBLE"]


@mapper_pass(name="place")
def place(graph: OpGraph, arch, options: MapperOptions) -> OpGraph:
    """Put matrix ops on the array, collectives on the links, other ops on the vector unit, views
    nowhere."""
    g = graph.copy()
    for op in g.ops():
        if op.kind == "reshape":
            unit = "none"
        elif op.kind == "collective":
            unit = "link"
        else:
            unit = "array" if op.is_matrix else "vector"
        g.annotate(op.name, Placement(unit))
    return g


FUSIBLE = ("elementwise", "norm")


@mapper_pass(name="fuse", requires=("place",))
def fuse(graph: OpGraph, arch, options: MapperOptions) -> OpGraph:
    """Fuse single-input element-wise ops and norms into the op they directly follow.

    Into a matrix op: applied in the array's output stage (no extra cycles: the activation unit
    keeps pace with the array). Into a vector op: one pass over the data instead of two (the
    ops still cost vector-unit cycles, but no DRAM round trip).
    """
    g = graph.copy()
    if not options.fuse_activations:
        return g
    for op in g.ops():
        if op.kind not in FUSIBLE or len(op.inputs) != 1:
            continue
        producer = g.producer(op.inputs[0].name)
        if producer is None:
            continue
        target = g.get(producer, Placement)
        root = target.fused_into or producer
        if g.get(root, Placement).unit not in ("array", "vector"):
            continue
        if g.nx.out_degree(producer) != 1:  # someone else reads the pre-activation value
            continue
        g.annotate(op.name, Placement("fused", fused_into=root))
    return g
