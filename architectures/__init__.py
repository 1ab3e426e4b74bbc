"""Architectures: hardware templates, presets with sources, energy tables, units."""

from architectures.base import TEMPLATES, Architecture, MemoryTier, register_template
from architectures.presets import build_architecture, load_preset, preset_names
from architectures.systolic import SystolicArray

__all__ = ["Architecture", "MemoryTier", "SystolicArray", "TEMPLATES", "register_template",
           "load_preset", "preset_names", "build_architecture"]
