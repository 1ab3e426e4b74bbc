"""Shared fixtures: small architectures and workloads with hand-checkable numbers."""

from __future__ import annotations

import json
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


# a small Llama-style model: fast enough to simulate every serving iteration exactly
TINY_LLM = {"_source": "a test model (tests/conftest.py)", "model_type": "llama", "hidden_size": 1024,
            "intermediate_size": 2816, "num_attention_heads": 16, "num_key_value_heads": 4,
            "num_hidden_layers": 4, "vocab_size": 8000, "max_position_embeddings": 8192,
            "hidden_act": "silu", "tie_word_embeddings": False}


def write_llm_config(folder: Path, **fields) -> Path:
    """Write ``TINY_LLM`` (with ``fields`` changed) as ``folder/tiny.json``; returns its path."""
    path = Path(folder) / "tiny.json"
    path.write_text(json.dumps({**TINY_LLM, **fields}))
    return path
