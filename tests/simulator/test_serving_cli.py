"""Serving and LLM runs from the command line: the summary's LLM metrics, and load-time errors of
serving experiments (a trace's lines, PE precision and group checks, placement overrides, a
system section judged on its own)."""

from __future__ import annotations

import json

import pytest

from simulator.cli import main
from simulator.experiment import experiment_from_dict
from simulator.report import llm_summary_lines
from workloads.errors import ConfigError
from workloads.serving import read_trace
from workloads.yamlio import load_yaml
from tests.conftest import write_llm_config

@pytest.fixture
def tiny(tmp_path):
    return write_llm_config(tmp_path, num_hidden_layers=2)


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


# ---- the summary: LLM and serving metrics, only where they apply ----------------------------------

def test_a_serving_run_prints_its_latency_throughput_and_energy_per_token(tiny, tmp_path, capsys):
    path = _write(tmp_path, "s.yaml", f"""
name: tiny_serving
architecture: {{preset: h100_logic_pim}}
workload:
  phase: serving
  serving:
    config: {tiny}
    arrival: {{poisson: 100}}
    requests: 6
    input_length: 128
    output_length: 5
    max_batch: 4
engine: analytical
""")
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--max-rows", "0"]) == 0
    out = capsys.readouterr().out
    m = json.loads((tmp_path / "out" / "results.json").read_text())["metrics"]
    assert "requests completed" in out and "6 of 6" in out
    assert "TTFT median / p99" in out and "TBT median / p99" in out
    assert f"{m['throughput_tokens_per_s']:,.0f} generated tokens/s" in out
    assert "per generated token" in out
    # every row is results.json's numbers (median and p99 of TTFT and TBT, ...)
    rows = llm_summary_lines(m)
    assert [k for k, _ in rows] == ["requests completed", "TTFT median / p99", "TBT median / p99",
                                    "throughput", "energy per token"]
    for key, value in rows:
        assert key in out and value in out, (key, value)
    assert f"{m['ttft_s'] * 1e6:.4g} us" in dict(rows)["TTFT median / p99"]  # 0.5 ms: in us


def test_a_prefill_run_prints_ttft_and_prompt_throughput_but_no_time_per_token(tiny, tmp_path, capsys):
    text = f"""
name: tiny_llm
architecture: {{preset: h100_sxm}}
workload: {{config: {tiny}, phase: PHASE, batch: 2, sequence: 128}}
engine: analytical
"""
    assert main(["run", str(_write(tmp_path, "p.yaml", text.replace("PHASE", "prefill"))),
                 "--out", str(tmp_path / "p"), "--max-rows", "0"]) == 0
    out = capsys.readouterr().out
    assert "TTFT (prefill)" in out and "prompt tokens/s" in out and "per prompt token" in out
    assert "time per output token" not in out and "TBT" not in out and "requests completed" not in out
    assert main(["run", str(_write(tmp_path, "g.yaml", text.replace("PHASE", "generate"))),
                 "--out", str(tmp_path / "g"), "--max-rows", "0"]) == 0
    out = capsys.readouterr().out
    assert "TTFT (prefill)" in out and "time per output token" in out and "generated tokens/s" in out
    # a workload that is not an LLM gets none of these rows
    assert main(["run", "experiments/quickstart.yaml", "--out", str(tmp_path / "q"), "--max-rows", "0"]) == 0
    out = capsys.readouterr().out
    assert "tokens/s" not in out and "TTFT" not in out


# ---- load-time errors of serving experiments ------------------------------------------------------

def test_an_oversized_request_names_its_trace_line(tiny, tmp_path, capsys):
    # blank lines and rows out of arrival order: the error names the line the request is on
    trace = _write(tmp_path, "t.csv", "arrival_s,input_tokens,output_tokens\n0.5,10,10\n\n0.1,20,10\n"
                                      "0.3,900,200\n")
    path = _write(tmp_path, "s.yaml", f"""
name: s
architecture: {{preset: h100_sxm}}
workload:
  phase: serving
  serving: {{config: {tiny}, arrival: {{trace: {trace.name}}}, kv_capacity_tokens: 1000}}
engine: analytical
""")
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "request 1 (line 5 of t.csv) needs 1100 tokens of KV cache" in err
    assert "Traceback" not in err


def test_a_missing_trace_column_suggests_only_columns_it_lacks(tmp_path):
    p = _write(tmp_path, "t.csv", "arrival_s,input_tokens\n0,5\n")
    with pytest.raises(ConfigError) as info:
        read_trace(p)
    text = str(info.value)
    assert "output_tokens: missing column" in text and "did you mean" not in text
    p = _write(tmp_path, "u.csv", "arrival_s,input_tokens,output_token\n0,5,5\n")
    with pytest.raises(ConfigError) as info:
        read_trace(p)
    assert "did you mean 'output_token'" in str(info.value)


BAD_PE = """
name: bad_serving_pe
architecture: {preset: mixpe_w4a8}
workload:
  phase: serving
  serving: {config: CONFIG, arrival: {poisson: 100}, requests: 2, input_length: 64, output_length: 4,
            kv_capacity_tokens: 10000}
  precision: {weights: int4, activations: fp16, group_size: 100}
engine: analytical
"""


def test_serving_runs_get_the_pe_precision_and_group_checks(tiny, tmp_path, capsys):
    path = _write(tmp_path, "bad.yaml", BAD_PE.replace("CONFIG", str(tiny)))
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{path}:8: workload.precision.activations: fp16 activations: this MixPE takes int8 activations" in err
    assert "workload.precision.group_size: group size 100 does not divide the reduction dimension K = 1024" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
    # int8 activations (the PE's) and groups of 128 run
    good = _write(tmp_path, "good.yaml", BAD_PE.replace("CONFIG", str(tiny)).replace(
        "activations: fp16, group_size: 100", "activations: int8, group_size: 128"))
    assert main(["run", str(good), "--out", str(tmp_path / "out"), "--quiet"]) == 0


def test_a_placement_override_that_matches_nothing_is_an_error(tmp_path):
    data, lines = load_yaml("experiments/papers/duplex_mixtral.yaml")
    data["mapper"]["placement_overrides"]["*.atn.qk"] = "pim"
    with pytest.raises(ConfigError) as info:
        experiment_from_dict(data, file="d.yaml", lines=lines)
    text = str(info.value)
    assert "mapper.placement_overrides.*.atn.qk: '*.atn.qk' matches no operator" in text
    assert "did you mean '*.attn.qk'?" in text and "d.yaml:" in text
    # serving: the names of iterations with prompt tokens count (prefill attention, row views)
    data, lines = load_yaml("experiments/papers/duplex_mixtral.yaml")
    data["mapper"]["placement_overrides"] = {"layers.31.prefill.attn.qk": "xpu"}
    experiment_from_dict(data, file="d.yaml", lines=lines)
    # a pim override on an architecture without PIM: at load time too
    data, lines = load_yaml("experiments/papers/duplex_mixtral_gpu.yaml")
    data["mapper"]["placement_overrides"] = {"*.attn.qk": "pim"}
    with pytest.raises(ConfigError) as info:
        experiment_from_dict(data, file="g.yaml", lines=lines)
    assert "has no PIM (templates with PIM: gpu_pim, systolic_pim)" in str(info.value)


@pytest.mark.parametrize("change, key", [
    ({"engine": "numbaa"}, "engine: expected one of"),
    ({"mapper.attention": "fuzed"}, "mapper.attention: expected one of"),
])
def test_a_mistake_elsewhere_does_not_turn_into_a_capacity_error(change, key):
    # with the file's validation failing, the workload is still checked, against the system
    # section on its own (4 devices): no spurious "does not fit ... (use more devices)"
    data, lines = load_yaml("experiments/papers/duplex_mixtral.yaml")
    for path, value in change.items():
        if "." in path:
            section, k = path.split(".")
            data[section][k] = value
        else:
            data[path] = value
    with pytest.raises(ConfigError) as info:
        experiment_from_dict(data, file="d.yaml", lines=lines)
    text = str(info.value)
    assert key in text and "kv_capacity" not in text and "does not fit" not in text
    assert len(info.value.problems) == 1
    # a broken system section is reported, and the workload is not judged against it
    data, lines = load_yaml("experiments/papers/duplex_mixtral.yaml")
    data["system"]["devices"] = 0
    with pytest.raises(ConfigError) as info:
        experiment_from_dict(data, file="d.yaml", lines=lines)
    assert "system.devices" in str(info.value) and "does not fit" not in str(info.value)
