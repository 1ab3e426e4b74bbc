"""``bitmod``: BitMoD's bit-serial PE (HPCA'25), and the BitMoD-relative energy and area its
baselines (``architectures.pe.decoder``) share."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from architectures.energy import Sourced
from architectures.pe.base import Dequant, DequantEnergy, _PEBase, _same_format
from workloads.precision import bits_of

__all__ = ["BitModPE"]


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
    dequant_energy_pj: DequantEnergy = None

    @property
    def precision(self) -> str:
        return self.activations

    @property
    def default_weights(self) -> str:
        return "int4"

    @property
    def peak_macs(self) -> int:
        return self.dot_width

    def problems(self, weights: str, activations: str, operand: str = "weights") -> list[str]:
        out = []
        if not _same_format(activations, self.activations):
            out.append(f"{activations} activations: this BitMoD PE takes {self.activations}")
        if bits_of(weights) > 16:
            out.append(f"{weights} {operand}: at most 16 bits are fed bit-serially")
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
