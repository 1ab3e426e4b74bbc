"""The analytical reuse model: which operands fit, what is re-fetched, what spills."""

from __future__ import annotations

import pytest

from architectures.systolic import fold_plan
from mappers.traffic import systolic_traffic, vector_traffic
from tests.conftest import small_array
from workloads.graph import OpGraph


def _gemm_op(M=64, K=32, N=16):
    g = OpGraph("t")
    g.linear("fc", g.input("x", (M, K)), N, bias=False)
    return g.op("fc")


def _conv_op():
    g = OpGraph("t")
    g.conv2d("conv", g.input("x", (1, 4, 12, 12)), 10, 3)
    return g.op("conv")


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_everything_fits_means_compulsory_traffic(dataflow):
    arch = small_array(8, 8, dataflow, sram="1 MiB")
    op = _gemm_op()
    t = systolic_traffic(op, fold_plan(op.gemm(), 8, 8, dataflow), arch)
    assert t.dram_read == {"ifmap": 64 * 32, "filter": 32 * 16, "ofmap": 0}
    assert t.dram_write == {"ifmap": 0, "filter": 0, "ofmap": 64 * 16}
    assert t.dram_read_bytes == t.compulsory_read
    assert t.dram_write_bytes == t.compulsory_write


def test_conv_ifmap_compulsory_is_the_feature_map_not_im2col():
    arch = small_array(8, 8, "os", sram="1 MiB")
    op = _conv_op()
    t = systolic_traffic(op, fold_plan(op.gemm(), 8, 8, "os"), arch)
    assert t.dram_read["ifmap"] == 12 * 12 * 4      # the input, once
    assert t.sram_read["ifmap"] == 2 * 100 * 36     # im2col rows streamed once per column fold


def test_os_ifmap_that_does_not_fit_is_reread_per_column_fold():
    # ifmap 64x32 = 2048 B > half of a 2 KiB buffer; N = 16 on 8 cols -> 2 column folds
    arch = small_array(8, 8, "os", sram="2 KiB")
    op = _gemm_op()
    plan = fold_plan(op.gemm(), 8, 8, "os")
    t = systolic_traffic(op, plan, arch)
    assert plan.col_folds == 2
    assert t.dram_read["ifmap"] == 2 * 64 * 32
    assert t.dram_loads["ifmap"] == 2
    # the filter column block (32 x 8 = 256 B) fits in half the buffer: read once
    assert t.dram_read["filter"] == 32 * 16


def test_os_filter_block_that_does_not_fit_is_reread_per_row_fold():
    arch = small_array(8, 8, "os", sram="256 B")
    op = _gemm_op()
    plan = fold_plan(op.gemm(), 8, 8, "os")
    t = systolic_traffic(op, plan, arch)
    assert t.dram_read["filter"] == plan.row_folds * 32 * 16


def test_ws_partial_sums_spill_when_they_do_not_fit():
    # K = 32 on 8 rows -> 4 K-folds; partial-sum tile M x C = 64 x 8 = 512 B > 256 B (half of 512 B)
    arch = small_array(8, 8, "ws", sram="512 B")
    op = _gemm_op()
    plan = fold_plan(op.gemm(), 8, 8, "ws")
    t = systolic_traffic(op, plan, arch)
    assert plan.k_folds == 4
    assert t.dram_write["ofmap"] == 4 * 64 * 16
    assert t.dram_read["ofmap"] == 3 * 64 * 16
    assert t.dram_loads["ofmap"] == 4
    # ... and stay on chip when they fit
    big = small_array(8, 8, "ws", sram="64 KiB")
    t2 = systolic_traffic(op, plan, big)
    assert t2.dram_write["ofmap"] == 64 * 16 and t2.dram_read["ofmap"] == 0


def test_is_filter_reread_per_column_fold_when_it_does_not_fit():
    arch = small_array(8, 8, "is", sram="512 B")   # filter 512 B > 256 B
    op = _gemm_op()
    plan = fold_plan(op.gemm(), 8, 8, "is")
    t = systolic_traffic(op, plan, arch)
    assert t.dram_read["filter"] == plan.col_folds * 32 * 16
    assert t.dram_read["ifmap"] == 64 * 32


def test_vector_traffic_reads_inputs_once_writes_output_once():
    g = OpGraph("t")
    a = g.input("a", (1, 8, 4, 4))
    b = g.input("b", (1, 8, 4, 4))
    g.residual_add("add", a, b)
    t = vector_traffic(g.op("add"))
    assert t.dram_read_bytes == 2 * 128 and t.dram_write_bytes == 128


def test_embedding_reads_only_the_gathered_rows():
    g = OpGraph("t")
    ids = g.input("ids", (4, 1), "int32")
    g.embedding("embed", ids, 32000, 4096)
    t = vector_traffic(g.op("embed"))
    assert t.dram_read["filter"] == 4 * 4096  # 4 rows of 4096 int8 values, not the 131 MB table
