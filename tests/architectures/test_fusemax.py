"""The fusemax template and its cloud preset (FuseMax, MICRO 2024)."""

from __future__ import annotations

import pytest

from architectures.presets import load_preset


def test_cloud_preset_matches_the_artifact():
    # FPSG-UIUC/micro24-fusemax-artifact: 256x256 2D array, 256-PE 1D array, 940 MHz, 16 MiB
    # global buffer, 400 GiB/s DRAM
    a = load_preset("fusemax_cloud")
    assert (a.array2d.rows, a.array2d.cols, a.array1d.pes) == (256, 256, 256)
    assert a.freq_hz == 940e6
    assert a.memory.global_sram.size_bytes == 16 * 2**20
    assert a.memory.dram.bandwidth_bytes_per_s == 400 * 2**30
    assert a.peak_macs_per_s == 256 * 256 * 940e6
    assert a.pe.supports("int16") and not a.pe.supports("fp32")


def test_energy_model():
    em = load_preset("fusemax_cloud").energy_model()
    assert (em.mac_pj.value, em.vector_op_pj.value, em.exp_pj.value) == (17.1645, 8.3395, 94.6475)
    assert em.dram_read_pj_per_byte.value == pytest.approx(64.0)  # 8 pJ/bit
    bare = load_preset("fusemax_cloud", {"energy.exp": None, "energy.divide": None})
    e = bare.energy_model()
    assert e.exp_pj.value == pytest.approx(6 * 17.1645 + 8.3395)  # FuseMax's 6 MACs + 1 add
    assert e.divide_pj.value == 17.1645
