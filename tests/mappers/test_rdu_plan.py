"""The rdu planner: spatial pipelines, PCU/PMU allocation, capacity splits, unfused kernels."""

from __future__ import annotations

import math

import pytest

from architectures.presets import load_preset
from architectures.rdu import RDU
from mappers.rdu_plan import pipeline_cycles, stage_table
from simulator.run import lower_workload, simulate
from workloads.errors import ConfigError
from workloads.graph import OpGraph, PrecisionPolicy
from workloads.ops import MatMul, TensorSpec
from workloads.registry import build_model
from workloads.schema import validate

BF16 = PrecisionPolicy(weights="bf16", activations="bf16")


def tiny_rdu(*, pcus=3, pmus=3, pmu_size="64 KiB", pmu_bw=1024, link=1024, lanes=4, stages=2,
             hbm="inf", kernel_call=0.0) -> RDU:
    return validate(RDU, {
        "name": "tiny_rdu", "freq": "1 GHz", "pcus": pcus, "pmus": pmus,
        "pcu": {"lanes": lanes, "stages": stages, "precision": "fp16"},
        "pmu": {"size": pmu_size, "bandwidth_bytes_per_cycle": pmu_bw},
        "network": {"link_bytes_per_cycle": link},
        "memory": {"hbm": {"size": "1 GiB", "bandwidth": hbm}, "ddr": {"size": "4 GiB", "bandwidth": hbm}},
        "kernel_call": kernel_call})


def chain3(n: int = 4096) -> OpGraph:
    """x -> e1 (1 op/element) -> e2 (3 ops) -> e3 (2 ops), one block."""
    g = OpGraph("chain3", PrecisionPolicy(weights="fp16", activations="fp16"))
    x = g.input("x", (1, n))
    a = g.elementwise("e1", "relu", x, ops_per_element=1, block="b")
    b = g.elementwise("e2", "gelu", a, ops_per_element=3, block="b")
    g.elementwise("e3", "silu", b, ops_per_element=2, block="b")
    return g


NO_FUSE_PASS = {"fuse_activations": False}


def test_pipeline_formula():
    # fill + n * slowest + drain: stages before the slowest fill, after it drain
    assert pipeline_cycles([1, 3, 2], 512) == (1 + 512 * 3 + 2, 1, 2, 1)
    assert pipeline_cycles([5, 5], 1) == (10, 0, 5, 0)


@pytest.mark.parametrize("engine", ["numba", "simpy", "analytical"])
def test_three_stage_chain_matches_the_hand_computed_pipeline(engine):
    # 4096 elements, a PCU of 4 lanes x 2 stages: 8 element operations per cycle.
    # Stage work on one PCU each (3 PCUs, 3 stages): e1 4096/8 = 512, e2 3*4096/8 = 1536,
    # e3 2*4096/8 = 1024 cycles. PMU and link bandwidths are large (1024 B/cycle: 16 KiB in+out
    # per stage take 16 cycles), HBM unlimited. Chunks: the fewest vectors (8 ops) per PCU of any
    # stage = e1's 512 -> n = 512; per chunk 1, 3 and 2 cycles; e2 is the slowest:
    # fill 1 + 512 * 3 + drain 2 = 1539 cycles.
    arch = tiny_rdu()
    r = simulate(chain3(), arch, mapper=NO_FUSE_PASS, engine=engine)
    assert r.cycles == 1 + 512 * 3 + 2 == 1539
    tail = r.layer("e3")
    c = tail.counters
    assert (c["pipeline_iterations"], c["pipeline_stages"]) == (512, 3)
    assert (c["pipeline_fill_cycles"], c["pipeline_slowest_stage_cycles"], c["pipeline_drain_cycles"]) == (1, 3, 2)
    assert r.layer("e2").counters["stage.e2.slowest"] == 1 and c["stage.e3.slowest"] == 0
    assert [r.layer(n).counters[f"stage.{n}.cycles"] for n in ("e1", "e2", "e3")] == [1, 3, 2]
    assert [r.layer(n).counters[f"stage.{n}.pcus"] for n in ("e1", "e2", "e3")] == [1, 1, 1]
    # the other stages are zero-cycle rows that carry their counters
    assert r.layer("e1").compute_cycles == 0 and r.layer("e1").vector_ops == 4096
    rows = stage_table(r, "e3")
    assert rows[0]["stage"] == "e2" and rows[0]["bound"] == "compute" and rows[0]["slowest"]


def test_three_stage_chain_unfused_is_the_sum_of_three_kernels():
    # each operator alone on all 3 PCUs: 512/3, 1536/3, 1024/3 cycles (rounded up per chunk)
    r = simulate(chain3(), tiny_rdu(), mapper={**NO_FUSE_PASS, "spatial_fusion": False}, engine="numba")
    for name, work in (("e1", 512), ("e2", 1536), ("e3", 1024)):
        c = r.layer(name).counters
        assert c["kernel_calls"] == 1 and c["pipeline_stages"] == 1
        assert c["pipeline_cycles"] == c["pipeline_iterations"] * math.ceil(math.ceil(work / 3) / c["pipeline_iterations"])
    assert r.cycles == sum(r.layer(n).counters["pipeline_cycles"] for n in ("e1", "e2", "e3"))
    # intermediates go through HBM: written by e1 and e2, read by e2 and e3
    assert r.counter("hbm_write_bytes") == 3 * 8192 and r.counter("hbm_read_bytes") == 3 * 8192
    fused = simulate(chain3(), tiny_rdu(), mapper=NO_FUSE_PASS, engine="numba")
    assert fused.counter("hbm_read_bytes") == fused.counter("hbm_write_bytes") == 8192


def test_kernel_call_cost_is_paid_once_per_kernel():
    base = simulate(chain3(), tiny_rdu(), mapper=NO_FUSE_PASS, engine="numba").cycles
    slow = simulate(chain3(), tiny_rdu(kernel_call="1 us"), mapper=NO_FUSE_PASS, engine="numba").cycles
    assert slow - base == 1000
    unfused = {"spatial_fusion": False, **NO_FUSE_PASS}
    u0 = simulate(chain3(), tiny_rdu(), mapper=unfused, engine="numba").cycles
    u1 = simulate(chain3(), tiny_rdu(kernel_call="1 us"), mapper=unfused, engine="numba").cycles
    assert u1 - u0 == 3000


def materialized_graph() -> OpGraph:
    """a @ relu(b0): the MatMul's second operand is produced inside the block (held in full)."""
    g = OpGraph("mat", PrecisionPolicy(weights="fp16", activations="fp16"))
    a = g.input("a", (8, 64, 64))
    b0 = g.input("b0", (8, 64, 64))
    b = g.elementwise("relu", "relu", b0, block="blk")
    out = TensorSpec("mm.out", (8, 64, 64), "fp16")
    g.add(MatMul(name="mm", inputs=(a, b), output=out, batch=8, M=64, K=64, N=64, block="blk"))
    return g


def test_a_pipeline_that_does_not_fit_the_pmus_is_split_and_says_so():
    # 8 PMUs of 4 KiB = 32 KiB; relu's output (64 KiB) would be held in full by the MatMul
    arch = tiny_rdu(pcus=8, pmus=8, pmu_size="4 KiB")
    r = simulate(materialized_graph(), arch, mapper=NO_FUSE_PASS, engine="numba")
    kernels = [l for l in r.layers if "pipeline_stages" in l.counters]
    assert len(kernels) == 2
    assert all(l.counters["fusion_split"] == 1 for l in kernels)
    for l in kernels:  # never more PMU capacity than exists
        assert l.counters["pipeline_pmu_bytes"] <= arch.pmu_capacity_bytes
        assert l.counters["pipeline_pmus"] <= arch.pmus
    # with room, the same block is one kernel and the split counter is 0
    big = tiny_rdu(pcus=8, pmus=8, pmu_size="64 KiB")
    r2 = simulate(materialized_graph(), big, mapper=NO_FUSE_PASS, engine="numba")
    (k,) = [l for l in r2.layers if "pipeline_stages" in l.counters]
    assert k.counters["fusion_split"] == 0 and k.counters["pipeline_stages"] == 2
    assert k.counters["pipeline_pmu_bytes"] >= 8 * 64 * 64 * 2  # relu's output held in full


def test_an_operator_that_cannot_fit_alone_is_an_error_with_the_numbers():
    # one group (batch 1) of 512 x 512 fp16: its second operand (512 KiB) must be on chip per chunk
    g = OpGraph("big", PrecisionPolicy(weights="fp16", activations="fp16"))
    a = g.input("a", (1, 512, 512))
    b = g.input("b", (1, 512, 512))
    g.add(MatMul(name="mm", inputs=(a, b), output=TensorSpec("mm.out", (1, 512, 512), "fp16"),
                 batch=1, M=512, K=512, N=512, block="blk"))
    arch = tiny_rdu(pcus=4, pmus=4, pmu_size="16 KiB")
    with pytest.raises(ConfigError) as info:
        lower_workload(g, arch)
    msg = str(info.value)
    assert "mm: one operator needs" in msg and "MiB of PMU memory" in msg
    assert "0.0625 MiB (4 PMUs x 0.01562 MiB)" in msg and "cannot run even as a kernel of its own" in msg


@pytest.fixture(scope="module")
def sn40l() -> RDU:
    return load_preset("sn40l")


def test_a_decoder_layer_is_one_kernel_and_conserves_macs(sn40l):
    g = build_model("llama-2-7b-layer", phase="prefill", batch=1, sequence=1024, precision=BF16)
    r = simulate(g, sn40l, engine="numba")
    kernels = [l for l in r.layers if "pipeline_stages" in l.counters]
    assert len(kernels) == 1 and kernels[0].name == "layers.0.add2"
    assert kernels[0].counters["pipeline_stages"] == len(r.layers) == 15  # rotaries ride in q and k
    assert r.macs == g.macs
    assert kernels[0].counters["pipeline_pcus"] == sn40l.pcus
    assert kernels[0].counters["pipeline_pmus"] <= sn40l.pmus
    assert kernels[0].counters["pipeline_pmu_bytes"] <= sn40l.pmu_capacity_bytes
    # off chip: weights, the layer's input, its output and the KV-cache writes; no scores
    weights = sum(t.nbytes for op in g.ops() for t in op.weights)
    kv = 2 * 1024 * 4096 * 2
    assert r.counter("hbm_read_bytes") == weights + 1024 * 4096 * 2
    assert r.counter("hbm_write_bytes") == 1024 * 4096 * 2 + kv
    assert r.counter("compulsory_dram_read_bytes") == r.counter("dram_read_bytes")


def test_fusion_removes_intermediate_traffic_and_is_not_slower(sn40l):
    g = build_model("llama-2-7b-layer", phase="prefill", batch=1, sequence=2048, precision=BF16)
    fused = simulate(g, sn40l, mapper={"spatial_fusion": True}, engine="numba")
    unfused = simulate(g, sn40l, mapper={"spatial_fusion": False}, engine="numba")
    assert unfused.counter("kernel_calls") == 15 and fused.counter("kernel_calls") == 1
    scores = 32 * 2048 * 2048 * 2
    assert unfused.counter("noncompulsory_dram_write_bytes") >= 2 * scores  # qk and softmax outputs
    assert fused.counter("noncompulsory_dram_write_bytes") == fused.counter("noncompulsory_dram_read_bytes") == 0
    assert fused.cycles < unfused.cycles
    # why the unfused layer is slower: its attention kernels wait on HBM
    for name in ("layers.0.attn.qk", "layers.0.attn.softmax", "layers.0.attn.av"):
        layer = unfused.layer(name)
        assert layer.stall_memory_cycles > layer.compute_cycles


def test_decode_layer_is_hbm_bound_fused_or_not(sn40l):
    g = build_model("llama-2-7b-layer", phase="decode", batch=1, context=2048, precision=BF16)
    fused = simulate(g, sn40l, engine="numba")
    hbm_s = fused.counter("hbm_read_bytes") / sn40l.memory.hbm.bandwidth_bytes_per_s
    assert fused.latency_s == pytest.approx(hbm_s, rel=0.02)
    unfused = simulate(g, sn40l, mapper={"spatial_fusion": False}, engine="numba")
    assert unfused.cycles >= fused.cycles


def test_identical_layers_get_identical_kernels(sn40l):
    g = build_model("llama-2-7b", phase="decode", batch=1, context=512, precision=BF16)
    r = simulate(g, sn40l, engine="analytical")
    tails = [l for l in r.layers if l.name.endswith(".add2")]
    assert len(tails) == 32
    tails = tails[:-1]  # the last layer's kernel also runs the final norm (fused into its add2)
    assert len({(l.compute_cycles, l.counters["pipeline_iterations"]) for l in tails}) == 1


def test_lint_passes_on_an_llm(sn40l):
    g = build_model("llama-2-7b-layer", phase="decode", batch=2, context=128, precision=BF16)
    lower_workload(g, sn40l, lint=True).validate()


@pytest.mark.differential
def test_numba_and_simpy_agree_on_a_fused_layer(sn40l):
    g = build_model("llama-2-7b-layer", phase="prefill", batch=1, sequence=512, precision=BF16)
    a = simulate(g, sn40l, engine="numba")
    b = simulate(g, sn40l, engine="simpy")
    assert a.cycles == b.cycles
    assert [(l.start_cycle, l.end_cycle) for l in a.layers] == [(l.start_cycle, l.end_cycle) for l in b.layers]
