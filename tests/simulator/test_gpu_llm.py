"""Llama-2-7B on an A100 (experiments/llm/): decode is memory-bound, prefill compute-bound, fused
attention beats unfused on a long prompt, and the roofline plot has a point per layer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mappers.pipeline import MapperOptions
from simulator.experiment import load_experiment
from simulator.run import run_experiment

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments" / "llm"
LINEAR = ("attn.q", "attn.k", "attn.v", "attn.o", "mlp.gate", "mlp.up", "mlp.down")


@pytest.fixture(scope="module")
def decode():
    exp = load_experiment(EXPERIMENTS / "llama2_7b_a100_decode.yaml")
    return exp, run_experiment(exp)


@pytest.fixture(scope="module")
def prefill():
    exp = load_experiment(EXPERIMENTS / "llama2_7b_a100_prefill.yaml")
    return exp, run_experiment(exp)


def ridge(arch) -> float:
    peak, bandwidth = arch.roofline()
    return peak / bandwidth  # MACs per HBM byte: 156e12 / 2.039e12 = 76.5 for the A100


def intensity(layer) -> float:
    c = layer.counters
    return layer.macs / (c["dram_read_bytes"] + c["dram_write_bytes"])


def linear_layers(result):
    return [l for l in result.layers if l.name.endswith(LINEAR)]


def test_decode_batch1_is_memory_bound(decode):
    exp, r = decode
    m = r.metrics()
    f = r.freq_hz
    steps = exp.llm.generate
    assert exp.llm.batch == 1 and steps == 128
    # per token: HBM time (bytes / sustained bandwidth) exceeds the compute time and the launches
    hbm = m["gpu_model_memory_cycles"] / f / steps
    compute = m["gpu_model_compute_cycles"] / f / steps
    launches = m["gpu_kernel_launches"] * exp.architecture.kernel.launch_overhead_s / steps
    assert hbm > 5 * compute and hbm > launches
    assert hbm > 0.5 * m["tpot_s"]
    # every step reads the 6.7 G fp16 weights (13.5 GB) and the KV cache once
    weights = exp.workload.weight_bytes
    assert m["dram_read_bytes"] / steps == pytest.approx(weights, rel=0.1)
    assert m["tpot_s"] == pytest.approx(hbm + launches, rel=0.1)  # the compute hides under HBM
    # the stalls are memory stalls, and every projection and MLP layer waits for HBM
    assert m["stall_memory_cycles"] > 0
    assert m["stall_dependency_cycles"] == m["stall_busy_cycles"] == 0
    lin = linear_layers(r)
    assert len(lin) == 7 * 32
    assert all(l.stall_memory_cycles > l.total_cycles / 3 for l in lin)
    # achieved arithmetic intensity: far left of the A100's ridge point, for the run and per layer
    assert m["macs"] / (m["dram_read_bytes"] + m["dram_write_bytes"]) < 1 < ridge(exp.architecture)
    assert all(intensity(l) < 1 for l in lin)
    assert m["throughput_tokens_per_s"] == pytest.approx(1 / m["tpot_s"])


def test_prefill_2048_is_compute_bound(prefill):
    exp, r = prefill
    m = r.metrics()
    assert exp.llm.sequence == 2048 and exp.mapper.attention == "fused"
    lin = linear_layers(r)
    assert len(lin) == 7 * 32
    for l in lin:  # right of the ridge, and the tensor cores set the time
        assert intensity(l) > 2 * ridge(exp.architecture), l.name
        assert l.counters["gpu_model_compute_cycles"] > 3 * l.counters["gpu_model_memory_cycles"], l.name
    matrix = [l for l in r.layers if l.macs]
    macs = sum(l.macs for l in matrix)
    dram = sum(l.counters["dram_read_bytes"] + l.counters["dram_write_bytes"] for l in matrix)
    assert macs / dram > 2 * ridge(exp.architecture)
    # most of the time is spent at a large fraction of the tensor-core peak
    assert m["utilization"] > 0.6
    assert m["ttft_s"] == pytest.approx(m["latency_s"])
    assert m["throughput_tokens_per_s"] == pytest.approx(2048 / m["ttft_s"])
    assert m["stall_memory_cycles"] < 0.1 * m["cycles"]


def test_fused_attention_wins_on_a_long_prompt(prefill):
    exp, fused = prefill
    unfused = run_experiment(dataclasses.replace(exp, mapper=MapperOptions(attention="unfused")))
    mf, mu = fused.metrics(), unfused.metrics()
    # unfused: 32 layers x 32 heads x 2048^2 fp16 scores written by QK^T, read and written by the
    # softmax, read by AV: 4 x 256 MiB per layer more HBM traffic
    scores = 32 * 2048 * 2048 * 2
    extra = (mu["dram_read_bytes"] + mu["dram_write_bytes"]) - (mf["dram_read_bytes"] + mf["dram_write_bytes"])
    assert extra >= 32 * 3.9 * scores
    assert fused.cycles < unfused.cycles
    assert mf["ttft_s"] < mu["ttft_s"]
    assert mf["macs"] == mu["macs"]


def test_roofline_plot_has_a_point_per_layer(decode, tmp_path):
    pytest.importorskip("matplotlib")
    from simulator.plots import write_plots

    exp, r = decode
    peak, bandwidth = exp.architecture.roofline()
    files = write_plots(r, tmp_path, peak_macs_per_s=peak, dram_bytes_per_s=bandwidth)
    assert (tmp_path / "roofline.png") in files and (tmp_path / "roofline.png").stat().st_size > 0
    points = [l for l in r.layers if l.macs and l.counters.get("dram_read_bytes", 0) and l.latency_s > 0]
    assert len(points) >= 7 * 32
