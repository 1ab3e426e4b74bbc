"""``tpe``: TPE's bit-weight transformed MAC (HPCA'25), and the canonical signed-digit counts
its cycles per MAC come from."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

from pydantic import Field

from architectures.energy import Sourced
from architectures.pe.base import _int_ok, _named, _PEBase, _sum
from workloads.precision import accumulator_for, bits_of

__all__ = ["TpePE", "csd_digits", "average_partial_products"]


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
