"""The mapping each layer ran with (dataflow, loop order, blocking, how it was chosen) in the
result files: ``layers.csv`` and ``results.json`` "layers" (``LayerResult.mapping``)."""

from __future__ import annotations

import csv
import json

from mappers.annotations import MappingChoice
from simulator.cli import main
from simulator.report import layers_csv
from simulator.result import LAYER_CSV_COLUMNS, LayerResult, SimResult

MAPPING_COLUMNS = ("loop_order", "loop_block", "chosen_by", "mapping_candidates", "mapping_rejected")


def _layer(i: int, unit: str, mapping: MappingChoice | None) -> LayerResult:
    return LayerResult(index=i, name=f"l{i}", kind="conv2d" if mapping else "pool", unit=unit,
                       dataflow="ws" if mapping else None, block=None, start_cycle=0, end_cycle=10,
                       compute_cycles=10, stall_cycles=0, stall_memory_cycles=0, stall_dependency_cycles=0,
                       stall_busy_cycles=0, macs=100, vector_ops=0, folds=2, mapping_efficiency=1.0,
                       compute_utilization=1.0, utilization=0.5, latency_s=1e-8, gemm=None,
                       counters={"dram_read_bytes": 5.0, "energy_pj": 1.0}, mapping=mapping)


def test_rows_carry_the_mapping_and_keep_the_stable_columns_first():
    searched = MappingChoice("rows_outer", 4, "search", 24, 3)
    fixed = MappingChoice("cols_outer", 1, "architecture")
    r = SimResult("e", "analytical", "a", "w", 1e9, 10, 64,
                  (_layer(0, "array", searched), _layer(1, "vector", None), _layer(2, "array", fixed)))
    rows = r.to_dict()["layers"]
    assert {k: rows[0][k] for k in MAPPING_COLUMNS} == {
        "loop_order": "rows_outer", "loop_block": 4, "chosen_by": "search", "mapping_candidates": 24,
        "mapping_rejected": 3}
    assert rows[0]["dataflow"] == "ws"
    assert not set(MAPPING_COLUMNS) & set(rows[1])  # a vector layer has no mapping choice
    assert (rows[2]["chosen_by"], rows[2]["mapping_candidates"]) == ("architecture", "")
    table = list(csv.reader(layers_csv(r).splitlines()))
    assert table[0][: len(LAYER_CSV_COLUMNS)] == list(LAYER_CSV_COLUMNS)
    assert set(MAPPING_COLUMNS) <= set(table[0])
    by_name = [dict(zip(table[0], row)) for row in table[1:]]
    assert by_name[0]["loop_block"] == "4" and by_name[1]["loop_order"] == ""


def test_a_search_run_writes_its_choices_into_layers_csv_and_results_json(tmp_path, capsys):
    exp = tmp_path / "exp.yaml"
    exp.write_text("""\
name: search_columns
architecture:
  preset: scalesim_32x32
  overrides: {memory.ifmap_sram.size: "16 KiB", memory.filter_sram.size: "16 KiB"}
workload:
  model: resnet18
mapper:
  dataflow: auto
  search: {budget: 16, seed: 0}
engine: analytical
""")
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    capsys.readouterr()
    rows = list(csv.DictReader((out / "layers.csv").open()))
    assert list(rows[0])[: len(LAYER_CSV_COLUMNS)] == list(LAYER_CSV_COLUMNS)
    convs = [r for r in rows if r["unit"] == "array"]
    assert convs and all(r["chosen_by"] == "search" for r in convs)
    assert all(r["loop_order"] in ("cols_outer", "rows_outer") and int(r["loop_block"]) >= 1 for r in convs)
    assert all(1 <= int(r["mapping_candidates"]) <= 16 and int(r["mapping_rejected"]) >= 0 for r in convs)
    assert any(r["loop_order"] == "rows_outer" or r["loop_block"] != "1" for r in convs)  # not all default
    layers = json.loads((out / "results.json").read_text())["layers"]
    conv = next(layer for layer in layers if layer["unit"] == "array")
    assert conv["chosen_by"] == "search" and conv["dataflow"] in ("os", "ws", "is")
    auto = tmp_path / "auto.yaml"
    auto.write_text(exp.read_text().replace("  search: {budget: 16, seed: 0}\n", ""))
    assert main(["run", str(auto), "--out", str(tmp_path / "auto")]) == 0
    rows = list(csv.DictReader((tmp_path / "auto" / "layers.csv").open()))
    convs = [r for r in rows if r["unit"] == "array"]
    assert {(r["chosen_by"], r["mapping_candidates"], r["loop_order"], r["loop_block"]) for r in convs} == {
        ("auto", "3", "cols_outer", "1")}
