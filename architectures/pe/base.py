"""What every PE kind shares: ``PECost``, the ``_PEBase`` interface and small helpers.

Contract (every kind). The two operands of a GEMM are named as the PE sees them: ``weights`` is
the precision of the second operand (a Linear/Conv2D weight, or for a MatMul the KV cache or the
second activation), ``activations`` of the first.

- ``problems(weights, activations, operand="weights") -> list[str]``: why the pair cannot run
  (empty: it can); ``operand`` names the second operand in the messages ("weights", "KV cache",
  "activations": attention's second operand is the KV cache, not a weight).
- ``group_problems(group_size, reductions) -> list[str]``: why weights quantized in groups of
  ``group_size`` along K cannot run; ``reductions`` maps each reduction dimension K of the
  group-quantized GEMMs to an operator name. Kinds without a per-group scale path
  (``per_group_scales = False``: ANT, OliVe, BitFusion, TPE) refuse any group size; kinds that
  dequantize once per group need groups that tile every K.
- ``cost(weights, activations, table) -> PECost``: a PE reduces ``dot_width`` (d) elements of K
  per *step* and takes ``step_cycles`` (c) cycles per step, so it does d / c MACs per cycle; an
  active PE-cycle costs ``energy_pj_per_cycle``. ``dequant`` says how group-quantized weights are
  scaled: ``per_group`` (once per group's partial sum, ``dequant_cycles`` per group boundary),
  ``per_weight`` (every MAC dequantizes its weight first: ``dequant_cycles`` added to every
  step) or ``none`` (scales folded elsewhere at no modeled cost). The array's cost model
  (``architectures.systolic``) turns these into fold cycles and energy.
- ``paced_step_cycles(weights, activations, pes=, stationary=)``: cycles per step when ``pes``
  PEs advance together (data-dependent kinds, ``tpe``, wait for the slowest); the array's fold
  model uses it for time, while energy follows ``cost``'s (busy) step cycles.
- ``peak_macs``: the most MACs a PE does in a cycle (for the array's peak and utilization).
- ``area_um2(table)`` (one PE) and ``edge_area_um2(table)`` (per array row, e.g. LUT tables).
- ``precision``: the operand width the PE's buffers and vector unit are sized for (its
  activation format); ``default_weights``: the weight format a workload gets when it names none.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import model_validator

from architectures.energy import Sourced
from workloads.precision import accumulator_for, bits_of, is_float
from workloads.schema import Schema, quantity

__all__ = ["PECost", "DEQUANT_MODES", "Dequant", "group_problems", "suggest_group_size"]

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

    # whether the kind has a per-group scale path (see ``group_problems``), and why not
    per_group_scales: ClassVar[bool] = True
    no_group_reason: ClassVar[str] = ""

    # ---- interface (see the module docstring); kinds define ``precision`` and ``peak_macs`` ----
    @property
    def default_weights(self) -> str:
        return self.precision

    def problems(self, weights: str, activations: str, operand: str = "weights") -> list[str]:
        raise NotImplementedError

    def group_problems(self, group_size: int, reductions: Mapping[int, str]) -> list[str]:
        return group_problems(self, group_size, reductions)

    def supports_pair(self, weights: str, activations: str) -> bool:
        return not self.problems(weights, activations)

    def supports(self, precision: str) -> bool:
        """Whether ``precision`` runs as either operand (the single-operand check FuseMax and the
        RDU share); pairs are checked by ``problems``."""
        return (not self.problems(precision, self.precision)
                or not self.problems(self.default_weights, precision))

    def steps(self, weights: str, activations: str) -> tuple[int, float]:
        raise NotImplementedError

    def paced_step_cycles(self, weights: str, activations: str, *, pes: int, stationary: bool) -> float:
        """Cycles per step when ``pes`` PEs, each with its own weight, advance together
        (``stationary``: each keeps one weight for a whole fold). Kinds whose step cycles do not
        depend on the weight's value take ``steps``'s; ``tpe`` overrides it."""
        return self.steps(weights, activations)[1]

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


def group_problems(pe: Any, group_size: int, reductions: Mapping[int, str]) -> list[str]:
    """Why weights quantized in groups of ``group_size`` along K cannot run on ``pe`` (any kind,
    ``mac`` included); ``reductions``: {K: name of an operator with that reduction dimension}."""
    if not group_size:
        return []
    if not getattr(pe, "per_group_scales", True):
        return [f"group-quantized weights (group size {group_size}) cannot run on the {pe.kind} PE: "
                f"{pe.no_group_reason}; leave workload.precision.group_size unset (per-channel "
                f"scales) or choose a kind that dequantizes per group (mixpe, bitmod, lut, mac)"]
    if getattr(pe, "dequant", "none") == "none":
        return []  # scales folded elsewhere: groups need not tile K
    bad = {K: name for K, name in reductions.items() if K % group_size}
    if not bad:
        return []
    hint = suggest_group_size(group_size, list(reductions))
    advice = (f"choose a group size that divides every K ({', '.join(map(str, sorted(reductions)))}), "
              f"e.g. {hint}" if hint else
              f"no group size above 1 divides every K ({', '.join(map(str, sorted(reductions)))}): "
              f"leave group_size unset")
    return [f"group size {group_size} does not divide the reduction dimension K = {K} of '{name}' "
            f"(K / {group_size} = {K / group_size:g}); the {pe.kind} PE dequantizes once per group "
            f"of K ({advice})" for K, name in sorted(bad.items())]


def suggest_group_size(group_size: int, reductions: list[int]) -> int | None:
    """A group size dividing every K in ``reductions``: of the common divisors (at least 16 where
    there are any), the one closest to ``group_size`` on a log scale (the larger on a tie), so a
    rejected 100 on K in {4096, 11008} suggests 128. None if the K have no common divisor > 1."""
    g = 0
    for K in reductions:
        g = math.gcd(g, int(K))
    small = [d for d in range(1, math.isqrt(g) + 1) if g % d == 0]
    divisors = sorted({x for d in small for x in (d, g // d)} - {1})
    if not divisors:
        return None
    big = [d for d in divisors if d >= 16] or divisors
    return min(big, key=lambda d: (abs(math.log2(d / group_size)), -d))


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
