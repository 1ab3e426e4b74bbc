"""Multi-device systems: N identical devices connected by links, and how a model is split.

Contract: the experiment's ``system:`` section validates into ``SystemSpec``; ``devices`` must
equal what the parallelism degrees use (tensor x pipeline, or the expert group), and a system
of more than one device needs a ``link``. The link is each device's connection to the others
(NVLink: 900 GB/s per GPU in H100 SXM systems [NVIDIA H100 datasheet]; PCIe 5.0 x16: ~64 GB/s
per direction [PCI-SIG]): collectives are timed on it by the event core.
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

    tensor: int = Field(1, ge=1, description="tensor-parallel degree (Megatron-LM)")
    pipeline: int = Field(1, ge=1, description="pipeline stages")
    expert: int = Field(1, ge=1, description="expert-parallel degree (MoE models)")
    microbatches: int = Field(1, ge=1, description="microbatches flowing through the pipeline")


class SystemSpec(Schema):
    """The experiment's ``system:`` section."""

    devices: int = Field(1, ge=1, description="number of identical devices")
    link: LinkSpec | None = Field(None, description="each device's link to the others")
    parallelism: ParallelismSpec = Field(ParallelismSpec(), description="how the model is split")

    @model_validator(mode="after")
    def _consistent(self) -> "SystemSpec":
        p = self.parallelism
        used = p.expert if p.expert > 1 else p.tensor * p.pipeline
        bad = []
        if used != self.devices:
            what = (f"expert {p.expert}" if p.expert > 1 else
                    f"tensor {p.tensor} x pipeline {p.pipeline} = {p.tensor * p.pipeline}")
            bad.append(("parallelism", f"uses {used} devices ({what}) but devices is {self.devices}"))
        if self.devices > 1 and self.link is None:
            bad.append(("link", f"{self.devices} devices need a link: e.g. "
                                "{bandwidth: '900 GB/s', latency: '1 us'}"))
        if bad:
            raise FieldProblems(bad)
        return self
