"""Notebook API: SimResult and LayerResult render as HTML tables; plots are one call away."""

from __future__ import annotations

import re

import matplotlib
import pytest

from simulator.experiment import parse_experiment
from simulator.result import LayerResult, SimResult
from simulator.run import run_experiment

EXP = """\
name: nb
architecture: {preset: scalesim_32x32}
workload: {model: resnet18}
engine: analytical
"""


@pytest.fixture(scope="module")
def exp():
    return parse_experiment(EXP)


@pytest.fixture(scope="module")
def result(exp):
    return run_experiment(exp)


def test_repr_html_is_a_table_with_every_layer_and_the_key_metrics(result):
    html = result._repr_html_()
    assert html.startswith("<div") and html.count("<table") == 2
    for metric in ("cycles", "latency", "utilization", "MACs", "energy", "DRAM read / write", "stalls"):
        assert f">{metric}" in html
    assert f"{result.cycles:,}" in html
    rows = re.findall(r"<tr>(.*?)</tr>", html)
    layer_rows = [r for r in rows if any(f">{l.name}<" in r for l in result.layers)]
    assert len(layer_rows) == len(result.layers) == 31
    conv1 = result.layer("conv1")
    row = next(r for r in layer_rows if ">conv1<" in r)
    assert f">{conv1.total_cycles:,}<" in row and f">{conv1.utilization * 100:.1f}<" in row
    for col in ("layer", "dataflow", "cycles", "stall", "utilization %", "mapping eff. %", "DRAM bytes"):
        assert f">{col}</th>" in html


def test_long_results_are_cut_with_a_count(result):
    from simulator.notebook import result_html

    html = result_html(result, max_rows=5)
    assert "... 26 more layers" in html


def test_names_are_escaped_and_layers_render_alone():
    layer = LayerResult(index=0, name="a<b>&c", kind="conv2d", unit="array", dataflow="os", block=None,
                        start_cycle=0, end_cycle=10, compute_cycles=8, stall_cycles=2, stall_memory_cycles=2,
                        stall_dependency_cycles=0, stall_busy_cycles=0, macs=80, vector_ops=0, folds=1,
                        mapping_efficiency=0.5, compute_utilization=0.4, utilization=0.5, latency_s=1e-8,
                        gemm=(2, 4, 10, 1), counters={"dram_read_bytes": 12.0, "energy_pj": 3.0})
    result = SimResult("e<x>", "analytical", "arch", "w", 1e9, 10, 16, (layer,))
    html = result._repr_html_()
    assert "a&lt;b&gt;&amp;c" in html and "a<b>" not in html and "e&lt;x&gt;" in html
    one = layer._repr_html_()
    assert one.startswith("<table") and "a&lt;b&gt;&amp;c" in one
    assert ">dram_read_bytes<" in one and ">mapping efficiency<" in one and ">2 x 4 x 10, 1<" in one


def test_plots_are_one_call_away_and_leave_the_backend_alone(result, exp, tmp_path):
    from matplotlib.figure import Figure

    backend = matplotlib.get_backend()
    layers = result.plot()
    energy = result.plot("energy")
    roofline = result.plot_roofline(exp.architecture)
    for fig, name in ((layers, "layers"), (energy, "energy"), (roofline, "roofline")):
        assert isinstance(fig, Figure) and fig.axes
        fig.savefig(tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    assert len(layers.axes[0].patches) == 4 * len(result.layers)  # compute + three stall kinds
    assert "ridge 102 MAC/B" in roofline.axes[0].get_legend().get_texts()[0].get_text()
    same = result.plot_roofline(dram_bytes_per_s=10e9)
    assert same.axes[0].get_legend().get_texts()[0].get_text() == "roofline (ridge 102 MAC/B)"
    assert matplotlib.get_backend() == backend


def test_roofline_colours_llm_phases(exp):
    from simulator.plots import roofline_figure

    llm = run_experiment(parse_experiment(
        "name: l\narchitecture: {preset: scalesim_32x32}\nworkload: {model: llama-2-7b, phase: generate, "
        "batch: 1, sequence: 64, generate: 2}\nengine: analytical\n"))
    fig = roofline_figure(llm, *exp.architecture.roofline())
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "prefill" in labels and "decode" in labels


def test_bad_plot_requests_say_what_is_expected(result):
    with pytest.raises(ValueError, match="expected one of layers, energy"):
        result.plot("pie")
    with pytest.raises(ValueError, match="needs the architecture"):
        result.plot_roofline()
