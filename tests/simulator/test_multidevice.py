"""Multi-device systems: tensor, pipeline and expert parallelism with collectives on the links."""

from __future__ import annotations

import json

import pytest

from mappers.annotations import LinkPlan
from mappers.pipeline import MapperOptions, Pipeline
from simulator.experiment import parse_experiment
from simulator.run import lower_workload, run_experiment, simulate
from tests.conftest import small_array
from workloads.errors import ConfigError
from workloads.llm import build_llm
from workloads.llm_config import LLMConfig, load_llm_config

TINY = {"model_type": "llama", "hidden_size": 256, "num_attention_heads": 8, "num_key_value_heads": 4,
        "intermediate_size": 512, "num_hidden_layers": 4, "vocab_size": 1024}
MOE = {**TINY, "model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2}
LINK = {"bandwidth_bytes_per_s": 100e9, "latency_s": 1e-6}


@pytest.fixture
def cfg(tmp_path) -> LLMConfig:
    p = tmp_path / "tiny.json"
    p.write_text(json.dumps(TINY))
    return load_llm_config(str(p))


@pytest.fixture
def moe(tmp_path) -> LLMConfig:
    p = tmp_path / "moe.json"
    p.write_text(json.dumps(MOE))
    return load_llm_config(str(p))


def arch():
    return small_array(32, 32, "os", sram="1 MiB", bandwidth="100 GB/s", precision="fp16")


def with_link(g):
    g.meta["link"] = LINK
    return g


def test_tensor_parallel_shards_and_all_reduces(cfg):
    full = build_llm(cfg, phase="prefill", sequence=64)
    tp = build_llm(cfg, phase="prefill", sequence=64, parallelism={"tensor": 4})
    linear = lambda g: sum(op.params for op in g.ops() if op.kind == "linear" and "lm_head" not in op.name)
    assert linear(tp) == pytest.approx(linear(full) / 4)
    colls = [op for op in tp.ops() if op.kind == "collective"]
    # per layer: after the attention output and after the MLP; and the logits' all-gather
    assert len(colls) == 2 * cfg.num_hidden_layers + 1
    ar = next(op for op in colls if op.collective == "all_reduce")
    plan = Pipeline().run(with_link(tp), arch(), MapperOptions()).get(ar.name, LinkPlan)
    payload = 64 * 256 * 2  # tokens x hidden x fp16
    assert plan.transfers == ((0, 2 * 3 * payload // 4, 6),)  # ring: 2(n-1) steps of payload/n


def test_all_reduce_time_on_the_link(cfg):
    g = with_link(build_llm(cfg, phase="prefill", sequence=64, parallelism={"tensor": 4}))
    p = lower_workload(g, arch(), MapperOptions())
    link = p.resource_index("d0.link")
    steps = [i for i in range(p.n_tasks) if p.resource[i] == link and "layers.0.attn.allreduce" in p.labels[i]]
    assert len(steps) == 6
    # each step: payload / n bytes over 100 GB/s at 1 GHz (100 B/cycle), plus 1 us latency
    assert p.resources[link].latency_cycles == 1000
    assert all(p.duration(i) == -(-64 * 256 * 2 // 4 // 100) for i in steps)  # ceil(8192 B / 100 B per cycle)
    r = simulate(g, arch(), engine="numba")
    assert r.metrics()["link_bytes"] == pytest.approx((2 * cfg.num_hidden_layers) * 2 * 3 / 4 * 64 * 256 * 2
                                                      + 3 * 1 * 1024 // 4 * 2, rel=1e-6)


def test_pipeline_microbatches_overlap_stages(cfg):
    seq = build_llm(cfg, phase="prefill", batch=4, sequence=64, parallelism={"pipeline": 2})
    mb = build_llm(cfg, phase="prefill", batch=4, sequence=64, parallelism={"pipeline": 2, "microbatches": 4})
    assert seq.devices == [0, 1] and mb.devices == [0, 1]
    assert any(op.kind == "collective" and op.collective == "send" for op in seq.ops())
    a = simulate(with_link(seq), arch(), engine="numba")
    b = simulate(with_link(mb), arch(), engine="numba")
    busy = {r.name: r.busy_cycles for r in a.resources}
    assert busy["d0.array"] > 0 and busy["d1.array"] > 0
    # microbatches let stage 1 work while stage 0 takes the next one
    assert b.cycles < a.cycles


def test_expert_parallel_imbalance_shows(moe):
    uniform = build_llm(moe, phase="decode", batch=8, context=64, parallelism={"expert": 4})
    skewed = build_llm(moe, phase="decode", batch=8, context=64, parallelism={"expert": 4},
                       expert_load={"distribution": "explicit", "shares": [0.7, 0.1, 0.1, 0.1]})
    assert uniform.devices == [0, 1, 2, 3]
    u = simulate(with_link(uniform), arch(), engine="numba")
    s = simulate(with_link(skewed), arch(), engine="numba")
    bu = [r.busy_cycles for r in u.resources if r.name.endswith(".array")]
    bs = [r.busy_cycles for r in s.resources if r.name.endswith(".array")]
    assert max(bu[1:]) - min(bu[1:]) <= 0.01 * max(bu[1:])  # devices 1-3 run only experts: balanced
    assert bs[0] > max(bs[1:])  # expert 0 (device 0) gets 70 % of the rows
    assert s.cycles > u.cycles


def test_engines_agree_on_a_multi_device_program(moe):
    g = with_link(build_llm(moe, phase="decode", batch=8, context=64, parallelism={"expert": 4}))
    a = simulate(g, arch(), engine="numba")
    b = simulate(g, arch(), engine="simpy")
    assert a.cycles == b.cycles
    assert [(r.name, r.busy_cycles) for r in a.resources] == [(r.name, r.busy_cycles) for r in b.resources]


EXP = """\
name: t
architecture: {preset: scalesim_32x32, overrides: {pe.precision: fp16, memory.dram.size: 1 GiB}}
system: %s
workload: {config: %s, phase: generate, batch: 4, sequence: 32, generate: 4}
engine: analytical
"""


def test_system_section_end_to_end(tmp_path):
    p = tmp_path / "tiny.json"
    p.write_text(json.dumps(TINY))
    r = run_experiment(parse_experiment(EXP % ("{devices: 2, link: {bandwidth: 50 GB/s, latency: 2 us}, "
                                               "parallelism: {tensor: 2}}", p), "e.yaml"))
    m = r.metrics()
    assert m["link_bytes"] > 0 and m["ttft_s"] > 0 and m["tpot_s"] > 0


@pytest.mark.parametrize("system, message", [
    ("{devices: 4, link: {bandwidth: 50 GB/s}, parallelism: {tensor: 2}}", "uses 2 devices"),
    ("{devices: 2, parallelism: {tensor: 2}}", "need a link"),
    ("{devices: 3, link: {bandwidth: 50 GB/s}, parallelism: {tensor: 3}}", "does not divide num_attention_heads 8"),
    ("{devices: 3, link: {bandwidth: 50 GB/s}, parallelism: {tensor: 3}}", "does not divide intermediate_size 512"),
    ("{devices: 8, link: {bandwidth: 50 GB/s}, parallelism: {pipeline: 8}}", "8 stages for 4 layers"),
    ("{devices: 4, link: {bandwidth: 50 GB/s}, parallelism: {tensor: 2, expert: 2}}", "uses 2 devices"),
    ("{devices: 4, link: {bandwidth: 50 GB/s}, parallelism: {tensor: 4, expert: 4}}", "has no experts"),
])
def test_bad_systems_name_the_numbers(tmp_path, system, message):
    p = tmp_path / "tiny.json"
    p.write_text(json.dumps(TINY))
    with pytest.raises(ConfigError, match=message):
        parse_experiment(EXP % (system, p), "e.yaml")


def test_multi_device_cnn_is_an_error():
    with pytest.raises(ConfigError, match="not an LLM"):
        parse_experiment("name: t\narchitecture: {preset: scalesim_32x32}\nsystem: {devices: 2, link: "
                         "{bandwidth: 1 GB/s}, parallelism: {tensor: 2}}\nworkload: {model: resnet18}\n", "e.yaml")


def test_vocabulary_is_padded_to_the_tensor_degree(tmp_path):
    p = tmp_path / "odd.json"
    p.write_text(json.dumps({**TINY, "vocab_size": 1001}))
    g = build_llm(load_llm_config(str(p)), phase="decode", batch=1, context=8, parallelism={"tensor": 4})
    head = g.op("lm_head")
    assert head.out_features == 251  # ceil(1001 / 4)
    assert g.op("lm_head.allgather").output.shape[-1] == 4 * 251


@pytest.mark.parametrize("model, system", [
    (TINY, "{devices: 2, link: {bandwidth: 50 GB/s}, parallelism: {tensor: 2}}"),
    (TINY, "{devices: 2, link: {bandwidth: 50 GB/s}, parallelism: {pipeline: 2}}"),
    (MOE, "{devices: 4, link: {bandwidth: 50 GB/s}, parallelism: {expert: 4}}"),
    (MOE, "{devices: 4, link: {bandwidth: 50 GB/s}, parallelism: {tensor: 4, expert: 4}}"),
])
def test_energy_per_token_counts_every_device(tmp_path, model, system):
    # Splitting a model over devices does not make its MACs and weight reads cheaper: the
    # system's energy per token is about one device's, not 1/devices of it (the simulated graph
    # holds one tensor-parallel device, and device 0's attention, data or tensor parallel, under
    # expert parallelism). It is
    # somewhat more: collectives, and data-parallel attention reads its weights on every device.
    p = tmp_path / "m.json"
    p.write_text(json.dumps(model))
    one = run_experiment(parse_experiment(EXP.replace("system: %s\n", "") % p, "e.yaml")).metrics()
    split = run_experiment(parse_experiment(EXP % (system, p), "e.yaml")).metrics()
    assert split["devices"] > 1 and one["devices"] == 1
    assert 0.98 < split["energy_pj_per_token"] / one["energy_pj_per_token"] < 1.25
    assert split["energy_pj_per_token"] * split["generated_tokens"] == pytest.approx(split["system_energy_pj"])
    assert split["power_w"] == pytest.approx(split["system_energy_pj"] * 1e-12 / split["latency_s"])
    assert split["sram_bytes"] == split["devices"] * one["sram_bytes"]


def test_the_table_shows_every_devices_energy_and_components_only_from_counters(tmp_path):
    from simulator.report import summary_lines

    p = tmp_path / "tiny.json"
    p.write_text(json.dumps(TINY))
    r = run_experiment(parse_experiment(EXP % ("{devices: 2, link: {bandwidth: 50 GB/s, energy: 10 pJ/B}, "
                                               "parallelism: {tensor: 2}}", p), "e.yaml"))
    parts = r.energy_components()
    assert "system" not in parts and parts["link"] > 0 and parts["mac"] > 0
    assert sum(parts.values()) == pytest.approx(r.energy_pj)
    lines = dict(summary_lines(r))
    assert "system" not in lines["energy"]
    assert lines["energy, all 2 devices"].startswith(f"{r.metrics()['system_energy_pj'] * 1e-6:.4g}")
