"""Model variants for design-space studies, registered beside the built-in models.

``mobilenet_v1_gc{8,16,32}``: MobileNetV1 with each 3x3 depthwise convolution (one channel per
group) replaced by a 3x3 grouped convolution with 8, 16 or 32 channels per group (fewer channels
where a layer has fewer); everything else is MobileNetV1 (Howard et al. 2017, Table 1, as
``workloads.cnn.mobilenet_v1``). On a systolic array a depthwise layer is C independent GEMMs
of (pixels x 9) @ (9 x 1): one array column and 9 of the reduction rows do work, each group pays
the full fold fill/drain, and utilization is a fraction of a percent. Grouping channels gives
each GEMM N = channels-per-group filters and K = 9 x channels-per-group, so the array's columns
and rows fill up, at the price of more MACs and weights (8x grouping: +21 % MACs, +7 % params).
This is a DRACO-style reuse-aware change of the network (arXiv 2006.15103), not DRACO's own
transform, which the paper's abstract does not give; the variants' accuracy is not modelled.
"""

from __future__ import annotations

from workloads.cnn import _MOBILENET_V1_BLOCKS, _classifier, _conv_act, _graph
from workloads.graph import OpGraph, PrecisionPolicy
from workloads.registry import register_model

__all__ = ["mobilenet_v1_grouped", "GROUPED_WIDTHS"]

GROUPED_WIDTHS = (8, 16, 32)


def mobilenet_v1_grouped(channels_per_group: int, *, batch: int = 1, image_size: int = 224,
                         precision: PrecisionPolicy | None = None) -> OpGraph:
    """MobileNetV1 with grouped (``channels_per_group``) instead of depthwise 3x3 convolutions."""
    g, x = _graph(f"mobilenet_v1_gc{channels_per_group}", batch, image_size, precision)
    x = _conv_act(g, "conv1", x, 32, 3, 2, 1, block="stem")
    for i, (out, stride) in enumerate(_MOBILENET_V1_BLOCKS, start=1):
        blk = f"block{i}"
        c = x.shape[1]
        x = _conv_act(g, f"{blk}.gc", x, c, 3, stride, 1, groups=c // min(channels_per_group, c), block=blk)
        x = _conv_act(g, f"{blk}.pw", x, out, 1, block=blk)
    x = g.global_pool("avgpool", x, "avg", block="head")
    _classifier(g, x, [("fc", 1000)], block="head")
    return g


def _register(width: int) -> None:
    def build(*, batch: int = 1, image_size: int = 224, precision: PrecisionPolicy | None = None) -> OpGraph:
        return mobilenet_v1_grouped(width, batch=batch, image_size=image_size, precision=precision)

    register_model(f"mobilenet_v1_gc{width}", family="cnn",
                   description=f"MobileNetV1 with 3x3 grouped convs of {width} channels per group "
                               "instead of depthwise (a reuse-aware variant; simulator.dse.variants)",
                   source="Howard et al., MobileNets, arXiv:1704.04861, Table 1, with the depthwise "
                          f"convolutions grouped {width} channels per group")(build)


for _w in GROUPED_WIDTHS:
    _register(_w)
