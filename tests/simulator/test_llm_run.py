"""LLM experiments: prefill/decode/generate phases and their metrics."""

from __future__ import annotations

import json

import pytest

from simulator.experiment import parse_experiment
from simulator.llm import decode_samples
from simulator.run import run_experiment
from workloads.errors import ConfigError

TINY = {"model_type": "llama", "hidden_size": 256, "num_attention_heads": 8, "num_key_value_heads": 2,
        "intermediate_size": 512, "num_hidden_layers": 2, "vocab_size": 1000}

ARCH = """\
architecture:
  preset: scalesim_32x32
  overrides: {pe.precision: fp16, memory.dram.size: 1 GiB, memory.dram.bandwidth: 64 GB/s}
"""


@pytest.fixture
def tiny_config(tmp_path):
    p = tmp_path / "tiny.json"
    p.write_text(json.dumps(TINY))
    return p


def exp(tiny_config, workload: str, engine: str = "analytical"):
    return parse_experiment(f"name: t\n{ARCH}workload:\n  config: {tiny_config}\n{workload}engine: {engine}\n",
                            "exp.yaml")


def test_decode_samples_cover_every_step():
    assert decode_samples(100, 1, "mean") == [(100, 1.0)]
    assert decode_samples(100, 3, "mean") == [(101, 3.0)]
    assert decode_samples(100, 4, "mean") == [(102, 4.0)]  # mean context 101.5, rounded half up
    assert [c for c, _ in decode_samples(100, 4, "all")] == [100, 101, 102, 103]


def test_mean_context_decode_matches_every_step(tiny_config):
    mean = run_experiment(exp(tiny_config, "  phase: decode\n  sequence: 64\n  generate: 16\n"))
    every = run_experiment(exp(tiny_config, "  phase: decode\n  sequence: 64\n  generate: 16\n"
                                            "  decode_steps: all\n"))
    assert mean.cycles == pytest.approx(every.cycles, rel=0.01)
    assert mean.energy_pj == pytest.approx(every.energy_pj, rel=0.01)
    assert mean.metrics()["dram_read_bytes"] == pytest.approx(every.metrics()["dram_read_bytes"], rel=0.01)


def test_generate_metrics_are_consistent(tiny_config):
    r = run_experiment(exp(tiny_config, "  phase: generate\n  batch: 2\n  sequence: 32\n  generate: 8\n",
                           engine="numba"))
    m = r.metrics()
    assert m["cycles"] == m["prefill_cycles"] + m["decode_cycles"]
    assert m["ttft_s"] == pytest.approx(m["prefill_cycles"] / r.freq_hz)
    assert m["tpot_s"] == pytest.approx(m["decode_cycles"] / 8 / r.freq_hz)
    assert m["generated_tokens"] == 16 and m["prompt_tokens"] == 64
    assert m["throughput_tokens_per_s"] == pytest.approx(16 / m["latency_s"])
    assert m["energy_pj_per_token"] == pytest.approx(m["energy_pj"] / 16)
    names = [l.name for l in r.layers]
    assert names[0].startswith("prefill:") and names[-1].startswith("decode:")
    assert len(set(names)) == len(names)


def test_decode_reads_the_kv_cache(tiny_config):
    short = run_experiment(exp(tiny_config, "  phase: decode\n  sequence: 64\n  generate: 1\n")).metrics()
    long = run_experiment(exp(tiny_config, "  phase: decode\n  sequence: 1024\n  generate: 1\n")).metrics()
    # K and V caches of 2 layers x 2 KV heads x 32 dims, fp16, for the extra 960 positions
    assert long["dram_read_bytes"] - short["dram_read_bytes"] == 2 * 2 * 2 * 32 * 2 * 960


def test_llm_options_on_a_cnn_are_errors():
    with pytest.raises(ConfigError) as err:
        parse_experiment(f"name: t\n{ARCH}workload:\n  model: resnet18\n  phase: decode\n  generate: 4\n",
                         "exp.yaml")
    paths = {p.path for p in err.value.problems}
    assert paths == {"workload.phase", "workload.generate"}


def test_encoder_has_no_decode():
    with pytest.raises(ConfigError, match="encoder"):
        parse_experiment(f"name: t\n{ARCH}workload:\n  model: bert-base\n  phase: decode\n", "exp.yaml")


def test_bad_config_file_names_the_field(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**TINY, "hidden_size": 250}))
    with pytest.raises(ConfigError) as err:
        parse_experiment(f"name: t\n{ARCH}workload:\n  config: {bad}\n", "exp.yaml")
    assert "hidden_size" in str(err.value) and "250" in str(err.value)


def test_shipped_model_with_quantized_weights():
    e = parse_experiment(f"name: t\n{ARCH.replace('1 GiB', '64 GiB')}workload:\n  model: llama-2-7b\n"
                         "  phase: prefill\n  sequence: 16\n  precision: {weights: int4, group_size: 128}\n",
                         "exp.yaml")
    w = e.workload.weight_bytes
    params = e.workload.meta["param_counts"]["total"]
    assert w == pytest.approx(params * 4 / 8 + params / 128 * 2, rel=0.001)
