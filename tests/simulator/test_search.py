"""Searches: objectives and constraints parse (with units), unknown metrics fail before anything
runs, optuna respects constraints, the Pareto front is non-dominated, runs are deterministic and
--resume replays without simulating again."""

from __future__ import annotations

import csv
import json

import pytest

pytest.importorskip("optuna")

from simulator.cli import main  # noqa: E402
from simulator.dse.pareto import dominates, objective_vector, pareto_front  # noqa: E402
from simulator.dse.search import run_search  # noqa: E402
from simulator.dse.spec import Objective, parse_constraint, parse_objective  # noqa: E402
from simulator.dse.store import row_metric  # noqa: E402
from simulator.dse.study import load_study  # noqa: E402
from workloads.errors import ConfigError  # noqa: E402

BASE = """\
# a small search for the tests (tessera run)
name: search_test
architecture:
  preset: scalesim_32x32
workload:
  gemm: {M: 256, K: 128, N: 256}
mapper: {fidelity: layer}
engine: analytical
"""

SPACE = """\
  space:
    architecture.rows: {low: 8, high: 128, step: 8}
    architecture.cols: [8, 16, 32, 64, 128]
    architecture.memory.ifmap_sram.size: {low: "8 KiB", high: "1 MiB", log: true}
    mapper.dataflow: [os, ws, is]
"""


def search_file(tmp_path, section: str, name: str = "exp.yaml"):
    p = tmp_path / name
    p.write_text(BASE + section)
    return p


def test_objectives_and_constraints_parse_with_units():
    assert parse_objective("min latency_s")[0] == Objective("latency_s", "minimize")
    assert parse_objective("max throughput_per_mm2")[0] == Objective("throughput_per_mm2", "maximize")
    assert "expected 'min METRIC'" in parse_objective("latency_s")[1]
    c, err = parse_constraint("sram_bytes <= 8 MiB")
    assert err is None and c.bound == 8 * 2 ** 20 and c.violation(4 * 2 ** 20) < 0 < c.violation(9 * 2 ** 20)
    assert parse_constraint("latency_s < 5 ms")[0].bound == pytest.approx(5e-3)
    assert parse_constraint("throughput_per_s >= 100")[0].violation(150) == -50
    assert parse_constraint("power_w <= 2 W")[0].bound == 2
    assert "is a size, not a time" in parse_constraint("latency_s <= 5 MiB")[1]
    assert "not supported" in parse_constraint("area_mm2 == 5")[1]
    assert "expected 'METRIC <= VALUE'" in parse_constraint("area_mm2")[1]
    assert "has no unit" in parse_constraint("utilization <= 5 W")[1]


def test_unknown_metrics_fail_before_anything_runs(tmp_path):
    p = search_file(tmp_path, f"""\
search:
  objectives: [min latency, max throughput_per_mm]
  constraints: ["aera_mm2 <= 5", "power <= 3"]
{SPACE}""")
    with pytest.raises(ConfigError) as info:
        load_study(p)
    text = str(info.value)
    for wrong, right in (("latency", "latency_s"), ("throughput_per_mm", "throughput_per_mm2"),
                         ("aera_mm2", "area_mm2"), ("power", "power_w")):
        assert f"unknown metric '{wrong}'" in text and f"did you mean '{right}'?" in text
    lines = p.read_text().splitlines()
    n = next(i for i, line in enumerate(lines, 1) if "aera_mm2" in line)
    assert f"{p}:{n}: search.constraints.0:" in text
    assert not (tmp_path / "results").exists()


def test_bad_search_sections(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_study(search_file(tmp_path, """\
search:
  objectives: [latency_s]
  constraints: ["area_mm2 =< 5"]
  space: {architecture.rowz: [8], mapper.dataflow: [], architecture.cols: {low: 64, high: 8}}
"""))
    text = str(info.value)
    assert "expected 'min METRIC' or 'max METRIC'" in text and "write '<=' instead of '=<'" in text
    assert "did you mean 'rows'?" in text and "empty list" in text and "empty range" in text
    with pytest.raises(ConfigError) as info:
        load_study(search_file(tmp_path, """\
search: {objectives: [min cycles], space: {architecture.rows: [8]}, sampler: nsga3, budget: 0, batch: -1}
""", name="shape.yaml"))
    text = str(info.value)
    assert "did you mean 'nsga2'?" in text and "search.budget" in text and "search.batch" in text


def test_pareto_front_is_the_non_dominated_set():
    objs = [Objective("a", "minimize"), Objective("b", "maximize")]

    def row(a, b, **kw):
        return {"status": "ok", "metrics": {"a": a, "b": b}, **kw}

    rows = [row(1, 1), row(2, 3), row(2, 3), row(3, 2), row(0.5, 0.5), row(4, 4),
            row(0.1, 9, feasible=False), {"status": "error", "metrics": {}}, row(5, float("inf"))]
    front = pareto_front(rows, objs)
    assert [(r["metrics"]["a"], r["metrics"]["b"]) for r in front] == [(0.5, 0.5), (1, 1), (2, 3), (2, 3), (4, 4)]
    assert dominates((1, -3), (3, -2)) and not dominates((1, -3), (1, -3))


def check_front(trials, study):
    front = [r for r in trials if r["status"] == "ok" and r["feasible"]]
    objs = list(study.objectives)
    got = pareto_front(list({r["point_id"]: r for r in trials}.values()), objs)
    vecs = [objective_vector(r, objs) for r in front]
    for r in got:
        v = objective_vector(r, objs)
        assert not any(dominates(w, v) for w in vecs), "a front member is dominated by a feasible trial"
        for c in study.constraints:
            assert c.violation(row_metric(r, c.metric)) <= 0
    return got


@pytest.mark.parametrize("sampler", ["nsga2", "tpe", "random"])
def test_search_respects_constraints_and_writes_trials_and_front(tmp_path, sampler):
    p = search_file(tmp_path, f"""\
search:
  objectives: [min latency_s, min area_mm2]
  constraints: ["area_mm2 <= 3", "sram_bytes <= 512 KiB"]
{SPACE}  budget: 24
  batch: 6
  sampler: {sampler}
""")
    study = load_study(p)
    out = run_search(study, tmp_path / "out")
    assert len(out.trials) == 24
    front = check_front(out.trials, study)
    assert front and [r["point_id"] for r in front] == [r["point_id"] for r in out.pareto]
    assert any(r["feasible"] is False for r in out.trials) or sampler != "random"
    rows = list(csv.DictReader((tmp_path / "out" / "search.csv").open()))
    assert len(rows) == 24 and rows[0]["trial"] == "0" and "feasible" in rows[0]
    pareto = list(csv.DictReader((tmp_path / "out" / "pareto.csv").open()))
    assert len(pareto) == len(front) and all(r["feasible"] == "True" for r in pareto)
    for r in out.trials:
        size = r["params"]["architecture.memory.ifmap_sram.size"]
        assert isinstance(size, int) and 8 * 1024 <= size <= 2 ** 20
        assert r["params"]["architecture.rows"] % 8 == 0


def test_single_objective_search_finds_a_best_feasible_design(tmp_path):
    p = search_file(tmp_path, f"""\
search:
  objectives: [max throughput_per_mm2]
  constraints: ["latency_s <= 100 us"]
{SPACE}  budget: 20
""")
    study = load_study(p)
    out = run_search(study, tmp_path / "out")
    feasible = [r for r in out.trials if r["feasible"]]
    best = max(row_metric(r, "throughput_per_mm2") for r in feasible)
    assert [row_metric(r, "throughput_per_mm2") for r in out.pareto] == [best] * len(out.pareto)


def test_seeded_search_is_deterministic_and_resume_replays_without_simulating(tmp_path):
    p = search_file(tmp_path, f"""\
search:
  objectives: [min latency_s, min energy_pj]
{SPACE}  budget: 16
  batch: 4
  seed: 3
""")
    a = run_search(load_study(p), tmp_path / "a")
    b = run_search(load_study(p), tmp_path / "b")
    assert (tmp_path / "a" / "search.csv").read_text() == (tmp_path / "b" / "search.csv").read_text()
    assert a.evaluated + a.reused == 16
    log = tmp_path / "a" / "search.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:5]) + lines[5][:20])  # killed while writing
    resumed = run_search(load_study(p), tmp_path / "a", resume=True)
    assert resumed.evaluated == a.evaluated - 5
    assert (tmp_path / "a" / "search.csv").read_text() == (tmp_path / "b" / "search.csv").read_text()
    ids = [json.loads(x)["point_id"] for x in log.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == a.evaluated
    assert b.trials == a.trials


def test_tessera_run_prints_the_front(tmp_path, capsys):
    p = search_file(tmp_path, f"""\
search:
  objectives: [min latency_s, min area_mm2]
  constraints: ["area_mm2 <= 4"]
{SPACE}  budget: 12
""")
    assert main(["run", str(p), "--out", str(tmp_path / "out"), "--workers", "0"]) == 0
    printed = capsys.readouterr().out
    assert "Pareto front" in printed and "12 trials" in printed
    assert main(["plot", str(tmp_path / "out"), "--quiet"]) == 0
    assert (tmp_path / "out" / "plots" / "pareto.png").exists()


def test_missing_extra_says_which_to_install(monkeypatch):
    import builtins

    from simulator.dse.extras import require

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name.split(".")[0] in ("optuna", "distributed"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    import importlib
    import sys

    for mod in ("optuna", "distributed"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    monkeypatch.setattr(importlib, "import_module", lambda name: fake(name))
    with pytest.raises(ConfigError, match=r"pip install 'tessera\[dse\]'"):
        require("optuna", "search")
    with pytest.raises(ConfigError, match=r"pip install 'tessera\[cluster\]'"):
        require("distributed", "--cluster")
