"""The gpu_pim planner and resources (mappers/hetero_plan.py): the xPU and PIM on shared banks."""

from __future__ import annotations

import pytest

from architectures.presets import load_preset
from mappers.hetero_plan import gpu_pim_resources
from mappers.pipeline import MapperOptions
from simulator.run import lower_workload, simulate
from workloads.graph import OpGraph, PrecisionPolicy
from workloads.registry import build_model

NO_LAUNCH = {"kernel.launch_overhead": 0}


def _two_gemvs() -> OpGraph:
    """Two independent 16384 x 16384 fp16 GEMVs (512 MiB of weights each)."""
    g = OpGraph("two", PrecisionPolicy(weights="fp16", activations="fp16"))
    for name in ("a", "b"):
        g.linear(name, g.input(f"x_{name}", (1, 16384)), 16384, bias=False)
    return g


MAPPER = {"placement_overrides": {"a": "xpu", "b": "pim"}}


@pytest.mark.parametrize("engine", ["numba", "simpy"])
def test_bank_partition_runs_the_xpu_and_pim_at_once_time_share_in_turns(engine):
    part = load_preset("h100_logic_pim", NO_LAUNCH)
    share = load_preset("h100_logic_pim", {**NO_LAUNCH, "pim.sharing": "time_share"})
    assert [r.name for r in gpu_pim_resources(part)][-2:] == ["pim", "pim_banks"]
    assert "pim_banks" not in [r.name for r in gpu_pim_resources(share)]
    xpu_s = 536_936_448 / (3.35e12 * 0.85)  # op a on the xPU's HBM channel: 189 us
    pim_s = 536_936_448 / (5 * 2.68e12 * 0.85)  # op b on Logic-PIM: 47 us
    rp = simulate(_two_gemvs(), part, mapper=MAPPER, engine=engine)
    rs = simulate(_two_gemvs(), share, mapper=MAPPER, engine=engine)
    assert {l.name: l.unit for l in rp.layers} == {"a": "gpu", "b": "pim"}
    # bank bundles: the two overlap, the run takes the longer one
    assert rp.latency_s == pytest.approx(max(xpu_s, pim_s), rel=0.02)
    # time-shared banks: PIM's transfers wait for the xPU's and the other way round: the sum
    assert rs.latency_s == pytest.approx(xpu_s + pim_s, rel=0.02)
    # the counters keep the real bytes either way
    for r in (rp, rs):
        assert r.layer("b").counters["pim_read_bytes"] == 536_936_448 - 32768


def test_data_exchanged_with_pim_goes_through_dram():
    arch = load_preset("h100_logic_pim")
    g = build_model("llama-3-8b", phase="decode", batch=64, context=2048)
    gpu = simulate(g, load_preset("h100_sxm"), mapper={"attention": "fused"}, engine="analytical")
    duplex = simulate(g, arch, mapper={"attention": "fused"}, engine="analytical")
    assert duplex.layer("layers.0.attn.av").unit == "pim" and duplex.layer("layers.0.attn.o").unit == "gpu"
    # on the GPU the fused attention's output stays in L2 for the output projection; with
    # attention on PIM it comes back from DRAM, and the rotated queries go out to it
    assert gpu.layer("layers.0.attn.o").counters["ifmap_dram_read_bytes"] == 0
    assert duplex.layer("layers.0.attn.o").counters["ifmap_dram_read_bytes"] == 64 * 4096 * 2
    assert duplex.layer("layers.0.attn.q").counters["ofmap_dram_write_bytes"] == 64 * 4096 * 2
    # PIM's bank traffic is DRAM traffic at PIM's energy per bit
    qk = duplex.layer("layers.0.attn.qk").counters
    assert qk["dram_read_bytes"] == qk["pim_read_bytes"] == qk["hbm_read_bytes"] > 64 * 8 * 2049 * 128 * 2
    assert qk["dram_energy_pj"] == pytest.approx((qk["pim_read_bytes"] + qk["pim_write_bytes"]) * 1.81 * 8)


def test_pim_operators_pay_the_xpus_launch_and_fit_the_task_budget():
    arch = load_preset("h100_logic_pim")  # A100-calibrated launch overhead: 14 us
    g = build_model("llama-3-8b", phase="decode", batch=16, context=1024)
    r = simulate(g, arch, mapper={"attention": "fused"}, engine="analytical")
    launch = arch.kernel.launch_overhead_s
    qk, sm = r.layer("layers.0.attn.qk"), r.layer("layers.0.attn.softmax")
    assert qk.unit == sm.unit == "pim"
    assert qk.latency_s >= launch and sm.latency_s < launch  # one launch per fused attention
    program = lower_workload(g, arch, MapperOptions())
    assert program.n_tasks <= 1.2 * 60_000


@pytest.mark.differential
@pytest.mark.parametrize("sharing", ["bank_partition", "time_share"])
def test_numba_and_simpy_agree_to_the_cycle_on_a_device_with_pim(sharing):
    from mappers.pipeline import Pipeline
    from simulator.engines import get_engine
    from workloads.llm_config import shipped_config
    from workloads.serving import IterationShape, build_iteration

    arch = load_preset("h100_logic_pim", {"pim.sharing": sharing})
    g = build_iteration(shipped_config("mixtral-8x7b"), IterationShape(512, 256, 12, 700),
                        parallelism={"expert": 2}, layers=2)
    g.meta["link"] = {"bandwidth_bytes_per_s": 450e9, "latency_s": 1e-6}
    options = MapperOptions(attention="fused", expert_coprocessing=True)
    program = Pipeline().lower(g, arch, options, lint=True)  # every pass leaves a well-formed graph
    program.validate()
    units = {program.layers[i].unit for i in range(len(program.layers))}
    assert {"d0.pim", "d0.gpu", "d1.gpu"} <= units
    a, b = get_engine("numba").run(program), get_engine("simpy").run(program)
    assert a.cycles == b.cycles
    assert [(l.start_cycle, l.end_cycle) for l in a.layers] == [(l.start_cycle, l.end_cycle) for l in b.layers]


@pytest.mark.parametrize("phase", ["decode", "serving"])
def test_attention_on_pim_starts_after_the_new_keys_and_values_are_written(phase):
    # decode attention on Logic-PIM reads the KV cache from the banks: it may start only once
    # the xPU has written this step's K and V rows (attn.k, attn.v run on the xPU)
    arch = load_preset("h100_logic_pim", NO_LAUNCH)
    if phase == "decode":
        g = build_model("mixtral-8x7b-layer", phase="decode", batch=16, context=1024)
        qk, av = "layers.0.attn.qk", "layers.0.attn.av"
    else:
        from workloads.llm_config import shipped_config
        from workloads.serving import IterationShape, build_iteration

        g = build_iteration(shipped_config("mixtral-8x7b"), IterationShape(0, 1, 16, 1024), layers=1)
        qk, av = "layers.0.decode.attn.qk", "layers.0.decode.attn.av"
    xpu = {f"*.attn.{p}": "xpu" for p in ("q", "k", "v", "o")}  # Duplex's placement
    r = simulate(g, arch, mapper={"attention": "fused", "placement_overrides": xpu}, engine="numba")
    assert r.layer(qk).unit == "pim" and r.layer("layers.0.attn.v").unit == "gpu"
    kv_done = max(r.layer(f"layers.0.attn.{p}").end_cycle for p in ("k", "v"))
    assert r.layer(qk).start_cycle >= kv_done
    assert r.layer(av).start_cycle >= r.layer("layers.0.attn.v").end_cycle


def test_time_shared_banks_slow_a_moe_layer_under_expert_coprocessing():
    # A real MoE layer (Mixtral-8x7B, decode, batch 64, skewed routing) with expert co-processing:
    # the fewest-token experts on Logic-PIM, the busiest two on the xPU, at once. With bank-bundle
    # partitioning (Duplex) the two units read different banks and the experts take about the
    # longer side; with time-shared banks (all-bank PIM mode) every PIM transfer holds the banks
    # against the xPU's and the other way round: about the sum of the two sides.
    g = build_model("mixtral-8x7b-layer", phase="decode", batch=64, context=1024,
                    expert_load={"distribution": "zipf", "alpha": 1.2, "seed": 0})
    mapper = {"attention": "fused", "expert_coprocessing": True}
    span, busy = {}, {}
    for sharing in ("bank_partition", "time_share"):
        arch = load_preset("h100_logic_pim", {**NO_LAUNCH, "pim.sharing": sharing})
        r = simulate(g, arch, mapper=mapper, engine="numba")
        experts = [l for l in r.layers if ".moe.expert" in l.name and l.kind == "linear"]
        assert {l.unit for l in experts} == {"pim", "gpu"}  # split between the units
        span[sharing] = max(l.end_cycle for l in experts) - min(l.start_cycle for l in experts)
        busy[sharing] = {u: sum(l.end_cycle - l.start_cycle for l in experts if l.unit == u) for u in ("pim", "gpu")}
    part, share = busy["bank_partition"], span["time_share"]
    assert span["bank_partition"] == pytest.approx(max(part.values()), rel=0.02)
    assert share == pytest.approx(part["pim"] + part["gpu"], rel=0.05)
    assert share > 1.5 * span["bank_partition"]
