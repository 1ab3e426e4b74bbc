"""HTML views of results for Jupyter (``SimResult._repr_html_`` and ``LayerResult._repr_html_``).

Contract: ``result_html(result)`` is a self-contained HTML fragment: a summary table of the key
metrics, then one row per layer (the columns of ``tessera run``'s table), at most ``max_rows``
layers (the rest counted in a last row). ``layer_html(layer)`` is a two-column table of one
layer's fields and counters. Every name is HTML-escaped; no scripts, no external styles.
"""

from __future__ import annotations

from html import escape

from simulator.result import LayerResult, SimResult

__all__ = ["result_html", "layer_html", "LAYER_COLUMNS"]

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
