"""A roofline of a study's best designs: each as one point under its own roof.

Contract: ``plot_study_roofline(rows, path, title)`` draws, for each row (the Pareto front of a
sweep or search, or the best designs), the whole run at (arithmetic intensity = MACs per DRAM
byte, achieved MAC/s), and that design's roofline (``peak_macs_per_s`` and ``dram_bytes_per_s``,
which every point's row has: ``simulator.dse.evaluate.study_metrics``), in the same colour.
How far below its roof a design sits, and on which side of its ridge, says what bounds it.
Rows without the needed metrics are skipped; returns None when none is left. With
``points/<id>/results.json`` saved (``sweep.save_results``), ``layer_series`` adds each front
design's matrix layers as small dots.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from simulator.dse.store import row_metric
from simulator.dse.tables import param_short, value_label

__all__ = ["plot_study_roofline", "MAX_DESIGNS"]

MAX_DESIGNS = 8
COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")


def _design(row: dict) -> tuple[float, float, float, float] | None:
    """(intensity, achieved MAC/s, peak MAC/s, DRAM bytes/s) of a row, or None."""
    macs, lat = row_metric(row, "macs"), row_metric(row, "latency_s")
    dram = (row_metric(row, "dram_read_bytes") or 0.0) + (row_metric(row, "dram_write_bytes") or 0.0)
    peak, bw = row_metric(row, "peak_macs_per_s"), row_metric(row, "dram_bytes_per_s")
    if not (macs and lat and dram and peak and bw) or not all(map(math.isfinite, (macs, lat, dram, peak))):
        return None
    return macs / dram, macs / lat, peak, bw


def _layers(folder: Path | None, row: dict) -> list[tuple[float, float]]:
    if folder is None:
        return []
    f = folder / "points" / str(row.get("point_id")) / "results.json"
    if not f.is_file():
        return []
    out = []
    for l in json.loads(f.read_text(encoding="utf-8")).get("layers", []):
        dram = float(l.get("dram_read_bytes") or 0) + float(l.get("dram_write_bytes") or 0)
        macs, lat = float(l.get("macs") or 0), float(l.get("latency_s") or 0)
        if macs and dram and lat > 0:
            out.append((macs / dram, macs / lat))
    return out


def plot_study_roofline(rows: list[dict], path: Path, title: str, folder: Path | None = None) -> Path | None:
    """See the module docstring; ``folder``: the study's folder (for saved per-point layers)."""
    from simulator.dse.plots import _pyplot

    designs = [(r, d) for r in rows if (d := _design(r)) is not None][:MAX_DESIGNS]
    if not designs:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.0 + 0.17 * len(designs)))
    xs_all = [d[0] for _, d in designs] + [d[2] / d[3] for _, d in designs if math.isfinite(d[3])]
    lo, hi = min(xs_all) / 8, max(xs_all) * 8
    grid = [lo * (hi / lo) ** (i / 120) for i in range(121)]
    for (row, (x, y, peak, bw)), color in zip(designs, COLORS):
        label = ", ".join(f"{param_short(k)}={value_label(v)}" for k, v in (row.get("params") or {}).items()
                          if v is not None)
        lead = row.get("trial", row.get("point"))
        name = f"#{lead}: {label}" if lead is not None else label
        if math.isfinite(bw):
            ax.plot(grid, [min(peak, v * bw) for v in grid], color=color, lw=1, alpha=0.7)
        else:
            ax.axhline(peak, color=color, lw=1, alpha=0.7)
        layers = _layers(folder, row)
        if layers:
            ax.scatter(*zip(*layers), s=6, color=color, alpha=0.35)
        ax.scatter([x], [y], s=46, color=color, edgecolor="black", zorder=3,
                   label=f"{name} ({100 * y / min(peak, x * bw):.0f} % of its roof)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (MACs per DRAM byte, whole run)")
    ax.set_ylabel("achieved MAC/s")
    ax.set_title(title, fontsize=9)
    # below the axes: over them it would hide the points
    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
