"""The ``gpu`` template: hand-computed wave quantization, padding and traffic on small GPUs, the
presets, the efficiency model's shape, and the calibration against measured A100 GEMM times."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from architectures.gpu import GPU, CUTLASS_SM80_TILES, _reread_factors, calibrate, calibration_errors
from architectures.presets import load_preset
from workloads.errors import ConfigError
from workloads.ops import GemmShape
from workloads.schema import validate

DATA = Path(__file__).resolve().parents[1] / "data" / "a100_gemm_fp16_measured.csv"


def tiny_gpu(**kernel) -> GPU:
    """4 SMs at 1 GHz, 1024 fp16 MACs per SM per cycle (8.192 TFLOPS), 1 TB/s HBM, an L2 that never
    limits, no launch or tile overhead, one 64x64x32 tile: every number is checkable by hand."""
    k = {"cta_tiles": [[64, 64, 32]], "tensor_efficiency": 1.0, "tile_overhead_ksteps": 0,
         "hbm_efficiency": 1.0, "launch_overhead": "0 s", **kernel}
    return validate(GPU, {
        "name": "tiny", "freq": "1 GHz", "sms": 4, "tensor": {"fp16_tflops": 8.192, "int8_tops": 16.384},
        "vector_fp32_tflops": 1.0,
        "memory": {"l2": {"size": "64 MiB"}, "hbm": {"size": "1 GiB", "bandwidth": "1 TB/s"}},
        "kernel": k})


# ---- wave quantization, padding and the L2 feed, by hand ----------------------------------------

def test_waves_padding_and_k_iterations_by_hand():
    gpu = tiny_gpu()
    # M=100, N=130 on 64x64 tiles: 2 x 3 = 6 CTAs on 4 SMs -> 2 waves; K=70 -> 3 iterations of 32;
    # one iteration of a 64x64x32 tile at 1024 MAC/cycle = 128 cycles
    k = gpu.gemm_kernel(GemmShape(M=100, K=70, N=130), tile=(64, 64, 32))
    assert (k.tiles, k.waves, k.k_iters) == (6, 2, 3)
    assert k.compute_s == pytest.approx(2 * 3 * 128e-9)
    # useful MACs over the padded tiles' MACs: (100 x 130 x 70) / (128 x 192 x 96)
    assert k.padding_efficiency == pytest.approx(100 * 130 * 70 / (128 * 192 * 96))
    # A, B read once (they fit in L2), C written once, fp16: 58,200 B at 1 TB/s
    assert k.hbm_read == {"a": 100 * 70 * 2, "b": 70 * 130 * 2}
    assert k.hbm_write == 100 * 130 * 2
    assert k.memory_s == pytest.approx(58_200 / 1e12)
    assert k.time_s == k.compute_s and not k.memory_bound


def test_wave_quantization_steps_with_the_cta_count():
    gpu = tiny_gpu()

    def compute(N: int) -> float:
        return gpu.gemm_kernel(GemmShape(M=128, K=64, N=N), tile=(64, 64, 32)).compute_s

    # 2 row tiles x ceil(N/64) column tiles on 4 SMs: 4 CTAs (N=128) fill one wave; 6 and 8 CTAs
    # take two; 10 take three
    assert compute(128) == pytest.approx(1 * 2 * 128e-9)
    assert compute(129) == compute(192) == compute(256) == pytest.approx(2 * 2 * 128e-9)
    assert compute(257) == pytest.approx(3 * 2 * 128e-9)


def test_tile_overhead_efficiency_and_launch():
    gpu = tiny_gpu(tile_overhead_ksteps=2, tensor_efficiency=0.5, launch_overhead="1 us")
    k = gpu.gemm_kernel(GemmShape(M=100, K=70, N=130), tile=(64, 64, 32))
    # 2 waves x (3 + 2 iterations) x 128 cycles / 0.5
    assert k.compute_s == pytest.approx(2 * 5 * 256e-9)
    assert k.launch_s == 1e-6
    assert k.time_s == pytest.approx(1e-6 + 2 * 5 * 256e-9)


def test_l2_feed_bounds_an_iteration():
    # 128 GB/s of L2 shared by a wave's CTAs. A full 64x64x32 tile of M=100, N=130 reads
    # (64 x 2 + 64 x 2) x 32 = 8192 B per iteration. First wave, 4 CTAs: 32 B/cycle each, 256
    # cycles (more than the 128 cycles of MMAs); second wave, 2 CTAs: 64 B/cycle, 128 cycles
    gpu = tiny_gpu()
    gpu = gpu.model_copy(update={"memory": gpu.memory.model_copy(update={
        "l2": gpu.memory.l2.model_copy(update={"bandwidth_bytes_per_s": 128e9})})})
    k = gpu.gemm_kernel(GemmShape(M=100, K=70, N=130), tile=(64, 64, 32))
    assert k.compute_s == pytest.approx(3 * 256e-9 + 3 * 128e-9)
    # M = 16 rows: (16 x 2 + 64 x 2) x 32 = 5120 B -> 160 cycles
    k = gpu.gemm_kernel(GemmShape(M=16, K=64, N=256), tile=(64, 64, 32))
    assert (k.waves, k.k_iters) == (1, 2)
    assert k.compute_s == pytest.approx(2 * 160e-9)


def test_reread_factors_by_hand():
    # 4 x 4 tiles, 4 SMs: each wave covers a 2 x 2 block, 4 waves read 8 row panels of 4 -> 2x
    assert _reread_factors(4, 4, 4) == (2.0, 2.0, 2, 2)
    # one wave covers the grid: every panel once
    assert _reread_factors(2, 2, 4)[:2] == (1.0, 1.0)
    # 1 x 8 tiles (a single row of tiles), 4 SMs: 2 waves each read the one A panel -> A 2x, B 1x
    assert _reread_factors(1, 8, 4) == (2.0, 1.0, 1, 4)


def test_operands_that_do_not_fit_in_l2_are_reread():
    gpu = tiny_gpu()
    gpu = gpu.model_copy(update={"memory": gpu.memory.model_copy(update={
        "l2": gpu.memory.l2.model_copy(update={"size_bytes": 1024})})})
    k = gpu.gemm_kernel(GemmShape(M=256, K=64, N=256), tile=(64, 64, 32))
    assert k.hbm_read == {"a": 2 * 256 * 64 * 2, "b": 2 * 64 * 256 * 2}
    # on chip already: no HBM bytes for that operand, whatever the tiling
    assert gpu.gemm_kernel(GemmShape(M=256, K=64, N=256), tile=(64, 64, 32), a_hbm=0).hbm_read["a"] == 0
    # read once when asked (FlashAttention's K/V re-reads hit in L2)
    once = gpu.gemm_kernel(GemmShape(M=256, K=64, N=256), tile=(64, 64, 32), reread=False)
    assert once.hbm_read == {"a": 256 * 64 * 2, "b": 64 * 256 * 2}


def test_a_gemv_runs_on_the_cuda_cores_when_faster():
    gpu = tiny_gpu()
    # M=1, K=N=1024: on 64x64 tiles 16 CTAs, 4 waves x 32 iterations x 128 cycles = 16.4 us;
    # on the CUDA cores 2 x 1 Mi MACs at 1 TFLOP/s = 2.1 us, and HBM 2.1 MB at 1 TB/s = 2.1 us
    k = gpu.gemm_kernel(GemmShape(M=1, K=1024, N=1024))
    assert k.tile is None and k.tiles == 0
    assert k.compute_s == pytest.approx(2 * 1024 * 1024 / 1e12)
    assert k.memory_s == pytest.approx((1024 * 2 + 1024 * 1024 * 2 + 1024 * 2) / 1e12)
    # a big GEMM stays on the tensor cores
    assert gpu.gemm_kernel(GemmShape(M=1024, K=1024, N=1024)).tile == (64, 64, 32)


def test_vector_kernel_is_cuda_cores_or_hbm():
    gpu = tiny_gpu(launch_overhead="2 us")
    # 1e6 element ops at 0.5e12 ops/s = 2 us; 4 MB at 1 TB/s = 4 us
    k = gpu.vector_kernel(1e6, 3e6, 1e6)
    assert k.compute_s == pytest.approx(2e-6) and k.memory_s == pytest.approx(4e-6)
    assert k.time_s == pytest.approx(6e-6) and k.memory_bound


def test_tensor_precision_rules():
    a100 = load_preset("a100_80gb")
    assert a100.tensor_precision("fp16", "fp16") == ("fp16", 156e12)
    assert a100.tensor_precision("int8", "int8") == ("int8", 312e12)
    assert a100.tensor_precision("fp16", "int4")[0] == "fp16"  # weight-only quantization
    assert a100.tensor_precision("fp8", "fp8")[0] == "fp16"  # no FP8 tensor cores on A100
    assert a100.tensor_precision("fp32", "fp32") == ("fp32", 78e12)  # TF32
    assert load_preset("h100_sxm").tensor_precision("fp8", "fp8") == ("fp8", 989.5e12)


# ---- the efficiency model's shape ------------------------------------------------------------------

@pytest.mark.parametrize("dim", ["M", "K", "N"])
def test_time_never_decreases_when_a_dimension_grows(dim):
    a100 = load_preset("a100_80gb")
    base = {"M": 2048, "K": 4096, "N": 4096}
    prev = 0.0
    for size in [1, 2, 7, 16, 63, 64, 65, 100, 128, 129, 255, 256, 1000, 4096, 5000, 12288]:
        t = a100.gemm_kernel(GemmShape(**{**base, dim: size})).time_s
        assert t >= prev * (1 - 1e-12), f"{dim}={size}"
        prev = t


def test_faster_hardware_is_never_slower():
    a100 = load_preset("a100_80gb")
    more = [{"tensor.fp16_tflops": 624}, {"memory.hbm.bandwidth": "4 TB/s"},
            {"memory.l2.bandwidth": "14 TB/s"}, {"kernel.launch_overhead": "1 us"},
            {"kernel.tensor_efficiency": 1.0}, {"kernel.hbm_efficiency": 1.0},
            # twice the SMs, each as fast as before (the same total peak on more SMs would change
            # the wave quantization either way)
            {"sms": 216, "tensor.fp16_tflops": 624, "memory.l2.bandwidth": "14.438 TB/s"}]
    for change in more:
        faster = load_preset("a100_80gb", change)
        for shape in [GemmShape(1, 4096, 4096), GemmShape(64, 12288, 12288), GemmShape(4096, 4096, 4096),
                      GemmShape(2048, 4096, 11008), GemmShape(8192, 1024, 1024)]:
            assert faster.gemm_kernel(shape).time_s <= a100.gemm_kernel(shape).time_s, change


def test_big_gemms_approach_the_sustained_peak_and_small_ones_do_not():
    a100 = load_preset("a100_80gb")
    big = GemmShape(16384, 16384, 16384)
    k = a100.gemm_kernel(big)
    achieved = big.macs / k.time_s / a100.peak_macs_per_s
    assert 0.85 < achieved < a100.kernel.tensor_efficiency
    small = GemmShape(64, 1024, 1024)
    assert small.macs / a100.gemm_kernel(small).time_s / a100.peak_macs_per_s < 0.05


# ---- presets -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, sms, fp16_tflops, hbm_tb_s, hbm_bytes, l2_mib", [
    # NVIDIA A100 datasheet r4 / Ampere whitepaper; H100 SXM datasheet / Hopper whitepaper; H200 datasheet
    ("a100_80gb", 108, 312, 2.039, 80e9, 40),
    ("h100_sxm", 132, 989.5, 3.35, 80e9, 50),
    ("h200", 132, 989.5, 4.8, 141e9, 50),
])
def test_gpu_presets(name, sms, fp16_tflops, hbm_tb_s, hbm_bytes, l2_mib):
    gpu = load_preset(name)
    assert gpu.template == "gpu" and gpu.sms == sms
    assert gpu.peak_macs_per_s == pytest.approx(fp16_tflops * 1e12 / 2)
    assert gpu.memory.hbm.bandwidth_bytes_per_s == pytest.approx(hbm_tb_s * 1e12)
    assert gpu.memory.hbm.size_bytes == hbm_bytes
    assert gpu.memory.l2.size_bytes == l2_mib * 2**20
    assert gpu.offchip_tiers() == {"hbm": gpu.memory.hbm}
    assert gpu.scratchpad_bytes() == l2_mib * 2**20 // 2
    peak, bandwidth = gpu.roofline()
    assert (peak, bandwidth) == (gpu.peak_macs_per_s, gpu.memory.hbm.bandwidth_bytes_per_s)
    # HBM energy: O'Connor et al., MICRO 2017, Table 3: 3.48 pJ/bit
    assert gpu.energy_model().dram_read_pj_per_byte.value == pytest.approx(3.48 * 8)
    assert gpu.kernel.cta_tiles == CUTLASS_SM80_TILES


def test_a100_derived_numbers():
    a100 = load_preset("a100_80gb")
    # 108 SMs x 1024 dense FP16 FMA per clock x 1410 MHz = 311.9 TFLOPS: the datasheet's 312
    assert a100.peak_macs_per_cycle == pytest.approx(108 * 1024, rel=0.001)
    # the ridge point: 156 TMAC/s over 2.039 TB/s
    assert a100.peak_macs_per_s / a100.memory.hbm.bandwidth_bytes_per_s == pytest.approx(76.5, abs=0.1)
    assert a100.area_mm2 == 826.0 and load_preset("h100_sxm").area_mm2 == 814.0
    assert a100.vector_ops_per_s == 9.75e12


def test_a_reference_precision_without_tensor_cores_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        load_preset("a100_80gb", {"precision": "fp8"})
    assert "no fp8 peak" in str(info.value) and "tensor.fp8_tflops" in str(info.value)


def test_bad_tiles_are_a_config_error():
    with pytest.raises(ConfigError, match="cta_tiles"):
        load_preset("a100_80gb", {"kernel.cta_tiles": [[128, 0, 32]]})


def test_kernel_fields_validate_through_the_schema():
    k = validate(GPU, {**load_preset("a100_80gb").model_dump(), "kernel": {"launch_overhead": "5 us"}})
    assert k.kernel.launch_overhead_s == pytest.approx(5e-6)
    assert k.kernel.tensor_efficiency == 0.935  # the template default is the A100 calibration


# ---- calibration against measured A100 GEMM times (golden) --------------------------------------

def measured() -> list[tuple[int, int, int, float]]:
    with DATA.open() as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        return [(int(r["M"]), int(r["K"]), int(r["N"]), float(r["time_ms"]) * 1e-3) for r in rows]


@pytest.mark.golden
def test_a100_gemm_calibration_error(capsys):
    # Source: measured A100-80GB fp16 GEMM times, PrincetonUniversity/LLMCompass
    # ae/figure5/ab/real_hardware/matmul_A100.csv (copied to tests/data/a100_gemm_fp16_measured.csv).
    # LLMCompass reports 10.4 % mean absolute error on its operator set; we require <= 10 %.
    a100 = load_preset("a100_80gb")
    rows = measured()
    errors = calibration_errors(a100, rows)
    with capsys.disabled():
        print("\nA100-80GB fp16 GEMM: model vs measured (LLMCompass artifact)")
        for (M, K, N, t), e in zip(rows, errors):
            k = a100.gemm_kernel(GemmShape(M, K, N))
            print(f"  {M:>6} x {K:>6} x {N:>6}: measured {t * 1e3:8.4f} ms, model {k.time_s * 1e3:8.4f} ms "
                  f"({e * 100:+5.1f} %), tile {k.tile}, {k.waves} waves, "
                  f"{'memory' if k.memory_bound else 'compute'}-bound")
        mae = sum(abs(e) for e in errors) / len(errors)
        print(f"  mean absolute error {mae * 100:.2f} %")
    assert len(rows) == 8
    assert mae <= 0.10
    assert max(abs(e) for e in errors) <= 0.05
    # the one memory-bound shape (M=64) is memory-bound in the model too
    assert a100.gemm_kernel(GemmShape(64, 12288, 12288)).memory_bound
    assert not a100.gemm_kernel(GemmShape(16384, 12288, 12288)).memory_bound


@pytest.mark.golden
def test_calibrate_recovers_the_preset_parameters():
    # the preset's kernel.* values are calibrate()'s fit to the same measurements
    a100 = load_preset("a100_80gb")
    start = a100.model_copy(update={"kernel": a100.kernel.model_copy(update={
        "tensor_efficiency": 0.8, "tile_overhead_ksteps": 0.0, "hbm_efficiency": 0.7, "launch_overhead_s": 0.0})})
    fit = calibrate(start, measured())
    assert fit.tensor_efficiency == pytest.approx(a100.kernel.tensor_efficiency, abs=0.0025)
    assert fit.tile_overhead_ksteps == pytest.approx(a100.kernel.tile_overhead_ksteps, abs=0.25)
    assert fit.hbm_efficiency == pytest.approx(a100.kernel.hbm_efficiency, abs=0.0025)
    assert fit.launch_overhead_s == pytest.approx(a100.kernel.launch_overhead_s, abs=0.25e-6)
    assert not math.isnan(fit.tensor_efficiency)
