"""Physical quantities written as strings in YAML: ``"24 MiB"``, ``"34 GB/s"``, ``"700 MHz"``.

Contract: ``parse_quantity(text, kind)`` returns a float in the kind's base unit (bytes,
bytes/s, Hz, s, pJ, pJ/byte, mm^2, W) or raises ``UnitError`` whose message says what was
expected and, where the mistake is a common one, what to write instead. Plain numbers are taken
to be in the base unit already. Parsing is done by pint; results are cached, so sweeps that
re-validate the same strings pay for each string once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["UnitError", "QuantityKind", "KINDS", "parse_quantity", "format_quantity"]


class UnitError(ValueError):
    """A quantity string that cannot be read as the expected kind."""


@dataclass(frozen=True)
class QuantityKind:
    name: str  # "size", "bandwidth", ...
    base_unit: str  # pint unit the float is returned in
    example: str  # shown in error messages


KINDS: dict[str, QuantityKind] = {
    k.name: k
    for k in (
        QuantityKind("size", "byte", "'24 MiB'"),
        QuantityKind("bandwidth", "byte / second", "'34 GB/s'"),
        QuantityKind("frequency", "hertz", "'700 MHz'"),
        QuantityKind("time", "second", "'100 ns'"),
        QuantityKind("energy", "picojoule", "'0.2 pJ'"),
        QuantityKind("energy_per_byte", "picojoule / byte", "'8 pJ/bit' or '64 pJ/B'"),
        QuantityKind("area", "millimeter ** 2", "'0.5 mm^2'"),
        QuantityKind("power", "watt", "'75 W'"),
    )
}

_registry = None


def _ureg():
    global _registry
    if _registry is None:
        import pint

        reg = pint.UnitRegistry()
        # Engineers write "bit" as b and bandwidths as bps; pint reads "b" as barn.
        reg.define("bps = bit / second")
        _registry = reg
    return _registry


_SPLIT = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(\S.*)$")
_NUMBER = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")


def _article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun.replace("_", " ")


def _describe(q, has_info: bool) -> str:
    dim = str(q.dimensionality)
    if has_info:
        return "a bandwidth" if ("second" in str(q.units) or "bps" in str(q.units)) else "a size"
    return {
        "1 / [time]": "a frequency",
        "[time]": "a time",
        "[length] ** 2": "an area",
        "[mass] * [length] ** 2 / [time] ** 2": "an energy",
        "[mass] * [length] ** 2 / [time] ** 3": "a power",
        "dimensionless": "a plain number",
    }.get(dim, f"a quantity of dimension {dim}")


def _hint(text: str, kind: QuantityKind, found_dim: str | None) -> str:
    compact = text.replace(" ", "")
    if re.search(r"\dKB\b|\dKB/", compact) or compact.endswith("KB"):
        return " (write 'kB' for 1000 bytes or 'KiB' for 1024)"
    if re.search(r"[kKMGTP]b(/s)?$", compact):
        return " ('b' is not bit here: write 'bit', e.g. '64 Gbit/s', or 'B' for bytes)"
    if kind.name == "bandwidth" and found_dim == "a size":
        m = _SPLIT.match(text)
        return f" (write '{m.group(1)} {m.group(2).strip()}/s')" if m else ""
    return ""


def parse_quantity(text: str | float | int, kind: str) -> float:
    """Read ``text`` as a quantity of ``kind`` (a key of ``KINDS``) in its base unit."""
    if not isinstance(text, (str, int, float)):
        raise UnitError(f"expected {_article(KINDS[kind].name)} like {KINDS[kind].example}, "
                        f"found {type(text).__name__} {text!r}")
    return _parse_cached(text, kind)


@lru_cache(maxsize=4096)
def _parse_cached(text: str | float | int, kind: str) -> float:
    qk = KINDS[kind]
    if isinstance(text, bool):
        raise UnitError(f"expected a {qk.name} like {qk.example}, found {text!r}")
    if isinstance(text, (int, float)):
        value = float(text)
    elif isinstance(text, str) and _NUMBER.match(text):
        value = float(text)
    elif isinstance(text, str):
        import pint

        ureg = _ureg()
        m = _SPLIT.match(text)
        try:
            if not m:
                raise ValueError(text)
            unit_text = re.sub(r"([a-zA-Z])([23])\b", r"\1^\2", m.group(2).strip())
            q = float(m.group(1)) * ureg.Unit(unit_text)
        except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError, AttributeError,
                TypeError, ValueError, SyntaxError) as exc:
            raise UnitError(
                f"cannot read {text!r} as {_article(qk.name)}; expected something like {qk.example}"
                + _hint(text, qk, None)
            ) from exc
        names = str(q.units)
        has_info = any(u in names for u in ("byte", "bit", "bps"))
        value = None
        if has_info == ("byte" in qk.base_unit):
            try:
                value = float(q.to(qk.base_unit).magnitude)
            except pint.errors.DimensionalityError:
                value = None
        if value is None:
            found = _describe(q, has_info)
            raise UnitError(
                f"{text!r} is {found}, not {_article(qk.name)}; expected something like "
                f"{qk.example}" + _hint(text, qk, found)
            )
    else:
        raise UnitError(f"expected a {qk.name} like {qk.example}, found {type(text).__name__} {text!r}")
    if math.isnan(value):
        raise UnitError(f"expected a {qk.name} like {qk.example}, found NaN")
    return value


_PREFIXES = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, "")]
_BIN = [(2**40, "Ti"), (2**30, "Gi"), (2**20, "Mi"), (2**10, "Ki")]


def format_quantity(value: float, kind: str) -> str:
    """A human-readable string for ``value`` in ``kind``'s base unit (inverse of parsing)."""
    if value is None:
        return "-"
    if math.isinf(value):
        return "unlimited"
    if kind == "size":
        for scale, p in _BIN:
            if value >= scale and value % scale == 0:
                return f"{int(value // scale)} {p}B"
        for scale, p in _BIN:  # not a whole number of units: keep enough digits to read back
            if value >= scale and (value * 1024) % scale == 0:
                return f"{value / scale:.10g} {p}B"
        return f"{int(value) if float(value).is_integer() else value} B"
    unit = {"bandwidth": "B/s", "frequency": "Hz", "power": "W"}.get(kind)
    if unit:
        for scale, p in _PREFIXES:
            if abs(value) >= scale:
                return f"{value / scale:.4g} {p}{unit}"
        return f"{value:.4g} {unit}"
    if kind == "time":
        for scale, p in [(1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns"), (1e-12, "ps")]:
            if abs(value) >= scale:
                return f"{value / scale:.4g} {p}"
        return f"{value:.4g} s"
    suffix = {"energy": "pJ", "energy_per_byte": "pJ/B", "area": "mm^2"}[kind]
    return f"{value:.4g} {suffix}"
