"""The operators LLM graphs add (Embedding, TopK), the graph's builder methods for them and for
KV-cache inputs, and the mapper pipeline running over LLM graphs."""

from __future__ import annotations

import pytest

from mappers.annotations import Placement, Traffic
from mappers.pipeline import MapperOptions, Pipeline
from simulator.engines import get_engine
from simulator.run import lower_workload
from tests.conftest import small_array
from workloads.graph import GraphError, OpGraph, PrecisionPolicy
from workloads.llm import build_llm
from workloads.llm_config import LLMConfig
from workloads.ops import OP_KINDS, SOFTMAX_OPS_PER_ELEMENT, Embedding, TopK
from workloads.precision import storage_bytes


def _graph(**precision) -> OpGraph:
    return OpGraph("t", PrecisionPolicy(**{"weights": "fp16", "activations": "fp16", **precision}))


def test_new_kinds_are_registered():
    assert OP_KINDS["embedding"] is Embedding and OP_KINDS["topk"] is TopK


def test_embedding_reads_only_the_gathered_rows():
    g = _graph()
    ids = g.input("ids", (2, 5), "int32")
    y = g.embedding("emb", ids, 1000, 16, block="embed", phase="prefill")
    op = g.op("emb")
    assert y.shape == (2, 5, 16) and y.precision == "fp16"
    assert op.rows == 10 and op.features == 16
    assert op.params == 1000 * 16 and op.weight_bytes == 1000 * 16 * 2  # the table is stored
    assert op.gathered_bytes == 10 * 16 * 2  # but only 10 rows are read
    assert op.input_bytes == 10 * 4  # the int32 ids
    assert op.macs == 0 and op.vector_ops == 10 * 16  # one copy per element
    assert op.loop_dims() == {"T": 10, "D": 16}
    assert op.operand_dims() == {"ids": ("T",), "emb.weight": ("T", "D"), "emb.out": ("T", "D")}
    assert op.weights[0].role == "weight" and op.phase == "prefill" and op.block == "embed"


def test_embedding_gathered_bytes_carry_quantization_scales():
    g = _graph(weights="int4", group_size=128)
    g.embedding("emb", g.input("ids", (3,), "int32"), 500, 256)
    # 3 rows x 256 int4 = 384 bytes, plus 6 groups of 128 with a 16-bit scale each = 12 bytes
    assert g.op("emb").gathered_bytes == 384 + 12 == storage_bytes(3 * 256, "int4", 128)


def test_embedding_errors():
    g = _graph()
    ids = g.input("ids", (3,), "int32")
    with pytest.raises(GraphError, match="table 0 x 8 is empty"):
        g.embedding("emb", ids, 0, 8)


def test_topk_counts():
    g = _graph()
    y = g.topk("route", g.input("logits", (4, 3, 8)), 2, phase="decode")
    op = g.op("route")
    assert y.shape == (4, 3, 2)
    assert (op.rows, op.n, op.k) == (12, 8, 2)
    # per row: 2 max-scans over 8 scores, then a softmax over the 2 kept
    assert op.vector_ops == 12 * (8 * 2 + SOFTMAX_OPS_PER_ELEMENT * 2)
    assert op.loop_dims() == {"M": 12, "N": 8, "K": 2}
    assert op.operand_dims() == {"logits": ("M", "N"), "route.out": ("M", "K")}
    assert op.macs == 0 and op.params == 0
    with pytest.raises(GraphError, match="k must be in 1..8"):
        g.topk("bad", g.tensor("logits"), 9)


def test_kv_cache_input():
    g = _graph(kv_cache="int8")
    t = g.kv_cache_input("k_cache", (2, 4, 10, 16))
    assert (t.role, t.precision) == ("kv_cache", "int8")
    assert g.tensor("k_cache") is t and g.graph_inputs == [t]
    assert t.nbytes == 2 * 4 * 10 * 16
    with pytest.raises(GraphError, match="already exists"):
        g.kv_cache_input("k_cache", (1,))
    # without a KV precision the cache is stored like the activations
    assert _graph().kv_cache_input("v", (3,)).precision == "fp16"


# ---- the mapper over LLM graphs -------------------------------------------------------------

def tiny_moe() -> LLMConfig:
    return LLMConfig.from_dict({"model_type": "mixtral", "hidden_size": 64, "num_attention_heads": 4,
                                "num_key_value_heads": 2, "num_hidden_layers": 2,
                                "intermediate_size": 96, "vocab_size": 100, "num_local_experts": 4,
                                "num_experts_per_tok": 2}, name="tiny-moe")


def tiny_opt() -> LLMConfig:
    return LLMConfig.from_dict({"model_type": "opt", "hidden_size": 64, "num_attention_heads": 4,
                                "num_hidden_layers": 2, "ffn_dim": 128, "vocab_size": 100,
                                "max_position_embeddings": 64}, name="tiny-opt")


@pytest.mark.parametrize("cfg", [tiny_moe, tiny_opt])
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_pipeline_places_and_lowers_llm_graphs(cfg, phase):
    p = PrecisionPolicy(weights="int8", activations="int8")
    g = build_llm(cfg(), phase=phase, batch=2, sequence=16, precision=p)
    arch = small_array(16, 16)
    mapped = Pipeline().run(g, arch, MapperOptions(dataflow="auto"), lint=True)
    assert mapped.get("embed_tokens", Placement).unit == "vector"
    assert mapped.get("layers.0.attn.qk", Placement).unit == "array"
    assert mapped.get("layers.0.attn.softmax", Placement).unit == "vector"
    assert mapped.get("lm_head", Placement).unit == "array"
    if cfg is tiny_moe:
        assert mapped.get("layers.0.moe.topk", Placement).unit == "vector"
        assert mapped.get("layers.0.moe.expert0.dispatch", Placement).unit == "none"
        # an expert's GEMM reads only its rows
        gate = mapped.get("layers.0.moe.expert0.gate", Traffic)
        assert gate.compulsory_read == g.op("layers.0.moe.expert0.dispatch").output.nbytes + 64 * 96
    program = lower_workload(g, arch, MapperOptions())
    result = get_engine("analytical").run(program)
    assert result.cycles > 0 and result.macs == g.macs


@pytest.mark.differential
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_engines_agree_on_an_llm_program(phase):
    g = build_llm(tiny_moe(), phase=phase, batch=2, sequence=16,
                  precision=PrecisionPolicy(weights="int8", activations="int8"))
    program = lower_workload(g, small_array(16, 16, bandwidth="32 GB/s"), MapperOptions())
    numba, simpy = (get_engine(e).run(program) for e in ("numba", "simpy"))
    assert numba.cycles == simpy.cycles
    assert [l.total_cycles for l in numba.layers] == [l.total_cycles for l in simpy.layers]
