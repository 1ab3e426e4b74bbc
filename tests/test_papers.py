"""Reproductions of published results (experiments/papers/): SN40L model switching and operator
fusion (arXiv 2405.07518), FuseMax vs FLAT attention (arXiv 2406.10491).

Each golden test names the paper's number and the tolerance; where a number does not reproduce,
the test says why and pins what the model gives instead.
"""

from __future__ import annotations

import statistics

import pytest

from architectures.presets import load_preset
from mappers.attention_plan import array_utilization
from mappers.rdu_plan import stage_table
from simulator.coe import coe_summary
from simulator.experiment import experiment_from_dict
from simulator.run import run_experiment, simulate
from workloads.graph import PrecisionPolicy
from workloads.registry import build_model

BF16 = PrecisionPolicy(weights="bf16", activations="bf16", kv_cache="bf16")


# ---- SN40L: model switching ---------------------------------------------------------------------

def _coe_run(bandwidth: str | None):
    overrides = {"node.ddr_to_hbm_bandwidth": bandwidth} if bandwidth else {}
    exp = experiment_from_dict({
        "name": "switching", "architecture": {"preset": "sn40l", "overrides": overrides},
        "workload": {"coe": {"experts": 150, "expert_model": "llama-2-7b",
                             "routing": {"distribution": "explicit", "experts": [0, 1, 2, 1, 3]},
                             "prompt": 64, "generate": 1},
                     "precision": {"weights": "bf16", "activations": "bf16", "kv_cache": "bf16"}}})
    return exp, run_experiment(exp)


@pytest.mark.golden
def test_sn40l_model_switching_is_15_6x_and_31x_faster_than_dgx_host_links():
    # arXiv 2405.07518, abstract: 15-31x faster model switching. SN40L node: DDR -> HBM at > 1 TB/s
    # (Sec. I; the preset uses 1 TB/s); DGX H100 / DGX A100: experts come over 64 GB/s / 32 GB/s
    # host -> GPU links (secondary, see reference/published_designs.md Sec. 5). A 13.5 GB expert
    # (Llama-2-7B at bf16): 13.5 ms vs 211 ms and 421 ms: 15.6x and 31.2x, exact in the model
    # (tolerance 0.5 %). The GPU nodes are modelled by their host link only, as a 64 / 32 GB/s
    # DDR -> HBM channel under the same requests: the gpu template's planner does not plan CoE
    # operators, so the request times are the SN40L's and only the switches are compared.
    exp, sn40l = _coe_run(None)
    _, h100 = _coe_run("64 GB/s")
    _, a100 = _coe_run("32 GB/s")
    expert = exp.workload.meta["coe"]["expert_bytes"]
    assert expert == pytest.approx(13.5e9, rel=0.002)
    s, h, a = (coe_summary(r) for r in (sn40l, h100, a100))
    assert s["switches"] == h["switches"] == a["switches"] == 4  # experts 0, 1, 2, 3; the second 1 hits
    assert s["switch_s"] / s["switches"] == pytest.approx(13.5e-3, rel=0.002)
    assert h["switch_s"] / s["switch_s"] == pytest.approx(15.6, rel=0.005)
    assert a["switch_s"] / s["switch_s"] == pytest.approx(31.25, rel=0.005)
    # the event core timed them so: the switch layers' spans give the same ratios
    assert h["switch_span_s"] / s["switch_span_s"] == pytest.approx(15.625, rel=1e-6)


# ---- SN40L: operator fusion -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def sn40l():
    return load_preset("sn40l")


def _fusion(sn40l, model: str, phase: str, n: int, batch: int = 1):
    kw = {"sequence": n} if phase == "prefill" else {"context": n}
    g = build_model(model, phase=phase, batch=batch, precision=BF16, **kw)
    fused = simulate(g, sn40l, mapper={"spatial_fusion": True}, engine="numba")
    unfused = simulate(g, sn40l, mapper={"spatial_fusion": False}, engine="numba")
    return fused, unfused, unfused.cycles / fused.cycles


@pytest.mark.golden
@pytest.mark.parametrize("model, n, expected", [
    ("llama-2-7b-layer", 8192, 2.18), ("llama-2-7b-layer", 16384, 2.78), ("llama-2-70b-layer", 16384, 12.85)])
def test_fusion_speedup_on_long_prefill_is_within_the_papers_2_to_13x(sn40l, model, n, expected):
    # arXiv 2405.07518, abstract: operator fusion gives 2-13x over an unfused baseline (its
    # benchmarks include Llama-2-7B and 70B). One decoder layer, prefill of n tokens, one socket.
    # The model's speedups (pinned at 2 %) come from the attention scores: unfused, they make four
    # HBM passes (written by qk, read and written by softmax, read by av); fused, they stay in the
    # PMUs. For 70B at 16K the unfused activations (two 32 GiB score tensors live at once) no
    # longer fit next to the weights in HBM and go to DDR, hence 12.85x.
    fused, unfused, speedup = _fusion(sn40l, model, "prefill", n)
    assert 2.0 <= speedup <= 13.0
    assert speedup == pytest.approx(expected, rel=0.02)
    # the reasons, in the per-stage breakdown: the unfused attention kernels wait on memory ...
    for name in ("layers.0.attn.qk", "layers.0.attn.softmax", "layers.0.attn.av"):
        row = unfused.layer(name)
        assert row.stall_memory_cycles > row.compute_cycles
    # ... while the fused layer is one kernel, bound by a compute stage, with no score traffic
    (kernel,) = [l for l in fused.layers if "pipeline_stages" in l.counters]
    rows = stage_table(fused, kernel.name)
    assert rows[0]["slowest"] and rows[0]["bound"] == "compute"
    assert fused.counter("noncompulsory_dram_read_bytes") == 0


@pytest.mark.parametrize("phase, n, low, high", [("prefill", 2048, 1.3, 1.6), ("decode", 4096, 1.0, 1.05)])
def test_fusion_on_short_prefill_and_decode_is_below_the_papers_range(sn40l, phase, n, low, high):
    # Does not reproduce the paper's 2x lower end: a Llama-2-7B decode layer streams 404 MB of
    # weights from HBM whether fused or not (both take weights / HBM bandwidth), and a 2K prefill
    # is dominated by compute-bound GEMMs that fusion does not speed up. What remains for fusion
    # on SN40L is the synchronization at every kernel call (Kernel Looping, arXiv 2410.23668, shows
    # removing it speeds decode up by up to 2.2x), which is `kernel_call_s` in the template; SN40L's
    # per-call cost is not public, so the preset leaves it at 0 and the speedup stays near 1.
    fused, unfused, speedup = _fusion(sn40l, "llama-2-7b-layer", phase, n)
    assert low <= speedup <= high
    if phase == "decode":
        hbm_s = fused.counter("hbm_read_bytes") / sn40l.memory.hbm.bandwidth_bytes_per_s
        assert fused.latency_s == pytest.approx(hbm_s, rel=0.02)


# ---- FuseMax vs FLAT --------------------------------------------------------------------------------

# FPSG-UIUC/micro24-fusemax-artifact, data/pregenerated/attn-flat.csv (@82e5d62) and
# attn-proposal.csv (@dbaaf93): latency (s), energy, util_2d; end2end-proposal.csv: the layer's
# matrix multiplications (s), the same for both mappings. Batch 64.
ARTIFACT = {  # (model, seq): (flat s, fusemax s, flat energy, fusemax energy, fusemax util_2d, linear s)
    ("bert", 1024): (0.013386076595744681, 0.002013140425531915, 2485343541836.59, 1950104644581.9434, 0.8896, 0.0075296680851063835),
    ("bert", 4096): (0.2141772255319149, 0.02970035744680851, 39767686118770.086, 30887946590144.273, 0.9648, 0.030118672340425534),
    ("bert", 16384): (3.4268356085106384, 0.46516616170212766, 636117220189497.8, 492952234549641.1, 0.9856, 0.12047468936170214),
    ("bert", 65536): (54.829369736170214, 7.402500357446808, 1.0484918676489974e16, 7883014537512749.0, 0.9910, 0.48189875744680855),
    ("bert", 262144): (1013.88, 118.2793728, 1.671229333621923e17, 1.2654773473515613e17, 0.9923, 1.9275950297872342),
    ("bert", 1048576): (16220.64, 1891.8274331234043, 2.7526571725053706e18, 2.028161762247514e18, 0.9926, 7.710380119148937),
    ("trxl", 1024): (0.017848102127659575, 0.0026841872340425533, 3313791389115.4536, 2600139526109.2583, 0.8896, 0.013386076595744683),
    ("trxl", 4096): (0.2855696340425532, 0.039600476595744685, 53023581491693.45, 41183928786859.04, 0.9648, 0.05354430638297873),
    ("trxl", 16384): (4.569114144680851, 0.6202215489361702, 848156293585997.2, 657269646066188.2, 0.9856, 0.21417722553191493),
    ("trxl", 65536): (73.10582631489362, 9.870000476595745, 1.3979891568653298e16, 1.0510686063927504e16, 0.9910, 0.8567089021276597),
    ("trxl", 262144): (1351.84, 157.7058304, 2.293899481692345e17, 1.6901697941569347e17, 0.9923, 3.426835608510639),
    ("trxl", 1048576): (21627.52, 2522.4365774978723, 3.670209563340495e18, 2.7042156829966863e18, 0.9926, 13.707342434042555),
    ("t5", 1024): (0.008924051063829787, 0.0013420936170212767, 1656895694557.7268, 1300069763054.6292, 0.8896, 0.003485895578457447),
    ("t5", 4096): (0.1427848170212766, 0.019800238297872343, 26511790745846.727, 20591964393429.52, 0.9648, 0.013928933876329787),
    ("t5", 16384): (2.2845570723404256, 0.3101107744680851, 424078146792998.6, 328634823033094.1, 0.9856, 0.05570108706781915),
    ("t5", 65536): (36.55291315744681, 4.935000238297873, 6989945784326649.0, 5255343031963752.0, 0.9910, 0.22278969983377658),
    ("t5", 262144): (675.92, 78.8529152, 1.114152889081282e17, 8.450848970784674e16, 0.9923, 0.8911441508976063),
    ("t5", 1048576): (10813.76, 1261.2182887489362, 1.8351047816702474e18, 1.3521078414983432e18, 0.9926, 3.564561955152926),
    ("xlm", 1024): (0.017848102127659575, 0.005194076595744681, 5766422067756.503, 5070199423451.128, 0.8893, 0.05354430638297873),
    ("xlm", 4096): (0.2855696340425532, 0.07641218723404256, 92439452690514.44, 80287198568643.0, 0.9672, 0.21417722553191493),
    ("xlm", 16384): (4.569114144680851, 1.1958228425531914, 1472094656033039.0, 1281251208271987.8, 0.9888, 0.8567089021276597),
    ("xlm", 65536): (73.10582631489362, 19.026076868085106, 2.393515168878153e16, 2.0493030758165344e16, 0.9944, 3.426835608510639),
    ("xlm", 262144): (1392.96, 303.9888754382979, 3.896859482533635e17, 3.295805362798854e17, 0.9958, 13.707342434042555),
    ("xlm", 1048576): (22283.52, 4862.10858920851, 6.234917224586448e18, 5.273176762623479e18, 0.9961, 54.82936973617022),
}
CI = [k for k in ARTIFACT if k[1] <= 16384]
LONG = [k for k in ARTIFACT if k[1] > 16384]


@pytest.fixture(scope="module")
def fusemax_cloud():
    return load_preset("fusemax_cloud")


def _attention(arch, model: str, seq: int, layer: bool = False):
    g = build_model(f"fusemax-{model}-{'layer' if layer else 'attention'}", batch=64, sequence=seq)
    return {m: simulate(g, arch, mapper={"attention_mapping": m}, engine="numba") for m in ("flat", "fusemax")}


def _check_point(arch, model, seq):
    flat_s, fm_s, flat_e, fm_e, fm_u2d, lin_s = ARTIFACT[(model, seq)]
    r = _attention(arch, model, seq)
    speedup = r["flat"].cycles / r["fusemax"].cycles
    # attention speedup per point: +-20 % (FuseMax artifact; the model is within 1 % up to 16K)
    assert speedup == pytest.approx(flat_s / fm_s, rel=0.20)
    # 2D utilization: FuseMax 0.89-0.99 (+-5 %), FLAT 0.125 (0.25 for XLM's E = 128), 1D ~1.0
    u = {m: array_utilization(r[m]) for m in r}
    assert u["fusemax"]["util_2d"] == pytest.approx(fm_u2d, rel=0.05)
    assert u["flat"]["util_1d"] == pytest.approx(1.0, rel=0.15)
    if seq <= 16384:
        assert u["flat"]["util_2d"] == pytest.approx(0.25 if model == "xlm" else 0.125, rel=0.02)
    # end to end (the layer's six matrix multiplications plus attention): +-20 %
    lay = _attention(arch, model, seq, layer=True)
    assert lay["flat"].cycles / lay["fusemax"].cycles == pytest.approx((flat_s + lin_s) / (fm_s + lin_s), rel=0.20)
    # FuseMax's absolute attention energy: +-20 % (within 3 % up to 16K)
    assert r["fusemax"].energy_pj == pytest.approx(fm_e, rel=0.20)
    return speedup, r["fusemax"].energy_pj / r["flat"].energy_pj, lay["flat"].cycles / lay["fusemax"].cycles


@pytest.mark.golden
@pytest.mark.parametrize("model, seq", CI, ids=[f"{m}-{s // 1024}K" for m, s in CI])
def test_fusemax_vs_flat_up_to_16k(fusemax_cloud, model, seq):
    speedup, energy_ratio, _ = _check_point(fusemax_cloud, model, seq)
    # energy ratio FuseMax / FLAT: the artifact's ~0.78 does NOT reproduce per point up to 16K
    # (the model gives ~0.98): FuseMax's energy matches the artifact's (2.37 vs 2.42 nJ per score
    # at BERT 1K) but FLAT's is 21 % below it (2.42 vs 3.09 nJ per score). Both count the same
    # operations with the artifact's 45 nm operation energies (2D MACs 2.20 nJ per score, softmax
    # 0.15 nJ); the artifact charges FLAT another ~0.67 nJ per score that operation counts do not
    # explain: its FLAT has a 32 MiB global buffer (accel_flat/accel-top-2d-path.yaml) and per-PE
    # register files whose 45 nm access energies it does not publish in its outputs. We keep one
    # buffer energy (the artifact's 16 nm check ERT) for both. What the model does reproduce:
    # FuseMax spends less energy than FLAT at every point.
    assert energy_ratio < 1.0


@pytest.mark.golden
@pytest.mark.slow
@pytest.mark.parametrize("model, seq", LONG, ids=[f"{m}-{s // 1024}K" for m, s in LONG])
def test_fusemax_vs_flat_64k_to_1m(fusemax_cloud, model, seq):
    # From 64K the scores of a 256-query block no longer fit the 16 MiB buffer: FLAT spills them
    # (4 DRAM passes) and becomes memory-bound. The artifact's FLAT has 32 MiB (src/accel/flat.py)
    # and spills only part of them at 64K, so the model's speedup there is ~13 % higher (8.4 vs
    # 7.4); at 256K and 1M both are memory-bound and agree within 5 %.
    _check_point(fusemax_cloud, model, seq)


@pytest.mark.golden
@pytest.mark.slow
def test_fusemax_vs_flat_means_over_the_papers_grid(fusemax_cloud):
    # arXiv 2406.10491: attention 6.7x faster at 79 % of FLAT's energy, end to end 5.3x; arithmetic
    # means over 4 models x 6 lengths recomputed from the artifact's CSVs: 6.72x, 0.787, 5.30x.
    # Tolerance +-20 %. The model: 6.80x (+1 %), 0.904 (+15 %, see the per-point energy note),
    # 5.38x (+1 %).
    points = [_check_point(fusemax_cloud, m, s) for m, s in ARTIFACT]
    speedup, energy, e2e = (statistics.mean(p[i] for p in points) for i in range(3))
    assert speedup == pytest.approx(6.72, rel=0.20)
    assert energy == pytest.approx(0.787, rel=0.20)
    assert e2e == pytest.approx(5.30, rel=0.20)
