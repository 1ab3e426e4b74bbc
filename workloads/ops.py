"""Typed operators of an ``OpGraph``.

Contract: an operator is a frozen dataclass that knows its tensors (activation inputs, weights,
one output), its loop bounds in Einsum style (``loop_dims()`` and, per operand, which dims it
uses: ``operand_dims()``), its MAC count, its vector-op count, and, for matrix operators, its
GEMM view (``gemm()``) as SCALE-Sim lowers it: M = output pixels (times batch), K = the window
R*S*C/groups, N = filters per group, and ``groups`` independent GEMMs (depthwise: one per channel).
Shapes are NCHW for feature maps and (..., features) for token streams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

from workloads.precision import DEFAULT_SCALE_BITS, effective_bits, storage_bytes

__all__ = ["TensorSpec", "GemmShape", "Op", "Conv2D", "MatMul", "Linear", "Pool", "Elementwise",
           "Softmax", "Norm", "Reshape", "Embedding", "TopK", "Collective", "COLLECTIVES", "OP_KINDS"]


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A tensor: name, shape, storage precision and class (activation, weight, kv_cache)."""

    name: str
    shape: tuple[int, ...]
    precision: str
    role: str = "activation"  # activation | weight | kv_cache
    group_size: int | None = None  # quantization group: one scale per group_size elements
    scale_bits: int = DEFAULT_SCALE_BITS  # bits of each group's scale (workload.precision.scale_bits)

    def __post_init__(self) -> None:
        if self.group_size is not None and self.group_size < 1:
            raise ValueError(f"tensor '{self.name}': group_size must be positive, found {self.group_size}")
        if not 1 <= self.scale_bits <= 32:
            raise ValueError(f"tensor '{self.name}': scale_bits must be 1..32, found {self.scale_bits}")

    def like(self, name: str, shape: tuple[int, ...]) -> "TensorSpec":
        """A tensor of another name and shape with this one's precision, class and quantization
        (a view's output, a shard of rows)."""
        return replace(self, name=name, shape=tuple(shape))

    @property
    def effective_bits(self) -> float:
        """Stored bits per element with the per-group scale (3.0625 for int3, group 128, 8-bit scales)."""
        return effective_bits(self.precision, self.group_size, self.scale_bits)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return storage_bytes(self.numel, self.precision, self.group_size, self.scale_bits)

    @property
    def element_bytes(self) -> float:
        return self.nbytes / max(1, self.numel)


@dataclass(frozen=True, slots=True)
class GemmShape:
    """``groups`` independent GEMMs of (M x K) @ (K x N)."""

    M: int
    K: int
    N: int
    groups: int = 1

    @property
    def macs(self) -> int:
        return self.groups * self.M * self.K * self.N


@dataclass(frozen=True, kw_only=True)
class Op:
    """Base operator. Subclasses set ``kind`` and implement the loop/cost views."""

    name: str
    inputs: tuple[TensorSpec, ...]
    output: TensorSpec
    weights: tuple[TensorSpec, ...] = ()
    phase: str | None = None  # prefill | decode | None
    block: str | None = None  # grouping label, e.g. "layer3.1" or "decoder.4"
    device: int = 0  # which device of a multi-device system runs it (pipeline/expert parallelism)

    kind: ClassVar[str] = "op"
    is_matrix: ClassVar[bool] = False

    def loop_dims(self) -> dict[str, int]:
        raise NotImplementedError

    def operand_dims(self) -> dict[str, tuple[str, ...]]:
        raise NotImplementedError

    @property
    def macs(self) -> int:
        return 0

    @property
    def vector_ops(self) -> int:
        """Element operations for a vector unit (0 for matrix ops)."""
        return 0

    def gemm(self) -> GemmShape | None:
        return None

    @property
    def tensors(self) -> tuple[TensorSpec, ...]:
        return self.inputs + self.weights + (self.output,)

    @property
    def input_bytes(self) -> int:
        return sum(t.nbytes for t in self.inputs)

    @property
    def weight_bytes(self) -> int:
        return sum(t.nbytes for t in self.weights)

    @property
    def output_bytes(self) -> int:
        return self.output.nbytes

    @property
    def params(self) -> int:
        return sum(t.numel for t in self.weights)

    def describe(self) -> str:
        dims = ", ".join(f"{k}={v}" for k, v in self.loop_dims().items())
        return f"{self.kind}({dims})"


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def conv_out(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@dataclass(frozen=True, kw_only=True)
class Conv2D(Op):
    """2-D convolution, NCHW, with stride, padding, dilation and groups (groups=C: depthwise)."""

    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    kind: ClassVar[str] = "conv2d"
    is_matrix: ClassVar[bool] = True

    @property
    def batch(self) -> int:
        return self.inputs[0].shape[0]

    @property
    def in_channels(self) -> int:
        return self.inputs[0].shape[1]

    @property
    def in_hw(self) -> tuple[int, int]:
        return self.inputs[0].shape[2], self.inputs[0].shape[3]

    @property
    def out_channels(self) -> int:
        return self.output.shape[1]

    @property
    def out_hw(self) -> tuple[int, int]:
        return self.output.shape[2], self.output.shape[3]

    def loop_dims(self) -> dict[str, int]:
        P, Q = self.out_hw
        return {"B": self.batch, "G": self.groups, "K": self.out_channels // self.groups,
                "C": self.in_channels // self.groups, "P": P, "Q": Q,
                "R": self.kernel[0], "S": self.kernel[1]}

    def operand_dims(self) -> dict[str, tuple[str, ...]]:
        # the input is indexed by P*stride + R*dilation - padding (an affine projection)
        dims = {self.inputs[0].name: ("B", "G", "C", "P+R", "Q+S"),
                self.weights[0].name: ("G", "K", "C", "R", "S"),
                self.output.name: ("B", "G", "K", "P", "Q")}
        for w in self.weights[1:]:  # the bias: one per output channel
            dims[w.name] = ("G", "K")
        return dims

    def gemm(self) -> GemmShape:
        P, Q = self.out_hw
        return GemmShape(M=self.batch * P * Q,
                         K=self.kernel[0] * self.kernel[1] * (self.in_channels // self.groups),
                         N=self.out_channels // self.groups, groups=self.groups)

    @property
    def macs(self) -> int:
        return self.gemm().macs

    def touched_input_hw(self) -> tuple[int, int]:
        """Input rows and columns the windows actually read (strided 1x1 convs skip some)."""
        return (_touched(self.in_hw[0], self.out_hw[0], self.kernel[0], self.stride[0],
                         self.padding[0], self.dilation[0]),
                _touched(self.in_hw[1], self.out_hw[1], self.kernel[1], self.stride[1],
                         self.padding[1], self.dilation[1]))

    @property
    def unique_input_bytes(self) -> int:
        """Bytes of input the convolution reads at least once (the compulsory ifmap traffic)."""
        h, w = self.touched_input_hw()
        t = self.inputs[0]
        return storage_bytes(self.batch * self.in_channels * h * w, t.precision, t.group_size,
                             t.scale_bits)


def _touched(size: int, out: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    if stride <= dilation * (kernel - 1) + 1 and dilation == 1:
        lo = max(0, -padding)
        hi = min(size - 1, (out - 1) * stride + (kernel - 1) - padding)
        return max(0, hi - lo + 1)
    hit = set()
    for p in range(out):
        for r in range(kernel):
            i = p * stride + r * dilation - padding
            if 0 <= i < size:
                hit.add(i)
    return len(hit)


@dataclass(frozen=True, kw_only=True)
class MatMul(Op):
    """Batched matrix product of two activations: (batch, M, K) @ (batch, K, N) (e.g. attention)."""

    batch: int
    M: int
    K: int
    N: int

    kind: ClassVar[str] = "matmul"
    is_matrix: ClassVar[bool] = True

    def loop_dims(self) -> dict[str, int]:
        return {"B": self.batch, "M": self.M, "K": self.K, "N": self.N}

    def operand_dims(self) -> dict[str, tuple[str, ...]]:
        a, b = self.inputs[0].name, self.inputs[1].name
        return {a: ("B", "M", "K"), b: ("B", "K", "N"), self.output.name: ("B", "M", "N")}

    def gemm(self) -> GemmShape:
        return GemmShape(M=self.M, K=self.K, N=self.N, groups=self.batch)

    @property
    def macs(self) -> int:
        return self.batch * self.M * self.K * self.N


@dataclass(frozen=True, kw_only=True)
class Linear(Op):
    """Fully connected layer: (tokens, K) @ weight (K, N) (+ bias)."""

    tokens: int
    in_features: int
    out_features: int

    kind: ClassVar[str] = "linear"
    is_matrix: ClassVar[bool] = True

    def loop_dims(self) -> dict[str, int]:
        return {"M": self.tokens, "K": self.in_features, "N": self.out_features}

    def operand_dims(self) -> dict[str, tuple[str, ...]]:
        dims = {self.inputs[0].name: ("M", "K"), self.weights[0].name: ("K", "N"),
                self.output.name: ("M", "N")}
        for w in self.weights[1:]:  # the bias: one per output feature
            dims[w.name] = ("N",)
        return dims

    def gemm(self) -> GemmShape:
        return GemmShape(M=self.tokens, K=self.in_features, N=self.out_features)

    @property
    def macs(self) -> int:
        return self.tokens * self.in_features * self.out_features


@dataclass(frozen=True, kw_only=True)
class Pool(Op):
    """Max or average pooling (global pooling: kernel = input size)."""

    mode: str  # max | avg
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] = (0, 0)

    kind: ClassVar[str] = "pool"

    def loop_dims(self) -> dict[str, int]:
        b, c, p, q = self.output.shape
        return {"B": b, "C": c, "P": p, "Q": q, "R": self.kernel[0], "S": self.kernel[1]}

    def operand_dims(self) -> dict[str, tuple[str, ...]]:
        return {self.inputs[0].name: ("B", "C", "P+R", "Q+S"), self.output.name: ("B", "C", "P", "Q")}

    @property
    def vector_ops(self) -> int:
        return self.output.numel * self.kernel[0] * self.kernel[1]


@dataclass(frozen=True, kw_only=True)
class _Pointwise(Op):
    """An op whose loop bounds are its output's shape and whose first input has that shape too."""

    def loop_dims(self) -> dict[str, int]:
        return {f"d{i}": s for i, s in enumerate(self.output.shape)}

    def operand_dims(self) -> dict[str, tuple[str, ...]]:
        dims = tuple(self.loop_dims())
        return {self.inputs[0].name: dims, self.output.name: dims}


@dataclass(frozen=True, kw_only=True)
class Elementwise(_Pointwise):
    """Element-wise function of one or more same-shape inputs (add, mul, relu, gelu, silu, ...)."""

    function: str
    ops_per_element: int = 1

    kind: ClassVar[str] = "elementwise"

    def operand_dims(self) -> dict[str, tuple[str, ...]]:
        dims = tuple(self.loop_dims())
        return {t.name: dims for t in self.tensors}

    @property
    def vector_ops(self) -> int:
        return self.output.numel * self.ops_per_element * max(1, len(self.inputs) - 1)


# Operation counts per element for the vector ops, stated once (documented in workloads/README.md)
SOFTMAX_OPS_PER_ELEMENT = 5  # max, subtract, exp, sum, divide
NORM_OPS_PER_ELEMENT = {"layernorm": 8, "rmsnorm": 5, "batchnorm": 2}


@dataclass(frozen=True, kw_only=True)
class Softmax(_Pointwise):
    """Softmax along the last axis."""

    kind: ClassVar[str] = "softmax"

    @property
    def vector_ops(self) -> int:
        return self.output.numel * SOFTMAX_OPS_PER_ELEMENT


@dataclass(frozen=True, kw_only=True)
class Norm(_Pointwise):
    """Normalization: layernorm, rmsnorm, or batchnorm (inference: a scale and a shift)."""

    mode: str = "layernorm"

    kind: ClassVar[str] = "norm"

    def operand_dims(self) -> dict[str, tuple[str, ...]]:
        dims = tuple(self.loop_dims())
        out = super().operand_dims()
        # scale and shift are per feature: the channel axis (NCHW) for batchnorm, else the last
        feature = dims[1:2] if self.mode == "batchnorm" else dims[-1:]
        for w in self.weights:
            out[w.name] = feature if len(w.shape) == 1 else dims
        return out

    @property
    def vector_ops(self) -> int:
        return self.output.numel * NORM_OPS_PER_ELEMENT[self.mode]


@dataclass(frozen=True, kw_only=True)
class Reshape(Op):
    """A view with a new shape (flatten); moves no data and costs nothing."""

    kind: ClassVar[str] = "reshape"

    def loop_dims(self) -> dict[str, int]:
        return {}

    def operand_dims(self) -> dict[str, tuple[str, ...]]:
        return {self.inputs[0].name: (), self.output.name: ()}


@dataclass(frozen=True, kw_only=True)
class Embedding(Op):
    """Table lookup (token or position embedding): ``out[t, :] = table[ids[t], :]``, a gather.

    ``inputs`` is the ids tensor (one id per row gathered), ``weights`` the table (vocab x
    features), so the table counts in ``params`` and ``weight_bytes`` (what is stored). The op
    reads only the rows it gathers: ``gathered_bytes`` (rows x features elements at the table's
    precision, with their quantization scales), not the whole table. One vector op (a copy) per
    output element.
    """

    kind: ClassVar[str] = "embedding"

    @property
    def rows(self) -> int:
        """Number of lookups (ids)."""
        return self.inputs[0].numel

    @property
    def features(self) -> int:
        return self.weights[0].shape[-1]

    def loop_dims(self) -> dict[str, int]:
        return {"T": self.rows, "D": self.features}

    def operand_dims(self) -> dict[str, tuple[str, ...]]:
        # the table is indexed indirectly: row ids[T] (the dims say which loops select an element)
        return {self.inputs[0].name: ("T",), self.weights[0].name: ("T", "D"),
                self.output.name: ("T", "D")}

    @property
    def gathered_bytes(self) -> int:
        """Bytes of the table this lookup reads: only the gathered rows."""
        t = self.weights[0]
        return storage_bytes(self.rows * self.features, t.precision, t.group_size, t.scale_bits)

    @property
    def vector_ops(self) -> int:
        return self.output.numel


@dataclass(frozen=True, kw_only=True)
class TopK(Op):
    """Per row, the ``k`` largest of ``n`` scores, normalized by a softmax over the k kept
    (mixture-of-experts routing). The output holds the k routing weights per row (the chosen
    expert indices travel with them and are not counted as a tensor). Vector ops per row:
    ``n * k`` (k max-scans over the n scores) + ``SOFTMAX_OPS_PER_ELEMENT * k``.
    """

    k: int

    kind: ClassVar[str] = "topk"

    @property
    def n(self) -> int:
        return self.inputs[0].shape[-1]

    @property
    def rows(self) -> int:
        return self.inputs[0].numel // self.n

    def loop_dims(self) -> dict[str, int]:
        return {"M": self.rows, "N": self.n, "K": self.k}

    def operand_dims(self) -> dict[str, tuple[str, ...]]:
        return {self.inputs[0].name: ("M", "N"), self.output.name: ("M", "K")}

    @property
    def vector_ops(self) -> int:
        return self.rows * (self.n * self.k + SOFTMAX_OPS_PER_ELEMENT * self.k)


COLLECTIVES = ("all_reduce", "all_gather", "all_to_all", "send")


@dataclass(frozen=True, kw_only=True)
class Collective(_Pointwise):
    """Communication between the devices in ``group``: all-reduce, all-gather, all-to-all, or a
    point-to-point send (pipeline stages). ``inputs[0]`` is this device's payload; the output has
    the collective's result shape. Timed on the links (``mappers`` lowers it to link transfers)."""

    collective: str
    group: tuple[int, ...]  # devices taking part
    dst: int | None = None  # send: the receiving device
    per_device_bytes: tuple[int, ...] = ()  # all-to-all: what each device of the group sends
    kind: ClassVar[str] = "collective"

    @property
    def payload_bytes(self) -> int:
        """Bytes this device contributes."""
        return self.inputs[0].nbytes

    @property
    def vector_ops(self) -> int:
        # an all-reduce adds the (n - 1) partial sums it receives to its own, element by element
        n = len(self.group)
        return self.inputs[0].numel * (n - 1) // n if self.collective == "all_reduce" else 0


OP_KINDS: dict[str, type[Op]] = {c.kind: c for c in
                                 (Conv2D, MatMul, Linear, Pool, Elementwise, Softmax, Norm, Reshape,
                                  Embedding, TopK, Collective)}
