"""What a study tells its user: validate == run's checks, swept values checked at load, failures
summarised with the sweep key, stale points cleared, labels and chosen metrics in the table and
plots, the roofline of the front, the notebook view, and a single 'interrupted'."""

from __future__ import annotations

import csv
import json
import sys
import types

import pytest

from simulator.cli import main
from simulator.dse.backends import ProcessBackend
from simulator.dse.evaluate import evaluate
from simulator.dse.study import load_study
from simulator.dse.sweep import run_sweep
from simulator.dse.tables import failures, value_label
from workloads.errors import ConfigError

BASE = """\
# a small study for the tests (tessera run)
name: report_test
architecture:
  preset: scalesim_32x32
workload:
  gemm: {M: 64, K: 64, N: 64}
mapper: {fidelity: layer}
engine: analytical
"""


def study_file(tmp_path, section: str, name: str = "exp.yaml"):
    p = tmp_path / name
    p.write_text(BASE + section)
    return p


def line_of(p, text: str) -> int:
    return next(i for i, l in enumerate(p.read_text().splitlines(), 1) if text in l)


# ---- validate == run ---------------------------------------------------------------------------

def test_validate_checks_search_metrics_like_run(tmp_path, capsys):
    p = study_file(tmp_path, """\
search:
  objectives: [min latency_s]
  constraints: ["aera_mm2 <= 3"]
  space: {architecture.rows: [8, 16]}
""")
    assert main(["validate", str(p)]) == 2
    err = capsys.readouterr().err
    assert f"{p}:{line_of(p, 'aera_mm2')}: search.constraints.0: unknown metric 'aera_mm2'" in err
    assert "did you mean 'area_mm2'?" in err


def test_validate_reports_each_bad_sweep_path_at_its_own_line(tmp_path, capsys):
    p = study_file(tmp_path, """\
sweep:
  grid:
    architecture.rowz: [8, 16]
    mapper.dataflw: [os, ws]
    architecture.rows: []
""")
    assert main(["validate", str(p)]) == 2
    err = capsys.readouterr().err
    assert f":{line_of(p, 'rowz')}: sweep.grid.architecture.rowz: unknown key 'rowz'" in err
    assert f":{line_of(p, 'dataflw')}: sweep.grid.mapper.dataflw: unknown key 'dataflw'" in err
    assert f":{line_of(p, 'rows: []')}: sweep.grid.architecture.rows: empty list" in err
    assert f":{line_of(p, 'grid:')}:" not in err


def test_validate_says_what_a_good_study_runs(tmp_path, capsys):
    p = study_file(tmp_path, "sweep: {grid: {architecture.rows: [8, 16], mapper.dataflow: [os, ws]}}\n")
    assert main(["validate", str(p)]) == 0
    assert "a sweep of 4 points over architecture.rows, mapper.dataflow" in capsys.readouterr().out


# ---- swept values: field limits at load, the sweep key in point errors -------------------------

def test_swept_values_outside_a_fields_limits_fail_at_load_at_the_sweep_key(tmp_path):
    p = study_file(tmp_path, """\
sweep:
  grid:
    architecture.rows: [0, 8, 12.5]
    mapper.dataflow: [os, wss]
    architecture.memory.ifmap_sram.size: ["0 KiB", "64 KiB"]
""")
    with pytest.raises(ConfigError) as e:
        load_study(p)
    text = str(e.value)
    assert (f"{p}:{line_of(p, 'rows:')}: sweep.grid.architecture.rows.0: 'architecture.rows' takes a value > 0; "
            "found 0") in text
    assert "sweep.grid.architecture.rows.2: 'architecture.rows' takes a whole number; found 12.5" in text
    assert "sweep.grid.mapper.dataflow.1: 'mapper.dataflow' takes one of" in text and "did you mean 'ws'?" in text
    assert "sweep.grid.architecture.memory.ifmap_sram.size.0:" in text and "found '0 KiB'" in text
    ranged = study_file(tmp_path, """\
search:
  objectives: [min latency_s]
  space: {architecture.rows: {low: 0, high: 64, step: 8}}
""", "ranged.yaml")
    with pytest.raises(ConfigError, match=r"search.space.architecture.rows: 'architecture.rows' takes a value > 0; "
                                          r"found low 0"):
        load_study(ranged)


def test_a_points_error_names_the_sweep_key_not_the_override(tmp_path):
    p = study_file(tmp_path, "sweep:\n  grid:\n    architecture.pe.precision: [int8, int5]\n")
    out = run_sweep(load_study(p), tmp_path / "out")
    bad = next(r for r in out.rows if r["status"] == "error")
    assert bad["error"].startswith(f"{p}:{line_of(p, 'pe.precision')}: sweep.grid.architecture.pe.precision: ")
    assert "overrides" not in bad["error"] and "(this point's value: 'int5')" in bad["error"]


def test_some_points_failing_are_summarised_and_exit_1(tmp_path, capsys):
    p = study_file(tmp_path, """\
sweep:
  grid:
    architecture.pe.precision: [int8, int5, int7]
    mapper.dataflow: [os, ws]
""")
    assert main(["run", str(p), "--out", str(tmp_path / "o"), "--workers", "0"]) == 1
    captured = capsys.readouterr()
    assert "4 error, 2 ok" in captured.out
    err = captured.err
    assert "tessera: 4 of 6 points failed (2 distinct errors" in err
    assert err.count("  2 points: ") == 2 and "found 'int5'" in err and "found 'int7'" in err
    rows = list(csv.DictReader((tmp_path / "o" / "sweep.csv").open()))
    assert [r["status"] for r in rows].count("error") == 4
    good = study_file(tmp_path, "sweep: {grid: {architecture.rows: [8, 16]}}\n", "good.yaml")
    assert main(["run", str(good), "--out", str(tmp_path / "g"), "--workers", "0", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_failures_groups_messages_most_frequent_first():
    rows = [{"status": "ok"}, {"status": "error", "error": "a"}, {"status": "error", "error": "b"},
            {"status": "error", "error": "b"}, {"status": "lost", "error": None}]
    assert failures(rows) == [("b", 2), ("a", 1), ("status lost", 1)]


# ---- stale results -------------------------------------------------------------------------------

def test_a_fresh_run_clears_only_what_the_previous_study_wrote(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import simulator.dse.plots as plots

    big = study_file(tmp_path, """\
sweep:
  grid: {architecture.rows: [8, 12, 16, 24], mapper.dataflow: [os, ws, is]}
  save_results: true
""", "big.yaml")
    small = study_file(tmp_path, """\
sweep:
  grid: {architecture.rows: [8, 32, 64]}
  save_results: true
""", "small.yaml")
    out = tmp_path / "out"
    run_sweep(load_study(big), out, plots=True)
    assert len(list((out / "points").iterdir())) == 12
    (out / "notes.txt").write_text("mine")
    (out / "plots" / "mine.png").write_bytes(b"x")
    (out / "points" / "my_folder").mkdir()
    seen = []
    real = plots.plot_layer_utilization
    monkeypatch.setattr(plots, "plot_layer_utilization", lambda series, *a: seen.append(series) or real(series, *a))
    fresh = run_sweep(load_study(small), out, plots=True)
    assert fresh.total == 3 and len(fresh.rows) == 3
    ids = {r["point_id"] for r in fresh.rows}
    assert {f.name for f in (out / "points").iterdir()} == ids | {"my_folder"}
    assert len(seen[-1]) == 3  # utilization_by_point.png draws the 3 points of this sweep only
    assert (out / "notes.txt").read_text() == "mine" and (out / "plots" / "mine.png").exists()
    assert not (out / "plots" / "param_mapper_dataflow.png").exists()  # the old sweep's plot
    assert len(list(csv.DictReader((out / "sweep.csv").open()))) == 3


def test_resume_with_a_changed_sweep_drops_the_points_it_no_longer_has(tmp_path):
    first = study_file(tmp_path, "sweep: {grid: {architecture.rows: [8, 16, 24]}, save_results: true}\n", "a.yaml")
    second = study_file(tmp_path, "sweep: {grid: {architecture.rows: [8, 16, 32]}, save_results: true}\n", "b.yaml")
    out = tmp_path / "out"
    run_sweep(load_study(first), out)
    again = run_sweep(load_study(second), out, resume=True)
    assert again.resumed == 2 and again.ran == 1 and again.stale == 1
    assert "1 recorded points no longer in the sweep dropped" in again.summary()
    rows = [json.loads(l) for l in (out / "sweep.jsonl").read_text().splitlines()]
    assert [r["params"]["architecture.rows"] for r in rows] == [8, 16, 32]
    assert len(list(csv.DictReader((out / "sweep.csv").open()))) == 3
    assert {f.name for f in (out / "points").iterdir()} == {r["point_id"] for r in rows}


# ---- labels, chosen metrics, bars, roofline, notebook view ---------------------------------------

def test_value_labels():
    assert value_label({"kind": "mixpe", "activations": "int8", "lanes": 2}) == "mixpe/int8"
    assert value_label({"kind": "mac", "precision": "fp16"}) == "mac/fp16"
    assert value_label({"kind": "bitfusion", "max_bits": 8}) == "bitfusion"
    assert value_label({"kind": "lut", "label": "LUT 2-bit"}) == "LUT 2-bit"
    assert value_label({"a": 1, "b": "x"}) == "a=1, b=x"
    assert value_label(0.000123456) == "0.0001235" and value_label("64 KiB") == "64 KiB"


PE_SWEEP = """\
sweep:
  zip:
    architecture.pe:
      - {kind: mac, precision: int8}
      - {kind: mac, precision: fp16, label: "FP16 MAC"}
    workload.precision.activations: [int8, fp16]
  report: {metrics: [latency_s, energy_pj_per_mac, macs_per_s_per_pe_mm2]}
"""


def test_report_metrics_labels_and_study_metrics(tmp_path, capsys):
    p = study_file(tmp_path, PE_SWEEP)
    assert main(["run", str(p), "--out", str(tmp_path / "o"), "--workers", "0"]) == 0
    printed = capsys.readouterr().out
    assert "mac/int8" in printed and "FP16 MAC" in printed and "{'kind'" not in printed
    assert "energy_pj_per" in printed and "utilization" not in printed  # the chosen metrics, not the usual
    header = next(csv.reader((tmp_path / "o" / "sweep.csv").open()))
    assert {"energy_pj_per_mac", "macs_per_s_per_pe_mm2"} <= set(header)
    row = json.loads((tmp_path / "o" / "sweep.jsonl").read_text().splitlines()[0])
    m = row["metrics"]
    assert m["energy_pj_per_mac"] == pytest.approx(m["energy_pj"] / m["macs"])
    assert m["macs_per_s_per_pe_mm2"] == pytest.approx(m["macs"] / m["latency_s"] / m["pe_array_area_mm2"])
    from architectures.presets import build_architecture

    arch = build_architecture({"preset": "scalesim_32x32", "overrides": {"pe": {"kind": "mac", "precision": "int8"}}})
    assert m["pe_array_area_mm2"] == pytest.approx(arch.pe_array_area_mm2)
    assert (m["peak_macs_per_s"], m["dram_bytes_per_s"]) == pytest.approx(arch.roofline())
    bad = study_file(tmp_path, PE_SWEEP.replace("energy_pj_per_mac", "energy_per_mac"), "bad.yaml")
    with pytest.raises(ConfigError, match=r"sweep.report.metrics.1: unknown metric 'energy_per_mac'"):
        load_study(bad)


def test_categorical_parameters_are_bars_with_labels_and_the_front_gets_a_roofline(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import simulator.dse.plots as plots

    figures = []
    real = plots._categorical_figure
    monkeypatch.setattr(plots, "_categorical_figure", lambda *a: figures.append(real(*a)) or figures[-1])
    out = run_sweep(load_study(study_file(tmp_path, PE_SWEEP)), tmp_path / "o", plots=True)
    names = {f.name for f in out.files}
    # the activations are zipped with (determined by) the PE: one figure, for the PE
    assert "param_architecture_pe.png" in names and "param_workload_precision_activations.png" not in names
    assert "roofline_front.png" in names
    (fig,) = figures
    ax = fig.axes[0]
    assert ax.containers  # bars, not lines
    assert [t.get_text() for t in ax.get_xticklabels()] == ["mac/int8", "FP16 MAC"]
    assert [a.get_ylabel() for a in fig.axes if a.get_visible()] == \
        ["latency s", "energy pj per mac", "macs per s per pe mm2"]


def test_default_plots_include_dram_traffic(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import simulator.dse.plots as plots

    figures = []
    real = plots._numeric_figure
    monkeypatch.setattr(plots, "_numeric_figure", lambda *a: figures.append(real(*a)) or figures[-1])
    run_sweep(load_study(study_file(tmp_path, "sweep: {grid: {architecture.memory.ifmap_sram.size: "
                                              "['16 KiB', '64 KiB']}}\n")), tmp_path / "o", plots=True)
    labels = [a.get_ylabel() for a in figures[0].axes if a.get_visible()]
    assert "dram read bytes" in labels and "dram write bytes" in labels


def test_study_roofline_skips_rows_without_a_roof(tmp_path):
    pytest.importorskip("matplotlib")
    from simulator.dse.roofline import plot_study_roofline

    assert plot_study_roofline([{"status": "ok", "metrics": {"macs": 1}}], tmp_path / "r.png", "t") is None
    row = {"status": "ok", "point": 0, "params": {"architecture.rows": 8},
           "metrics": {"macs": 1e9, "latency_s": 1e-3, "dram_read_bytes": 1e7, "dram_write_bytes": 0,
                       "peak_macs_per_s": 1e13, "dram_bytes_per_s": 1e10}}
    assert plot_study_roofline([row], tmp_path / "r.png", "t") == tmp_path / "r.png"


def test_outcomes_show_as_html_tables_in_notebooks(tmp_path):
    out = run_sweep(load_study(study_file(tmp_path, PE_SWEEP)), tmp_path / "o")
    page = out._repr_html_()
    assert page.count("<tr") == 1 + len(out.rows) == 3
    assert "<th>pe</th>" in page and "<th>energy_pj_per_mac</th>" in page
    assert "mac/int8" in page and "points/min" in page


# ---- interrupts and workers that cannot start ----------------------------------------------------

def test_ctrl_c_says_interrupted_once_and_exits_130(tmp_path, capsys, monkeypatch):
    import simulator.dse.sweep as sweep

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "run_sweep", interrupted)
    p = study_file(tmp_path, "sweep: {grid: {architecture.rows: [8, 16]}}\n")
    assert main(["run", str(p), "--out", str(tmp_path / "o"), "--workers", "0"]) == 130
    err = capsys.readouterr().err
    assert err.startswith("interrupted: ") and err.count("\n") == 1 and "--resume" in err


def test_workers_that_cannot_start_are_reported_not_lost(tmp_path, monkeypatch):
    fake = types.ModuleType("__main__")
    fake.__file__ = "<stdin>"
    monkeypatch.setitem(sys.modules, "__main__", fake)
    study = load_study(study_file(tmp_path, "sweep: {grid: {architecture.rows: [8, 16]}}\n"))
    with ProcessBackend(1) as backend:
        with pytest.raises(ConfigError, match=r"main script '<stdin>' is not a file.*--workers 0"):
            list(backend.map(evaluate, study.context(), [(0, "x", {"architecture.rows": 8})]))
