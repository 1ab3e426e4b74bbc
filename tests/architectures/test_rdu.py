"""The rdu template and the sn40l preset: the paper's headline numbers follow from the fields."""

from __future__ import annotations

import pytest

from architectures.presets import load_preset
from mappers.lower import RESOURCES
from mappers.pipeline import Pipeline
from workloads.errors import ConfigError


@pytest.fixture(scope="module")
def sn40l():
    return load_preset("sn40l")


def test_sn40l_peak_and_memory_follow_the_paper(sn40l):
    # arXiv 2405.07518, Sec. I: 638 BF16 TFLOPS from 1040 PCUs; 520 MiB of SRAM in 1040 PMUs;
    # 64 GiB HBM and up to 1.5 TiB DDR per socket; 8 sockets; DDR -> HBM > 1 TB/s per node
    assert sn40l.pcus == sn40l.pmus == 1040
    assert 2 * sn40l.peak_macs_per_s == pytest.approx(638e12, rel=1e-6)
    assert sn40l.pcu.macs_per_cycle == 6 * 32
    assert sn40l.pmu_capacity_bytes == 520 * 2**20
    assert sn40l.memory.hbm.size_bytes == 64 * 2**30
    assert sn40l.memory.ddr.size_bytes == 1.5 * 2**40
    assert sn40l.node.sockets == 8
    assert sn40l.node_ddr_to_hbm_bytes_per_s == 1e12
    assert sn40l.node_hbm_bytes == 8 * 64 * 2**30 and sn40l.node_ddr_bytes == 8 * 1.5 * 2**40
    assert sn40l.kernel_call_s == 0.0  # not public: unset in the preset


def test_offchip_tiers_fastest_first_and_resources(sn40l):
    assert list(sn40l.offchip_tiers()) == ["hbm", "ddr"]
    Pipeline()  # loads the planners and their resources
    res = {r.name: r for r in RESOURCES["rdu"](sn40l)}
    assert set(res) == {"pcus", "hbm", "ddr", "ddr_hbm"}
    assert res["pcus"].peak_macs_per_cycle == sn40l.pes
    assert res["hbm"].bytes_per_cycle == pytest.approx(1.8e12 / sn40l.freq_hz)
    assert res["ddr_hbm"].bytes_per_cycle == pytest.approx(1e12 / sn40l.freq_hz)


def test_energy_model_has_a_source_for_every_number(sn40l):
    em = sn40l.energy_model()
    assert em.mac_pj.value > 0 and em.mac_pj.source
    assert em.offchip_read_pj_per_byte["hbm"].value == pytest.approx(3.48 * 8)  # 3.48 pJ/bit
    assert "pmu" in em.sram_read_pj_per_byte and em.dram_read_pj_per_byte.value == pytest.approx(3.48 * 8)


def test_a_pmu_smaller_than_two_vectors_is_rejected():
    with pytest.raises(ConfigError, match="cannot double-buffer one 32-lane vector"):
        load_preset("sn40l", {"pmu.size": "64 B"})


def test_node_path_defaults_to_the_sockets_ddr_bandwidth():
    arch = load_preset("sn40l", {"node.ddr_to_hbm_bandwidth": None})
    assert arch.node_ddr_to_hbm_bytes_per_s == 8 * 200e9
