"""The systolic fold model: hand-computed cycles, folds, efficiency and SRAM counts."""

from __future__ import annotations

import math

import pytest

from architectures.systolic import PE, fold_plan
from tests.conftest import small_array
from workloads.errors import ConfigError
from workloads.ops import GemmShape
from workloads.schema import validate
from architectures.systolic import SystolicArray


# A 3x3 conv on a 12x12x4 input with 10 filters: P = 10*10 = 100 pixels, K = 3*3*4 = 36, N = 10.
CONV = GemmShape(M=100, K=36, N=10)


@pytest.mark.parametrize("dataflow, folds, per_fold", [
    # os: rows <- M: ceil(100/8)=13, cols <- N: ceil(10/8)=2; per fold K + R + C - 2 = 36+8+8-2
    ("os", 13 * 2, 36 + 8 + 8 - 2),
    # ws: rows <- K: ceil(36/8)=5, cols <- N: 2; per fold 2R + C + M - 2 = 16+8+100-2
    ("ws", 5 * 2, 2 * 8 + 8 + 100 - 2),
    # is: rows <- K: 5, cols <- M: 13; per fold 2R + C + N - 2 = 16+8+10-2
    ("is", 5 * 13, 2 * 8 + 8 + 10 - 2),
])
def test_fold_cycles_by_hand(dataflow, folds, per_fold):
    plan = fold_plan(CONV, 8, 8, dataflow)
    assert plan.folds == folds
    assert plan.fold_cycles == per_fold
    assert plan.compute_cycles == folds * per_fold


def test_edge_folds_cost_a_full_fold():
    # M = 9 on 8 rows: the second row fold uses 1 row but still takes T + R + C - 2 cycles
    plan = fold_plan(GemmShape(M=9, K=5, N=8), 8, 8, "os")
    assert (plan.row_folds, plan.col_folds) == (2, 1)
    assert plan.compute_cycles == 2 * (5 + 8 + 8 - 2)
    # mapping efficiency: mean over folds of used/(R*C): (8*8 + 1*8) / 2 / 64
    assert plan.mapping_efficiency == pytest.approx((64 + 8) / 2 / 64)


def test_exact_fit_has_full_mapping_efficiency():
    plan = fold_plan(GemmShape(M=16, K=7, N=24), 8, 8, "os")
    assert plan.mapping_efficiency == 1.0
    assert plan.compute_utilization == pytest.approx(7 / (7 + 8 + 8 - 2))


def test_groups_multiply_folds():
    # depthwise: 32 channels, each a GEMM of M=49, K=9, N=1
    g = GemmShape(M=49, K=9, N=1, groups=32)
    plan = fold_plan(g, 8, 8, "ws")
    assert plan.folds == 32 * math.ceil(9 / 8) * 1
    assert plan.compute_cycles == plan.folds * (2 * 8 + 8 + 49 - 2)
    # one filter column out of 8: the array is mostly idle
    assert plan.mapping_efficiency == pytest.approx((9 / 16) * (1 / 8))


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_sram_element_counts(dataflow):
    plan = fold_plan(CONV, 8, 8, dataflow)
    M, K, N = CONV.M, CONV.K, CONV.N
    expect = {
        # (ifmap reads, filter reads, ofmap writes, ofmap read-backs)
        "os": (2 * M * K, 13 * K * N, M * N, 0),           # ifmap once per col fold, filter once per row fold
        "ws": (2 * M * K, K * N, 5 * M * N, 4 * M * N),    # 5 K-folds of partial sums
        "is": (M * K, 13 * K * N, 5 * M * N, 4 * M * N),   # filter streamed per M fold
    }[dataflow]
    assert (plan.ifmap_reads, plan.filter_reads, plan.ofmap_writes, plan.ofmap_reads) == expect


def test_unknown_dataflow():
    with pytest.raises(ValueError, match="unknown dataflow"):
        fold_plan(CONV, 8, 8, "rs")


def test_pe_supports_precisions():
    assert PE(precision="int8").supports("int4")
    assert not PE(precision="int8").supports("int16")
    assert not PE(precision="int8").supports("fp16")
    assert PE(precision="fp16").supports("fp16")
    assert PE(precision="fp16").supports("int8")
    assert not PE(precision="fp16").supports("bf16")
    assert PE(precision="fp32").supports("bf16")
    assert PE(precision="int8").accumulator_precision == "int32"
    assert PE(precision="bf16").accumulator_precision == "fp32"


def test_buffer_smaller_than_an_array_edge_is_rejected():
    data = {"rows": 256, "cols": 256, "freq": "1 GHz",
            "memory": {"ifmap_sram": {"size": "256 B"}, "filter_sram": {"size": "1 MiB"},
                       "ofmap_sram": {"size": "1 MiB"}}}
    with pytest.raises(ConfigError) as err:
        validate(SystolicArray, data, file="x.yaml", prefix=("architecture",))
    text = str(err.value)
    assert "architecture.memory.ifmap_sram.size_bytes" in text
    assert "smaller than two rows of operands" in text


def test_zero_rows_and_negative_bandwidth_all_reported():
    data = {"rows": 0, "cols": 8, "freq": "1 GHz",
            "memory": {"ifmap_sram": {"size": "1 KiB"}, "filter_sram": {"size": "1 KiB"},
                       "ofmap_sram": {"size": "1 KiB"}, "dram": {"bandwidth": "-1 GB/s"}}}
    with pytest.raises(ConfigError) as err:
        validate(SystolicArray, data, file="x.yaml")
    paths = [p.path for p in err.value.problems]
    assert "rows" in paths and "memory.dram.bandwidth_bytes_per_s" in paths


def test_derived_properties():
    a = small_array(16, 32, freq="500 MHz", bandwidth="8 GB/s")
    assert a.pes == 512
    assert a.peak_macs_per_s == 512 * 500e6
    assert a.dram_bytes_per_cycle == pytest.approx(16.0)
    assert a.vector_lanes == 32
