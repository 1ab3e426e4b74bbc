"""Processing elements of the systolic array: one small ``Schema`` per kind, each with its cost.

``SystolicArray.pe`` is a discriminated union of these kinds on ``kind`` (``kind`` left out means
``mac``, so presets written before the union still load).

Contract (every kind). The two operands of a GEMM are named as the PE sees them: ``weights`` is
the precision of the second operand (a Linear/Conv2D weight, or for a MatMul the KV cache or the
second activation), ``activations`` of the first.

- ``problems(weights, activations) -> list[str]``: why the pair cannot run (empty: it can).
- ``cost(weights, activations, table) -> PECost``: a PE reduces ``dot_width`` (d) elements of K
  per *step* and takes ``step_cycles`` (c) cycles per step, so it does d / c MACs per cycle; an
  active PE-cycle costs ``energy_pj_per_cycle``. ``dequant`` says how group-quantized weights are
  scaled: ``per_group`` (once per group's partial sum, ``dequant_cycles`` per group boundary),
  ``per_weight`` (every MAC dequantizes its weight first: ``dequant_cycles`` added to every
  step) or ``none`` (scales folded elsewhere at no modeled cost). The array's cost model
  (``architectures.systolic``) turns these into fold cycles and energy.
- ``peak_macs``: the most MACs a PE does in a cycle (for the array's peak and utilization).
- ``area_um2(table)`` (one PE) and ``edge_area_um2(table)`` (per array row, e.g. LUT tables).
- ``precision``: the operand width the PE's buffers and vector unit are sized for (its
  activation format); ``default_weights``: the weight format a workload gets when it names none.

One line per kind (d = dot width, c = cycles per step, b = weight bits):

========== =========================================================================================
mac        d = 1, c = 1 at its precision (FP16/BF16/INT8/INT4 baselines)
bitfusion  BitFusion fusion unit: d = floor(max/max(a, min)) * floor(max/max(b, min)), c = 1
mixpe      MixPE shift-and-add: d = lanes, c = ceil(b / max_weight_bits); per-group dequantization
bitmod     BitMoD bit-serial: d = dot_width (4), c = ceil(floor(b) / bits_per_cycle (2))
ant/olive  BitMoD's baselines: d = 1, c = 1 with FP16 activations; with integer activations the
           4-bit fused unit's rule, d = floor(8/max(a, 4)) * floor(8/max(b, 4))
lut        LUT Tensor Core: d = group_k (4) activations per table, c = b (one weight bit plane per
           cycle); a 2^(group_k-1)-entry table per activation group, built at the row's edge
tpe        TPE bit-weight transform: d = 1, c = average non-zero partial products of the weights
           under a canonical signed-digit encoding (at least 1)
========== =========================================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, model_validator

from architectures.energy import Sourced
from workloads.precision import Precision, accumulator_for, bits_of, is_float
from workloads.schema import Schema, quantity

__all__ = ["PECost", "PE", "BitFusionPE", "MixPE", "BitModPE", "AntPE", "OlivePE", "LutPE", "TpePE",
           "PEKind", "PE_KINDS", "AnyPE", "DEQUANT_MODES", "csd_digits", "average_partial_products",
           "iso_area", "pe_adapter"]

DEQUANT_MODES = ("none", "per_group", "per_weight")
Dequant = Literal["none", "per_group", "per_weight"]


@dataclass(frozen=True)
class PECost:
    """What one PE does for one (weights, activations) pair; see the module docstring."""

    dot_width: int
    step_cycles: float
    energy_pj_per_cycle: Sourced
    dequant: str = "none"
    dequant_cycles: float = 0.0
    dequant_energy_pj: Sourced | None = None
    table_build_adds: int = 0  # LUT: adds to build one activation table (one per K-group of d)
    table_add_pj: Sourced | None = None

    @property
    def macs_per_cycle(self) -> float:
        return self.dot_width / self.step_cycles


def _short_keys(data: Any, keys: dict[str, str]) -> Any:
    """Rename short keys (``energy_per_cycle``) to field names, for kinds built directly from
    Python (configuration files are canonicalized through ``AnyPE``)."""
    if isinstance(data, dict):
        data = {keys.get(k, k): v for k, v in data.items()}
    return data


_COMMON_KEYS = {"area": "area_mm2", "energy_per_cycle": "energy_pj_per_cycle",
                "dequant_energy": "dequant_energy_pj"}


class _PEBase(Schema):
    """Fields every non-``mac`` kind shares: explicit energy and area (unset: the tables)."""

    energy_pj_per_cycle: quantity("energy", "energy of one active PE-cycle; unset: derived from "
                                  "the energy table (see the kind)", alias="energy_per_cycle", ge=0,
                                  default=None)
    area_mm2: quantity("area", "area of one PE (e.g. '1507.7 um^2'), before the array's "
                       "pe_pnr_factor; unset: derived from the area table", alias="area", gt=0,
                       default=None)

    @model_validator(mode="before")
    @classmethod
    def _rename(cls, data: Any) -> Any:
        return _short_keys(data, _COMMON_KEYS)

    # ---- interface (see the module docstring); kinds define ``precision`` and ``peak_macs`` ----
    @property
    def default_weights(self) -> str:
        return self.precision

    def problems(self, weights: str, activations: str) -> list[str]:
        raise NotImplementedError

    def supports_pair(self, weights: str, activations: str) -> bool:
        return not self.problems(weights, activations)

    def supports(self, precision: str) -> bool:
        """Whether ``precision`` runs as either operand (the single-operand check FuseMax and the
        RDU share); pairs are checked by ``problems``."""
        return (not self.problems(precision, self.precision)
                or not self.problems(self.default_weights, precision))

    def steps(self, weights: str, activations: str) -> tuple[int, float]:
        raise NotImplementedError

    def cost(self, weights: str, activations: str, table) -> PECost:
        d, c = self.steps(weights, activations)
        return PECost(d, c, self._energy(weights, activations, table), **self._dequant(table))

    def _energy(self, weights: str, activations: str, table) -> Sourced:
        if self.energy_pj_per_cycle is not None:
            return Sourced(self.energy_pj_per_cycle, "set in the architecture (pe.energy_per_cycle)")
        return self.derived_energy(weights, activations, table)

    def derived_energy(self, weights: str, activations: str, table) -> Sourced:
        raise NotImplementedError

    def _dequant(self, table) -> dict:
        mode = getattr(self, "dequant", "none")
        if mode == "none":
            return {}
        e = getattr(self, "dequant_energy_pj", None)
        acc = accumulator_for(self.precision)
        src = (Sourced(e, "set in the architecture (pe.dequant_energy)") if e is not None else
               _named(table.mac_pj(acc), f"one {acc} multiply-add (scale, zero point) per dequantization"))
        return {"dequant": mode, "dequant_cycles": float(getattr(self, "dequant_cycles", 0.0)),
                "dequant_energy_pj": src}

    def area_um2(self, table) -> Sourced:
        if self.area_mm2 is not None:
            return Sourced(self.area_mm2 * 1e6, "set in the architecture (pe.area)")
        return self.derived_area(table)

    def derived_area(self, table) -> Sourced:
        raise NotImplementedError

    def edge_area_um2(self, table) -> Sourced:
        return Sourced(0.0, "none")


def _named(s: Sourced, what: str) -> Sourced:
    return Sourced(s.value, f"{what} [{s.source}]")


def _sum(*parts: tuple[float, Sourced]) -> Sourced:
    """Sum of count x value, with the sources joined."""
    return Sourced(sum(n * s.value for n, s in parts),
                   " + ".join(f"{n:g} x ({s.source})" for n, s in parts))


def _int_ok(p: str, max_bits: int) -> bool:
    return not is_float(p) and bits_of(p) <= max_bits


def _same_format(p: str, fmt: str) -> bool:
    """An activation stored at ``p`` feeds a datapath built for ``fmt``: the same float format,
    or for an integer datapath any integer up to its width."""
    if is_float(fmt):
        return p == fmt
    return not is_float(p) and bits_of(p) <= bits_of(fmt)


# ---- mac -----------------------------------------------------------------------------------

class PE(Schema):
    """``mac``: a multiply-accumulate unit at one precision, one MAC per cycle (the baselines)."""

    kind: Literal["mac"] = Field("mac", description="PE kind (mac: one multiply-accumulate per cycle)")
    precision: Precision = Field("int8", description="operand precision the multiplier takes")
    accumulator: Precision | None = Field(None, description="accumulator precision (default: int32 "
                                          "for integer PEs, fp32 for floating point)")
    energy_pj_per_mac: quantity("energy", "energy per MAC; unset: from the energy table",
                                alias="energy_per_mac", ge=0, default=None)
    area_mm2: quantity("area", "area of one PE (e.g. '1968.7 um^2'), before the array's "
                       "pe_pnr_factor; unset: a multiplier and an accumulator adder from the area "
                       "table", alias="area", gt=0, default=None)
    dequant: Dequant = Field("none", description="group-quantized weights: none (converted on load "
                             "at no modeled cost) | per_weight (each MAC dequantizes its weight: a "
                             "dequantize-then-MAC baseline) | per_group")
    dequant_cycles: float = Field(0.0, ge=0, description="cycles a dequantization adds (per step "
                                  "for per_weight, per group boundary for per_group)")
    dequant_energy_pj: quantity("energy", "energy of one dequantization; unset: a multiply-add at "
                                "the accumulator precision", alias="dequant_energy", ge=0, default=None)

    @property
    def accumulator_precision(self) -> str:
        return self.accumulator or accumulator_for(self.precision)

    @property
    def default_weights(self) -> str:
        return self.precision

    @property
    def peak_macs(self) -> int:
        return 1

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

    def problems(self, weights: str, activations: str) -> list[str]:
        return [f"{p} {what} cannot run on a {self.precision} MAC PE"
                for p, what in ((weights, "weights"), (activations, "activations")) if not self.supports(p)]

    def supports_pair(self, weights: str, activations: str) -> bool:
        return not self.problems(weights, activations)

    def steps(self, weights: str, activations: str) -> tuple[int, float]:
        return 1, 1.0

    def cost(self, weights: str, activations: str, table) -> PECost:
        e = (Sourced(self.energy_pj_per_mac, "set in the architecture (pe.energy_pj_per_mac)")
             if self.energy_pj_per_mac is not None else table.mac_pj(self.precision))
        extra: dict = {}
        if self.dequant != "none":
            d = (Sourced(self.dequant_energy_pj, "set in the architecture (pe.dequant_energy)")
                 if self.dequant_energy_pj is not None else
                 _named(table.mac_pj(self.accumulator_precision),
                        f"one {self.accumulator_precision} multiply-add per dequantization"))
            extra = {"dequant": self.dequant, "dequant_cycles": self.dequant_cycles, "dequant_energy_pj": d}
        return PECost(1, 1.0, e, **extra)

    def area_um2(self, table) -> Sourced:
        if self.area_mm2 is not None:
            return Sourced(self.area_mm2 * 1e6, "set in the architecture (pe.area)")
        mac = table.mac_um2(self.precision, self.accumulator_precision)
        if self.dequant == "per_weight":  # an in-PE dequantizer: scale multiply + zero-point add
            return _sum((1, mac), (1, _named(table.multiplier_um2(self.precision), "dequantizer multiplier")),
                        (1, _named(table.adder_um2(self.precision), "dequantizer adder")))
        return mac

    def edge_area_um2(self, table) -> Sourced:
        return Sourced(0.0, "none")


# ---- BitFusion -----------------------------------------------------------------------------

class BitFusionPE(_PEBase):
    """``bitfusion``: a fusion unit of BitBricks (Sharma et al., ISCA 2018): one max_bits x
    max_bits multiply per cycle, or several narrower ones (products per cycle =
    floor(max/max(a, min)) * floor(max/max(b, min))). Integer operands only."""

    kind: Literal["bitfusion"] = "bitfusion"
    max_bits: int = Field(8, ge=2, le=16, description="widest operand the fused unit multiplies")
    min_bits: int = Field(2, ge=1, le=16, description="narrowest BitBrick width (narrower operands "
                          "run at this width)")

    @model_validator(mode="after")
    def _order(self) -> "BitFusionPE":
        if self.min_bits > self.max_bits:
            raise ValueError(f"min_bits {self.min_bits} is above max_bits {self.max_bits}")
        return self

    @property
    def precision(self) -> str:
        return f"int{self.max_bits}" if self.max_bits in (1, 2, 3, 4, 8, 16) else "int8"

    @property
    def peak_macs(self) -> int:
        return (self.max_bits // self.min_bits) ** 2

    def problems(self, weights: str, activations: str) -> list[str]:
        return [f"{p} {what}: a BitFusion unit takes integers up to {self.max_bits} bits"
                for p, what in ((weights, "weights"), (activations, "activations"))
                if not _int_ok(p, self.max_bits)]

    def steps(self, weights: str, activations: str) -> tuple[int, float]:
        f = (self.max_bits // max(bits_of(activations), self.min_bits)) * \
            (self.max_bits // max(bits_of(weights), self.min_bits))
        return f, 1.0

    def derived_energy(self, weights, activations, table) -> Sourced:
        return _named(table.mac_pj(self.precision), f"the fused unit switches like one {self.precision} MAC")

    def derived_area(self, table) -> Sourced:
        return _named(table.mac_um2(self.precision, "int32"), f"one {self.precision} MAC (BitBricks + shift-add tree)")


# ---- MixPE ---------------------------------------------------------------------------------

class MixPE(_PEBase):
    """``mixpe``: MixPE (arXiv 2411.16158): low-bit integer weights times INT8 or FP16
    activations by shift-and-add (an exponent add for FP16) instead of a multiplier, ``lanes``
    weights per cycle; the per-group scale and zero point are applied once per group's partial
    sum (``dequant: per_group``) instead of per MAC. Second operands wider than
    ``max_weight_bits`` (attention's activation x activation products) take
    ceil(bits / max_weight_bits) passes."""

    kind: Literal["mixpe"] = "mixpe"
    activations: Literal["int8", "fp16", "bf16"] = Field("int8", description="activation format")
    max_weight_bits: int = Field(4, ge=1, le=8, description="weight bits one shift-and-add pass takes")
    lanes: int = Field(1, ge=1, le=64, description="weights (with their products) per cycle")
    dequant: Dequant = Field("per_group", description="per_group (MixPE) | per_weight (dequantize "
                             "in the inner loop, for comparison) | none")
    dequant_cycles: float = Field(1.0, ge=0, description="cycles a dequantization takes (per group "
                                  "boundary, or per step for per_weight)")
    dequant_energy_pj: quantity("energy", "energy of one dequantization; unset: a multiply-add at "
                                "the accumulator precision", alias="dequant_energy", ge=0, default=None)

    @property
    def precision(self) -> str:
        return self.activations

    @property
    def default_weights(self) -> str:
        return f"int{self.max_weight_bits}" if self.max_weight_bits in (1, 2, 3, 4, 8) else "int4"

    @property
    def peak_macs(self) -> int:
        return self.lanes

    def problems(self, weights: str, activations: str) -> list[str]:
        out = []
        if not _same_format(activations, self.activations):
            out.append(f"{activations} activations: this MixPE takes {self.activations} activations")
        if bits_of(weights) > bits_of(self.activations):
            out.append(f"{weights} weights are wider than the {self.activations} datapath")
        return out

    def steps(self, weights: str, activations: str) -> tuple[int, float]:
        return self.lanes, float(math.ceil(bits_of(weights) / self.max_weight_bits))

    # Relative to a MAC at the activation format, from the MixPE artifact
    # (yuzhang712/mixpe_simulator@7e0d42c): area from its iso-area arrays (W4A8 64x64 where INT8
    # has 32x32: 1/4 of an INT8 PE; W4A16 32x32 where FP16 has 32x28: 28/32 of an FP16 PE);
    # energy from results/systolic_array_synth.csv (dynamic power at 500 MHz: the 8/4-bit unit,
    # 279,960 nW, which is also what the INT8 baseline gets; the 16/8-bit unit 544,982 nW against
    # the 16/16-bit 839,982 nW), both for its 2-lane configurations.
    _REL = {"int8": ("int8", 1.0, 1024 / 4096), "fp16": ("fp16", 544_982 / 839_982, 896 / 1024),
            "bf16": ("bf16", 544_982 / 839_982, 896 / 1024)}

    def derived_energy(self, weights, activations, table) -> Sourced:
        fmt, rel, _ = self._REL[self.activations]
        rel *= self.lanes / 2
        mac = table.mac_pj(fmt)
        return Sourced(rel * mac.value, f"derived: {rel:.3f} x a {fmt} MAC [{mac.source}]; MixPE artifact "
                                        f"synthesis (dynamic power of its PE relative to its {fmt} PE), x lanes/2")

    def derived_area(self, table) -> Sourced:
        fmt, _, rel = self._REL[self.activations]
        rel *= self.lanes / 2
        mac = table.mac_um2(fmt, accumulator_for(fmt))
        return Sourced(rel * mac.value, f"derived: {rel:.3f} x a {fmt} MAC [{mac.source}]; MixPE artifact "
                                        f"iso-area arrays relative to its {fmt} baseline, x lanes/2")


# ---- BitMoD --------------------------------------------------------------------------------

class BitModPE(_PEBase):
    """``bitmod``: BitMoD (HPCA'25) bit-serial PE: a dot product of ``dot_width`` FP16
    activations with weights fed ``bits_per_cycle`` bits a cycle, ceil(floor(bits) /
    bits_per_cycle) cycles per step (the artifact's rule); per group a mixture of datatypes
    (any integer or float weight format; up to 16 bits, so an int8 or FP16 KV cache runs in
    attention) and bit-serial dequantization of the group's partial sum."""

    kind: Literal["bitmod"] = "bitmod"
    activations: Literal["fp16", "bf16", "int8"] = Field("fp16", description="activation format")
    dot_width: int = Field(4, ge=1, le=64, description="activations (and weights) per dot product")
    bits_per_cycle: int = Field(2, ge=1, le=16, description="weight bits processed per cycle")
    dequant: Dequant = Field("per_group", description="per_group (bit-serial dequantization of the "
                             "group's partial sum) | none")
    dequant_cycles: float = Field(0.0, ge=0, description="cycles per group boundary (the artifact "
                                  "charges none: the dequantizer works beside the next group)")
    dequant_energy_pj: quantity("energy", "energy of one dequantization; unset: a multiply-add at "
                                "the accumulator precision", alias="dequant_energy", ge=0, default=None)

    @property
    def precision(self) -> str:
        return self.activations

    @property
    def default_weights(self) -> str:
        return "int4"

    @property
    def peak_macs(self) -> int:
        return self.dot_width

    def problems(self, weights: str, activations: str) -> list[str]:
        out = []
        if not _same_format(activations, self.activations):
            out.append(f"{activations} activations: this BitMoD PE takes {self.activations}")
        if bits_of(weights) > 16:
            out.append(f"{weights} weights: at most 16 bits are fed bit-serially")
        return out

    def steps(self, weights: str, activations: str) -> tuple[int, float]:
        return self.dot_width, float(math.ceil(math.floor(bits_of(weights)) / self.bits_per_cycle))

    def derived_energy(self, weights, activations, table) -> Sourced:
        return _bitmod_relative(table, 0.56, 1507.7, "BitMoD PE", energy=True)

    def derived_area(self, table) -> Sourced:
        return _bitmod_relative(table, 0.56, 1507.7, "BitMoD PE", energy=False)


def _bitmod_relative(table, pj: float, um2: float, what: str, *, energy: bool) -> Sourced:
    """A BitMoD-table PE relative to BitMoD's FP16 PE (0.77 pJ per cycle, 1968.7 um^2 at 28 nm;
    abdelfattah-lab/BitMoD-HPCA-25@e445a5f bitmod_sim/test_*.py), times this table's fp16 MAC."""
    if energy:
        fp16, rel = table.mac_pj("fp16"), pj / 0.77
        return Sourced(rel * fp16.value, f"derived: {what} {pj} pJ / FP16 PE 0.77 pJ (BitMoD artifact, "
                                         f"28 nm) x an fp16 MAC [{fp16.source}]")
    fp16, rel = table.mac_um2("fp16", "fp32"), um2 / 1968.7
    return Sourced(rel * fp16.value, f"derived: {what} {um2} um^2 / FP16 PE 1968.7 um^2 (BitMoD artifact, "
                                     f"28 nm) x an fp16 MAC [{fp16.source}]")


# ---- ANT and OliVe -------------------------------------------------------------------------

class _DecoderPE(_PEBase):
    """A 4-bit-format PE with a format decoder (ANT's adaptive types, OliVe's outlier-victim
    pairs): with FP16 activations (BitMoD's weight-only setting) one MAC per cycle for weights
    up to 8 bits; with integer activations the 4-bit fused unit's rule. Scales are per channel:
    group-quantized weights are not supported."""

    activations: Literal["fp16", "bf16", "int8", "int4"] = Field("fp16", description="activation format")

    @property
    def precision(self) -> str:
        return self.activations

    @property
    def default_weights(self) -> str:
        return "int4"

    @property
    def peak_macs(self) -> int:
        return 1 if is_float(self.activations) else 4

    def problems(self, weights: str, activations: str) -> list[str]:
        out = []
        low_bit = bits_of(weights) <= 8  # int1..int8, fp4, fp6, fp8
        if not low_bit and not (is_float(self.activations) and weights == self.activations):
            out.append(f"{weights} weights: {self.kind} takes 4- to 8-bit formats (or, with float "
                       f"activations, a {self.activations} KV cache in attention)")
        if not _same_format(activations, self.activations):
            out.append(f"{activations} activations: this {self.kind} PE takes {self.activations}")
        return out

    def steps(self, weights: str, activations: str) -> tuple[int, float]:
        if is_float(self.activations):
            return 1, 1.0
        return (8 // max(bits_of(activations), 4)) * (8 // max(bits_of(weights), 4)), 1.0

    _PJ = 0.56  # BitMoD artifact PE energy per cycle (ANT: test_ant.py; OliVe overrides)

    def derived_energy(self, weights, activations, table) -> Sourced:
        if is_float(self.activations):
            return _bitmod_relative(table, self._PJ, 1318.6, f"{self.kind} PE", energy=True)
        return _named(table.mac_pj("int8"), "one int8 MAC (decoder not counted)")

    def derived_area(self, table) -> Sourced:
        if is_float(self.activations):
            return _bitmod_relative(table, self._PJ, 1318.6, f"{self.kind} PE", energy=False)
        return _named(table.mac_um2("int8", "int32"), "one int8 MAC (decoder not counted)")


class AntPE(_DecoderPE):
    """``ant``: ANT (Guo et al., MICRO 2022) adaptive 4-bit numerical types (int/flint/PoT),
    8-bit fallback; BitMoD's baseline."""

    kind: Literal["ant"] = "ant"


class OlivePE(_DecoderPE):
    """``olive``: OliVe (Guo et al., ISCA 2023) outlier-victim pair encoding; BitMoD's baseline."""

    kind: Literal["olive"] = "olive"
    _PJ = 0.613  # BitMoD artifact, test_olive.py


# ---- LUT Tensor Core -----------------------------------------------------------------------

class LutPE(_PEBase):
    """``lut``: LUT Tensor Core (ISCA'25): per group of ``group_k`` activations a table of the
    2^group_k signed sums, halved by symmetrization to 2^(group_k-1) entries, is built once at
    the array row's edge and shared by the row's PEs; a PE looks up one weight bit plane per
    cycle and shift-accumulates (c = weight bits, d = group_k). A second operand that is not a
    low-bit integer (attention's activations) runs as bits_of(format) planes."""

    kind: Literal["lut"] = "lut"
    activations: Literal["fp16", "bf16", "int8"] = Field("fp16", description="activation format "
                                                         "(table entries are stored at it)")
    group_k: int = Field(4, ge=1, le=8, description="activations per table (K elements per lookup)")
    max_weight_bits: int = Field(4, ge=1, le=8, description="widest weight (bit planes) it takes")
    dequant: Dequant = Field("per_group", description="per_group: the group scale is applied to the "
                             "accumulated partial sum | none")
    dequant_cycles: float = Field(0.0, ge=0, description="cycles per group boundary (0: pipelined "
                                  "in the output path)")
    dequant_energy_pj: quantity("energy", "energy of one dequantization; unset: a multiply-add at "
                                "the accumulator precision", alias="dequant_energy", ge=0, default=None)

    @property
    def precision(self) -> str:
        return self.activations

    @property
    def default_weights(self) -> str:
        return "int2"

    @property
    def entries(self) -> int:
        return 2 ** (self.group_k - 1)

    @property
    def peak_macs(self) -> int:
        return self.group_k

    def problems(self, weights: str, activations: str) -> list[str]:
        out = []
        if not _same_format(activations, self.activations):
            out.append(f"{activations} activations: this LUT PE's tables hold {self.activations}")
        if bits_of(weights) > 16:
            out.append(f"{weights} weights: the LUT PE reads at most 16 bit planes")
        elif not is_float(weights) and bits_of(weights) > self.max_weight_bits:
            out.append(f"{weights} weights: this LUT PE takes integer weights up to "
                       f"{self.max_weight_bits} bits (bit planes; raise pe.max_weight_bits)")
        return out

    def steps(self, weights: str, activations: str) -> tuple[int, float]:
        return self.group_k, float(bits_of(weights))

    def cost(self, weights: str, activations: str, table) -> PECost:
        """A float second operand (attention's activation x activation products, which LUT Tensor
        Core leaves to other units) runs as one plane per bit of its format: slowly."""
        c = super().cost(weights, activations, table)
        # symmetrized table: entry j is built from entry j - 2^i plus or minus one activation
        return PECost(c.dot_width, c.step_cycles, c.energy_pj_per_cycle, c.dequant, c.dequant_cycles,
                      c.dequant_energy_pj, table_build_adds=self.entries,
                      table_add_pj=table.add_pj(self.activations))

    def derived_energy(self, weights, activations, table) -> Sourced:
        return _named(table.add_pj(accumulator_for(self.activations)),
                      "shift-accumulate of the looked-up entry (the lookup itself not counted)")

    def _mux_um2(self, table) -> Sourced:
        mux = table.cell_um2("mux2")
        n = (self.entries - 1) * bits_of(self.activations)
        return Sourced(n * mux.value, f"{self.entries}:1 mux of {bits_of(self.activations)}-bit entries = "
                                      f"{n} mux2 x {mux.value:g} um^2 [{mux.source}]")

    def derived_area(self, table) -> Sourced:
        return _sum((1, self._mux_um2(table)),
                    (1, _named(table.adder_um2(accumulator_for(self.activations)), "shift-accumulator")))

    def edge_area_um2(self, table) -> Sourced:
        """One table per array row: entries x entry bits of flip-flops and its builder's adders."""
        dff = table.cell_um2("dff")
        bits = self.entries * bits_of(self.activations)
        return _sum((bits, _named(dff, "table bit")),
                    (self.entries, _named(table.adder_um2(self.activations), "table-build adder")))


# ---- TPE -----------------------------------------------------------------------------------

def csd_digits(n: int) -> int:
    """Non-zero digits of ``n`` in canonical signed-digit (non-adjacent) form."""
    n, count = abs(int(n)), 0
    while n:
        if n & 1:
            n -= 2 - (n & 3)  # digit +1 if n = 1 mod 4, -1 if n = 3 mod 4
            count += 1
        n >>= 1
    return count


@lru_cache(maxsize=64)
def average_partial_products(sigma: float | None, bits: int = 8) -> float:
    """Expected non-zero CSD partial products of a signed ``bits``-bit weight drawn from a normal
    distribution N(0, sigma) rounded to the nearest integer and clipped to the range (None: a
    uniform distribution over the range)."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if sigma is None:
        return sum(csd_digits(w) for w in range(lo, hi + 1)) / (hi - lo + 1)

    def cdf(x: float) -> float:
        return 0.5 * (1 + math.erf(x / (sigma * math.sqrt(2))))

    total = 0.0
    for w in range(lo, hi + 1):
        p = (1.0 if w == hi else cdf(w + 0.5)) - (0.0 if w == lo else cdf(w - 0.5))
        total += p * csd_digits(w)
    return total


class TpePE(_PEBase):
    """``tpe``: a bit-weight transformed MAC (TPE, HPCA'25, OPT3/OPT4): the weight is encoded in
    signed digits and only its non-zero partial products are added, one per cycle; cycles per
    MAC = their average for the weight distribution (at least one). The distribution is given
    by ``weight_sigma`` (normal, in LSBs) or ``partial_products`` directly (default: uniform)."""

    kind: Literal["tpe"] = "tpe"
    precision: Literal["int8", "int4"] = Field("int8", description="operand precision")
    weight_sigma: float | None = Field(None, gt=0, description="standard deviation of the integer "
                                       "weights in LSBs (normal distribution)")
    partial_products: float | None = Field(None, ge=1, le=16, description="average non-zero partial "
                                           "products per MAC (overrides weight_sigma)")

    @property
    def peak_macs(self) -> int:
        return 1

    @property
    def average_partial_products(self) -> float:
        if self.partial_products is not None:
            return self.partial_products
        return average_partial_products(self.weight_sigma, bits_of(self.precision))

    def problems(self, weights: str, activations: str) -> list[str]:
        return [f"{p} {what}: this TPE takes integers up to {bits_of(self.precision)} bits"
                for p, what in ((weights, "weights"), (activations, "activations"))
                if not _int_ok(p, bits_of(self.precision))]

    def steps(self, weights: str, activations: str) -> tuple[int, float]:
        return 1, max(1.0, self.average_partial_products)

    def derived_energy(self, weights, activations, table) -> Sourced:
        return _named(table.add_pj(accumulator_for(self.precision)), "one partial-product add")

    def derived_area(self, table) -> Sourced:
        return _sum((1, _named(table.adder_um2(accumulator_for(self.precision)), "partial-product adder")),
                    (1, _named(table.adder_um2(self.precision), "digit encoder (an adder's worth)")))


# ---- the union -------------------------------------------------------------------------------

PE_KINDS: dict[str, type] = {"mac": PE, "bitfusion": BitFusionPE, "mixpe": MixPE, "bitmod": BitModPE,
                             "ant": AntPE, "olive": OlivePE, "lut": LutPE, "tpe": TpePE}


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return value.get("kind", "mac")
    return getattr(value, "kind", "mac")


PEKind = Annotated[Union[tuple(Annotated[cls, Tag(name)] for name, cls in PE_KINDS.items())],
                   Discriminator(_kind_of, custom_error_type="pe_kind",
                                 custom_error_message=f"unknown PE kind; kinds: {', '.join(PE_KINDS)}")]


def _kind_errors(value: Any, handler) -> Any:
    """Validate with the kind's class; report problems at ``pe.<field>`` (without the union's
    tag) with the kind's own keys as hints."""
    from pydantic import ValidationError

    from workloads.errors import did_you_mean
    from workloads.schema import FieldProblems

    try:
        return handler(value)
    except ValidationError as exc:
        kind = _kind_of(value)
        cls = PE_KINDS.get(kind)
        items = []
        for err in exc.errors(include_url=False):
            loc = [str(p) for p in err["loc"] if not str(p).startswith("function-")]
            if loc and loc[0] == kind:
                loc = loc[1:]
            msg = err["msg"]
            for prefix in ("Value error, ", "Assertion failed, "):
                if msg.startswith(prefix):
                    msg = msg[len(prefix):]
            if err["type"] == "extra_forbidden" and cls is not None:
                names = [n for n in cls.model_fields]
                hint = did_you_mean(loc[-1], names)
                msg = (f"unknown key '{loc[-1]}' for pe kind '{kind}'" + (f" ({hint})" if hint else
                       f"; its keys: {', '.join(names)}"))
            elif err["type"] == "pe_kind":
                msg = f"'{kind}' is not a PE kind; kinds: {', '.join(PE_KINDS)}"
                hint = did_you_mean(str(kind), PE_KINDS)
                msg += f" ({hint})" if hint else ""
                loc = ["kind"]
            elif err["type"] == "missing":
                msg = "required key is missing"
            elif err["type"] == "literal_error":
                msg = f"expected one of {err.get('ctx', {}).get('expected', '')}, found {err.get('input')!r}"
            elif err["type"] not in ("value_error", "assertion_error"):
                msg = f"{msg[0].lower()}{msg[1:]}, found {err.get('input')!r}"
            items.append((".".join(loc), msg))
        raise FieldProblems(items) from None


_PEUnion = PEKind


class _AnyPEBase(Schema):
    """What configuration code sees of the ``pe`` field: every kind's fields, so that dotted
    paths (``pe.lanes``) and short keys (``energy_per_cycle``) resolve whichever kind is
    chosen (``workloads.schema`` follows one model per field). Validation is the discriminated
    union of the kinds; no ``AnyPE`` object is ever built."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source, handler):
        from pydantic_core import core_schema

        return core_schema.no_info_wrap_validator_function(_kind_errors, handler.generate_schema(_PEUnion))


def _any_pe() -> type:
    from pydantic import create_model

    fields: dict[str, Any] = {}
    for kind in PE_KINDS.values():
        for name, info in kind.model_fields.items():
            fields.setdefault(name, (Any, info))
    return create_model("AnyPE", __base__=_AnyPEBase, **fields)


AnyPE = _any_pe()


@lru_cache(maxsize=1)
def pe_adapter():
    from pydantic import TypeAdapter

    return TypeAdapter(PEKind)


# ---- iso-area sizing -------------------------------------------------------------------------

def iso_area(pe_area_um2: float, budget_mm2: float, *, rows: int | None = None, cols: int | None = None,
             pnr_factor: float = 1.5, edge_area_um2: float = 0.0) -> tuple[int, int]:
    """The largest array that fits ``budget_mm2`` of PE area: give ``rows`` or ``cols`` (or
    neither: a square); the other is floor(budget / (fixed x PE area x pnr_factor)). Per-row
    edge area (LUT tables) is counted with each row. BitMoD sizes its baselines this way, with
    the synthesized PE area x 1.5 for place and route."""
    if pe_area_um2 <= 0 or budget_mm2 <= 0 or pnr_factor <= 0:
        raise ValueError("PE area, budget and place-and-route factor must be positive")
    if rows is not None and cols is not None:
        raise ValueError("give rows or cols (or neither), not both")
    pe = pe_area_um2 * pnr_factor * 1e-6
    edge = edge_area_um2 * pnr_factor * 1e-6
    if rows is not None:
        out = int(math.floor((budget_mm2 - rows * edge) / (rows * pe) + 1e-9))
        if out < 1:
            raise ValueError(f"{rows} rows of {pe_area_um2:g} um^2 PEs exceed {budget_mm2:g} mm^2")
        return rows, out
    if cols is not None:
        out = int(math.floor(budget_mm2 / (cols * pe + edge) + 1e-9))
        if out < 1:
            raise ValueError(f"{cols} columns of {pe_area_um2:g} um^2 PEs exceed {budget_mm2:g} mm^2")
        return out, cols
    side = int(math.floor(math.sqrt(budget_mm2 / pe) + 1e-9))
    while side > 1 and side * side * pe + side * edge > budget_mm2 * (1 + 1e-9):
        side -= 1
    return side, side
