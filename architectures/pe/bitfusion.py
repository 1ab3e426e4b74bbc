"""``bitfusion``: BitFusion's fusion unit of BitBricks (Sharma et al., ISCA 2018)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from architectures.energy import Sourced
from architectures.pe.base import _int_ok, _PEBase
from workloads.precision import bits_of
from workloads.schema import FieldProblems

__all__ = ["BitFusionPE", "fused_unit"]


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
            raise FieldProblems([("min_bits", f"{self.min_bits} is above max_bits {self.max_bits} "
                                              f"(the narrowest BitBrick cannot exceed the fused width)")])
        return self

    @property
    def precision(self) -> str:
        return f"int{self.max_bits}" if self.max_bits in (1, 2, 3, 4, 8, 16) else "int8"

    @property
    def peak_macs(self) -> int:
        return (self.max_bits // self.min_bits) ** 2

    per_group_scales: ClassVar[bool] = False
    no_group_reason: ClassVar[str] = ("BitFusion (ISCA'18) quantizes each layer at one bit width with "
                                      "per-layer scales; its fusion unit has no per-group scale path")

    def problems(self, weights: str, activations: str, operand: str = "weights") -> list[str]:
        return [f"{p} {what}: a BitFusion unit takes integers up to {self.max_bits} bits"
                for p, what in ((weights, operand), (activations, "activations"))
                if not _int_ok(p, self.max_bits)]

    def steps(self, weights: str, activations: str) -> tuple[int, float]:
        f = (self.max_bits // max(bits_of(activations), self.min_bits)) * \
            (self.max_bits // max(bits_of(weights), self.min_bits))
        return f, 1.0

    def derived_energy(self, weights, activations, table) -> Sourced:
        return fused_unit(table, self.max_bits, self.min_bits, energy=True)

    def derived_area(self, table) -> Sourced:
        return fused_unit(table, self.max_bits, self.min_bits, energy=False)


# BitFusion's synthesized PEs (hsharma35/bitfusion@0246bc4 results/systolic_array_synth.csv, one PE
# (N = M = 1) at 500 MHz, the paper's 45 nm flow): (max bits, min bits) -> (area um^2, dynamic
# power nW). (8, 8) and (16, 16) are plain MACs at that width, the others fusion units of
# min-bit BitBricks. MixPE's artifact (yuzhang712/mixpe_simulator@7e0d42c results/
# systolic_array_synth.csv) reuses the (8, 2) row's power as its "8/4" unit.
_SYNTH = {(2, 2): (124.8912, 28742.0), (4, 2): (431.474398, 78470.1), (4, 4): (282.239998, 60101.7),
          (8, 2): (1733.129989, 279960.0), (8, 8): (687.6072, 148845.0),
          (16, 2): (7492.413585, 1166200.0), (16, 16): (2203.236034, 473688.0)}
_SYNTH_SRC = "hsharma35/bitfusion@0246bc4 results/systolic_array_synth.csv (45 nm, 500 MHz)"


def fused_unit(table, max_bits: int, min_bits: int, *, energy: bool) -> Sourced:
    """A fused unit (BitFusion's; ANT's integer mode) as BitFusion's synthesis scales it: its
    (max, min) unit over its plain max-bit MAC, times this table's MAC at max bits (so the
    table's node and flow set the absolute number). Widths without a synthesized unit take the
    nearest one: max bits rounded up to 2, 4, 8 or 16; min bits not synthesized at that width
    take 2-bit BitBricks (the largest unit: an upper bound, as MixPE's artifact does for 8/4)."""
    top = next(b for b in (2, 4, 8, 16) if b >= max_bits)
    low = min_bits if (top, min_bits) in _SYNTH else 2
    unit, mac = _SYNTH[(top, low)], _SYNTH[(top, top)]
    col = 1 if energy else 0
    rel = unit[col] / mac[col]
    prec = f"int{top}"
    base = table.mac_pj(prec) if energy else table.mac_um2(prec, "int32")
    what = "dynamic power" if energy else "area"
    note = "" if (low, top) == (min_bits, max_bits) else f" (nearest synthesized unit to {max_bits}/{min_bits})"
    return Sourced(rel * base.value, f"derived: BitFusion {top}/{low} unit {what} {unit[col]:g} / its "
                                     f"{top}-bit MAC {mac[col]:g}{note} [{_SYNTH_SRC}] x an {prec} MAC "
                                     f"[{base.source}]")
