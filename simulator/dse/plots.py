"""PNG plots of a results folder: a single run, a sweep or a search.

Contract: ``plot_folder(folder, out=None)`` looks at what the folder holds and draws into
``out`` (default ``folder/plots``), returning the files written:

- a sweep (``sweep.jsonl``) or a search (``search.jsonl``): the Pareto front of two objectives
  (the study's, else latency vs area) with every point, feasible or not; one figure per
  parameter with each metric against it (the study's ``report.metrics``, else ``METRICS``):
  lines over a numeric parameter (one per combination of the other parameters), bars over a
  categorical one (names, or mappings shown by their short label); a parameter that another
  one already drawn determines (zipped with it) gets no figure of its own; the roofline of the
  front's designs (``roofline_front.png``, ``simulator.dse.roofline``);
- per-point results (``points/*/results.json``, written with ``sweep.save_results``): per-layer
  utilization of each point of the log (folders of points not in it are ignored), side by side;
- a single run (``results.json``): per-layer utilization, and the plots of ``simulator.plots``
  (cycles per layer, roofline, energy), drawn from the stored files.

matplotlib is the ``plots`` extra; without it ``ConfigError`` says how to install it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from simulator.dse.pareto import pareto_front
from simulator.dse.spec import Objective, parse_constraint, parse_objective
from simulator.dse.store import read_rows, row_metric
from simulator.dse.tables import param_short, value_label
from workloads.errors import ConfigError, Problem

__all__ = ["plot_folder", "plot_pareto", "plot_parameters", "plot_layer_utilization", "StoredResult"]

METRICS = ("latency_s", "energy_pj", "area_mm2", "utilization", "dram_read_bytes", "dram_write_bytes")
MAX_POINT_PLOTS = 12
UNIT_KINDS = ("size", "bandwidth", "frequency", "time", "energy", "energy_per_byte", "area", "power")


def _pyplot():
    from simulator.plots import require_matplotlib

    require_matplotlib("plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def as_number(value: Any) -> float | None:
    """A parameter value as a number (quantities with units in their base unit), else None."""
    from architectures.units import UnitError, parse_quantity

    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    for kind in UNIT_KINDS:
        try:
            return parse_quantity(value, kind)
        except (UnitError, TypeError):
            continue
    return None


def _label(metric: str) -> str:
    return metric.replace("_", " ")


def plot_pareto(rows: list[dict], objectives: list[Objective], path: Path, title: str = "") -> Path | None:
    """Every ok point on two objectives; infeasible ones marked; the front as a line."""
    if len(objectives) < 2:
        return None
    plt = _pyplot()
    xo, yo = objectives[:2]
    pts = [(row_metric(r, xo.metric), row_metric(r, yo.metric), r) for r in rows if r.get("status") == "ok"]
    pts = [(x, y, r) for x, y, r in pts
           if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
    if not pts:
        return None
    if len({x for x, _, _ in pts}) < 2 or len({y for _, y, _ in pts}) < 2:
        return None  # one objective does not vary: no trade-off to draw
    front = pareto_front([r for _, _, r in pts], [xo, yo])
    fig, ax = plt.subplots(figsize=(7, 5))
    feas = [(x, y) for x, y, r in pts if r.get("feasible") is not False]
    infeas = [(x, y) for x, y, r in pts if r.get("feasible") is False]
    if feas:
        ax.scatter(*zip(*feas), s=14, color="#8C8C8C", label=f"designs ({len(feas)})")
    if infeas:
        ax.scatter(*zip(*infeas), s=18, marker="x", color="#C44E52", label=f"infeasible ({len(infeas)})")
    fx = [row_metric(r, xo.metric) for r in front]
    fy = [row_metric(r, yo.metric) for r in front]
    ax.plot(fx, fy, "-o", color="#4C72B0", ms=5, drawstyle="steps-post" if len(front) > 1 else "default",
            label=f"Pareto front ({len(front)})")
    for axis, o, vals in (("x", xo, [p[0] for p in pts]), ("y", yo, [p[1] for p in pts])):
        lo, hi = min(vals), max(vals)
        if lo > 0 and hi / lo > 30:
            getattr(ax, f"set_{axis}scale")("log")
        better = "lower" if o.direction == "minimize" else "higher"
        getattr(ax, f"set_{axis}label")(f"{_label(o.metric)} ({better} is better)")
    ax.set_title(title or f"Pareto front: {xo} vs {yo}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _tied(rows: list[dict], p: str, q: str) -> bool:
    """Whether ``q`` is determined by ``p`` in these rows (zipped with it): one q per p value."""
    seen: dict[str, set] = {}
    for r in rows:
        params = r.get("params") or {}
        seen.setdefault(json.dumps(params.get(p), sort_keys=True), set()).add(
            json.dumps(params.get(q), sort_keys=True))
    return all(len(v) == 1 for v in seen.values())


def _distinct(rows: list[dict], p: str) -> list[str]:
    return list(dict.fromkeys(json.dumps((r.get("params") or {}).get(p), sort_keys=True) for r in rows))


def plot_parameters(rows: list[dict], params: list[str], metrics: list[str], folder: Path,
                    max_lines: int = 8) -> list[Path]:
    """For each parameter with several values: each metric against it (see the module docstring;
    a scatter when the other parameters have more than ``max_lines`` combinations)."""
    plt = _pyplot()
    ok = [r for r in rows if r.get("status") == "ok"]
    metrics = [m for m in metrics if any(row_metric(r, m) is not None for r in ok)]
    files = []
    drawn: list[str] = []
    # the parameter with the most values first: of zipped parameters, it is the one that
    # determines the others (a PE mapping and the precisions zipped with it)
    for p in sorted(params, key=lambda q: -len(_distinct(ok, q))):
        if any(_tied(ok, q, p) for q in drawn):
            continue  # determined by a parameter already drawn: its figure shows this one too
        values = [(r.get("params") or {}).get(p) for r in ok]
        distinct = _distinct(ok, p)
        if len(distinct) < 2 or not metrics:
            continue
        numeric = all(as_number(v) is not None for v in values)
        others: list[str] = []
        for q in params:
            if q != p and not _tied(ok, p, q) and not any(_tied(ok, o, q) for o in others):
                others.append(q)
        groups: dict[str, list[dict]] = {}
        for r in ok:
            key = ", ".join(f"{q.split('.', 1)[-1]}={value_label((r.get('params') or {}).get(q))}" for q in others)
            groups.setdefault(key, []).append(r)
        fig = (_numeric_figure if numeric else _categorical_figure)(plt, ok, p, distinct, groups, metrics, max_lines)
        fig.suptitle(f"metrics against {p}")
        fig.tight_layout()
        path = folder / f"param_{p.replace('.', '_')}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)
        drawn.append(p)
    return files


def _axes(plt, n: int, width: float = 6.0):
    cols = 2 if n > 1 else 1
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, 3.6 * rows), squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)[:n]


def _numeric_figure(plt, ok: list[dict], p: str, distinct: list[str], groups: dict, metrics: list[str],
                    max_lines: int):
    """Lines: each metric against a numeric parameter, one line per group."""
    fig, axes = _axes(plt, len(metrics))
    xs = [as_number((r.get("params") or {}).get(p)) for r in ok]

    def points(grp: list[dict], m: str) -> list[tuple[float, float]]:
        pts = sorted((as_number((r.get("params") or {}).get(p)), row_metric(r, m)) for r in grp
                     if row_metric(r, m) is not None)
        return [(x, y) for x, y in pts if math.isfinite(y)]

    for ax, m in zip(axes, metrics):
        if len(groups) <= max_lines:
            for key, grp in groups.items():
                pts = points(grp, m)
                if pts:
                    ax.plot(*zip(*pts), "-o", ms=3, label=key or None)
        else:  # too many combinations of the other parameters for lines: every point
            pts = points(ok, m)
            if pts:
                ax.scatter(*zip(*pts), s=8, color="#4C72B0", alpha=0.6)
        ax.set_xlabel(p)
        ax.set_ylabel(_label(m))
        if min(xs) > 0 and max(xs) / min(xs) >= 16:
            ax.set_xscale("log", base=2)
        if 1 < len(groups) <= max_lines and ax is axes[0]:
            ax.legend(fontsize=6)
    return fig


def _categorical_figure(plt, ok: list[dict], p: str, distinct: list[str], groups: dict, metrics: list[str],
                        max_lines: int):
    """Bars: each metric for each value of a categorical parameter (grouped bars, one per group;
    a scatter when there are more than ``max_lines`` groups)."""
    width = max(6.0, 0.55 * len(distinct) * max(1, min(len(groups), max_lines)) ** 0.5 + 2)
    fig, axes = _axes(plt, len(metrics), width)
    index = {d: i for i, d in enumerate(distinct)}
    ticks = [value_label(json.loads(d)) for d in distinct]

    def x_of(r: dict) -> int:
        return index[json.dumps((r.get("params") or {}).get(p), sort_keys=True)]

    for ax, m in zip(axes, metrics):
        if len(groups) <= max_lines:
            n = len(groups)
            bar = 0.8 / n
            for g, (key, grp) in enumerate(groups.items()):
                pts = [(x_of(r), row_metric(r, m)) for r in grp if row_metric(r, m) is not None]
                pts = [(x, y) for x, y in pts if math.isfinite(y)]
                if pts:
                    ax.bar([x - 0.4 + bar * (g + 0.5) for x, _ in pts], [y for _, y in pts], width=bar,
                           label=key or None)
        else:
            pts = [(x_of(r), row_metric(r, m)) for r in ok if row_metric(r, m) is not None]
            if pts:
                ax.scatter(*zip(*pts), s=8, color="#4C72B0", alpha=0.6)
        ax.set_xticks(range(len(distinct)), ticks, rotation=30, ha="right", fontsize=7)
        ax.set_xlabel(p)
        ax.set_ylabel(_label(m))
        if 1 < len(groups) <= max_lines and ax is axes[0]:
            ax.legend(fontsize=6)
    return fig


def plot_layer_utilization(series: list[tuple[str, list[dict]]], path: Path, title: str) -> Path | None:
    """Per-layer PE utilization of the matrix layers (``unit == "array"``): one bar chart per
    result (label, layer rows), stacked, each titled with its mean over layers."""
    plt = _pyplot()
    series = [(label, [l for l in layers if l.get("unit", "array") == "array"]) for label, layers in series]
    series = [(label, layers) for label, layers in series if layers]
    if not series:
        return None
    most = max(len(layers) for _, layers in series)
    fig, axes = plt.subplots(len(series), 1, figsize=(max(8.0, most * 0.16 + 2), 1.9 * len(series) + 0.8),
                             squeeze=False)
    for ax, (label, layers) in zip(axes[:, 0], series):
        util = [float(l.get("utilization") or 0) * 100 for l in layers]
        colors = ["#C44E52" if u < 5 else "#4C72B0" for u in util]
        ax.bar(range(len(layers)), util, color=colors)
        ax.set_ylim(0, 100)
        ax.set_ylabel("util %", fontsize=7)
        ax.set_title(f"{label}: mean over layers {sum(util) / len(util):.1f} %", fontsize=8, loc="left")
        ax.set_xticks(range(len(layers)), [l["layer"] for l in layers], rotation=90, fontsize=5)
        ax.tick_params(axis="y", labelsize=6)
    fig.suptitle(title + " (red: below 5 %)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


class StoredResult:
    """A result read back from ``results.json``, shaped like ``SimResult`` for ``simulator.plots``."""

    def __init__(self, data: dict):
        self.data = data
        self.experiment = data.get("experiment", "")
        self.engine = data.get("engine", "")
        self.architecture = data.get("architecture", "")
        self.workload = data.get("workload", "")
        self.layers = [SimpleNamespace(name=l.get("layer"), counters=l, **{
            k: (float(l.get(k) or 0) if k in ("latency_s", "utilization") else int(float(l.get(k) or 0)))
            for k in ("macs", "latency_s", "compute_cycles", "stall_memory_cycles", "stall_dependency_cycles",
                      "stall_busy_cycles", "utilization")}) for l in data.get("layers", [])]

    def metrics(self) -> dict:
        return {k: (float(v) if isinstance(v, str) else v) for k, v in self.data.get("metrics", {}).items()}

    def energy_components(self) -> dict[str, float]:
        from simulator.result import energy_components

        return energy_components(self.data.get("layers", []))


def _run_plots(folder: Path, out: Path) -> list[Path]:
    from simulator import plots as base

    data = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    result = StoredResult(data)
    files = [base.plot_layers(result, out / "layers.png"), base.plot_energy(result, out / "energy.png")]
    util = plot_layer_utilization([(result.workload, data.get("layers", []))], out / "utilization.png",
                                  f"{result.workload} on {result.architecture}: per-layer PE utilization")
    files += [util] if util else []
    arch = _architecture(folder / "resolved_config.yaml")
    if arch is not None:
        peak, bandwidth = arch.roofline()  # every template has one
        files.append(base.plot_roofline(result, out / "roofline.png", peak, bandwidth))
    return files


def _architecture(path: Path):
    if not path.exists():
        return None
    from architectures.presets import build_architecture
    from workloads.yamlio import load_yaml

    try:
        data, lines = load_yaml(path)
        return build_architecture(data["architecture"], file=str(path), lines=lines)
    except (ConfigError, KeyError, TypeError):
        return None


def _study_rows(folder: Path) -> tuple[str, list[dict], dict]:
    meta_path = folder / "study.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    kind = "sweep" if (folder / "sweep.jsonl").exists() else "search"
    rows, _ = read_rows(folder / f"{kind}.jsonl")
    constraints = [parse_constraint(t)[0] for t in meta.get("constraints", [])]
    constraints = [c for c in constraints if c is not None]
    for r in rows:
        if r.get("status") == "ok" and constraints:
            vals = [row_metric(r, c.metric) for c in constraints]
            r["feasible"] = all(v is not None and c.violation(v) <= 0 for v, c in zip(vals, constraints))
    return kind, rows, meta


def plot_folder(folder: str | Path, out: str | Path | None = None) -> list[Path]:
    """Draw every plot the folder's contents allow (see the module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(Problem(None, "plot", f"'{folder}' is not a folder"))
    out = Path(out) if out else folder / "plots"
    has_study = (folder / "sweep.jsonl").exists() or (folder / "search.jsonl").exists()
    point_files = sorted((folder / "points").glob("*/results.json")) if (folder / "points").is_dir() else []
    has_run = (folder / "results.json").exists()
    if not (has_study or point_files or has_run):
        raise ConfigError(Problem(None, "plot", f"'{folder}' has no results.json, sweep.jsonl or "
                                  "search.jsonl (give the --out folder of 'tessera run')"))
    _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    if has_study:
        kind, rows, meta = _study_rows(folder)
        objectives = [parse_objective(t)[0] for t in meta.get("objectives", [])]
        own = [o for o in objectives if o is not None]
        objectives = own if len(own) >= 2 else [Objective("latency_s", "minimize"), Objective("area_mm2", "minimize")]
        params = meta.get("params") or list(dict.fromkeys(k for r in rows for k in (r.get("params") or {})))
        p = plot_pareto(rows, objectives, out / "pareto.png",
                        f"{meta.get('name', folder.name)}: {objectives[0]} vs {objectives[1]}")
        files += [p] if p else []
        shown = meta.get("report") or [*(o.metric for o in objectives), *METRICS]
        files += plot_parameters(rows, params, list(dict.fromkeys(shown)), out)
        from simulator.dse.roofline import plot_study_roofline

        if len(own) == 1:  # one objective: its best designs
            front = pareto_front(rows, own)
            best = sorted((r for r in rows if r.get("status") == "ok" and r.get("feasible") is not False
                           and row_metric(r, own[0].metric) is not None),
                          key=lambda r: row_metric(r, own[0].metric) * (1 if own[0].direction == "minimize" else -1))
            front += [r for r in best if r not in front]
            what = f"best by {own[0]}"
        else:
            front = pareto_front(rows, objectives)
            what = f"Pareto front of {objectives[0]}, {objectives[1]}"
        p = plot_study_roofline(front, out / "roofline_front.png",
                                f"{meta.get('name', folder.name)}: roofline of the {what}", folder)
        files += [p] if p else []
    if point_files:
        order = {}
        if has_study:
            order = {r["point_id"]: r.get("point", i) for i, r in enumerate(rows)}
            point_files = [f for f in point_files if f.parent.name in order]  # only this study's points
        point_files.sort(key=lambda f: (order.get(f.parent.name, 1 << 60), f.parent.name))
        series = []
        for f in point_files[:MAX_POINT_PLOTS]:
            data = json.loads(f.read_text(encoding="utf-8"))
            label = ", ".join(f"{param_short(k)}={value_label(v)}" for k, v in (data.get("params") or {}).items())
            series.append((label or f.parent.name, data.get("layers", [])))
        more = len(point_files) - MAX_POINT_PLOTS
        p = plot_layer_utilization(series, out / "utilization_by_point.png",
                                   f"{folder.name}: per-layer PE utilization"
                                   + (f" (first {MAX_POINT_PLOTS} points; {more} more)" if more > 0 else ""))
        files += [p] if p else []
    if has_run:
        files += _run_plots(folder, out)
    return files
