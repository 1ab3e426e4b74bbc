"""Processing elements of the systolic array: one small ``Schema`` per kind, each with its cost.

``SystolicArray.pe`` is a discriminated union of these kinds on ``kind`` (``kind`` left out means
``mac``, so presets written before the union still load).

The interface every kind implements (``problems``, ``cost -> PECost``, ``peak_macs``,
``area_um2``, ``edge_area_um2``, ``precision``, ``default_weights``) is described in
``architectures.pe.base``; one module per kind, the registry in ``architectures.pe.registry``
(see README.md in this folder).

One line per kind (d = dot width, c = cycles per step, b = weight bits):

========== =========================================================================================
mac        d = 1, c = 1 at its precision (FP16/BF16/INT8/INT4 baselines)
bitfusion  BitFusion fusion unit: d = floor(max/max(a, min)) * floor(max/max(b, min)), c = 1
mixpe      MixPE shift-and-add: d = lanes, c = ceil(b / max_weight_bits); per-group dequantization
bitmod     BitMoD bit-serial: d = dot_width (4), c = ceil(floor(b) / bits_per_cycle (2))
ant/olive  BitMoD's baselines: d = 1, c = 1 with FP16 activations; with integer activations the
           4-bit fused unit's rule, d = floor(8/max(a, 4)) * floor(8/max(b, 4))
lut        LUT Tensor Core: d = group_k (4) activations per table, c = b (one weight bit plane per
           cycle); a 2^(group_k-1)-entry table per activation group, built at the row's edge
tpe        TPE bit-weight transform: d = 1, c = non-zero partial products of the weights under a
           canonical signed-digit encoding: the mean (decoupled PEs) or the expected largest among
           the PEs that advance together (lockstep; weight-stationary folds)
========== =========================================================================================
"""

from architectures.pe.base import DEQUANT_MODES, PECost
from architectures.pe.bitfusion import BitFusionPE
from architectures.pe.bitmod import BitModPE
from architectures.pe.decoder import AntPE, OlivePE
from architectures.pe.lut import LutPE
from architectures.pe.mac import PE
from architectures.pe.mixpe import MixPE
from architectures.pe.registry import PE_KINDS
from architectures.pe.sizing import iso_area
from architectures.pe.tpe import (TpePE, average_partial_products, csd_digits, expected_max_partial_products,
                                  partial_product_pmf)
from architectures.pe.union import AnyPE, PEKind, pe_adapter

__all__ = ["PECost", "PE", "BitFusionPE", "MixPE", "BitModPE", "AntPE", "OlivePE", "LutPE", "TpePE",
           "PEKind", "PE_KINDS", "AnyPE", "DEQUANT_MODES", "csd_digits", "average_partial_products",
           "partial_product_pmf", "expected_max_partial_products",
           "iso_area", "pe_adapter"]
