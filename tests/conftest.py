"""Shared fixtures: small architectures and workloads with hand-checkable numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from architectures.systolic import SystolicArray

REPO = Path(__file__).resolve().parents[1]


def small_array(rows: int = 8, cols: int = 8, dataflow: str = "os", *, sram: str = "64 KiB",
                bandwidth="inf", freq: str = "1 GHz", precision: str = "int8") -> SystolicArray:
    """An R x C array with equal operand SRAMs and the given DRAM bandwidth."""
    return SystolicArray.model_validate({
        "name": f"test_{rows}x{cols}", "rows": rows, "cols": cols, "dataflow": dataflow,
        "freq_hz": freq, "pe": {"precision": precision},
        "memory": {"ifmap_sram": {"size_bytes": sram}, "filter_sram": {"size_bytes": sram},
                   "ofmap_sram": {"size_bytes": sram}, "dram": {"bandwidth_bytes_per_s": bandwidth}},
    })


@pytest.fixture
def array8() -> SystolicArray:
    return small_array()


@pytest.fixture
def repo() -> Path:
    return REPO
