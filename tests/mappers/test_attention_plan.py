"""The fusemax planner: attention as a cascade of Einsums (FuseMax) or FLAT, checked by hand."""

from __future__ import annotations

import pytest

from architectures.presets import load_preset
from mappers.attention_plan import array_utilization
from simulator.run import lower_workload, simulate
from workloads.graph import PrecisionPolicy
from workloads.registry import build_model


@pytest.fixture(scope="module")
def arch():
    return load_preset("fusemax_cloud")


def attention(model="bert", seq=1024, batch=64):
    return build_model(f"fusemax-{model}-attention", batch=batch, sequence=seq)


def test_fusemax_einsums_by_hand(arch):
    # BERT, 1K, batch 64: BH = 768 heads, P = M = 1024, E = F = 64; 2D tiles T2 = 768 * 4 * 4;
    # 1D: (chunk, query) pairs BH * M1 * P = 768 * 4 * 1024 over 256 PEs
    r = simulate(attention(), arch, mapper={"attention_mapping": "fusemax"}, engine="analytical")
    c = r.layer("layers.0.attn.av").counters
    T2, D1 = 768 * 16, 768 * 4 * 1024 // 256
    expected = {"QK": T2 * 64, "LM": T2, "SLN": T2 * 7, "SLD": T2, "SLNV": T2 * 64, "RM": D1,
                "PRM": D1 * 7, "SPD": D1, "SPNV": D1 * 64, "RD": D1, "RNV": D1 * 64, "AV": 768 * 1024 * 64 // 256}
    assert {k: c[f"einsum.{k}_cycles"] for k in expected} == expected
    # the waterfall: max(QK+LM, RD+RNV+AV) + RM + max(SLN+SLD, PRM+SPD) + max(SLNV, SPNV)
    waterfall = (max(T2 * 65, D1 * 65 + expected["AV"]) + D1 + max(T2 * 8, D1 * 8) + max(T2 * 64, D1 * 64))
    assert c["attention_cycles"] == waterfall == 1_892_352  # the artifact's 0.0020131 s at 940 MHz
    assert c["array2d_busy_cycles"] == T2 * (64 + 1 + 7 + 1 + 64)
    # Q, K, V read once and the output written once (every query fits one block at 1K)
    assert c["attention_kv_passes"] == 1
    assert r.counter("dram_read_bytes") == 3 * 64 * 12 * 1024 * 64 * 2
    assert r.counter("dram_write_bytes") == 64 * 12 * 1024 * 64 * 2
    # QK and softmax are zero-cycle rows that keep their MACs and vector ops
    assert r.layer("layers.0.attn.qk").compute_cycles == 0
    assert r.macs == attention().macs


def test_flat_by_hand(arch):
    r = simulate(attention(), arch, mapper={"attention_mapping": "flat"}, engine="analytical")
    c = r.layer("layers.0.attn.av").counters
    S = 768 * 1024 * 1024
    assert c["einsum.SM_cycles"] == 4 * S // 256 == 12_582_912  # the artifact's 0.013386 s
    assert c["einsum.QK_cycles"] == c["einsum.AV_cycles"] == 768 * 16 * 64
    # 3072 blocks of 256 queries: QK 256, softmax 4096, AV 256 cycles each, 1D-bound
    assert c["attention_cycles"] == 256 + 4096 + 256 + 3071 * 4096
    assert c["flat_spill_fraction"] == 0


@pytest.mark.parametrize("mapping, util2d", [("fusemax", 0.8896), ("flat", 0.125)])
def test_utilization_of_the_two_arrays(arch, mapping, util2d):
    r = simulate(attention(), arch, mapper={"attention_mapping": mapping}, engine="numba")
    u = array_utilization(r)
    assert u["util_2d"] == pytest.approx(util2d, rel=0.01)
    assert u["util_1d"] == pytest.approx(1.0, rel=0.01)


def test_fusemax_buffer_does_not_grow_with_the_sequence_but_flat_does(arch):
    def counters(mapping, seq):
        r = simulate(attention(seq=seq, batch=1), arch, mapper={"attention_mapping": mapping}, engine="analytical")
        return r.layer("layers.0.attn.av").counters

    fm = [counters("fusemax", s)["attention_buffer_bytes"] for s in (1024, 16384, 65536)]
    assert len(set(fm)) == 1 and fm[0] <= arch.memory.global_sram.size_bytes
    flat = [counters("flat", s) for s in (1024, 16384, 65536)]
    assert flat[0]["attention_buffer_bytes"] < flat[1]["attention_buffer_bytes"] < flat[2]["attention_buffer_bytes"]
    # BERT at 16K still fits the 16 MiB buffer (8 MiB of scores per block); at 64K the scores spill
    assert flat[1]["flat_spill_fraction"] == 0 and flat[2]["flat_spill_fraction"] == 1.0


def test_fusemax_reads_kv_once_per_query_block(arch):
    # 1M tokens: the buffer holds P1 = 128 blocks of 256 queries (the largest divisor of 4096
    # that fits), so K and V are read 4096 / 128 = 32 times (the artifact's proposal.py rule)
    r = simulate(attention(seq=1 << 20, batch=1), arch, mapper={"attention_mapping": "fusemax"}, engine="analytical")
    c = r.layer("layers.0.attn.av").counters
    assert (c["attention_query_blocks"], c["attention_kv_passes"]) == (128, 32)


def test_other_operators_run_on_the_arrays(arch):
    g = build_model("fusemax-bert-layer", batch=2, sequence=512)
    r = simulate(g, arch, engine="analytical")
    q = r.layer("layers.0.attn.q")
    assert q.unit == "array2d"
    assert q.compute_cycles == 4 * 3 * 768  # ceil(1024/256) x ceil(768/256) tiles x K = 768
    assert r.macs == g.macs


def test_lint_passes(arch):
    lower_workload(build_model("fusemax-xlm-layer", batch=1, sequence=256), arch, lint=True).validate()


@pytest.mark.differential
@pytest.mark.parametrize("mapping", ["fusemax", "flat"])
def test_numba_and_simpy_agree(arch, mapping):
    g = build_model("fusemax-t5-layer", batch=4, sequence=1024)
    a = simulate(g, arch, mapper={"attention_mapping": mapping}, engine="numba")
    b = simulate(g, arch, mapper={"attention_mapping": mapping}, engine="simpy")
    assert a.cycles == b.cycles


def test_attention_mapping_is_validated():
    from mappers.pipeline import MapperOptions
    from workloads.errors import ConfigError
    from workloads.schema import validate

    with pytest.raises(ConfigError, match="expected one of 'fusemax' or 'flat'"):
        validate(MapperOptions, {"attention_mapping": "flash"})
    assert PrecisionPolicy(weights="int16", activations="int16").activations == "int16"
