"""The place_pim pass (mappers/opb_placement.py): operators go to PIM by arithmetic intensity."""

from __future__ import annotations

import pytest

from architectures.presets import load_preset
from mappers.annotations import Placement
from mappers.opb_placement import UnitChoice
from mappers.pipeline import DEFAULT_PASSES, MapperOptions, Pipeline
from workloads.errors import ConfigError
from workloads.registry import build_model

PASSES = ("place", "place_pim", "fuse")


@pytest.fixture(scope="module")
def duplex():
    return load_preset("h100_logic_pim")


def _units(graph, arch, **options):
    g = Pipeline(PASSES).run(graph, arch, MapperOptions(**options), lint=True)
    return g, {op.name: g.get(op.name, Placement).unit for op in g.ops()}


def test_decode_attention_goes_to_pim_and_prefill_gemms_stay_on_the_xpu(duplex):
    assert "place_pim" in DEFAULT_PASSES
    decode = build_model("llama-3-8b", phase="decode", batch=64, context=2048)
    g, units = _units(decode, duplex)
    for i in (0, 31):
        assert units[f"layers.{i}.attn.qk"] == units[f"layers.{i}.attn.av"] == "pim"
        assert units[f"layers.{i}.attn.softmax"] == "pim"  # between two PIM operators
        c = g.get(f"layers.{i}.attn.qk", UnitChoice)
        # GQA: 4 queries per KV head read each cached key once: about 4 FLOPs per byte
        assert 3.5 < c.ops_per_byte < 4.1 and c.pim_s < c.xpu_s
        # batch 64: the projections' Op/B is ~64, above the crossover (~32 for Logic-PIM + H100)
        assert units[f"layers.{i}.attn.q"] == units[f"layers.{i}.mlp.up"] == "array"
    prefill = build_model("llama-3-8b", phase="prefill", batch=1, sequence=2048)
    g, units = _units(prefill, duplex)
    for name in ("layers.0.attn.q", "layers.0.attn.qk", "layers.0.attn.av", "layers.0.mlp.gate", "layers.0.mlp.down"):
        assert units[name] == "array", name
        assert g.get(name, UnitChoice).ops_per_byte > 100
    assert units["lm_head"] == "pim"  # the head runs for the last token only: Op/B ~1


def test_options_and_overrides(duplex):
    decode = build_model("llama-3-8b", phase="decode", batch=64, context=2048)
    _, none = _units(decode, duplex, pim_placement="xpu")
    assert "pim" not in none.values()
    _, every = _units(decode, duplex, pim_placement="pim")
    assert every["layers.0.attn.q"] == every["layers.0.mlp.down"] == "pim"
    assert every["embed_tokens"] != "pim"  # a gather: PIM does not run it
    _, some = _units(decode, duplex, placement_overrides={"*.attn.qk": "xpu", "layers.0.mlp.*": "pim"})
    assert some["layers.3.attn.qk"] == "array" and some["layers.3.attn.av"] == "pim"
    assert some["layers.3.attn.softmax"] == "vector"  # its producer left PIM
    assert some["layers.0.mlp.gate"] == some["layers.0.mlp.up"] == some["layers.0.mlp.down"] == "pim"
    assert some["layers.1.mlp.gate"] == "array"


def test_a_template_without_pim_is_left_alone():
    gpu = load_preset("h100_sxm")
    decode = build_model("llama-3-8b", phase="decode", batch=4, context=512)
    placed = Pipeline(("place",)).run(decode, gpu, MapperOptions())
    assert Pipeline(("place", "place_pim")).run(decode, gpu, MapperOptions()) is not None
    _, units = _units(decode, gpu, placement_overrides={"*.attn.qk": "xpu"})  # a no-op
    assert "pim" not in units.values()
    with pytest.raises(ConfigError) as info:
        _units(decode, gpu, placement_overrides={"*.attn.qk": "pim"})
    assert "mapper.placement_overrides" in str(info.value) and "has no PIM" in str(info.value)
    assert all(placed.get(op.name, Placement) for op in placed.ops())


def test_expert_coprocessing_sends_the_fewest_token_experts_to_pim(duplex):
    # 64 tokens, top-2 of 8 experts with skewed shares: rows 4 .. 40 per expert. Alone, each
    # expert goes where its own Op/B sends it (the hot ones to the xPU); co-processing moves
    # the split so that PIM's experts and the xPU's take about the same time
    shares = [1, 2, 3, 4, 6, 8, 10, 10]
    g = build_model("mixtral-8x7b", phase="decode", batch=64, context=512,
                    expert_load={"distribution": "explicit", "shares": shares})
    rows = {e: n for e, n in enumerate(g.meta["expert_tokens"][0])}
    co, units = _units(g, duplex, expert_coprocessing=True)
    on_pim = sorted(e for e in rows if units[f"layers.0.moe.expert{e}.up"] == "pim")
    on_xpu = sorted(e for e in rows if units[f"layers.0.moe.expert{e}.up"] == "array")
    assert on_pim and on_xpu and sorted(on_pim + on_xpu) == list(range(8))
    assert max(rows[e] for e in on_pim) <= min(rows[e] for e in on_xpu)
    t_pim = sum(co.get(f"layers.0.moe.expert{e}.{p}", UnitChoice).pim_s for e in on_pim for p in ("gate", "up", "down"))
    t_xpu = sum(co.get(f"layers.0.moe.expert{e}.{p}", UnitChoice).xpu_s for e in on_xpu for p in ("gate", "up", "down"))
    assert 0.3 < t_pim / t_xpu < 3
    # an expert's activation follows its projections
    for e in range(8):
        assert units[f"layers.0.moe.expert{e}.act"] == ("pim" if e in on_pim else "vector")
    assert "expert co-processing" in co.get("layers.0.moe.expert0.up", UnitChoice).reason
