"""Graph outputs, looking through views: what a schedule must write off chip once.

Contract: a tensor leaves the graph (a graph output: its write is compulsory traffic in the
COSMA split) when it, or a view of it, has no consumer that reads it. A view (a ``reshape`` op)
moves no data and aliases its first input: the view reads that tensor, and a reader of the view
reads it too. A view's other inputs are ordering only, not reads: decode attention's
``attn.kv_append`` joins the queries with the step's new keys and values so that QK^T waits for
them, and reads only the queries. So the new K/V rows, read by the ``attn.k_store`` /
``attn.v_store`` views that nothing reads (``workloads.llm``), are graph outputs (the KV-cache
write) whoever else reads them; a view chain that ends the graph makes the tensor it aliases an
output; a tensor nothing reads at all is an output (as before views existed).

``output_tensors`` names the tensors that hold the outputs' data (a view resolves to the tensor
it aliases; a graph input may appear when a view of it ends the graph: no operator writes it);
``output_writers`` names the operators that write them: the producer, or the operator it is
fused into (``Placement.fused_into``: a fused op's output is its root's). Every place that needs
graph outputs (the residency model in ``mappers.memory``, the planners' compulsory split via the
``plan`` pass's context) uses these two, so they agree.
"""

from __future__ import annotations

from mappers.annotations import Placement
from workloads.graph import OpGraph
from workloads.ops import Op

__all__ = ["is_view", "output_tensors", "output_writers"]


def is_view(op: Op) -> bool:
    """A view moves no data: its output aliases its first input (``workloads.ops.Reshape``)."""
    return op.kind == "reshape"


def output_tensors(graph: OpGraph) -> frozenset[str]:
    """The tensors (by name, resolved through views) that are graph outputs; see the module
    docstring for the rule."""
    alias: dict[str, str] = {}  # a view's output -> the tensor holding its data
    read: set[str] = set()  # tensors (view outputs included) some consumer reads
    produced: list[str] = []
    for op in graph.ops():
        produced.append(op.output.name)
        if is_view(op):
            first = op.inputs[0].name
            alias[op.output.name] = alias.get(first, first)
            read.add(first)  # the view reads (aliases) its first input only
        else:
            read.update(t.name for t in op.inputs)
    return frozenset(alias.get(t, t) for t in produced if t not in read)


def output_writers(graph: OpGraph) -> frozenset[str]:
    """The operators that write a graph output off chip: each output tensor's producer (never a
    view), or the operator it is fused into when placement fused it."""
    outputs = output_tensors(graph)
    writers = set()
    for op in graph.ops():
        if is_view(op) or op.output.name not in outputs:
            continue
        placement = graph.get(op.name, Placement, None)
        writers.add(placement.fused_into if placement is not None and placement.fused_into else op.name)
    return frozenset(writers)
