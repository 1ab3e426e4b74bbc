"""Mixture-of-experts: the expert load model (uniform, explicit, zipf), the MoE block's ops, and
the expert_load option's errors."""

from __future__ import annotations

import pytest

from workloads.errors import ConfigError
from workloads.llm import build_llm
from workloads.llm_config import LLMConfig, llm_param_counts
from workloads.llm_moe import ExpertLoad, MoECombine, apportion
from workloads.ops import Reshape, TopK
from workloads.registry import build_model


def moe(**overrides) -> LLMConfig:
    data = {"model_type": "mixtral", "hidden_size": 64, "num_attention_heads": 4,
            "num_key_value_heads": 2, "num_hidden_layers": 3, "intermediate_size": 96,
            "vocab_size": 100, "num_local_experts": 4, "num_experts_per_tok": 2, **overrides}
    return LLMConfig.from_dict(data, name="tiny-moe")


# ---- the load model ------------------------------------------------------------------------------

def test_uniform_spreads_the_remainder_to_the_first_experts():
    load = ExpertLoad.parse({"distribution": "uniform"}, experts=8)
    assert load.tokens_per_expert(3, 8, 2) == [1, 1, 1, 1, 1, 1, 0, 0]
    assert load.tokens_per_expert(100, 8, 2) == [25] * 8
    assert load.tokens_per_expert(7, 8, 8) == [7] * 8  # every token to every expert
    assert ExpertLoad.parse(None, experts=8) == load


@pytest.mark.parametrize("spec", [{"distribution": "uniform"},
                                  {"distribution": "explicit", "shares": [5, 1, 1, 0, 0, 3, 0, 2]},
                                  {"distribution": "explicit", "shares": [1, 0, 0, 0, 0, 0, 0, 0]},
                                  {"distribution": "zipf", "alpha": 1.2, "seed": 0},
                                  {"distribution": "zipf", "alpha": 3.0, "seed": 7},
                                  {"distribution": "zipf", "alpha": 0}])
@pytest.mark.parametrize("tokens, k", [(1, 1), (1, 2), (5, 2), (37, 2), (4096, 2), (13, 8)])
def test_loads_conserve_tokens_times_k(spec, tokens, k):
    load = ExpertLoad.parse(spec, experts=8)
    for layer in range(4):
        counts = load.tokens_per_expert(tokens, 8, k, layer)
        assert sum(counts) == tokens * k
        assert all(0 <= c <= tokens for c in counts)  # a token picks k distinct experts


def test_explicit_shares_are_apportioned_and_capped():
    load = ExpertLoad.parse({"distribution": "explicit", "shares": [3, 1, 0, 0]}, experts=4)
    assert load.tokens_per_expert(100, 4, 1) == [75, 25, 0, 0]
    # k = 2: expert 0 would want 150 of 200 rows but holds at most 100 (one per token); the
    # excess goes to expert 1, the only other one with a share
    assert load.tokens_per_expert(100, 4, 2) == [100, 100, 0, 0]
    # all on expert 0, capped at 5; the other 5 rows go evenly to the zero-share experts
    assert apportion(10, [1, 0, 0, 0], 5) == [5, 2, 2, 1]
    assert apportion(7, [1, 1, 1], 7) == [3, 2, 2]  # ties go to the lower expert number


def test_zipf_is_deterministic_for_a_seed_and_skewed():
    a = ExpertLoad.parse({"distribution": "zipf", "alpha": 1.2, "seed": 3}, experts=8)
    b = ExpertLoad.parse({"distribution": "zipf", "alpha": 1.2, "seed": 3}, experts=8)
    c = ExpertLoad.parse({"distribution": "zipf", "alpha": 1.2, "seed": 4}, experts=8)
    per_layer = lambda load: [load.tokens_per_expert(1000, 8, 2, layer) for layer in range(6)]
    assert per_layer(a) == per_layer(b)
    assert per_layer(a) != per_layer(c)
    counts = per_layer(a)
    assert len({tuple(x) for x in counts}) > 1  # the hot expert moves from layer to layer
    for x in counts:
        shares = sorted(a.expert_shares(8, 0), reverse=True)
        assert sorted(x, reverse=True)[0] == round(2000 * shares[0])  # rank 1: 1 / H(8, 1.2)
        assert max(x) > 2 * 2000 / 8
    flat = ExpertLoad.parse({"distribution": "zipf", "alpha": 0, "seed": 9}, experts=8)
    assert flat.tokens_per_expert(1000, 8, 2) == [250] * 8


def test_zipf_shares_follow_the_exponent():
    load = ExpertLoad.parse({"distribution": "zipf", "alpha": 1.0, "seed": 0}, experts=4)
    shares = sorted(load.expert_shares(4, 0), reverse=True)
    h = 1 + 1 / 2 + 1 / 3 + 1 / 4
    assert shares == pytest.approx([1 / h, 1 / 2 / h, 1 / 3 / h, 1 / 4 / h])


@pytest.mark.parametrize("spec, path, text", [
    ({"distribution": "zip"}, "workload.expert_load.distribution", "did you mean 'zipf'?"),
    ({"distribution": "explicit", "shares": [1, 2]}, "workload.expert_load.shares",
     "one share per expert (4), found 2"),
    ({"distribution": "explicit", "shares": [1, -1, 0, 0]}, "workload.expert_load.shares", ">= 0"),
    ({"distribution": "explicit", "shares": [0, 0, 0, 0]}, "workload.expert_load.shares", "not all 0"),
    ({"distribution": "explicit"}, "workload.expert_load.shares", "expected a list of 4 numbers"),
    ({"distribution": "zipf", "alpha": -1}, "workload.expert_load.alpha", "found -1"),
    ({"distribution": "zipf", "seed": 1.5}, "workload.expert_load.seed", "found 1.5"),
    ({"distribution": "zipf", "alpah": 1.0}, "workload.expert_load.alpah", "did you mean 'alpha'?"),
    ({"distribution": "uniform", "shares": [1]}, "workload.expert_load.shares", "unknown key"),
    ("zipf", "workload.expert_load", "expected a mapping"),
])
def test_bad_expert_load(spec, path, text):
    with pytest.raises(ConfigError) as err:
        build_llm(moe(), expert_load=spec)
    problem, = err.value.problems
    assert problem.path == path and text in str(err.value)


# ---- the MoE block -------------------------------------------------------------------------------

MOE_OPS = ["norm2", "moe.router", "moe.topk"]
EXPERT_OPS = ["dispatch", "gate", "up", "act", "down"]


def test_moe_block_ops_and_shapes():
    g = build_llm(moe(), batch=2, sequence=5)  # 10 tokens x top-2 = 20 rows over 4 experts
    names = [op.name for op in g.ops() if op.name.startswith("layers.1.")]
    expected = [f"layers.1.{n}" for n in MOE_OPS] + [
        f"layers.1.moe.expert{e}.{n}" for e in range(4) for n in EXPERT_OPS] + \
        ["layers.1.moe.combine", "layers.1.add2"]
    assert names[names.index("layers.1.norm2"):] == expected
    assert g.meta["expert_tokens"] == [[5, 5, 5, 5]] * 3
    assert g.meta["expert_load"] == {"distribution": "uniform"}
    router, topk = g.op("layers.1.moe.router"), g.op("layers.1.moe.topk")
    assert (router.tokens, router.in_features, router.out_features) == (10, 64, 4)
    assert isinstance(topk, TopK) and topk.output.shape == (2, 5, 2)
    for e in range(4):
        assert isinstance(g.op(f"layers.1.moe.expert{e}.dispatch"), Reshape)
        gate = g.op(f"layers.1.moe.expert{e}.gate")
        assert gate.tokens == 5 and gate.inputs[0].shape == (5, 64)
    combine = g.op("layers.1.moe.combine")
    assert isinstance(combine, MoECombine) and combine.kind == "elementwise"
    assert combine.output.shape == (2, 5, 64)
    assert combine.vector_ops == 2 * 20 * 64  # a multiply and an add per routed element
    assert sorted(g.predecessors("layers.1.moe.combine")) == [
        "layers.1.moe.expert0.down", "layers.1.moe.expert1.down", "layers.1.moe.expert2.down",
        "layers.1.moe.expert3.down", "layers.1.moe.topk"]
    assert g.params == llm_param_counts(moe())["total"]


def test_expert_macs_follow_the_load():
    cfg = moe()
    spec = {"distribution": "explicit", "shares": [6, 2, 0, 0]}
    g = build_llm(cfg, batch=1, sequence=8, expert_load=spec)  # 16 rows: 8 (capped) and 8 (rest)
    assert g.meta["expert_tokens"] == [[8, 8, 0, 0]] * 3
    experts = sum(op.macs for op in g.ops() if ".moe.expert" in op.name)
    assert experts == 3 * 16 * 3 * 64 * 96
    assert not any(".moe.expert2." in op.name or ".moe.expert3." in op.name for op in g.ops())


def test_idle_experts_have_no_ops_but_count_in_params():
    cfg = moe()
    g = build_llm(cfg, phase="decode", batch=1, context=20)  # 1 token: 2 of 4 experts work
    assert g.meta["expert_tokens"] == [[1, 1, 0, 0]] * 3
    counts = llm_param_counts(cfg)
    assert g.params == counts["active_per_token"] < counts["total"]
    assert g.meta["param_counts"]["total"] == counts["total"]  # the weights still live somewhere


def test_mixtral_decode_moe():
    g = build_model("mixtral-8x7b", phase="decode", batch=16, context=512,
                    expert_load={"distribution": "zipf", "alpha": 1.2, "seed": 0})
    for counts in g.meta["expert_tokens"]:
        assert sum(counts) == 32
    same = build_model("mixtral-8x7b", phase="decode", batch=16, context=512,
                       expert_load={"distribution": "zipf", "alpha": 1.2, "seed": 0})
    assert [op.name for op in same.ops()] == [op.name for op in g.ops()]
    assert g.macs == same.macs
    active = sum(1 for c in g.meta["expert_tokens"][0] if c)
    assert sum(1 for op in g.ops() if op.name.startswith("layers.0.moe.expert") and
               op.name.endswith(".down")) == active


# ---- interleaved dense and MoE layers; two-matrix experts ---------------------------------------

def _interleaved(**changes) -> LLMConfig:
    data = {"model_type": "glam", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 4,
            "intermediate_size": 96, "vocab_size": 100, "num_local_experts": 4, "num_experts_per_tok": 2,
            "decoder_sparse_step": 2, "hidden_act": "gelu", "attention_bias": False, "mlp_bias": False,
            **changes}
    return LLMConfig.from_dict(data, name="interleaved")


def test_dense_and_moe_layers_alternate_and_experts_have_the_familys_mlp():
    cfg = _interleaved()
    g = build_llm(cfg, phase="decode", batch=4, context=16)
    names = {op.name for op in g.ops()}
    for i in (0, 2):  # dense: a two-matrix MLP, no router
        assert {f"layers.{i}.mlp.up", f"layers.{i}.mlp.act", f"layers.{i}.mlp.down"} <= names
        assert not any(n.startswith(f"layers.{i}.moe") for n in names)
    for i in (1, 3):  # MoE: router, experts of up / act / down (no gate), combine
        assert {f"layers.{i}.moe.router", f"layers.{i}.moe.expert0.up", f"layers.{i}.moe.expert0.act",
                f"layers.{i}.moe.expert0.down", f"layers.{i}.moe.combine"} <= names
        assert f"layers.{i}.moe.expert0.gate" not in names and f"layers.{i}.mlp.up" not in names
        assert g.op(f"layers.{i}.moe.expert0.act").function == "gelu"
    assert len(g.meta["expert_tokens"]) == 2  # one routing per MoE layer
    assert not any(n.endswith("rotary") for n in names) and "embed_positions" not in names
    # every weight once (a prefill long enough that every expert gets rows)
    assert build_llm(cfg, sequence=16).params == llm_param_counts(cfg)["total"]
    # experts of their own width (Qwen2-MoE's moe_intermediate_size)
    narrow = build_llm(_interleaved(moe_intermediate_size=32), phase="decode", batch=4, context=16)
    assert narrow.op("layers.1.moe.expert0.up").out_features == 32
    assert narrow.op("layers.0.mlp.up").out_features == 96


def test_dense_layers_are_tensor_parallel_beside_expert_parallel_ones():
    # {tensor: 4, expert: 4}: the attention and the dense MLPs split 4 ways (all-reduced), the
    # experts whole on their devices; MLP width 96 / 4 = 24 per device
    cfg = _interleaved(num_hidden_layers=2)
    g = build_llm(cfg, phase="decode", batch=8, context=16, parallelism={"tensor": 4, "expert": 4})
    assert g.op("layers.0.mlp.up").out_features == 24 and g.op("layers.0.mlp.allreduce").kind == "collective"
    assert g.op("layers.1.moe.expert1.up").out_features == 96 and g.op("layers.1.moe.expert1.up").device == 1
    with pytest.raises(ConfigError) as err:  # the dense MLP width must divide
        build_llm(_interleaved(num_hidden_layers=2, intermediate_size=90), phase="decode", batch=8,
                  context=16, parallelism={"tensor": 4, "expert": 4})
    p, = err.value.problems
    assert p.path == "system.parallelism.tensor" and "does not divide intermediate_size 90" in p.message
    # with the experts split too (tensor parallelism alone) their width must divide
    with pytest.raises(ConfigError, match="each expert's width 30"):
        build_llm(_interleaved(num_hidden_layers=2, moe_intermediate_size=30), phase="decode", batch=8,
                  context=16, parallelism={"tensor": 4})
