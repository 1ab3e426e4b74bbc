"""LLM graphs from HF-style configs: published sizes, MACs by hand, decode KV traffic, precision,
op names and phases, options and the registry."""

from __future__ import annotations

import json

import networkx as nx
import pytest

from workloads.errors import ConfigError
from workloads.graph import PrecisionPolicy
from workloads.llm import build_llm, build_llm_from_file
from workloads.llm_config import (LLMConfig, kv_cache_bytes, llm_param_counts, shipped_config,
                                  shipped_config_names)
from workloads.ops import Embedding, Linear, MatMul, Reshape
from workloads.precision import storage_bytes
from workloads.registry import MODELS, build_model, model_names

SHIPPED = ["bert-base", "glam-143b", "gpt3-175b", "grok-1", "llama-2-13b", "llama-2-70b", "llama-2-7b",
           "llama-3-70b", "llama-3-8b", "mistral-7b", "mixtral-8x7b", "opt-1.3b", "opt-6.7b", "opt-66b",
           "phi-2", "yi-6b"]
DECODERS = [n for n in SHIPPED if n != "bert-base"]


def tiny(**overrides) -> LLMConfig:
    """A llama-style config small enough to count by hand: hidden 64, 4 heads of 16, 2 KV heads."""
    data = {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4,
            "num_key_value_heads": 2, "num_hidden_layers": 2, "intermediate_size": 96,
            "vocab_size": 100, **overrides}
    return LLMConfig.from_dict(data, name="tiny")


def kv_read_bytes(g) -> int:
    return sum(t.nbytes for t in g.graph_inputs if t.role == "kv_cache")


# ---- published sizes ----------------------------------------------------------------------

# (published parameters, relative tolerance); the published sizes are rounded to 3 digits
PUBLISHED = {
    # Touvron et al. 2023 (Llama 2), Table 1 / HF model card: 7B; the HF model has 6.74 B
    "llama-2-7b": (6.74e9, 0.001),
    # Llama 2 HF model card (13B): 13.0 B
    "llama-2-13b": (13.0e9, 0.002),
    # Llama 2 HF model card (70B): 69.0 B
    "llama-2-70b": (69.0e9, 0.001),
    # Meta Llama 3 8B HF page: 8.03 B parameters
    "llama-3-8b": (8.03e9, 0.001),
    # Meta Llama 3 70B HF page: 70.6 B parameters
    "llama-3-70b": (70.6e9, 0.001),
    # Mistral-7B-v0.1 HF page: 7.24 B parameters
    "mistral-7b": (7.24e9, 0.001),
    # Jiang et al. 2024 (Mixtral of Experts), Section 2: 46.7 B total parameters (47 B in the
    # abstract; Mistral AI's release post: 46.7 B)
    "mixtral-8x7b": (46.7e9, 0.001),
    # Zhang et al. 2022 (OPT), Table 1: 6.7B (a rounded model name; 6.66 B counted with the LM
    # head tied to the embedding, as HF's OPTForCausalLM is)
    "opt-6.7b": (6.7e9, 0.01),
    # Zhang et al. 2022 (OPT), Table 1: 66B (a rounded model name; 65.72 B counted with the LM
    # head tied to the embedding, as HF's OPTForCausalLM is)
    "opt-66b": (66e9, 0.01),
    # xai-org/grok-1 README ("Parameters: 314B"): 315.684 B here (+0.5 %: the LM head tied to the
    # embedding as the release's TiedWeightEmbedding.decode is; the two extra RMSNorms per layer
    # not counted, 0.8 M)
    "grok-1": (314e9, 0.006),
    # Du et al. 2022 (GLaM), the 8B/64E size: 143B; Duplex (arXiv 2409.01141) Table I: GLaM-143B.
    # 142.787 B here (-0.15 %; LM head tied, two-matrix FFNs as Duplex's simulator has them)
    "glam-143b": (143e9, 0.002),
    # Brown et al. 2020, Table 2.1: n_params 175.0B (174.6 B here: LM head tied to the token
    # embedding, all layers dense)
    "gpt3-175b": (175.0e9, 0.005),
    # Devlin et al. 2019, Section 3: BERT-BASE 110M (BertModel with the pooler)
    "bert-base": (110e6, 0.005),
    # Zhang et al. 2022 (OPT), Table 1: 1.3B (a rounded model name; 1.316 B counted with the LM
    # head tied to the embedding, as HF's OPTForCausalLM is)
    "opt-1.3b": (1.3e9, 0.015),
    # Young et al. 2024 (Yi), HF model card 01-ai/Yi-6B: 6.06 B parameters
    "yi-6b": (6.06e9, 0.001),
    # Microsoft, Phi-2 model card: 2.7 B; HF PhiForCausalLM has 2.780 B. Tessera's gpt3 family
    # adds a learned position table (2048 x 2560) and a second LayerNorm per layer and drops the
    # LM head's bias: 2.785 B, +0.19 % (see the config's _source)
    "phi-2": (2.78e9, 0.003),
}

# exact counts: sum(p.numel() for p in model.parameters()) of the HF models
EXACT = {
    "llama-2-7b": 6_738_415_616,  # LlamaForCausalLM, meta-llama/Llama-2-7b-hf
    "llama-3-8b": 8_030_261_248,  # LlamaForCausalLM, meta-llama/Meta-Llama-3-8B
    "mixtral-8x7b": 46_702_792_704,  # MixtralForCausalLM, mistralai/Mixtral-8x7B-v0.1
    "bert-base": 109_482_240,  # BertModel, bert-base-uncased
    # OPTForCausalLM, facebook/opt-1.3b: embedding 50272 x 2048 + positions 2050 x 2048 + 24 layers
    # x 50,358,272 + final LayerNorm 4096 (LM head tied)
    "opt-1.3b": 1_315_758_080,
    # LlamaForCausalLM, 01-ai/Yi-6B: 2 x 64000 x 4096 (embedding, LM head) + 32 layers x
    # 173,023,232 + final RMSNorm 4096
    "yi-6b": 6_061_035_520,
}


def test_every_config_is_shipped():
    assert shipped_config_names() == SHIPPED


@pytest.mark.golden
@pytest.mark.parametrize("name", SHIPPED)
def test_published_parameter_counts(name):
    published, tol = PUBLISHED[name]
    counts = llm_param_counts(shipped_config(name))
    assert counts["total"] == pytest.approx(published, rel=tol)
    if name in EXACT:
        assert counts["total"] == EXACT[name]


@pytest.mark.golden
def test_mixtral_active_parameters():
    # Jiang et al. 2024, Section 2 / Mistral AI's release post: 12.9 B active parameters per
    # token (2 of 8 experts; embeddings and LM head included)
    counts = llm_param_counts(shipped_config("mixtral-8x7b"))
    assert counts["active_per_token"] == pytest.approx(12.9e9, rel=0.002)
    assert counts["experts"] == 32 * 8 * 3 * 4096 * 14336
    dense = llm_param_counts(shipped_config("mistral-7b"))
    assert dense["active_per_token"] == dense["total"]


@pytest.mark.golden
def test_grok_1_and_glam_parameters_by_hand():
    # Grok-1 (xai-org/grok-1 run.py and pytorch/modeling_grok_1.py): 64 layers of attention (q and
    # o 6144 x 6144, k and v 6144 x 1024: 8 KV heads of 128), 2 RMSNorms, a router 6144 x 8 and 8
    # gated experts 3 x 6144 x 32768; a 131072 x 6144 embedding, tied to the LM head; final norm
    h = 6144
    layer = 2 * h * h + 2 * h * 1024 + 2 * h + h * 8 + 8 * 3 * h * 32768
    grok = llm_param_counts(shipped_config("grok-1"))
    assert grok["total"] == 64 * layer + 131072 * h + h == 315_684_034_560
    assert grok["experts"] == 64 * 8 * 3 * h * 32768
    assert grok["active_per_token"] == grok["total"] - 64 * 6 * 3 * h * 32768
    # GLaM-143B (Duplex Table I; LLMSimulator's glam): 32 MHA layers of 4 x 4096^2 and 2
    # LayerNorms (2 x 4096 each); 16 dense layers with a 2 x 4096 x 16384 FFN, 16 MoE layers with a
    # router 4096 x 64 and 64 experts of 2 x 4096 x 16384; a 256000 x 4096 embedding, tied; no
    # position table (relative position biases, not modelled); final LayerNorm
    h, ffn = 4096, 2 * 4096 * 16384
    attn = 4 * h * h + 4 * h
    glam = llm_param_counts(shipped_config("glam-143b"))
    assert glam["total"] == 32 * attn + 16 * ffn + 16 * (h * 64 + 64 * ffn) + 256000 * h + 2 * h
    assert glam["experts"] == 16 * 64 * ffn and glam["active_per_token"] == glam["total"] - 16 * 62 * ffn
    assert shipped_config("glam-143b").layer_kinds == (False, True) * 16


@pytest.mark.parametrize("name", SHIPPED)
def test_graph_params_equal_the_counts(name):
    # a prefill long enough that every expert receives rows: the graph holds every weight once
    g = build_model(name, sequence=64)
    assert g.params == llm_param_counts(shipped_config(name))["total"]
    assert g.meta["param_counts"]["total"] == g.params


def test_parameter_breakdown_by_hand():
    cfg = tiny()
    c = llm_param_counts(cfg)
    layer = 64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 96 + 2 * 64  # q, k, v, o, MLP, 2 RMSNorms
    assert c == {"total": 2 * layer + 100 * 64 + 64 + 100 * 64, "active_per_token": c["total"],
                 "embedding": 100 * 64, "lm_head": 100 * 64, "experts": 0}
    opt = llm_param_counts(shipped_config("opt-6.7b"))
    assert opt["lm_head"] == 0 and opt["embedding"] == 50272 * 4096 + (2048 + 2) * 4096


# ---- MACs -----------------------------------------------------------------------------------

def test_prefill_macs_by_hand():
    g = build_llm(tiny(), batch=2, sequence=8)
    tokens = 2 * 8
    linear = 64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 96  # weights a token passes per layer
    attention = 2 * (2 * 4 * 8 * 8 * 16)  # QK^T and AV: batch * heads * S * S * head_dim each
    lm_head = 2 * 64 * 100  # the last token of each sequence only
    assert g.macs == 2 * (tokens * linear + attention) + lm_head == 1_028_608


def test_decode_macs_by_hand():
    g = build_llm(tiny(), phase="decode", batch=2, context=10)
    linear = 64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 96
    attention = 2 * (2 * 4 * 1 * 11 * 16)  # one query per sequence over context + 1 keys
    assert g.macs == 2 * (2 * linear + attention) + 2 * 64 * 100 == 141_312


@pytest.mark.parametrize("name", ["llama-2-7b", "llama-2-70b", "llama-3-8b", "mistral-7b"])
def test_prefill_macs_of_dense_llama_models(name):
    cfg = shipped_config(name)
    B, S = 2, 128
    g = build_model(name, batch=B, sequence=S)
    h, L = cfg.hidden_size, cfg.num_hidden_layers
    linear = h * cfg.q_dim + 2 * h * cfg.kv_dim + cfg.q_dim * h + 3 * h * cfg.intermediate_size
    attention = 2 * B * cfg.num_attention_heads * S * S * cfg.head_dim
    assert g.macs == L * (B * S * linear + attention) + B * h * cfg.vocab_size


@pytest.mark.parametrize("name", DECODERS)
def test_decode_macs_per_token_are_about_the_active_weights(name):
    # a token multiplies once with every weight it uses except the embedding tables (a gather);
    # at a short context attention adds little
    cfg = shipped_config(name)
    g = build_model(name, phase="decode", batch=4, context=16)
    c = llm_param_counts(cfg)
    weights = c["active_per_token"] - c["embedding"] + (cfg.vocab_size * cfg.hidden_size
                                                        if cfg.tie_word_embeddings else 0)
    assert g.macs / 4 == pytest.approx(weights, rel=0.002)


# ---- decode: the KV cache ---------------------------------------------------------------------

@pytest.mark.parametrize("name", DECODERS)
def test_decode_reads_the_whole_kv_cache_once(name):
    cfg = shipped_config(name)
    B, C = 3, 1000
    g = build_model(name, phase="decode", batch=B, context=C)
    expect = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * (C + 1) * B * 2
    assert kv_read_bytes(g) == expect == kv_cache_bytes(cfg, B, C + 1, "fp16")
    # each cache tensor is read by exactly one attention MatMul
    for t in g.graph_inputs:
        if t.role == "kv_cache":
            readers = [op for op in g.ops() if t in op.inputs]
            assert len(readers) == 1 and isinstance(readers[0], MatMul)


def test_decode_attention_shapes_with_gqa():
    cfg = shipped_config("llama-2-70b")  # 64 query heads share 8 K/V heads: groups of 8
    g = build_model("llama-2-70b", phase="decode", batch=4, context=2047)
    qk, av = g.op("layers.3.attn.qk"), g.op("layers.3.attn.av")
    assert (qk.batch, qk.M, qk.K, qk.N) == (4 * 8, 8, 128, 2048)
    assert (av.batch, av.M, av.K, av.N) == (4 * 8, 8, 2048, 128)
    k_cache = qk.inputs[1]
    assert k_cache.name == "layers.3.attn.k_cache" and k_cache.role == "kv_cache"
    assert k_cache.shape == (4, 8, 2048, 128)
    assert av.inputs[1].name == "layers.3.attn.v_cache"
    assert qk.macs == 4 * cfg.num_attention_heads * 2048 * 128


def test_gqa_reads_heads_over_kv_heads_less_than_mha():
    gqa = build_llm(tiny(num_attention_heads=8, num_key_value_heads=2, hidden_size=128),
                    phase="decode", batch=2, context=63)
    mha = build_llm(tiny(num_attention_heads=8, num_key_value_heads=8, hidden_size=128),
                    phase="decode", batch=2, context=63)
    mqa = build_llm(tiny(num_attention_heads=8, num_key_value_heads=1, hidden_size=128),
                    phase="decode", batch=2, context=63)
    assert kv_read_bytes(mha) == 4 * kv_read_bytes(gqa) == 8 * kv_read_bytes(mqa)
    # the same attention MACs: every query head still sees every position
    attn = lambda g: sum(op.macs for op in g.ops() if op.name.endswith(("attn.qk", "attn.av")))
    assert attn(gqa) == attn(mha) == attn(mqa)


def test_kv_int8_halves_the_cache_traffic():
    fp16 = build_model("llama-3-8b", phase="decode", batch=2, context=500,
                       precision=PrecisionPolicy(weights="fp16", activations="fp16"))
    int8 = build_model("llama-3-8b", phase="decode", batch=2, context=500,
                       precision=PrecisionPolicy(weights="fp16", activations="fp16", kv_cache="int8"))
    assert 2 * kv_read_bytes(int8) == kv_read_bytes(fp16)
    cfg = shipped_config("llama-3-8b")
    assert kv_cache_bytes(cfg, 2, 501, PrecisionPolicy(activations="fp16", kv_cache="int8")) \
        == kv_read_bytes(int8)


def test_sliding_window_caps_the_cache():
    cfg = shipped_config("mistral-7b")  # sliding_window 4096
    g = build_model("mistral-7b", phase="decode", context=10_000)
    assert g.op("layers.0.attn.qk").N == 4096 and g.meta["attention_span"] == 4096
    assert kv_cache_bytes(cfg, 1, 10_000) == kv_cache_bytes(cfg, 1, 4096)
    assert build_model("mistral-7b", phase="decode", context=100).op("layers.0.attn.qk").N == 101


def test_kv_writes_are_the_kv_projections():
    p = PrecisionPolicy(weights="int4", activations="fp16", kv_cache="int8", group_size=128)
    for phase in ("prefill", "decode"):
        g = build_model("llama-2-7b", phase=phase, batch=2, sequence=16, precision=p)
        for proj in ("k", "v"):
            out = g.op(f"layers.0.attn.{proj}").output
            assert out.role == "kv_cache" and out.precision == "int8"
            assert out.numel == 2 * (16 if phase == "prefill" else 1) * 4096
        assert g.op("layers.0.attn.q").output.role == "activation"


def test_kv_cache_bytes_errors():
    with pytest.raises(ConfigError, match="encoder"):
        kv_cache_bytes(shipped_config("bert-base"), 1, 10)
    with pytest.raises(ConfigError, match="unknown precision 'int7'"):
        kv_cache_bytes(tiny(), 1, 10, "int7")
    with pytest.raises(ConfigError, match="batch must be >= 1"):
        kv_cache_bytes(tiny(), 0, 10)


# ---- precision ---------------------------------------------------------------------------------

def test_w4a16_g128_weight_bytes():
    p = PrecisionPolicy(weights="int4", activations="fp16", kv_cache="int8", group_size=128)
    g = build_model("llama-2-7b", precision=p, sequence=16)
    params = g.params
    assert params % 128 == 0  # every tensor is a whole number of groups
    assert g.weight_bytes == params * 4 // 8 + params // 128 * 2  # int4 + a 16-bit scale per 128
    assert g.weight_bytes == pytest.approx(6.74e9 * (0.5 + 2 / 128), rel=1e-3)
    q = g.op("layers.0.attn.q")
    assert q.weights[0].group_size == 128 and q.weight_bytes == storage_bytes(4096 * 4096, "int4", 128)
    assert q.inputs[0].precision == "fp16" and q.output.precision == "fp16"


def test_default_precision_is_fp16():
    g = build_model("llama-2-7b", sequence=8)
    assert g.weight_bytes == 2 * g.params
    assert g.precision.kv == "fp16"
    assert g.tensor("input_ids").precision == "int32"


# ---- graph structure, names and phases ---------------------------------------------------------

LAYER_OPS = ["norm1", "attn.q", "attn.k", "attn.v", "attn.rotary", "attn.rotary_k", "attn.k_store",
             "attn.v_store", "attn.qk", "attn.softmax", "attn.av", "attn.o", "add1", "norm2", "mlp.gate",
             "mlp.up", "mlp.act", "mlp.down", "add2"]


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_llama_op_names_blocks_and_phases(phase):
    g = build_model("llama-2-7b", phase=phase, batch=2, sequence=32, context=None)
    assert nx.is_directed_acyclic_graph(g.nx)
    names = [op.name for op in g.ops()]
    expected = list(LAYER_OPS)
    if phase == "decode":  # the queries wait for this step's K/V to be in the cache
        expected.insert(expected.index("attn.qk"), "attn.kv_append")
    for i in (0, 31):
        layer = [n[len(f"layers.{i}."):] for n in names if n.startswith(f"layers.{i}.")]
        assert layer == expected
    assert all(g.op(f"layers.5.{n}").block == "layers.5" for n in expected)
    assert all(op.phase == phase for op in g.ops())
    assert names[0] == "embed_tokens" and names[-2:] == ["norm", "lm_head"]
    assert ("last_token" in names) == (phase == "prefill")
    assert isinstance(g.op("embed_tokens"), Embedding)
    assert isinstance(g.op("lm_head"), Linear) and g.op("lm_head").tokens == 2
    assert len(g) == 32 * len(expected) + 3 + (phase == "prefill")


@pytest.mark.parametrize("name", ["llama-3-8b", "opt-1.3b", "mixtral-8x7b"])
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_attention_reads_this_steps_keys_and_values(name, phase):
    # QK^T needs the new keys (after rotary) and AV the new values, also in decode, where the
    # cache they read is a graph input that holds this step's rows once they are written
    g = build_model(name, phase=phase, batch=2, sequence=16, context=None)
    new_k = "layers.0.attn.rotary_k" if shipped_config(name).rotary else "layers.0.attn.k"
    assert nx.has_path(g.nx, new_k, "layers.0.attn.qk")
    assert nx.has_path(g.nx, "layers.0.attn.v", "layers.0.attn.av")
    # the new rows are written to the cache once: both are graph outputs (through the views
    # k_store / v_store that nothing reads), written by the projection that makes them
    for part in ("k", "v"):
        store = g.op(f"layers.0.attn.{part}_store")
        assert isinstance(store, Reshape) and g.nx.out_degree(store.name) == 0
        assert store.inputs[0].role == ("kv_cache" if part == "v" or new_k.endswith(".k") else "activation")


def test_llama_prefill_edges():
    g = build_model("llama-3-8b", sequence=16)
    pred = lambda n: sorted(g.predecessors(n))
    assert pred("layers.0.attn.qk") == ["layers.0.attn.rotary", "layers.0.attn.rotary_k"]
    assert pred("layers.0.attn.av") == ["layers.0.attn.softmax", "layers.0.attn.v"]
    assert pred("layers.0.add1") == ["embed_tokens", "layers.0.attn.o"]
    assert pred("layers.1.norm1") == ["layers.0.add2"]
    assert pred("layers.0.mlp.act") == ["layers.0.mlp.gate", "layers.0.mlp.up"]
    assert pred("lm_head") == ["norm"] and pred("norm") == ["last_token"]
    qk = g.op("layers.0.attn.qk")  # 32 heads in 8 groups of 4: M = 4 * 16 query rows
    assert (qk.batch, qk.M, qk.K, qk.N) == (8, 64, 128, 16)
    assert g.op("layers.0.attn.softmax").output.numel == 32 * 16 * 16


def test_gpt_family_structure():
    g = build_model("opt-6.7b", batch=2, sequence=16)
    names = {op.name for op in g.ops()}
    assert {"embed_tokens", "embed_positions", "embed_add"} <= names
    assert not any("rotary" in n or "mlp.gate" in n for n in names)
    assert g.op("layers.0.mlp.act").function == "relu"
    assert g.op("layers.0.norm1").mode == "layernorm"
    assert len(g.op("layers.0.attn.q").weights) == 2  # weight and bias
    assert g.op("embed_positions").weights[0].shape == (2048 + 2, 4096)  # OPT's offset of 2
    head = g.op("lm_head")  # tied to the token embedding: a MatMul reading the table, no params
    assert isinstance(head, MatMul) and head.params == 0
    assert head.inputs[1] is g.tensor("embed_tokens.weight")
    assert (head.batch, head.M, head.K, head.N) == (1, 2, 4096, 50272)
    assert build_model("gpt3-175b", sequence=8).op("layers.0.mlp.act").function == "gelu"


def test_bert_is_a_post_norm_encoder():
    g = build_model("bert-base", batch=2, sequence=128)
    assert all(op.phase == "prefill" for op in g.ops())
    pred = lambda n: sorted(g.predecessors(n))
    assert pred("embed_add") == ["embed_positions", "embed_tokens", "embed_types"]
    assert pred("layers.0.attn.q") == ["embed_norm"]
    assert pred("layers.0.norm1") == ["layers.0.add1"]  # after the residual add
    assert pred("layers.0.mlp.up") == ["layers.0.norm1"]
    assert pred("layers.1.attn.q") == ["layers.0.norm2"]
    assert [op.name for op in g.ops()][-3:] == ["first_token", "pooler", "pooler.tanh"]
    qk = g.op("layers.0.attn.qk")  # bidirectional: every token sees all 128
    assert (qk.batch, qk.M, qk.K, qk.N) == (2 * 12, 128, 64, 128)
    assert "lm_head" not in g
    with pytest.raises(ConfigError) as err:
        build_model("bert-base", phase="decode")
    assert "encoder" in str(err.value) and err.value.problems[0].path == "workload.phase"


def test_meta():
    g = build_model("llama-2-7b", phase="decode", batch=8, context=2048)
    assert g.name == "llama-2-7b-decode"
    assert {k: g.meta[k] for k in ("model", "phase", "batch", "sequence", "context", "tokens")} == \
        {"model": "llama-2-7b", "phase": "decode", "batch": 8, "sequence": None, "context": 2048,
         "tokens": 8}
    g = build_model("llama-2-7b", batch=2, sequence=100)
    assert (g.meta["sequence"], g.meta["context"], g.meta["tokens"]) == (100, None, 200)


def test_views_move_no_data():
    g = build_model("llama-2-7b", batch=3, sequence=10)
    last = g.op("last_token")
    assert isinstance(last, Reshape) and last.output.shape == (3, 4096)
    assert g.op("norm").inputs[0].shape == (3, 4096)


# ---- options and the registry ------------------------------------------------------------------

def test_shipped_configs_are_registered():
    assert set(SHIPPED) <= set(model_names())
    for name in SHIPPED:
        entry = MODELS[name]
        assert entry.family == ("encoder" if name == "bert-base" else "llm")
        assert entry.source.startswith(f"workloads/configs/{name}.json: ") and entry.description
    assert MODELS["llama-2-7b"].options == {"batch": 1, "sequence": 512, "context": None,
                                            "phase": "prefill", "precision": None, "expert_load": None,
                                            "parallelism": None}
    assert MODELS["bert-base"].options == {"batch": 1, "sequence": 512, "phase": "prefill",
                                           "precision": None, "parallelism": None}


def test_decode_context_defaults_to_sequence():
    # an experiment's 'sequence' is the context in decode
    g = build_model("llama-2-7b", phase="decode", sequence=300)
    assert g.meta["context"] == 300 and g.op("layers.0.attn.qk").N == 301


@pytest.mark.parametrize("options, path, text", [
    ({"phase": "decod"}, "workload.phase", "did you mean 'decode'?"),
    ({"batch": 0}, "workload.batch", "expected an integer >= 1, found 0"),
    ({"sequence": 2.5}, "workload.sequence", "found 2.5"),
    ({"phase": "decode", "context": -1}, "workload.context", "expected an integer >= 0, found -1"),
    ({"context": 100}, "workload.context", "applies to phase 'decode' only"),
    ({"expert_load": {"distribution": "uniform"}}, "workload.expert_load", "has no experts"),
    ({"precision": "fp16"}, "workload.precision", "expected a PrecisionPolicy"),
])
def test_bad_options(options, path, text):
    with pytest.raises(ConfigError) as err:
        build_model("llama-2-7b", **options)
    problem, = err.value.problems
    assert problem.path == path and text in str(err.value)


def test_learned_positions_limit_the_length():
    with pytest.raises(ConfigError, match="2049 tokens exceed max_position_embeddings 2048"):
        build_model("opt-6.7b", sequence=2049)
    with pytest.raises(ConfigError, match="context 2048 \\+ 1 new token exceeds"):
        build_model("gpt3-175b", phase="decode", context=2048)
    build_model("opt-6.7b", phase="decode", context=2047)
    build_model("llama-2-7b", sequence=8192)  # rotary: no table to run out of


def test_unknown_option_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'context'"):
        build_model("llama-2-7b", contxt=5)


def test_build_from_a_users_config(tmp_path):
    path = tmp_path / "my-model.json"
    path.write_text(json.dumps({"model_type": "mistral", "hidden_size": 256, "num_attention_heads": 8,
                                "num_key_value_heads": 2, "num_hidden_layers": 3,
                                "intermediate_size": 512, "vocab_size": 1000,
                                "rope_theta": 1e6, "torch_dtype": "bfloat16"}))
    g = build_llm_from_file(str(path), phase="decode", batch=4, context=64)
    assert g.name == "my-model-decode" and g.meta["model"] == "my-model"
    assert g.op("layers.2.attn.qk").M == 4
    with pytest.raises(ConfigError) as err:
        build_llm_from_file(str(path), batch_size=2)
    assert err.value.problems[0].path == "workload.batch_size" and "did you mean 'batch'" in str(err.value)


def test_a_tied_lm_head_reads_its_devices_shard_of_the_vocabulary():
    # OPT's LM head is the token embedding (50272 x 2048) read as a matrix. Under tensor
    # parallelism each device computes ceil(50272 / 4) = 12568 logits: it reads those rows of the
    # table (a view, lm_head.table_shard), not all of them; the embedding itself stays whole
    from simulator.experiment import experiment_from_dict
    from simulator.run import run_experiment
    from workloads.serving import IterationShape, build_iteration

    g = build_model("opt-1.3b", phase="decode", batch=4, context=64, parallelism={"tensor": 4})
    shard = g.op("lm_head").inputs[1]
    assert g.op("lm_head.table_shard").inputs[0].shape == (50272, 2048)
    assert shard.shape == (12568, 2048) and shard.role == "weight" and g.op("lm_head").N == 12568
    it = build_iteration(shipped_config("opt-1.3b"), IterationShape(0, 1, 4, 64), parallelism={"tensor": 4})
    assert it.op("lm_head").inputs[1].shape == (12568, 2048)
    assert "lm_head.table_shard" not in {op.name for op in build_model("opt-1.3b", phase="decode", batch=4,
                                                                      context=64).ops()}
    r = run_experiment(experiment_from_dict({
        "name": "tied", "architecture": {"preset": "h100_sxm"},
        "system": {"devices": 4, "link": {"bandwidth": "450 GB/s"}, "parallelism": {"tensor": 4}},
        "workload": {"model": "opt-1.3b", "phase": "decode", "batch": 4, "sequence": 64, "generate": 1}}))
    head, = [l for l in r.layers if l.name.endswith("lm_head")]
    assert head.counters["hbm_read_bytes"] == 12568 * 2048 * 2
