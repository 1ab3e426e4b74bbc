"""PIM in HBM stacks (architectures/pim.py) and the gpu_pim template (architectures/hetero.py):
the three kinds' rates against Duplex's numbers, per-operator time and energy on hand-computed
cases, and configurations whose bandwidth the banks cannot deliver."""

from __future__ import annotations

import pytest

from architectures.presets import load_preset
from simulator.run import simulate
from workloads.errors import ConfigError
from workloads.graph import OpGraph, PrecisionPolicy

NO_LAUNCH = {"kernel.launch_overhead": 0}


@pytest.fixture(scope="module")
def presets():
    return {k: load_preset(f"h100_{k}_pim", NO_LAUNCH) for k in ("logic", "bank", "bankgroup")}


def test_the_three_kinds_have_duplexs_rates(presets):
    # Duplex (arXiv 2409.01141): Logic-PIM 4x the HBM bandwidth, Op/B 8, 21.3 TFLOPS per HBM3
    # stack (32 x 512 MACs at 650 MHz); bank-group PIM the same on the DRAM dies; bank PIM 16x, Op/B 1
    logic, bank, bg = presets["logic"], presets["bank"], presets["bankgroup"]
    ext = logic.memory.hbm.bandwidth_bytes_per_s / 5
    assert logic.pim.internal_bandwidth_bytes_per_s == pytest.approx(4 * ext)
    assert bank.pim.internal_bandwidth_bytes_per_s == pytest.approx(16 * ext)
    assert 2 * logic.pim.macs_per_cycle * logic.pim.freq_hz == pytest.approx(21.3e12, rel=0.001)
    assert logic.pim.ops_per_byte == pytest.approx(8, rel=0.01)
    assert bg.pim.ops_per_byte == pytest.approx(8, rel=0.01)
    assert bank.pim.ops_per_byte == pytest.approx(1, rel=0.001)
    # energy per bit read: HBM 3.48, Logic-PIM 1.81, bank-group 2.68, bank 0.73 pJ
    assert logic.memory.hbm.energy_pj_per_byte == pytest.approx(3.48 * 8)
    for arch, pj in ((logic, 1.81), (bg, 2.68), (bank, 0.73)):
        assert arch.pim.energy_pj_per_byte == pytest.approx(pj * 8)
    # every bank streaming delivers exactly bank-PIM's 16x: 1024 banks x 10.47 GB/s per stack
    assert logic.pim.banks_per_stack == 1024
    assert logic.pim.bank_capability_bytes_per_s == pytest.approx(16 * ext)
    assert logic.pim.sharing == "bank_partition" and bank.pim.sharing == bg.pim.sharing == "time_share"
    assert logic.area_mm2 == pytest.approx(814 + 5 * 17.80)


def _gemv(tokens: int = 1, n: int = 16384) -> OpGraph:
    g = OpGraph("gemv", PrecisionPolicy(weights="fp16", activations="fp16"))
    x = g.input("x", (tokens, n))
    g.linear("fc", x, n, bias=False)
    return g


# A 16384 x 16384 fp16 GEMV: 536,870,912 weight bytes + 32,768 in + 32,768 out = 536,936,448
# bytes, 268,435,456 MACs. Five stacks; PIM sustains the xPU's 0.85 of its peak bandwidth.
BYTES, MACS = 536_936_448, 268_435_456
HAND = {  # kind: (memory s, compute s, pJ per bit)
    "logic": (BYTES / (5 * 2.68e12 * 0.85), MACS / (5 * 16384 * 650e6), 1.81),
    "bankgroup": (BYTES / (5 * 2.68e12 * 0.85), MACS / (5 * 16384 * 650e6), 2.68),
    "bank": (BYTES / (5 * 10.72e12 * 0.85), MACS / (5 * 16384 * 327.148e6), 0.73),
}


@pytest.mark.parametrize("kind", list(HAND))
def test_gemv_time_and_energy_on_each_kind_match_the_hand_computation(presets, kind):
    arch = presets[kind]
    memory, compute, pj_bit = HAND[kind]
    c, m = arch.pim.pim_time(MACS, 0, BYTES, arch.kernel.hbm_efficiency)
    assert (c, m) == (pytest.approx(compute), pytest.approx(memory))
    # logic-die and bank-group PIM are memory-bound here (47.2 us vs 5.0 us of MACs); bank PIM
    # reads 4x faster and computes 2x slower: 11.8 us vs 10.0 us, still memory-bound
    r = simulate(_gemv(), arch, engine="numba")
    (layer,) = r.layers
    assert layer.unit == "pim"  # Op/B 1: PIM's roofline is the shorter
    # the event core: the roofline plus the pipeline fill of 64 double-buffered chunks (the
    # shorter side / 64: 1.4 % for bank PIM)
    assert max(memory, compute) <= r.latency_s <= max(memory, compute) * 1.02
    assert layer.counters["pim_read_bytes"] == BYTES - 32768 and layer.counters["pim_write_bytes"] == 32768
    assert layer.counters["dram_energy_pj"] == pytest.approx(BYTES * 8 * pj_bit)
    assert layer.counters["mac_energy_pj"] == pytest.approx(MACS * 1.5)  # Horowitz fp16 MAC
    assert layer.counters["sram_energy_pj"] == 0
    # the analytical engine gives the roofline exactly
    a = simulate(_gemv(), arch, engine="analytical")
    assert a.latency_s == pytest.approx(max(memory, compute), rel=1e-3)


def test_a_compute_bound_operator_on_pim(presets):
    # 64 tokens: Op/B 64 x 2 / 2 per weight byte ~ 56 > Logic-PIM's 8: compute 20.2 us, memory 3.1 us
    arch = presets["logic"]
    macs = 64 * 4096 * 4096
    nbytes = 2 * (4096 * 4096 + 2 * 64 * 4096)
    c, m = arch.pim.pim_time(macs, 0, nbytes, 0.85)
    assert c == pytest.approx(macs / (5 * 16384 * 650e6)) and c > m
    r = simulate(_gemv(64, 4096), arch, mapper={"pim_placement": "pim"}, engine="numba")
    assert r.layers[0].unit == "pim"
    assert c <= r.latency_s <= c * 1.03


def test_pim_bandwidth_beyond_its_banks_is_an_error_naming_the_key():
    # 1024 banks x 10.47 GB/s = 10.72 TB/s per stack: bank PIM asking for 12 TB/s cannot have it
    with pytest.raises(ConfigError) as info:
        load_preset("h100_bank_pim", {"pim.internal_bandwidth": "12 TB/s"})
    text = str(info.value)
    assert "pim.internal_bandwidth" in text and "exceeds what its banks can deliver" in text
    assert "10.72 TB/s per stack" in text
    # bank-bundle partitioning: half of the banks hold PIM's data, 5.36 TB/s: 6 TB/s is too much
    with pytest.raises(ConfigError) as info:
        load_preset("h100_logic_pim", {"pim.internal_bandwidth": "6 TB/s"})
    assert "pim_bank_fraction" in str(info.value) and "bank bundles" in str(info.value)
    # ... and the xPU's half must still feed its 670 GB/s per stack
    with pytest.raises(ConfigError) as info:
        load_preset("h100_logic_pim", {"pim.pim_bank_fraction": 0.95})
    assert "architecture.overrides.pim.pim_bank_fraction" in str(info.value) or "pim.pim_bank_fraction" in str(info.value)


def test_an_unknown_pim_key_has_a_hint():
    with pytest.raises(ConfigError) as info:
        load_preset("h100_logic_pim", {"pim.internal_bandwith": "1 TB/s"})
    assert "did you mean 'internal_bandwidth'" in str(info.value)
