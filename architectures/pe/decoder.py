"""``ant`` and ``olive``: BitMoD's baselines, 4-bit-format PEs with a format decoder (ANT,
MICRO 2022; OliVe, ISCA 2023), sharing ``_DecoderPE``."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from architectures.energy import Sourced
from architectures.pe.base import _PEBase, _same_format
from architectures.pe.bitfusion import fused_unit
from architectures.pe.bitmod import _bitmod_relative
from workloads.precision import bits_of, is_float

__all__ = ["AntPE", "OlivePE"]


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

    per_group_scales: ClassVar[bool] = False
    no_group_reason: ClassVar[str] = ("its decoder dequantizes with one scale per output channel "
                                      "(BitMoD's artifact runs ANT and OliVe without group scales: "
                                      "abdelfattah-lab/BitMoD-HPCA-25@e445a5f bitmod_sim/test_ant.py, "
                                      "test_olive.py w_prec 4 to 8 bits, no +0.0625)")

    def problems(self, weights: str, activations: str, operand: str = "weights") -> list[str]:
        out = []
        low_bit = bits_of(weights) <= 8  # int1..int8, fp4, fp6, fp8
        if not low_bit and not (is_float(self.activations) and weights == self.activations):
            out.append(f"{weights} {operand}: {self.kind} takes 4- to 8-bit formats (or, with float "
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
        return _int_unit(fused_unit(table, 8, 4, energy=True))

    def derived_area(self, table) -> Sourced:
        if is_float(self.activations):
            return _bitmod_relative(table, self._PJ, 1318.6, f"{self.kind} PE", energy=False)
        return _int_unit(fused_unit(table, 8, 4, energy=False))


def _int_unit(s: Sourced) -> Sourced:
    # Assumption: with integer activations ANT/OliVe fuse 4-bit PEs into 8-bit ones as BitFusion
    # fuses BitBricks (ANT, MICRO'22; MixPE's artifact runs ANT on its 8/4 fused unit), so the
    # fused unit's synthesis is used; the format decoder is not counted (no published number).
    return Sourced(s.value, f"{s.source}; ANT/OliVe integer mode taken as an 8-bit unit of 4-bit "
                            f"PEs, format decoder not counted (assumption)")


class AntPE(_DecoderPE):
    """``ant``: ANT (Guo et al., MICRO 2022) adaptive 4-bit numerical types (int/flint/PoT),
    8-bit fallback; BitMoD's baseline."""

    kind: Literal["ant"] = "ant"


class OlivePE(_DecoderPE):
    """``olive``: OliVe (Guo et al., ISCA 2023) outlier-victim pair encoding; BitMoD's baseline."""

    kind: Literal["olive"] = "olive"
    _PJ = 0.613  # BitMoD artifact, test_olive.py
