"""PE checks against a workload at load time (simulator.experiment with architectures.pe): group-
quantized weights on kinds without per-group scales, the KV cache named as the operand, group-size
hints, per-group scale bits, and short keys shown as written (with their lines)."""

from __future__ import annotations

import pytest

from simulator.experiment import load_experiment
from workloads.errors import ConfigError


def _error(tmp_path, text: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_experiment(path)
    return str(exc.value)


@pytest.mark.parametrize("preset, pe", [("bitmod_ant", "ant"), ("bitmod_olive", "olive"),
                                        ("mixpe_bitfusion", "bitfusion"), ("tpe_csd", "tpe")])
def test_group_quantized_weights_on_a_pe_without_group_scales(tmp_path, preset, pe):
    prec = ("{weights: int8, activations: int8, group_size: 128}" if pe in ("bitfusion", "tpe") else
            "{weights: int4, activations: fp16, group_size: 128}")
    text = _error(tmp_path, f"""name: bad
architecture:
  preset: {preset}
workload:
  gemm: {{M: 64, K: 256, N: 64}}
  precision: {prec}
""")
    assert "bad.yaml:6: workload.precision.group_size: group-quantized weights (group size 128) cannot run " \
           f"on the {pe} PE" in text, text


def test_the_kv_cache_is_named_when_it_is_the_operand(tmp_path):
    text = _error(tmp_path, """name: bad
architecture:
  preset: mixpe_w4a8
workload:
  model: llama-2-7b-layer
  phase: prefill
  batch: 1
  sequence: 128
  precision: {weights: int4, group_size: 128, activations: int8, kv_cache: fp16}
""")
    assert "workload.precision.kv_cache: fp16 KV cache are wider than the int8 datapath in 'layers.0.attn" in text, text
    assert "fp16 weights" not in text


def test_a_group_size_that_divides_no_k_gets_a_common_sensible_hint(tmp_path):
    text = _error(tmp_path, """name: bad
architecture:
  preset: bitmod
workload:
  model: llama-2-7b-layer
  phase: prefill
  batch: 1
  sequence: 128
  precision: {weights: int4, group_size: 100, activations: fp16, kv_cache: int8}
""")
    # Llama-2-7B's K: 4096 (projections) and 11008 (down projection), gcd 256: 128 divides both
    assert "group size 100 does not divide the reduction dimension K = 4096" in text, text
    assert "e.g. 128" in text and "e.g. 4" not in text


def test_scale_bits_set_the_group_scale_overhead(tmp_path):
    # BitMoD's count: int3 weights in groups of 128 with 8-bit scales = 3 + 8/128 = 3.0625 bits
    path = tmp_path / "ok.yaml"
    path.write_text("""name: ok
architecture:
  preset: bitmod
workload:
  gemm: {M: 64, K: 4096, N: 4096}
  precision: {weights: int3, group_size: 128, scale_bits: 8, activations: fp16}
""")
    exp = load_experiment(path)
    w = next(op for op in exp.workload.ops() if op.is_matrix).weights[0]
    assert (w.scale_bits, w.effective_bits) == (8, 3.0625)
    assert w.nbytes == 4096 * 4096 * 3.0625 / 8
    assert exp.resolved_config()["workload"]["precision"]["scale_bits"] == 8
    text = _error(tmp_path, """name: bad
architecture:
  preset: bitmod
workload:
  gemm: {M: 64, K: 4096, N: 4096}
  precision:
    weights: int3
    scale_bits: 8
""")
    assert "bad.yaml:8: workload.precision.scale_bits: 8-bit group scales need group_size" in text, text


def test_a_short_key_written_inline_keeps_its_spelling_and_line(tmp_path):
    text = _error(tmp_path, """name: bad
architecture:
  template: systolic_array
  rows: 8
  cols: 8
  freq: 1 GHz
  pe:
    kind: bitmod
    energy_per_cycle: -1 pJ
  memory:
    ifmap_sram: {size: 64 KiB}
    filter_sram: {size: 64 KiB}
    ofmap_sram:
      size: -64 KiB
workload:
  gemm: {M: 64, K: 256, N: 64}
""")
    assert "bad.yaml:9: architecture.pe.energy_per_cycle: input should be greater than or equal to 0" in text, text
    assert "bad.yaml:14: architecture.memory.ofmap_sram.size: input should be greater than 0" in text, text


def test_a_short_key_under_an_override_keeps_its_spelling_and_line(tmp_path):
    text = _error(tmp_path, """name: bad
architecture:
  preset: bitmod
  overrides:
    pe:
      kind: bitmod
      energy_per_cycle: -1 pJ
workload:
  gemm: {M: 64, K: 256, N: 64}
""")
    assert "bad.yaml:7: architecture.overrides.pe.energy_per_cycle: input should be greater than or equal to 0" \
        in text, text
