"""Number formats that tensors are stored in and processing elements compute in."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["Precision", "PRECISIONS", "bits_of", "is_float", "accumulator_for", "storage_bytes",
           "effective_bits", "DEFAULT_SCALE_BITS"]

Precision = Literal["int1", "int2", "int3", "int4", "int8", "int16", "int32",
                    "fp4", "fp6", "fp8", "fp16", "bf16", "fp32"]

PRECISIONS: dict[str, int] = {
    "int1": 1, "int2": 2, "int3": 3, "int4": 4, "int8": 8, "int16": 16, "int32": 32,
    "fp4": 4, "fp6": 6, "fp8": 8, "fp16": 16, "bf16": 16, "fp32": 32,
}
assert set(PRECISIONS) == set(get_args(Precision))


def bits_of(precision: str) -> int:
    """Storage bits per element."""
    return PRECISIONS[precision]


def is_float(precision: str) -> bool:
    return precision.startswith(("fp", "bf"))


def accumulator_for(precision: str) -> str:
    """The usual accumulator format for a MAC at ``precision`` (int32 for ints, fp32 for floats)."""
    return "fp32" if is_float(precision) else "int32"


# bits of one per-group scale when a workload does not say (workload.precision.scale_bits): an
# FP16 scale, as GPTQ/AWQ-style group quantization stores it; BitMoD's artifact uses 8-bit scales
DEFAULT_SCALE_BITS = 16


def effective_bits(precision: str, group_size: int | None = None,
                   scale_bits: int = DEFAULT_SCALE_BITS) -> float:
    """Stored bits per element, the per-group scale included: bits + scale_bits / group_size
    (e.g. int3 in groups of 128 with 8-bit scales: 3 + 8/128 = 3.0625 bits, BitMoD's count)."""
    return PRECISIONS[precision] + (scale_bits / group_size if group_size else 0.0)


def storage_bytes(numel: int, precision: str, group_size: int | None = None,
                  scale_bits: int = DEFAULT_SCALE_BITS) -> int:
    """Bytes to store ``numel`` elements, plus one ``scale_bits`` scale per ``group_size``
    elements if quantized."""
    bits = numel * PRECISIONS[precision]
    if group_size:
        bits += -(-numel // group_size) * scale_bits
    return -(-bits // 8)
