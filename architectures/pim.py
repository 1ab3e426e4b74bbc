"""Processing in memory (PIM) in the HBM stacks of a device: bank, bank-group and logic-die PIM.

Contract: ``PimSpec`` is the ``pim:`` section of a template that has PIM (``gpu_pim``,
``systolic_pim``: ``architectures.hetero``). It describes, per HBM stack, where the compute sits
(``kind``), the bandwidth it reads the DRAM banks at (``internal_bandwidth_bytes_per_s``), its
MAC rate, its energy per bit read, and how it shares the banks with the xPU's normal accesses
(``sharing``).
``pim_time`` and ``dram_energy_pj`` are its per-operator cost model; the owning template checks
the section against its HBM (``check_against_hbm``) and reports problems by key path.

The three kinds (Duplex, MICRO 2024, Sec. II-D; presets under ``architectures/presets/``):

================  =========================  ==========================  ==================
kind              where the MACs are         internal bandwidth (HBM3)    energy per bit read
================  =========================  ==========================  ==================
``bank``          beside every bank          16x the external (Op/B 1)    0.73 pJ
``bank_group``    per bank group, DRAM die   4x (Op/B 8)                  2.68 pJ
``logic_die``     the stack's logic die      4x through 4x the TSVs       1.81 pJ
================  =========================  ==========================  ==================

(A normal read by the xPU costs 3.48 pJ/bit: array, global sense amplifiers and the I/O.)

Cost of one operator run on PIM (the data is spread over all stacks, each stack's units work on
their own share):

- ``memory_s = (bytes read + bytes written) / (stacks x internal_bandwidth x efficiency)``:
  every operand comes from the banks and the result goes back (PIM has no cache);
- ``compute_s = MACs / (stacks x macs_per_cycle x freq) + vector ops / (stacks x
  vector_ops_per_cycle x freq)``: the MAC units take any GEMM shape at full rate (they stream
  one operand row by row and broadcast the other; no padding loss is modelled);
- the operator takes ``max(compute_s, memory_s)`` (the lowering double-buffers its chunks, so the
  event engines reproduce the roofline up to one chunk of pipeline fill);
- energy: ``bytes x 8 x energy_pj_per_bit`` for the DRAM side, MACs and vector ops at the
  device's energy table.

Sharing the banks with the xPU (``sharing``), and what each mode does and does not model:

- ``bank_partition`` (Duplex's bank-bundle partitioning, the Duplex presets): the banks of every
  pseudo-channel are split into bundles that hold PIM operands (KV cache, the weights PIM runs)
  and bundles for the rest, so the xPU and PIM never open the same bank: they run concurrently,
  each at its own bandwidth (two channels in the lowering, ``hbm`` and ``pim_banks``), and they
  never contend. ``pim_bank_fraction`` of the banks must deliver PIM's internal bandwidth and
  the rest the xPU's external bandwidth (checked at load). Not modelled: the command bus and
  data TSVs the two sides may still share, row-buffer conflicts inside a bundle, and the capacity
  split (any tensor may live in either bundle): an upper bound on the overlap Duplex reports.
- ``time_share`` (all-bank mode, as Samsung's HBM-PIM; the bank-level and bank-group presets):
  PIM reads all banks in lockstep, so while it runs the xPU cannot access the DRAM and vice
  versa: one channel in the lowering (the xPU's), on which an xPU transfer holds the banks for
  ``bytes / external bandwidth`` and a PIM transfer for ``bytes / internal bandwidth``;
  transfers (chunks of an operator) are served first come, first served, so an xPU operator and
  a PIM operator that run at once take about the sum of their memory times. Not modelled: the
  cost of switching the banks between the two modes.

What the banks can deliver: ``pseudo_channels_per_stack x banks_per_pseudo_channel x
bank_bandwidth`` per stack (every bank streaming column reads of an open row); a PIM whose
internal bandwidth exceeds its share of that is a configuration error naming the key.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from workloads.schema import Schema, quantity

__all__ = ["PimSpec", "PIM_KINDS", "SHARING_POLICIES"]

PIM_KINDS = ("bank", "bank_group", "logic_die")
SHARING_POLICIES = ("bank_partition", "time_share")


class PimSpec(Schema):
    """PIM in every HBM stack of a device (see the module docstring). Rates are per stack."""

    kind: Literal["bank", "bank_group", "logic_die"] = Field(
        description="where the MAC units sit: beside each bank, per bank group on the DRAM dies, "
        "or on the stack's logic die")
    stacks: int = Field(gt=0, description="HBM stacks of the device, each with PIM (the "
                        "external bandwidth is shared evenly among them)")
    pseudo_channels_per_stack: int = Field(gt=0, description="pseudo-channels of one stack")
    banks_per_pseudo_channel: int = Field(gt=0, description="banks of one pseudo-channel (all ranks)")
    bank_bandwidth_bytes_per_s: quantity("bandwidth", "one bank streaming column reads of an open "
                                         "row (column bytes / tCCD_L)", alias="bank_bandwidth", gt=0)
    internal_bandwidth_bytes_per_s: quantity("bandwidth", "bandwidth PIM reads the banks of one "
                                             "stack at", alias="internal_bandwidth", gt=0)
    freq_hz: quantity("frequency", "clock of the PIM units", alias="freq", gt=0)
    macs_per_cycle: int = Field(gt=0, description="MACs per PIM cycle in one stack (fp16/bf16 "
                                "operands)")
    vector_ops_per_cycle: int = Field(gt=0, description="element-wise operations (softmax, "
                                      "activations) per PIM cycle in one stack")
    energy_pj_per_byte: quantity("energy_per_byte", "energy per byte PIM reads or writes in the "
                                 "banks (write '0.73 pJ/bit')", alias="energy", ge=0)
    bandwidth_efficiency: float | None = Field(
        None, gt=0, le=1, description="sustained fraction of the internal bandwidth (unset: the "
        "xPU's sustained HBM fraction, the same DRAM timing)")
    sharing: Literal["bank_partition", "time_share"] = Field(
        "bank_partition", description="bank_partition: PIM operands in their own bank bundles, the "
        "xPU and PIM run concurrently | time_share: PIM and the xPU take turns on all banks")
    pim_bank_fraction: float = Field(0.5, gt=0, lt=1, description="bank_partition: the fraction of "
                                     "each stack's banks (bank bundles) holding PIM operands")
    area_mm2_per_stack: quantity("area", "area the PIM logic adds to one stack (unset: no area "
                                 "model)", alias="area_per_stack", gt=0, default=None)

    # ---- derived -------------------------------------------------------------------------------
    @property
    def banks_per_stack(self) -> int:
        return self.pseudo_channels_per_stack * self.banks_per_pseudo_channel

    @property
    def bank_capability_bytes_per_s(self) -> float:
        """What all banks of one stack can deliver, streaming at once."""
        return self.banks_per_stack * self.bank_bandwidth_bytes_per_s

    @property
    def ops_per_byte(self) -> float:
        """The PIM's ridge point: FLOPs (2 per MAC) per byte read at peak."""
        return 2 * self.macs_per_cycle * self.freq_hz / self.internal_bandwidth_bytes_per_s

    def macs_per_s(self) -> float:
        """The device's PIM MAC rate (all stacks)."""
        return self.stacks * self.macs_per_cycle * self.freq_hz

    def vector_ops_per_s(self) -> float:
        return self.stacks * self.vector_ops_per_cycle * self.freq_hz

    def bandwidth_bytes_per_s(self, default_efficiency: float) -> float:
        """The device's sustained PIM bandwidth (all stacks)."""
        eff = self.bandwidth_efficiency if self.bandwidth_efficiency is not None else default_efficiency
        return self.stacks * self.internal_bandwidth_bytes_per_s * eff

    def check_against_hbm(self, hbm_bandwidth_bytes_per_s: float) -> list[tuple[str, str]]:
        """Problems (key path under ``pim``, message) with these banks serving this PIM and an
        xPU whose HBM has the given external bandwidth (all stacks)."""
        out: list[tuple[str, str]] = []
        cap = self.bank_capability_bytes_per_s
        detail = (f"{self.pseudo_channels_per_stack} pseudo-channels x {self.banks_per_pseudo_channel} "
                  f"banks x {self.bank_bandwidth_bytes_per_s / 1e9:.4g} GB/s = {cap / 1e12:.4g} TB/s per stack")
        pim = self.internal_bandwidth_bytes_per_s
        if self.sharing == "time_share":
            if pim > cap * (1 + 1e-9):
                out.append(("internal_bandwidth_bytes_per_s",
                            f"{pim / 1e12:.4g} TB/s per stack exceeds what its banks can deliver: {detail}"))
        else:
            share = self.pim_bank_fraction * cap
            if pim > share * (1 + 1e-9):
                out.append(("internal_bandwidth_bytes_per_s",
                            f"{pim / 1e12:.4g} TB/s per stack exceeds what its bank bundles can deliver: "
                            f"pim_bank_fraction {self.pim_bank_fraction:g} of {detail} = "
                            f"{share / 1e12:.4g} TB/s (raise pim_bank_fraction or use sharing: time_share)"))
            ext = hbm_bandwidth_bytes_per_s / self.stacks
            rest = (1 - self.pim_bank_fraction) * cap
            if ext > rest * (1 + 1e-9):
                out.append(("pim_bank_fraction",
                            f"{self.pim_bank_fraction:g} leaves the xPU {rest / 1e12:.4g} TB/s of banks per "
                            f"stack, less than its external bandwidth {ext / 1e12:.4g} TB/s per stack"))
        if hbm_bandwidth_bytes_per_s / self.stacks > cap * (1 + 1e-9):
            out.append(("bank_bandwidth_bytes_per_s",
                        f"the banks ({detail}) cannot feed the HBM's external bandwidth "
                        f"{hbm_bandwidth_bytes_per_s / self.stacks / 1e12:.4g} TB/s per stack"))
        return out

    # ---- per-operator cost --------------------------------------------------------------------
    def pim_time(self, macs: float, vector_ops: float, nbytes: float,
                 default_efficiency: float) -> tuple[float, float]:
        """(compute seconds, memory seconds) of an operator on the device's PIM."""
        compute = macs / self.macs_per_s() + vector_ops / self.vector_ops_per_s()
        return compute, nbytes / self.bandwidth_bytes_per_s(default_efficiency)

    def dram_energy_pj(self, nbytes: float) -> float:
        """Energy of the bank accesses of an operator run on PIM."""
        return nbytes * self.energy_pj_per_byte
