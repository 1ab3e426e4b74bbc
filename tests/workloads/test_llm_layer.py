"""One-decoder-layer workloads and the FuseMax attention workloads."""

from __future__ import annotations

import dataclasses

import pytest

from workloads.errors import ConfigError
from workloads.llm import build_llm
from workloads.llm_config import shipped_config
from workloads.registry import MODELS, build_model


@pytest.mark.parametrize("phase, kw", [("prefill", {"sequence": 256}), ("decode", {"context": 300})])
def test_a_layer_is_the_first_layer_of_the_model(phase, kw):
    g = build_model("llama-2-7b-layer", phase=phase, batch=2, **kw)
    full = build_llm(dataclasses.replace(shipped_config("llama-2-7b"), num_hidden_layers=1), phase=phase,
                     batch=2, **kw)
    layer_ops = [op for op in full.ops() if op.block == "layers.0"]
    assert [op.name for op in g.ops()] == [op.name for op in layer_ops]
    assert g.macs == sum(op.macs for op in layer_ops)
    inputs = {t.name: t.role for t in g.graph_inputs}
    assert inputs.pop("embed_tokens.out") == "activation"
    if phase == "decode":
        assert inputs == {"layers.0.attn.k_cache": "kv_cache", "layers.0.attn.v_cache": "kv_cache"}
    assert MODELS["llama-2-7b-layer"].family == "llm"


def test_the_layer_of_an_interleaved_model_is_its_first_layers_kind():
    # GLaM-143B: layer 0 dense (a two-matrix MLP), layers 1, 3, ... MoE; Mixtral: every layer MoE
    glam = {op.name for op in build_model("glam-143b-layer", phase="decode", batch=2, context=8).ops()}
    assert "layers.0.mlp.up" in glam and not any(".moe." in n for n in glam)
    mix = {op.name for op in build_model("mixtral-8x7b-layer", phase="decode", batch=2, context=8).ops()}
    assert "layers.0.moe.router" in mix


def test_encoders_have_no_layer_model():
    assert "bert-base-layer" not in MODELS and "llama-2-70b-layer" in MODELS


@pytest.mark.parametrize("model, heads, e", [("bert", 12, 64), ("trxl", 16, 64), ("t5", 8, 64), ("xlm", 16, 128)])
def test_fusemax_attention_shapes(model, heads, e):
    g = build_model(f"fusemax-{model}-attention", batch=64, sequence=1024)
    qk = g.op("layers.0.attn.qk")
    assert (qk.batch, qk.M, qk.K, qk.N) == (64 * heads, 1024, e, 1024)
    assert g.macs == 2 * 64 * heads * 1024 * 1024 * e
    layer = build_model(f"fusemax-{model}-layer", batch=64, sequence=1024)
    assert [op.kind for op in layer.ops()].count("linear") == 6


def test_fusemax_workloads_are_prefill_only():
    with pytest.raises(ConfigError, match="only 'prefill'"):
        build_model("fusemax-bert-attention", phase="decode")
