"""Area model: silicon area of a template's PEs and on-chip buffers, each number with its source.

Contract: ``area_table(name)`` loads a table from ``area_tables.yaml``; every lookup returns a
``Sourced`` value. Precisions missing from a table are scaled from the nearest listed one of the
same family (multiplier area ~ bits^2, adder area ~ bits) and the source says so.
``systolic_area(arch)`` is the breakdown behind ``SystolicArray.area_mm2``:

- PE array: rows x cols x the PE's area (``pe.area_um2``: set in the architecture, or derived by
  its kind from this table: a ``mac`` PE is one multiplier at the PE precision + one adder at the
  accumulator precision; see ``architectures.pe`` for the others), plus per-row edge logic
  (``pe.edge_area_um2``: LUT tables), times the array's ``pe_pnr_factor`` (1 unless set);
- vector unit: lanes x one adder at the PE precision;
- operand SRAMs (ifmap, filter, ofmap): capacity x mm^2 per MiB.

Not counted (listed in ``AreaBreakdown.not_counted``): PE operand and pipeline registers,
control and sequencing, clock tree, on-chip interconnect, the DRAM controller and PHY, and
place-and-route overhead (BitMoD multiplies synthesized PE area by 1.5 for it), so the figure is
a lower bound of a chip's area at the table's technology node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from architectures.energy import Sourced
from workloads.errors import ConfigError, Problem, did_you_mean
from workloads.precision import bits_of, is_float
from workloads.yamlio import parse_yaml

__all__ = ["AreaTable", "AreaBreakdown", "area_table", "area_table_names", "area_table_for",
           "systolic_area", "onchip_sram_bytes", "MIB", "DEFAULT_AREA_TABLE"]

MIB = 2 ** 20
DEFAULT_AREA_TABLE = "horowitz_45nm"
NOT_COUNTED = ("PE operand and pipeline registers", "control and sequencing", "clock tree",
               "on-chip interconnect", "DRAM controller and PHY", "place-and-route overhead")


@dataclass(frozen=True)
class AreaTable:
    name: str
    description: str
    node: str
    multiplier: dict[str, Sourced]  # um^2
    adder: dict[str, Sourced]  # um^2
    sram_mm2_per_mib: Sourced
    cells: dict[str, Sourced] = None  # um^2 per standard cell (dff, mux2), for PEs built of them

    def _scaled(self, table: dict[str, Sourced], precision: str, exponent: float, what: str) -> Sourced:
        if precision in table:
            return table[precision]
        family = [p for p in table if is_float(p) == is_float(precision)] or list(table)
        b = bits_of(precision)
        ref = min(family, key=lambda p: (abs(math.log2(bits_of(p)) - math.log2(b)), p))
        v = table[ref].value * (b / bits_of(ref)) ** exponent
        return Sourced(v, f"derived: {self.name} {what} {ref} x ({b}/{bits_of(ref)})^{exponent:g} "
                          f"[{table[ref].source}]")

    def multiplier_um2(self, precision: str) -> Sourced:
        """Area of one multiplier taking operands at ``precision``."""
        return self._scaled(self.multiplier, precision, 2.0, "multiplier")

    def adder_um2(self, precision: str) -> Sourced:
        """Area of one adder at ``precision``."""
        return self._scaled(self.adder, precision, 1.0, "adder")

    def mac_um2(self, precision: str, accumulator: str) -> Sourced:
        """A MAC PE: a multiplier at ``precision`` and an adder at ``accumulator``."""
        m, a = self.multiplier_um2(precision), self.adder_um2(accumulator)
        return Sourced(m.value + a.value, f"{precision} multiplier [{m.source}] + {accumulator} "
                                          f"adder [{a.source}]")

    def cell_um2(self, cell: str) -> Sourced:
        """Area of one standard cell (``dff``, ``mux2``) at the table's node."""
        cells = self.cells or {}
        if cell not in cells:
            raise ConfigError(Problem(None, "energy_table", f"area table '{self.name}' lists no '{cell}' "
                                      f"cell (cells: {', '.join(cells) or 'none'}); set pe.area instead"))
        return cells[cell]

    def sram_mm2(self, size_bytes: float) -> Sourced:
        """Area of an SRAM of ``size_bytes`` (linear in capacity; unlimited: infinite)."""
        per = self.sram_mm2_per_mib
        return Sourced(size_bytes / MIB * per.value, f"{size_bytes / MIB:g} MiB x {per.value:g} mm^2/MiB "
                                                     f"[{per.source}]")


@lru_cache(maxsize=1)
def _read_tables() -> tuple[dict, str]:
    path = resources.files("architectures") / "area_tables.yaml"
    data, _ = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    return data, str(path)


def area_table_names() -> list[str]:
    return sorted(_read_tables()[0])


@lru_cache(maxsize=None)
def area_table(name: str) -> AreaTable:
    data, _ = _read_tables()
    if name not in data:
        raise ConfigError(Problem(None, "area_table", f"'{name}' is not an area table; available: "
                                  f"{', '.join(sorted(data))}", hint=did_you_mean(name, data)))
    t = data[name]
    return AreaTable(
        name=name, description=t["description"], node=str(t["node"]),
        multiplier={k: Sourced(float(v["um2"]), v["source"]) for k, v in t["multiplier"].items()},
        adder={k: Sourced(float(v["um2"]), v["source"]) for k, v in t["adder"].items()},
        sram_mm2_per_mib=Sourced(float(t["sram"]["mm2_per_mib"]), t["sram"]["source"]),
        cells={k: Sourced(float(v["um2"]), v["source"]) for k, v in (t.get("cells") or {}).items()},
    )


def area_table_for(energy_table_name: str) -> tuple[AreaTable, str]:
    """The area table matching an energy table's name, else the default; and a note on the choice."""
    if energy_table_name in area_table_names():
        return area_table(energy_table_name), f"area table {energy_table_name}"
    return area_table(DEFAULT_AREA_TABLE), (f"no area table named '{energy_table_name}'; "
                                            f"using {DEFAULT_AREA_TABLE}")


@dataclass(frozen=True)
class AreaBreakdown:
    """Area by component in mm^2, with the source of each per-unit number."""

    table: str
    components: dict[str, float]  # pe_array, vector, ifmap_sram, filter_sram, ofmap_sram
    sources: dict[str, str]
    not_counted: tuple[str, ...] = NOT_COUNTED

    @property
    def total_mm2(self) -> float:
        return sum(self.components.values())

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "total_mm2": self.total_mm2, "components_mm2": dict(self.components),
                "sources": dict(self.sources), "not_counted": list(self.not_counted)}


def systolic_area(arch) -> AreaBreakdown:
    """Area of a ``SystolicArray`` (see the module docstring for what is and is not counted)."""
    table, note = area_table_for(arch.energy_table)
    pe = arch.pe.area_um2(table)
    edge = arch.pe.edge_area_um2(table)
    pnr = getattr(arch, "pe_pnr_factor", 1.0)
    vec = table.adder_um2(arch.pe.precision)
    pe_array = arch.rows * arch.cols * pe.value * 1e-6
    if edge.value:
        pe_array += arch.rows * edge.value * 1e-6
    if pnr != 1.0:
        pe_array *= pnr
    components = {"pe_array": pe_array, "vector": arch.vector_lanes * vec.value * 1e-6}
    pe_src = f"{arch.rows}x{arch.cols} {arch.pe.kind} PEs x {pe.value:g} um^2 ({pe.source})"
    if edge.value:
        pe_src += f" + {arch.rows} rows x {edge.value:g} um^2 of edge logic ({edge.source})"
    if pnr != 1.0:
        pe_src += f", x {pnr:g} place-and-route"
    sources = {"table": note, "pe_array": pe_src,
               "vector": f"{arch.vector_lanes} lanes x {vec.value:g} um^2 ({vec.source})"}
    for buf in ("ifmap_sram", "filter_sram", "ofmap_sram"):
        s = table.sram_mm2(getattr(arch.memory, buf).size_bytes)
        components[buf] = s.value
        sources[buf] = s.source
    not_counted = NOT_COUNTED if pnr == 1.0 else tuple(n for n in NOT_COUNTED if "place-and-route" not in n)
    return AreaBreakdown(table.name, components, sources, not_counted)


def onchip_sram_bytes(arch) -> float | None:
    """On-chip SRAM capacity: the template's ``onchip_sram_bytes()`` where it has one (a GPU's
    L2, an RDU's PMUs), else the sum of its memory tiers named ``*_sram`` (systolic buffers)."""
    own = getattr(arch, "onchip_sram_bytes", None)
    if callable(own):
        return float(own())
    memory = getattr(arch, "memory", None)
    if memory is None:
        return None
    sizes = [getattr(memory, name).size_bytes for name in type(memory).model_fields if name.endswith("sram")]
    return float(sum(sizes)) if sizes else None
