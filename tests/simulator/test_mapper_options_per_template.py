"""Mapper options a template's planner would ignore are load-time errors, never silently dropped
(mappers.pipeline.TEMPLATE_OPTIONS): at load (file and line), from the CLI (exit 2), and from
Python (the plan pass)."""

from __future__ import annotations

import textwrap

import pytest

from architectures.presets import build_architecture
from mappers.pipeline import TEMPLATE_OPTIONS, MapperOptions, option_templates, template_option_problems
from simulator.cli import main
from simulator.experiment import experiment_from_dict, load_experiment, parse_experiment
from simulator.run import simulate
from workloads.errors import ConfigError
from workloads.registry import build_model

EXP = """\
name: t
architecture:
  preset: {preset}
workload:
  model: resnet18
engine: analytical
mapper:
{mapper}
"""


def _problems(preset: str, mapper: str) -> list:
    text = EXP.format(preset=preset, mapper=textwrap.indent(textwrap.dedent(mapper), "  "))
    with pytest.raises(ConfigError) as err:
        parse_experiment(text, "exp.yaml")
    return list(err.value.problems)


def test_search_on_a_gpu_names_the_key_the_template_and_where_it_works():
    (p,) = _problems("a100_80gb", "search: {budget: 8}")
    assert (p.file, p.path, p.line) == ("exp.yaml", "mapper.search", 8)
    assert "template 'gpu'" in p.message and "a100_80gb" in p.message
    assert "no mapping search" in p.message
    assert "systolic_array, systolic_pim" in p.message


@pytest.mark.parametrize("preset,mapper,key,supported", [
    ("a100_80gb", "dataflow: os", "mapper.dataflow", "systolic_array"),
    ("sn40l", "dataflow: ws", "mapper.dataflow", "systolic_array"),
    ("fusemax_cloud", "search: {}", "mapper.search", "systolic_array"),
    ("tpu_v1_like", "spatial_fusion: false", "mapper.spatial_fusion", "rdu"),
    ("a100_80gb", "attention_mapping: flat", "mapper.attention_mapping", "fusemax"),
    ("tpu_v1_like", "pim_placement: pim", "mapper.pim_placement", "gpu_pim"),
    ("a100_80gb", "expert_coprocessing: true", "mapper.expert_coprocessing", "systolic_pim"),
])
def test_every_option_a_template_ignores_is_reported(preset, mapper, key, supported):
    (p,) = _problems(preset, mapper)
    assert p.path == key and supported in p.message
    assert "has no effect" in p.message


def test_all_ignored_options_are_reported_together_with_other_problems():
    text = EXP.format(preset="a100_80gb", mapper="  dataflow: os\n  search: {}").replace("resnet18", "resnet81")
    with pytest.raises(ConfigError) as err:
        parse_experiment(text + "enigne: numba\n", "exp.yaml")  # a workload and a top-level typo too
    paths = {p.path for p in err.value.problems}
    assert {"mapper.dataflow", "mapper.search", "workload.model", "enigne"} <= paths, paths


@pytest.mark.parametrize("preset,mapper", [
    ("tpu_v1_like", "search: {budget: 8}\ndataflow: auto"),
    ("tpu_v4_like_logic_pim", "search: {}\ndataflow: ws\npim_placement: xpu"),  # systolic_pim
    ("sn40l", "spatial_fusion: false"),
    ("fusemax_cloud", "attention_mapping: flat"),
    ("h100_logic_pim", "expert_coprocessing: true"),
    ("a100_80gb", "dataflow: auto"),  # "the best this template has": true of every template
])
def test_options_the_template_reads_are_accepted(preset, mapper):
    text = EXP.format(preset=preset, mapper=textwrap.indent(mapper, "  "))
    if preset in ("fusemax_cloud",):
        text = text.replace("resnet18", "bert-base")
    parse_experiment(text, "exp.yaml")


def test_default_values_pass_so_a_resolved_config_reloads(repo):
    # a resolved config lists every mapper option with its default, on any template
    for path in ("experiments/llm/llama2_7b_a100_decode.yaml", "experiments/presets/sn40l_llama2_7b.yaml"):
        exp = load_experiment(repo / path)
        again = experiment_from_dict(exp.resolved_config())
        assert again.mapper == exp.mapper


def test_the_cli_exits_2_without_a_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXP.format(preset="a100_80gb", mapper="  search: {budget: 8}"))
    out = tmp_path / "out"
    assert main(["run", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:8: mapper.search:" in err and "Traceback" not in err
    assert not out.exists()


def test_python_callers_get_the_same_error_from_the_plan_pass():
    with pytest.raises(ConfigError, match="mapper.search: a mapping search has no effect"):
        simulate(build_model("resnet18"), build_architecture("a100_80gb"), mapper={"search": {}})


def test_the_table_names_real_options_and_registered_templates():
    from architectures.base import TEMPLATES, _load_builtin

    _load_builtin()
    for option in TEMPLATE_OPTIONS:
        assert option in MapperOptions.model_fields
        assert option_templates(option) and set(option_templates(option)) <= set(TEMPLATES)
    assert template_option_problems(MapperOptions(), build_architecture("a100_80gb")) == []
