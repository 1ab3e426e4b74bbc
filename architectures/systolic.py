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

Processing elements (``pe``, a discriminated union on ``pe.kind``: ``architectures.pe``). A PE
kind reduces d elements of K per *step* and takes c cycles per step for the GEMM's precision
pair (weights = the second operand, activations = the first). The fold model above runs in
steps: K is replaced by ceil(K / d) (a PE row holds d elements of K in ws/is, so a row fold
covers R*d of K), and a fold's cycles are ceil(c * fold steps + dequantization), where
per-group dequantization adds the PE's ``dequant_cycles`` at each group boundary a PE's
accumulation passes in the fold (ceil(K / g) for os, ceil(min(K, R*d) / g) for ws/is) and
per-weight dequantization adds them to every step. Where c depends on the weight's value
(``tpe``: its non-zero partial products) the PEs that advance together wait for the slowest:
c is the PE's ``paced_step_cycles`` for the array's rows x cols PEs (weight- and
input-stationary folds keep one weight per PE for the whole fold; an output-stationary step
holds rows x cols different weights, or with decoupled PEs costs the mean); PE energy is
charged for the busy cycles (``PECost.step_cycles``) only. The ``mac`` kind (d = c = 1, no
dequantization) gives exactly the table above.

``compute_model: tile`` replaces the fold model by BitMoD's analytic one (HPCA'25 artifact,
``bitmod_sim/accelerator.py``): output stationary, tiles of R tokens x C output channels x d
elements of K, c cycles each, no fill or drain (groups * ceil(M/R) * ceil(N/C) * ceil(K/d) * c);
PE energy is charged to every PE for every compute cycle, as the artifact does. It exists to
reproduce BitMoD's numbers; the fold model stays the default.

Iso-area sizing: with ``pe_area_budget_mm2`` set, give ``rows`` or ``cols`` and the other is the
largest that fits (``architectures.pe.iso_area``: PE area x ``pe_pnr_factor``); with both given
the array must fit the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from architectures.base import Architecture, MemoryTier, register_template
from architectures.energy import Sourced, energy_table
from architectures.pe import PE, AnyPE, PECost, iso_area, pe_adapter
from workloads.ops import GemmShape
from workloads.precision import bits_of
from workloads.schema import FieldProblems, Schema, quantity

__all__ = ["Dataflow", "DATAFLOWS", "PE", "VectorUnit", "SystolicMemory", "SystolicArray",
           "FoldPlan", "fold_plan", "EnergyModel", "StepCost", "MAC_STEP", "COMPUTE_MODELS"]

Dataflow = Literal["os", "ws", "is"]
DATAFLOWS: tuple[str, ...] = ("os", "ws", "is")
COMPUTE_MODELS: tuple[str, ...] = ("fold", "tile")


@dataclass(frozen=True)
class StepCost:
    """How a PE kind stretches the fold model (module docstring): ``dot_width`` elements of K per
    step, ``step_cycles`` cycles per step (output stationary), ``stationary_step_cycles`` per step
    of a weight- or input-stationary fold (None: ``step_cycles``), ``busy_step_cycles`` of a step
    a PE actually works (None: all of them; less when PEs wait for the slowest of a lockstep
    group), ``dequant_cycles`` at every ``dequant_group`` elements of K (None: no per-group
    dequantization), and ``skew``: whether folds pay the pipeline's fill and drain (False: the
    tile model)."""

    dot_width: int = 1
    step_cycles: float = 1.0
    dequant_group: int | None = None
    dequant_cycles: float = 0.0
    skew: bool = True
    stationary_step_cycles: float | None = None
    busy_step_cycles: float | None = None

    def cycles_for(self, dataflow: str) -> float:
        """Cycles per step under ``dataflow``."""
        if dataflow != "os" and self.stationary_step_cycles is not None:
            return self.stationary_step_cycles
        return self.step_cycles


MAC_STEP = StepCost()


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
    """An R x C systolic array of PEs (os/ws/is) with SCALE-Sim's buffers and a vector unit."""

    rows: int = Field(gt=0, description="PE rows (R)")
    cols: int = Field(gt=0, description="PE columns (C)")
    dataflow: Dataflow = Field("os", description="default dataflow: os | ws | is")
    pe: AnyPE = Field(PE(), description="processing element: kind mac (default) | bitfusion | mixpe | "
                       "bitmod | ant | olive | lut | tpe, and the kind's fields (architectures/pe/)")
    compute_model: Literal["fold", "tile"] = Field(
        "fold", description="fold: SCALE-Sim's fold model | tile: BitMoD's analytic tile model "
        "(output stationary, no fill/drain)")
    pe_area_budget_mm2: quantity("area", "PE-array area budget for iso-area sizing: give rows or cols "
                                 "and the other is derived (PE area x pe_pnr_factor)",
                                 alias="pe_area_budget", gt=0, default=None)
    pe_pnr_factor: float = Field(1.0, gt=0, le=10, description="place-and-route factor on PE area "
                                 "(BitMoD uses 1.5)")
    memory: SystolicMemory = Field(description="operand buffers and DRAM")
    vector: VectorUnit = Field(VectorUnit(), description="vector unit for non-matrix ops")

    @model_validator(mode="before")
    @classmethod
    def _size_from_budget(cls, data):
        """With ``pe_area_budget_mm2`` and one of rows/cols, derive the other (iso-area)."""
        if not isinstance(data, dict) or data.get("pe_area_budget_mm2") is None:
            return data
        rows, cols = data.get("rows"), data.get("cols")
        if rows is not None and cols is not None:
            return data  # checked against the budget after validation
        from architectures.area import area_table_for
        from architectures.units import parse_quantity

        try:
            budget = parse_quantity(data["pe_area_budget_mm2"], "area")
            pe = pe_adapter().validate_python(data.get("pe", {}))
            table, _ = area_table_for(str(data.get("energy_table", "horowitz_45nm")))
            pnr = float(data.get("pe_pnr_factor", 1.0))
            rows = None if rows is None else int(rows)
            cols = None if cols is None else int(cols)
        except Exception:  # noqa: BLE001 - the fields' own validation reports bad values
            # The array cannot be sized because one of its inputs (the budget, the PE, the
            # place-and-route factor, rows or cols) is invalid, and that field's own validation
            # reports it. Fill the missing dimension with a placeholder so that it is the only
            # problem reported (not also "cols: required key is missing"); the placeholder never
            # reaches an object, because the bad field fails validation.
            return {**data, "rows": data.get("rows", 1), "cols": data.get("cols", 1)}
        try:
            r, c = iso_area(pe.area_um2(table).value, budget, rows=rows, cols=cols, pnr_factor=pnr,
                            edge_area_um2=pe.edge_area_um2(table).value)
        except ValueError as exc:
            raise FieldProblems([("pe_area_budget_mm2", str(exc))]) from None
        return {**data, "rows": r, "cols": c}

    @model_validator(mode="after")
    def _fits_budget_and_model(self) -> "SystolicArray":
        bad = []
        if self.pe_area_budget_mm2 is not None:
            used = self.pe_array_area_mm2
            if used > self.pe_area_budget_mm2 * (1 + 1e-9):
                bad.append(("pe_area_budget_mm2", f"a {self.rows}x{self.cols} array of {self.pe.kind} PEs "
                            f"takes {used:.4g} mm^2, over the budget of {self.pe_area_budget_mm2:g} mm^2"))
        if self.compute_model == "tile" and self.dataflow != "os":
            bad.append(("dataflow", f"compute_model 'tile' is output stationary; found dataflow "
                        f"'{self.dataflow}' (write os)"))
        if bad:
            raise FieldProblems(bad)
        return self

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
    def pe_count(self) -> int:
        """Physical PEs: rows x cols."""
        return self.rows * self.cols

    @property
    def pes(self) -> int:
        """MAC lanes: rows x cols x the most MACs a PE does in a cycle (``pe.peak_macs``; 1 for
        the mac kind). The peak and the denominator of utilization."""
        return self.rows * self.cols * self.pe.peak_macs

    @property
    def pe_array_area_mm2(self) -> float:
        """PE array area (PEs and per-row edge logic such as LUT tables) x ``pe_pnr_factor``."""
        from architectures.area import area_table_for

        table, _ = area_table_for(self.energy_table)
        per_pe = self.pe.area_um2(table).value
        edge = self.pe.edge_area_um2(table).value
        return (self.rows * self.cols * per_pe + self.rows * edge) * self.pe_pnr_factor * 1e-6

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

    def fold(self, gemm: GemmShape, dataflow: str | None = None, cost: StepCost | None = None) -> "FoldPlan":
        """The fold plan of ``gemm``; ``cost``: the PE's step cost for the GEMM's precisions
        (``step_cost``; None: the PE's nominal pair)."""
        return fold_plan(gemm, self.rows, self.cols, dataflow or self.dataflow,
                         cost if cost is not None else self.step_cost()[0])

    def pe_cost(self, weights: str | None = None, activations: str | None = None) -> PECost:
        """The PE's cost for a precision pair (None: its nominal formats)."""
        return self.pe.cost(weights or self.pe.default_weights, activations or self.pe.precision,
                            energy_table(self.energy_table))

    def step_cost(self, weights: str | None = None, activations: str | None = None,
                  group_size: int | None = None) -> tuple[StepCost, PECost]:
        """How the fold model runs a GEMM with these operand precisions (module docstring);
        ``group_size``: the weights' quantization group (None: not group-quantized).

        Raises ``ValueError`` for a pair (or a group size) the PE cannot run, with the PE's own
        reasons; experiments check these at load time (``simulator.experiment``), so this guards
        direct Python use."""
        w, a = weights or self.pe.default_weights, activations or self.pe.precision
        why = self.pe.problems(w, a)
        if group_size:
            why += self.pe.group_problems(group_size, {})
        if why:
            raise ValueError(f"the {self.pe.kind} PE cannot run {w} x {a}"
                             + (f" in groups of {group_size}" if group_size else "") + ": " + "; ".join(why))
        pc = self.pe_cost(weights, activations)
        skew = self.compute_model == "fold"
        paced = getattr(self.pe, "paced_step_cycles", None)
        c_os = c_st = pc.step_cycles
        if paced is not None:  # data-dependent kinds: a step waits for the slowest PE in it
            pes = self.rows * self.cols
            c_os = paced(w, a, pes=pes, stationary=False)
            c_st = paced(w, a, pes=pes, stationary=True)
        if (pc.dot_width == 1 and pc.step_cycles == c_os == c_st == 1.0 and pc.dequant == "none"
                and skew):
            return MAC_STEP, pc
        group, extra = None, 0.0
        if group_size and pc.dequant == "per_weight":
            extra = pc.dequant_cycles
        elif group_size and pc.dequant == "per_group" and pc.dequant_cycles:
            group = group_size
        busy = pc.step_cycles + extra
        return StepCost(pc.dot_width, c_os + extra, group, pc.dequant_cycles if group else 0.0, skew,
                        stationary_step_cycles=None if c_st == c_os else c_st + extra,
                        busy_step_cycles=None if busy == c_os + extra == c_st + extra else busy), pc

    def energy_model(self) -> EnergyModel:
        table = energy_table(self.energy_table)
        p = self.pe.precision
        mac = self.pe_cost().energy_pj_per_cycle
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
    cost: StepCost = MAC_STEP  # how the PE stretches the fold (module docstring)

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
        the folds (T steps of ``cost.step_cycles`` each). Equals SCALE-Sim's "Compute Util" for
        os; for ws/is SCALE-Sim divides by a fold C - 1 cycles longer than the fold it counts
        (simulator/SCALESIM.md)."""
        if self.cost is MAC_STEP:
            return self.mapping_efficiency * self.T / self.fold_cycles
        busy = self.cost.busy_step_cycles
        c = busy if busy is not None else self.cost.cycles_for(self.dataflow)
        return min(1.0, self.mapping_efficiency * self.T * c / self.fold_cycles)

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


def fold_plan(gemm: GemmShape, rows: int, cols: int, dataflow: str, cost: StepCost = MAC_STEP) -> FoldPlan:
    """Fold ``gemm`` onto a ``rows`` x ``cols`` array of PEs whose step cost is ``cost`` (see
    the module docstring)."""
    M, N = gemm.M, gemm.N
    d = cost.dot_width
    K = gemm.K if d == 1 else -(-gemm.K // d)  # steps along the reduction
    skew_os = rows + cols - 2 if cost.skew else 0
    skew_ws = 2 * rows + cols - 2 if cost.skew else 0
    if dataflow == "os":
        Sr, Sc, T = M, N, K
        steps = T + skew_os
        k_fold = gemm.K
    elif dataflow == "ws":
        Sr, Sc, T = K, N, M
        steps = skew_ws + T
        k_fold = min(gemm.K, rows * d)
    elif dataflow == "is":
        Sr, Sc, T = K, M, N
        steps = skew_ws + T
        k_fold = min(gemm.K, rows * d)
    else:
        raise ValueError(f"unknown dataflow {dataflow!r}; expected one of {DATAFLOWS}")
    if cost is MAC_STEP:
        fold_cycles = steps
    else:
        dq = math.ceil(k_fold / cost.dequant_group) * cost.dequant_cycles if cost.dequant_group else 0.0
        fold_cycles = max(1, math.ceil(steps * cost.cycles_for(dataflow) + dq - 1e-9))
    return FoldPlan(dataflow, rows, cols, gemm, Sr, Sc, T, math.ceil(Sr / rows), math.ceil(Sc / cols),
                    fold_cycles, cost)
