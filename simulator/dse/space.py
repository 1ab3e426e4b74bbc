"""Design points: what a sweep's grid, zip groups and random draws expand to, and their ids.

Contract: ``sweep_points(spec, params)`` returns the points of a ``SweepSpec`` in a fixed order:
the cartesian product of the grid (last path varies fastest), each zip group (lists taken in
lockstep) and the random draws, in that order. A point's id is a hash of its canonical paths and
values, the same on every machine and every run, so ``--resume`` can tell which points are done.
Random draws use only ``random.Random(seed).random()``, whose sequence Python guarantees across
versions; points drawn twice are kept once.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from dataclasses import dataclass
from typing import Any

from simulator.dse.spec import Param, RangeSpec, SweepSpec, range_bounds

__all__ = ["Point", "point_id", "sweep_points", "draw", "range_choices", "integer_range", "numeric_value"]


@dataclass(frozen=True)
class Point:
    """One design point: ``values`` maps each parameter's path (as written) to its value."""

    index: int
    values: dict[str, Any]
    id: str


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
        return int(value)
    return value


def point_id(params: tuple[Param, ...] | list[Param], values: dict[str, Any]) -> str:
    """A stable id: sha256 over the sorted canonical paths and values (16 hex digits)."""
    items = sorted((p.key, _jsonable(values[p.path])) for p in params if p.path in values)
    text = json.dumps(items, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def range_choices(param: Param, spec: RangeSpec, limit: int = 10_000) -> list[Any]:
    """Every value of a stepped range (for grids of choices: gym actions); ValueError without a step."""
    low, high, step = range_bounds(param, spec)
    if step is None:
        if param.integer and float(low).is_integer() and float(high).is_integer() and not spec.log:
            step = 1.0
        else:
            raise ValueError(f"'{param.path}': give a step (or a list of choices) to enumerate a range")
    n = int(math.floor((high - low) / step + 1e-9)) + 1
    if n > limit:
        raise ValueError(f"'{param.path}': {n} values in the range; more than {limit}")
    return [_number(param, low + i * step) for i in range(n)]


def _number(param: Param, v: float) -> int | float:
    if param.integer or float(v).is_integer():
        return int(round(v))
    return float(f"{v:.12g}")  # 0.1 + 2 * 0.1 -> 0.3, not 0.30000000000000004


def draw(param: Param, dim: Any, rng: random.Random) -> Any:
    """One value of a dimension (list: uniform choice; range: uniform, log-uniform or on the step grid)."""
    u = rng.random()
    if isinstance(dim, list):
        return dim[min(int(u * len(dim)), len(dim) - 1)]
    low, high, step = range_bounds(param, dim)
    if step is not None:
        n = int(math.floor((high - low) / step + 1e-9)) + 1
        return _number(param, low + min(int(u * n), n - 1) * step)
    if dim.log:
        v = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    else:
        v = low + u * (high - low)
    return min(max(int(round(v)), int(low)), int(high)) if integer_range(param, dim) else v


def integer_range(param: Param, dim: RangeSpec) -> bool:
    """Whether a range yields whole numbers: the field holds integers (or sizes), or both bounds
    are written as integers."""
    return param.integer or (isinstance(dim.low, int) and isinstance(dim.high, int)
                             and (dim.step is None or isinstance(dim.step, int)))


def sweep_points(spec: SweepSpec, params: list[tuple[Param, Any, tuple]]) -> tuple[list[Point], int]:
    """The sweep's points and the number of random duplicates dropped (see the module docstring)."""
    by_path = {p.path: p for p, _, _ in params}
    factors: list[list[dict[str, Any]]] = []
    if spec.grid:
        paths = list(spec.grid)
        factors.append([dict(zip(paths, combo)) for combo in itertools.product(*(spec.grid[p] for p in paths))])
    zips = [spec.zip] if isinstance(spec.zip, dict) else list(spec.zip or [])
    for group in zips:
        paths = list(group)
        factors.append([dict(zip(paths, row)) for row in zip(*(group[p] for p in paths))])
    if spec.random is not None:
        rng = random.Random(spec.random.seed)
        draws = []
        for _ in range(spec.random.n):
            draws.append({path: draw(by_path[path], dim, rng) for path, dim in spec.random.params.items()})
        factors.append(draws)
    all_params = [p for p, _, _ in params]
    points: list[Point] = []
    seen: set[str] = set()
    dropped = 0
    for combo in itertools.product(*factors):
        values: dict[str, Any] = {}
        for part in combo:
            values.update(part)
        pid = point_id(all_params, values)
        if pid in seen:
            dropped += 1
            continue
        seen.add(pid)
        points.append(Point(len(points), values, pid))
    return points, dropped


def numeric_value(param: Param | None, value: Any) -> float | None:
    """A value as a number in the field's base unit (for plots), or None if it is a name."""
    from architectures.units import UnitError, parse_quantity

    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if param is not None and param.kind is not None:
        try:
            return parse_quantity(value, param.kind)
        except (UnitError, TypeError):
            return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
