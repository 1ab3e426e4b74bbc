"""Heterogeneous devices: an xPU and PIM in the stacks of its own HBM, sharing the banks.

Contract: a template with PIM is an xPU template (its fields, cost and energy models are the
xPU's) plus a ``pim:`` section (``architectures.pim.PimSpec``) describing processing in memory in
every stack of the xPU's HBM. Two are registered:

- ``gpu_pim``: the ``gpu`` template (a GPU-like xPU: tensor cores, L2, kernel launches) with PIM;
- ``systolic_pim``: the ``systolic_array`` template (a systolic xPU: SCALE-Sim's fold model,
  operand SRAMs, its ``memory.dram`` the HBM) with PIM.

Which operator runs where is the mapper's choice (the ``place_pim`` pass, by arithmetic
intensity); the planner (``mappers.hetero_plan``) costs xPU operators with the xPU's own model
and PIM operators with the PIM model, and the lowering gives the two their own units and, per
``pim.sharing``, their own or one shared bank channel. Both templates give the mapper the same
view of the device (``PimDevice``): the PIM rates, and the xPU's off-chip bandwidth, vector rate
and matrix rate for an operand pair, the channel PIM shares under ``time_share``, the launch
cost of a PIM operator, and the energy of PIM's MACs and vector operations.

Duplex (Yun et al., MICRO 2024, arXiv 2409.01141) is an H100-class xPU with Logic-PIM on the
logic die of its five HBM3 stacks (preset ``h100_logic_pim``); its baselines put bank-level PIM
(``h100_bank_pim``) or bank-group PIM (``h100_bankgroup_pim``) in the same stacks.
``tpu_v4_like_logic_pim`` is the same Logic-PIM design in the HBM of a TPU v4-like systolic
xPU (an illustration: its PIM numbers are Duplex's scaled to that HBM, see the preset).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from architectures.base import register_template
from architectures.energy import Sourced, energy_table
from architectures.gpu import GPU
from architectures.pim import PimSpec
from architectures.systolic import SystolicArray
from workloads.precision import bits_of, is_float
from workloads.schema import FieldProblems

__all__ = ["GpuPim", "SystolicPim", "PimDevice"]

_PIM_FIELD = dict(description="PIM in every HBM stack: kind, internal bandwidth, MAC rate, energy per "
                  "bit, how it shares the banks with the xPU")


class PimDevice:
    """What the mapper reads from a device with PIM (see the module docstring). A mixin: the
    template supplies ``pim``, ``freq_hz``, ``energy_table`` and the ``xpu_*`` hooks."""

    pim: PimSpec

    # -- PIM ---------------------------------------------------------------------------------------
    @property
    def pim_macs_per_s(self) -> float:
        return self.pim.macs_per_s()

    @property
    def pim_vector_ops_per_s(self) -> float:
        return self.pim.vector_ops_per_s()

    @property
    def pim_bandwidth_bytes_per_s(self) -> float:
        """Sustained bandwidth of PIM's bank reads, all stacks."""
        return self.pim.bandwidth_bytes_per_s(self.pim_default_efficiency)

    def pim_roofline(self) -> tuple[float, float]:
        """(peak PIM MAC/s of the whole device, peak PIM bytes/s)."""
        return self.pim_macs_per_s, self.pim.stacks * self.pim.internal_bandwidth_bytes_per_s

    def pim_mac_pj(self, precision: str) -> Sourced:
        """Energy of one PIM MAC at ``precision`` (the device's energy table)."""
        return energy_table(self.energy_table).mac_pj(precision)

    def pim_vector_pj(self, precision: str) -> Sourced:
        return energy_table(self.energy_table).add_pj(precision)

    def _pim_problems(self, hbm_bandwidth_bytes_per_s: float) -> None:
        problems = self.pim.check_against_hbm(hbm_bandwidth_bytes_per_s)
        if problems:
            raise FieldProblems([(f"pim.{key}", message) for key, message in problems])


@register_template("gpu_pim")
class GpuPim(PimDevice, GPU):
    """A GPU-like xPU and PIM in the stacks of its HBM, sharing the banks (Duplex-style device)."""

    pim: PimSpec = Field(**_PIM_FIELD)

    @model_validator(mode="after")
    def _pim_fits_its_banks(self) -> "GpuPim":
        self._pim_problems(self.memory.hbm.bandwidth_bytes_per_s)
        return self

    # -- the xPU, as the mapper sees it -------------------------------------------------------------
    xpu_channel: ClassVar[str] = "hbm"  # the channel of the xPU's HBM traffic (mappers.gpu_plan)

    @property
    def pim_default_efficiency(self) -> float:
        """PIM's sustained fraction of its bandwidth when ``pim.bandwidth_efficiency`` is unset:
        the xPU's sustained HBM fraction (the same DRAM timing)."""
        return self.kernel.hbm_efficiency

    @property
    def pim_launch_s(self) -> float:
        """The xPU launches a PIM operator like a kernel."""
        return self.kernel.launch_overhead_s

    @property
    def xpu_bandwidth_bytes_per_s(self) -> float:
        return self.hbm_sustained_bytes_per_s

    @property
    def xpu_vector_ops_per_s(self) -> float:
        return self.vector_ops_per_s

    def xpu_matrix_rate(self, a: str, b: str) -> tuple[str, float]:
        """(precision, MAC/s) of a matrix operator with operands at ``a`` and ``b`` on the xPU."""
        return self.tensor_precision(a, b)

    @property
    def area_mm2(self) -> float | None:
        """The xPU die plus the PIM logic in the stacks (None unless both are given)."""
        if self.die_area_mm2 is None or self.pim.area_mm2_per_stack is None:
            return None
        return self.die_area_mm2 + self.pim.stacks * self.pim.area_mm2_per_stack


@register_template("systolic_pim")
class SystolicPim(PimDevice, SystolicArray):
    """A systolic-array xPU and PIM in the stacks of its HBM (``memory.dram``), sharing the banks."""

    pim: PimSpec = Field(**_PIM_FIELD)

    @model_validator(mode="after")
    def _pim_fits_its_banks(self) -> "SystolicPim":
        self._pim_problems(self.memory.dram.bandwidth_bytes_per_s)
        return self

    # -- the xPU, as the mapper sees it -------------------------------------------------------------
    xpu_channel: ClassVar[str] = "dram"  # the channel of the array's off-chip traffic (mappers.lower)

    @property
    def pim_default_efficiency(self) -> float:
        """The systolic template moves off-chip data at ``memory.dram.bandwidth`` (its sustained
        figure), so PIM's default is its full internal bandwidth."""
        return 1.0

    @property
    def pim_launch_s(self) -> float:
        """No kernel launches: the array's controller issues a PIM operator as it issues a layer."""
        return 0.0

    @property
    def xpu_bandwidth_bytes_per_s(self) -> float:
        return self.memory.dram.bandwidth_bytes_per_s

    @property
    def xpu_vector_ops_per_s(self) -> float:
        return self.vector_lanes * self.freq_hz

    def xpu_matrix_rate(self, a: str, b: str) -> tuple[str, float]:
        """(precision, MAC/s) of a matrix operator with activations at ``a`` and the second
        operand at ``b``: rows x cols PEs, ``dot_width`` MACs every ``step_cycles`` cycles for
        the pair (a pair the PE cannot run: its peak, at its precision; experiments reject such
        pairs at load time)."""
        try:
            pc = self.pe_cost(b, a)
        except ValueError:
            return self.pe.precision, self.peak_macs_per_s
        if is_float(a) != is_float(b):
            p = a if is_float(a) else b
        else:
            p = a if bits_of(a) >= bits_of(b) else b
        return p, self.rows * self.cols * pc.dot_width / pc.step_cycles * self.freq_hz

    @property
    def area_mm2(self) -> float:
        """The array's area (``systolic_array``) plus the PIM logic in the stacks, if given."""
        extra = self.pim.stacks * self.pim.area_mm2_per_stack if self.pim.area_mm2_per_stack else 0.0
        return SystolicArray.area_mm2.fget(self) + extra
