"""Graph outputs looked for through views (mappers.outputs), and the compulsory write split that
the residency model and the planners take from them."""

from __future__ import annotations

import pytest

from architectures.presets import build_architecture
from mappers.annotations import OpPlan
from mappers.memory import schedule_model
from mappers.outputs import output_tensors, output_writers
from mappers.pipeline import MapperOptions, Pipeline
from tests.conftest import TINY_LLM, small_array
from workloads.graph import OpGraph
from workloads.llm import build_llm
from workloads.llm_config import LLMConfig
from workloads.ops import Reshape, TensorSpec


def _tiny() -> LLMConfig:
    return LLMConfig.from_dict({k: v for k, v in TINY_LLM.items() if not k.startswith("_")}, name="tiny")


def _planned(graph: OpGraph, arch, **options) -> tuple[OpGraph, dict[str, OpPlan]]:
    g = Pipeline().run(graph, arch, MapperOptions(**options))
    return g, {op.name: g.get(op.name, OpPlan) for op in g.ops() if g.has(op.name, OpPlan)}


def _plans(graph: OpGraph, arch, **options) -> dict[str, OpPlan]:
    return _planned(graph, arch, **options)[1]


ARCHS = {"systolic": lambda: small_array(32, 32, sram="256 KiB", bandwidth="100 GB/s", precision="fp16"),
         "gpu": lambda: build_architecture("a100_80gb")}


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("phase", ["decode", "prefill"])
def test_kv_cache_writes_are_compulsory(phase, arch):
    shape = {"context": 64} if phase == "decode" else {"sequence": 64}
    g, plans = _planned(build_llm(_tiny(), phase=phase, batch=2, **shape), ARCHS[arch]())
    writers = output_writers(g)  # placed: the rotary on the keys is fused into attn.k
    for i in range(TINY_LLM["num_hidden_layers"]):
        for part in ("k", "v"):
            name = f"layers.{i}.attn.{part}"
            assert name in writers
            c = plans[name].counters
            written = g.op(name).output.nbytes
            # the new keys/values go to the cache: written once, and that write is compulsory
            assert c["compulsory_dram_write_bytes"] == written, (name, dict(c))
            assert c["noncompulsory_dram_write_bytes"] == c["dram_write_bytes"] - written


def test_decode_views_make_the_new_rows_outputs_and_not_the_queries():
    g = build_llm(_tiny(), phase="decode", batch=2, context=64)
    outs = output_tensors(g)
    writers = output_writers(Pipeline(("place", "fuse")).run(g, small_array()))
    # the rotary keys (fused into attn.k) and the values are outputs; the queries, read by
    # attn.qk through the kv_append view, are not; the logits are
    k_out = g.op("layers.0.attn.rotary_k").output.name
    assert k_out in outs and g.op("layers.0.attn.v").output.name in outs
    assert g.op("layers.0.attn.rotary").output.name not in outs
    assert "layers.0.attn.q" not in writers and "layers.0.attn.k" in writers
    assert "lm_head" in writers
    # no view is ever a writer, and every output tensor is data (not a view's output)
    assert not any(g.op(w).kind == "reshape" for w in writers)
    view_outputs = {op.output.name for op in g.ops() if op.kind == "reshape"}
    assert not outs & view_outputs
    # the residency model sees the same outputs (through fusion: rotary_k's data is attn.k's)
    m = schedule_model(Pipeline(("place", "fuse")).run(g, small_array()))
    assert g.op("layers.0.attn.k").output.name in m.graph_outputs
    assert g.op("layers.0.attn.v").output.name in m.graph_outputs


def test_a_view_chain_that_ends_the_graph_makes_its_source_an_output():
    g = OpGraph("t")
    y = g.linear("fc", g.input("x", (4, 16)), 32, bias=False)
    a = g.add(Reshape(name="view1", inputs=(y,), output=TensorSpec("view1.out", (128,), y.precision)))
    g.add(Reshape(name="view2", inputs=(a,), output=TensorSpec("view2.out", (2, 64), y.precision)))
    assert output_tensors(g) == {"fc.out"}
    assert output_writers(g) == {"fc"}
    c = _plans(g, small_array())["fc"].counters
    assert c["compulsory_dram_write_bytes"] == y.nbytes == c["dram_write_bytes"]
    assert c["noncompulsory_dram_write_bytes"] == 0


def test_a_views_other_inputs_are_ordering_not_reads():
    # view(a, b): a reader of the view reads a; b is only waited for, so b (read by nothing
    # else) is an output, and a is not
    g = OpGraph("t")
    x = g.input("x", (8, 8))
    a = g.linear("a", x, 8, bias=False)
    b = g.linear("b", x, 8, bias=False)
    j = g.add(Reshape(name="join", inputs=(a, b), output=TensorSpec("join.out", a.shape, a.precision)))
    g.linear("c", j, 8, bias=False)
    assert output_tensors(g) == {"b.out", "c.out"}
    assert output_writers(g) == {"b", "c"}


def test_a_fused_op_at_the_end_makes_its_root_the_writer():
    g = OpGraph("t")
    y = g.linear("fc", g.input("x", (4, 16)), 32, bias=False)
    g.relu("act", y)
    placed = Pipeline(("place", "fuse")).run(g, small_array())
    assert output_tensors(placed) == {"act.out"}
    assert output_writers(placed) == {"fc"}
    c = _plans(g, small_array())["fc"].counters
    assert c["compulsory_dram_write_bytes"] == y.nbytes


def test_cnn_outputs_are_the_last_layer_only():
    from workloads.registry import build_model

    g = build_model("resnet18")
    assert output_writers(Pipeline(("place", "fuse")).run(g, small_array())) == {"fc"}


def test_a_graph_output_computed_on_pim_is_a_compulsory_write():
    # decode on an H100 with Logic-PIM: the Op/B placement puts the LM head (one token per
    # sequence: about 1 MAC per weight byte) on PIM; its logits leave the graph
    g, plans = _planned(build_llm(_tiny(), phase="decode", batch=2, context=64),
                        build_architecture("h100_logic_pim"))
    heads = [name for name, p in plans.items() if name.endswith("lm_head")]
    assert heads and all(plans[h].unit == "pim" for h in heads), {h: plans[h].unit for h in heads}
    for h in heads:
        c = plans[h].counters
        assert c["compulsory_dram_write_bytes"] == c["dram_write_bytes"] == g.op(h).output.nbytes
        assert c["noncompulsory_dram_write_bytes"] == 0
