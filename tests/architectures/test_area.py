"""Area model: every number has a source, derived ones say how, the systolic array's area is the
sum of its parts, and runs report area, power, on-chip capacity and throughput."""

from __future__ import annotations

import math

import pytest

from architectures.area import (MIB, area_table, area_table_for, area_table_names, onchip_sram_bytes,
                                systolic_area)
from architectures.presets import load_preset
from simulator.run import run_experiment, run_metrics, simulate
from tests.conftest import small_array
from workloads.errors import ConfigError
from workloads.registry import build_model

TABLES = area_table_names()


def test_shipped_tables():
    assert "horowitz_45nm" in TABLES


@pytest.mark.parametrize("name", TABLES)
def test_every_entry_has_a_source_and_derived_ones_say_how(name):
    t = area_table(name)
    assert t.description.strip() and t.node
    for kind, table in (("multiplier", t.multiplier), ("adder", t.adder)):
        for p, s in table.items():
            assert s.value > 0 and s.source.strip(), f"{name}: {kind}.{p}"
            if s.source.startswith("derived"):
                assert " x " in s.source or "equal to" in s.source, f"{name}: {kind}.{p}: {s.source}"
    assert t.sram_mm2_per_mib.value > 0 and "derived" in t.sram_mm2_per_mib.source


def test_horowitz_numbers_and_scaling():
    t = area_table("horowitz_45nm")
    assert t.multiplier_um2("int8").value == 282 and t.adder_um2("int32").value == 137
    assert t.mac_um2("int8", "int32").value == 282 + 137
    assert t.mac_um2("fp16", "fp32").value == 1640 + 4184
    derived = t.multiplier_um2("int2")  # not listed: from int4 by bits^2, and says so
    assert derived.value == pytest.approx(70.5 / 4) and derived.source.startswith("derived")
    assert t.sram_mm2(MIB).value == pytest.approx(1.162549 * 8)
    assert t.sram_mm2(64 * 1024).value == pytest.approx(1.162549 / 2)


@pytest.mark.golden
def test_derived_16bit_mac_agrees_with_accelergys_synthesized_one():
    # Accelergy/Aladdin 16-bit intmac at 45 nm: 317312 um^2 for 256 MACs = 1239.5 um^2
    # (Accelergy-Project/timeloop-accelergy-exercises@1be0685a, simple_weight_stationary
    # example_AlexNet_layer1_outputs/timeloop-mapper.stats.txt, mac "Area (total)").
    ours = area_table("horowitz_45nm").mac_um2("int16", "int32").value  # 282 x 4 + 137
    assert ours == pytest.approx(1239.5, rel=0.05)


def test_systolic_area_is_the_sum_of_pes_vector_and_srams():
    arch = small_array(64, 64, sram="256 KiB")
    b = systolic_area(arch)
    assert b.components["pe_array"] == pytest.approx(64 * 64 * 419e-6)
    assert b.components["vector"] == pytest.approx(64 * 36e-6)
    for buf in ("ifmap_sram", "filter_sram", "ofmap_sram"):
        assert b.components[buf] == pytest.approx(0.25 * 9.300392)
    assert arch.area_mm2 == pytest.approx(b.total_mm2) == pytest.approx(sum(b.components.values()))
    assert "registers" in " ".join(b.not_counted) and "place-and-route" in " ".join(b.not_counted)
    assert all(s for s in b.sources.values())


def test_area_grows_with_pes_precision_and_sram():
    base = small_array(32, 32).area_mm2
    assert small_array(64, 32).area_mm2 > base
    assert small_array(32, 32, sram="1 MiB").area_mm2 > base
    assert small_array(32, 32, precision="fp16").area_mm2 > base
    assert math.isinf(small_array(32, 32, sram="inf").area_mm2)


def test_an_energy_table_without_an_area_table_falls_back_and_says_so():
    table, note = area_table_for("accelergy_eyeriss_65nm")
    assert table.name == "horowitz_45nm" and "no area table named" in note
    arch = load_preset("eyeriss_like")
    assert "no area table named" in systolic_area(arch).sources["table"]
    with pytest.raises(ConfigError, match="did you mean 'horowitz_45nm'"):
        area_table("horowitz_45")


def test_runs_report_area_power_capacity_and_throughput():
    arch = small_array(16, 16, sram="64 KiB", bandwidth="10 GB/s")
    graph = build_model("resnet18", batch=2)
    part = simulate(graph, arch).metrics()  # simulate: the hardware's metrics only
    assert part["area_mm2"] == pytest.approx(arch.area_mm2) and "power_w" not in part
    m = run_metrics(simulate(graph, arch), batch=2).metrics()  # what run_experiment returns
    assert m["area_mm2"] == pytest.approx(arch.area_mm2)
    assert m["power_w"] == pytest.approx(m["energy_pj"] * 1e-12 / m["latency_s"])
    assert m["sram_bytes"] == 3 * 64 * 1024 == onchip_sram_bytes(arch)
    assert m["throughput_per_s"] == pytest.approx(2 / m["latency_s"])
    assert m["throughput_per_mm2"] == pytest.approx(m["throughput_per_s"] / m["area_mm2"])


def test_run_experiment_adds_the_run_metrics(repo):
    m = run_experiment(repo / "experiments" / "quickstart.yaml").metrics()
    for key in ("area_mm2", "power_w", "sram_bytes", "throughput_per_s", "throughput_per_mm2"):
        assert m[key] > 0, key
