"""``mixpe``: MixPE's shift-and-add PE with per-group dequantization (arXiv 2411.16158)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from architectures.energy import Sourced
from architectures.pe.base import Dequant, DequantEnergy, _PEBase, _same_format
from workloads.precision import accumulator_for, bits_of

__all__ = ["MixPE"]


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
    # Assumption (no source): MixPE (arXiv 2411.16158) applies scale and zero point once per
    # group's partial sum but gives no cycle count; 1 cycle per group boundary assumes the
    # accumulator stalls for one multiply-add. BitMoD's artifact charges none (its dequantizer
    # works beside the next group): set 0 for that.
    dequant_cycles: float = Field(1.0, ge=0, description="cycles a dequantization takes (per group "
                                  "boundary, or per step for per_weight); 1 is an assumption, "
                                  "not from the paper")
    dequant_energy_pj: DequantEnergy = None

    @property
    def precision(self) -> str:
        return self.activations

    @property
    def default_weights(self) -> str:
        return f"int{self.max_weight_bits}" if self.max_weight_bits in (1, 2, 3, 4, 8) else "int4"

    @property
    def peak_macs(self) -> int:
        return self.lanes

    def problems(self, weights: str, activations: str, operand: str = "weights") -> list[str]:
        out = []
        if not _same_format(activations, self.activations):
            out.append(f"{activations} activations: this MixPE takes {self.activations} activations")
        if bits_of(weights) > bits_of(self.activations):
            out.append(f"{weights} {operand} are wider than the {self.activations} datapath")
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
