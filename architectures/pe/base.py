"""What every PE kind shares: ``PECost``, the ``_PEBase`` interface and small helpers.

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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import model_validator

from architectures.energy import Sourced
from workloads.precision import accumulator_for, bits_of, is_float
from workloads.schema import Schema, quantity

__all__ = ["PECost", "DEQUANT_MODES", "Dequant"]

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


# the ``dequant_energy`` field of the kinds that dequantize group-quantized weights
DequantEnergy = quantity("energy", "energy of one dequantization; unset: a multiply-add at the "
                         "accumulator precision", alias="dequant_energy", ge=0, default=None)


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
