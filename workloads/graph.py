"""``OpGraph``: the workload as a DAG of typed operators, on networkx.

Contract: nodes are operator names; an edge u -> v means v reads the tensor u writes (the edge's
``tensor`` attribute). Builder methods (``conv2d``, ``linear``, ``add``, ...) take input tensors
and return the output tensor, so models read like their papers. ``ops()`` is a deterministic
topological order (ties broken by insertion order). Mapper passes attach typed annotations per
operator (``annotate(name, Tiling(...))`` / ``get(name, Tiling)``), keyed by the annotation's
class, never by ad-hoc strings; ``copy()`` gives a new graph sharing the (immutable) operators.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import networkx as nx

from workloads.ops import (Conv2D, Elementwise, Embedding, GemmShape, Linear, MatMul, Norm, Op, Pool,
                           Reshape, Softmax, TensorSpec, TopK, _pair, conv_out)
from workloads.precision import DEFAULT_SCALE_BITS, PRECISIONS

__all__ = ["OpGraph", "PrecisionPolicy", "GraphError"]

A = TypeVar("A")


class GraphError(ValueError):
    """A graph that is not well formed (unknown tensor, duplicate name, cycle, bad shape)."""


def _nchw(name: str, x: TensorSpec) -> tuple[int, int, int, int]:
    if len(x.shape) != 4:
        raise GraphError(f"'{name}': expects an NCHW feature map, found shape {x.shape} of '{x.name}'")
    return x.shape  # type: ignore[return-value]


@dataclass(frozen=True)
class PrecisionPolicy:
    """Storage precision per tensor class, and the quantization group size for weights."""

    weights: str = "int8"
    activations: str = "int8"
    kv_cache: str | None = None  # defaults to activations
    group_size: int | None = None  # weights: one scale per group (quantized formats)
    scale_bits: int = DEFAULT_SCALE_BITS  # bits of each group's scale

    def __post_init__(self) -> None:
        for name in ("weights", "activations", "kv_cache"):
            value = getattr(self, name)
            if value is not None and value not in PRECISIONS:
                raise GraphError(f"precision.{name}: unknown precision {value!r}; "
                                 f"known: {', '.join(PRECISIONS)}")

    @property
    def kv(self) -> str:
        return self.kv_cache or self.activations

    def weight(self, name: str, shape: tuple[int, ...]) -> TensorSpec:
        """A weight tensor stored at this policy's weight precision and quantization."""
        return TensorSpec(name, tuple(shape), self.weights, "weight", self.group_size, self.scale_bits)


class OpGraph:
    """A workload graph. See the module docstring for the contract."""

    def __init__(self, name: str, precision: PrecisionPolicy | None = None,
                 meta: dict[str, Any] | None = None):
        self.name = name
        self.precision = precision or PrecisionPolicy()
        self.meta: dict[str, Any] = dict(meta or {})  # e.g. {"batch": 1, "model": "resnet50"}
        self.nx = nx.DiGraph()
        self._tensors: dict[str, TensorSpec] = {}
        self._producer: dict[str, str] = {}
        self._order: list[str] | None = None
        # annotations in layers (a copy adds one on top of its parent's, so copying is O(1)):
        # each layer maps (operator, annotation class) -> annotation
        self._ann_layers: list[dict[tuple[str, type], Any]] = [{}]
        self.graph_inputs: list[TensorSpec] = []

    # ---- construction ---------------------------------------------------------------------
    def input(self, name: str, shape: tuple[int, ...], precision: str | None = None) -> TensorSpec:
        """Declare a graph input (an activation that comes from outside, e.g. the image)."""
        if name in self._tensors:
            raise GraphError(f"tensor '{name}' already exists in graph '{self.name}'")
        if precision is not None and precision not in PRECISIONS:
            raise GraphError(f"input '{name}': unknown precision {precision!r}; "
                             f"known: {', '.join(PRECISIONS)}")
        self._own_structure()
        t = TensorSpec(name, tuple(int(s) for s in shape), precision or self.precision.activations)
        if any(s <= 0 for s in t.shape):
            raise GraphError(f"input '{name}': shape {t.shape} has a non-positive dimension")
        self._tensors[name] = t
        self.graph_inputs.append(t)
        return t

    def add(self, op: Op) -> TensorSpec:
        """Add an operator; its inputs must already exist. Returns its output tensor."""
        self._own_structure()
        if op.name in self.nx:
            raise GraphError(f"operator '{op.name}' already exists in graph '{self.name}'")
        for t in op.inputs:
            known = self._tensors.get(t.name)
            if known is None:
                raise GraphError(f"operator '{op.name}' reads unknown tensor '{t.name}'")
            if known != t:
                raise GraphError(f"operator '{op.name}' reads tensor '{t.name}' as {t.shape} "
                                 f"{t.precision}, but the graph's '{t.name}' is {known.shape} "
                                 f"{known.precision}")
        for t in (*op.weights, op.output):
            if t.name in self._tensors:
                raise GraphError(f"operator '{op.name}' writes tensor '{t.name}', which exists")
        if any(s <= 0 for s in op.output.shape):
            raise GraphError(f"operator '{op.name}': output shape {op.output.shape} is empty "
                             f"(input too small for the kernel/stride?)")
        self.nx.add_node(op.name, op=op, index=len(self.nx))
        for t in op.inputs:
            src = self._producer.get(t.name)
            if src is not None:
                self.nx.add_edge(src, op.name, tensor=t.name)
        for w in op.weights:
            self._tensors[w.name] = w
        self._tensors[op.output.name] = op.output
        self._producer[op.output.name] = op.name
        self._order = None
        return op.output

    def _weight(self, name: str, shape: tuple[int, ...]) -> TensorSpec:
        return self.precision.weight(name, shape)

    def _act(self, name: str, shape: tuple[int, ...]) -> TensorSpec:
        return TensorSpec(name, tuple(int(s) for s in shape), self.precision.activations)

    def conv2d(self, name: str, x: TensorSpec, out_channels: int, kernel: int | tuple[int, int],
               stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
               dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool = False,
               block: str | None = None) -> TensorSpec:
        b, c, h, w = _nchw(name, x)
        k, s, p, d = _pair(kernel), _pair(stride), _pair(padding), _pair(dilation)
        if groups < 1 or c % groups or out_channels % groups:
            raise GraphError(f"conv '{name}': channels {c}->{out_channels} not divisible by groups={groups}")
        oh, ow = conv_out(h, k[0], s[0], p[0], d[0]), conv_out(w, k[1], s[1], p[1], d[1])
        weights = [self._weight(f"{name}.weight", (out_channels, c // groups, k[0], k[1]))]
        if bias:
            weights.append(self._weight(f"{name}.bias", (out_channels,)))
        return self.add(Conv2D(name=name, inputs=(x,), weights=tuple(weights),
                               output=self._act(f"{name}.out", (b, out_channels, oh, ow)),
                               kernel=k, stride=s, padding=p, dilation=d, groups=groups, block=block))

    def linear(self, name: str, x: TensorSpec, out_features: int, bias: bool = True,
               block: str | None = None, phase: str | None = None) -> TensorSpec:
        *lead, k = x.shape
        tokens = 1
        for s in lead:
            tokens *= s
        weights = [self._weight(f"{name}.weight", (k, out_features))]
        if bias:
            weights.append(self._weight(f"{name}.bias", (out_features,)))
        return self.add(Linear(name=name, inputs=(x,), weights=tuple(weights),
                               output=self._act(f"{name}.out", (*lead, out_features)),
                               tokens=tokens, in_features=k, out_features=out_features,
                               block=block, phase=phase))

    def matmul(self, name: str, a: TensorSpec, b: TensorSpec, block: str | None = None,
               phase: str | None = None) -> TensorSpec:
        """(..., M, K) @ (..., K, N) over matching leading (batch) dims."""
        *ba, m, k = a.shape
        *bb, k2, n = b.shape
        if k != k2 or tuple(ba) != tuple(bb):
            raise GraphError(f"matmul '{name}': shapes {a.shape} and {b.shape} do not multiply")
        batch = 1
        for s in ba:
            batch *= s
        return self.add(MatMul(name=name, inputs=(a, b), output=self._act(f"{name}.out", (*ba, m, n)),
                               batch=batch, M=m, K=k, N=n, block=block, phase=phase))

    def pool(self, name: str, x: TensorSpec, mode: str, kernel: int | tuple[int, int],
             stride: int | tuple[int, int] | None = None, padding: int | tuple[int, int] = 0,
             block: str | None = None) -> TensorSpec:
        if mode not in ("max", "avg"):
            raise GraphError(f"pool '{name}': mode must be 'max' or 'avg', found {mode!r}")
        b, c, h, w = _nchw(name, x)
        k = _pair(kernel)
        s = _pair(stride if stride is not None else kernel)
        p = _pair(padding)
        oh, ow = conv_out(h, k[0], s[0], p[0], 1), conv_out(w, k[1], s[1], p[1], 1)
        return self.add(Pool(name=name, inputs=(x,), output=self._act(f"{name}.out", (b, c, oh, ow)),
                             mode=mode, kernel=k, stride=s, padding=p, block=block))

    def global_pool(self, name: str, x: TensorSpec, mode: str = "avg",
                    block: str | None = None) -> TensorSpec:
        return self.pool(name, x, mode, kernel=(x.shape[2], x.shape[3]), block=block)

    def elementwise(self, name: str, function: str, *xs: TensorSpec, ops_per_element: int = 1,
                    block: str | None = None, phase: str | None = None) -> TensorSpec:
        if not xs:
            raise GraphError(f"elementwise '{name}': needs at least one input")
        if ops_per_element < 1:
            raise GraphError(f"elementwise '{name}': ops_per_element must be >= 1, found {ops_per_element}")
        shape = xs[0].shape
        for x in xs[1:]:
            if x.shape != shape:
                raise GraphError(f"elementwise '{name}': shapes {shape} and {x.shape} differ")
        return self.add(Elementwise(name=name, inputs=tuple(xs), function=function,
                                    ops_per_element=ops_per_element,
                                    output=self._act(f"{name}.out", shape), block=block, phase=phase))

    def relu(self, name: str, x: TensorSpec, block: str | None = None) -> TensorSpec:
        return self.elementwise(name, "relu", x, block=block)

    def residual_add(self, name: str, a: TensorSpec, b: TensorSpec,
                     block: str | None = None) -> TensorSpec:
        return self.elementwise(name, "add", a, b, block=block)

    def softmax(self, name: str, x: TensorSpec, block: str | None = None,
                phase: str | None = None) -> TensorSpec:
        return self.add(Softmax(name=name, inputs=(x,), output=self._act(f"{name}.out", x.shape),
                                block=block, phase=phase))

    def norm(self, name: str, x: TensorSpec, mode: str = "layernorm", block: str | None = None,
             phase: str | None = None) -> TensorSpec:
        features = x.shape[1] if mode == "batchnorm" else x.shape[-1]
        weights = (self._weight(f"{name}.weight", (features,)),)
        if mode != "rmsnorm":
            weights += (self._weight(f"{name}.bias", (features,)),)
        return self.add(Norm(name=name, inputs=(x,), weights=weights, mode=mode,
                             output=self._act(f"{name}.out", x.shape), block=block, phase=phase))

    def flatten(self, name: str, x: TensorSpec, block: str | None = None) -> TensorSpec:
        b = x.shape[0]
        return self.add(Reshape(name=name, inputs=(x,), output=self._act(f"{name}.out", (b, x.numel // b)),
                                block=block))

    def embedding(self, name: str, ids: TensorSpec, num_embeddings: int, features: int,
                  block: str | None = None, phase: str | None = None) -> TensorSpec:
        """Gather one row of a (num_embeddings x features) table per id; output (*ids, features)."""
        if num_embeddings < 1 or features < 1:
            raise GraphError(f"embedding '{name}': table {num_embeddings} x {features} is empty")
        table = self._weight(f"{name}.weight", (num_embeddings, features))
        return self.add(Embedding(name=name, inputs=(ids,), weights=(table,),
                                  output=self._act(f"{name}.out", (*ids.shape, features)),
                                  block=block, phase=phase))

    def topk(self, name: str, x: TensorSpec, k: int, block: str | None = None,
             phase: str | None = None) -> TensorSpec:
        """The k largest scores along the last axis, softmax-normalized: output (..., k)."""
        n = x.shape[-1]
        if not 1 <= k <= n:
            raise GraphError(f"topk '{name}': k must be in 1..{n} (the last axis of {x.shape}), found {k}")
        return self.add(TopK(name=name, inputs=(x,), k=k, output=self._act(f"{name}.out", (*x.shape[:-1], k)),
                             block=block, phase=phase))

    def kv_cache_input(self, name: str, shape: tuple[int, ...]) -> TensorSpec:
        """Declare a graph input of class ``kv_cache`` (keys or values already in the cache), stored
        at the policy's KV-cache precision."""
        t = self.input(name, shape, self.precision.kv)
        t = TensorSpec(t.name, t.shape, t.precision, "kv_cache")
        self._tensors[name] = t
        self.graph_inputs[-1] = t
        return t

    # ---- reading ---------------------------------------------------------------------------
    def ops(self) -> list[Op]:
        """Operators in a deterministic topological order."""
        if self._order is None:
            idx = nx.get_node_attributes(self.nx, "index")
            try:
                self._order = list(nx.lexicographical_topological_sort(self.nx, key=lambda n: idx[n]))
            except nx.NetworkXUnfeasible:
                cycle = nx.find_cycle(self.nx)
                raise GraphError(f"graph '{self.name}' has a cycle: {cycle}") from None
        return [self.nx.nodes[n]["op"] for n in self._order]

    def op(self, name: str) -> Op:
        return self._node(name)["op"]

    def __len__(self) -> int:
        return self.nx.number_of_nodes()

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops())

    def __contains__(self, name: str) -> bool:
        return name in self.nx

    def tensor(self, name: str) -> TensorSpec:
        return self._tensors[name]

    def producer(self, tensor: str) -> str | None:
        return self._producer.get(tensor)

    def predecessors(self, name: str) -> list[str]:
        return list(self.nx.predecessors(name))

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops())

    @property
    def params(self) -> int:
        return sum(op.params for op in self.ops())

    @property
    def weight_bytes(self) -> int:
        return sum(op.weight_bytes for op in self.ops())

    def set_device(self, name: str, device: int) -> None:
        """Run operator ``name`` on ``device`` of a multi-device system (pipeline/expert parallel)."""
        import dataclasses

        self._own_structure()
        node = self._node(name)
        node["op"] = dataclasses.replace(node["op"], device=int(device))

    @property
    def devices(self) -> list[int]:
        """The devices the operators run on (``[0]`` for a single device)."""
        return sorted({op.device for op in self.ops()})

    # ---- annotations -----------------------------------------------------------------------
    def _node(self, name: str) -> dict:
        if name not in self.nx:
            raise GraphError(f"graph '{self.name}' has no operator '{name}'")
        return self.nx.nodes[name]

    def annotate(self, name: str, value: Any) -> None:
        """Attach a typed annotation (its class is the key)."""
        self._node(name)
        self._ann_layers[-1][(name, type(value))] = value

    def get(self, name: str, kind: type[A], default: Any = ...) -> A:
        """The annotation of class ``kind`` on operator ``name``."""
        self._node(name)
        key = (name, kind)
        for layer in reversed(self._ann_layers):
            if key in layer:
                return layer[key]
        if default is not ...:
            return default
        raise KeyError(f"operator '{name}' has no {kind.__name__} annotation")

    def has(self, name: str, kind: type) -> bool:
        self._node(name)
        key = (name, kind)
        return any(key in layer for layer in self._ann_layers)

    def annotations(self, name: str) -> dict[type, Any]:
        """Every annotation on operator ``name``, by class."""
        out: dict[type, Any] = {}
        for layer in self._ann_layers:
            for (n, kind), value in layer.items():
                if n == name:
                    out[kind] = value
        return out

    def copy(self) -> "OpGraph":
        """A new graph with the same operators and edges, and the annotations so far.

        Operators and edges are shared: they do not change once the graph is built (passes only
        annotate), which makes a copy per pass cheap even for LLM graphs of thousands of ops.
        """
        g = OpGraph(self.name, self.precision, self.meta)
        g.nx = self.nx
        if self._ann_layers[-1]:  # freeze our top layer: later annotations go into a new one
            self._ann_layers = self._ann_layers + [{}]
        g._ann_layers = self._ann_layers[:-1] + [{}]
        g._tensors = self._tensors
        g._producer = self._producer
        g._order = self._order
        g.graph_inputs = list(self.graph_inputs)
        g._shared = True
        self._shared = True
        return g

    def _own_structure(self) -> None:
        """Copy-on-write: before changing operators or edges, stop sharing them with copies."""
        if getattr(self, "_shared", False):
            self.nx = self.nx.copy()
            self._tensors = dict(self._tensors)
            self._producer = dict(self._producer)
            self._shared = False

    def summary(self) -> list[dict[str, Any]]:
        """One row per operator: name, kind, output shape, MACs, params."""
        rows = []
        for op in self.ops():
            g = op.gemm()
            rows.append({"name": op.name, "kind": op.kind, "output": op.output.shape,
                         "macs": op.macs, "params": op.params,
                         "gemm": (g.M, g.K, g.N, g.groups) if isinstance(g, GemmShape) else None})
        return rows

    def __repr__(self) -> str:
        return (f"OpGraph({self.name!r}, ops={len(self)}, macs={self.macs / 1e9:.3g} G, "
                f"params={self.params / 1e6:.3g} M)")
