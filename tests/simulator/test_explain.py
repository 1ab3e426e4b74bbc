"""``tessera explain``: per layer, the bound, the intensity against the ridge, the folds and one
sentence on what would help, each computed from the run's numbers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from simulator.cli import main
from simulator.experiment import parse_experiment
from simulator.explain import annotated_graphs, explain_experiment, explain_result
from simulator.result import LayerResult, SimResult

ARRAY = """\
architecture:
  template: systolic_array
  rows: {R}
  cols: {R}
  dataflow: {df}
  freq: "1 GHz"
  memory:
    ifmap_sram: {{size: "{ifmap}"}}
    filter_sram: {{size: "{filt}"}}
    ofmap_sram: {{size: "64 KiB"}}
    dram: {{bandwidth: "{bw}"}}
"""


def gemm_experiment(M, K, N, *, R=8, df="os", bw="1 TB/s", ifmap="64 KiB", filt="64 KiB", mapper=""):
    text = (f"name: t\n{ARRAY.format(R=R, df=df, bw=bw, ifmap=ifmap, filt=filt)}"
            f"workload: {{gemm: {{M: {M}, K: {K}, N: {N}}}}}\nengine: analytical\n{mapper}")
    return parse_experiment(text)


def only_layer(exp):
    explanation = explain_experiment(exp)
    (layer,) = explanation.layers
    return explanation, layer


def test_a_compute_bound_layer_at_peak():
    ex, l = only_layer(gemm_experiment(64, 512, 64))
    assert l.bound == "compute" and l.bound_share == 1.0
    assert l.intensity == pytest.approx(l.macs / l.dram_bytes)
    assert l.ridge == pytest.approx(8 * 8 * 1e9 / 1e12) == ex.ridge
    assert l.intensity > l.ridge
    assert l.advice_kind == "peak"
    assert "useful MACs in 97% of its compute cycles" in l.advice  # 512 / (512 + 8 + 8 - 2)
    assert l.folds == "folds ceil(M/R)=8 x ceil(N/C)=8 = 64 of 526 cycles"
    assert "(compute side)" in "\n".join(l.lines())


def test_a_memory_bound_layer_that_re_reads_its_weights():
    exp = gemm_experiment(1024, 2048, 64, R=32, bw="4 GB/s", ifmap="1 MiB", filt="8 KiB")
    ex, l = only_layer(exp)
    assert l.bound == "memory" and l.intensity < l.ridge
    assert l.advice_kind == "refetch"
    # os: the filter column block is K x C = 2048 x 32 x 1 B = 64 KiB; half of 8 KiB holds 4 KiB
    assert ("weights are re-read 32 times (once per row fold) because the filter column block "
            "(K x C = 64 KiB) does not fit half the filter SRAM (4 KiB): a 16x larger filter SRAM "
            "(128 KiB) removes that") in l.advice
    # the advice is right, and minimal: 128 KiB stops the re-reads, 64 KiB does not
    fixed = explain_experiment(gemm_experiment(1024, 2048, 64, R=32, bw="4 GB/s", ifmap="1 MiB", filt="128 KiB"))
    half = explain_experiment(gemm_experiment(1024, 2048, 64, R=32, bw="4 GB/s", ifmap="1 MiB", filt="64 KiB"))
    assert "weights are re-read" not in fixed.layers[0].advice  # (its input is re-read next)
    assert "weights are re-read 32 times" in half.layers[0].advice
    saved = l.dram_bytes - fixed.layers[0].dram_bytes
    assert f"{saved / 2**20:.3g} MiB less off-chip traffic" in l.advice


def test_a_memory_bound_layer_reading_weights_for_one_row():
    ex, l = only_layer(gemm_experiment(1, 4096, 4096, R=32, bw="10 GB/s"))
    assert l.bound == "memory" and l.advice_kind == "weights"
    assert l.intensity == pytest.approx(1.0, rel=1e-3)  # int8: one MAC per weight byte
    assert "each weight read from memory is used by only M=1 row: 1 MAC per weight byte against a " \
           "ridge of 102 MAC/B" in l.advice
    need = l.dram_bytes / (l.parts["compute"] * 1e-9)
    assert f"it needs {need / 1e9:.3g} GB/s to keep its unit busy, off-chip memory gives 10 GB/s" in l.advice


def test_a_layer_with_poor_mapping_efficiency():
    ex, l = only_layer(gemm_experiment(3136, 27, 64, R=128, df="ws", bw="100 GB/s"))
    assert l.bound == "compute" and l.advice_kind == "mapping"
    assert l.mapping_efficiency == pytest.approx(27 / 128 * 64 / 128)
    assert l.advice.startswith("K=27 fills 27 of 128 rows and N=64 fills 64 of 128 columns: "
                               "mapping efficiency 11%")


def test_fill_and_drain_and_a_faster_dataflow():
    exp = parse_experiment("name: t\narchitecture: {preset: tpu_v1_like, overrides: {memory.dram.bandwidth: inf}}\n"
                           "workload: {gemm: {M: 49, K: 2304, N: 512}}\nmapper: {dataflow: ws}\n"
                           "engine: analytical\n")
    ex, l = only_layer(exp)
    assert ex.ridge is None and l.ridge is None
    assert l.advice_kind == "fill_drain"
    assert ("streams M=49 values but takes 815 cycles (2R + C + M - 2): 2R + C - 2 = 766 of them fill and "
            "drain the 256x256 array") in l.advice  # 2x256 + 256 + 49 - 2
    # os: ceil(49/256) x ceil(512/256) = 2 folds of 2304 + 256 + 256 - 2 cycles
    assert "mapper.dataflow: os would take about 5,628 cycles instead of 14,670" in l.advice


def test_an_llm_decode_is_memory_bound_on_its_weights_and_kv_cache():
    exp = parse_experiment("name: dec\narchitecture: {preset: scalesim_32x32}\n"
                           "workload: {model: llama-2-7b, phase: decode, batch: 1, sequence: 128, generate: 2}\n"
                           "mapper: {dataflow: auto}\nengine: analytical\n")
    ex = explain_experiment(exp)
    gate = ex.layer("decode:layers.0.mlp.gate")
    assert gate.bound == "memory" and gate.advice_kind == "weights"
    assert gate.intensity < gate.ridge
    assert gate.advice.startswith("decode at batch 1 (M=1) reads every weight once per token: 1 MAC per "
                                  "weight byte against a ridge of 102 MAC/B, so it is memory-bound")
    assert "per decode step" in gate.folds
    av = ex.layer("decode:layers.0.attn.av")
    assert av.advice_kind == "kv_cache" and "reads the KV cache" in av.advice
    summary = "\n".join(ex.summary_lines())
    assert "ridge 102 MAC/B" in summary and "(memory side)" in summary


def _layer(**kw) -> LayerResult:
    base = dict(index=0, name="x", kind="conv2d", unit="array", dataflow="os", block=None, start_cycle=0,
                end_cycle=1000, compute_cycles=200, stall_cycles=800, stall_memory_cycles=0,
                stall_dependency_cycles=0, stall_busy_cycles=0, macs=1000, vector_ops=0, folds=1,
                mapping_efficiency=1.0, compute_utilization=1.0, utilization=0.1, latency_s=1e-6,
                gemm=(10, 10, 10, 1), counters={"dram_read_bytes": 100.0, "dram_write_bytes": 0.0})
    return LayerResult(**{**base, **kw})


def test_stalls_on_dependencies_and_busy_units_come_from_the_stall_attribution():
    exp = gemm_experiment(8, 8, 8)
    layers = (_layer(name="waits", stall_dependency_cycles=800),
              _layer(index=1, name="queued", stall_busy_cycles=700, stall_memory_cycles=100))
    result = SimResult("e", "numba", "a", "w", 1e9, 2000, 64, layers)
    ex = explain_result(result, exp.architecture)
    waits, queued = ex.layers
    assert waits.bound == "dependency" and waits.advice_kind == "dependency"
    assert waits.advice.startswith("waits 800 cycles (80% of its span) for the result of the layers before it")
    assert queued.bound == "busy unit" and queued.advice_kind == "busy"
    assert "waits 700 cycles (70% of its span) for the array" in queued.advice
    assert waits.intensity == 10.0


def test_the_command_prints_every_layer_of_a_small_run(tmp_path, capsys):
    path = tmp_path / "cnn.yaml"
    path.write_text("name: cnn\narchitecture: {preset: scalesim_32x32}\nworkload: {model: resnet18}\n"
                    "engine: analytical\n")
    assert main(["explain", str(path)]) == 0  # 31 layers: the 15 slowest by default
    assert capsys.readouterr().out.count("bound: ") == 15
    assert main(["explain", str(path), "--all"]) == 0
    out = capsys.readouterr().out
    assert out.count("bound: ") == out.count("    faster: ") == 31
    assert "roofline: peak 1.02 T MAC/s, off-chip 10 GB/s -> ridge 102 MAC/B" in out
    assert "conv1 (conv2d on array, os)" in out
    assert main(["explain", str(path), "--top", "3"]) == 0
    assert capsys.readouterr().out.count("bound: ") == 3
    assert main(["explain", str(path), "--layer", "layer4.1"]) == 0
    assert all(l.startswith("layer4.1") for l in capsys.readouterr().out.splitlines()
               if "bound: " in l)


@pytest.mark.parametrize("argv, message", [(["--layer", "nope"], "no layer name contains 'nope'"),
                                           (["--top", "0"], "expected a positive number")])
def test_bad_options_exit_2(tmp_path, capsys, argv, message):
    path = tmp_path / "g.yaml"
    path.write_text("name: g\narchitecture: {preset: scalesim_32x32}\nworkload: {gemm: {M: 8, K: 8, N: 8}}\n"
                    "engine: analytical\n")
    assert main(["explain", str(path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_study_file_explains_its_base_point(repo, capsys):
    assert main(["explain", str(repo / "experiments" / "tutorials" / "01_one_gemm.yaml")]) == 0
    out = capsys.readouterr().out
    assert "explains its base point" in out and "gemm (linear on array, os): 82 cycles" in out


def test_every_advice_names_numbers_from_the_run():
    """No canned text: each sentence carries at least one number of its layer."""
    exp = parse_experiment("name: cnn\narchitecture: {preset: scalesim_32x32}\nworkload: {model: resnet18}\n"
                           "engine: analytical\n")
    ex = explain_experiment(exp)
    for l in ex.layers:
        assert any(ch.isdigit() for ch in l.advice), l.advice
        assert not math.isnan(l.intensity or 0.0)
    kinds = {l.advice_kind for l in ex.layers}
    assert {"refetch", "vector_memory"} & kinds


def test_a_memory_bound_layer_moving_compulsory_activations():
    ex, l = only_layer(gemm_experiment(4096, 8, 8, bw="1 GB/s"))  # 32 KiB in, 32 KiB out, 64 B of weights
    assert l.bound == "memory" and l.advice_kind == "activations"
    assert l.advice.startswith("activations are 100% of its 64.1 KiB off-chip traffic")
    assert "it is compulsory (each input read once, each output written once)" in l.advice


def test_a_searched_loop_nest_is_described_by_its_working_set():
    from simulator.explain_memory import _refetch_text

    assert _refetch_text("os", "filter", 4, "64 KiB", False) == \
        "weights are fetched 4 times because the working set its loop nest reuses (64 KiB)"
    assert _refetch_text("ws", "ofmap", 3, None, True).startswith("partial sums go to DRAM and back over its 3 K-folds")


@pytest.mark.parametrize("df, shape, lever", [
    # ws streams M: the batch (or the token count) grows it
    ("ws", (64, 16, 64), "; a larger M (a bigger batch, more tokens) amortizes it"),
    # os streams K and is streams N: the layer fixes them, a bigger batch does not help
    ("os", (16, 27, 8), "; K is the layer's reduction length (the batch does not change it), and no other "
                        "dataflow is faster here (roofline estimate): an array with a smaller R + C - 2"),
    ("is", (64, 16, 64), "; N is the layer's output width (the batch does not change it), and no other "
                         "dataflow is faster here (roofline estimate): an array with a smaller 2R + C - 2"),
])
def test_fill_and_drain_advice_names_the_lever_of_each_dataflow(df, shape, lever):
    from architectures.systolic import fold_plan
    from workloads.ops import GemmShape

    ex, l = only_layer(gemm_experiment(*shape, R=8, df=df, bw="inf"))
    assert l.advice_kind == "fill_drain"
    fp = fold_plan(GemmShape(*shape), 8, 8, df)
    fill = fp.fold_cycles - fp.T  # R + C - 2 (os) or 2R + C - 2 (ws, is), from the run's fold plan
    assert fill == {"os": 14, "ws": 22, "is": 22}[df]
    assert f"{fill} of them fill and drain the 8x8 array" in l.advice and lever in l.advice
    if df != "ws":
        assert "bigger batch" not in l.advice


def test_a_single_streamed_value_is_said_in_the_singular():
    from simulator.explain import _fill_drain_text
    from architectures.systolic import fold_plan
    from workloads.ops import GemmShape

    text = _fill_drain_text(fold_plan(GemmShape(1, 64, 64), 8, 8, "ws"), "", "")
    assert "streams only M=1 value but takes" in text and "M=1 values" not in text


REPO = Path(__file__).resolve().parents[2]
TUTORIAL_06 = REPO / "experiments" / "tutorials" / "06_pim_decode_attention.yaml"


@pytest.fixture(scope="module")
def pim_decode():
    return explain_experiment(TUTORIAL_06, engine="analytical")


def test_layers_on_pim_are_measured_against_pims_own_roofline(pim_decode):
    from simulator.experiment import load_experiment

    arch = load_experiment(TUTORIAL_06).architecture
    peak, bandwidth = arch.pim_roofline()
    sustained = arch.pim_bandwidth_bytes_per_s
    on_pim = [l for l in pim_decode.layers if l.unit == "pim"]
    assert on_pim and all(l.ridge == pytest.approx(peak / bandwidth) for l in on_pim)
    assert peak / bandwidth == pytest.approx(3.97, abs=0.005)  # Logic-PIM: Op/B 8 = 4 MAC/B at peak
    av = pim_decode.layer("decode:layers.0.attn.av")
    assert "vs PIM ridge 3.97 MAC/B, 4.67 at its sustained bandwidth (memory side)" in av.lines()[1]
    assert av.bound == "memory" and av.advice_kind == "kv_cache"
    assert f"PIM's banks sustain {sustained / 1e12:.3g} TB/s" in av.advice
    assert "mapper.attention: fused" not in av.advice  # the file already fuses attention
    # the xPU's layers keep the device's ridge (295 FLOP/B = 148 MAC/B)
    gate = pim_decode.layer("prefill:layers.0.mlp.gate")
    assert gate.unit == "gpu" and gate.ridge == pytest.approx(pim_decode.ridge) and round(gate.ridge) == 148
    assert all(not l.advice.startswith("compute-bound at") for l in pim_decode.layers)


def test_kernel_launches_are_their_own_bound(pim_decode, repo):
    from mappers.annotations import OpPlan
    from simulator.experiment import load_experiment

    graph = annotated_graphs(load_experiment(TUTORIAL_06))["decode:"]
    per_launch = graph.get("layers.0.attn.qk", OpPlan).overhead_cycles
    assert per_launch == 25_620  # 14 us at the H100's 1,830 MHz
    qk = pim_decode.layer("decode:layers.0.attn.qk")
    assert qk.parts["kernel launch"] == 32 * per_launch  # one launch per decode step
    assert qk.parts["compute"] + qk.parts["kernel launch"] == pim_decode.result.layer(qk.name).compute_cycles
    assert qk.bound == "kernel launch" and qk.advice_kind == "launch"
    share = qk.parts["kernel launch"] / qk.cycles
    assert qk.advice.startswith(f"kernel launch: {share:.0%} of its time (32 launches of 14 us, one per "
                                f"decode step), each for ")
    assert "fusing kernels" in qk.advice and "a bigger batch (more work per launch)" in qk.advice
    # fused attention: softmax and AV share QK^T's launch
    assert pim_decode.layer("decode:layers.0.attn.av").parts["kernel launch"] == 0
    assert "kernel launch" in "\n".join(pim_decode.summary_lines())
    # a PIM layer whose body is memory-bound says so with both sides of its model
    head = pim_decode.layer("decode:lm_head")
    compute, memory = head.sides
    assert memory > compute and head.bound == "memory"
    assert f"the pim model: memory {memory:,.0f} vs compute {compute:,.0f} cycles" in head.lines()[0]


def test_unfused_attention_launches_point_at_the_attention_option(repo):
    ex = explain_experiment(repo / "experiments" / "llm" / "llama2_7b_a100_decode.yaml", engine="analytical")
    qk = ex.layer("decode:layers.0.attn.qk")
    assert qk.bound == "kernel launch"
    assert "mapper.attention: fused runs QK^T, softmax and AV as one kernel" in qk.advice
    assert "(128 launches of 14 us, one per decode step)" in qk.advice
    gate = ex.layer("decode:layers.0.mlp.gate")
    assert gate.bound == "memory" and gate.folds == "a GEMV-like kernel on the CUDA cores (faster here " \
                                                     "than any tensor-core tile)"
    assert "folds ceil(" not in "\n".join(ex.lines(top=None))


def test_a_gpu_kernel_is_described_by_its_cta_tiling(repo):
    import math

    from simulator.experiment import load_experiment

    path = repo / "experiments" / "llm" / "llama2_7b_a100_prefill.yaml"
    arch = load_experiment(path).architecture
    ex = explain_experiment(path, engine="analytical")
    q = ex.layer("prefill:layers.0.attn.q")
    M, K, N, _ = ex.result.layer(q.name).gemm
    tm, tn, tk = (int(x) for x in q.dataflow.split()[1].split("x"))
    ctas = math.ceil(M / tm) * math.ceil(N / tn)
    waves = math.ceil(ctas / arch.sms)
    assert q.folds.startswith(f"CTA tile {tm}x{tn}x{tk} (the fastest of 8 tiles and the CUDA cores): "
                              f"{ctas:,} CTAs in {waves} waves on {arch.sms} SMs")
    assert f"{math.ceil(K / tk)} main-loop iterations each" in q.folds
    # the per-head QK^T (K = head dim 128) loses most of its CTAs' time to prologue and epilogue
    qk = ex.layer("prefill:layers.0.attn.qk")
    assert qk.bound == "compute" and qk.advice_kind == "gpu_compute"
    assert "K=128 is only 4 main-loop iterations of 32" in qk.advice
    util = ex.result.layer(qk.name).macs / (qk.sides[0] * arch.peak_macs_per_cycle)
    assert f"tensor cores at {util:.0%} of their fp16 peak" in qk.advice


def test_layers_on_pim_get_no_vector_unit_advice(pim_decode):
    on_pim = [l for l in pim_decode.layers if l.unit == "pim"]
    assert on_pim and all("vector.lanes" not in l.advice and "ifmap SRAM" not in l.advice for l in on_pim)
    rotary = next(l for l in on_pim if l.kind == "elementwise")
    assert rotary.bound == "kernel launch" and f"{rotary.cycles:,}" in rotary.lines()[0]
    assert all("on pim, pim" not in l.lines()[0] for l in on_pim)


def test_a_searched_mapping_says_what_it_beat(tmp_path):
    text = (f"name: s\n{ARRAY.format(R=32, df='os', bw='4 GB/s', ifmap='64 KiB', filt='64 KiB')}"
            "workload: {gemm: {M: 1024, K: 2048, N: 64}}\nmapper: {dataflow: auto, search: {budget: 64}}\n"
            "engine: analytical\n")
    ex, l = only_layer(parse_experiment(text))
    default = explain_experiment(parse_experiment(text.replace("dataflow: auto, search: {budget: 64}",
                                                               "dataflow: os"))).layers[0]
    assert l.dataflow != "os" and l.cycles < default.cycles
    assert l.mapping.startswith("mapper.search compared ") and " candidates (" in l.mapping
    assert f" and chose {l.dataflow}, column folds outer, block 16: " in l.mapping
    # the numbers are the roofline estimates: the chosen one is the analytical engine's cycles,
    # the default's is what a run with the default mapping takes
    assert f"about {l.cycles:,} cycles" in l.mapping
    assert (f"against the default os, column folds outer, block 1: {default.cycles:,} cycles and "
            f"{default.dram_bytes / 2**20:.3g} MiB") in l.mapping
    assert f"    mapping: {l.mapping}" in l.lines()
    assert default.mapping is None  # a fixed dataflow: nothing was chosen


def test_auto_says_which_dataflow_won(repo):
    exp = gemm_experiment(16, 27, 8, df="os", bw="inf", mapper="mapper: {dataflow: auto}\n")
    ex, l = only_layer(exp)
    assert l.mapping == ("mapper.dataflow: auto chose os, the fastest by the mapper's roofline estimate "
                         "(os 82, ws 152, is 240 cycles)")


def test_an_explanation_prints_and_renders_in_a_notebook():
    ex, l = only_layer(gemm_experiment(64, 512, 64))
    assert str(ex) == "\n".join(ex.lines())
    html = ex._repr_html_()
    assert html.startswith('<div class="tessera-explain">') and html.count("<table") == 1
    assert ">gemm<" in html and f">{l.cycles:,}<" in html and ">compute (100%)<" in html
    assert "useful MACs in 97% of its compute cycles" in html


def test_layers_on_one_device_of_several_get_their_units_advice(repo):
    """Multi-device runs name units d0.array, d1.gpu, ...: the advice is the unit kind's."""
    from simulator.explain_units import unit_kind

    assert unit_kind("d3.gpu") == "gpu" and unit_kind("pim") == "pim"
    ex = explain_experiment(repo / "experiments" / "llm" / "mixtral_8x7b_4dev_tp4.yaml", engine="analytical")
    qk = ex.layer("decode:layers.0.attn.qk")
    assert qk.unit == "d0.array" and qk.advice_kind == "mapping"
    assert qk.mapping.startswith("mapper.dataflow: auto chose is, the fastest by the mapper's roofline")
    assert not any(l.advice.startswith("compute-bound at") for l in ex.layers)
