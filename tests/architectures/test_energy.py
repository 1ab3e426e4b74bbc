"""Energy tables: every number has a source, SRAM energy interpolates log-log, missing
precisions are derived and say so, and numbers set in an architecture win over the table."""

from __future__ import annotations

import math

import pytest

from architectures.energy import energy_table, energy_table_names
from architectures.presets import load_preset
from workloads.errors import ConfigError
from workloads.precision import PRECISIONS

TABLES = energy_table_names()
KiB = 1024


def test_shipped_tables():
    assert {"horowitz_45nm", "accelergy_eyeriss_65nm"} <= set(TABLES)


@pytest.mark.parametrize("name", TABLES)
def test_every_entry_has_a_source(name):
    t = energy_table(name)
    assert t.description.strip()
    entries = [(f"mac.{p}", s) for p, s in t.mac.items()] + [(f"add.{p}", s) for p, s in t.add.items()]
    entries.append(("dram", t.dram_pj_per_bit))
    for key, sourced in entries:
        assert sourced.source.strip(), f"{name}: {key} has no source"
        assert sourced.value > 0, f"{name}: {key}"
    assert t.sram, f"{name}: no SRAM points"
    for size, read, write, source in t.sram:
        assert source.strip(), f"{name}: sram {size:g} B has no source"
        assert size > 0 and read > 0 and write > 0


@pytest.mark.parametrize("name", TABLES)
def test_entries_marked_derived_say_how(name):
    # a derived number names the rule it was derived by, so nobody mistakes it for a measurement
    t = energy_table(name)
    for kind in (t.mac, t.add):
        for p, s in kind.items():
            if s.source.startswith("derived"):
                assert " x " in s.source or "equal to" in s.source, f"{name}: {p}: {s.source}"


def test_unknown_table_is_a_config_error_with_a_hint():
    with pytest.raises(ConfigError) as info:
        energy_table("horowitz_45")
    assert "did you mean 'horowitz_45nm'?" in str(info.value)


# --- SRAM energy by capacity ------------------------------------------------------------------

def test_sram_at_listed_points_is_the_listed_value():
    t = energy_table("horowitz_45nm")  # 8 KB: 10 pJ, 32 KB: 20 pJ, 1 MB: 100 pJ per 64-bit read
    assert t.sram_pj_per_byte(8 * KiB).value == pytest.approx(10 / 8)
    assert t.sram_pj_per_byte(32 * KiB).value == pytest.approx(20 / 8)
    assert t.sram_pj_per_byte(1024 * KiB).value == pytest.approx(100 / 8)


@pytest.mark.parametrize("size", [9 * KiB, 16 * KiB, 24 * KiB, 100 * KiB, 333 * KiB, 1000 * KiB])
def test_sram_interpolates_log_log_between_listed_points(size):
    t = energy_table("horowitz_45nm")
    pts = [(8 * KiB, 10.0), (32 * KiB, 20.0), (1024 * KiB, 100.0)]
    (s0, e0), (s1, e1) = next((a, b) for a, b in zip(pts, pts[1:]) if a[0] <= size <= b[0])
    # a straight line in log(energy) vs log(size): e = e0 * (size/s0)^(log(e1/e0)/log(s1/s0))
    expected = e0 * (size / s0) ** (math.log(e1 / e0) / math.log(s1 / s0))
    got = t.sram_pj_per_byte(size)
    assert got.value == pytest.approx(expected / 8, rel=1e-12)
    assert got.source.startswith("log-log interpolation between")


def test_sram_geometric_midpoint_is_geometric_mean():
    # 16 KiB is the geometric midpoint of 8 and 32 KiB: sqrt(10 * 20) pJ per 64 bits
    t = energy_table("horowitz_45nm")
    assert t.sram_pj_per_byte(16 * KiB).value == pytest.approx(math.sqrt(10 * 20) / 8)


def test_sram_is_monotonic_in_capacity():
    t = energy_table("horowitz_45nm")
    sizes = [2**k for k in range(10, 26)]
    values = [t.sram_pj_per_byte(s).value for s in sizes]
    assert values == sorted(values)


@pytest.mark.parametrize("size, listed, note", [
    (1 * KiB, 10.0, "clamped: smaller buffer"),
    (4 * KiB, 10.0, "clamped: smaller buffer"),
    (4 * 1024 * KiB, 100.0, "clamped: larger buffers are banks of this size"),
    (24 * 1024 * KiB, 100.0, "clamped: larger buffers are banks of this size"),
])
def test_sram_is_clamped_outside_the_listed_range(size, listed, note):
    got = energy_table("horowitz_45nm").sram_pj_per_byte(size)
    assert got.value == pytest.approx(listed / 8)
    assert note in got.source


def test_sram_writes_use_the_write_column_when_listed():
    # Accelergy eyeriss_like GLB: read 18.18 pJ, write 14.14 pJ per 64-bit word
    t = energy_table("accelergy_eyeriss_65nm")
    assert t.sram_pj_per_byte(36 * KiB).value == pytest.approx(18.18 / 8)
    assert t.sram_pj_per_byte(36 * KiB, write=True).value == pytest.approx(14.14 / 8)
    # Horowitz lists reads only: writes cost the same
    h = energy_table("horowitz_45nm")
    assert h.sram_pj_per_byte(16 * KiB, write=True).value == h.sram_pj_per_byte(16 * KiB).value


def test_single_point_table_is_flat_and_not_called_clamped():
    t = energy_table("accelergy_eyeriss_65nm")
    for size in (1 * KiB, 128 * KiB, 64 * 1024 * KiB):
        got = t.sram_pj_per_byte(size)
        assert got.value == pytest.approx(18.18 / 8)
        assert "clamped" not in got.source


def test_dram_per_byte_is_eight_times_per_bit():
    for name in TABLES:
        t = energy_table(name)
        assert t.dram_pj_per_byte().value == pytest.approx(8 * t.dram_pj_per_bit.value)
    # Accelergy LPDDR4: 512 pJ per 64-bit word = 8 pJ/bit = 64 pJ/B
    assert energy_table("accelergy_eyeriss_65nm").dram_pj_per_byte().value == pytest.approx(64.0)


# --- precisions a table does not list -------------------------------------------------------

@pytest.mark.parametrize("name", TABLES)
def test_every_precision_gets_an_energy(name):
    t = energy_table(name)
    for p in PRECISIONS:
        mac, add = t.mac_pj(p), t.add_pj(p)
        assert mac.value > 0 and add.value > 0
        if p not in t.mac:
            assert mac.source.startswith("derived"), (name, p, mac.source)
        if p not in t.add:
            assert add.source.startswith("derived"), (name, p, add.source)


def test_derived_mac_scales_with_bits_squared_from_the_nearest_listed():
    t = energy_table("horowitz_45nm")
    assert "int2" not in t.mac
    got = t.mac_pj("int2")  # nearest listed integer precision: int4 (0.065 pJ)
    assert got.value == pytest.approx(0.065 * (2 / 4) ** 2)
    assert "int4" in got.source and "derived" in got.source
    # the Eyeriss table lists no int4: scaled from its int8 intmac (0.208 pJ)
    e = energy_table("accelergy_eyeriss_65nm")
    assert e.mac_pj("int4").value == pytest.approx(0.208 * (4 / 8) ** 2)


def test_derived_add_scales_linearly_and_stays_in_its_family():
    t = energy_table("accelergy_eyeriss_65nm")
    assert "fp8" not in t.add
    got = t.add_pj("fp8")  # floats scale from floats: fp16 add 0.4 pJ x 8/16
    assert got.value == pytest.approx(0.4 * 8 / 16)
    assert "fp16" in got.source
    assert t.add_pj("int4").value == pytest.approx(0.03 * 4 / 8)


def test_listed_precisions_are_returned_unchanged():
    t = energy_table("horowitz_45nm")
    assert t.mac_pj("int8") is t.mac["int8"]
    assert t.mac_pj("int8").value == pytest.approx(0.23)
    assert t.add_pj("fp32").value == pytest.approx(0.9)


# --- numbers set in the architecture win --------------------------------------------------------

def test_architecture_numbers_win_over_the_table():
    default = load_preset("tpu_v1_like").energy_model()
    arch = load_preset("tpu_v1_like", {"memory.dram.energy": "10 pJ/B", "pe.energy_per_mac": "0.5 pJ",
                                       "memory.filter_sram.energy": "2 pJ/bit",
                                       "vector.energy_per_op": "0.05 pJ"})
    em = arch.energy_model()
    assert em.dram_read_pj_per_byte.value == 10.0 and em.dram_write_pj_per_byte.value == 10.0
    assert "set in the architecture" in em.dram_read_pj_per_byte.source
    assert em.mac_pj.value == 0.5 and "pe.energy_pj_per_mac" in em.mac_pj.source
    assert em.sram_read_pj_per_byte["filter"].value == 16.0
    assert em.vector_op_pj.value == 0.05
    # what was not set still comes from the table
    assert em.sram_read_pj_per_byte["ifmap"] == default.sram_read_pj_per_byte["ifmap"]
    assert em.mac_pj.value != default.mac_pj.value


def test_write_energy_overrides_writes_only():
    em = load_preset("eyeriss_like", {"memory.dram.write_energy": "100 pJ/B"}).energy_model()
    assert em.dram_write_pj_per_byte.value == 100.0
    assert em.dram_read_pj_per_byte.value == pytest.approx(64.0)  # Accelergy LPDDR4, from the table


def test_explicit_dram_energy_is_what_a_simulation_charges():
    from simulator.run import simulate
    from workloads.gemm import gemm_graph

    arch = load_preset("scalesim_32x32", {"memory.dram.energy": "10 pJ/B", "pe.energy_per_mac": "1 pJ"})
    result = simulate(gemm_graph(M=64, K=64, N=64), arch, engine="analytical")
    m = result.metrics()
    assert m["macs"] == 64 * 64 * 64
    assert m["mac_energy_pj"] == pytest.approx(64 * 64 * 64 * 1.0)
    assert m["dram_read_bytes"] > 0
    assert m["dram_energy_pj"] == pytest.approx(10.0 * (m["dram_read_bytes"] + m["dram_write_bytes"]))


def test_presets_name_tables_that_exist():
    from architectures.presets import preset_names

    for name in preset_names():
        arch = load_preset(name)
        assert arch.energy_table in TABLES
        em = arch.energy_model()
        for s in (em.mac_pj, em.vector_op_pj, em.dram_read_pj_per_byte,
                  *em.sram_read_pj_per_byte.values()):
            assert s.source.strip() and s.value > 0
