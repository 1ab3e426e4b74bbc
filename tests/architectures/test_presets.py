"""Presets: every shipped preset loads, every number in it has a source, and overrides work."""

from __future__ import annotations

import math
import re
import shutil

import pytest
from pydantic import BaseModel

from architectures.base import template_class
from architectures.presets import load_preset, load_preset_file, preset_names
from architectures.units import parse_quantity
from workloads.errors import ConfigError
from workloads.schema import canonicalize, resolve_path

PRESETS = preset_names()
EXCLUDED = {"name", "description", "template"}  # labels, not hardware numbers
_NUMBER = re.compile(r"^\s*[-+]?(\d|\.\d)")


def _leaves(data: dict, prefix: tuple = ()) -> list[tuple[tuple, object]]:
    """(path, value) for every non-mapping value in a nested mapping."""
    out = []
    for key, value in data.items():
        if isinstance(value, dict):
            out.extend(_leaves(value, prefix + (key,)))
        else:
            out.append((prefix + (key,), value))
    return out


def _field_info(arch: BaseModel, path: tuple):
    parent = arch
    for part in path[:-1]:
        parent = getattr(parent, part)
    return type(parent).model_fields[path[-1]]


def _needs_source(arch: BaseModel, path: tuple, value: object) -> bool:
    """A number, a unit string ("700 MHz", "inf"), or any value of a physical-quantity field."""
    if path[-1] in EXCLUDED:
        return False
    extra = _field_info(arch, path).json_schema_extra
    if isinstance(extra, dict) and extra.get("unit_kind"):
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, str) and bool(_NUMBER.match(value))


def test_there_are_presets_to_test():
    assert {"tpu_v1_like", "scalesim_32x32", "scalesim_128x128", "eyeriss_like", "edge_npu"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads(name):
    arch = load_preset(name)
    pf = load_preset_file(name)
    assert arch.name == name == pf.name
    assert arch.template == pf.template
    assert arch.description, "a preset says in one line what it models"
    assert arch.peak_macs_per_s > 0


@pytest.mark.parametrize("name", PRESETS)
def test_every_number_in_a_preset_has_a_source(name):
    pf = load_preset_file(name)
    arch = load_preset(name)
    canon = canonicalize(template_class(pf.template), pf.fields)
    missing = []
    for path, value in _leaves(canon):
        if _needs_source(arch, path, value):
            if not str(pf.sources.get(".".join(path), "")).strip():
                missing.append(f"{'.'.join(path)} = {value!r}")
    assert not missing, f"{pf.path}: no 'sources:' entry for: {', '.join(missing)}"


@pytest.mark.parametrize("name", PRESETS)
def test_every_source_names_a_real_field_by_its_canonical_path(name):
    pf = load_preset_file(name)
    cls = template_class(pf.template)
    canon_fields = {".".join(p) for p, _ in _leaves(canonicalize(cls, pf.fields))}
    for key, text in pf.sources.items():
        canon, err = resolve_path(cls, key)
        assert err is None, f"{pf.path}: sources: {err}"
        assert ".".join(canon) == key, (
            f"{pf.path}: sources key '{key}' should be the canonical path '{'.'.join(canon)}'")
        assert key in canon_fields, f"{pf.path}: sources has '{key}', which the preset does not set"
        assert isinstance(text, str) and text.strip(), f"{pf.path}: empty source for '{key}'"


def test_the_source_check_catches_a_missing_source_and_a_typo(tmp_path, repo):
    # the two checks above, applied to a broken copy of a shipped preset
    text = (repo / "architectures/presets/scalesim_32x32.yaml").read_text()
    text = text.replace("  cols: ", "  colz: ")  # typo in a sources key, and cols now unsourced
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    pf = load_preset_file(str(path))
    cls = template_class(pf.template)
    assert resolve_path(cls, "colz")[1] == "unknown key 'colz' (did you mean 'cols'?)"
    arch = load_preset(str(path))
    unsourced = [p for p, v in _leaves(canonicalize(cls, pf.fields))
                 if _needs_source(arch, p, v) and ".".join(p) not in pf.sources]
    assert unsourced == [("cols",)]


@pytest.mark.parametrize("name", PRESETS)
def test_show_preset_prints_every_source(name, monkeypatch, capsys):
    from rich.console import Console

    import simulator.cli as cli

    # a wide console, so that no source is wrapped or cut short
    monkeypatch.setattr(cli, "_console", lambda stderr=False: Console(width=2000, soft_wrap=False,
                                                                      highlight=False))
    assert cli.main(["show", "preset", name]) == 0
    out = capsys.readouterr().out
    pf = load_preset_file(name)
    assert f"preset {name} ({pf.template})" in out
    for key, text in pf.sources.items():
        assert key in out
        assert text in out, f"source of {key} not printed"
    assert "energy (table " in out


@pytest.mark.parametrize("name", PRESETS)
def test_show_preset_with_the_default_console(name, capsys):
    from simulator.cli import main

    assert main(["show", "preset", name]) == 0
    out = capsys.readouterr().out
    assert name in out and "source" in out


def test_show_unknown_preset_exits_2_with_a_hint(capsys):
    from simulator.cli import main

    assert main(["show", "preset", "tpu_v1_lik"]) == 2
    err = capsys.readouterr().err
    assert "'tpu_v1_lik' is not a preset" in err and "did you mean 'tpu_v1_like'?" in err


# --- overrides ---------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["memory.dram.bandwidth", "memory.dram.bandwidth_bytes_per_s"])
def test_override_by_short_or_canonical_key(key):
    arch = load_preset("tpu_v1_like", {key: "68 GB/s"})
    assert arch.memory.dram.bandwidth_bytes_per_s == 68e9
    # the rest of the preset is untouched
    assert arch.memory.dram.size_bytes == 8 * 2**30
    assert arch.rows == 256


def test_overrides_of_several_fields_and_levels():
    arch = load_preset("scalesim_32x32", {"rows": 16, "freq": "500 MHz", "pe.precision": "int4",
                                          "memory.ifmap_sram.size": "128 KiB", "dataflow": "ws"})
    assert (arch.rows, arch.cols) == (16, 32)
    assert arch.freq_hz == 500e6
    assert arch.pe.precision == "int4"
    assert arch.memory.ifmap_sram.size_bytes == 128 * 1024
    assert arch.memory.filter_sram.size_bytes == 64 * 1024
    assert arch.dataflow == "ws"
    assert arch.peak_macs_per_s == 16 * 32 * 500e6


def test_override_inf_bandwidth():
    arch = load_preset("scalesim_128x128", {"memory.dram.bandwidth": "inf"})
    assert math.isinf(arch.memory.dram.bandwidth_bytes_per_s)


@pytest.mark.parametrize("key, hint", [
    ("memory.dram.bandwith", "did you mean 'bandwidth'?"),
    ("memroy.dram.bandwidth", "did you mean 'memory'?"),
    ("row", "did you mean 'rows'?"),
    ("pe.precison", "did you mean 'precision'?"),
])
def test_bad_override_path_is_a_config_error_with_did_you_mean(key, hint):
    with pytest.raises(ConfigError) as info:
        load_preset("tpu_v1_like", {key: 1})
    msg = str(info.value)
    assert "unknown key" in msg and hint in msg


def test_override_below_a_value_is_an_error():
    with pytest.raises(ConfigError) as info:
        load_preset("tpu_v1_like", {"rows.size": 4})
    assert "'rows' is a value, it has no field 'size'" in str(info.value)


def test_bad_override_value_names_the_field_and_the_fix():
    with pytest.raises(ConfigError) as info:
        load_preset("tpu_v1_like", {"memory.dram.bandwidth": "2TB"})
    problem, = info.value.problems
    assert problem.path.endswith("memory.dram.bandwidth")
    assert "write '2 TB/s'" in problem.message


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        load_preset("tpu_v1_like", {"colz": 1, "memory.dram.bandwith": 1})
    text = str(info.value)
    assert "did you mean 'cols'?" in text and "did you mean 'bandwidth'?" in text


def test_override_that_breaks_a_cross_field_rule_is_reported():
    # two rows of 256 int8 operands no longer fit a 256-byte filter buffer
    with pytest.raises(ConfigError) as info:
        load_preset("tpu_v1_like", {"memory.filter_sram.size": "256 B"})
    problem, = info.value.problems
    # reported against the override as the user wrote it
    assert problem.path == "overrides.memory.filter_sram.size"
    assert "smaller than two rows of operands" in problem.message


# --- presets given by file path ------------------------------------------------------------

def test_preset_given_by_file_path(tmp_path, repo):
    src = repo / "architectures/presets/tpu_v1_like.yaml"
    copy = tmp_path / "my_tpu.yaml"
    shutil.copy(src, copy)
    by_path = load_preset(str(copy))
    by_name = load_preset("tpu_v1_like")
    assert by_path.model_dump() == by_name.model_dump()
    assert load_preset_file(str(copy)).name == "my_tpu"
    assert load_preset(str(copy), {"rows": 128}).rows == 128


def test_preset_file_with_an_error_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("template: systolic_array\nname: bad\nrows: 8\ncols: 8\nfreq: '1 GHz'\n"
                    "memory:\n  ifmap_sram: {size: '1 KiB'}\n  filter_sram: {size: '1 KiB'}\n"
                    "  ofmap_sram: {size: '1 KiB'}\n  dram: {bandwith: '1 GB/s'}\n")
    with pytest.raises(ConfigError) as info:
        load_preset(str(path))
    problem, = info.value.problems
    assert problem.file == str(path)
    assert "did you mean 'bandwidth'?" in str(problem)


def test_preset_without_template_is_an_error(tmp_path):
    path = tmp_path / "notemplate.yaml"
    path.write_text("name: x\nrows: 4\n")
    with pytest.raises(ConfigError, match="must name its template"):
        load_preset(str(path))


# --- numbers that follow from published figures ----------------------------------------------

def test_tpu_v1_like_peak():
    # Jouppi et al., ISCA 2017: 256 x 256 MACs at 700 MHz (92 TOPS at 2 ops per MAC)
    arch = load_preset("tpu_v1_like")
    assert arch.peak_macs_per_s == 256 * 256 * 700e6
    assert 2 * arch.peak_macs_per_s == pytest.approx(92e12, rel=0.01)


def test_eyeriss_like_peak_and_buffer():
    # Chen et al., JSSC 2017: 168 PEs; 108 KB global buffer; 200 MHz -> 33.6 GMAC/s
    arch = load_preset("eyeriss_like")
    assert arch.pes == 168
    assert arch.peak_macs_per_s == 168 * 200e6
    mem = arch.memory
    assert mem.ifmap_sram.size_bytes + mem.filter_sram.size_bytes + mem.ofmap_sram.size_bytes == 108 * 1024
    assert arch.pe.precision == "int16"


def test_edge_npu_peak_and_bandwidth():
    # Vela: Ethos-U65-256 = 256 MACs/cycle; U65_High_End: 1 GHz, DRAM 128 bit x 0.234375 x 1 GHz
    arch = load_preset("edge_npu")
    assert arch.pes == 256
    assert arch.peak_macs_per_s == 256e9
    assert arch.memory.dram.bandwidth_bytes_per_s == pytest.approx(128 / 8 * 0.234375 * 1e9)
    total = sum(getattr(arch.memory, b).size_bytes for b in ("ifmap_sram", "filter_sram", "ofmap_sram"))
    assert total == 384 * 1024


def test_scalesim_presets_follow_scalesim_units():
    # SCALE-Sim reads *SramSzkB as multiples of 1024 bytes and counts 1-byte words
    small, big = load_preset("scalesim_32x32"), load_preset("scalesim_128x128")
    assert small.memory.ifmap_sram.size_bytes == 64 * 1024
    assert big.memory.ifmap_sram.size_bytes == 10240 * 1024
    for arch in (small, big):
        assert arch.pe.precision == "int8"
        assert arch.dram_bytes_per_cycle == pytest.approx(10.0)
    assert big.pes == 16 * small.pes


def test_unit_strings_in_presets_parse_as_written(repo):
    # the bandwidth written in each preset is what the architecture holds
    for name in PRESETS:
        pf = load_preset_file(name)
        written = pf.fields.get("memory", {}).get("dram", {}).get("bandwidth")
        if written is not None and str(written).strip() != "inf":
            assert load_preset(name).memory.dram.bandwidth_bytes_per_s == parse_quantity(written, "bandwidth")
