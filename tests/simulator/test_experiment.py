"""Experiment files: validation errors users can act on, and the resolved config round trip."""

from __future__ import annotations

import textwrap

import pytest

from simulator.experiment import load_experiment, parse_experiment
from simulator.run import run_experiment
from workloads.errors import ConfigError

GOOD = """\
name: t
architecture:
  preset: scalesim_32x32
workload:
  model: resnet18
"""


def _errors(text: str) -> list:
    with pytest.raises(ConfigError) as err:
        parse_experiment(textwrap.dedent(text), "exp.yaml")
    return list(err.value.problems)


def test_good_experiment_loads():
    exp = parse_experiment(GOOD, "exp.yaml")
    assert exp.architecture.rows == 32
    assert exp.workload.name == "resnet18"
    assert exp.engine in ("analytical", "numba", "simpy")


def test_malformed_yaml_names_the_line():
    (p,) = _errors("name: t\narchitecture: [\n")
    assert p.file == "exp.yaml" and "malformed YAML" in p.message and p.line is not None


def test_duplicate_keys_are_errors():
    (p,) = _errors(GOOD + "name: again\n")
    assert "duplicate key 'name'" in p.message and p.line == 6


def test_unknown_key_did_you_mean_with_line():
    problems = _errors(GOOD + "mapper:\n  dataflw: os\n")
    (p,) = problems
    assert p.path == "mapper.dataflw"
    assert p.hint == "did you mean 'dataflow'?"
    assert p.line == 7


def test_every_problem_in_every_section_is_reported():
    problems = _errors("""\
        name: t
        engine: numbaa
        architecture:
          preset: scalesim_32x32
          overrides:
            memory.dram.bandwidth: "2TB"
            pe.precison: int8
        workload:
          model: resnet18
          batch: 0
        """)
    text = "\n".join(map(str, problems))
    assert "engine" in text and "did you mean 'numba'" in text
    assert "architecture.overrides.memory.dram.bandwidth" in text and "write '2 TB/s'" in text
    assert "did you mean 'precision'" in text
    assert "workload.batch" in text and "greater than 0" in text
    assert all(p.file == "exp.yaml" for p in problems)
    assert all(p.line is not None for p in problems)


def test_unknown_preset_and_model_have_hints():
    (p,) = _errors(GOOD.replace("scalesim_32x32", "scalesim_32x23"))
    assert "is not a preset" in p.message and p.hint == "did you mean 'scalesim_32x32'?"
    (p,) = _errors(GOOD.replace("resnet18", "resnet81"))
    assert p.path == "workload.model" and "did you mean" in (p.hint or "")


def test_precision_the_pe_cannot_run_is_a_load_error():
    (p,) = _errors(GOOD + "  precision: {activations: fp16}\n")
    assert p.path == "workload.precision.activations"
    assert "cannot run" in p.message


def test_exactly_one_workload_source():
    (p,) = _errors(GOOD + "  gemm: {M: 4, K: 4, N: 4}\n")
    assert "exactly one" in p.message


def test_inline_template_and_overrides():
    exp = parse_experiment("""\
name: t
architecture:
  template: systolic_array
  rows: 4
  cols: 4
  freq: 1 GHz
  memory:
    ifmap_sram: {size: 1 KiB}
    filter_sram: {size: 1 KiB}
    ofmap_sram: {size: 1 KiB}
  overrides: {rows: 8}
workload:
  gemm: {M: 16, K: 16, N: 16}
""", "exp.yaml")
    assert exp.architecture.rows == 8 and exp.architecture.cols == 4


def test_preset_value_errors_point_at_the_preset_file(tmp_path):
    preset = tmp_path / "mine.yaml"
    preset.write_text("template: systolic_array\nrows: -4\ncols: 4\nfreq: 1 GHz\nmemory:\n"
                      "  ifmap_sram: {size: 1 KiB}\n  filter_sram: {size: 1 KiB}\n  ofmap_sram: {size: 1 KiB}\n")
    (p,) = _errors(f"name: t\narchitecture: {{preset: {preset}}}\nworkload: {{model: resnet18}}\n")
    assert p.file == str(preset) and p.path == "rows" and p.line == 2


def test_resolved_config_reloads_to_the_same_result(tmp_path):
    from simulator.report import write_results

    exp = parse_experiment(GOOD + "mapper: {dataflow: auto}\n", "exp.yaml")
    first = run_experiment(exp, engine="analytical")
    write_results(first, tmp_path, exp.resolved_config())
    again = load_experiment(tmp_path / "resolved_config.yaml")
    second = run_experiment(again, engine="analytical")
    assert second.metrics() == first.metrics()
    assert again.architecture == exp.architecture


def test_missing_file():
    with pytest.raises(ConfigError, match="file not found"):
        load_experiment("does/not/exist.yaml")


@pytest.mark.parametrize("path", ["experiments/llm/mixtral_8x7b_4dev_ep4.yaml",
                                  "experiments/llm/llama3_70b_4xh100_tp4.yaml"])
def test_resolved_config_keeps_the_system_of_several_devices(tmp_path, path):
    from pathlib import Path

    from simulator.report import write_results

    exp = load_experiment(Path(__file__).resolve().parents[2] / path)
    first = run_experiment(exp, engine="analytical")
    write_results(first, tmp_path, exp.resolved_config())
    again = load_experiment(tmp_path / "resolved_config.yaml")
    assert again.system == exp.system and again.system.devices == 4
    assert run_experiment(again, engine="analytical").metrics() == first.metrics()
