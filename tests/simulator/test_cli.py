"""The ``tessera`` command: files written, tables printed, bad input answered with exit code 2."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from simulator.cli import main
from simulator.result import LAYER_CSV_COLUMNS

EXP = """\
name: cli_test
architecture:
  preset: scalesim_32x32
workload:
  model: resnet18
engine: analytical
"""


@pytest.fixture
def exp_file(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text(EXP)
    return p


def test_run_writes_the_result_files(exp_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(exp_file), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "cli_test" in printed and "utilization" in printed
    res = json.loads((out / "results.json").read_text())
    assert res["experiment"] == "cli_test"
    for metric in ("cycles", "latency_s", "energy_pj", "utilization", "macs", "sram_read_bytes",
                   "sram_write_bytes", "dram_read_bytes", "dram_write_bytes"):
        assert metric in res["metrics"]
    rows = list(csv.DictReader((out / "layers.csv").open()))
    assert list(rows[0])[: len(LAYER_CSV_COLUMNS)] == list(LAYER_CSV_COLUMNS)
    assert len(rows) == len(res["layers"])
    assert (out / "resolved_config.yaml").exists()


def test_bad_input_exits_2_lists_problems_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXP.replace("resnet18", "resnet81") + "mapper: {fidelty: tile}\n")
    out = tmp_path / "out"
    assert main(["run", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:" in err and "did you mean 'resnet18'" in err and "did you mean 'fidelity'" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_no_traceback_from_the_console_script(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\narchitecture: {preset: tpu}\nworkload: {model: resnet18}\n")
    proc = subprocess.run([sys.executable, "-m", "simulator.cli", "run", str(bad)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert "is not a preset" in proc.stderr and "Traceback" not in proc.stderr


def test_validate(exp_file, capsys):
    assert main(["validate", str(exp_file)]) == 0
    assert "ok" in capsys.readouterr().out


@pytest.mark.parametrize("what", ["presets", "models", "templates", "pe-kinds", "engines", "passes",
                                  "energy-tables"])
def test_list(what, capsys):
    assert main(["list", what]) == 0
    assert capsys.readouterr().out.strip()


def test_list_pe_kinds_names_every_kind(capsys):
    from architectures.pe import PE_KINDS

    assert main(["list", "pe-kinds"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == list(PE_KINDS)


def test_show_preset_prints_sources(capsys):
    assert main(["show", "preset", "tpu_v1_like"]) == 0
    out = capsys.readouterr().out
    assert "Jouppi" in out and "256" in out


def test_show_unknown_preset(capsys):
    assert main(["show", "preset", "tpu_v2"]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_bad_flag_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "x.yaml", "--engine", "warp"])
    assert e.value.code == 2


def test_out_that_is_a_file_is_refused_and_kept(exp_file, tmp_path, capsys):
    target = tmp_path / "results.txt"
    target.write_text("mine")
    assert main(["run", str(exp_file), "--out", str(target)]) == 2
    assert target.read_text() == "mine"
    assert "not a folder" in capsys.readouterr().err


def test_plots_are_written(exp_file, tmp_path):
    out = tmp_path / "out"
    assert main(["run", str(exp_file), "--out", str(out), "--plots", "--quiet"]) == 0
    for name in ("layers.png", "roofline.png", "energy.png"):
        data = (out / "plots" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
