"""Convolutional networks with their published layer shapes.

Each builder takes ``batch``, ``image_size`` and a ``precision`` policy and returns an
``OpGraph``. Batch norm is folded into the convolutions (inference), as in SCALE-Sim's
topologies and the published MAC counts; ReLUs, pooling and residual adds are vector ops.
"""

from __future__ import annotations

from workloads.graph import OpGraph, PrecisionPolicy
from workloads.ops import TensorSpec
from workloads.registry import register_model

__all__ = ["resnet18", "resnet50"]


def _graph(name: str, batch: int, image_size: int, precision: PrecisionPolicy | None,
           channels: int = 3) -> tuple[OpGraph, TensorSpec]:
    if batch < 1:
        raise ValueError(f"batch must be >= 1, found {batch}")
    g = OpGraph(name, precision, meta={"model": name, "batch": batch, "image_size": image_size})
    x = g.input("image", (batch, channels, image_size, image_size))
    return g, x


def _conv_relu(g: OpGraph, name: str, x: TensorSpec, out: int, k: int, s: int = 1, p: int = 0,
               block: str | None = None, groups: int = 1, relu: bool = True) -> TensorSpec:
    y = g.conv2d(name, x, out, k, stride=s, padding=p, groups=groups, block=block)
    return g.relu(f"{name}.relu", y, block=block) if relu else y


def _resnet(name: str, blocks: list[int], bottleneck: bool, batch: int, image_size: int,
            precision: PrecisionPolicy | None) -> OpGraph:
    g, x = _graph(name, batch, image_size, precision)
    x = _conv_relu(g, "conv1", x, 64, 7, 2, 3, block="stem")
    x = g.pool("maxpool", x, "max", 3, 2, 1, block="stem")
    in_ch = 64
    expansion = 4 if bottleneck else 1
    for stage, n in enumerate(blocks, start=1):
        width = 64 * 2 ** (stage - 1)
        for i in range(n):
            blk = f"layer{stage}.{i}"
            stride = 2 if (i == 0 and stage > 1) else 1
            identity = x
            if bottleneck:
                y = _conv_relu(g, f"{blk}.conv1", x, width, 1, block=blk)
                y = _conv_relu(g, f"{blk}.conv2", y, width, 3, stride, 1, block=blk)
                y = g.conv2d(f"{blk}.conv3", y, width * expansion, 1, block=blk)
            else:
                y = _conv_relu(g, f"{blk}.conv1", x, width, 3, stride, 1, block=blk)
                y = g.conv2d(f"{blk}.conv2", y, width, 3, padding=1, block=blk)
            if stride != 1 or in_ch != width * expansion:
                identity = g.conv2d(f"{blk}.downsample", x, width * expansion, 1, stride=stride, block=blk)
            x = g.relu(f"{blk}.relu", g.residual_add(f"{blk}.add", y, identity, block=blk), block=blk)
            in_ch = width * expansion
    x = g.global_pool("avgpool", x, "avg", block="head")
    x = g.flatten("flatten", x, block="head")
    g.linear("fc", x, 1000, block="head")
    return g


@register_model("resnet18", family="cnn", description="ResNet-18 (basic blocks [2,2,2,2])",
                source="He et al., Deep Residual Learning, CVPR 2016, Table 1")
def resnet18(*, batch: int = 1, image_size: int = 224,
             precision: PrecisionPolicy | None = None) -> OpGraph:
    return _resnet("resnet18", [2, 2, 2, 2], False, batch, image_size, precision)


@register_model("resnet50", family="cnn", description="ResNet-50 (bottleneck blocks [3,4,6,3])",
                source="He et al., Deep Residual Learning, CVPR 2016, Table 1 (torchvision "
                       "v1.5 layout: the stride sits on the 3x3 conv of each bottleneck)")
def resnet50(*, batch: int = 1, image_size: int = 224,
             precision: PrecisionPolicy | None = None) -> OpGraph:
    return _resnet("resnet50", [3, 4, 6, 3], True, batch, image_size, precision)
