"""Tensor-parallel attention beside expert-parallel experts on the same devices
(``system.parallelism: {tensor: N, expert: N}``, workloads/llm_parallel.py), and the degrees'
rules."""

from __future__ import annotations

import json

import networkx as nx
import pytest

from mappers.annotations import LinkPlan
from mappers.pipeline import MapperOptions, Pipeline
from simulator.experiment import parse_experiment
from simulator.run import run_experiment, simulate
from tests.conftest import small_array
from workloads.errors import ConfigError
from workloads.llm import build_llm
from workloads.llm_config import LLMConfig, load_llm_config, shipped_config
from workloads.llm_parallel import Parallelism
from workloads.serving import IterationShape, build_iteration

# 8 query heads, 4 KV heads, 4 experts top-2: tensor 4 gives each device 2 heads and 1 KV head
MOE = {"model_type": "mixtral", "hidden_size": 256, "num_attention_heads": 8, "num_key_value_heads": 4,
       "intermediate_size": 512, "num_hidden_layers": 2, "vocab_size": 1024, "num_local_experts": 4,
       "num_experts_per_tok": 2}
LINK = {"bandwidth_bytes_per_s": 100e9, "latency_s": 1e-6}
TP_EP = {"tensor": 4, "expert": 4}


def _cfg(tmp_path, **changes) -> LLMConfig:
    p = tmp_path / "moe.json"
    p.write_text(json.dumps({**MOE, **changes}))
    return load_llm_config(str(p))


@pytest.fixture
def moe(tmp_path) -> LLMConfig:
    return _cfg(tmp_path)


def arch():
    return small_array(32, 32, "os", sram="1 MiB", bandwidth="100 GB/s", precision="fp16")


def test_the_degrees_say_what_each_device_holds():
    # (tensor, expert) -> devices, data-parallel attention replicas, ways each expert is split,
    # token shards routed per tensor group
    cases = {(1, 1): (1, 1, 1, 1), (4, 1): (4, 1, 4, 1), (1, 4): (4, 4, 1, 1), (4, 4): (4, 1, 1, 4),
             (8, 8): (8, 1, 1, 8)}
    for (t, e), want in cases.items():
        p = Parallelism(tensor=t, expert=e)
        assert (p.devices, p.data_parallel, p.expert_tensor, p.token_shards) == want, (t, e)
    assert Parallelism(tensor=2, pipeline=2).devices == 4


def test_a_combination_not_modelled_is_an_error_from_python_too(moe):
    with pytest.raises(ConfigError, match="system.parallelism.tensor: 2 with expert 4 is not modelled"):
        build_llm(moe, phase="decode", batch=8, context=8, parallelism={"tensor": 2, "expert": 4})
    with pytest.raises(ConfigError, match="modelled without pipeline stages"):
        build_llm(moe, phase="decode", batch=8, context=8, parallelism={"expert": 2, "pipeline": 2})


def test_attention_is_tensor_parallel_and_experts_whole_on_the_same_devices(moe):
    g = build_llm(moe, phase="decode", batch=8, context=64, parallelism=TP_EP)
    assert g.devices == [0, 1, 2, 3]
    assert g.meta["microbatch"] == 8  # every device runs the whole batch's attention ...
    q = g.op("layers.0.attn.q")
    assert (q.tokens, q.out_features) == (8, 256 // 4)  # ... on its 2 of the 8 heads
    qk = g.op("layers.0.attn.qk")
    assert qk.batch == 8 * 1  # one KV head per device
    # the experts keep all their features (not tensor-parallel experts), 2 per device
    for e in range(4):
        gate = g.op(f"layers.0.moe.expert{e}.gate")
        assert gate.out_features == 512 and gate.device == e % 4
    # collectives per layer: the attention's all-reduce over the 4 devices, the two all-to-alls,
    # the MoE output's all-gather; no all-reduce after the MoE (the experts are not split)
    colls = {op.name.split(".", 2)[2]: op for op in g.ops() if op.kind == "collective" and op.block == "layers.0"}
    assert {n: (op.collective, len(op.group)) for n, op in colls.items()} == {
        "attn.allreduce": ("all_reduce", 4), "moe.dispatch": ("all_to_all", 4),
        "moe.return": ("all_to_all", 4), "moe.allgather": ("all_gather", 4)}
    # the tensor-parallel peers hold the same 8 rows: each routes 2 of them (the shard), so the
    # experts see 4 x 2 = 8 tokens, top-2: 16 rows, as with data-parallel attention
    assert g.op("layers.0.moe.shard").output.shape == (2, 256)
    assert g.op("layers.0.moe.router").tokens == 2
    assert sum(g.meta["expert_tokens"][0]) == 8 * 2
    # each device sends 3/4 of its 2 x 2 routed rows (fp16) and gets its shard's back
    row = 256 * 2
    assert colls["moe.dispatch"].per_device_bytes == (round(2 * 2 * 3 / 4 * row),) * 4
    assert colls["moe.allgather"].output.shape == (8, 1, 256)
    order = ["layers.0.attn.allreduce", "layers.0.moe.shard", "layers.0.moe.dispatch",
             "layers.0.moe.expert3.gate", "layers.0.moe.return", "layers.0.moe.combine",
             "layers.0.moe.allgather", "layers.0.add2"]
    assert all(nx.has_path(g.nx, a, b) for a, b in zip(order, order[1:]))


def test_against_data_parallel_attention_the_same_work_a_quarter_of_the_weights(moe):
    # The same batch of 8 split two ways on 4 devices: with data-parallel attention device 0
    # runs 2 sequences with all 8 heads; with tensor-parallel attention 8 sequences with 2 heads:
    # the same attention MACs, a quarter of the attention weights; the experts do the same work
    tp = build_llm(moe, phase="decode", batch=8, context=64, parallelism=TP_EP)
    dp = build_llm(moe, phase="decode", batch=8, context=64, parallelism={"expert": 4})
    attn = lambda g, what: sum(getattr(op, what) for op in g.ops() if ".attn." in op.name and op.kind != "collective")
    assert attn(tp, "macs") == attn(dp, "macs")
    assert attn(tp, "weight_bytes") * 4 == attn(dp, "weight_bytes")
    assert tp.meta["expert_tokens"] == dp.meta["expert_tokens"]
    expert = lambda g: sum(op.macs for op in g.ops() if ".moe.expert" in op.name)
    assert expert(tp) == expert(dp)


def test_the_all_gather_is_timed_on_the_link(moe):
    g = build_llm(moe, phase="prefill", batch=2, sequence=32, parallelism=TP_EP)
    g.meta["link"] = LINK
    planned = Pipeline().run(g, arch(), MapperOptions())
    shard = 2 * 32 // 4 * 256 * 2  # this device's rows x hidden x fp16
    assert planned.get("layers.0.moe.allgather", LinkPlan).transfers == ((0, 3 * shard, 3),)
    ar = planned.get("layers.0.attn.allreduce", LinkPlan)
    assert ar.transfers == ((0, 2 * 3 * (4 * shard) // 4, 6),)  # ring over the whole batch's rows
    # the all-to-alls carry every device's transfers
    assert [d for d, _, _ in planned.get("layers.0.moe.dispatch", LinkPlan).transfers] == [0, 1, 2, 3]


def test_rows_that_do_not_divide_shard_to_the_busiest_device(moe):
    g = build_llm(moe, phase="decode", batch=6, context=16, parallelism=TP_EP)
    assert g.op("layers.0.moe.shard").output.shape == (2, 256)  # ceil(6 / 4)
    assert sum(g.meta["expert_tokens"][0]) == 4 * 2 * 2
    assert g.op("layers.0.moe.allgather").output.shape == (6, 1, 256)


def test_engines_agree_and_energy_counts_every_device(moe):
    g = build_llm(moe, phase="decode", batch=8, context=64, parallelism=TP_EP)
    g.meta["link"] = LINK
    a = simulate(g, arch(), engine="numba")
    b = simulate(g, arch(), engine="simpy")
    assert a.cycles == b.cycles
    assert [(r.name, r.busy_cycles) for r in a.resources] == [(r.name, r.busy_cycles) for r in b.resources]
    par = Parallelism(**TP_EP)
    # device 0's attention, shard ops and tensor-group collectives stand for all 4 devices';
    # each expert and each all-to-all once
    assert par.replicas("layers.0.attn.q", "linear") == 4
    assert par.replicas("layers.0.moe.router", "linear") == 4
    assert par.replicas("layers.0.moe.allgather", "collective") == 4
    assert par.replicas("decode:layers.0.attn.allreduce", "collective") == 4
    assert par.replicas("layers.0.moe.expert1.gate", "linear") == 1
    assert par.replicas("layers.0.moe.dispatch", "collective") == 1
    assert par.replicas("serving:layers.1-31.moe.return", "collective") == 1


def test_a_serving_iteration_keeps_every_token_on_each_device():
    # tensor-parallel attention: no data-parallel split of the prompt and decode rows (unlike
    # expert parallelism alone: ceil(1/4) of them per device, tests/workloads/test_serving.py)
    cfg = shipped_config("mixtral-8x7b")
    g = build_iteration(cfg, IterationShape(700, 350, 9, 300), parallelism=TP_EP)
    assert g.op("layers.0.attn.q").tokens == 709 and g.op("layers.0.attn.q").out_features == 4096 // 4
    assert g.op("layers.0.moe.expert0.gate").out_features == 14336
    assert g.op("layers.0.moe.shard").output.shape == (178, 4096)  # ceil(709 / 4)
    assert sum(g.meta["expert_tokens"][0]) == 4 * 178 * 2
    assert g.op("lm_head").out_features == 32000 // 4


# ---- from YAML: the system section ------------------------------------------------------------------

EXP = """\
name: t
architecture: {preset: scalesim_32x32, overrides: {pe.precision: fp16, memory.dram.size: 1 GiB}}
system: %s
workload: {config: %s, phase: generate, batch: 4, sequence: 32, generate: 4}
engine: analytical
"""


def test_tensor_and_expert_from_yaml_end_to_end(tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps(MOE))
    run = lambda par: run_experiment(parse_experiment(EXP % (
        f"{{devices: 4, link: {{bandwidth: 50 GB/s, latency: 1 us}}, parallelism: {par}}}", p), "e.yaml"))
    r = run("{tensor: 4, expert: 4}")
    m = r.metrics()
    assert m["devices"] == 4 and m["link_bytes"] > 0 and m["tpot_s"] > 0
    names = {l.name for l in r.layers}
    assert "decode:layers.0.moe.allgather" in names and "decode:layers.0.attn.allreduce" in names
    assert "decode:layers.0.moe.dispatch" in names
    one = run_experiment(parse_experiment(EXP.replace("system: %s\n", "") % p, "e.yaml")).metrics()
    assert 0.98 < m["energy_pj_per_token"] / one["energy_pj_per_token"] < 1.25


@pytest.mark.parametrize("system, key, message", [
    ("{devices: 4, link: {bandwidth: 50 GB/s}, parallelism: {tensor: 2, expert: 2}}", "system.parallelism",
     "uses 2 devices (expert 2; tensor 2 shares those devices) but devices is 4 (the tensor and expert "
     "groups are the same devices, not a product: for 4 devices set tensor: 4, expert: 4"),
    ("{devices: 4, link: {bandwidth: 50 GB/s}, parallelism: {tensor: 2, expert: 4}}", "system.parallelism.tensor",
     "2 with expert 4 is not modelled: the attention runs tensor parallel over the expert group's 4 "
     "devices (tensor: 4, expert: 4) or data parallel across them (tensor: 1)"),
    ("{devices: 8, link: {bandwidth: 50 GB/s}, parallelism: {tensor: 4, expert: 4, pipeline: 2}}",
     "system.parallelism.expert", "expert parallelism is modelled without pipeline stages"),
    ("{devices: 2, link: {bandwidth: 50 GB/s}, parallelism: {tensor: 2, expert: 2}}", "system.parallelism.expert",
     "'t' has no experts"),
])
def test_bad_combinations_are_load_errors_naming_the_key(tmp_path, system, key, message):
    p = tmp_path / "t.json"
    model = {k: v for k, v in MOE.items() if k not in ("num_local_experts", "num_experts_per_tok")} \
        if "no experts" in message else MOE
    p.write_text(json.dumps({**model, "model_type": "llama"} if "no experts" in message else model))
    with pytest.raises(ConfigError) as info:
        parse_experiment(EXP % (system, p), "e.yaml")
    text = str(info.value)
    assert f"{key}: " in text and message in text, text


def test_experts_are_not_split_so_their_features_need_not_divide(tmp_path):
    # tensor 4 alone splits every expert's 510 features (an error); beside expert 4 the experts
    # stay whole and only the heads are split
    cfg = _cfg(tmp_path, intermediate_size=510)
    with pytest.raises(ConfigError, match="does not divide intermediate_size 510"):
        build_llm(cfg, phase="decode", batch=4, context=8, parallelism={"tensor": 4})
    g = build_llm(cfg, phase="decode", batch=4, context=8, parallelism=TP_EP)
    assert g.op("layers.0.moe.expert0.gate").out_features == 510
    # the batch is not split between devices: any batch works (data parallelism needs 4 | batch)
    build_llm(cfg, phase="decode", batch=3, context=8, parallelism=TP_EP)
    with pytest.raises(ConfigError, match="4 does not divide the batch 3"):
        build_llm(cfg, phase="decode", batch=3, context=8, parallelism={"expert": 4})
