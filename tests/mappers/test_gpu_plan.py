"""The ``gpu`` planner: counters, the launch/sync/body tiles, fused vs unfused attention, and the
event engines against the efficiency model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from architectures.presets import load_preset
from mappers.annotations import OpPlan, Tiling
from mappers.pipeline import MapperOptions, Pipeline
from simulator.engines import get_engine
from simulator.run import lower_workload, simulate
from workloads.gemm import gemm_graph
from workloads.graph import PrecisionPolicy
from workloads.llm import build_llm_from_file
from workloads.ops import GemmShape

FP16 = PrecisionPolicy(weights="fp16", activations="fp16")
TINY = {"model_type": "llama", "hidden_size": 256, "num_attention_heads": 8, "num_key_value_heads": 2,
        "intermediate_size": 512, "num_hidden_layers": 2, "vocab_size": 1000}
# measured A100 GEMM shapes (tests/data/a100_gemm_fp16_measured.csv)
CALIBRATION = [(64, 12288, 12288), (256, 12288, 12288), (1024, 12288, 12288), (4096, 12288, 12288),
               (16384, 12288, 12288), (8192, 1024, 1024), (8192, 4096, 4096), (8192, 16384, 16384)]


@pytest.fixture(scope="module")
def a100():
    return load_preset("a100_80gb")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.json"
    path.write_text(json.dumps(TINY))

    def build(**kw):
        return build_llm_from_file(str(path), precision=FP16, **kw)
    return build


def planned(graph, arch, **options):
    return Pipeline().run(graph, arch, MapperOptions(**options), lint=True)


# ---- one GEMM: counters and tiles ------------------------------------------------------------------

def test_gemm_counters(a100):
    M, K, N = 256, 4096, 4096
    g = planned(gemm_graph(M, K, N, precision=FP16), a100)
    p = g.get("gemm", OpPlan)
    c = p.counters
    k = a100.gemm_kernel(GemmShape(M, K, N))
    a, b, out = M * K * 2, K * N * 2, M * N * 2
    # both operands fit in L2: each is read from HBM once; C is written once
    assert c["ifmap_dram_read_bytes"] == a and c["filter_dram_read_bytes"] == b
    assert c["dram_read_bytes"] == c["hbm_read_bytes"] == a + b
    assert c["dram_write_bytes"] == c["hbm_write_bytes"] == out
    assert c["compulsory_dram_read_bytes"] == a + b and c["noncompulsory_dram_read_bytes"] == 0
    assert c["compulsory_dram_write_bytes"] == out and c["noncompulsory_dram_write_bytes"] == 0
    # L2 traffic: every CTA reads its A row panel and B column panel
    gm, gn = M // k.tile[0], N // k.tile[1]
    assert c["ifmap_sram_read_bytes"] == gn * a and c["filter_sram_read_bytes"] == gm * b
    # energy by component (Horowitz fp16 MAC 1.5 pJ; HBM 3.48 pJ/bit)
    assert c["mac_energy_pj"] == pytest.approx(M * K * N * 1.5)
    assert c["dram_energy_pj"] == pytest.approx((a + b + out) * 3.48 * 8)
    assert c["energy_pj"] == pytest.approx(c["mac_energy_pj"] + c["vector_energy_pj"] + c["sram_energy_pj"]
                                           + c["dram_energy_pj"])
    assert c["gpu_kernel_launches"] == 1 and c["gpu_waves"] == k.waves
    assert c["gpu_model_kernel_cycles"] == pytest.approx(k.time_s * a100.freq_hz)
    # tiles: launch, sync, then the body carries every byte and the compute cycles
    launch = round(a100.kernel.launch_overhead_s * a100.freq_hz)
    assert p.cycles[0] == launch and p.cycles[1] == 0
    assert p.loads["hbm"][:2].sum() == 0 and p.stores["hbm"][:2].sum() == 0
    assert p.loads["hbm"].sum() == a + b and p.stores["hbm"].sum() == out
    assert p.cycles[2:].sum() == round(k.compute_s * a100.freq_hz)
    assert p.compute_cycles == p.cycles.sum()
    assert p.tiles <= MapperOptions().max_tiles_per_layer
    assert p.unit == "gpu" and p.dataflow == "cta " + "x".join(map(str, k.tile))
    tiling = g.get("gemm", Tiling)
    assert tiling.plan.folds == k.tiles and "CTA tile" in tiling.chosen_by


def test_big_gemm_rereads_are_noncompulsory(a100):
    c = planned(gemm_graph(4096, 12288, 12288, precision=FP16), a100).get("gemm", OpPlan).counters
    compulsory = 4096 * 12288 * 2 + 12288 * 12288 * 2
    assert c["compulsory_dram_read_bytes"] == compulsory
    assert c["noncompulsory_dram_read_bytes"] > 0
    assert c["dram_read_bytes"] == compulsory + c["noncompulsory_dram_read_bytes"]


def test_layer_fidelity_is_launch_sync_and_one_body_tile(a100):
    p = planned(gemm_graph(1024, 1024, 1024, precision=FP16), a100, fidelity="layer").get("gemm", OpPlan)
    assert p.tiles == 3 and p.loads["hbm"][2] == 2 * 2 * 1024 * 1024


def test_decode_activations_stay_in_l2(a100, tiny):
    g = planned(tiny(phase="decode", batch=1, context=64), a100)
    q = g.get("layers.0.attn.q", OpPlan).counters
    # the normalized input of q/k/v is a few hundred bytes: kept in L2, only the weights move
    assert q["ifmap_dram_read_bytes"] == 0
    assert q["filter_dram_read_bytes"] == 256 * 256 * 2


# ---- attention: fused vs unfused -------------------------------------------------------------------

def attention_layers(result, layer: int = 0):
    return {n: result.layer(f"layers.{layer}.attn.{n}") for n in ("qk", "softmax", "av")}


def test_fused_attention_moves_fewer_hbm_bytes_and_is_faster(a100, tiny):
    # 2048 tokens: 8 heads x 2048 x 2048 fp16 scores = 64 MiB per layer, more than L2 holds
    graph = tiny(phase="prefill", batch=1, sequence=2048)
    unfused = simulate(graph, a100, mapper={"attention": "unfused"}, engine="numba")
    fused = simulate(graph, a100, mapper={"attention": "fused"}, engine="numba")
    scores = 8 * 2048 * 2048 * 2
    u, f = attention_layers(unfused), attention_layers(fused)
    # unfused: QK^T writes the scores, softmax reads and writes them, AV reads them
    assert u["qk"].counters["dram_write_bytes"] == scores
    assert u["softmax"].counters["dram_read_bytes"] == scores
    assert u["softmax"].counters["dram_write_bytes"] == scores
    assert u["av"].counters["ifmap_dram_read_bytes"] == scores
    # fused: the scores never leave the chip; Q, K, V read once, O written once
    assert f["qk"].counters["dram_write_bytes"] == 0
    assert f["softmax"].counters["dram_read_bytes"] == f["softmax"].counters["dram_write_bytes"] == 0
    assert f["av"].counters["ifmap_dram_read_bytes"] == 0
    q_k_v = 2048 * 256 * 2 + 2 * 2048 * 64 * 2
    assert sum(l.counters["dram_read_bytes"] for l in f.values()) <= q_k_v
    # one launch per fused attention, three unfused
    assert sum(l.counters["gpu_kernel_launches"] for l in f.values()) == 1
    assert sum(l.counters["gpu_kernel_launches"] for l in u.values()) == 3
    # the whole prefill
    mu, mf = unfused.metrics(), fused.metrics()
    assert mf["dram_read_bytes"] + mf["dram_write_bytes"] < mu["dram_read_bytes"] + mu["dram_write_bytes"] - 3 * scores
    assert fused.cycles < unfused.cycles
    assert mf["macs"] == mu["macs"] == graph.macs


# ---- engines ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("M, K, N", CALIBRATION + [(1, 4096, 4096), (8, 4096, 11008)])
def test_numba_reproduces_the_kernel_model(a100, M, K, N):
    # the lowering's double buffering overlaps the body chunks: launch + max(compute, memory) up to
    # one chunk of fill and drain (the planner cuts the body into 62 chunks)
    model = a100.gemm_kernel(GemmShape(M, K, N)).time_s
    numba = simulate(gemm_graph(M, K, N, precision=FP16), a100, engine="numba")
    assert numba.latency_s == pytest.approx(model, rel=0.02)
    assert numba.latency_s >= model * (1 - 1e-6)


@pytest.mark.differential
def test_numba_and_simpy_agree_on_a_gpu_program(a100, tiny):
    program = lower_workload(tiny(phase="prefill", batch=1, sequence=256), a100,
                             MapperOptions(attention="fused"))
    numba = get_engine("numba").run(program)
    simpy = get_engine("simpy").run(program)
    assert numba.cycles == simpy.cycles
    assert [(l.start_cycle, l.end_cycle, l.stall_memory_cycles) for l in numba.layers] == \
        [(l.start_cycle, l.end_cycle, l.stall_memory_cycles) for l in simpy.layers]


@pytest.mark.parametrize("phase, kw", [("prefill", {"sequence": 512}), ("decode", {"context": 512})])
def test_engines_against_the_model_on_an_llm(a100, tiny, phase, kw):
    graph = tiny(phase=phase, batch=4, **kw)
    numba = simulate(graph, a100, engine="numba")
    analytical = simulate(graph, a100, engine="analytical")
    model = numba.metrics()["gpu_model_kernel_cycles"]
    # kernels run one after another on the one 'gpu' unit: the sum of the kernel models
    assert numba.cycles == pytest.approx(model, rel=0.02)
    # the analytical engine keeps the launch outside the roofline, as the model does:
    # launch + max(compute, memory) per kernel (up to per-layer cycle rounding)
    assert analytical.cycles == pytest.approx(model, abs=3 * len(analytical.layers))
    for layer in analytical.layers:
        c = layer.counters
        launch = c["gpu_kernel_launches"] * a100.kernel.launch_overhead_s * a100.freq_hz
        expected = launch + max(c["gpu_model_compute_cycles"], c["gpu_model_memory_cycles"])
        assert layer.total_cycles == pytest.approx(expected, abs=2)


def test_program_bytes_match_the_counters(a100, tiny):
    program = lower_workload(tiny(phase="prefill", batch=2, sequence=128), a100)
    moved = int(program.nbytes.sum())
    counted = sum(l.counters["dram_read_bytes"] + l.counters["dram_write_bytes"] for l in program.layers)
    assert moved == counted
    assert {r.name for r in program.resources} == {"gpu", "hbm", "host"}  # host: the PCIe link
    hbm = program.resources[program.resource_index("hbm")]
    assert hbm.bytes_per_cycle == pytest.approx(a100.hbm_sustained_bytes_per_s / a100.freq_hz)
    # every kernel that launches starts with its launch task and an empty sync task
    first = {}
    for t in np.nonzero(program.kind == 0)[0]:
        first.setdefault(int(program.layer[t]), []).append(int(program.cycles[t]))
    launch = round(a100.kernel.launch_overhead_s * a100.freq_hz)
    assert all(c[:2] == [launch, 0] for c in first.values())
