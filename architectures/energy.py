"""Energy tables (with sources) and the per-access energy model an architecture derives from them.

Contract: ``energy_table(name)`` loads a table from ``energy_tables.yaml``; every lookup returns
a ``Sourced`` value (number plus where it came from). Precisions missing from a table are
scaled from the nearest listed one of the same family (multiplier ~ bits^2, adder ~ bits) and
the returned source says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from architectures.units import parse_quantity
from workloads.errors import ConfigError, Problem, did_you_mean
from workloads.precision import bits_of, is_float
from workloads.yamlio import parse_yaml

__all__ = ["Sourced", "EnergyTable", "energy_table", "energy_table_names"]


@dataclass(frozen=True)
class Sourced:
    value: float
    source: str


@dataclass(frozen=True)
class EnergyTable:
    name: str
    description: str
    mac: dict[str, Sourced]
    add: dict[str, Sourced]
    sram: tuple[tuple[float, float, float, str], ...]  # (size bytes, read pJ/64b, write pJ/64b, source)
    dram_pj_per_bit: Sourced

    def _scaled(self, table: dict[str, Sourced], precision: str, exponent: float, what: str) -> Sourced:
        if precision in table:
            return table[precision]
        family = [p for p in table if is_float(p) == is_float(precision)] or list(table)
        b = bits_of(precision)
        ref = min(family, key=lambda p: (abs(math.log2(bits_of(p)) - math.log2(b)), p))
        v = table[ref].value * (b / bits_of(ref)) ** exponent
        return Sourced(v, f"derived: {self.name} {what} {ref} x ({b}/{bits_of(ref)})^{exponent:g} "
                          f"[{table[ref].source}]")

    def mac_pj(self, precision: str) -> Sourced:
        """Energy of one multiply-accumulate at ``precision``."""
        return self._scaled(self.mac, precision, 2.0, "mac")

    def add_pj(self, precision: str) -> Sourced:
        """Energy of one vector operation (add, compare) at ``precision``."""
        return self._scaled(self.add, precision, 1.0, "add")

    def sram_pj_per_byte(self, size_bytes: float, write: bool = False) -> Sourced:
        """Read (or write) energy per byte of an SRAM of ``size_bytes``."""
        pts = self.sram
        col = 2 if write else 1
        if len(pts) == 1 or size_bytes <= pts[0][0]:
            s = pts[0]
            return Sourced(s[col] / 8, s[3] + (" (clamped: smaller buffer)" if size_bytes < s[0] and len(pts) > 1 else ""))
        if size_bytes >= pts[-1][0]:
            s = pts[-1]
            return Sourced(s[col] / 8, s[3] + " (clamped: larger buffers are banks of this size)"
                           if size_bytes > s[0] else s[3])
        for lo, hi in zip(pts, pts[1:]):
            if lo[0] <= size_bytes <= hi[0]:
                t = (math.log(size_bytes) - math.log(lo[0])) / (math.log(hi[0]) - math.log(lo[0]))
                v = math.exp(math.log(lo[col]) + t * (math.log(hi[col]) - math.log(lo[col])))
                return Sourced(v / 8, f"log-log interpolation between [{lo[3]}] and [{hi[3]}]")
        raise AssertionError("unreachable")

    def dram_pj_per_byte(self) -> Sourced:
        return Sourced(self.dram_pj_per_bit.value * 8, self.dram_pj_per_bit.source)


def _read_tables() -> tuple[dict, str]:
    path = resources.files("architectures") / "energy_tables.yaml"
    data, _ = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    return data, str(path)


def energy_table_names() -> list[str]:
    return sorted(_read_tables()[0])


@lru_cache(maxsize=None)
def energy_table(name: str) -> EnergyTable:
    data, path = _read_tables()
    if name not in data:
        raise ConfigError(Problem(None, "architecture.energy_table", f"'{name}' is not an energy table; "
                                  f"available: {', '.join(sorted(data))}", hint=did_you_mean(name, data)))
    t = data[name]
    sram = []
    for row in t["sram"]:
        size = parse_quantity(row["size"], "size")
        sram.append((size, float(row["pj_per_64bit"]), float(row.get("write_pj_per_64bit", row["pj_per_64bit"])),
                     row["source"]))
    sram.sort()
    return EnergyTable(
        name=name,
        description=t["description"],
        mac={k: Sourced(float(v["pj"]), v["source"]) for k, v in t["mac"].items()},
        add={k: Sourced(float(v["pj"]), v["source"]) for k, v in t["add"].items()},
        sram=tuple(sram),
        dram_pj_per_bit=Sourced(float(t["dram"]["pj_per_bit"]), t["dram"]["source"]),
    )
