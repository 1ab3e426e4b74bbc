"""The timeline export: Chrome trace-event JSON that Perfetto and chrome://tracing open."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mappers.pipeline import MapperOptions
from simulator.cli import main
from simulator.engines import get_engine
from simulator.program import LayerInfo, ProgramBuilder, Resource
from simulator.run import lower_workload
from simulator.trace import write_trace
from tests.conftest import small_array
from workloads.registry import build_model


def check_trace(doc: dict) -> tuple[list[dict], dict[int, str], dict[tuple[int, int], str]]:
    """What a trace viewer needs: X events with ts/dur/pid/tid, named processes and threads."""
    events = doc["traceEvents"]
    processes = {e["pid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
               if e["ph"] == "M" and e["name"] == "thread_name"}
    slices = [e for e in events if e["ph"] == "X"]
    assert slices
    for e in slices:
        assert {"name", "ts", "dur", "pid", "tid"} <= set(e)
        assert isinstance(e["ts"], (int, float)) and isinstance(e["dur"], (int, float)) and e["dur"] >= 0
        assert e["pid"] in processes and (e["pid"], e["tid"]) in threads
    return slices, processes, threads


def small_program():
    b = ProgramBuilder(2e9, [Resource("array", "unit", lanes=2), Resource("dram", "channel", bytes_per_cycle=4.0,
                                                                         latency_cycles=3)])
    b.layers.append(LayerInfo(index=0, name="conv1", kind="conv", unit="array", dataflow="os", block=None,
                              macs=64, vector_ops=0, compute_cycles=10, folds=2, mapping_efficiency=None,
                              compute_utilization=None, peak_macs_per_cycle=4, gemm=None))
    ld = b.transfer("dram", 40, layer=0, label="conv1 load 0")
    c0 = b.compute("array", 6, layer=0, deps=[ld], label="conv1 compute 0", count=3)
    c1 = b.compute("array", 4, layer=0, deps=[ld], label="conv1 compute 1")
    b.transfer("dram", 8, layer=0, deps=[c0, c1], label="conv1 store 0")
    return b.build()


@pytest.mark.parametrize("engine", ["numba", "simpy"])
def test_task_trace(engine, tmp_path):
    result = get_engine(engine).run(small_program(), experiment="tiny")
    path = write_trace(result, tmp_path / "trace.json")
    assert path == tmp_path / "trace.json"
    assert [p.name for p in tmp_path.iterdir()] == ["trace.json"]  # no temporary file left behind
    doc = json.loads(path.read_text())
    slices, processes, threads = check_trace(doc)
    assert sorted(processes.values()) == ["channel dram", "unit array"]
    assert sorted(threads.values()) == ["array lane 0", "array lane 1", "dram"]
    by_name = {e["name"]: e for e in slices}
    assert set(by_name) == {"conv1 load 0", "conv1 compute 0", "conv1 compute 1", "conv1 store 0"}
    load, c0, c1 = by_name["conv1 load 0"], by_name["conv1 compute 0"], by_name["conv1 compute 1"]
    us = 1e6 / 2e9  # microseconds per cycle at 2 GHz
    assert load["ts"] == 0 and load["dur"] == pytest.approx(10 * us)  # the channel is held 10 cycles
    assert load["args"] == {"layer": "conv1", "start_cycle": 0, "bytes": 40, "channel_cycles": 10,
                            "arrival_cycle": 13}
    assert c0["ts"] == pytest.approx(13 * us) and c0["dur"] == pytest.approx(6 * us)
    assert c0["args"]["cycles"] == 6 and c0["args"]["tiles"] == 3 and c0["args"]["layer"] == "conv1"
    assert c0["tid"] != c1["tid"] and c0["pid"] == c1["pid"]  # two lanes, two tracks
    assert doc["otherData"]["experiment"] == "tiny" and doc["otherData"]["cycles"] == result.cycles


def test_analytical_trace_has_one_slice_per_layer(tmp_path):
    program = lower_workload(build_model("alexnet"), small_array(16, 16), MapperOptions(fidelity="layer"))
    result = get_engine("analytical").run(program)
    doc = json.loads(write_trace(result, tmp_path / "t.json").read_text())
    slices, processes, _ = check_trace(doc)
    assert len(slices) == len(result.layers)
    assert {e["name"] for e in slices} == {layer.name for layer in result.layers}
    assert doc["otherData"]["timeline"] == "layer"
    fc = next(e for e in slices if e["name"] == result.layers[-1].name)
    assert fc["args"]["macs"] == result.layers[-1].macs and fc["args"]["dram_bytes"] > 0


def test_a_result_without_timeline_still_gives_layer_slices(tmp_path):
    program = lower_workload(build_model("alexnet"), small_array(16, 16), MapperOptions(fidelity="layer"))
    result = dataclasses.replace(get_engine("numba").run(program), timeline=None)
    doc = json.loads(write_trace(result, tmp_path / "t.json").read_text())
    slices, processes, _ = check_trace(doc)
    assert len(slices) == len(result.layers)
    assert sorted(processes.values()) == sorted(f"unit {u}" for u in {l.unit for l in result.layers})


def test_tile_trace_of_a_network(tmp_path):
    program = lower_workload(build_model("resnet18"), small_array(32, 32, bandwidth="16 GB/s"),
                             MapperOptions(fidelity="tile", max_tiles_per_layer=8))
    result = get_engine("numba").run(program)
    doc = json.loads(write_trace(result, tmp_path / "t.json", "r18").read_text())
    slices, processes, _ = check_trace(doc)
    assert len(slices) == program.n_tasks
    assert {"unit array", "unit vector", "channel dram"} <= set(processes.values())
    assert doc["otherData"]["experiment"] == "r18"
    tracks: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for e in slices:
        tracks.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["ts"] + e["dur"]))
    for spans in tracks.values():  # slices on one track never overlap
        spans.sort()
        assert all(a[1] <= b[0] + 1e-9 for a, b in zip(spans, spans[1:]))


def test_cli_run_with_trace(tmp_path):
    exp = tmp_path / "exp.yaml"
    exp.write_text("name: traced\narchitecture:\n  preset: scalesim_32x32\nworkload:\n  model: alexnet\n"
                   "mapper: {fidelity: tile, max_tiles_per_layer: 4}\nengine: numba\n")
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out), "--trace", "--quiet"]) == 0
    doc = json.loads((out / "trace.json").read_text())
    check_trace(doc)
    assert doc["otherData"]["experiment"] == "traced" and doc["otherData"]["engine"] == "numba"
