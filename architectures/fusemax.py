"""2D matrix unit + 1D vector unit template (``fusemax``), after FuseMax (Nayak et al., MICRO 2024,
arXiv 2406.10491) and its TPUv3-like baseline.

A ``rows`` x ``cols`` 2D array of PEs, a ``pes``-wide 1D array, one global buffer (SRAM) and DRAM.
Cost model of the units (used by ``mappers.attention_plan``), as the FuseMax artifact models them
(Timeloop with post-processing, FPSG-UIUC/micro24-fusemax-artifact ``src/accel/*.py``):

=========  =================================================================================
2D array   an Einsum whose two spatial ranks are mapped on the rows and columns takes, per
           ``rows x cols`` tile of those ranks, one cycle per element of its temporal ranks per
           operation of the Einsum: ``ceil(A / rows) * ceil(B / cols) * T * ops`` cycles. The
           skew of a systolic fold is hidden: consecutive tiles are pipelined (the artifact's
           Timeloop model has no fill or drain)
1D array   ``pes`` PEs, one operation per PE per cycle: ``ceil(elements / pes) * ops`` cycles
buffer     ``memory.global_sram``: capacity and energy per byte read / written
DRAM       ``memory.dram``: bandwidth and energy per byte
=========  =================================================================================

Operation energies (``energy.*``) are per operation of a PE: a MAC, an add, a max (compare), an
exponential on the 1D array's exponential unit, a divide. FuseMax computes ``exp`` on the 2D
array as 6 MACs and 1 add (a polynomial), which the mapper charges as such.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from architectures.base import Architecture, MemoryTier, register_template
from architectures.energy import Sourced, energy_table
from workloads.precision import Precision, bits_of
from workloads.schema import Schema, quantity

__all__ = ["Array2D", "Array1D", "ArrayPE", "FuseMaxMemory", "OpEnergies", "FuseMax", "FuseMaxEnergyModel"]


class Array2D(Schema):
    """The 2D PE array (the matrix unit)."""

    rows: int = Field(gt=0, description="PE rows")
    cols: int = Field(gt=0, description="PE columns")


class Array1D(Schema):
    """The 1D PE array (the vector unit)."""

    pes: int = Field(gt=0, description="PEs, one operation each per cycle")


class FuseMaxMemory(Schema):
    """The global buffer and DRAM."""

    global_sram: MemoryTier = Field(description="global buffer shared by both arrays")
    dram: MemoryTier = Field(MemoryTier(), description="off-chip memory")


class OpEnergies(Schema):
    """Energy per PE operation; unset: from the energy table at the operand precision."""

    mac_pj: quantity("energy", "one multiply-accumulate (2D or 1D PE)", alias="mac", ge=0, default=None)
    add_pj: quantity("energy", "one add", alias="add", ge=0, default=None)
    max_pj: quantity("energy", "one max (compare and select); unset: an add", alias="max", ge=0,
                     default=None)
    exp_pj: quantity("energy", "one exponential on the 1D array's exponential unit; unset: 6 MACs "
                     "and 1 add (FuseMax's polynomial)", alias="exp", ge=0, default=None)
    divide_pj: quantity("energy", "one divide; unset: a MAC (a lower bound)", alias="divide", ge=0,
                        default=None)


@dataclass(frozen=True)
class FuseMaxEnergyModel:
    """Energies resolved for one architecture, each with its source."""

    mac_pj: Sourced
    vector_op_pj: Sourced  # an add
    max_pj: Sourced
    exp_pj: Sourced
    divide_pj: Sourced
    sram_read_pj_per_byte: dict[str, Sourced]  # {"global": ...}
    sram_write_pj_per_byte: dict[str, Sourced]
    offchip_read_pj_per_byte: dict[str, Sourced]  # {"dram": ...}
    offchip_write_pj_per_byte: dict[str, Sourced]

    @property
    def dram_read_pj_per_byte(self) -> Sourced:
        return self.offchip_read_pj_per_byte["dram"]


@dataclass(frozen=True)
class ArrayPE:
    """The PE both arrays share, as workloads see it: its operand precision."""

    precision: str

    def supports(self, precision: str) -> bool:
        """Operands stored at most as wide as the PE's operands (16 bits)."""
        return bits_of(precision) <= bits_of(self.precision)


@register_template("fusemax")
class FuseMax(Architecture):
    """A 2D matrix array and a 1D vector array sharing a global buffer (FuseMax-like)."""

    array2d: Array2D = Field(description="the 2D (matrix) PE array")
    array1d: Array1D = Field(description="the 1D (vector) PE array")
    precision: Precision = Field("int16", description="operand precision of both arrays (bytes per "
                                 "element of every tensor the mapper stores)")
    memory: FuseMaxMemory = Field(description="global buffer and DRAM")
    energy: OpEnergies = Field(OpEnergies(), description="energy per PE operation")

    @property
    def pe(self) -> ArrayPE:
        return ArrayPE(self.precision)

    @property
    def pes(self) -> int:
        return self.array2d.rows * self.array2d.cols

    @property
    def peak_macs_per_cycle(self) -> int:
        return self.pes

    @property
    def peak_macs_per_s(self) -> float:
        return self.pes * self.freq_hz

    def roofline(self) -> tuple[float, float]:
        """(peak MAC/s of the 2D array, DRAM bytes/s)."""
        return self.peak_macs_per_s, self.memory.dram.bandwidth_bytes_per_s

    def offchip_tiers(self) -> dict[str, MemoryTier]:
        return {"dram": self.memory.dram}

    def scratchpad_bytes(self) -> int:
        """Buffer room for tensors kept between operators: half the global buffer (the other half
        streams the running operator's operands)."""
        return int(self.memory.global_sram.size_bytes // 2)

    def energy_model(self) -> FuseMaxEnergyModel:
        table = energy_table(self.energy_table)
        e, p = self.energy, self.precision

        def given(value, name: str, fallback: Sourced) -> Sourced:
            return Sourced(value, f"set in the architecture (energy.{name})") if value is not None else fallback

        mac = given(e.mac_pj, "mac", table.mac_pj(p))
        add = given(e.add_pj, "add", table.add_pj(p))
        mx = given(e.max_pj, "max", Sourced(add.value, f"taken equal to an add [{add.source}]"))
        exp = given(e.exp_pj, "exp", Sourced(6 * mac.value + add.value,
                                             "derived: 6 MACs + 1 add (FuseMax's exponential, arXiv 2406.10491)"))
        div = given(e.divide_pj, "divide", Sourced(mac.value, f"taken equal to a MAC (lower bound) [{mac.source}]"))
        buf = self.memory.global_sram

        def tier(t: MemoryTier, write: bool, fallback: Sourced) -> Sourced:
            if write and t.write_energy_pj_per_byte is not None:
                return Sourced(t.write_energy_pj_per_byte, "set in the architecture (write_energy)")
            if t.energy_pj_per_byte is not None:
                return Sourced(t.energy_pj_per_byte, "set in the architecture (energy)")
            return fallback

        sram_r = tier(buf, False, table.sram_pj_per_byte(buf.size_bytes))
        sram_w = tier(buf, True, table.sram_pj_per_byte(buf.size_bytes, write=True))
        dram_r = tier(self.memory.dram, False, table.dram_pj_per_byte())
        dram_w = tier(self.memory.dram, True, dram_r)
        return FuseMaxEnergyModel(mac, add, mx, exp, div, {"global": sram_r}, {"global": sram_w},
                                  {"dram": dram_r}, {"dram": dram_w})
