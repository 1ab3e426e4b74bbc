"""``bitfusion``: BitFusion's fusion unit of BitBricks (Sharma et al., ISCA 2018)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from architectures.energy import Sourced
from architectures.pe.base import _int_ok, _named, _PEBase
from workloads.precision import bits_of

__all__ = ["BitFusionPE"]


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
