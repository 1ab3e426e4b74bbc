"""GPU-like baseline template (``gpu``) and its kernel efficiency model.

A GPU runs one operator per kernel. A kernel's time is a roofline with the losses a GPU adds:

GEMM kernel, ``groups`` x (M x K) @ (K x N), tensor cores at P MAC/s for the operand precision
(the datasheet's dense FLOP/s / 2), on ``sms`` streaming multiprocessors. For a CTA tile
(tm, tn, tk):

==========================  ======================================================================
tiles                       ``groups * ceil(M / tm) * ceil(N / tn)`` (M and N padded to the tile)
waves                       ``ceil(tiles / sms)`` (wave quantization)
main-loop iterations        ``ceil(K / tk)`` (K padded to the tile)
one iteration               ``max(tm*tn*tk / (P/sms * tensor_efficiency),`` the tile's MMAs, and
                            ``(rows*a + cols*b)*tk / (L2 bandwidth/active CTAs))`` feeding the SM
compute                     ``sum over waves of (iterations + tile_overhead_ksteps) * one iteration``
memory                      ``HBM bytes / (HBM bandwidth * hbm_efficiency)``
time                        ``launch_overhead + max(compute, memory)``
==========================  ======================================================================

``rows``/``cols`` = ``min(tm, M)``/``min(tn, N)``: the real (unpadded) rows of A and columns of
B a full tile reads; ``a``/``b``: their bytes per element; the active CTAs of a wave (``sms``, or
fewer in the last wave) share the L2 bandwidth.

The tile is the candidate in ``kernel.cta_tiles`` with the least modelled time, then the least
compute (a stand-in for cuBLAS's heuristic). A GEMV-like kernel on the CUDA cores (``2 * MACs /
FP32 FLOP/s``, no tiles, no padding, operands read once) is taken instead when it is faster, as
for a GEMM of a handful of rows (LLM decode).

HBM bytes: the tiles of one wave cover a near-square block of the tile grid (CTA rasterization)
and share the A row panels and B column panels they read through L2. If one group's A fits in
the usable L2 (``l2_resident_fraction`` of it) beside one wave's B panels, A stays in L2 while B
streams panel by panel and both are read once (likewise with A and B swapped). Otherwise each
wave reads its panels from HBM: A's re-read factor is (sum over waves of the block's tile rows)
/ (tile rows of the grid), and likewise for B. C is written once. Operands already on chip
(kept in L2 by the ``allocate`` pass) move no HBM bytes.

Vector kernel (element-wise, norms, softmax, gathers): ``launch_overhead + max(ops / CUDA-core
rate, bytes / sustained HBM bandwidth)``, one element operation per FP32 CUDA core per cycle
(the datasheet's FP32 FLOP/s / 2).

The four efficiency parameters (``kernel.*``) were fitted to measured A100-80GB fp16 GEMM times
(``calibrate``; tests/architectures/test_gpu.py has the golden test and the numbers).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import Field, model_validator

from architectures.base import Architecture, MemoryTier, register_template
from architectures.energy import Sourced, energy_table
from workloads.ops import GemmShape
from workloads.precision import Precision, bits_of, is_float
from workloads.schema import FieldProblems, Schema, quantity

__all__ = ["TensorCores", "GpuMemory", "KernelModel", "GPU", "KernelTime", "GpuEnergyModel",
           "CUTLASS_SM80_TILES", "calibrate", "calibration_errors"]

# CTA tile shapes (M, N, K) of CUTLASS's SM80 fp16/bf16 tensor-op GEMMs: NVIDIA/cutlass
# python/cutlass_library/generator.py, GenerateSM80_TensorOp_16816, tile_descriptions (K = 32)
CUTLASS_SM80_TILES: tuple[tuple[int, int, int], ...] = (
    (256, 128, 32), (128, 256, 32), (256, 64, 32), (64, 256, 32),
    (128, 128, 32), (128, 64, 32), (64, 128, 32), (64, 64, 32))

_TENSOR_FIELDS = {"fp16": "fp16_tflops", "bf16": "bf16_tflops", "fp32": "tf32_tflops",
                  "fp8": "fp8_tflops", "int8": "int8_tops", "int4": "int4_tops"}


class TensorCores(Schema):
    """Dense (no 2:4 sparsity) peak throughput of the tensor cores per operand precision; unset:
    the GPU has no tensor-core path for it (operands are widened to the next supported one)."""

    fp16_tflops: float | None = Field(None, gt=0, description="FP16 inputs, TFLOP/s (2 per MAC)")
    bf16_tflops: float | None = Field(None, gt=0, description="BF16 inputs, TFLOP/s")
    tf32_tflops: float | None = Field(None, gt=0, description="TF32 (fp32 operands), TFLOP/s")
    fp8_tflops: float | None = Field(None, gt=0, description="FP8 inputs, TFLOP/s")
    int8_tops: float | None = Field(None, gt=0, description="INT8 inputs, TOP/s")
    int4_tops: float | None = Field(None, gt=0, description="INT4 inputs, TOP/s")

    def macs_per_s(self, precision: str) -> float | None:
        """MAC/s at exactly ``precision`` (fp32 runs as TF32), or None if not supported."""
        name = _TENSOR_FIELDS.get(precision)
        value = getattr(self, name) if name else None
        return None if value is None else value * 1e12 / 2


class GpuMemory(Schema):
    """The L2 cache shared by all SMs and the HBM behind it (the one off-chip tier)."""

    l2: MemoryTier = Field(description="L2 cache: size, read bandwidth to the SMs, energy per byte")
    hbm: MemoryTier = Field(description="HBM: size, peak bandwidth, energy per byte")


class GpuNode(Schema):
    """The node the GPU sits in (what model switching, ``workload.coe``, sees): GPUs per node,
    host memory, and each GPU's host link (experts are copied host -> GPU HBM over it)."""

    gpus: int = Field(1, ge=1, description="GPUs per node")
    host_memory_bytes: quantity("size", "host (CPU) memory of the node", alias="host_memory",
                                integer=True, gt=0, default=None)
    host_link_bandwidth_bytes_per_s: quantity("bandwidth", "one GPU's host -> GPU link (PCIe)",
                                              alias="host_link_bandwidth", gt=0, default=None)


class KernelModel(Schema):
    """The efficiency model's parameters (see the module docstring). Defaults: the A100-80GB fp16
    calibration (``calibrate`` on tests/data/a100_gemm_fp16_measured.csv)."""

    cta_tiles: tuple[tuple[int, int, int], ...] = Field(
        CUTLASS_SM80_TILES, description="candidate CTA tiles (M, N, K); default: CUTLASS SM80 fp16")
    tensor_efficiency: float = Field(0.935, gt=0, le=1, description="fraction of the tensor-core "
                                     "peak a CTA's main loop sustains")
    tile_overhead_ksteps: float = Field(8.5, ge=0, description="prologue and epilogue of a CTA tile, "
                                        "in main-loop iterations")
    hbm_efficiency: float = Field(0.85, gt=0, le=1, description="sustained fraction of peak HBM "
                                  "bandwidth")
    launch_overhead_s: quantity("time", "fixed cost per kernel (launch and tail), not overlapped",
                                alias="launch_overhead", ge=0, default=14e-6)

    @model_validator(mode="after")
    def _tiles_positive(self) -> "KernelModel":
        if not self.cta_tiles or any(len(t) != 3 or min(t) <= 0 for t in self.cta_tiles):
            raise FieldProblems([("cta_tiles", f"expected a non-empty list of [M, N, K] tiles of "
                                  f"positive sizes, found {list(self.cta_tiles)!r}")])
        return self


@dataclass(frozen=True)
class KernelTime:
    """One kernel's modelled time (seconds) and traffic (bytes); see the module docstring.

    ``hbm_read`` / ``l2_read``: per operand (``a``, ``b``; a vector kernel has ``a`` only).
    """

    launch_s: float
    compute_s: float
    memory_s: float
    hbm_read: dict[str, float]
    hbm_write: float
    l2_read: dict[str, float]
    precision: str | None = None  # the operand precision (None: an element-wise kernel)
    tile: tuple[int, int, int] | None = None  # CTA tile (None: on the CUDA cores)
    tiles: int = 0  # CTAs
    waves: int = 0
    k_iters: int = 0
    padding_efficiency: float = 1.0  # useful MACs / MACs of the padded tiles

    @property
    def time_s(self) -> float:
        return self.launch_s + max(self.compute_s, self.memory_s)

    @property
    def memory_bound(self) -> bool:
        return self.memory_s > self.compute_s


@dataclass(frozen=True)
class GpuEnergyModel:
    """Energy per operation and per byte moved, each with its source (for ``tessera show``)."""

    mac_pj: Sourced  # at the architecture's reference precision
    vector_op_pj: Sourced
    sram_read_pj_per_byte: dict[str, Sourced]  # {"l2": ...}
    sram_write_pj_per_byte: dict[str, Sourced]
    offchip_read_pj_per_byte: dict[str, Sourced]  # {"hbm": ...}
    offchip_write_pj_per_byte: dict[str, Sourced]
    table: str

    @property
    def dram_read_pj_per_byte(self) -> Sourced:
        return self.offchip_read_pj_per_byte["hbm"]

    def mac_pj_at(self, precision: str) -> Sourced:
        return energy_table(self.table).mac_pj(precision)

    def vector_pj_at(self, precision: str) -> Sourced:
        return energy_table(self.table).add_pj(precision)


@register_template("gpu")
class GPU(Architecture):
    """A GPU: SMs with tensor cores and CUDA cores, an L2 cache, HBM; one kernel at a time."""

    sms: int = Field(gt=0, description="streaming multiprocessors")
    precision: Precision = Field("fp16", description="reference operand precision: peak_macs_per_s, "
                                 "the roofline and utilization refer to it")
    tensor: TensorCores = Field(description="tensor-core peak per precision")
    vector_fp32_tflops: float = Field(gt=0, description="FP32 peak of the CUDA cores, TFLOP/s (an "
                                      "FMA counts 2): element-wise ops run at half of it")
    memory: GpuMemory = Field(description="L2 cache and HBM")
    l2_resident_fraction: float = Field(0.5, gt=0, le=1, description="fraction of the L2 data can "
                                        "count on: tensors kept between kernels, or a GEMM operand "
                                        "kept while the other streams")
    kernel: KernelModel = Field(KernelModel(), description="efficiency model parameters")
    node: GpuNode = Field(GpuNode(), description="GPUs per node, host memory and host link")
    die_area_mm2: quantity("area", "die area (unset: no area model)", alias="die_area", gt=0,
                           default=None)

    @model_validator(mode="after")
    def _reference_precision_runs(self) -> "GPU":
        if self.tensor.macs_per_s(self.precision) is None:
            raise FieldProblems([("precision", f"the tensor cores have no {self.precision} peak "
                                  f"(set tensor.{_TENSOR_FIELDS.get(self.precision, '?')})")])
        return self

    # ---- peaks --------------------------------------------------------------------------------
    @property
    def peak_macs_per_s(self) -> float:
        return self.tensor.macs_per_s(self.precision)

    @property
    def peak_macs_per_cycle(self) -> int:
        return int(round(self.peak_macs_per_s / self.freq_hz))

    @property
    def vector_ops_per_s(self) -> float:
        return self.vector_fp32_tflops * 1e12 / 2

    @property
    def hbm_sustained_bytes_per_s(self) -> float:
        return self.memory.hbm.bandwidth_bytes_per_s * self.kernel.hbm_efficiency

    @property
    def area_mm2(self) -> float | None:
        """Die area from the datasheet/whitepaper (None when the preset gives none)."""
        return self.die_area_mm2

    def roofline(self) -> tuple[float, float]:
        """(peak MAC/s at the reference precision, peak HBM bytes/s): the datasheet roofline."""
        return self.peak_macs_per_s, self.memory.hbm.bandwidth_bytes_per_s

    def offchip_tiers(self) -> dict[str, MemoryTier]:
        return {"hbm": self.memory.hbm}

    def onchip_sram_bytes(self) -> float:
        """On-chip SRAM the design-space metrics count (``sram_bytes``): the L2."""
        return float(self.memory.l2.size_bytes)

    @property
    def node_devices(self) -> int:
        return self.node.gpus

    @property
    def node_hbm_bytes(self) -> float:
        return self.node.gpus * self.memory.hbm.size_bytes

    @property
    def node_ddr_bytes(self) -> float:
        return float(self.node.host_memory_bytes or 0)

    @property
    def node_ddr_to_hbm_bytes_per_s(self) -> float:
        """An expert is copied into one GPU's HBM over that GPU's host link."""
        return self.node.host_link_bandwidth_bytes_per_s or 0.0

    def scratchpad_bytes(self) -> int:
        """What can stay on chip between kernels: ``l2_resident_fraction`` of the L2 (the rest
        streams the running kernel's operands)."""
        return int(self.memory.l2.size_bytes * self.l2_resident_fraction)

    def tensor_precision(self, a: str, b: str) -> tuple[str, float]:
        """The tensor-core precision two operand precisions run at, and its MAC/s.

        Mixed float/int (weight-only quantization): the float one (weights are dequantized in
        the kernel). Otherwise the wider of the two; a precision without a tensor-core peak is
        widened within its family (int4 -> int8, fp8 -> fp16), then falls back to ``precision``.
        """
        if is_float(a) != is_float(b):
            p = a if is_float(a) else b
        else:
            p = a if bits_of(a) >= bits_of(b) else b
        family = ("fp8", "fp16", "bf16", "fp32") if is_float(p) else ("int4", "int8")
        for q in (p,) + tuple(f for f in family if bits_of(f) > bits_of(p)):
            rate = self.tensor.macs_per_s(q)
            if rate is not None:
                return q, rate
        return self.precision, self.peak_macs_per_s

    # ---- the efficiency model -------------------------------------------------------------
    def gemm_kernel(self, gemm: GemmShape, *, precision: str | None = None, a_elem: float = 2.0,
                    b_elem: float = 2.0, a_hbm: float | None = None, b_hbm: float | None = None,
                    c_hbm: float | None = None, reread: bool = True, launch: bool = True,
                    tile: tuple[int, int, int] | None = None) -> KernelTime:
        """Modelled time of a GEMM kernel (see the module docstring).

        ``a_hbm``/``b_hbm``: bytes of A/B the kernel must bring from HBM at least once (default
        all of them; 0 when resident on chip); ``c_hbm``: bytes of C written to HBM (default all
        of C at ``a_elem``). ``reread=False``: operands are read once whatever the tiling
        (FlashAttention's K/V re-reads hit in L2). ``tile``: force one tile instead of choosing.
        """
        rate = self.tensor.macs_per_s(precision) if precision else None
        if rate is None:
            precision, rate = self.tensor_precision(precision or self.precision, precision or self.precision)
        M, K, N, G = gemm.M, gemm.K, gemm.N, gemm.groups
        a_data, b_data = G * M * K * a_elem, G * K * N * b_elem
        a_hbm = a_data if a_hbm is None else a_hbm
        b_hbm = b_data if b_hbm is None else b_hbm
        c_hbm = G * M * N * a_elem if c_hbm is None else c_hbm
        best = None
        for t in ((tile,) if tile else self.kernel.cta_tiles):
            k = self._gemm_with_tile(M, K, N, G, t, rate, a_elem, b_elem, a_hbm, b_hbm, c_hbm,
                                     reread, launch, precision)
            if best is None or (k.time_s, k.compute_s) < (best.time_s, best.compute_s):
                best = k
        if tile is None:  # a GEMV-like kernel on the CUDA cores: no tiles, no padding
            k = KernelTime(launch_s=best.launch_s, compute_s=2 * gemm.macs / (self.vector_fp32_tflops * 1e12),
                           memory_s=(a_hbm + b_hbm + c_hbm) / self.hbm_sustained_bytes_per_s,
                           hbm_read={"a": a_hbm, "b": b_hbm}, hbm_write=c_hbm,
                           l2_read={"a": a_data, "b": b_data}, precision=precision)
            if (k.time_s, k.compute_s) < (best.time_s, best.compute_s):
                best = k
        return best

    def _gemm_with_tile(self, M, K, N, G, tile, rate, a_elem, b_elem, a_hbm, b_hbm, c_hbm,
                        reread, launch, precision) -> KernelTime:
        tm, tn, tk = tile
        gm, gn = math.ceil(M / tm), math.ceil(N / tn)
        tiles = G * gm * gn
        waves = math.ceil(tiles / self.sms)
        k_iters = math.ceil(K / tk)
        mma_s = tm * tn * tk / (rate / self.sms * self.kernel.tensor_efficiency)
        rows, cols = min(tm, M), min(tn, N)  # real rows of A and columns of B of a full tile
        l2_bw = self.memory.l2.bandwidth_bytes_per_s
        feed_bytes = (rows * a_elem + cols * b_elem) * tk
        compute = 0.0
        full, rem = divmod(tiles, self.sms)
        for count, active in ((full, self.sms), (1 if rem else 0, rem)):
            if count:  # the CTAs of a wave share the L2 bandwidth
                feed_s = feed_bytes / (l2_bw / active) if math.isfinite(l2_bw) else 0.0
                compute += count * (k_iters + self.kernel.tile_overhead_ksteps) * max(mma_s, feed_s)
        ra, rb, wave_rows, wave_cols = _reread_factors(gm, gn, self.sms)
        usable = self.memory.l2.size_bytes * self.l2_resident_fraction
        a_g, b_g = M * K * a_elem, K * N * b_elem  # one group's operands
        if (not reread or a_g <= usable - wave_cols * cols * K * b_elem
                or b_g <= usable - wave_rows * rows * K * a_elem):
            ra = rb = 1.0  # one operand stays in L2 while the other streams panel by panel
        reads = {"a": a_hbm * ra, "b": b_hbm * rb}
        memory = (reads["a"] + reads["b"] + c_hbm) / self.hbm_sustained_bytes_per_s
        return KernelTime(
            launch_s=self.kernel.launch_overhead_s if launch else 0.0, compute_s=compute,
            memory_s=memory, hbm_read=reads, hbm_write=c_hbm,
            l2_read={"a": G * gn * M * K * a_elem, "b": G * gm * N * K * b_elem},
            precision=precision, tile=tuple(tile), tiles=tiles, waves=waves, k_iters=k_iters,
            padding_efficiency=(M * N * K) / (gm * tm * gn * tn * k_iters * tk))

    def vector_kernel(self, ops: float, read_bytes: float, write_bytes: float, *,
                      launch: bool = True) -> KernelTime:
        """Modelled time of an element-wise kernel: CUDA cores or HBM, whichever is slower."""
        return KernelTime(
            launch_s=self.kernel.launch_overhead_s if launch else 0.0,
            compute_s=ops / self.vector_ops_per_s,
            memory_s=(read_bytes + write_bytes) / self.hbm_sustained_bytes_per_s,
            hbm_read={"a": read_bytes}, hbm_write=write_bytes, l2_read={"a": read_bytes})

    # ---- energy -------------------------------------------------------------------------------
    def energy_model(self) -> GpuEnergyModel:
        table = energy_table(self.energy_table)
        l2 = self.memory.l2

        def tier(t: MemoryTier, write: bool, fallback) -> Sourced:
            if write and t.write_energy_pj_per_byte is not None:
                return Sourced(t.write_energy_pj_per_byte, "set in the architecture (write_energy)")
            if t.energy_pj_per_byte is not None:
                return Sourced(t.energy_pj_per_byte, "set in the architecture (energy)")
            return fallback(write)

        def sram(w):
            return table.sram_pj_per_byte(l2.size_bytes, w)

        def dram(w):
            return table.dram_pj_per_byte()

        return GpuEnergyModel(
            mac_pj=table.mac_pj(self.precision), vector_op_pj=table.add_pj(self.precision),
            sram_read_pj_per_byte={"l2": tier(l2, False, sram)},
            sram_write_pj_per_byte={"l2": tier(l2, True, sram)},
            offchip_read_pj_per_byte={"hbm": tier(self.memory.hbm, False, dram)},
            offchip_write_pj_per_byte={"hbm": tier(self.memory.hbm, True, dram)},
            table=self.energy_table)


def _wave_block(t: int, gm: int, gn: int) -> tuple[int, int]:
    """(tile rows, tile columns) of the near-square block ``t`` tiles of a wave cover."""
    c = min(gn, max(1, round(math.sqrt(t))))
    r = min(gm, math.ceil(t / c))
    return r, min(gn, math.ceil(t / r))


def _reread_factors(gm: int, gn: int, sms: int) -> tuple[float, float, int, int]:
    """How many times A's and B's panels are read from HBM (>= 1) when each wave of ``sms`` tiles
    of a ``gm`` x ``gn`` grid reads the row and column panels of a near-square block; and the
    tile rows and columns of one wave's block."""
    total = gm * gn
    wave_rows, wave_cols = _wave_block(min(total, sms), gm, gn)
    if total <= sms:
        return 1.0, 1.0, wave_rows, wave_cols
    full, rem = divmod(total, sms)
    rows, cols = full * wave_rows, full * wave_cols
    if rem:
        r, c = _wave_block(rem, gm, gn)
        rows, cols = rows + r, cols + c
    return max(1.0, rows / gm), max(1.0, cols / gn), wave_rows, wave_cols


# ---- calibration ------------------------------------------------------------------------------

def calibration_errors(arch: GPU, rows: Iterable[tuple[int, int, int, float]],
                       precision: str = "fp16") -> list[float]:
    """Relative error (model - measured) / measured of each (M, K, N, seconds) GEMM."""
    e = bits_of(precision) / 8
    return [(arch.gemm_kernel(GemmShape(M, K, N), precision=precision, a_elem=e, b_elem=e).time_s - t) / t
            for M, K, N, t in rows]


_STEPS = {"tensor_efficiency": (0.04, 0.0025), "tile_overhead_ksteps": (4.0, 0.25),
          "hbm_efficiency": (0.04, 0.0025), "launch_overhead_s": (4e-6, 0.25e-6)}
_BOUNDS = {"tensor_efficiency": (0.3, 1.0), "tile_overhead_ksteps": (0.0, 64.0),
           "hbm_efficiency": (0.3, 1.0), "launch_overhead_s": (0.0, 1e-4)}
_GRID = {"tensor_efficiency": (0.8, 0.85, 0.9, 0.95, 1.0), "tile_overhead_ksteps": (0.0, 8.0, 16.0),
         "hbm_efficiency": (0.7, 0.8, 0.9, 1.0), "launch_overhead_s": (0.0, 8e-6, 16e-6)}


def calibrate(arch: GPU, rows: Iterable[tuple[int, int, int, float]], precision: str = "fp16") -> KernelModel:
    """Fit ``kernel.{tensor_efficiency, tile_overhead_ksteps, hbm_efficiency, launch_overhead_s}``
    to measured (M, K, N, seconds) GEMMs, minimizing the mean absolute relative error: the best
    four points of a coarse grid (``_GRID``) each start a pattern search (``_pattern_search``)
    whose steps halve down to the resolutions in ``_STEPS``; the best result wins. The tile candidates and every
    datasheet number stay as they are. Deterministic."""
    rows = list(rows)

    def mae(p: dict) -> float:
        a = arch.model_copy(update={"kernel": arch.kernel.model_copy(update=p)})
        return sum(abs(x) for x in calibration_errors(a, rows, precision)) / len(rows)

    starts = sorted((mae(p), i, p) for i, p in enumerate(
        dict(zip(_GRID, values)) for values in itertools.product(*_GRID.values())))[:4]
    results = [_pattern_search(mae, p, value) for value, _, p in starts]
    best = min(results, key=lambda r: r[0])
    return arch.kernel.model_copy(update=best[1])


def _pattern_search(f, params: dict, best: float) -> tuple[float, dict]:
    """Move to the best of the 3^4 points (each parameter -step, 0, +step) while that improves;
    else halve the steps, until every step is below its resolution."""
    keys = list(_STEPS)
    step = {k: s for k, (s, _) in _STEPS.items()}
    while any(step[k] >= _STEPS[k][1] for k in keys):
        moves = itertools.product(*[(-1, 0, 1) if step[k] >= _STEPS[k][1] else (0,) for k in keys])
        trials = []
        for move in moves:
            trial = {k: min(_BOUNDS[k][1], max(_BOUNDS[k][0], params[k] + m * step[k]))
                     for k, m in zip(keys, move)}
            trials.append((f(trial), move, trial))
        value, _, trial = min(trials, key=lambda t: t[:2])
        if value < best - 1e-12:
            params, best = trial, value
        else:
            step = {k: s / 2 for k, s in step.items()}
    return best, params
