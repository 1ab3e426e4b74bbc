"""Sweeps: point generation (grid, zip, random), validation before anything runs, results written
as points finish, failed points recorded, and --resume after a kill (torn last line)."""

from __future__ import annotations

import csv
import json
import math

import pytest

from simulator.cli import main
from simulator.dse.evaluate import apply_point
from simulator.dse.space import point_id
from simulator.dse.spec import Param
from simulator.dse.study import load_study, study_from_dict
from simulator.dse.sweep import run_sweep
from simulator.experiment import load_experiment
from workloads.errors import ConfigError

BASE = """\
# a small sweep for the tests (tessera run)
name: sweep_test
architecture:
  preset: scalesim_32x32
workload:
  gemm: {M: 64, K: 64, N: 64}
mapper: {fidelity: layer}
engine: analytical
"""


def study_file(tmp_path, sweep: str, base: str = BASE, name: str = "exp.yaml"):
    p = tmp_path / name
    p.write_text(base + sweep)
    return p


def rows_of(folder, name="sweep"):
    out = []
    for line in (folder / f"{name}.jsonl").read_text().splitlines():
        row = json.loads(line)
        row.pop("wall_s")
        out.append(row)
    return out


# ---- point generation ------------------------------------------------------------------------

def test_grid_is_the_cartesian_product_last_path_fastest(tmp_path):
    s = load_study(study_file(tmp_path, """\
sweep:
  grid:
    architecture.rows: [8, 16, 32]
    mapper.dataflow: [os, ws]
"""))
    points, dropped = s.points()
    assert dropped == 0
    assert [p.values for p in points] == [
        {"architecture.rows": r, "mapper.dataflow": d} for r in (8, 16, 32) for d in ("os", "ws")]
    assert [p.index for p in points] == list(range(6))
    assert len({p.id for p in points}) == 6


def test_zip_groups_go_in_lockstep_and_cross_each_other_and_the_grid(tmp_path):
    s = load_study(study_file(tmp_path, """\
sweep:
  grid: {mapper.dataflow: [os, ws]}
  zip:
    - {architecture.rows: [8, 16], architecture.cols: [8, 16]}
    - {architecture.memory.ifmap_sram.size: ["16 KiB", "32 KiB", "64 KiB"],
       architecture.memory.filter_sram.size: ["16 KiB", "32 KiB", "64 KiB"]}
"""))
    points, _ = s.points()
    assert len(points) == 2 * 2 * 3
    for p in points:
        v = p.values
        assert v["architecture.rows"] == v["architecture.cols"]
        assert v["architecture.memory.ifmap_sram.size"] == v["architecture.memory.filter_sram.size"]
    assert points[0].values == {"mapper.dataflow": "os", "architecture.rows": 8, "architecture.cols": 8,
                                "architecture.memory.ifmap_sram.size": "16 KiB",
                                "architecture.memory.filter_sram.size": "16 KiB"}


def test_random_draws_are_seeded_in_range_and_unique(tmp_path):
    sweep = """\
sweep:
  random:
    n: 40
    seed: {seed}
    params:
      architecture.rows: {{low: 8, high: 64, step: 8}}
      architecture.freq: {{low: "500 MHz", high: "2 GHz", log: true}}
      architecture.memory.ifmap_sram.size: {{low: "16 KiB", high: "1 MiB", log: true}}
      mapper.dataflow: [os, ws, is]
"""
    a, _ = load_study(study_file(tmp_path, sweep.format(seed=1))).points()
    b, _ = load_study(study_file(tmp_path, sweep.format(seed=1), name="b.yaml")).points()
    c, _ = load_study(study_file(tmp_path, sweep.format(seed=2), name="c.yaml")).points()
    assert [p.values for p in a] == [p.values for p in b]
    assert [p.values for p in a] != [p.values for p in c]
    assert len(a) == 40 and len({p.id for p in a}) == 40
    for p in a:
        v = p.values
        assert v["architecture.rows"] in range(8, 65, 8)
        assert 500e6 <= v["architecture.freq"] <= 2e9
        size = v["architecture.memory.ifmap_sram.size"]
        assert isinstance(size, int) and 16 * 1024 <= size <= 1024 * 1024
        assert v["mapper.dataflow"] in ("os", "ws", "is")
    assert {p.values["mapper.dataflow"] for p in a} == {"os", "ws", "is"}


def test_random_duplicates_are_kept_once(tmp_path):
    s = load_study(study_file(tmp_path, """\
sweep:
  random: {n: 30, seed: 0, params: {mapper.dataflow: [os, ws]}}
"""))
    points, dropped = s.points()
    assert len(points) == 2 and dropped == 28


def test_point_ids_are_stable_and_name_independent():
    long = Param("architecture.memory.ifmap_sram.size_bytes", "architecture", ("memory", "ifmap_sram", "size_bytes"))
    short = Param("architecture.memory.ifmap_sram.size", "architecture", ("memory", "ifmap_sram", "size_bytes"))
    a = point_id([long], {long.path: "64 KiB"})
    assert a == point_id([short], {short.path: "64 KiB"})
    assert a != point_id([short], {short.path: "32 KiB"})
    assert len(a) == 16 and int(a, 16) >= 0


def test_apply_point_overrides_after_the_files_own_and_sets_fields():
    base = {"name": "x", "architecture": {"preset": "scalesim_32x32", "overrides": {"rows": 16}},
            "workload": {"gemm": {"M": 8, "K": 8, "N": 8}}, "mapper": {"fidelity": "layer"},
            "engine": "analytical", "sweep": {"grid": {}}}
    params = (Param("architecture.rows", "architecture", ("rows",)),
              Param("workload.gemm.M", "workload", ("gemm", "M")),
              Param("mapper.dataflow", "mapper", ("dataflow",)), Param("engine", "engine", ()))
    data = apply_point(base, params, {"architecture.rows": 64, "workload.gemm.M": 32,
                                      "mapper.dataflow": "ws", "engine": "simpy"})
    assert "sweep" not in data
    assert data["architecture"]["overrides"] == {"rows": 64}
    assert data["workload"]["gemm"] == {"M": 32, "K": 8, "N": 8}
    assert data["mapper"] == {"fidelity": "layer", "dataflow": "ws"}
    assert data["engine"] == "simpy"
    assert base["architecture"]["overrides"] == {"rows": 16}  # the base is not touched


# ---- validation --------------------------------------------------------------------------------

def problems_of(path) -> str:
    with pytest.raises(ConfigError) as info:
        load_study(path)
    return str(info.value)


def test_unknown_paths_fail_with_did_you_mean_and_the_exact_line(tmp_path):
    p = study_file(tmp_path, """\
sweep:
  grid:
    architecture.rowz: [8, 16]
    mapper.dataflw: [os]
    workload.bach: [1]
    archtecture.cols: [8]
""")
    text = problems_of(p)
    lines = p.read_text().splitlines()
    for key, hint in (("architecture.rowz", "rows"), ("mapper.dataflw", "dataflow"),
                      ("workload.bach", "batch"), ("archtecture.cols", "architecture")):
        n = next(i for i, line in enumerate(lines, 1) if key in line)
        assert f"{p}:{n}: sweep.grid.{key}:" in text
        assert f"did you mean '{hint}'?" in text


def test_empty_lists_ranges_units_and_zip_lengths_are_errors(tmp_path):
    text = problems_of(study_file(tmp_path, """\
sweep:
  grid:
    architecture.rows: []
    architecture.memory.ifmap_sram.size: ["64 KiB", "10 GB/s"]
    engine: [numba, analytic]
  zip: {architecture.cols: [8, 16], mapper.dataflow: [os]}
  random:
    n: 2
    params:
      architecture.freq: {low: "2 GHz", high: "1 GHz"}
      workload.batch: {low: 1, high: 8, step: 2, log: true}
"""))
    assert "sweep.grid.architecture.rows: empty list" in text
    assert "'10 GB/s' is a bandwidth, not a size" in text
    assert "'analytic' is not an engine" in text and "did you mean 'analytical'?" in text
    assert "zip lists must have equal lengths" in text
    assert "empty range" in text
    assert "either step or log" in text


def test_section_shape_errors(tmp_path):
    assert "give at least one of 'grid', 'zip', 'random'" in problems_of(study_file(tmp_path, "sweep: {}\n"))
    assert "did you mean 'grid'?" in problems_of(study_file(tmp_path, "sweep: {gird: {architecture.rows: [8]}}\n"))
    both = problems_of(study_file(tmp_path, """\
sweep: {grid: {architecture.rows: [8]}}
search: {objectives: [min latency_s], space: {architecture.rows: [8, 16]}}
"""))
    assert "not both" in both
    twice = problems_of(study_file(tmp_path, """\
sweep:
  grid: {architecture.memory.dram.bandwidth: ["1 GB/s"]}
  zip: {architecture.memory.dram.bandwidth_bytes_per_s: [2000000000]}
"""))
    assert "is set twice" in twice


def test_unknown_metric_in_sweep_objectives(tmp_path):
    text = problems_of(study_file(tmp_path, """\
sweep:
  grid: {architecture.rows: [8, 16]}
  objectives: [min latency, max utilisation]
"""))
    assert "unknown metric 'latency'" in text and "did you mean 'latency_s'?" in text
    assert "did you mean 'utilization'?" in text


def test_validate_and_load_experiment_reject_a_bad_sweep(tmp_path, capsys):
    p = study_file(tmp_path, "sweep: {grid: {architecture.rowz: [8]}}\n")
    assert main(["validate", str(p)]) == 2
    assert "did you mean 'rows'?" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        load_experiment(p)


def test_sweeping_the_preset(tmp_path):
    s = load_study(study_file(tmp_path, """\
sweep:
  grid:
    architecture.preset: [scalesim_32x32, edge_npu]
    architecture.rows: [16]
"""))
    out = run_sweep(s, tmp_path / "out")
    assert out.by_status == {"ok": 2}
    names = {r["params"]["architecture.preset"] for r in out.rows}
    assert names == {"scalesim_32x32", "edge_npu"}
    bad = problems_of(study_file(tmp_path, "sweep: {grid: {architecture.preset: [scalesim_32x23]}}\n"))
    assert "did you mean 'scalesim_32x32'?" in bad


# ---- running -----------------------------------------------------------------------------------

def test_sweep_writes_one_row_per_point_with_params_and_metrics(tmp_path):
    s = load_study(study_file(tmp_path, """\
sweep:
  grid:
    architecture.rows: [8, 16]
    architecture.memory.ifmap_sram.size: ["16 KiB", "64 KiB"]
  objectives: [min latency_s, min area_mm2]
"""))
    out = run_sweep(s, tmp_path / "out")
    assert out.total == 4 and out.ran == 4 and out.by_status == {"ok": 4}
    rows = list(csv.DictReader((tmp_path / "out" / "sweep.csv").open()))
    assert [r["point"] for r in rows] == ["0", "1", "2", "3"]
    assert list(rows[0])[:4] == ["point", "point_id", "architecture.rows", "architecture.memory.ifmap_sram.size"]
    for col in ("cycles", "latency_s", "energy_pj", "utilization", "macs", "sram_read_bytes",
                "dram_read_bytes", "area_mm2", "power_w", "sram_bytes", "throughput_per_s",
                "throughput_per_mm2", "status", "error"):
        assert col in rows[0], col
    assert rows[1]["architecture.memory.ifmap_sram.size"] == "64 KiB"
    assert float(rows[1]["area_mm2"]) > float(rows[0]["area_mm2"])
    assert (tmp_path / "out" / "pareto.csv").exists()
    meta = json.loads((tmp_path / "out" / "study.json").read_text())
    assert meta["params"] == ["architecture.rows", "architecture.memory.ifmap_sram.size"]
    assert load_experiment(tmp_path / "out" / "resolved_config.yaml").name == "sweep_test"


def test_failed_points_are_recorded_and_the_sweep_goes_on(tmp_path):
    # rows=4096 needs more than 16 KiB of ifmap buffer (two rows of operands, double-buffered)
    s = load_study(study_file(tmp_path, """\
sweep:
  grid:
    architecture.rows: [8, 8192, 16]
    architecture.memory.ifmap_sram.size: ["8 KiB"]
"""))
    out = run_sweep(s, tmp_path / "out")
    assert out.by_status == {"ok": 2, "error": 1}
    bad = next(r for r in out.rows if r["status"] == "error")
    assert bad["params"]["architecture.rows"] == 8192
    assert "smaller than two rows" in bad["error"] and bad["metrics"] == {}
    csv_rows = list(csv.DictReader((tmp_path / "out" / "sweep.csv").open()))
    assert [r["status"] for r in csv_rows] == ["ok", "error", "ok"]


def test_resume_after_a_kill_mid_write_loses_and_duplicates_nothing(tmp_path):
    p = study_file(tmp_path, "sweep: {grid: {architecture.rows: [8, 12, 16, 24, 32], "
                             "mapper.dataflow: [os, ws]}}\n")
    full = run_sweep(load_study(p), tmp_path / "full")
    expected = rows_of(tmp_path / "full")
    killed = tmp_path / "killed"
    run_sweep(load_study(p), killed)
    lines = (killed / "sweep.jsonl").read_bytes().splitlines(keepends=True)
    torn = b"".join(lines[:4]) + lines[4][: len(lines[4]) // 2]  # killed while writing the 5th row
    (killed / "sweep.jsonl").write_bytes(torn)
    resumed = run_sweep(load_study(p), killed, resume=True)
    assert resumed.resumed == 4 and resumed.ran == full.total - 4
    assert rows_of(killed) == expected
    csv_rows = list(csv.DictReader((killed / "sweep.csv").open()))
    assert [int(r["point"]) for r in csv_rows] == list(range(full.total))
    again = run_sweep(load_study(p), killed, resume=True)  # nothing left to do
    assert again.ran == 0 and rows_of(killed) == expected


def test_resume_reruns_lost_points_and_refuses_another_experiment(tmp_path):
    p = study_file(tmp_path, "sweep: {grid: {architecture.rows: [8, 16, 32]}}\n")
    out = tmp_path / "out"
    run_sweep(load_study(p), out)
    rows = [json.loads(x) for x in (out / "sweep.jsonl").read_text().splitlines()]
    rows[1].update(status="lost", metrics={}, error="worker died")
    (out / "sweep.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    again = run_sweep(load_study(p), out, resume=True)
    assert again.ran == 1 and again.by_status == {"ok": 3}
    other = study_file(tmp_path, "sweep: {grid: {architecture.rows: [8, 16, 32]}}\n",
                       base=BASE.replace("M: 64", "M: 128"), name="other.yaml")
    with pytest.raises(ConfigError, match="different experiment"):
        run_sweep(load_study(other), out, resume=True)


def test_without_resume_a_sweep_starts_over(tmp_path):
    p = study_file(tmp_path, "sweep: {grid: {architecture.rows: [8, 16]}}\n")
    run_sweep(load_study(p), tmp_path / "out")
    again = run_sweep(load_study(p), tmp_path / "out")
    assert again.ran == 2 and len(rows_of(tmp_path / "out")) == 2


def test_save_results_writes_each_points_layers(tmp_path):
    s = load_study(study_file(tmp_path, """\
sweep:
  grid: {mapper.dataflow: [os, ws]}
  save_results: true
"""))
    out = run_sweep(s, tmp_path / "out")
    for row in out.rows:
        folder = tmp_path / "out" / "points" / row["point_id"]
        res = json.loads((folder / "results.json").read_text())
        assert res["params"] == row["params"]
        layers = list(csv.DictReader((folder / "layers.csv").open()))
        assert layers and layers[0]["dataflow"] == row["params"]["mapper.dataflow"]
    assert "result" not in out.rows[0]


def test_study_from_python_matches_plain_runs(tmp_path):
    from simulator.run import run_experiment

    data = {"name": "py", "architecture": {"preset": "scalesim_32x32"},
            "workload": {"gemm": {"M": 64, "K": 64, "N": 64}}, "engine": "analytical",
            "sweep": {"grid": {"architecture.rows": [8, 16]}}}
    out = run_sweep(study_from_dict(data), tmp_path / "out")
    plain = {k: v for k, v in data.items() if k != "sweep"}
    plain["architecture"] = {"preset": "scalesim_32x32", "overrides": {"rows": 16}}
    p = tmp_path / "plain.yaml"
    import yaml

    p.write_text(yaml.safe_dump(plain))
    expected = run_experiment(p).metrics()
    got = out.rows[1]["metrics"]
    assert got["cycles"] == expected["cycles"] and math.isclose(got["energy_pj"], expected["energy_pj"])


# ---- command line ------------------------------------------------------------------------------

def test_tessera_run_runs_a_sweep_and_tessera_plot_draws_it(tmp_path, capsys):
    p = study_file(tmp_path, """\
sweep:
  grid:
    architecture.rows: [8, 16, 32]
    architecture.memory.ifmap_sram.size: ["16 KiB", "64 KiB"]
""")
    out = tmp_path / "out"
    assert main(["run", str(p), "--out", str(out), "--workers", "0"]) == 0
    printed = capsys.readouterr().out
    assert "6 points" in printed and "sweep.csv" in printed
    assert main(["plot", str(out)]) == 0
    pngs = {f.name for f in (out / "plots").glob("*.png")}
    assert "pareto.png" in pngs and "param_architecture_rows.png" in pngs


def test_study_options_on_a_plain_experiment_are_an_error(tmp_path, capsys):
    p = tmp_path / "plain.yaml"
    p.write_text(BASE)
    assert main(["run", str(p), "--out", str(tmp_path / "o"), "--workers", "2"]) == 2
    assert "--workers apply to experiments with a 'sweep:'" in capsys.readouterr().err


def test_every_point_failing_exits_1_with_the_error(tmp_path, capsys):
    p = study_file(tmp_path, "sweep: {grid: {architecture.rows: [100000]}}\n")
    assert main(["run", str(p), "--out", str(tmp_path / "o"), "--workers", "0", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "every point failed (1)" in err and "smaller than two rows of operands" in err


def test_plot_of_a_single_run_and_of_nothing(tmp_path, capsys):
    p = tmp_path / "plain.yaml"
    p.write_text(BASE.replace("gemm: {M: 64, K: 64, N: 64}", "model: alexnet"))
    assert main(["run", str(p), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert main(["plot", str(tmp_path / "run"), "--quiet"]) == 0
    pngs = {f.name for f in (tmp_path / "run" / "plots").glob("*.png")}
    assert {"utilization.png", "roofline.png", "layers.png", "energy.png"} <= pngs
    (tmp_path / "empty").mkdir()
    assert main(["plot", str(tmp_path / "empty")]) == 2
    assert "has no results.json" in capsys.readouterr().err


def test_run_study_from_python(tmp_path):
    from simulator.dse.api import run_study

    data = {"name": "api", "architecture": {"preset": "scalesim_32x32"},
            "workload": {"gemm": {"M": 64, "K": 64, "N": 64}}, "engine": "analytical",
            "sweep": {"zip": {"architecture.rows": [8, 16], "architecture.cols": [8, 16]}}}
    out = run_study(data, tmp_path / "out")
    assert out.by_status == {"ok": 2} and (tmp_path / "out" / "sweep.csv").exists()


def test_an_llm_sweep_records_and_shows_the_token_metrics(tmp_path, capsys):
    (tmp_path / "tiny.json").write_text(json.dumps(
        {"model_type": "llama", "hidden_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
         "intermediate_size": 256, "num_hidden_layers": 2, "vocab_size": 512}))
    base = ("name: llm_sweep\narchitecture: {preset: scalesim_32x32, overrides: {pe.precision: fp16, "
            "memory.dram.size: 1 GiB}}\nworkload: {config: tiny.json, phase: generate, sequence: 32, "
            "generate: 4}\nengine: analytical\n")
    p = study_file(tmp_path, "sweep:\n  grid:\n    workload.batch: [1, 4]\n", base=base)
    assert main(["run", str(p), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    rows = list(csv.DictReader((tmp_path / "out" / "sweep.csv").open()))
    assert all(float(r["throughput_tokens_per_s"]) > 0 and float(r["ttft_s"]) > 0 for r in rows)
    assert float(rows[1]["throughput_tokens_per_s"]) > float(rows[0]["throughput_tokens_per_s"])
    header = next(line for line in capsys.readouterr().out.splitlines() if "status" in line)
    assert header.split()[1:] == ["point", "┃", "batch", "┃", "status", "┃", "ttft_s", "┃", "tpot_s", "┃",
                                  "throughput_tokens_per_s", "┃", "energy_pj_per_token", "┃", "area_mm2", "┃"]
