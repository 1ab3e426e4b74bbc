"""Systolic-array template and its cost model (the SCALE-Sim v3 fold model).

Cost model contract (per GEMM of ``groups`` x (M x K) @ (K x N) on an R x C array):

=========  ===========  ===========  ==========  =========================  =================
dataflow   array rows   array cols   streamed T  folds                      cycles per fold
=========  ===========  ===========  ==========  =========================  =================
os         M (pixels)   N (filters)  K           ceil(M/R) * ceil(N/C)      T + R + C - 2
ws         K (window)   N (filters)  M           ceil(K/R) * ceil(N/C)      2R + C + T - 2
is         K (window)   M (pixels)   N           ceil(K/R) * ceil(M/C)      2R + C + T - 2
=========  ===========  ===========  ==========  =========================  =================

Compute cycles = groups * folds * cycles-per-fold, exactly SCALE-Sim v3's per-layer compute
(SCALE-Sim prints one cycle less as "Total Cycles"; see simulator/SCALESIM.md). Edge
folds cost a full fold: partially used rows/columns still wait for the skewed pipeline.
SRAM reads per operand count every element delivered to the array edge (as SCALE-Sim's demand
matrices do); with ws/is, K-folds produce partial sums, which are written each fold and read
back before accumulation (SCALE-Sim counts the writes but not the read-backs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from architectures.base import Architecture, MemoryTier, register_template
from architectures.energy import Sourced, energy_table
from workloads.ops import GemmShape
from workloads.precision import Precision, accumulator_for, bits_of, is_float
from workloads.schema import FieldProblems, Schema, quantity

__all__ = ["Dataflow", "DATAFLOWS", "PE", "VectorUnit", "SystolicMemory", "SystolicArray",
           "FoldPlan", "fold_plan", "EnergyModel"]

Dataflow = Literal["os", "ws", "is"]
DATAFLOWS: tuple[str, ...] = ("os", "ws", "is")


class PE(Schema):
    """A processing element: a multiply-accumulate unit at one precision."""

    kind: Literal["mac"] = Field("mac", description="PE kind (mac: one multiply-accumulate per cycle)")
    precision: Precision = Field("int8", description="operand precision the multiplier takes")
    accumulator: Precision | None = Field(None, description="accumulator precision (default: int32 "
                                          "for integer PEs, fp32 for floating point)")
    energy_pj_per_mac: quantity("energy", "energy per MAC; unset: from the energy table",
                                alias="energy_per_mac", ge=0, default=None)

    @property
    def accumulator_precision(self) -> str:
        return self.accumulator or accumulator_for(self.precision)

    def supports(self, precision: str) -> bool:
        """Whether an operand stored at ``precision`` runs on this PE without conversion.

        Integer PEs take integers up to their width; floating-point PEs take floats up to their
        width and integers narrower than their mantissa (converted on load).
        """
        if is_float(self.precision):
            if is_float(precision):
                return bits_of(precision) <= bits_of(self.precision) and not (
                    precision == "bf16" and self.precision == "fp16")
            return bits_of(precision) <= 8
        return (not is_float(precision)) and bits_of(precision) <= bits_of(self.precision)


class VectorUnit(Schema):
    """The unit beside the array that runs pooling, element-wise ops, softmax and norms."""

    lanes: int | None = Field(None, gt=0, description="element operations per cycle (default: "
                              "the array's column count)")
    energy_pj_per_op: quantity("energy", "energy per element operation; unset: an add at the "
                               "PE precision from the energy table", alias="energy_per_op", ge=0,
                               default=None)


class SystolicMemory(Schema):
    """Three double-buffered operand SRAMs (SCALE-Sim's) and one or two off-chip tiers.

    ``dram`` is the main off-chip memory (DDR or HBM); ``ddr`` an optional second, larger and
    slower tier (e.g. host DDR behind HBM, as in SambaNova's SN40L). Each off-chip tier has its
    own channel to the chip.
    """

    ifmap_sram: MemoryTier = Field(description="input feature map (activations) buffer")
    filter_sram: MemoryTier = Field(description="filter (weights) buffer")
    ofmap_sram: MemoryTier = Field(description="output feature map / partial sums buffer")
    dram: MemoryTier = Field(MemoryTier(), description="main off-chip memory (DDR or HBM)")
    ddr: MemoryTier | None = Field(None, description="optional second off-chip tier, larger and slower")


@dataclass(frozen=True)
class EnergyModel:
    """Per-operation and per-byte energies resolved for one architecture, each with its source."""

    mac_pj: Sourced
    vector_op_pj: Sourced
    sram_read_pj_per_byte: dict[str, Sourced]  # by buffer: ifmap, filter, ofmap
    sram_write_pj_per_byte: dict[str, Sourced]
    offchip_read_pj_per_byte: dict[str, Sourced]  # by off-chip tier
    offchip_write_pj_per_byte: dict[str, Sourced]

    @property
    def dram_read_pj_per_byte(self) -> Sourced:
        return self.offchip_read_pj_per_byte["dram"]

    @property
    def dram_write_pj_per_byte(self) -> Sourced:
        return self.offchip_write_pj_per_byte["dram"]


@register_template("systolic_array")
class SystolicArray(Architecture):
    """An R x C systolic array of MAC PEs (os/ws/is) with SCALE-Sim's buffers and a vector unit."""

    rows: int = Field(gt=0, description="PE rows (R)")
    cols: int = Field(gt=0, description="PE columns (C)")
    dataflow: Dataflow = Field("os", description="default dataflow: os | ws | is")
    pe: PE = Field(PE(), description="processing element")
    memory: SystolicMemory = Field(description="operand buffers and DRAM")
    vector: VectorUnit = Field(VectorUnit(), description="vector unit for non-matrix ops")

    @model_validator(mode="after")
    def _buffers_hold_an_edge(self) -> "SystolicArray":
        elem = bits_of(self.pe.precision) / 8
        need = {"ifmap_sram": self.rows, "filter_sram": self.cols, "ofmap_sram": self.cols}
        bad = []
        for buf, n in need.items():
            size = getattr(self.memory, buf).size_bytes
            # double-buffered: each half must hold one edge of the array's operands
            if size < 2 * n * elem:
                bad.append((f"memory.{buf}.size_bytes", f"{size:g} B is smaller than two rows of "
                            f"operands ({2 * n} x {elem:g} B = {2 * n * elem:g} B) for a "
                            f"{self.rows}x{self.cols} array (double-buffered)"))
        if bad:
            raise FieldProblems(bad)
        return self

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    @property
    def vector_lanes(self) -> int:
        return self.vector.lanes or self.cols

    @property
    def peak_macs_per_s(self) -> float:
        return self.pes * self.freq_hz

    def roofline(self) -> tuple[float, float]:
        """(peak MAC/s of the matrix unit, off-chip bytes/s of the main tier) for roofline plots."""
        return self.peak_macs_per_s, self.memory.dram.bandwidth_bytes_per_s

    @property
    def dram_bytes_per_cycle(self) -> float:
        return self.memory.dram.bandwidth_bytes_per_s / self.freq_hz

    @property
    def area_mm2(self) -> float:
        """Silicon area in mm^2 of the PE array, the vector unit and the three operand SRAMs, from
        the area table matching ``energy_table`` (``architectures.area.systolic_area`` gives the
        breakdown with sources). Registers, control, interconnect, the DRAM PHY and place-and-route
        overhead are not counted: a lower bound at the table's technology node."""
        from architectures.area import systolic_area

        return systolic_area(self).total_mm2

    def fold(self, gemm: GemmShape, dataflow: str | None = None) -> "FoldPlan":
        return fold_plan(gemm, self.rows, self.cols, dataflow or self.dataflow)

    def energy_model(self) -> EnergyModel:
        table = energy_table(self.energy_table)
        p = self.pe.precision
        mac = (Sourced(self.pe.energy_pj_per_mac, "set in the architecture (pe.energy_pj_per_mac)")
               if self.pe.energy_pj_per_mac is not None else table.mac_pj(p))
        vec = (Sourced(self.vector.energy_pj_per_op, "set in the architecture (vector.energy_pj_per_op)")
               if self.vector.energy_pj_per_op is not None else table.add_pj(p))
        reads, writes = {}, {}
        for name in ("ifmap", "filter", "ofmap"):
            tier: MemoryTier = getattr(self.memory, f"{name}_sram")
            reads[name] = _tier_energy(tier, False, lambda w: table.sram_pj_per_byte(tier.size_bytes, w))
            writes[name] = _tier_energy(tier, True, lambda w: table.sram_pj_per_byte(tier.size_bytes, w))
        off_r = {n: _tier_energy(t, False, lambda w: table.dram_pj_per_byte())
                 for n, t in self.offchip_tiers().items()}
        off_w = {n: _tier_energy(t, True, lambda w: table.dram_pj_per_byte())
                 for n, t in self.offchip_tiers().items()}
        return EnergyModel(mac, vec, reads, writes, off_r, off_w)

    def offchip_tiers(self) -> dict[str, MemoryTier]:
        """Off-chip tiers, fastest first: ``dram`` and, if present, ``ddr``."""
        tiers = {"dram": self.memory.dram}
        if self.memory.ddr is not None:
            tiers["ddr"] = self.memory.ddr
        return tiers

    def scratchpad_bytes(self) -> int:
        """On-chip capacity that can hold activations between layers: half the ifmap buffer (the
        other half streams the current layer's input)."""
        return int(self.memory.ifmap_sram.size_bytes // 2)


def _tier_energy(tier: MemoryTier, write: bool, fallback) -> Sourced:
    if write and tier.write_energy_pj_per_byte is not None:
        return Sourced(tier.write_energy_pj_per_byte, "set in the architecture (write_energy)")
    if tier.energy_pj_per_byte is not None:
        return Sourced(tier.energy_pj_per_byte, "set in the architecture (energy)")
    return fallback(write)


@dataclass(frozen=True)
class FoldPlan:
    """How one GEMM folds onto the array under one dataflow, and what that costs on chip.

    ``Sr``/``Sc`` are the GEMM extents mapped on array rows/columns, ``T`` the streamed extent.
    Element counts are per operand: ``ifmap_reads`` etc. (multiply by element bytes for bytes).
    """

    dataflow: str
    rows: int
    cols: int
    gemm: GemmShape
    Sr: int
    Sc: int
    T: int
    row_folds: int
    col_folds: int
    fold_cycles: int

    @property
    def folds(self) -> int:
        return self.gemm.groups * self.row_folds * self.col_folds

    @property
    def compute_cycles(self) -> int:
        return self.folds * self.fold_cycles

    @property
    def mapping_efficiency(self) -> float:
        """Mean over folds of (used rows x used cols) / (R x C)."""
        return (self.Sr / (self.row_folds * self.rows)) * (self.Sc / (self.col_folds * self.cols))

    @property
    def compute_utilization(self) -> float:
        """Mapping efficiency x T / cycles-per-fold: the fraction of PE-cycles doing MACs within
        the folds. Equals SCALE-Sim's "Compute Util" for os; for ws/is SCALE-Sim divides by a
        fold C - 1 cycles longer than the fold it counts (simulator/SCALESIM.md)."""
        return self.mapping_efficiency * self.T / self.fold_cycles

    @property
    def k_folds(self) -> int:
        """Folds along the reduction dimension (each produces partial sums): ws/is only."""
        return 1 if self.dataflow == "os" else self.row_folds

    # --- SRAM element traffic at the array edges (per SCALE-Sim's demand matrices) ---
    @property
    def ifmap_reads(self) -> int:
        g, M, K = self.gemm.groups, self.gemm.M, self.gemm.K
        if self.dataflow == "is":
            return g * M * K  # each input element is loaded into its PE once
        return g * self.col_folds * M * K  # os, ws: the input streams once per column fold

    @property
    def filter_reads(self) -> int:
        g, K, N = self.gemm.groups, self.gemm.K, self.gemm.N
        if self.dataflow == "ws":
            return g * K * N  # each weight is loaded into its PE once
        return g * (self.row_folds if self.dataflow == "os" else self.col_folds) * K * N

    @property
    def ofmap_writes(self) -> int:
        """Output (and partial-sum) element writes."""
        return self.gemm.groups * self.k_folds * self.gemm.M * self.gemm.N

    @property
    def ofmap_reads(self) -> int:
        """Partial-sum read-backs for accumulation across K-folds (0 for os)."""
        return self.gemm.groups * (self.k_folds - 1) * self.gemm.M * self.gemm.N


def fold_plan(gemm: GemmShape, rows: int, cols: int, dataflow: str) -> FoldPlan:
    """Fold ``gemm`` onto a ``rows`` x ``cols`` array (see the module docstring)."""
    M, K, N = gemm.M, gemm.K, gemm.N
    if dataflow == "os":
        Sr, Sc, T = M, N, K
        fold_cycles = T + rows + cols - 2
    elif dataflow == "ws":
        Sr, Sc, T = K, N, M
        fold_cycles = 2 * rows + cols + T - 2
    elif dataflow == "is":
        Sr, Sc, T = K, M, N
        fold_cycles = 2 * rows + cols + T - 2
    else:
        raise ValueError(f"unknown dataflow {dataflow!r}; expected one of {DATAFLOWS}")
    return FoldPlan(dataflow, rows, cols, gemm, Sr, Sc, T, math.ceil(Sr / rows), math.ceil(Sc / cols),
                    fold_cycles)
