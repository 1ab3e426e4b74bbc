"""PNG plots of a result: per-layer cycle breakdown, roofline, energy breakdown.

Contract: ``write_plots(result, folder, peak_macs_per_s=..., dram_bytes_per_s=...)`` writes PNG
files into ``folder`` and returns their paths. matplotlib is an optional dependency (the
``plots`` extra); ``require_matplotlib()`` raises ``ConfigError`` saying how to install it, so
an experiment asking for plots fails at load time, not after the simulation.
"""

from __future__ import annotations

import math
from pathlib import Path

from simulator.result import SimResult
from workloads.errors import ConfigError, Problem

__all__ = ["require_matplotlib", "write_plots", "plot_layers", "plot_roofline", "plot_energy",
           "layers_figure", "roofline_figure", "energy_figure"]


def require_matplotlib(path: str = "outputs.plots", file: str | None = None) -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError(Problem(file, path, "plots need matplotlib, which is not installed "
                                  "(pip install 'tessera[plots]')")) from None


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=120)
    return path


def plot_layers(result: SimResult, path: Path) -> Path:
    """Stacked bars per layer: compute cycles and the stall kinds."""
    return _save(layers_figure(result), path)


def plot_roofline(result: SimResult, path: Path, peak_macs_per_s: float, dram_bytes_per_s: float) -> Path:
    """Each matrix layer as a point: arithmetic intensity (MACs per DRAM byte) vs achieved MAC/s."""
    return _save(roofline_figure(result, peak_macs_per_s, dram_bytes_per_s), path)


def plot_energy(result: SimResult, path: Path) -> Path:
    """Energy by component, total over the run."""
    return _save(energy_figure(result), path)


def write_plots(result: SimResult, folder: str | Path, *, peak_macs_per_s: float,
                dram_bytes_per_s: float) -> list[Path]:
    require_matplotlib()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [plot_layers(result, folder / "layers.png"),
            plot_roofline(result, folder / "roofline.png", peak_macs_per_s, dram_bytes_per_s),
            plot_energy(result, folder / "energy.png")]


# ---- figures (files above, and SimResult.plot / plot_roofline in notebooks) ----------------------
# These return a matplotlib ``Figure`` built without pyplot, so Jupyter shows it inline and the
# process's backend is left alone; ``fig.savefig(path)`` writes it.

def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def layers_figure(result: SimResult):
    """A ``Figure``: stacked bars per layer of compute cycles and the three stall kinds."""
    require_matplotlib("SimResult.plot")
    layers = result.layers
    fig = _figure(max(8, len(layers) * 0.12 + 4), 4.5)
    ax = fig.add_subplot()
    x = list(range(len(layers)))
    bottom = [0] * len(layers)
    for values, label, color in (([l.compute_cycles for l in layers], "compute", "#4C72B0"),
                                 ([l.stall_memory_cycles for l in layers], "stall: memory", "#DD8452"),
                                 ([l.stall_dependency_cycles for l in layers], "stall: dependency", "#55A868"),
                                 ([l.stall_busy_cycles for l in layers], "stall: unit busy", "#C44E52")):
        ax.bar(x, values, bottom=bottom, label=label, color=color)
        bottom = [a + b for a, b in zip(bottom, values)]
    ax.set_ylabel("cycles")
    ax.set_xlabel("layer")
    ax.set_title(f"{result.workload} on {result.architecture}: cycles per layer ({result.engine})")
    if len(layers) <= 60:
        ax.set_xticks(x, [l.name for l in layers], rotation=90, fontsize=6)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def roofline_figure(result: SimResult, peak_macs_per_s: float, dram_bytes_per_s: float):
    """A ``Figure``: each matrix layer at (MACs per DRAM byte, achieved MAC/s) under the roofline;
    LLM layers are coloured by phase (prefill, decode)."""
    require_matplotlib("SimResult.plot_roofline")
    fig = _figure(7, 5)
    ax = fig.add_subplot()
    groups: dict[str, list[tuple[float, float]]] = {}
    for l in result.layers:
        dram = l.counters.get("dram_read_bytes", 0) + l.counters.get("dram_write_bytes", 0)
        if l.macs and dram and l.latency_s > 0:
            phase = l.name.split(":", 1)[0] if ":" in l.name else "layers"
            groups.setdefault(phase, []).append((l.macs / dram, l.macs / l.latency_s))
    points = [p for g in groups.values() for p in g]
    if points:
        lo, hi = min(p[0] for p in points) / 2, max(p[0] for p in points) * 2
        if not math.isinf(dram_bytes_per_s):
            ridge = peak_macs_per_s / dram_bytes_per_s
            lo, hi = min(lo, ridge / 4), max(hi, ridge * 4)
            xs = [lo * (hi / lo) ** (i / 100) for i in range(101)]
            ax.plot(xs, [min(peak_macs_per_s, v * dram_bytes_per_s) for v in xs], color="black",
                    label=f"roofline (ridge {ridge:.3g} MAC/B)")
        else:
            ax.axhline(peak_macs_per_s, color="black", label="peak compute")
        for (name, pts), color in zip(groups.items(), ("#4C72B0", "#DD8452", "#55A868", "#C44E52")):
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=14, color=color, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (MACs per DRAM byte)")
    ax.set_ylabel("achieved MAC/s")
    ax.set_title(f"{result.workload} on {result.architecture}: roofline")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def energy_figure(result: SimResult):
    """A ``Figure``: energy by component over the run."""
    require_matplotlib("SimResult.plot")
    m = result.metrics()
    parts = {k: v * 1e-6 for k, v in sorted(result.energy_components().items())}
    fig = _figure(6, 4)
    ax = fig.add_subplot()
    ax.bar(list(parts), list(parts.values()), color="#4C72B0")
    ax.set_ylabel("energy (uJ)")
    ax.set_title(f"{result.workload} on {result.architecture}: {m['energy_pj'] * 1e-6:.4g} uJ")
    fig.tight_layout()
    return fig
