"""Errors about PEs: only the real problem under an area budget, key paths and lines of a PE's
cross-field rules, group-quantized weights on kinds without per-group scales, the operand a
problem is about, group-size hints, and ``step_cost`` refusing what the PE cannot run."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from architectures.pe import AntPE, BitFusionPE, BitModPE, LutPE, MixPE, OlivePE, PE, TpePE
from architectures.pe.base import suggest_group_size
from architectures.systolic import SystolicArray
from simulator.experiment import load_experiment
from workloads.errors import ConfigError

MEM = {"ifmap_sram": {"size_bytes": 65536}, "filter_sram": {"size_bytes": 65536},
       "ofmap_sram": {"size_bytes": 65536}}


def _load(tmp_path, text: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_experiment(path)
    return str(exc.value)


# ---- an invalid PE under pe_area_budget_mm2: only the PE's problem --------------------------------

def test_a_bad_pe_under_an_area_budget_reports_only_the_pe(tmp_path):
    text = _load(tmp_path, """name: bad
architecture:
  template: systolic_array
  rows: 8
  pe_area_budget: 0.5 mm^2
  freq: 1 GHz
  pe:
    kind: bitmod
    dot_width: 0
  memory: {ifmap_sram: {size: 64 KiB}, filter_sram: {size: 64 KiB}, ofmap_sram: {size: 64 KiB}}
workload:
  gemm: {M: 64, K: 256, N: 64}
""")
    assert "bad.yaml:9: architecture.pe.dot_width" in text, text
    assert "cols" not in text and len(text.strip().splitlines()) == 1, text


def test_a_bad_pe_under_an_area_budget_from_python():
    with pytest.raises(ValidationError) as exc:
        SystolicArray(rows=8, freq_hz=1e9, pe={"kind": "bitmod", "dot_width": 0}, pe_area_budget_mm2=0.1,
                      memory=MEM)
    text = str(exc.value)
    assert "dot_width" in text and "cols" not in text, text


# ---- a PE's cross-field rule names its field, with file and line ---------------------------------

def test_bitfusion_min_above_max_names_min_bits_and_its_line(tmp_path):
    text = _load(tmp_path, """name: bad
architecture:
  preset: mixpe_bitfusion
  overrides:
    pe.min_bits: 8
    pe.max_bits: 4
workload:
  gemm: {M: 64, K: 256, N: 64}
""")
    assert "bad.yaml:5: architecture.overrides.pe.min_bits: 8 is above max_bits 4" in text, text
    assert "pe.:" not in text


def test_bitfusion_min_above_max_inline(tmp_path):
    text = _load(tmp_path, """name: bad
architecture:
  template: systolic_array
  rows: 8
  cols: 8
  freq: 1 GHz
  pe:
    kind: bitfusion
    min_bits: 8
    max_bits: 4
  memory: {ifmap_sram: {size: 64 KiB}, filter_sram: {size: 64 KiB}, ofmap_sram: {size: 64 KiB}}
workload:
  gemm: {M: 64, K: 256, N: 64}
""")
    assert "bad.yaml:9: architecture.pe.min_bits: 8 is above max_bits 4" in text, text


def test_a_short_key_override_keeps_the_users_key_and_line(tmp_path):
    text = _load(tmp_path, """name: bad
architecture:
  preset: bitmod
  overrides:
    pe.energy_per_cycle: -1 pJ
workload:
  gemm: {M: 64, K: 256, N: 64}
  precision: {weights: int3}
""")
    assert "bad.yaml:5: architecture.overrides.pe.energy_per_cycle: input should be greater than or equal to 0" \
        in text, text


def test_bitfusion_min_above_max_from_python():
    with pytest.raises(ValidationError, match="min_bits"):
        BitFusionPE(max_bits=4, min_bits=8)


# ---- group-quantized weights on kinds without per-group scales ------------------------------------

@pytest.mark.parametrize("pe", [AntPE(), OlivePE(), BitFusionPE(), TpePE()])
def test_kinds_without_group_scales_refuse_any_group_size(pe):
    msgs = pe.group_problems(128, {4096: "layers.0.mlp.up"})
    assert len(msgs) == 1 and f"the {pe.kind} PE" in msgs[0] and "group size 128" in msgs[0]
    assert "workload.precision.group_size" in msgs[0]
    assert pe.group_problems(None, {4096: "x"}) == []  # not group-quantized: fine


@pytest.mark.parametrize("pe", [BitModPE(), MixPE(), LutPE(), PE(dequant="per_group")])
def test_kinds_with_group_scales_need_groups_that_tile_k(pe):
    assert pe.group_problems(128, {4096: "a", 11008: "b"}) == []
    msgs = pe.group_problems(100, {4096: "a", 11008: "b"})
    assert len(msgs) == 2 and "K = 4096 of 'a'" in msgs[0] and "K = 11008 of 'b'" in msgs[1]
    # the hint divides every K and is a sensible size: 128 (gcd 256; closest to 100 in log scale)
    assert all("divides every K (4096, 11008), e.g. 128" in m for m in msgs)


def test_group_size_hints():
    assert suggest_group_size(100, [4096, 11008]) == 128
    assert suggest_group_size(128, [768, 3072]) == 128
    assert suggest_group_size(128, [300]) == 150  # divisors of 300 near 128: 100, 150 -> 150
    assert suggest_group_size(128, [27, 64]) is None  # no common divisor above 1
    msg = BitModPE().group_problems(128, {27: "conv1", 64: "fc"})
    assert "K = 27 of 'conv1'" in msg[0] and "leave group_size unset" in msg[0]


def test_a_mac_that_converts_on_load_takes_any_group_size():
    assert PE().group_problems(100, {4096: "x"}) == []


# ---- the operand a problem is about --------------------------------------------------------------

def test_problems_name_the_kv_cache_when_it_is_the_operand():
    msg = MixPE().problems("fp16", "int8", operand="KV cache")
    assert msg == ["fp16 KV cache are wider than the int8 datapath"]
    assert "weights" in MixPE().problems("fp16", "int8")[0]  # the default operand
    assert "int32 KV cache" in TpePE().problems("int32", "int8", operand="KV cache")[0]
    assert "fp32 KV cache" in PE(precision="int8").problems("fp32", "int8", operand="KV cache")[0]


# ---- step_cost from Python refuses what the PE cannot run ------------------------------------------

def _array(pe: dict) -> SystolicArray:
    return SystolicArray(rows=4, cols=4, freq_hz=1e9, pe=pe, memory=MEM)


def test_step_cost_refuses_an_unsupported_pair():
    with pytest.raises(ValueError, match="cannot run fp16 x fp16.*MixPE takes int8 activations"):
        _array({"kind": "mixpe", "lanes": 2}).step_cost("fp16", "fp16")
    with pytest.raises(ValueError, match="in groups of 128.*the ant PE"):
        _array({"kind": "ant"}).step_cost("int4", "fp16", group_size=128)
    step, pc = _array({"kind": "mixpe", "lanes": 2}).step_cost("int4", "int8", group_size=128)
    assert step.dot_width == 2 and pc.dequant == "per_group"
