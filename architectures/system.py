"""Multi-device systems: N identical devices connected by links, and how a model is split.

Contract: the experiment's ``system:`` section validates into ``SystemSpec``; ``devices`` must
equal what the parallelism degrees use (tensor x pipeline, or the expert group, which a tensor
degree > 1 shares: ``{tensor: 4, expert: 4}`` is 4 devices, attention tensor parallel and
experts spread over the same devices; see ``workloads.llm_parallel``), combinations that are
not modelled are errors naming the key, and a system of more than one device needs a
``link``. The link is each device's connection to the others (NVLink: 900 GB/s per GPU in
H100 SXM systems [NVIDIA H100 datasheet]; PCIe 5.0 x16: ~64 GB/s per direction [PCI-SIG]):
collectives are timed on it by the event core.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from workloads.schema import FieldProblems, Schema, quantity

__all__ = ["LinkSpec", "ParallelismSpec", "SystemSpec"]


class LinkSpec(Schema):
    """One device's link to the others (per direction)."""

    bandwidth_bytes_per_s: quantity("bandwidth", "bandwidth of a device's link, per direction",
                                    alias="bandwidth", gt=0)
    latency_s: quantity("time", "latency of one transfer (each ring step pays it)", alias="latency",
                        ge=0, default=0.0)
    energy_pj_per_byte: quantity("energy_per_byte", "energy per byte moved (unset: not counted)",
                                 alias="energy", ge=0, default=None)


class ParallelismSpec(Schema):
    """How the model is split (see workloads/llm_parallel.py)."""

    tensor: int = Field(1, ge=1, description="tensor-parallel degree (Megatron-LM); with expert > 1: "
                                             "1 (data-parallel attention) or equal to expert (tensor-"
                                             "parallel attention over the expert group's devices)")
    pipeline: int = Field(1, ge=1, description="pipeline stages")
    expert: int = Field(1, ge=1, description="expert-parallel degree (MoE models): the experts spread "
                                             "over this many devices, each whole")
    microbatches: int = Field(1, ge=1, description="microbatches flowing through the pipeline")


class SystemSpec(Schema):
    """The experiment's ``system:`` section."""

    devices: int = Field(1, ge=1, description="number of identical devices")
    link: LinkSpec | None = Field(None, description="each device's link to the others")
    parallelism: ParallelismSpec = Field(ParallelismSpec(), description="how the model is split")

    @model_validator(mode="after")
    def _consistent(self) -> "SystemSpec":
        from workloads.llm_parallel import Parallelism

        p = self.parallelism
        par = Parallelism(tensor=p.tensor, pipeline=p.pipeline, expert=p.expert)
        bad = [(f"parallelism.{key}", message) for key, message in par.combination_problems()]
        used = par.devices
        if not bad and used != self.devices:
            if p.expert > 1:
                what = (f"expert {p.expert}; tensor {p.tensor} shares those devices" if p.tensor > 1
                        else f"expert {p.expert}")
            else:
                what = f"tensor {p.tensor} x pipeline {p.pipeline} = {p.tensor * p.pipeline}"
            hint = ""
            if p.expert > 1 and p.tensor > 1 and p.tensor * p.expert == self.devices:
                hint = (f" (the tensor and expert groups are the same devices, not a product: for "
                        f"{self.devices} devices set tensor: {self.devices}, expert: {self.devices}, or "
                        f"expert: {self.devices} alone for data-parallel attention)")
            bad.append(("parallelism", f"uses {used} devices ({what}) but devices is {self.devices}{hint}"))
        if self.devices > 1 and self.link is None:
            bad.append(("link", f"{self.devices} devices need a link: e.g. "
                                "{bandwidth: '900 GB/s', latency: '1 us'}"))
        if bad:
            raise FieldProblems(bad)
        return self
