"""The experiments/dse studies, each run small, against the claims their comments make.

Each test runs the shipped file (or a subset of its points, through the same study loader) on
the analytical engine and checks the headline of the file's "What it shows" comment, so a
comment that stops being true fails here. The numbers asserted are the ones measured when the
comments were written, with margins for small model changes.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from simulator.dse.evaluate import evaluate
from simulator.dse.pareto import dominates, objective_vector, pareto_front
from simulator.dse.study import load_study, study_from_dict
from simulator.dse.sweep import run_sweep
from workloads.yamlio import load_yaml

REPO = Path(__file__).resolve().parents[2]
DSE = REPO / "experiments" / "dse"


def _data(name: str) -> dict:
    data, _ = load_yaml(DSE / name)
    return copy.deepcopy(data)


@pytest.mark.parametrize("name", sorted(p.name for p in DSE.glob("*.yaml")))
def test_every_dse_study_loads(name):
    study = load_study(DSE / name)
    assert study.params and study.kind in ("sweep", "search")


def _array_layers(folder: Path, row: dict) -> list[dict]:
    data = json.loads((folder / "points" / row["point_id"] / "results.json").read_text())
    return [l for l in data["layers"] if l.get("unit", "array") == "array"]


def test_draco_depthwise_layers_idle_the_array_and_the_reuse_aware_variant_fixes_it(tmp_path):
    data = _data("draco_mobilenet.yaml")
    data["sweep"]["grid"]["workload.model"] = ["mobilenet_v1", "mobilenet_v1_gc8"]
    out = run_sweep(study_from_dict(data), tmp_path / "draco")
    assert out.by_status == {"ok": 6}
    by = {(r["params"]["workload.model"], r["params"]["mapper.dataflow"]): r for r in out.rows}
    for df in ("os", "ws", "is"):
        base, gc8 = by[("mobilenet_v1", df)], by[("mobilenet_v1_gc8", df)]
        layers = _array_layers(tmp_path / "draco", base)
        dw = [l for l in layers if ".dw" in l["layer"]]
        assert len(dw) == 13  # the 13 depthwise convolutions
        # "they run at a fraction of a percent of the PEs and take most of the network's time"
        assert max(float(l["utilization"]) for l in dw) < 0.005
        dw_time = sum(float(l["latency_s"]) for l in dw)
        assert dw_time > 0.8 * base["metrics"]["latency_s"]  # measured 85-93 %
        # the grouped variant: more MACs (+21 %), but a fuller array and a much shorter run
        assert gc8["metrics"]["macs"] / base["metrics"]["macs"] == pytest.approx(1.21, abs=0.01)
        assert gc8["metrics"]["utilization"] > 1.9 * base["metrics"]["utilization"]  # 3.4-4.8x measured
        assert gc8["metrics"]["latency_s"] < 0.4 * base["metrics"]["latency_s"]  # 2.7-3.9x faster


def test_resnet50_array_sram_front_and_stalls(tmp_path):
    out = run_sweep(load_study(DSE / "resnet50_array_sram.yaml"), tmp_path / "r50")
    assert out.by_status == {"ok": 20}
    # the Pareto front exists, is non-dominated and nothing outside it beats a member
    front = out.pareto
    objectives = [o for o in load_study(DSE / "resnet50_array_sram.yaml").objectives]
    assert 3 <= len(front) < 20
    vectors = [objective_vector(r, objectives) for r in out.rows]
    for r in front:
        v = objective_vector(r, objectives)
        assert not any(dominates(w, v) for w in vectors)
    assert front == pareto_front(out.rows, objectives)

    def stall(r):
        return r["metrics"]["stall_memory_cycles"] / r["metrics"]["cycles"]

    rows_by_size: dict[int, list[dict]] = {}
    for r in out.rows:
        rows_by_size.setdefault(r["params"]["architecture.rows"], []).append(r)
    assert all(stall(r) == 0 for r in rows_by_size[16])
    assert all(0.1 < stall(r) < 0.5 for r in rows_by_size[64])  # "19-47 % at 64x64"
    assert all(stall(r) > 0.45 for r in rows_by_size[128])  # "about half or more at 128x128 (50-72 %)"
    assert all(stall(r) > 0.65 for r in rows_by_size[256])  # "most at 256x256 (71-85 %)"
    assert all(r["metrics"]["utilization"] < 0.07 for r in rows_by_size[256])  # "2-6 %"
    # from 64x64 up, the largest buffers buy more than the next array size
    for size in (64, 128):
        small_buffers = min(rows_by_size[size], key=lambda r: r["metrics"]["sram_bytes"])
        big_buffers = max(rows_by_size[size], key=lambda r: r["metrics"]["sram_bytes"])
        bigger_array = min(rows_by_size[size * 2], key=lambda r: r["metrics"]["sram_bytes"])
        assert big_buffers["metrics"]["latency_s"] < bigger_array["metrics"]["latency_s"] < \
            small_buffers["metrics"]["latency_s"]


def test_llama_decode_search_respects_the_area_budget(tmp_path):
    pytest.importorskip("optuna")
    from simulator.dse.search import run_search

    data = _data("llama3_8b_decode_search.yaml")
    data["search"]["budget"] = 8
    out = run_search(study_from_dict(data), tmp_path / "llama")
    assert len(out.trials) == 8 and out.pareto
    for r in out.pareto:
        assert r["feasible"] and r["metrics"]["area_mm2"] <= 50
    for r in out.trials:
        assert r["feasible"] == (r["metrics"]["area_mm2"] <= 50)


def _decode(study, rows, cols, buffers, dataflow, weights):
    values = {"architecture.rows": rows, "architecture.cols": cols, "mapper.dataflow": dataflow,
              "workload.precision.weights": weights,
              **{f"architecture.memory.{b}_sram.size": buffers for b in ("ifmap", "filter", "ofmap")}}
    row = evaluate(study.context(), (0, "x", values))
    assert row["status"] == "ok", row["error"]
    return row["metrics"]


def test_llama_decode_int4_halves_weight_bytes_but_gains_little():
    """The comment's mechanism: int4 is applied (the weights' DRAM bytes halve) but decode is
    bound by the folds as much as by DRAM, so it gains 10-15 % on a fast design, 0 on a small one."""
    study = load_study(DSE / "llama3_8b_decode_search.yaml")
    fast8, fast4 = (_decode(study, 256, 64, "1 MiB", "is", w) for w in ("int8", "int4"))
    small8, small4 = (_decode(study, 64, 128, "256 KiB", "is", w) for w in ("int8", "int4"))
    kv_and_acts = 0.6e9 * 64  # the KV cache and activations, read every step at int8 (about 0.5 GB)
    assert fast4["dram_read_bytes"] < 0.55 * fast8["dram_read_bytes"] + kv_and_acts
    assert fast4["dram_read_bytes"] > 0.45 * fast8["dram_read_bytes"]
    gain = fast4["throughput_tokens_per_s"] / fast8["throughput_tokens_per_s"]
    assert 1.05 < gain < 1.2  # measured 1.11
    assert small4["throughput_tokens_per_s"] == pytest.approx(small8["throughput_tokens_per_s"], rel=1e-9)
    assert small8["area_mm2"] == pytest.approx(10.4, abs=0.1)
    assert 0.25 < small8["throughput_tokens_per_s"] / fast4["throughput_tokens_per_s"] < 0.37  # "31 %"
    assert max(m["utilization"] for m in (fast8, fast4, small8, small4)) < 0.1  # "1-10 %"
