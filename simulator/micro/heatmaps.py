"""Utilization heat maps of a micro-simulation: per fold, which PEs did useful MACs.

Contract: ``heatmap_figure(run)`` returns a matplotlib ``Figure`` (built directly with an Agg
canvas, never through pyplot, so nothing changes the process's backend): a first panel with all
folds together (useful MACs of each PE / the run's cycles), then one panel per fold (its useful
MACs / its cycles), at most ``MAX_HEATMAP_FOLDS`` folds, rows and columns of the array ticked
(``r0``.., ``c0``..). ``write_heatmaps(run, path)`` saves it as a PNG. Heat maps need no
per-cycle recording (``simulate_gemm(..., record=False)`` is enough), so they have no cycle
limit beyond the micro-simulator's own.
"""

from __future__ import annotations

from pathlib import Path

from simulator.micro.systolic import MicroRun

__all__ = ["heatmap_figure", "write_heatmaps", "MAX_HEATMAP_FOLDS"]

MAX_HEATMAP_FOLDS = 48


def _shape(run: MicroRun) -> str:
    g = run.gemm
    return f"GEMM {g.M}x{g.K}x{g.N}" + (f" x{g.groups} groups" if g.groups > 1 else "") + " (MxKxN)"


def _ticks(n: int) -> list[int]:
    """Tick positions along an array side of n PEs: every PE up to 8, then every 4th or 8th, and
    the last one."""
    step = 1 if n <= 8 else (4 if n <= 16 else 8)
    return sorted(set(range(0, n, step)) | {n - 1})


def heatmap_figure(run: MicroRun):
    """The heat maps as a matplotlib figure (module docstring)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    folds = run.folds[:MAX_HEATMAP_FOLDS]
    panels = len(folds) + 1
    ncol = min(panels, 6)
    nrow = -(-panels // ncol)
    side = 2.4
    fig = Figure(figsize=(ncol * side + 1.0, nrow * side + 0.9), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrow, ncol, squeeze=False)
    total = sum(f.macs for f in run.folds) / run.cycles
    rows, cols = _ticks(run.rows), _ticks(run.cols)
    image = None
    for n, ax in enumerate(axes.flat):
        if n >= panels:
            ax.set_axis_off()
            continue
        if n == 0:
            data, title = total, f"all {len(run.folds)} folds\nutilization {run.utilization:.0%}"
        else:
            f = folds[n - 1]
            data = f.utilization
            title = (f"fold {f.index + 1}: {f.used_rows}x{f.used_cols} used\n"
                     f"{int(f.macs.sum()):,} MACs / {f.cycles} cycles = "
                     f"{f.macs.sum() / (f.cycles * run.rows * run.cols):.0%}")
        image = ax.imshow(data, vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
        ax.set_title(title, fontsize=7)
        ax.set_xticks(cols, [f"c{j}" for j in cols], fontsize=5)
        ax.set_yticks(rows, [f"r{i}" for i in rows], fontsize=5)
        ax.tick_params(length=1.5, pad=1)
        ax.xaxis.tick_top()
    more = (f" (first {MAX_HEATMAP_FOLDS} of {len(run.folds)} folds)"
            if len(run.folds) > MAX_HEATMAP_FOLDS else "")
    fig.suptitle(f"{run.dataflow}: {_shape(run)} on {run.rows}x{run.cols}: fraction of cycles each "
                 f"PE did a useful MAC{more}", fontsize=9)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="useful MACs / cycles")
    return fig


def write_heatmaps(run: MicroRun, path: str | Path) -> Path:
    """Save ``heatmap_figure(run)`` as a PNG at ``path``; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    heatmap_figure(run).savefig(path)
    return path
