"""CNN builders: published parameter and MAC counts, layer shapes, batch and image size."""

from __future__ import annotations

import networkx as nx
import pytest

from workloads.graph import GraphError, PrecisionPolicy
from workloads.ops import Conv2D, Elementwise, GemmShape, Linear
from workloads.precision import storage_bytes
from workloads.registry import build_model

CNNS = ["alexnet", "vgg16", "resnet18", "resnet50", "mobilenet_v1", "mobilenet_v2"]
FOLDED_BN = {"resnet18", "resnet50", "mobilenet_v1", "mobilenet_v2"}  # a BN after every conv


def _conv_out_channels(g) -> int:
    return sum(op.out_channels for op in g.ops() if isinstance(op, Conv2D))


# ---- published totals ---------------------------------------------------------------------

# (published params, params tolerance, published MACs at 224x224, MACs tolerance), relative
GOLDEN = {
    # torchvision alexnet docs: 61.1 M params, 0.71 GFLOPS (multiply-adds)
    "alexnet": (61.1e6, 0.001, 0.71e9, 0.01),
    # torchvision vgg16 docs: 138.4 M params (138,357,544), 15.47 GFLOPS; Simonyan & Zisserman
    # ICLR 2015, Table 2: 138 M params for configuration D
    "vgg16": (138.36e6, 0.0001, 15.47e9, 0.001),
    # He et al. CVPR 2016, Table 1: 1.8e9 FLOPs (multiply-adds); torchvision resnet18: 11.7 M
    # params, 1.81 GFLOPS
    "resnet18": (11.7e6, 0.002, 1.81e9, 0.003),
    # torchvision resnet50 (v1.5): 25.6 M params (25,557,032 with BN), 4.09 GFLOPS; He et al.
    # report 3.8e9 for v1, whose stride sits on the 1x1 conv instead of the 3x3
    "resnet50": (25.5e6, 0.003, 4.09e9, 0.003),
    # Howard et al. 2017, Table 1 / Table 8 (1.0 MobileNet-224): 4.2 M params, 569 M mult-adds
    "mobilenet_v1": (4.2e6, 0.005, 569e6, 0.001),
    # Sandler et al. CVPR 2018, Table 4: 3.4 M params, 300 M multiply-adds (3.47 M here, BN
    # folded; torchvision's 3.5 M counts the BN scales and shifts, checked exactly below)
    "mobilenet_v2": (3.4e6, 0.025, 300e6, 0.003),
}


@pytest.mark.golden
@pytest.mark.parametrize("name", CNNS)
def test_published_params_and_macs(name):
    params, params_tol, macs, macs_tol = GOLDEN[name]
    g = build_model(name)
    assert g.params == pytest.approx(params, rel=params_tol)
    assert g.macs == pytest.approx(macs, rel=macs_tol)


# exact parameter counts of torchvision's models (``sum(p.numel() for p in m.parameters())``);
# they include each batch norm's scale and shift, which are folded into the convs here
TORCHVISION_PARAMS = {
    "alexnet": 61_100_840,  # torchvision AlexNet_Weights.IMAGENET1K_V1: num_params
    "vgg16": 138_357_544,  # torchvision VGG16_Weights.IMAGENET1K_V1: num_params
    "resnet18": 11_689_512,  # torchvision ResNet18_Weights.IMAGENET1K_V1: num_params
    "resnet50": 25_557_032,  # torchvision ResNet50_Weights.IMAGENET1K_V1: num_params
    "mobilenet_v2": 3_504_872,  # torchvision MobileNet_V2_Weights.IMAGENET1K_V1: num_params
}


@pytest.mark.golden
@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_torchvision_params_exactly(name):
    g = build_model(name)
    bn = 2 * _conv_out_channels(g) if name in FOLDED_BN else 0
    assert g.params + bn == TORCHVISION_PARAMS[name]


@pytest.mark.golden
def test_mobilenet_v1_cost_breakdown():
    # Howard et al. 2017, Table 2: 1x1 convs take 94.86% of the mult-adds and 74.59% of the
    # params, depthwise convs 3.06% and 1.06%, the FC 0.18% and 24.33%. (The paper's params
    # leave out the FC bias, hence the 0.03-point tolerance; its "Conv 3x3" row, 1.19%, does
    # not add up with the others and is not checked.)
    g = build_model("mobilenet_v1")
    share = {"1x1": [0, 0], "dw": [0, 0], "fc": [0, 0]}
    for op in g.ops():
        if isinstance(op, Linear):
            key = "fc"
        elif isinstance(op, Conv2D) and op.groups > 1:
            key = "dw"
        elif isinstance(op, Conv2D) and op.kernel == (1, 1):
            key = "1x1"
        else:
            continue
        share[key][0] += op.macs
        share[key][1] += op.params
    pct = {k: (100 * m / g.macs, 100 * p / g.params) for k, (m, p) in share.items()}
    assert pct["1x1"] == pytest.approx((94.86, 74.59), abs=0.03)
    assert pct["dw"] == pytest.approx((3.06, 1.06), abs=0.03)
    assert pct["fc"] == pytest.approx((0.18, 24.33), abs=0.03)


# ---- batch and image size -----------------------------------------------------------------

@pytest.mark.parametrize("name", CNNS)
def test_batch_scales_macs_not_params(name):
    one, three = build_model(name), build_model(name, batch=3)
    assert three.macs == 3 * one.macs
    assert three.params == one.params
    assert sum(op.vector_ops for op in three.ops()) == 3 * sum(op.vector_ops for op in one.ops())
    assert three.tensor("image").shape == (3, 3, 224, 224)
    assert three.ops()[-1].output.shape == (3, 1000)
    assert three.meta["batch"] == 3


@pytest.mark.parametrize("name, last", [("resnet50", "layer4.2.relu"), ("vgg16", "pool5"),
                                        ("mobilenet_v1", "block13.pw.relu"),
                                        ("mobilenet_v2", "conv_last.relu6")])
def test_doubling_the_image_quadruples_conv_macs(name, last):
    small, large = build_model(name), build_model(name, image_size=448)
    fc = sum(op.macs for op in small.ops() if isinstance(op, Linear))
    assert sum(op.macs for op in large.ops() if isinstance(op, Linear)) == fc
    assert large.macs - fc == 4 * (small.macs - fc)
    assert large.params == small.params
    b, c, h, w = small.tensor(f"{last}.out").shape
    assert large.tensor(f"{last}.out").shape == (b, c, 2 * h, 2 * w)


def test_image_size_changes_alexnet_shapes():
    g = build_model("alexnet", image_size=448)
    assert g.tensor("conv1.out").shape == (1, 64, 111, 111)  # (448 + 4 - 11) // 4 + 1
    assert g.tensor("conv5.maxpool.out").shape == (1, 256, 13, 13)
    # torchvision's adaptive pool to 6x6: windows [2i, 2i + 3) are a 3x3 pool of stride 2
    pool = g.op("avgpool")
    assert pool.kernel == (3, 3) and pool.stride == (2, 2) and pool.output.shape == (1, 256, 6, 6)
    assert g.params == build_model("alexnet").params
    assert "avgpool" not in build_model("alexnet")  # an identity at 224


def test_image_size_with_uneven_adaptive_pooling_is_an_error():
    with pytest.raises(GraphError, match="adaptive pooling of the 9x9 feature map to 6x6"):
        build_model("alexnet", image_size=320)
    with pytest.raises(GraphError, match="10x10 feature map to 7x7"):
        build_model("vgg16", image_size=320)


def test_too_small_or_empty_inputs_are_errors():
    with pytest.raises(GraphError, match="is empty"):
        build_model("vgg16", image_size=16)  # the fifth pool has nothing left
    with pytest.raises(ValueError, match="batch must be >= 1"):
        build_model("resnet18", batch=0)


def test_mobilenet_v1_at_a_smaller_resolution():
    # Howard et al. 2017, Table 7 lists 1.0 MobileNet-192 among the resolution multipliers;
    # every 224 map shrinks to 192/224 of its size: 7x7 -> 6x6 at the end
    g = build_model("mobilenet_v1", image_size=192)
    assert g.tensor("block13.pw.out").shape == (1, 1024, 6, 6)
    assert g.params == build_model("mobilenet_v1").params


# ---- structure ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", CNNS)
def test_graph_is_a_dag_in_topological_order(name):
    g = build_model(name)
    assert nx.is_directed_acyclic_graph(g.nx)
    names = [op.name for op in g.ops()]
    assert len(names) == len(set(names)) == len(g)
    pos = {n: i for i, n in enumerate(names)}
    assert all(pos[u] < pos[v] for u, v in g.nx.edges)
    # every tensor an operator reads is the image or was written by an earlier operator
    for op in g.ops():
        for t in op.inputs:
            src = g.producer(t.name)
            assert (src is None and t.name == "image") or pos[src] < pos[op.name]
    # one source, one sink: nothing dangles
    assert [n for n in g.nx if g.nx.out_degree(n) == 0] == [names[-1]]
    assert isinstance(g.ops()[-1], Linear) and g.ops()[-1].out_features == 1000
    assert all(op.block for op in g.ops())
    assert names == [op.name for op in build_model(name).ops()]  # deterministic


@pytest.mark.parametrize("name, count", [("mobilenet_v1", 13), ("mobilenet_v2", 17)])
def test_mobilenet_depthwise_gemm_view(name, count):
    g = build_model(name)
    depthwise = [op for op in g.ops() if isinstance(op, Conv2D) and op.groups > 1]
    assert len(depthwise) == count
    for op in depthwise:
        C = op.in_channels
        P, Q = op.out_hw
        assert op.groups == C == op.out_channels
        assert op.gemm() == GemmShape(M=P * Q, K=9, N=1, groups=C)
        assert op.weights[0].shape == (C, 1, 3, 3)


def test_no_other_model_has_grouped_convs():
    for name in ("alexnet", "vgg16", "resnet18", "resnet50"):
        assert all(op.groups == 1 for op in build_model(name).ops() if isinstance(op, Conv2D))


def test_precision_policy_sets_weight_bytes():
    policy = PrecisionPolicy(weights="int4", activations="int8", group_size=128)
    g = build_model("vgg16", precision=policy)
    expected = sum(storage_bytes(w.numel, "int4", 128) for op in g.ops() for w in op.weights)
    assert g.weight_bytes == expected
    assert build_model("vgg16").weight_bytes == g.params  # int8 default: one byte each


# ---- published layer shapes ---------------------------------------------------------------

@pytest.mark.golden
def test_resnet_shapes():
    # He et al. CVPR 2016, Table 1: conv1 112x112, conv2_x 56x56 (after a 3x3 max pool of
    # stride 2), conv5_x 7x7 with 2048 channels (50-layer) or 512 (18-layer), then a 1000-d FC
    g = build_model("resnet50")
    assert g.tensor("conv1.out").shape == (1, 64, 112, 112)
    assert g.tensor("maxpool.out").shape == (1, 64, 56, 56)
    assert g.tensor("layer1.2.relu.out").shape == (1, 256, 56, 56)
    assert g.tensor("layer2.3.relu.out").shape == (1, 512, 28, 28)
    assert g.tensor("layer3.5.relu.out").shape == (1, 1024, 14, 14)
    assert g.tensor("layer4.2.relu.out").shape == (1, 2048, 7, 7)
    assert g.op("fc").in_features == 2048
    assert sum(op.function == "add" for op in g.ops() if isinstance(op, Elementwise)) == 16
    assert build_model("resnet18").tensor("layer4.1.relu.out").shape == (1, 512, 7, 7)


@pytest.mark.golden
def test_vgg16_shapes():
    # Simonyan & Zisserman ICLR 2015, Table 1, column D: 13 3x3 convs in five stages of
    # 64, 128, 256, 512, 512 channels, each followed by a 2x2 max pool; FC-4096, FC-4096,
    # FC-1000; the first FC sees 512 * 7 * 7 = 25088 features
    g = build_model("vgg16")
    convs = [op for op in g.ops() if isinstance(op, Conv2D)]
    assert len(convs) == 13 and all(op.kernel == (3, 3) for op in convs)
    assert g.tensor("conv1_2.out").shape == (1, 64, 224, 224)
    assert g.tensor("conv3_3.out").shape == (1, 256, 56, 56)
    assert g.tensor("conv5_3.out").shape == (1, 512, 14, 14)
    assert g.tensor("pool5.out").shape == (1, 512, 7, 7)
    assert g.op("fc6").in_features == 25088
    assert [g.op(n).out_features for n in ("fc6", "fc7", "fc8")] == [4096, 4096, 1000]


@pytest.mark.golden
def test_alexnet_shapes():
    # torchvision alexnet (single tower): conv1 11x11/4 with padding 2 gives 55x55x64; three
    # 3x3/2 max pools leave 6x6x256, so fc6 sees 9216 features
    g = build_model("alexnet")
    assert g.tensor("conv1.out").shape == (1, 64, 55, 55)
    assert g.tensor("conv2.out").shape == (1, 192, 27, 27)
    assert g.tensor("conv5.out").shape == (1, 256, 13, 13)
    assert g.tensor("conv5.maxpool.out").shape == (1, 256, 6, 6)
    assert g.op("fc6").in_features == 9216
    assert [g.op(n).out_features for n in ("fc6", "fc7", "fc8")] == [4096, 4096, 1000]


@pytest.mark.golden
def test_mobilenet_v1_shapes():
    # Howard et al. 2017, Table 1: input sizes of each layer; the last conv is 1024x7x7
    g = build_model("mobilenet_v1")
    assert g.tensor("conv1.out").shape == (1, 32, 112, 112)
    assert g.tensor("block1.dw.out").shape == (1, 32, 112, 112)
    assert g.tensor("block1.pw.out").shape == (1, 64, 112, 112)
    assert g.tensor("block2.dw.out").shape == (1, 64, 56, 56)
    assert g.tensor("block4.dw.out").shape == (1, 128, 28, 28)
    assert g.tensor("block6.pw.out").shape == (1, 512, 14, 14)
    assert g.tensor("block12.dw.out").shape == (1, 512, 7, 7)
    assert g.tensor("block13.dw.out").shape == (1, 1024, 7, 7)  # stride 1 (see builder)
    assert g.tensor("block13.pw.out").shape == (1, 1024, 7, 7)
    assert g.op("fc").in_features == 1024


@pytest.mark.golden
def test_mobilenet_v2_shapes():
    # Sandler et al. CVPR 2018, Table 2: output of each bottleneck sequence (t, c, n, s)
    g = build_model("mobilenet_v2")
    assert g.tensor("conv1.out").shape == (1, 32, 112, 112)
    last_block_of_stage = {1: (16, 112), 3: (24, 56), 6: (32, 28), 10: (64, 14), 13: (96, 14),
                           16: (160, 7), 17: (320, 7)}
    for block, (c, hw) in last_block_of_stage.items():
        assert g.tensor(f"block{block}.project.out").shape == (1, c, hw, hw), block
    # expansion 6: block 2 expands 16 channels to 96 and reduces 112x112 to 56x56 in its dw
    assert g.tensor("block2.expand.out").shape == (1, 96, 112, 112)
    assert g.tensor("block2.dw.out").shape == (1, 96, 56, 56)
    assert "block1.expand" not in g  # t = 1: no expansion
    assert g.tensor("conv_last.out").shape == (1, 1280, 7, 7)
    assert g.op("fc").in_features == 1280
    # residual adds: stride 1 and unchanged channels, i.e. every repeat after the first of a
    # sequence: 1 + 2 + 3 + 2 + 2 = 10
    adds = [op for op in g.ops() if isinstance(op, Elementwise) and op.function == "add"]
    assert len(adds) == 10
    # ReLU6 after expand and dw, none after the linear projection
    assert {op.function for op in g.ops() if isinstance(op, Elementwise)} == {"relu6", "add"}
    assert "block3.project.relu6" not in g and "block3.dw.relu6" in g
