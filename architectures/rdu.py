"""Dataflow RDU template (``rdu``): a grid of compute units and memory units, SambaNova SN40L-like.

A socket is ``pcus`` pattern compute units (PCUs) and ``pmus`` pattern memory units (PMUs) on an
on-chip mesh, with HBM and DDR behind it; ``node.sockets`` sockets make a node whose DDR->HBM
copy path has its own bandwidth (what composition-of-experts model switching uses).

Cost model of the units (used by ``mappers.rdu_pipeline``):

==============  ==========================================================================
PCU, systolic   a ``stages`` x ``lanes`` systolic array (rows x columns): a GEMM folds onto it
                with SCALE-Sim's fold model (``architectures.systolic.fold_plan``), the
                dataflow (os/ws/is) chosen per operator; F folds on k PCUs take
                ``ceil(F / k) * cycles_per_fold``
PCU, SIMD       ``stages`` pipeline stages of ``lanes`` lanes, one element operation per lane
                per stage per cycle: v element operations on k PCUs take
                ``ceil(v / (k * lanes * stages))`` cycles (an operator chain shorter than the
                pipeline leaves stages idle; this is not charged)
PMU             ``pmu.size_bytes`` of scratchpad; ``pmu.bandwidth_bytes_per_cycle`` read plus
                write per cycle: b bytes through m PMUs take ``ceil(b / (m * bw))`` cycles
network         every PCU has one link of ``network.link_bytes_per_cycle`` to the mesh: a stage
                moving b bytes between stages on k PCUs takes ``ceil(b / (k * link))`` cycles
HBM, DDR        per socket: capacity, bandwidth, latency, energy (``MemoryTier``)
kernel call     ``kernel_call_s`` fixed cost per kernel call (configuration load and the
                synchronization at a kernel boundary); 0 unless set
==============  ==========================================================================

Peak: ``pcus * stages * lanes`` MACs per cycle (``peak_macs_per_s``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field, model_validator

from architectures.base import Architecture, MemoryTier, register_template
from architectures.energy import Sourced, energy_table
from workloads.precision import Precision, bits_of
from workloads.schema import FieldProblems, Schema, quantity

__all__ = ["PCU", "PMU", "MeshNetwork", "RDUMemory", "RDUNode", "RDU", "RDUEnergyModel"]


class PCU(Schema):
    """A pattern compute unit: a systolic array / SIMD pipeline of ``stages`` x ``lanes``."""

    lanes: int = Field(gt=0, description="SIMD lanes (systolic mode: array columns)")
    stages: int = Field(gt=0, description="pipeline stages (systolic mode: array rows)")
    precision: Precision = Field("bf16", description="operand precision of the multipliers")
    energy_pj_per_mac: quantity("energy", "energy per MAC; unset: from the energy table",
                                alias="energy_per_mac", ge=0, default=None)
    energy_pj_per_op: quantity("energy", "energy per SIMD element operation; unset: an add at the "
                               "PCU precision from the energy table", alias="energy_per_op", ge=0,
                               default=None)

    @property
    def macs_per_cycle(self) -> int:
        return self.lanes * self.stages

    def supports(self, precision: str) -> bool:
        """Whether operands stored at ``precision`` run on the PCU: floating point up to fp32 and
        integers up to int32 (the SN40L PCU computes bf16, fp32, int32 and int8; narrower storage
        types are converted on load)."""
        return bits_of(precision) <= 32


class PMU(Schema):
    """A pattern memory unit: a banked, programmer-managed scratchpad."""

    size_bytes: quantity("size", "scratchpad capacity of one PMU", alias="size", integer=True, gt=0)
    bandwidth_bytes_per_cycle: float = Field(gt=0, description="bytes read plus written per cycle "
                                             "by one PMU")
    energy_pj_per_byte: quantity("energy_per_byte", "energy per byte read or written; unset: from "
                                 "the energy table by PMU size", alias="energy", ge=0, default=None)


class MeshNetwork(Schema):
    """The on-chip mesh that carries data between units."""

    link_bytes_per_cycle: float = Field(gt=0, description="bytes per cycle of one unit's link to "
                                        "the mesh")


class RDUMemory(Schema):
    """Off-chip tiers of one socket: HBM (fastest) and an optional DDR capacity tier."""

    hbm: MemoryTier = Field(description="high-bandwidth memory on the package")
    ddr: MemoryTier | None = Field(None, description="direct-attached DDR (capacity tier)")


class RDUNode(Schema):
    """Several sockets that share a node: what model switching (CoE) sees."""

    sockets: int = Field(1, ge=1, description="sockets per node")
    ddr_to_hbm_bandwidth_bytes_per_s: quantity(
        "bandwidth", "aggregate DDR->HBM copy bandwidth of the node (unset: sockets x the DDR "
        "bandwidth)", alias="ddr_to_hbm_bandwidth", gt=0, default=None)


@dataclass(frozen=True)
class RDUEnergyModel:
    """Per-operation and per-byte energies, each with its source (the shape ``tessera show``
    prints: MAC, vector op, on-chip SRAM per buffer, off-chip per tier)."""

    mac_pj: Sourced
    vector_op_pj: Sourced
    sram_read_pj_per_byte: dict[str, Sourced]  # {"pmu": ...}
    sram_write_pj_per_byte: dict[str, Sourced]
    offchip_read_pj_per_byte: dict[str, Sourced]  # by off-chip tier: hbm, ddr
    offchip_write_pj_per_byte: dict[str, Sourced]

    @property
    def dram_read_pj_per_byte(self) -> Sourced:
        return next(iter(self.offchip_read_pj_per_byte.values()))


@register_template("rdu")
class RDU(Architecture):
    """A reconfigurable dataflow unit: PCUs and PMUs on a mesh, HBM and DDR behind it."""

    pcus: int = Field(gt=0, description="pattern compute units per socket")
    pcu: PCU = Field(description="one compute unit")
    pmus: int = Field(gt=0, description="pattern memory units per socket")
    pmu: PMU = Field(description="one memory unit")
    network: MeshNetwork = Field(description="the on-chip mesh")
    memory: RDUMemory = Field(description="off-chip memory of one socket")
    node: RDUNode = Field(RDUNode(), description="sockets per node and the node's DDR->HBM path")
    kernel_call_s: quantity("time", "fixed cost of one kernel call (configuration load, "
                            "synchronization at the kernel boundary)", alias="kernel_call", ge=0,
                            default=0.0)

    @model_validator(mode="after")
    def _pmus_hold_a_vector(self) -> "RDU":
        elem = max(1, bits_of(self.pcu.precision) // 8)
        if self.pmu.size_bytes < 2 * self.pcu.lanes * elem:
            raise FieldProblems([("pmu.size_bytes", f"{self.pmu.size_bytes} B cannot double-buffer one "
                                  f"{self.pcu.lanes}-lane vector ({2 * self.pcu.lanes * elem} B)")])
        return self

    # ---- derived ------------------------------------------------------------------------------
    @property
    def pe(self) -> PCU:
        """The compute unit (workloads take its precision as their default)."""
        return self.pcu

    @property
    def pes(self) -> int:
        """MAC units of the socket (every PCU's stages x lanes)."""
        return self.pcus * self.pcu.macs_per_cycle

    @property
    def peak_macs_per_cycle(self) -> int:
        return self.pes

    @property
    def peak_macs_per_s(self) -> float:
        return self.pes * self.freq_hz

    @property
    def vector_ops_per_cycle(self) -> int:
        return self.pes

    @property
    def pmu_capacity_bytes(self) -> int:
        """On-chip scratchpad of the socket: every PMU's capacity."""
        return self.pmus * self.pmu.size_bytes

    @property
    def kernel_call_cycles(self) -> int:
        return int(round(self.kernel_call_s * self.freq_hz))

    def onchip_sram_bytes(self) -> float:
        """On-chip SRAM the design-space metrics count (``sram_bytes``): every PMU."""
        return float(self.pmus * self.pmu.size_bytes)

    @property
    def node_devices(self) -> int:
        return self.node.sockets

    @property
    def node_hbm_bytes(self) -> float:
        return self.node.sockets * self.memory.hbm.size_bytes

    @property
    def node_ddr_bytes(self) -> float:
        return self.node.sockets * self.memory.ddr.size_bytes if self.memory.ddr is not None else 0.0

    @property
    def node_ddr_to_hbm_bytes_per_s(self) -> float:
        if self.node.ddr_to_hbm_bandwidth_bytes_per_s is not None:
            return self.node.ddr_to_hbm_bandwidth_bytes_per_s
        if self.memory.ddr is None:
            return 0.0
        return self.node.sockets * self.memory.ddr.bandwidth_bytes_per_s

    def roofline(self) -> tuple[float, float]:
        """(peak MAC/s, HBM bytes/s) for roofline plots."""
        return self.peak_macs_per_s, self.memory.hbm.bandwidth_bytes_per_s

    def offchip_tiers(self) -> dict[str, MemoryTier]:
        """Off-chip tiers, fastest first: ``hbm`` and, if present, ``ddr``."""
        tiers = {"hbm": self.memory.hbm}
        if self.memory.ddr is not None:
            tiers["ddr"] = self.memory.ddr
        return tiers

    def scratchpad_bytes(self) -> int:
        """On-chip capacity for tensors: all PMUs."""
        return self.pmu_capacity_bytes

    def energy_model(self) -> RDUEnergyModel:
        table = energy_table(self.energy_table)
        p = self.pcu.precision
        mac = (Sourced(self.pcu.energy_pj_per_mac, "set in the architecture (pcu.energy_pj_per_mac)")
               if self.pcu.energy_pj_per_mac is not None else table.mac_pj(p))
        vec = (Sourced(self.pcu.energy_pj_per_op, "set in the architecture (pcu.energy_pj_per_op)")
               if self.pcu.energy_pj_per_op is not None else table.add_pj(p))
        if self.pmu.energy_pj_per_byte is not None:
            pmu_r = pmu_w = Sourced(self.pmu.energy_pj_per_byte, "set in the architecture (pmu.energy)")
        else:
            pmu_r = table.sram_pj_per_byte(self.pmu.size_bytes)
            pmu_w = table.sram_pj_per_byte(self.pmu.size_bytes, write=True)
        off_r, off_w = {}, {}
        for name, tier in self.offchip_tiers().items():
            dram = table.dram_pj_per_byte()
            off_r[name] = (Sourced(tier.energy_pj_per_byte, "set in the architecture (energy)")
                           if tier.energy_pj_per_byte is not None else dram)
            off_w[name] = (Sourced(tier.write_energy_pj_per_byte, "set in the architecture (write_energy)")
                           if tier.write_energy_pj_per_byte is not None else off_r[name])
        return RDUEnergyModel(mac, vec, {"pmu": pmu_r}, {"pmu": pmu_w}, off_r, off_w)
