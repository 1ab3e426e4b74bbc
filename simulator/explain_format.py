"""Number formatting shared by ``simulator.explain`` and its helpers (``explain_units``,
``explain_memory``): SI prefixes, binary byte sizes, percentages that tell small ones apart,
rates and durations. Contract: each function returns a short string for one number."""

from __future__ import annotations

import math

__all__ = ["_num", "_bytes", "_pct", "_rate", "_seconds"]


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    if math.isinf(x):
        return "inf"
    for scale, p in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {p}"
    return f"{x:.3g}"


def _bytes(x: float) -> str:
    for scale, p in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {p}"
    return f"{x:.3g} B"


def _pct(x: float) -> str:
    """A fraction as a percentage with enough digits to tell small ones apart."""
    p = 100 * x
    return f"{p:.0f}%" if p >= 10 or p == 0 else f"{p:.2g}%"


def _rate(x: float) -> str:
    n = _num(x)
    return f"{n}B/s" if n[-1].isalpha() else f"{n} B/s"


def _seconds(s: float) -> str:
    for scale, unit in ((1, "s"), (1e-3, "ms"), (1e-6, "us")):
        if s >= scale:
            return f"{s / scale:.4g} {unit}"
    return f"{s * 1e9:.4g} ns"
