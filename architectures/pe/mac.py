"""``mac``: the plain multiply-accumulate PE at one precision (the baselines)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field

from architectures.energy import Sourced
from architectures.pe.base import Dequant, DequantEnergy, PECost, _named, _sum, group_problems
from workloads.precision import Precision, accumulator_for, bits_of, is_float
from workloads.schema import Schema, quantity

__all__ = ["PE"]


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
    dequant_energy_pj: DequantEnergy = None

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

    def problems(self, weights: str, activations: str, operand: str = "weights") -> list[str]:
        return [f"{p} {what} cannot run on a {self.precision} MAC PE"
                for p, what in ((weights, operand), (activations, "activations")) if not self.supports(p)]

    def group_problems(self, group_size: int, reductions: Mapping[int, str]) -> list[str]:
        """See ``architectures.pe.base``: a MAC dequantizes per weight or per group, or (``none``)
        takes weights converted on load."""
        return group_problems(self, group_size, reductions)

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
