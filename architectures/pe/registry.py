"""The PE-kind registry: ``kind`` name -> class, one line per kind.

``SystolicArray.pe`` is the discriminated union of exactly these kinds (``architectures.pe.union``
builds it from ``PE_KINDS``); the order here is the order error messages list the kinds in.
Adding a kind is one new module (a ``_PEBase`` subclass with ``kind: Literal["name"]``) plus one
line below (and its import).
"""

from __future__ import annotations

from architectures.pe.bitfusion import BitFusionPE
from architectures.pe.bitmod import BitModPE
from architectures.pe.decoder import AntPE, OlivePE
from architectures.pe.lut import LutPE
from architectures.pe.mac import PE
from architectures.pe.mixpe import MixPE
from architectures.pe.tpe import TpePE

__all__ = ["PE_KINDS"]

PE_KINDS: dict[str, type] = {
    "mac": PE,
    "bitfusion": BitFusionPE,
    "mixpe": MixPE,
    "bitmod": BitModPE,
    "ant": AntPE,
    "olive": OlivePE,
    "lut": LutPE,
    "tpe": TpePE,
}
