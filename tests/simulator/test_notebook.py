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


# ---- pictures, micro-simulations, explanations ---------------------------------------------------

def test_a_micro_run_gives_its_animation_and_heat_maps_as_displayable_pictures(tmp_path):
    import io

    from PIL import Image

    from simulator.micro import random_operands, simulate_gemm
    from simulator.notebook import Picture
    from workloads.ops import GemmShape

    A, B = random_operands(GemmShape(4, 8, 4))
    run = simulate_gemm(A, B, 4, 4, "ws", record=True)
    gif = run.gif(frame_ms=100)
    assert isinstance(gif, Picture) and gif.format == "gif" and gif._repr_png_() is None
    with Image.open(io.BytesIO(gif.data)) as img:
        assert img.format == "GIF" and img.n_frames == 1 + run.cycles == 29
    assert gif._repr_html_().startswith('<img src="data:image/gif;base64,')
    assert gif.save(tmp_path / "ws.gif").read_bytes() == gif.data
    heat = run.heatmaps()
    assert heat.format == "png" and heat._repr_png_() == heat.data
    with Image.open(io.BytesIO(heat.data)) as img:
        assert img.format == "PNG" and img.size[0] > 500
    html = run._repr_html_()
    assert "GEMM 4x8x4 (MxKxN) on a 4x4 array, ws dataflow" in html and "fold model: 28 cycles" in html
    assert "run.gif() animates it" in html and "data:image/png;base64," in html
    unrecorded = simulate_gemm(A, B, 4, 4, "ws")
    with pytest.raises(ValueError, match="record=True"):
        unrecorded.gif()
    assert "simulate with record=True" in unrecorded._repr_html_()


def test_a_picture_refuses_an_unknown_format():
    from simulator.notebook import Picture

    with pytest.raises(ValueError, match="expected png or gif"):
        Picture(b"", "jpeg")


def test_an_explanation_renders_as_a_table_of_its_slowest_layers(exp):
    from simulator.explain import explain_experiment
    from simulator.notebook import EXPLAIN_COLUMNS, explanation_html

    ex = explain_experiment(exp)
    html = ex._repr_html_()
    for col in EXPLAIN_COLUMNS:
        assert f">{col}</th>" in html
    rows = re.findall(r"<tr>(.*?)</tr>", html)
    # resnet18 has 31 layers: as `tessera explain` does, the 15 slowest, slowest first
    assert len(rows) == 1 + 15 and "the 15 layers taking the most cycles, of 31" in html
    slowest = sorted(ex.layers, key=lambda l: -l.cycles)[:15]
    assert [re.search(r"<td[^>]*>(.*?)</td>", r).group(1) for r in rows[1:]] == [l.name for l in slowest]
    every = explanation_html(ex, top=31)
    assert len(re.findall(r"<tr>", every)) == 1 + 31
    conv1 = ex.layer("conv1")
    row = next(r for r in re.findall(r"<tr>(.*?)</tr>", every) if ">conv1<" in r)
    assert f">{conv1.cycles:,}<" in row and f"{conv1.bound} ({conv1.bound_share:.0%})" in row
    assert "ridge 102 MAC/B" in html  # the summary lines come first
    assert "<script" not in html
    assert str(ex).splitlines() == ex.lines()
