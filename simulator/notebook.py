"""HTML views and pictures for Jupyter: results, explanations, micro-simulations.

Contract: ``result_html(result)`` is a self-contained HTML fragment: a summary table of the key
metrics, then one row per layer (the columns of ``tessera run``'s table), at most ``max_rows``
layers (the rest counted in a last row). ``layer_html(layer)`` is a two-column table of one
layer's fields and counters. ``explanation_html(explanation)`` is ``tessera explain``'s report
as a table (``Explanation._repr_html_``). ``micro_html(run)`` shows a ``MicroRun``: the title
frame's lines and, with matplotlib, its heat maps. ``Picture`` holds PNG or GIF bytes and
displays itself (``_repr_png_``, ``_repr_html_``) without IPython being imported. Every name is
HTML-escaped; no scripts, no external styles.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from html import escape
from pathlib import Path

from simulator.result import LayerResult, SimResult

__all__ = ["result_html", "layer_html", "explanation_html", "micro_html", "Picture", "LAYER_COLUMNS",
           "EXPLAIN_COLUMNS"]

LAYER_COLUMNS = ("layer", "kind", "unit", "dataflow", "cycles", "compute", "stall", "utilization %",
                 "mapping eff. %", "MACs", "DRAM bytes", "energy uJ")
_STYLE = "border-collapse:collapse;font-family:monospace;font-size:12px"
_CELL = "padding:2px 8px;border-bottom:1px solid #ddd"


def _si(value: float, unit: str = "") -> str:
    for scale, p in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {p}{unit}"
    return f"{value:.3g} {unit}".rstrip()


def _table(header: list[str] | None, rows: list[list[str]], caption: str | None = None) -> str:
    out = [f'<table style="{_STYLE}">']
    if caption:
        out.append(f'<caption style="text-align:left;font-weight:bold">{escape(caption)}</caption>')
    if header:
        out.append("<thead><tr>" + "".join(f'<th style="{_CELL};text-align:left">{escape(h)}</th>'
                                           for h in header) + "</tr></thead>")
    out.append("<tbody>")
    for row in rows:
        out.append("<tr>" + "".join(f'<td style="{_CELL}">{escape(str(c))}</td>' for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _dram(layer: LayerResult) -> float:
    return layer.counters.get("dram_read_bytes", 0) + layer.counters.get("dram_write_bytes", 0)


def result_html(result: SimResult, max_rows: int = 60) -> str:
    m = result.metrics()
    summary = [
        ["cycles", f"{int(m['cycles']):,}"],
        ["latency", f"{m['latency_s'] * 1e3:.4g} ms"],
        ["utilization", f"{m['utilization'] * 100:.1f} %"],
        ["MACs", _si(m["macs"])],
        ["energy", f"{m['energy_pj'] * 1e-6:.4g} uJ"],
        ["DRAM read / write",
         f"{_si(m.get('dram_read_bytes', 0), 'B')} / {_si(m.get('dram_write_bytes', 0), 'B')}"],
        ["stalls: memory / dependency / busy unit",
         f"{int(m['stall_memory_cycles']):,} / {int(m['stall_dependency_cycles']):,} / "
         f"{int(m['stall_busy_cycles']):,} cycles"],
    ]
    for key, label, fmt in (("ttft_s", "time to first token", lambda v: f"{v * 1e3:.4g} ms"),
                            ("tpot_s", "time per output token", lambda v: f"{v * 1e3:.4g} ms"),
                            ("throughput_tokens_per_s", "tokens/s", lambda v: f"{v:,.1f}"),
                            ("area_mm2", "area", lambda v: f"{v:.4g} mm^2")):
        if key in m:
            summary.append([label, fmt(m[key])])
    rows = []
    for l in result.layers[:max_rows]:
        rows.append([l.name, l.kind, l.unit, l.dataflow or "", f"{l.total_cycles:,}", f"{l.compute_cycles:,}",
                     f"{l.stall_cycles:,}", f"{l.utilization * 100:.1f}" if l.unit == "array" else "",
                     "" if l.mapping_efficiency is None else f"{l.mapping_efficiency * 100:.1f}",
                     _si(l.macs), _si(_dram(l), "B"), f"{l.energy_pj * 1e-6:.3g}"])
    if len(result.layers) > max_rows:
        rows.append([f"... {len(result.layers) - max_rows} more layers"] + [""] * (len(LAYER_COLUMNS) - 1))
    title = f"{result.experiment}: {result.workload} on {result.architecture} ({result.engine} engine)"
    return ('<div class="tessera-result">' + _table(None, summary, title) + "<br>"
            + _table(list(LAYER_COLUMNS), rows, f"{len(result.layers)} layers") + "</div>")


def layer_html(layer: LayerResult) -> str:
    fields = [["kind", layer.kind], ["unit", layer.unit], ["dataflow", layer.dataflow or ""],
              ["cycles", f"{layer.total_cycles:,} ({layer.start_cycle:,} to {layer.end_cycle:,})"],
              ["compute cycles", f"{layer.compute_cycles:,}"],
              ["stalls: memory / dependency / busy unit",
               f"{layer.stall_memory_cycles:,} / {layer.stall_dependency_cycles:,} / "
               f"{layer.stall_busy_cycles:,}"],
              ["utilization", f"{layer.utilization * 100:.1f} %"],
              ["MACs", f"{layer.macs:,}"], ["folds", f"{layer.folds:,}"]]
    if layer.gemm is not None:
        M, K, N, G = layer.gemm
        fields.append(["GEMM (M x K x N, groups)", f"{M} x {K} x {N}, {G}"])
    if layer.mapping_efficiency is not None:
        fields.append(["mapping efficiency", f"{layer.mapping_efficiency * 100:.1f} %"])
    if layer.fused:
        fields.append(["fused", ", ".join(layer.fused)])
    fields += [[k, f"{v:,.6g}"] for k, v in layer.counters.items()]
    return _table(["", "value"], fields, f"layer {layer.name}")


# ---- pictures ----------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Picture:
    """An image for a notebook: ``data`` (PNG or GIF bytes) and its ``format`` ("png" | "gif").
    Jupyter shows it (``_repr_png_`` for a PNG; ``_repr_html_``, an ``<img>`` with the bytes inline,
    for both, which also animates a GIF); ``save(path)`` writes the bytes."""

    data: bytes
    format: str

    def __post_init__(self) -> None:
        if self.format not in ("png", "gif"):
            raise ValueError(f"format: expected png or gif, found {self.format!r}")

    @classmethod
    def from_figure(cls, fig, dpi: int = 100) -> "Picture":
        """A matplotlib figure as a PNG."""
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi)
        return cls(buffer.getvalue(), "png")

    def _repr_png_(self) -> bytes | None:
        return self.data if self.format == "png" else None

    def _repr_html_(self) -> str:
        data = base64.b64encode(self.data).decode("ascii")
        return f'<img src="data:image/{self.format};base64,{data}" alt="tessera {self.format}"/>'

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(self.data)
        return path

    def __repr__(self) -> str:
        return f"Picture({self.format}, {len(self.data):,} bytes)"


# ---- explanations --------------------------------------------------------------------------------

EXPLAIN_COLUMNS = ("layer", "unit", "cycles", "bound", "intensity MAC/B", "ridge MAC/B", "mapping", "faster")


def explanation_html(explanation, top: int | None = None) -> str:
    """``tessera explain``'s report as HTML: its summary lines, then one row per layer (``top``:
    only the ``top`` slowest; default as the command: all of up to 30 layers, else 15)."""
    from simulator.explain import default_top
    from simulator.explain_format import _num

    layers = list(explanation.layers)
    top = default_top(len(layers)) if top is None else top
    caption = f"{len(layers)} layers"
    if top is not None and top < len(layers):
        layers = sorted(layers, key=lambda l: -l.cycles)[:top]
        caption = f"the {top} layers taking the most cycles, of {len(explanation.layers)}"
    rows = []
    for l in layers:
        unit = l.unit + (f", {l.dataflow}" if l.dataflow and l.dataflow != l.unit else "")
        mapping = "; ".join(x for x in (l.folds, l.mapping) if x)
        rows.append([l.name, unit, f"{l.cycles:,}", f"{l.bound} ({l.bound_share:.0%})",
                     "" if l.intensity is None else _num(l.intensity),
                     "" if l.ridge is None else _num(l.ridge), mapping, l.advice])
    summary = "".join(f"<div>{escape(line)}</div>" for line in explanation.summary_lines())
    return ('<div class="tessera-explain">' + f'<div style="font-family:monospace;font-size:12px">{summary}</div>'
            + _table(list(EXPLAIN_COLUMNS), rows, caption) + "</div>")


# ---- micro-simulations ---------------------------------------------------------------------------

def micro_html(run) -> str:
    """A ``MicroRun``: the title frame's lines, then its heat maps (when matplotlib is there)."""
    from simulator.micro.frame import describe

    lines = "".join(f"<div>{escape(line)}</div>" for line in describe(run))
    hint = ("run.gif() animates it, cycle by cycle" if run.states is not None
            else "simulate with record=True for run.gif(), the animation")
    picture = ""
    try:
        picture = run.heatmaps()._repr_html_()
    except ImportError:  # matplotlib is the plots extra
        hint += "; pip install 'tessera[plots]' for the heat maps"
    return (f'<div class="tessera-micro" style="font-family:monospace;font-size:12px">{lines}'
            f"<div><i>{escape(hint)}</i></div>{picture}</div>")
