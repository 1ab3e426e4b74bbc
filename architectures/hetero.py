"""Heterogeneous device ``gpu_pim``: a GPU-like xPU whose HBM stacks carry PIM (Duplex-style).

Contract: ``GpuPim`` is the ``gpu`` template (its fields, kernel-time model and energy model are
the xPU's) plus a ``pim:`` section (``architectures.pim.PimSpec``) describing processing in
memory in every HBM stack of the same HBM. Which operator runs where is the mapper's choice (the
``place_pim`` pass, by arithmetic intensity); the planner (``mappers.hetero_plan``) costs xPU
operators with the GPU model and PIM operators with the PIM model, and the lowering gives the
two their own units and, per ``pim.sharing``, their own or one shared bank channel.

Duplex (Yun et al., MICRO 2024, arXiv 2409.01141) is an H100-class xPU with Logic-PIM on the
logic die of its five HBM3 stacks (preset ``h100_logic_pim``); its baselines put bank-level PIM
(``h100_bank_pim``) or bank-group PIM (``h100_bankgroup_pim``) in the same stacks.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from architectures.base import register_template
from architectures.gpu import GPU
from architectures.pim import PimSpec
from workloads.schema import FieldProblems

__all__ = ["GpuPim"]


@register_template("gpu_pim")
class GpuPim(GPU):
    """A GPU-like xPU and PIM in the stacks of its HBM, sharing the banks (Duplex-style device)."""

    pim: PimSpec = Field(description="PIM in every HBM stack: kind, internal bandwidth, MAC rate, "
                         "energy per bit, how it shares the banks with the xPU")

    @model_validator(mode="after")
    def _pim_fits_its_banks(self) -> "GpuPim":
        problems = self.pim.check_against_hbm(self.memory.hbm.bandwidth_bytes_per_s)
        if problems:
            raise FieldProblems([(f"pim.{key}", message) for key, message in problems])
        return self

    @property
    def pim_macs_per_s(self) -> float:
        return self.pim.macs_per_s()

    @property
    def pim_vector_ops_per_s(self) -> float:
        return self.pim.vector_ops_per_s()

    @property
    def pim_bandwidth_bytes_per_s(self) -> float:
        """Sustained bandwidth of PIM's bank reads, all stacks."""
        return self.pim.bandwidth_bytes_per_s(self.kernel.hbm_efficiency)

    def pim_roofline(self) -> tuple[float, float]:
        """(peak PIM MAC/s, peak PIM bytes/s) of the whole device."""
        return self.pim_macs_per_s, self.pim.stacks * self.pim.internal_bandwidth_bytes_per_s

    @property
    def area_mm2(self) -> float | None:
        """The xPU die plus the PIM logic in the stacks (None unless both are given)."""
        if self.die_area_mm2 is None or self.pim.area_mm2_per_stack is None:
            return None
        return self.die_area_mm2 + self.pim.stacks * self.pim.area_mm2_per_stack
