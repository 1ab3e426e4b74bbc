"""The tutorial path (experiments/tutorials/): every step's file exists, says what to run, what to
look at and what it asks, runs as its README says, and the README's numbers are the runs' numbers.
(``tests/test_experiments.py`` also loads and runs every tutorial file as a smoke test.)"""

from __future__ import annotations

import csv
import re
import shlex
from pathlib import Path

import pytest

from simulator.cli import build_parser, main

TUTORIALS = Path(__file__).resolve().parents[1] / "experiments" / "tutorials"
README = (TUTORIALS / "README.md").read_text(encoding="utf-8")
FLAT = " ".join(README.split())  # the README's prose with its line breaks as spaces
FILES = sorted(TUTORIALS.glob("*.yaml"))


STEPS = ("01", "02", "03", "04", "05", "06", "07")


def test_the_path_is_numbered_and_every_file_is_in_the_readme():
    steps = [f.name[:2] for f in FILES]
    assert steps == list(STEPS)  # one file per step, in order
    for f in FILES:
        assert f"`{f.name}`" in README, f"{f.name} is not in the README"
    for step in STEPS:
        assert re.search(rf"^## {step}: ", README, re.M), f"no section for step {step}"
    assert "(coming)" not in README
    assert "## 06: PIM for decode attention\n" in README


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_each_file_says_what_to_run_what_to_look_at_and_its_question(path):
    comments = "\n".join(l for l in path.read_text().splitlines() if l.startswith("#"))
    for word in ("# Run:", "# Look at:", "# Question:"):
        assert word in comments, f"{path.name}: no '{word}' line"
    assert f"experiments/tutorials/{path.name}" in comments


def _commands() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    return [shlex.split(line) for block in blocks for line in block.splitlines() if line.startswith("tessera ")]


def test_every_command_in_the_readme_parses_and_names_existing_files():
    parser = build_parser()
    commands = _commands()
    assert {c[1] for c in commands} >= {"run", "animate", "explain", "plot"}
    root = TUTORIALS.parents[1]
    for cmd in commands:
        parser.parse_args(cmd[1:])  # exits (SystemExit) on an unknown command or option
        for arg in cmd[2:]:
            if arg.endswith(".yaml"):
                assert (root / arg).is_file(), arg


def _sweep(tmp_path, name: str) -> list[dict]:
    out = tmp_path / name
    assert main(["run", str(TUTORIALS / f"{name}.yaml"), "--out", str(out), "--workers", "0", "--quiet"]) == 0
    with (out / "sweep.csv").open() as f:
        return list(csv.DictReader(f))


def test_01_gives_the_cycles_the_readme_quotes(tmp_path):
    rows = _sweep(tmp_path, "01_one_gemm")
    assert {r["mapper.dataflow"]: int(r["cycles"]) for r in rows} == {"os": 82, "ws": 152, "is": 240}
    assert "82 cycles for os, 152 for ws, 240 for is" in README


def test_03_traffic_falls_with_buffer_size_to_the_compulsory_floor(tmp_path):
    rows = _sweep(tmp_path, "03_buffer_sweep")
    sizes = [r["architecture.memory.ifmap_sram.size"] for r in rows]
    assert sizes == ["16 KiB", "64 KiB", "256 KiB", "1 MiB", "4 MiB"]  # 4x steps, as the README says
    assert "each step 4x larger" in FLAT and "doubling" not in README
    dram = [float(r["dram_read_bytes"]) for r in rows]
    assert dram == sorted(dram, reverse=True) and dram[-1] == dram[-2] < dram[-3]  # flat from 1 MiB
    assert f"falls from {dram[0] / 1e6:.0f} MB to {dram[-1] / 1e6:.0f} MB and stops at 1 MiB" in FLAT
    a, b, c = (f"{1 - after / before:.0%}" for before, after in zip(dram[:3], dram[1:4]))
    assert f"the steps save {a}, {b} and {c} of the reads" in FLAT
    writes = {float(r["dram_write_bytes"]) for r in rows}
    assert len(writes) == 1 and f"`dram_write_bytes` stays at {writes.pop() / 1e6:.1f} MB" in FLAT
    # the tutorial's subject is plotted: its objectives feed `tessera plot`'s metrics and front
    import json

    study = json.loads((tmp_path / "03_buffer_sweep" / "study.json").read_text())
    assert study["objectives"] == ["min dram_read_bytes", "min area_mm2", "min dram_write_bytes"]
    assert (tmp_path / "03_buffer_sweep" / "pareto.csv").is_file()


def test_07_writes_a_pareto_front(tmp_path):
    rows = _sweep(tmp_path, "07_first_sweep")
    assert len(rows) == 12 and all(r["status"] == "ok" for r in rows)
    assert (tmp_path / "07_first_sweep" / "pareto.csv").is_file()


def test_05_mixpe_beats_int8_macs_and_per_group_dequantization_saves_energy(tmp_path):
    rows = _sweep(tmp_path, "05_quantized_pes")
    assert [r["status"] for r in rows] == ["ok"] * 3
    mac, group, weight = ({k: float(r[k]) for k in ("cycles", "energy_pj", "macs")} for r in rows)
    assert mac["cycles"] / group["cycles"] == pytest.approx(2.6, abs=0.05)
    assert group["energy_pj"] < mac["energy_pj"] / 2 + 1e9 and weight["energy_pj"] > group["energy_pj"]
    assert weight["cycles"] > group["cycles"]
    for r in rows:
        assert f"{int(float(r['cycles'])):,}" in README
    import json

    points = [json.loads(line)["metrics"] for line in (tmp_path / "05_quantized_pes" / "sweep.jsonl").open()]
    assert "dequant_ops" not in points[0]
    # per weight: one per MAC of the projections; per group: one per 128 of them
    assert points[2]["dequant_ops"] == 128 * points[1]["dequant_ops"] < points[2]["macs"]
    for p in points[1:]:
        assert f"{int(p['dequant_ops']):,}" in README


def test_02_explain_says_what_the_readme_quotes():
    from simulator.explain import explain_experiment

    ex = explain_experiment(TUTORIALS / "02_cnn_traffic.yaml", engine="analytical")
    advice = ex.layer("layer3.0.conv2").advice
    quoted = re.search(r"\*(weights are\s+re-read .*?removes that)\*", README, re.S).group(1)
    assert " ".join(quoted.split()) in advice


def test_04_prefill_and_decode_sit_where_the_readme_says():
    from simulator.experiment import load_experiment
    from simulator.run import run_experiment

    exp_path = TUTORIALS / "04_llm_roofline.yaml"
    result = run_experiment(exp_path)
    peak, bandwidth = load_experiment(exp_path).architecture.roofline()
    assert round(peak / bandwidth) == 115
    intensity = {}
    for l in result.layers:
        dram = l.counters.get("dram_read_bytes", 0) + l.counters.get("dram_write_bytes", 0)
        if l.macs and dram:
            intensity[l.name] = l.macs / dram
    prefill = [v for k, v in intensity.items() if k.startswith("prefill:") and k != "prefill:lm_head"]
    decode = [v for k, v in intensity.items() if k.startswith("decode:")]
    assert 128 <= min(prefill) and max(prefill) <= 256
    assert max(decode) == pytest.approx(0.5, rel=1e-3)
    assert "128-256 MACs per DRAM byte" in FLAT and "decode layers sit at 0.5 MAC/B" in FLAT
    # right of the ridge is not at the roof: the share of the compute roof each prefill GEMM reaches
    roof = {l.name.split(".", 2)[-1]: l.macs / (l.total_cycles * peak / result.freq_hz)
            for l in result.layers if l.name.startswith("prefill:layers.0.") and l.macs}
    projections = [v for k, v in roof.items() if k not in ("attn.qk", "attn.av")]
    low, high = min(projections), max(projections)
    assert f"the projections and the MLP reach {low * 100:.0f}-{high:.0%} of the compute roof" in FLAT
    assert f"only {roof['attn.qk']:.0%} (`attn.qk`) and {roof['attn.av']:.0%} (`attn.av`)" in FLAT
    assert roof["attn.qk"] < high / 5 and roof["attn.av"] < high / 5


def test_06_puts_decode_attention_on_pim_and_prefill_gemms_on_the_xpu(tmp_path):
    from simulator.experiment import experiment_from_dict
    from simulator.run import run_experiment
    from workloads.yamlio import load_yaml

    rows = _sweep(tmp_path, "06_pim_decode_attention")
    tps = {r["mapper.pim_placement"]: float(r["throughput_tokens_per_s"]) for r in rows}
    assert tps["opb"] > tps["xpu"]
    assert f"gives {tps['xpu']:.0f} and {tps['opb']:.0f} tokens/s" in README
    # the README's other numbers, each within the rounding it is printed with
    ttft = {r["mapper.pim_placement"]: float(r["ttft_s"]) * 1e3 for r in rows}
    quoted = re.search(r"([\d.]+) ms with nothing on PIM, ([\d.]+) ms with `opb`", FLAT)
    assert float(quoted.group(1)) == pytest.approx(ttft["xpu"], abs=0.051)
    assert float(quoted.group(2)) == pytest.approx(ttft["opb"], abs=0.051)
    data, _ = load_yaml(TUTORIALS / "06_pim_decode_attention.yaml")
    data.pop("sweep")
    assert data["mapper"]["pim_placement"] == "opb"
    attention, runs = {}, {}
    for placement in ("xpu", "opb"):
        point = {**data, "mapper": {**data["mapper"], "pim_placement": placement}}
        runs[placement] = run_experiment(experiment_from_dict(point))
        steps = data["workload"]["generate"]
        attention[placement] = sum(l.latency_s for l in runs[placement].layers if l.name.startswith("decode:")
                                   and l.name.endswith((".attn.qk", ".attn.softmax", ".attn.av"))) / steps * 1e3
    quoted = re.search(r"([\d.]+) ms per decode step instead of ([\d.]+) ms on the xPU", FLAT)
    assert float(quoted.group(1)) == pytest.approx(attention["opb"], abs=0.0051)
    assert float(quoted.group(2)) == pytest.approx(attention["xpu"], abs=0.0051)
    r = runs["opb"]
    decode_attention = [l for l in r.layers if l.name.startswith("decode:") and l.name.endswith((".attn.qk", ".attn.av"))]
    prefill_gemms = [l for l in r.layers if l.name.startswith("prefill:layers.") and l.kind == "linear"]
    assert decode_attention and {l.unit for l in decode_attention} == {"pim"}
    assert prefill_gemms and {l.unit for l in prefill_gemms} == {"gpu"}
