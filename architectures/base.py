"""The template registry and what every hardware template shares.

Contract: a template is a frozen, keyword-only ``Schema`` (pydantic) registered by name with
``@register_template("systolic_array")``. Every field has a description and, where it is a
physical quantity, a unit in its name. Derived values are properties. Adding a unit is one new
module plus one line in ``_load_builtin``; nothing else changes.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from workloads.errors import ConfigError, Problem, did_you_mean
from workloads.schema import Schema, quantity

__all__ = ["Architecture", "TEMPLATES", "register_template", "template_class", "MemoryTier"]

TEMPLATES: dict[str, type["Architecture"]] = {}


def register_template(name: str):
    """Class decorator: register an ``Architecture`` subclass under ``name``."""

    def deco(cls: type[Architecture]) -> type[Architecture]:
        if name in TEMPLATES:
            raise ValueError(f"template '{name}' registered twice")
        cls.template = name
        TEMPLATES[name] = cls
        return cls

    return deco


def template_class(name: str, *, file: str | None = None, path: str = "template") -> type["Architecture"]:
    _load_builtin()
    if name not in TEMPLATES:
        raise ConfigError(Problem(file, path, f"'{name}' is not a template; available: "
                                  f"{', '.join(sorted(TEMPLATES))}", hint=did_you_mean(name, TEMPLATES)))
    return TEMPLATES[name]


def _load_builtin() -> None:
    from architectures import gpu, systolic  # noqa: F401
    from architectures import fusemax, rdu  # noqa: F401
    from architectures import hetero  # noqa: F401  (gpu_pim: an xPU with PIM in its HBM)


class MemoryTier(Schema):
    """A level of memory: capacity, bandwidth, latency and energy per byte moved.

    ``energy_pj_per_byte`` left unset is filled from the architecture's energy table (by size
    for SRAM, per bit for DRAM) when the energy model is built.
    """

    size_bytes: quantity("size", "capacity in bytes", alias="size", integer=True, gt=0,
                         default=float("inf"))
    bandwidth_bytes_per_s: quantity("bandwidth", "sustained bandwidth to the next level (inf: "
                                    "never the bottleneck)", alias="bandwidth", gt=0,
                                    default=float("inf"))
    latency_s: quantity("time", "access latency (added once per transfer)", alias="latency",
                        ge=0, default=0.0)
    energy_pj_per_byte: quantity("energy_per_byte", "energy per byte read (and written, unless "
                                 "write_energy_pj_per_byte is set); unset: from the energy table",
                                 alias="energy", ge=0, default=None)
    write_energy_pj_per_byte: quantity("energy_per_byte", "energy per byte written; unset: same "
                                       "as reads", alias="write_energy", ge=0, default=None)
    banks: int = Field(1, gt=0, description="number of banks (informational; SCALE-Sim layout)")


class Architecture(Schema):
    """Fields every template has. Subclasses add theirs and implement the cost hooks."""

    template: ClassVar[str] = "?"

    name: str = Field("custom", description="short name used in reports")
    description: str = Field("", description="one line on what this models")
    freq_hz: quantity("frequency", "clock frequency", alias="freq", gt=0)
    energy_table: str = Field("horowitz_45nm", description="energy table name (architectures/"
                              "energy_tables.yaml) used for numbers not set explicitly")

    @property
    def cycle_s(self) -> float:
        return 1.0 / self.freq_hz
