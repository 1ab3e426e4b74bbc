"""``lut``: LUT Tensor Core's table-lookup PE (ISCA'25), with its per-row table at the array's edge."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from architectures.energy import Sourced
from architectures.pe.base import Dequant, DequantEnergy, PECost, _named, _PEBase, _same_format, _sum
from workloads.precision import accumulator_for, bits_of, is_float

__all__ = ["LutPE"]


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
    dequant_energy_pj: DequantEnergy = None

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

    def problems(self, weights: str, activations: str, operand: str = "weights") -> list[str]:
        out = []
        if not _same_format(activations, self.activations):
            out.append(f"{activations} activations: this LUT PE's tables hold {self.activations}")
        if bits_of(weights) > 16:
            out.append(f"{weights} {operand}: the LUT PE reads at most 16 bit planes")
        elif not is_float(weights) and bits_of(weights) > self.max_weight_bits:
            out.append(f"{weights} {operand}: this LUT PE takes integer weights up to "
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
