"""Operators: shapes, GEMM views, MAC and vector-op counts, bytes, against hand-computed cases."""

from __future__ import annotations

import pytest

from workloads.graph import OpGraph, PrecisionPolicy
from workloads.ops import Conv2D, GemmShape, TensorSpec, conv_out
from workloads.precision import storage_bytes
from workloads.registry import build_model, model_names


def _graph(precision: PrecisionPolicy | None = None) -> OpGraph:
    return OpGraph("t", precision or PrecisionPolicy(weights="int8", activations="int8"))


# ---- Conv2D -------------------------------------------------------------------------------

@pytest.mark.parametrize("size, kernel, stride, padding, dilation, out", [
    (224, 7, 2, 3, 1, 112),  # (224 + 6 - 6 - 1) // 2 + 1 = 112 (ResNet stem)
    (10, 3, 2, 1, 1, 5),  # (10 + 2 - 2 - 1) // 2 + 1 = 5
    (9, 3, 1, 0, 2, 5),  # dilation 2: effective kernel 5, 9 - 5 + 1 = 5
    (9, 3, 1, 2, 2, 9),  # dilated "same" padding
    (7, 1, 2, 0, 1, 4),  # (7 - 1) // 2 + 1 = 4: the last row is read
    (227, 11, 4, 0, 1, 55),  # original AlexNet conv1: (227 - 11) // 4 + 1 = 55
])
def test_conv_out(size, kernel, stride, padding, dilation, out):
    assert conv_out(size, kernel, stride, padding, dilation) == out


def test_conv_strided_padded_gemm_view():
    g = _graph()
    x = g.input("x", (2, 8, 10, 10))
    y = g.conv2d("c", x, 16, 3, stride=2, padding=1)
    op = g.op("c")
    assert y.shape == (2, 16, 5, 5)
    assert op.weights[0].shape == (16, 8, 3, 3)
    # M = B*P*Q = 2*5*5, K = R*S*C = 3*3*8, N = 16
    assert op.gemm() == GemmShape(M=50, K=72, N=16, groups=1)
    assert op.macs == 50 * 72 * 16 == 57_600
    assert op.params == 16 * 8 * 9 == 1152
    assert op.loop_dims() == {"B": 2, "G": 1, "K": 16, "C": 8, "P": 5, "Q": 5, "R": 3, "S": 3}
    assert op.describe().startswith("conv2d(B=2, G=1, K=16")


def test_conv_dilation_and_rectangular_kernel():
    g = _graph()
    x = g.input("x", (1, 4, 9, 11))
    g.conv2d("dil", x, 4, 3, dilation=2)  # 9 - 4 = 5 rows, 11 - 4 = 7 columns
    assert g.op("dil").out_hw == (5, 7)
    assert g.op("dil").gemm() == GemmShape(M=35, K=36, N=4)
    g.conv2d("rect", x, 2, (1, 3), padding=(0, 1))  # a 1x3 kernel keeps both sizes
    assert g.op("rect").out_hw == (9, 11)
    assert g.op("rect").gemm() == GemmShape(M=99, K=12, N=2)


def test_grouped_conv():
    g = _graph()
    x = g.input("x", (1, 8, 6, 6))
    g.conv2d("c", x, 12, 3, padding=1, groups=4)
    op = g.op("c")
    assert op.weights[0].shape == (12, 2, 3, 3)  # C/g = 2 input channels per filter
    # 4 GEMMs of M = 36 pixels, K = 3*3*(8/4) = 18, N = 12/4 = 3
    assert op.gemm() == GemmShape(M=36, K=18, N=3, groups=4)
    assert op.macs == 4 * 36 * 18 * 3 == 36 * 12 * 2 * 9 == 7776
    assert op.loop_dims()["G"] == 4 and op.loop_dims()["K"] == 3 and op.loop_dims()["C"] == 2


def test_depthwise_conv():
    g = _graph()
    x = g.input("x", (3, 32, 112, 112))
    g.conv2d("dw", x, 32, 3, stride=2, padding=1, groups=32)
    op = g.op("dw")
    assert op.output.shape == (3, 32, 56, 56)
    assert op.gemm() == GemmShape(M=3 * 56 * 56, K=9, N=1, groups=32)
    assert op.macs == 3 * 32 * 56 * 56 * 9
    assert op.params == 32 * 9


def test_conv_bias_is_an_operand():
    g = _graph()
    g.conv2d("c", g.input("x", (1, 4, 5, 5)), 6, 3, groups=2, bias=True)
    op = g.op("c")
    assert op.params == 6 * 2 * 9 + 6
    assert op.operand_dims()["c.bias"] == ("G", "K")
    assert set(op.operand_dims()) == {t.name for t in op.tensors}


# ---- touched input and compulsory input bytes ---------------------------------------------

def test_strided_1x1_conv_reads_every_other_row():
    g = _graph()
    g.conv2d("down", g.input("x", (1, 64, 56, 56)), 128, 1, stride=2)
    op = g.op("down")
    assert op.out_hw == (28, 28)
    assert op.touched_input_hw() == (28, 28)  # rows and columns 0, 2, ..., 54
    assert op.input_bytes == 64 * 56 * 56 == 200_704  # int8
    assert op.unique_input_bytes == 64 * 28 * 28 == 50_176  # a quarter of the input


def test_strided_1x1_conv_odd_size_and_fp16():
    g = _graph(PrecisionPolicy(weights="fp16", activations="fp16"))
    g.conv2d("down", g.input("x", (2, 3, 7, 7)), 4, 1, stride=2)
    op = g.op("down")
    assert op.touched_input_hw() == (4, 4)  # rows 0, 2, 4, 6
    assert op.unique_input_bytes == 2 * 3 * 4 * 4 * 2


@pytest.mark.parametrize("hw, kernel, stride, padding, dilation, touched", [
    (56, 3, 2, 1, 1, 56),  # overlapping windows cover everything
    (7, 3, 1, 0, 1, 7),
    (8, 2, 3, 0, 1, 6),  # out 3: rows {0,1}, {3,4}, {6,7}; rows 2 and 5 skipped
    (9, 3, 2, 0, 2, 5),  # dilated: out 3, rows 2p + 2r = {0, 2, 4, 6, 8}
    (9, 3, 1, 0, 2, 9),  # dilated, stride 1: every row
    (6, 3, 1, 0, 1, 6),
    (10, 3, 4, 0, 1, 6),  # out 2: rows {0,1,2}, {4,5,6}; 3, 7, 8, 9 skipped
])
def test_touched_rows(hw, kernel, stride, padding, dilation, touched):
    g = _graph()
    g.conv2d("c", g.input("x", (1, 1, hw, hw)), 1, kernel, stride=stride, padding=padding,
             dilation=dilation)
    assert g.op("c").touched_input_hw() == (touched, touched)


def test_unique_input_bytes_equals_input_bytes_when_every_pixel_is_read():
    for name in model_names():
        for op in build_model(name).ops():
            if isinstance(op, Conv2D) and op.touched_input_hw() == op.in_hw:
                assert op.unique_input_bytes == op.input_bytes, (name, op.name)


# ---- Linear and MatMul --------------------------------------------------------------------

def test_linear_on_token_stream():
    g = _graph()
    y = g.linear("fc", g.input("x", (4, 16, 32)), 64)
    op = g.op("fc")
    assert y.shape == (4, 16, 64)
    assert op.tokens == 64  # 4 * 16 rows
    assert op.gemm() == GemmShape(M=64, K=32, N=64)
    assert op.macs == 64 * 32 * 64
    assert op.params == 32 * 64 + 64  # weight and bias
    assert op.weights[0].shape == (32, 64)
    assert op.operand_dims() == {"x": ("M", "K"), "fc.weight": ("K", "N"), "fc.bias": ("N",),
                                 "fc.out": ("M", "N")}


def test_linear_without_bias():
    g = _graph()
    g.linear("fc", g.input("x", (3, 10)), 5, bias=False)
    assert g.op("fc").params == 50 and len(g.op("fc").weights) == 1


def test_batched_matmul():
    g = _graph()
    a = g.input("a", (2, 3, 5, 7))
    b = g.input("b", (2, 3, 7, 4))
    y = g.matmul("mm", a, b)
    op = g.op("mm")
    assert y.shape == (2, 3, 5, 4)
    assert op.batch == 6
    assert op.gemm() == GemmShape(M=5, K=7, N=4, groups=6)
    assert op.macs == op.gemm().macs == 6 * 5 * 7 * 4 == 840
    assert op.params == 0 and op.weight_bytes == 0
    assert op.input_bytes == 2 * 3 * 5 * 7 + 2 * 3 * 7 * 4


# ---- vector operators ---------------------------------------------------------------------

def test_pool_vector_ops():
    g = _graph()
    x = g.input("x", (1, 3, 8, 8))
    y = g.pool("max", x, "max", 2)  # stride defaults to the kernel
    assert y.shape == (1, 3, 4, 4)
    assert g.op("max").vector_ops == 3 * 4 * 4 * (2 * 2)  # 192
    z = g.pool("stem", g.input("s", (1, 64, 112, 112)), "max", 3, 2, 1)
    assert z.shape == (1, 64, 56, 56)
    assert g.op("stem").vector_ops == 64 * 56 * 56 * 9
    gp = g.global_pool("gap", g.input("f", (2, 2048, 7, 7)))
    assert gp.shape == (2, 2048, 1, 1)
    assert g.op("gap").vector_ops == 2 * 2048 * 49
    assert g.op("gap").macs == 0 and g.op("gap").gemm() is None


def test_elementwise_vector_ops():
    g = _graph()
    a = g.input("a", (2, 3, 4))
    b = g.input("b", (2, 3, 4))
    c = g.input("c", (2, 3, 4))
    g.relu("relu", a)
    g.residual_add("add", a, b)
    g.elementwise("add3", "add", a, b, c)
    g.elementwise("gelu", "gelu", a, ops_per_element=4)
    assert g.op("relu").vector_ops == 24
    assert g.op("add").vector_ops == 24  # one add per element
    assert g.op("add3").vector_ops == 48  # two adds per element
    assert g.op("gelu").vector_ops == 96
    assert g.op("add").loop_dims() == {"d0": 2, "d1": 3, "d2": 4}


def test_softmax_vector_ops():
    g = _graph()
    g.softmax("sm", g.input("x", (2, 8, 16)))
    assert g.op("sm").vector_ops == 2 * 8 * 16 * 5  # max, subtract, exp, sum, divide


def test_norm_vector_ops_and_params():
    g = _graph()
    x = g.input("x", (4, 10))
    g.norm("ln", x)
    g.norm("rms", x, mode="rmsnorm")
    assert g.op("ln").vector_ops == 40 * 8 and g.op("ln").params == 20  # scale and shift
    assert g.op("rms").vector_ops == 40 * 5 and g.op("rms").params == 10  # scale only
    assert g.op("ln").operand_dims()["ln.weight"] == ("d1",)


def test_batchnorm_is_per_channel():
    g = _graph()
    g.norm("bn", g.input("x", (1, 6, 2, 3)), mode="batchnorm")
    op = g.op("bn")
    assert op.vector_ops == 36 * 2
    assert op.weights[0].shape == (6,) and op.params == 12
    # scale and shift index the channel axis (d1) of NCHW, not the width
    assert op.operand_dims()["bn.weight"] == ("d1",)
    assert op.operand_dims()["bn.bias"] == ("d1",)


def test_flatten_is_free():
    g = _graph()
    y = g.flatten("flat", g.input("x", (2, 512, 7, 7)))
    assert y.shape == (2, 25088)
    op = g.op("flat")
    assert op.macs == 0 and op.vector_ops == 0 and op.loop_dims() == {}


def test_operand_dims_cover_every_tensor_of_every_model():
    for name in model_names():
        for op in build_model(name).ops():
            dims = op.operand_dims()
            assert set(dims) == {t.name for t in op.tensors}, (name, op.name)
            loops = set(op.loop_dims())
            for used in dims.values():
                for d in used:
                    assert set(d.split("+")) <= loops, (name, op.name, d)


# ---- tensor bytes -------------------------------------------------------------------------

def test_tensor_nbytes_plain():
    assert TensorSpec("a", (3, 5), "fp16").nbytes == 30
    assert TensorSpec("a", (3, 5), "int8").nbytes == 15
    assert TensorSpec("a", (5,), "int3").nbytes == 2  # 15 bits round up to 2 bytes
    assert TensorSpec("a", (2, 3, 4), "int4").numel == 24


def test_tensor_nbytes_with_group_scales():
    w = TensorSpec("w", (4096,), "int4", "weight", group_size=128)
    # 4096 * 4 bits + 32 groups * 16-bit scales = 16384 + 512 bits = 2112 bytes
    assert w.nbytes == 2112
    assert w.element_bytes == pytest.approx(2112 / 4096)
    assert w.nbytes == storage_bytes(4096, "int4", 128)
    # a partial last group still has a scale: 100 * 4 + 2 * 16 = 432 bits = 54 bytes
    assert TensorSpec("w", (100,), "int4", "weight", group_size=64).nbytes == 54
    # fp32 scales: 4096 * 4 + 32 * 32 bits = 2176 bytes
    assert TensorSpec("w", (4096,), "int4", "weight", group_size=128, scale_bits=32).nbytes == 2176


def test_storage_bytes():
    assert storage_bytes(10, "int8") == 10
    assert storage_bytes(3, "int1") == 1
    assert storage_bytes(17, "fp6") == 13  # 102 bits
    assert storage_bytes(256, "int2", 64, 8) == 64 + 4  # 4 one-byte scales


def test_weights_of_a_graph_use_the_policy_group_size():
    g = _graph(PrecisionPolicy(weights="int4", activations="fp16", group_size=128))
    g.linear("fc", g.input("x", (2, 256)), 128)
    op = g.op("fc")
    # weight: 32768 * 0.5 B + 256 scales * 2 B; bias: 64 B + 1 scale * 2 B
    assert op.weights[0].nbytes == 16384 + 512
    assert op.weights[1].nbytes == 64 + 2
    assert op.weight_bytes == 16896 + 66
    assert op.input_bytes == 2 * 256 * 2 and op.output_bytes == 2 * 128 * 2
