"""One design point through the normal path: modified experiment dict -> validate -> simulate.

Contract: ``evaluate(ctx, task)`` never raises for a bad point: it returns a row with
``status`` ``"ok"`` (and ``metrics``) or ``"error"`` (and the error's text: a ``ConfigError``
lists every problem with file and line). It is a module-level function so that process pools
started with ``spawn`` and Dask workers can import it by name.

A point's parameters are applied to a copy of the experiment: ``architecture.X`` becomes an
override (``architecture.overrides["X"]``, after the file's own overrides, so it wins),
``architecture.preset`` replaces the preset, ``workload.X`` / ``mapper.X`` set that field and
``engine`` the engine. The copy has no ``sweep:``/``search:`` section: each point is a plain
experiment, validated by ``experiment_from_dict`` exactly as a file would be.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

from simulator.dse.spec import Param

__all__ = ["EvalContext", "Task", "apply_point", "evaluate", "evaluate_in_worker", "clean"]

Task = tuple[int, str, dict]  # (point index, point id, {path as written: value})


@dataclass(frozen=True)
class EvalContext:
    """What every point shares: the base experiment (plain data) and how to apply parameters."""

    base: dict
    file: str | None
    params: tuple[Param, ...]
    lines: dict = field(default_factory=dict)
    save_results: bool = False  # also return the full result (layers) for OUT/points/<id>/


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
        row.update(status="ok", error=None, metrics=clean(result.metrics()))
        if ctx.save_results:
            row["result"] = clean(result.to_dict())
            row["resolved_config"] = clean(exp.resolved_config())
    except ConfigError as exc:
        row.update(status="error", error=str(exc), metrics={})
    except Exception as exc:  # noqa: BLE001 - a failing point is data, the sweep goes on
        row.update(status="error", error=f"{type(exc).__name__}: {exc}", metrics={})
    row["wall_s"] = time.perf_counter() - t0
    return row


# ---- process-pool entry point (spawn-safe: a module-level function) ---------------------------

def evaluate_in_worker(fn, ctx: EvalContext, task: Task) -> dict[str, Any]:
    """Run ``fn(ctx, task)`` in a pool worker (``fn`` travels by name, ``ctx`` pickled, a few kB)."""
    return fn(ctx, task)
