"""Convolutional networks with their published layer shapes.

Each builder takes ``batch``, ``image_size`` and a ``precision`` policy and returns an
``OpGraph``. Batch norm is folded into the convolutions (inference), as in SCALE-Sim's
topologies and the published MAC counts; ReLUs, pooling and residual adds are vector ops.
Dropout is an identity at inference and is left out; the networks end with the classifier's
logits (no softmax), as torchvision's models do.
"""

from __future__ import annotations

from workloads.graph import GraphError, OpGraph, PrecisionPolicy
from workloads.ops import TensorSpec
from workloads.registry import register_model

__all__ = ["resnet18", "resnet50", "alexnet", "vgg16", "mobilenet_v1", "mobilenet_v2"]


def _graph(name: str, batch: int, image_size: int, precision: PrecisionPolicy | None,
           channels: int = 3) -> tuple[OpGraph, TensorSpec]:
    if batch < 1:
        raise ValueError(f"batch must be >= 1, found {batch}")
    g = OpGraph(name, precision, meta={"model": name, "batch": batch, "image_size": image_size})
    x = g.input("image", (batch, channels, image_size, image_size))
    return g, x


def _conv_act(g: OpGraph, name: str, x: TensorSpec, out: int, k: int, s: int = 1, p: int = 0,
              block: str | None = None, groups: int = 1, act: str | None = "relu",
              bias: bool = False) -> TensorSpec:
    """A convolution followed by an activation (``relu``, ``relu6``, or None for linear)."""
    y = g.conv2d(name, x, out, k, stride=s, padding=p, groups=groups, bias=bias, block=block)
    return g.elementwise(f"{name}.{act}", act, y, block=block) if act else y


def _classifier(g: OpGraph, x: TensorSpec, layers: list[tuple[str, int]],
                block: str = "classifier") -> TensorSpec:
    """Flatten, then fully connected layers (name, width) with biases and a ReLU between them."""
    x = g.flatten("flatten", x, block=block)
    for i, (name, width) in enumerate(layers):
        x = g.linear(name, x, width, block=block)
        if i < len(layers) - 1:
            x = g.relu(f"{name}.relu", x, block=block)
    return x


def _adaptive_window(size: int, out: int) -> tuple[int, int] | None:
    """(kernel, stride) of ``AdaptiveAvgPool`` from ``size`` to ``out`` if its windows are uniform.

    PyTorch's window i spans [floor(i*size/out), ceil((i+1)*size/out)).
    """
    starts = [i * size // out for i in range(out)]
    ends = [-(-(i + 1) * size // out) for i in range(out)]
    kernel = ends[0] - starts[0]
    stride = starts[1] - starts[0] if out > 1 else kernel
    uniform = all(e - s == kernel and s == i * stride for i, (s, e) in enumerate(zip(starts, ends)))
    return (kernel, stride) if stride >= 1 and uniform else None


def _adaptive_avg_pool(g: OpGraph, name: str, x: TensorSpec, out: int, block: str) -> TensorSpec:
    """torchvision's ``AdaptiveAvgPool2d((out, out))`` before the classifier.

    At the 224x224 input it is an identity and is left out; at other sizes it is an average pool
    when its windows are uniform, else a ``GraphError`` (a plain pool cannot express it).
    """
    h, w = x.shape[2], x.shape[3]
    if (h, w) == (out, out):
        return x
    wh, ww = _adaptive_window(h, out), _adaptive_window(w, out)
    if wh is None or ww is None:
        raise GraphError(f"{g.name}: adaptive pooling of the {h}x{w} feature map to {out}x{out} "
                         f"has uneven windows, which a pooling operator cannot express; choose "
                         f"another image_size (e.g. 224, 256 or 448)")
    return g.pool(name, x, "avg", kernel=(wh[0], ww[0]), stride=(wh[1], ww[1]), block=block)


# ---- ResNet -------------------------------------------------------------------------------

def _resnet(name: str, blocks: list[int], bottleneck: bool, batch: int, image_size: int,
            precision: PrecisionPolicy | None) -> OpGraph:
    g, x = _graph(name, batch, image_size, precision)
    x = _conv_act(g, "conv1", x, 64, 7, 2, 3, block="stem")
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
                y = _conv_act(g, f"{blk}.conv1", x, width, 1, block=blk)
                y = _conv_act(g, f"{blk}.conv2", y, width, 3, stride, 1, block=blk)
                y = g.conv2d(f"{blk}.conv3", y, width * expansion, 1, block=blk)
            else:
                y = _conv_act(g, f"{blk}.conv1", x, width, 3, stride, 1, block=blk)
                y = g.conv2d(f"{blk}.conv2", y, width, 3, padding=1, block=blk)
            if stride != 1 or in_ch != width * expansion:
                identity = g.conv2d(f"{blk}.downsample", x, width * expansion, 1, stride=stride, block=blk)
            x = g.relu(f"{blk}.relu", g.residual_add(f"{blk}.add", y, identity, block=blk), block=blk)
            in_ch = width * expansion
    x = g.global_pool("avgpool", x, "avg", block="head")
    _classifier(g, x, [("fc", 1000)], block="head")
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


# ---- AlexNet and VGG ----------------------------------------------------------------------

@register_model("alexnet", family="cnn",
                description="AlexNet, single tower (torchvision layout, 5 convs + 3 FCs)",
                source="torchvision alexnet: the single-tower variant of Krizhevsky, 'One weird "
                       "trick for parallelizing CNNs', arXiv:1404.5997, 2014 (convs 64-192-384-"
                       "256-256, FCs 4096-4096-1000, 61.1 M params), not the two-group network "
                       "of Krizhevsky et al., NIPS 2012")
def alexnet(*, batch: int = 1, image_size: int = 224,
            precision: PrecisionPolicy | None = None) -> OpGraph:
    g, x = _graph("alexnet", batch, image_size, precision)
    # (out channels, kernel, stride, padding, max pool after)
    layers = [(64, 11, 4, 2, True), (192, 5, 1, 2, True), (384, 3, 1, 1, False),
              (256, 3, 1, 1, False), (256, 3, 1, 1, True)]
    for i, (out, k, s, p, pool) in enumerate(layers, start=1):
        blk = f"conv{i}"
        x = _conv_act(g, blk, x, out, k, s, p, block=blk, bias=True)
        if pool:
            x = g.pool(f"{blk}.maxpool", x, "max", 3, 2, block=blk)
    x = _adaptive_avg_pool(g, "avgpool", x, 6, block="classifier")
    _classifier(g, x, [("fc6", 4096), ("fc7", 4096), ("fc8", 1000)])  # the paper's names
    return g


# VGG-16 is configuration D of Simonyan & Zisserman, Table 1: convs per stage and their width
_VGG16_STAGES = [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)]


@register_model("vgg16", family="cnn", description="VGG-16 (configuration D: 13 3x3 convs + 3 FCs)",
                source="Simonyan & Zisserman, Very Deep Convolutional Networks, ICLR 2015, Table 1 "
                       "column D (torchvision vgg16: 138.36 M params)")
def vgg16(*, batch: int = 1, image_size: int = 224,
          precision: PrecisionPolicy | None = None) -> OpGraph:
    g, x = _graph("vgg16", batch, image_size, precision)
    for stage, (n, width) in enumerate(_VGG16_STAGES, start=1):
        blk = f"stage{stage}"
        for i in range(1, n + 1):
            x = _conv_act(g, f"conv{stage}_{i}", x, width, 3, 1, 1, block=blk, bias=True)
        x = g.pool(f"pool{stage}", x, "max", 2, 2, block=blk)
    x = _adaptive_avg_pool(g, "avgpool", x, 7, block="classifier")
    _classifier(g, x, [("fc6", 4096), ("fc7", 4096), ("fc8", 1000)])  # the paper's names
    return g


# ---- MobileNets ---------------------------------------------------------------------------

# MobileNetV1, Howard et al. 2017, Table 1 after the stem: (pointwise output channels, depthwise
# stride) of each depthwise-separable block. The table's last depthwise conv says "s2", but its
# input and output are both 7x7 (TF-Slim's reference mobilenet_v1 uses stride 1), so it is 1 here.
_MOBILENET_V1_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                        (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]


@register_model("mobilenet_v1", family="cnn",
                description="MobileNetV1, width 1.0 (13 depthwise-separable blocks)",
                source="Howard et al., MobileNets, arXiv:1704.04861, 2017, Table 1 "
                       "(width multiplier 1.0, 224x224: 4.2 M params, 569 M mult-adds)")
def mobilenet_v1(*, batch: int = 1, image_size: int = 224,
                 precision: PrecisionPolicy | None = None) -> OpGraph:
    g, x = _graph("mobilenet_v1", batch, image_size, precision)
    x = _conv_act(g, "conv1", x, 32, 3, 2, 1, block="stem")
    for i, (out, stride) in enumerate(_MOBILENET_V1_BLOCKS, start=1):
        blk = f"block{i}"
        c = x.shape[1]
        x = _conv_act(g, f"{blk}.dw", x, c, 3, stride, 1, groups=c, block=blk)
        x = _conv_act(g, f"{blk}.pw", x, out, 1, block=blk)
    x = g.global_pool("avgpool", x, "avg", block="head")
    _classifier(g, x, [("fc", 1000)], block="head")
    return g


# MobileNetV2, Sandler et al. 2018, Table 2 after the stem: expansion t, output channels c,
# repeats n, stride s of the first repeat
_MOBILENET_V2_STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                        (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def _inverted_residual(g: OpGraph, blk: str, x: TensorSpec, expansion: int, out: int,
                       stride: int) -> TensorSpec:
    """MobileNetV2 bottleneck (Table 1): 1x1 expand + ReLU6, 3x3 depthwise + ReLU6, 1x1 linear
    projection; a residual add when the stride is 1 and the channel count is unchanged."""
    c = x.shape[1]
    hidden = c * expansion
    y = _conv_act(g, f"{blk}.expand", x, hidden, 1, act="relu6", block=blk) if expansion != 1 else x
    y = _conv_act(g, f"{blk}.dw", y, hidden, 3, stride, 1, groups=hidden, act="relu6", block=blk)
    y = g.conv2d(f"{blk}.project", y, out, 1, block=blk)
    return g.residual_add(f"{blk}.add", y, x, block=blk) if stride == 1 and c == out else y


@register_model("mobilenet_v2", family="cnn",
                description="MobileNetV2, width 1.0 (17 inverted-residual bottlenecks)",
                source="Sandler et al., MobileNetV2, CVPR 2018, Table 2 (width 1.0, 224x224: "
                       "3.4 M params, 300 M multiply-adds; torchvision mobilenet_v2)")
def mobilenet_v2(*, batch: int = 1, image_size: int = 224,
                 precision: PrecisionPolicy | None = None) -> OpGraph:
    g, x = _graph("mobilenet_v2", batch, image_size, precision)
    x = _conv_act(g, "conv1", x, 32, 3, 2, 1, act="relu6", block="stem")
    i = 0
    for t, c, n, s in _MOBILENET_V2_STAGES:
        for r in range(n):
            i += 1
            x = _inverted_residual(g, f"block{i}", x, t, c, s if r == 0 else 1)
    x = _conv_act(g, "conv_last", x, 1280, 1, act="relu6", block="head")
    x = g.global_pool("avgpool", x, "avg", block="head")
    _classifier(g, x, [("fc", 1000)], block="head")
    return g
