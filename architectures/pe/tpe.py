"""``tpe``: TPE's bit-weight transformed MAC (HPCA'25), and the canonical signed-digit counts
its cycles per MAC come from."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import ClassVar, Literal

from pydantic import Field

from architectures.energy import Sourced
from architectures.pe.base import _int_ok, _named, _PEBase, _sum
from workloads.precision import accumulator_for, bits_of

__all__ = ["TpePE", "csd_digits", "partial_product_pmf", "average_partial_products",
           "expected_max_partial_products"]


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
def partial_product_pmf(sigma: float | None, bits: int = 8) -> tuple[float, ...]:
    """P(a weight has n non-zero CSD partial products), n = 0, 1, ...: signed ``bits``-bit weights
    drawn from N(0, sigma) rounded to the nearest integer and clipped to the range (None: uniform
    over the range)."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    pmf = [0.0] * (bits // 2 + 2)
    if sigma is None:
        for w in range(lo, hi + 1):
            pmf[csd_digits(w)] += 1 / (hi - lo + 1)
    else:
        def cdf(x: float) -> float:
            return 0.5 * (1 + math.erf(x / (sigma * math.sqrt(2))))

        for w in range(lo, hi + 1):
            pmf[csd_digits(w)] += (1.0 if w == hi else cdf(w + 0.5)) - (0.0 if w == lo else cdf(w - 0.5))
    while len(pmf) > 1 and pmf[-1] == 0.0:
        pmf.pop()
    return tuple(pmf)


def average_partial_products(sigma: float | None, bits: int = 8) -> float:
    """Expected non-zero CSD partial products of one weight (see ``partial_product_pmf``)."""
    return sum(n * p for n, p in enumerate(partial_product_pmf(sigma, bits)))


def expected_max_partial_products(sigma: float | None, pes: int, bits: int = 8) -> float:
    """Expected largest non-zero CSD partial-product count among ``pes`` independent weights:
    sum over m >= 1 of P(max >= m) = 1 - F(m - 1)^pes, F the count's distribution function."""
    pmf = partial_product_pmf(sigma, bits)
    total, cdf = 0.0, 0.0
    for m in range(1, len(pmf)):
        cdf += pmf[m - 1]
        total += 1.0 - min(1.0, cdf) ** pes
    return total


class TpePE(_PEBase):
    """``tpe``: a bit-weight transformed MAC (TPE, HPCA'25, OPT3/OPT4): the weight is encoded in
    signed digits and only its non-zero partial products are added, one per cycle. The
    distribution of the count is given by ``weight_sigma`` (normal, in LSBs; default: uniform),
    or its mean directly by ``partial_products``.

    Pacing (``paced_step_cycles``): PEs that advance together wait for the slowest. With
    ``sync: decoupled`` (the default, and the paper's cycles per MAC: the mean count) an
    output-stationary PE's time is the sum of its column's counts. With ``sync: lockstep`` (a
    globally clocked systolic array, a pessimistic bound the paper does not describe) an output-stationary step lasts the
    largest count among the rows x cols different weights in flight (its expectation, from the
    distribution); decoupled PEs (FIFOs between PEs) all see the same column sum, so a step costs
    the mean.
    Weight- and input-stationary folds hold one weight per PE for the whole fold, so the slowest
    of the rows x cols weights paces every step whatever ``sync`` says. Energy is charged per
    partial product actually added (the mean), not for waiting cycles."""

    kind: Literal["tpe"] = "tpe"
    precision: Literal["int8", "int4"] = Field("int8", description="operand precision")
    weight_sigma: float | None = Field(None, gt=0, description="standard deviation of the integer "
                                       "weights in LSBs (normal distribution)")
    partial_products: float | None = Field(None, ge=1, le=16, description="non-zero partial products "
                                           "per MAC, taken as the cycles per step whatever the pacing "
                                           "(overrides weight_sigma)")
    sync: Literal["lockstep", "decoupled"] = Field(
        "decoupled", description="lockstep: every step waits for the slowest PE of the array | "
        "decoupled: FIFOs between PEs, an output-stationary step costs the mean count")

    per_group_scales: ClassVar[bool] = False
    no_group_reason: ClassVar[str] = ("TPE's PE (HPCA'25) is an integer MAC whose weights are "
                                      "re-encoded in signed digits; it has no per-group scale path")

    @property
    def peak_macs(self) -> int:
        return 1

    @property
    def average_partial_products(self) -> float:
        if self.partial_products is not None:
            return self.partial_products
        return average_partial_products(self.weight_sigma, bits_of(self.precision))

    def problems(self, weights: str, activations: str, operand: str = "weights") -> list[str]:
        return [f"{p} {what}: this TPE takes integers up to {bits_of(self.precision)} bits"
                for p, what in ((weights, operand), (activations, "activations"))
                if not _int_ok(p, bits_of(self.precision))]

    def steps(self, weights: str, activations: str) -> tuple[int, float]:
        """Cycles a PE is busy per MAC: the mean count (at least 1)."""
        return 1, max(1.0, self.average_partial_products)

    def paced_step_cycles(self, weights: str, activations: str, *, pes: int, stationary: bool) -> float:
        """Cycles per step of ``pes`` PEs (each with its own weight) that advance together
        (class docstring); ``stationary``: each PE keeps one weight for the whole fold."""
        if self.partial_products is not None or (self.sync == "decoupled" and not stationary):
            return self.steps(weights, activations)[1]
        return max(1.0, expected_max_partial_products(self.weight_sigma, pes, bits_of(self.precision)))

    def derived_energy(self, weights, activations, table) -> Sourced:
        # Assumption: a cycle adds one shifted partial product into the accumulator, so it costs an
        # accumulator add; the released RTL has no bit-serial (OPT3/OPT4) PE to take a power from.
        return _named(table.add_pj(accumulator_for(self.precision)),
                      "one partial-product add (assumed: an accumulator add per cycle)")

    def derived_area(self, table) -> Sourced:
        # Assumption: a PE that adds one shifted partial product per cycle is an accumulator adder
        # plus a signed-digit encoder (an adder's worth). The released RTL has no bit-serial
        # (OPT3/OPT4) PE; its synthesized OPT1 PE (1446 um^2, about its MAC PE's 1481 um^2; fhys/High-
        # Performance-Tensor-Processing-Engines@5eb6686 README, SAED32) is a full parallel MAC, an
        # upper bound a preset can set with ``pe.area`` (tpe_csd does).
        return _sum((1, _named(table.adder_um2(accumulator_for(self.precision)), "partial-product adder")),
                    (1, _named(table.adder_um2(self.precision), "digit encoder (an adder's worth)")))
