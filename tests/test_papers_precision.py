"""Reproductions of precision-aware PE papers (experiments/papers/): BitMoD (HPCA'25) against ANT,
OliVe and FP16; MixPE (arXiv 2411.16158) against INT8, FP16, ANT and BitFusion; LUT Tensor Core
(ISCA'25) against a dequantize-then-FP16 MAC; TPE (HPCA'25) partial-product counts.

Each test runs the experiment YAML (its sweep, through ``simulator.dse.api.run_study``), names the
paper's number and the tolerance; where a number does not reproduce, the test says why and pins
what the model gives instead.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from architectures.pe import average_partial_products, expected_max_partial_products
from architectures.presets import load_preset
from simulator.dse.api import run_study
from simulator.experiment import load_experiment

PAPERS = Path(__file__).resolve().parents[1] / "experiments" / "papers"
BITMOD_MODELS = ["opt-1.3b", "phi-2", "yi-6b", "llama-2-7b", "llama-2-13b", "llama-3-8b"]


def _rows(name: str, out: Path) -> list[dict]:
    outcome = run_study(PAPERS / f"{name}.yaml", out, workers=0)
    assert all(r["status"] == "ok" for r in outcome.rows), [r["error"] for r in outcome.rows if r["error"]]
    return outcome.rows


# ---- BitMoD ----------------------------------------------------------------------------------

# ANT's and OliVe's weights as the BitMoD artifact stores them, in bits per weight
# (abdelfattah-lab/BitMoD-HPCA-25@e445a5f bitmod_sim/test_ant.py, test_olive.py w_prec): mixes of
# 4- and 8-bit layers. Tessera's precision policy has one weight format per graph, so the sweeps
# run every model at int4 and at int8 and the cycles are blended by the fraction of 8-bit weights,
# f = (bits - 4) / 4. Exact when a layer's time is linear in its weight bytes (decode is
# DRAM-bound); in prefill the ANT/OliVe PE takes one cycle per MAC at either width, so the two
# runs differ only in DRAM-bound layers.
ANT_BITS = {"opt-1.3b": 5, "phi-2": 5, "yi-6b": 5.25, "llama-2-7b": 5, "llama-2-13b": 4, "llama-3-8b": 5}
OLIVE_BITS = {m: 4.5 if m == "llama-3-8b" else 4 for m in BITMOD_MODELS}


@pytest.fixture(scope="module")
def bitmod(tmp_path_factory):
    """cycles[(design, phase)] = [per model], with ANT/OliVe blended (see ANT_BITS)."""
    out = {}
    for phase in ("prefill", "decode"):
        rows = _rows(f"bitmod_{phase}", tmp_path_factory.mktemp(phase))
        by = {(r["params"]["architecture.preset"], r["params"]["workload.precision.weights"],
               r["params"]["workload.model"]): r["metrics"]["cycles"] for r in rows}
        for design, bits in (("bitmod_ant", ANT_BITS), ("bitmod_olive", OLIVE_BITS)):
            out[design, phase] = [(1 - (bits[m] - 4) / 4) * by[design, "int4", m] + (bits[m] - 4) / 4 * by[design, "int8", m]
                                  for m in BITMOD_MODELS]
        out["bitmod_fp16", phase] = [by["bitmod_fp16", "fp16", m] for m in BITMOD_MODELS]
        w = "int4" if phase == "prefill" else "int3"
        out["bitmod", phase] = [by["bitmod", w, m] for m in BITMOD_MODELS]
    return out


def _speedups(c: dict, base: str) -> tuple[float, float]:
    """Mean over the six models of base / BitMoD, prefill and generative (prefill + 20 tokens, as
    the artifact's plot/speedup_plot.ipynb combines them)."""
    pre = [b / m for b, m in zip(c[base, "prefill"], c["bitmod", "prefill"])]
    gen = [(bp + 20 * bd) / (mp + 20 * md) for bp, bd, mp, md in
           zip(c[base, "prefill"], c[base, "decode"], c["bitmod", "prefill"], c["bitmod", "decode"])]
    return statistics.mean(pre), statistics.mean(gen)


@pytest.mark.golden
@pytest.mark.slow
def test_bitmod_over_ant_and_olive(bitmod):
    # BitMoD paper (arXiv 2411.11745) headline: 1.69x over ANT, 1.48x over OliVe; recomputed
    # from the cycle arrays of the artifact's plot/speedup_plot.ipynb (published_designs.md
    # Sec. 1): ANT 1.72 prefill, 1.66 generative; OliVe 1.56 and 1.39. Tolerance +-15 %.
    # Tessera gives ANT 1.64 / 1.62 (-4 %, -3 %), OliVe 1.42 / 1.37 (-9 %, -1 %): prefill
    # times come from Tessera's traffic model and mapping search instead of the artifact's
    # refetch rule, and Tessera's LM head in prefill runs for the last token only.
    ant_pre, ant_gen = _speedups(bitmod, "bitmod_ant")
    olive_pre, olive_gen = _speedups(bitmod, "bitmod_olive")
    assert ant_pre == pytest.approx(1.72, rel=0.15)
    assert ant_gen == pytest.approx(1.66, rel=0.15)
    assert (ant_pre + ant_gen) / 2 == pytest.approx(1.69, rel=0.15)
    assert olive_pre == pytest.approx(1.56, rel=0.15)
    assert olive_gen == pytest.approx(1.39, rel=0.15)
    assert (olive_pre + olive_gen) / 2 == pytest.approx(1.48, rel=0.15)


@pytest.mark.golden
@pytest.mark.slow
def test_fp16_over_bitmod_in_prefill(bitmod):
    # published_designs.md Sec. 1 (artifact notebook): FP16 / BitMoD prefill cycles 2.82 on
    # average; Llama-2-7B prefill 3.157e9 cycles on FP16, 1.203e9 on BitMoD. Tolerance +-15 %.
    # Tessera: 3.12 (+11 %), 3.52e9 (+12 %) and 1.09e9 (-10 %).
    ratios = [f / b for f, b in zip(bitmod["bitmod_fp16", "prefill"], bitmod["bitmod", "prefill"])]
    assert statistics.mean(ratios) == pytest.approx(2.82, rel=0.15)
    i = BITMOD_MODELS.index("llama-2-7b")
    assert bitmod["bitmod_fp16", "prefill"][i] == pytest.approx(3.157e9, rel=0.15)
    assert bitmod["bitmod", "prefill"][i] == pytest.approx(1.203e9, rel=0.15)


@pytest.mark.golden
@pytest.mark.slow
def test_bitmod_decode_is_weight_bandwidth(bitmod):
    # One decode step is DRAM-bound: the artifact's generation cycles (speedup_plot.ipynb,
    # cycle_*_g, per token) for Llama-2-7B: FP16 413.5e6, ANT 129.5e6, BitMoD (lossy) 79.5e6.
    # Tessera streams the same weight bytes at 32 B/cycle: FP16 +1 %, ANT +3 %, BitMoD +2 % (its
    # 3-bit weights with 8-bit group scales, 3.0625 bits, as the artifact counts them; the int8 KV
    # cache and the vector work add the 2 %). Tolerance +-5 %.
    i = BITMOD_MODELS.index("llama-2-7b")
    assert bitmod["bitmod_fp16", "decode"][i] == pytest.approx(413.5e6, rel=0.05)
    assert bitmod["bitmod_ant", "decode"][i] == pytest.approx(129.5e6, rel=0.05)
    assert bitmod["bitmod", "decode"][i] == pytest.approx(79.5e6, rel=0.05)


def test_bitmod_weights_carry_8_bit_group_scales():
    # published_designs.md Sec. 1 (the artifact's w_prec): BitMoD's lossy weights are 3.0625 bits
    # in decode and 4.0625 in prefill: 3 or 4 bits plus an 8-bit scale per group of 128
    # (8 / 128 = 0.0625). The experiments set workload.precision.scale_bits: 8.
    for name, bits in (("bitmod_decode", 3.0625), ("bitmod_prefill", 4.0625)):
        exp = load_experiment(PAPERS / f"{name}.yaml")
        w = next(op for op in exp.workload.ops() if op.kind == "linear").weights[0]
        assert (w.group_size, w.scale_bits, w.effective_bits) == (128, 8, bits)


# ---- MixPE -------------------------------------------------------------------------------------

MIXPE = ["mixpe_fp16", "mixpe_int8", "mixpe_bitfusion", "mixpe_ant", "mixpe_w4a8", "mixpe_w4a16"]
MIXPE_WORKLOADS = ["vit-b-16", "vit-h-16", "opt-6.7b", "llama-2-13b"]


def _linear(layer: dict) -> bool:
    return layer["kind"] in ("linear", "conv2d") or layer["layer"].endswith("lm_head")


@pytest.fixture(scope="module")
def mixpe(tmp_path_factory):
    """(design, workload) -> (all cycles, linear-layer cycles, all energy, linear-layer energy)."""
    out_dir = tmp_path_factory.mktemp("mixpe")
    rows = _rows("mixpe_iso_area", out_dir)
    res = {}
    for r in rows:
        data = json.loads((out_dir / "points" / r["point_id"] / "results.json").read_text())
        layers = data["layers"]
        key = (r["params"]["architecture.preset"], r["params"]["workload.model"])
        res[key] = (r["metrics"]["cycles"], sum(l["total_cycles"] for l in layers if _linear(l)),
                    r["metrics"]["energy_pj"], sum(l["energy_pj"] for l in layers if _linear(l)))
    return res


def _norm(res: dict, design: str, i: int) -> float:
    """Time (i = 0, 1) or energy (2, 3) normalized to FP16, averaged over the four workloads as the
    artifact's run_mix.py does (its "Geomean" column is an arithmetic mean)."""
    return statistics.mean(res[design, w][i] / res["mixpe_fp16", w][i] for w in MIXPE_WORKLOADS)


@pytest.mark.golden
@pytest.mark.slow
def test_mixpe_normalized_times(mixpe):
    # yuzhang712/mixpe_simulator@7e0d42c results/mixpe_res.csv (last block, "Geomean" = mean of
    # ViT, ViT-Huge, OPT-6.7B, Llama2-13B): time normalized to FP16 = W4A8 0.12, ANT 0.47,
    # BitFusion 0.68, INT8 0.84, W4A16 0.31. The artifact times the linear layers only (its
    # benchmarks list no attention GEMMs), so the linear layers are compared. The six presets
    # share one PE-area budget (iso-area, as the artifact sizes its arrays). Tolerance +-20 %.
    # Tessera: INT8 0.87, BitFusion 0.70, ANT 0.44, W4A8 0.14.
    #
    # How the artifact runs its designs (bitfusion/src/benchmarks/benchmarks.py create_fc types
    # a layer's input with the layer's weight dtype; simulator.py get_perf_factor gives
    # floor(pmax / max(a, pmin)) x floor(pmax / max(w, pmin)) products per PE-cycle): W4A8's
    # benchmark (int48_bench.py) types the linear layers at 4 bits, so its 8/4 PE does 2 x 2 = 4
    # products per cycle, not the 1 x 2 = 2 of INT8 activations; W4A16's (mixfloat_bench.py)
    # types weights and activations at 8 bits, so its 16/8 PE also does 4, not the 1 x 2 = 2 of
    # FP16 activations (and moves 8-bit, not 4-bit, weights); ANT's 4-bit layers likewise. Tessera
    # runs the precisions the designs are named for (W4A8: int8 activations, W4A16: fp16; both 2
    # products per cycle, pe.lanes). W4A8's mean still lands within tolerance, but by
    # cancellation: per model Tessera gives ViT-B 0.115, ViT-H 0.113, OPT 0.163, Llama 0.164
    # against the artifact's 0.15, 0.12, 0.10, 0.10 (the LLM layers would need the artifact's 4
    # products per cycle: with pe.lanes 4 they give 0.11 and 0.11, but ViT then drops to 0.06).
    assert _norm(mixpe, "mixpe_int8", 1) == pytest.approx(0.84, rel=0.20)
    assert _norm(mixpe, "mixpe_bitfusion", 1) == pytest.approx(0.68, rel=0.20)
    assert _norm(mixpe, "mixpe_ant", 1) == pytest.approx(0.47, rel=0.20)
    assert _norm(mixpe, "mixpe_w4a8", 1) == pytest.approx(0.12, rel=0.20)
    # W4A16 does not reproduce (artifact 0.31): with FP16 activations its PE does 2 products per
    # cycle where the artifact's 8-bit-typed benchmark gets 4 (see above; with pe.lanes 4 Tessera
    # gives 0.25). Pinned: 0.465 +- 5 %.
    assert _norm(mixpe, "mixpe_w4a16", 1) == pytest.approx(0.465, rel=0.05)
    # Whole models (attention included): a batch-64 decode step's attention is 2048 one-token
    # GEMMs per layer, each paying the array's fill and drain, which the fast arrays feel most.
    assert _norm(mixpe, "mixpe_w4a8", 0) > _norm(mixpe, "mixpe_w4a8", 1)


@pytest.mark.golden
@pytest.mark.slow
def test_mixpe_uses_less_energy_than_the_baselines(mixpe):
    # arXiv 2411.16158 abstract: 1.4x energy reduction over state-of-the-art quantization
    # accelerators (the baseline is not named; the artifact's energy blocks are fractions of
    # FP16). Direction only: W4A8 takes less energy than every baseline, on the linear layers
    # and on the whole models; W4A16 less than FP16, its activation format's baseline.
    for i in (2, 3):
        w4a8 = _norm(mixpe, "mixpe_w4a8", i)
        assert all(w4a8 < _norm(mixpe, d, i) for d in ("mixpe_fp16", "mixpe_int8", "mixpe_bitfusion", "mixpe_ant"))
        assert _norm(mixpe, "mixpe_w4a16", i) < 1.0
    # Against the best baseline (ANT) on the linear layers: 1.5x less energy (paper 1.4x). Where
    # it comes from (the four workloads' totals, pJ): the PEs' compute is the same, 3.02e12 for
    # both, since both presets charge the artifact's 8/4-bit unit (0.56 pJ per cycle) and both do
    # 2 int4 x int8 products per cycle; W4A8 adds 0.26e12 of per-group dequantization. The gain
    # is all data movement: SRAM 2.85e12 vs 5.44e12 and DRAM 2.01e12 vs 3.70e12, because in the
    # same area MixPE's 1/4-size PE makes a 64 x 64 array (ANT: 32 x 32) whose larger tiles read
    # each operand over half as many folds. Not the shift-and-add arithmetic: Tessera has no
    # synthesized MixPE PE energy below the 8/4 unit's (the artifact's energy blocks show the
    # same: equal "Core" energy for W4A8 and ANT, the gain in static, buffer and DRAM energy).
    assert _norm(mixpe, "mixpe_ant", 3) / _norm(mixpe, "mixpe_w4a8", 3) > 1.4
    ant = [mixpe["mixpe_ant", w][3] for w in MIXPE_WORKLOADS]
    w4a8 = [mixpe["mixpe_w4a8", w][3] for w in MIXPE_WORKLOADS]
    assert all(a > w for a, w in zip(ant, w4a8))


# ---- LUT Tensor Core -------------------------------------------------------------------------

@pytest.mark.golden
def test_lut_beats_dequantize_then_fp16_mac_per_area(tmp_path):
    # LUT Tensor Core (arXiv 2408.06003; secondary summary, published_designs.md Sec. 3): at 1-2
    # weight bits the LUT tile beats a dequantize-then-FP16 MMA per mm^2; v1 claims 20.9x compute
    # density at INT1 x FP16. Tessera, both arrays in the same PE area (presets lut_tensor_core,
    # lut_fp16_dequant; Horowitz 45 nm areas, NanGate cells for the tables): MACs per cycle per
    # mm^2 of PE array 7.1x at 1 bit, 3.5x at 2 bits. The 20.9x does not reproduce: its area
    # numbers are not public (no code found); here an FP32 accumulator (4184 um^2) dominates both
    # PEs, and the LUT PE's mux and the per-row tables (8 x 16 flip-flops, 8 FP16 adders per row)
    # are modeled from standard cells. Pinned +-5 %.
    rows = _rows("lut_vs_dequant", tmp_path)
    area = {n: load_preset(n).pe_array_area_mm2 for n in ("lut_tensor_core", "lut_fp16_dequant")}
    density = {(r["params"]["architecture.preset"], r["params"]["workload.precision.weights"]):
               r["metrics"]["macs"] / r["metrics"]["cycles"] / area[r["params"]["architecture.preset"]]
               for r in rows}
    w1 = density["lut_tensor_core", "int1"] / density["lut_fp16_dequant", "int1"]
    w2 = density["lut_tensor_core", "int2"] / density["lut_fp16_dequant", "int2"]
    assert w1 > w2 > 1
    assert w1 == pytest.approx(7.1, rel=0.05)
    assert w2 == pytest.approx(3.55, rel=0.05)


# ---- TPE ---------------------------------------------------------------------------------------

# TPE (arXiv 2503.06342), published_designs.md Sec. 7: average non-zero partial products of INT8
# weights ~ N(0, sigma) under EN-T encoding, K = 32
TPE_PAPER = {10: 1.71, 20: 2.05, 30: 2.27, 40: 2.45, 50: 2.57}


@pytest.mark.golden
@pytest.mark.parametrize("sigma, paper", sorted(TPE_PAPER.items()))
def test_tpe_average_partial_products(sigma, paper):
    # Tessera counts canonical signed digits (non-adjacent form), the usual signed-digit
    # encoding; EN-T is the paper's own and is not public in the artifact. CSD gives 1.73, 2.06,
    # 2.26, 2.40, 2.49: within 0.1 (4 %) of EN-T, lower at large sigma.
    assert average_partial_products(float(sigma)) == pytest.approx(paper, abs=0.1)


@pytest.mark.golden
def test_tpe_gemm_cycles_follow_the_partial_products(tmp_path):
    # experiments/papers/tpe_partial_products.yaml: a 256 x 1024 x 1024 INT8 GEMM on 16 x 16 TPE
    # PEs (os). Decoupled PEs (FIFOs) pay the mean count per step: the MAC array's fold cycles x
    # the average partial products (ceil per fold), the paper's cycles per MAC. In lockstep every
    # step waits for the slowest of the 256 weights in flight: the expected largest count, 3.0 at
    # sigma 10 and 4.0 (an INT8 weight's most) from sigma 30 on. The paper does not say how its
    # bit-slice array synchronizes; Tessera's default is decoupled, the paper's cycles per MAC
    # (architectures/pe/tpe.py).
    rows = _rows("tpe_partial_products", tmp_path)
    cycles = {(r["params"]["architecture.pe.weight_sigma"], r["params"]["architecture.pe.sync"]):
              r["metrics"]["cycles"] for r in rows}
    mac_fold = 1024 + 16 + 16 - 2  # os: K + R + C - 2
    folds = (256 // 16) * (1024 // 16)
    for (sigma, sync), c in cycles.items():
        per_step = (average_partial_products(float(sigma)) if sync == "decoupled" else
                    expected_max_partial_products(float(sigma), 256))
        assert c == folds * -(-mac_fold * per_step // 1)
    assert expected_max_partial_products(30.0, 256) == pytest.approx(4.0, abs=1e-3)
    for sync in ("decoupled", "lockstep"):
        series = [cycles[s, sync] for s in sorted({s for s, _ in cycles})]
        assert series == sorted(series)
    assert all(cycles[s, "lockstep"] > cycles[s, "decoupled"] for s, _ in cycles)
