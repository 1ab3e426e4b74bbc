"""SCALE-Sim .cfg -> SystolicArray (architectures/scalesim_cfg.py)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from architectures.scalesim_cfg import ScaleSimConfig, load_scalesim_cfg
from architectures.systolic import SystolicArray
from workloads.errors import ConfigError

DATA = Path(__file__).resolve().parents[1] / "data" / "scalesim"

# SCALE-Sim v3's own layout of a config file (keys as its configs/scale.cfg spells them)
CFG = """\
[general]
run_name = my_run

[architecture_presets]
ArrayHeight:    16
ArrayWidth:     8
IfmapSramSzkB:    64
FilterSramSzkB:   32
OfmapSramSzkB:    16
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 10
Dataflow : ws
MemoryBanks:   1
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: USER
UseRamulatorTrace: False
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "scale.cfg"
    p.write_text(text, encoding="utf-8")
    return p


def problems(path: Path, **kw) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_scalesim_cfg(path, **kw)
    return str(info.value).splitlines()


def test_fields_map_onto_the_systolic_template(tmp_path):
    cfg = load_scalesim_cfg(write(tmp_path, CFG))
    assert isinstance(cfg, ScaleSimConfig) and dataclasses.is_dataclass(cfg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.run_name = "x"  # type: ignore[misc]
    a = cfg.architecture
    assert isinstance(a, SystolicArray) and a.template == "systolic_array"
    assert cfg.run_name == "my_run" and a.name == "scalesim_16x8_ws"
    assert (a.rows, a.cols, a.dataflow) == (16, 8, "ws")
    # SCALE-Sim multiplies kB by 1024 and uses 1-byte words
    assert a.memory.ifmap_sram.size_bytes == 64 * 1024
    assert a.memory.filter_sram.size_bytes == 32 * 1024
    assert a.memory.ofmap_sram.size_bytes == 16 * 1024
    assert a.pe.precision == "int8" and a.freq_hz == 1e9
    assert cfg.bandwidth_mode == "USER" and cfg.bandwidth_words_per_cycle == (10,)
    # USER: Bandwidth words/cycle x 1 B x freq
    assert a.memory.dram.bandwidth_bytes_per_s == 10e9
    assert a.dram_bytes_per_cycle == pytest.approx(10.0)
    assert cfg.notes[0].startswith("InterfaceBandwidth USER: DRAM bandwidth 10 words/cycle x 1 B x 1 GHz = 10 GB/s")


def test_freq_scales_user_bandwidth(tmp_path):
    cfg = load_scalesim_cfg(write(tmp_path, CFG), freq="500 MHz")
    assert cfg.architecture.freq_hz == 5e8
    assert cfg.architecture.memory.dram.bandwidth_bytes_per_s == 5e9
    assert cfg.architecture.dram_bytes_per_cycle == pytest.approx(10.0)


def test_calc_mode_is_unlimited_bandwidth(tmp_path):
    cfg = load_scalesim_cfg(write(tmp_path, CFG.replace("InterfaceBandwidth: USER", "InterfaceBandwidth: CALC")
                                   .replace("Bandwidth : 10", "Bandwidth : nonsense")))
    assert cfg.bandwidth_mode == "CALC" and cfg.bandwidth_words_per_cycle == ()
    assert math.isinf(cfg.architecture.memory.dram.bandwidth_bytes_per_s)
    assert any("CALC: DRAM bandwidth is unlimited" in n for n in cfg.notes)


def test_keys_are_case_insensitive_and_lists_of_bandwidths_take_the_first(tmp_path):
    text = (CFG.replace("IfmapSramSzkB", "ifmapsramszkB").replace("ArrayHeight", "ARRAYHEIGHT")
            .replace("Bandwidth : 10", "Bandwidth : 20, 30, 40").replace("Dataflow : ws", "Dataflow : IS"))
    cfg = load_scalesim_cfg(write(tmp_path, text))
    assert cfg.architecture.rows == 16 and cfg.architecture.memory.ifmap_sram.size_bytes == 65536
    assert cfg.architecture.dataflow == "is"
    assert cfg.bandwidth_words_per_cycle == (20, 30, 40)
    assert cfg.architecture.memory.dram.bandwidth_bytes_per_s == 20e9
    assert any("Bandwidth lists 3 values; the first (20 words/cycle)" in n for n in cfg.notes)


def test_pinned_golden_configs_load(tmp_path):
    for path in sorted(DATA.glob("*/scale.cfg")):
        cfg = load_scalesim_cfg(path)
        assert cfg.run_name == path.parent.name
        assert cfg.architecture.dataflow in path.parent.name


def test_bad_value_names_file_line_section_and_key(tmp_path):
    p = write(tmp_path, CFG.replace("ArrayHeight:    16", "ArrayHeight:    abc"))
    assert problems(p) == [f"{p}:5: [architecture_presets] ArrayHeight: expected a positive integer, found 'abc'"]


def test_every_problem_in_one_error(tmp_path):
    text = (CFG.replace("ArrayWidth:     8", "ArrayWidth:     0")
            .replace("IfmapSramSzkB:    64", "IfmapSramSzKB2: 64")
            .replace("Dataflow : ws", "Dataflow : xs")
            .replace("InterfaceBandwidth: USER", "InterfaceBandwidth: USR")
            .replace("SparsitySupport : false", "SparsitySupport : true"))
    p = write(tmp_path, text)
    lines = problems(p, freq="3 GB")
    assert lines == [
        "command line: --freq: '3 GB' is a size, not a frequency; expected something like '700 MHz'",
        f"{p}:6: [architecture_presets] ArrayWidth: expected a positive integer, found 0",
        f"{p}:4: [architecture_presets] IfmapSramSzkB: required key is missing "
        "('IfmapSramSzKB2' on line 7 looks like a misspelling of it)",
        f"{p}:14: [architecture_presets] Dataflow: expected one of os, ws, is, found 'xs' (did you mean 'ws'?)",
        f"{p}:37: [run_presets] InterfaceBandwidth: expected one of USER, CALC, found 'USR' (did you mean 'USER'?)",
        f"{p}:30: [sparsity] SparsitySupport: sparse systolic arrays are not supported by Tessera; set "
        "it to false for the dense results (SCALE-Sim then ignores the topology's N:M column too)",
    ]


def test_user_mode_needs_a_positive_integer_bandwidth(tmp_path):
    p = write(tmp_path, CFG.replace("Bandwidth : 10", "Bandwidth : 10, -1"))
    assert problems(p) == [f"{p}:13: [architecture_presets] Bandwidth: expected positive integers "
                           "(words per cycle, comma-separated), found '10, -1'"]
    p = write(tmp_path, CFG.replace("Bandwidth : 10\n", ""))
    assert problems(p) == [f"{p}:4: [architecture_presets] Bandwidth: required key is missing"]


def test_missing_sections(tmp_path):
    p = write(tmp_path, "[general]\nrun_name = x\n[architecture_preset]\nArrayHeight: 4\n")
    lines = problems(p)
    assert lines[0] == f"{p}: [architecture_presets]: required section is missing (did you mean 'architecture_preset'?)"
    assert lines[1] == f"{p}: [run_presets]: required section is missing"
    assert len(lines) == 2  # one line per missing section, not one per key


def test_template_rules_are_reported_against_the_cfg_key(tmp_path):
    p = write(tmp_path, CFG.replace("ArrayWidth:     8", "ArrayWidth:     1024").replace("FilterSramSzkB:   32", "FilterSramSzkB:   1"))
    assert problems(p) == [f"{p}:8: [architecture_presets] FilterSramSzkB: 1024 B is smaller than two "
                           "rows of operands (2048 x 1 B = 2048 B) for a 16x1024 array (double-buffered)"]


def test_run_name_must_be_a_folder_name(tmp_path):
    p = write(tmp_path, CFG.replace("run_name = my_run", "run_name = ../up"))
    assert problems(p) == [f"{p}:2: [general] run_name: expected a folder name without path "
                           "separators, found '../up'"]


def test_unsupported_features_become_notes(tmp_path):
    text = (CFG.replace("IfmapCustomLayout: False", "IfmapCustomLayout: True")
            .replace("UseRamulatorTrace: False", "UseRamulatorTrace: True")
            .replace("MemoryBanks:   1", "MemoryBanks:   1\nArrayHieght: 3"))
    cfg = load_scalesim_cfg(write(tmp_path, text))
    notes = "\n".join(cfg.notes)
    assert "[layout] IfmapCustomLayout is ignored: custom SRAM layouts only add bank-conflict stalls" in notes
    assert "[run_presets] UseRamulatorTrace is ignored" in notes
    assert "[architecture_presets] ArrayHieght: ignored unknown key (did you mean 'ArrayHeight'?)" in notes
    assert "FilterCustomLayout" not in notes


def test_file_level_problems(tmp_path):
    assert problems(tmp_path / "none.cfg") == [f"{tmp_path / 'none.cfg'}: config file not found"]
    assert problems(tmp_path) == [f"{tmp_path}: is a folder, expected a SCALE-Sim .cfg file"]
    p = write(tmp_path, "run_name = x\n")
    assert problems(p) == [f"{p}:1: expected a section header like [general] before the first key, "
                           "found 'run_name = x'"]
    p = write(tmp_path, "[general]\nrun_name = x\nfoo\n")
    assert problems(p) == [f"{p}:3: cannot read 'foo' (expected 'Key: value' or '[section]')"]
    p = write(tmp_path, CFG.replace("ArrayWidth:     8", "ArrayWidth:     8\narraywidth: 9"))
    assert problems(p) == [f"{p}:7: [architecture_presets] arraywidth: key written twice (first on line 6)"]
