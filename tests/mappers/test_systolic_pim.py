"""A systolic-array xPU with PIM in its HBM (template systolic_pim, architectures/hetero.py): the
Op/B placement and the PIM cost model on a systolic xPU (mappers/opb_placement.py,
mappers/hetero_plan.py), preset tpu_v4_like_logic_pim."""

from __future__ import annotations

import pytest

from architectures.presets import load_preset
from simulator.run import simulate
from workloads.errors import ConfigError
from workloads.graph import PrecisionPolicy
from workloads.registry import build_model

BF16 = PrecisionPolicy(weights="bf16", activations="bf16")


@pytest.fixture(scope="module")
def arch():
    return load_preset("tpu_v4_like_logic_pim")


def test_the_preset_is_a_systolic_xpu_with_logic_pim(arch):
    base = load_preset("tpu_v4_like")
    assert arch.template == "systolic_pim" and (arch.rows, arch.cols) == (base.rows, base.cols)
    assert arch.memory.dram == base.memory.dram
    # Duplex's Logic-PIM scaled to the HBM2 stacks: 4x the external bandwidth, Op/B 8
    assert arch.pim.stacks * arch.pim.internal_bandwidth_bytes_per_s == pytest.approx(4 * 1.2e12)
    assert arch.pim.ops_per_byte == pytest.approx(8, rel=1e-3)
    assert arch.pim_bandwidth_bytes_per_s == pytest.approx(4.8e12)  # no efficiency factor
    assert arch.area_mm2 == pytest.approx(base.area_mm2 + 4 * 17.80)


@pytest.mark.parametrize("engine", ["numba", "simpy"])
def test_decode_attention_on_pim_prefill_on_the_array(arch, engine):
    dec = build_model("llama-3-8b-layer", phase="decode", batch=64, context=2047, precision=BF16)
    r = simulate(dec, arch, engine=engine)
    units = {l.name.split(".", 2)[2]: l.unit for l in r.layers}
    # GQA attention: Op/B about 4, below both ridges: PIM's 4x bandwidth wins; the projections
    # and MLP at 64 rows (Op/B about 64, far above Logic-PIM's 8) stay on the array
    assert units["attn.qk"] == units["attn.softmax"] == units["attn.av"] == "pim"
    for name in ("attn.q", "attn.k", "attn.v", "attn.o", "mlp.gate", "mlp.up", "mlp.down"):
        assert units[name] == "array", name
    # the PIM operator's time is its bank traffic at 4 x 1.2 TB/s (memory-bound: 2 x 64 x 8
    # KV heads x 2048 x 128 MACs take 11 us at 19.2 TMAC/s), plus a chunk of pipeline fill
    qk = r.layer("layers.0.attn.qk")
    nbytes = qk.counters["pim_read_bytes"] + qk.counters["pim_write_bytes"]
    assert qk.counters["pim_read_bytes"] >= 64 * 8 * 2048 * 128 * 2  # the K cache
    assert (qk.end_cycle - qk.start_cycle) / r.freq_hz == pytest.approx(nbytes / 4.8e12, rel=0.05)
    # PIM's bank traffic at Logic-PIM's 1.81 pJ/bit, no SRAM energy
    assert qk.counters["dram_energy_pj"] == pytest.approx(nbytes * 1.81 * 8)
    assert qk.counters["sram_energy_pj"] == 0
    pre = build_model("llama-3-8b-layer", phase="prefill", batch=1, sequence=512, precision=BF16)
    assert {l.unit for l in simulate(pre, arch, engine=engine).layers} <= {"array", "vector"}


def test_the_engines_agree_and_time_shared_banks_serialize(arch):
    g = build_model("llama-3-8b-layer", phase="decode", batch=64, context=2047, precision=BF16)
    a, b = simulate(g, arch, engine="numba"), simulate(g, arch, engine="simpy")
    assert a.cycles == b.cycles
    shared = load_preset("tpu_v4_like_logic_pim", {"pim.sharing": "time_share"})
    # one channel for both: PIM's transfers go over the array's DRAM channel (no pim_banks). A
    # dense decode layer runs its xPU and PIM operators one after another (each waits for the
    # previous one's output), so taking turns on the banks costs nothing here;
    # tests/mappers/test_hetero_plan.py shows the contention when both work at once (MoE)
    r = simulate(g, shared, engine="numba")
    assert r.layer("layers.0.attn.qk").unit == "pim"
    assert "pim_banks" not in {x.name for x in r.resources} and "pim_banks" in {x.name for x in a.resources}
    qk = "layers.0.attn.qk"
    assert r.layer(qk).counters["pim_read_bytes"] == a.layer(qk).counters["pim_read_bytes"]
    assert r.cycles == a.cycles


def test_pim_beyond_its_banks_is_an_error_naming_the_key():
    with pytest.raises(ConfigError) as info:
        load_preset("tpu_v4_like_logic_pim", {"pim.internal_bandwidth": "4 TB/s"})
    text = str(info.value)
    assert "pim.internal_bandwidth" in text and "exceeds what its bank bundles can deliver" in text
