"""One design point through the normal path: modified experiment dict -> validate -> simulate.

Contract: ``evaluate(ctx, task)`` never raises for a bad point: it returns a row with
``status`` ``"ok"`` (and ``metrics``) or ``"error"`` (and the error's text: a ``ConfigError``
lists every problem with file and line). It is a module-level function so that process pools
started with ``spawn`` and Dask workers can import it by name.

A point's parameters are applied to a copy of the experiment: ``architecture.X`` becomes an
override (``architecture.overrides["X"]``, after the file's own overrides, so it wins),
``architecture.preset`` replaces the preset, ``workload.X`` / ``mapper.X`` set that field and
``engine`` the engine. The copy has no ``sweep:``/``search:`` section: each point is a plain
experiment, validated by ``experiment_from_dict`` exactly as a file would be. A mapping value
may carry a ``label:`` (``{kind: mixpe, activations: int8, label: "MixPE int8"}``): it names the
value in tables and plots and is removed before the value is applied.

Besides the run's metrics, a row has the comparison metrics of ``study_metrics`` (per MAC, per
mm^2 of PEs, the roofline of the design), computed from the result and the architecture.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

from simulator.dse.spec import Param

__all__ = ["EvalContext", "Task", "apply_point", "evaluate", "evaluate_in_worker", "clean", "study_metrics",
           "STUDY_METRICS"]

# the metrics study_metrics adds (documented in experiments/README.md, "Design metrics")
STUDY_METRICS = ("energy_pj_per_mac", "macs_per_s", "macs_per_s_per_mm2", "pe_array_area_mm2",
                 "macs_per_s_per_pe_mm2", "peak_macs_per_s", "dram_bytes_per_s")

Task = tuple[int, str, dict]  # (point index, point id, {path as written: value})


@dataclass(frozen=True)
class EvalContext:
    """What every point shares: the base experiment (plain data) and how to apply parameters."""

    base: dict
    file: str | None
    params: tuple[Param, ...]
    lines: dict = field(default_factory=dict)
    save_results: bool = False  # also return the full result (layers) for OUT/points/<id>/
    keys: dict = field(default_factory=dict)  # parameter path as written -> its YAML key in the section


def apply_point(base: dict, params: tuple[Param, ...], values: dict[str, Any]) -> dict:
    """A copy of ``base`` with the point's ``values`` applied (see the module docstring)."""
    from architectures.presets import set_path

    data = copy.deepcopy(base)
    data.pop("sweep", None)
    data.pop("search", None)
    for p in params:
        if p.path not in values:
            continue
        value = values[p.path]
        if isinstance(value, dict) and "label" in value:  # a name for tables and plots only
            value = {k: v for k, v in value.items() if k != "label"}
        if p.section == "engine":
            data["engine"] = value
        elif p.section == "architecture":
            arch = data.get("architecture")
            arch = {"preset": arch} if isinstance(arch, str) else dict(arch or {})
            if p.canonical == ("preset",):
                arch["preset"] = value
            else:
                overrides = dict(arch.get("overrides") or {})
                overrides[".".join(p.canonical)] = value
                arch["overrides"] = overrides
            data["architecture"] = arch
        else:
            section = data.get(p.section)
            section = dict(section) if isinstance(section, dict) else {}
            set_path(section, p.canonical, value)
            data[p.section] = section
    return data


def clean(value: Any) -> Any:
    """Plain JSON data: infinities as "inf"/"-inf", NaN as None, tuples as lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def evaluate(ctx: EvalContext, task: Task) -> dict[str, Any]:
    """Simulate one point; returns its row (see the module docstring)."""
    from simulator.experiment import experiment_from_dict
    from simulator.run import run_experiment
    from workloads.errors import ConfigError

    index, pid, values = task
    t0 = time.perf_counter()
    row: dict[str, Any] = {"point": index, "point_id": pid, "params": dict(values)}
    try:
        data = apply_point(ctx.base, ctx.params, values)
        exp = experiment_from_dict(data, file=ctx.file, lines=ctx.lines)
        result = run_experiment(exp)  # what `tessera run` does with a plain experiment
        metrics = result.metrics()
        metrics.update({k: v for k, v in study_metrics(metrics, exp.architecture).items() if k not in metrics})
        row.update(status="ok", error=None, metrics=clean(metrics))
        if ctx.save_results:
            row["result"] = clean(result.to_dict())
            row["resolved_config"] = clean(exp.resolved_config())
    except ConfigError as exc:
        row.update(status="error", error=str(ConfigError([at_sweep_key(p, ctx, values) for p in exc.problems])),
                   metrics={})
    except Exception as exc:  # noqa: BLE001 - a failing point is data, the sweep goes on
        row.update(status="error", error=f"{type(exc).__name__}: {exc}", metrics={})
    row["wall_s"] = time.perf_counter() - t0
    return row


def study_metrics(metrics: dict[str, Any], arch: Any) -> dict[str, float]:
    """Comparison metrics from a run's metrics and its architecture (none that cannot be computed):

    - ``energy_pj_per_mac``: ``energy_pj / macs`` (all energy: MACs, SRAM, DRAM, vector);
    - ``macs_per_s``: achieved MAC rate, ``macs / latency_s``;
    - ``macs_per_s_per_mm2``: that per mm^2 of the whole design (``area_mm2``);
    - ``pe_array_area_mm2``: the PE array's area (templates with one: ``systolic_array``), and
      ``macs_per_s_per_pe_mm2``: the achieved MAC rate per mm^2 of PEs (area efficiency of the PE
      kind, not diluted by the SRAM);
    - ``peak_macs_per_s``, ``dram_bytes_per_s``: the design's roofline (``arch.roofline()``).

    With several devices (``devices`` > 1) the areas and the roofline are the whole system's, as
    ``area_mm2`` is."""
    def num(name: str) -> float | None:
        v = metrics.get(name)
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None

    out: dict[str, float] = {}
    devices = num("devices") or 1.0
    macs, latency, energy, area = num("macs"), num("latency_s"), num("energy_pj"), num("area_mm2")
    rate = macs / latency if macs and latency else None
    if macs and energy is not None:
        out["energy_pj_per_mac"] = energy / macs
    if rate is not None:
        out["macs_per_s"] = rate
        if area:
            out["macs_per_s_per_mm2"] = rate / area
    pe_area = getattr(arch, "pe_array_area_mm2", None)
    if isinstance(pe_area, (int, float)) and pe_area > 0:
        out["pe_array_area_mm2"] = pe_area * devices
        if rate is not None:
            out["macs_per_s_per_pe_mm2"] = rate / (pe_area * devices)
    roofline = getattr(arch, "roofline", None)
    if roofline is not None:
        try:
            peak, bandwidth = roofline()
        except Exception:  # noqa: BLE001 - a template without a roofline: no roof metrics
            return out
        out["peak_macs_per_s"] = float(peak) * devices
        out["dram_bytes_per_s"] = float(bandwidth) * devices
    return out


def at_sweep_key(problem, ctx: EvalContext, values: dict[str, Any]):
    """A point's problem about a value the sweep set, named by the sweep's key and line (the user
    wrote ``sweep.grid.architecture.rows``, not the ``architecture.overrides.rows`` it became)."""
    from dataclasses import replace

    for p in ctx.params:
        if p.path not in values or p.path not in ctx.keys:
            continue
        inner = ".".join(p.canonical)
        written = ((f"architecture.overrides.{inner}", f"architecture.{inner}") if p.section == "architecture"
                   else (p.key,))
        for prefix in written:
            if problem.path == prefix or problem.path.startswith(prefix + "."):
                key = ctx.keys[p.path]
                rest = problem.path[len(prefix):]
                line = next((ctx.lines[key[:n]] for n in range(len(key), 0, -1) if key[:n] in ctx.lines), None)
                return replace(problem, file=ctx.file, path=".".join(map(str, key)) + rest, line=line,
                               message=f"{problem.message} (this point's value: {values[p.path]!r})")
    return problem


# ---- process-pool entry point (spawn-safe: a module-level function) ---------------------------

def evaluate_in_worker(fn, ctx: EvalContext, task: Task) -> dict[str, Any]:
    """Run ``fn(ctx, task)`` in a pool worker (``fn`` travels by name, ``ctx`` pickled, a few kB)."""
    return fn(ctx, task)
