"""Pareto fronts: the rows no other row beats on every objective.

Contract: ``pareto_front(rows, objectives)`` returns the rows (``status == "ok"``, every
objective present and finite, and ``feasible`` unless it is False) that are non-dominated:
no other such row is at least as good on every objective and strictly better on one. Rows
with equal objective values are all kept. Sorted by the first objective.
"""

from __future__ import annotations

import math

from simulator.dse.spec import Objective
from simulator.dse.store import row_metric

__all__ = ["pareto_front", "objective_vector", "dominates"]


def objective_vector(row: dict, objectives: list[Objective]) -> tuple[float, ...] | None:
    """The row's objectives as values to minimize (maximized ones negated), or None."""
    out = []
    for o in objectives:
        v = row_metric(row, o.metric)
        if v is None or math.isnan(v) or math.isinf(v):
            return None
        out.append(v if o.direction == "minimize" else -v)
    return tuple(out)


def dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def pareto_front(rows: list[dict], objectives: list[Objective]) -> list[dict]:
    cands = []
    for r in rows:
        if r.get("status") != "ok" or r.get("feasible") is False:
            continue
        v = objective_vector(r, objectives)
        if v is not None:
            cands.append((v, r))
    cands.sort(key=lambda c: c[0])
    front: list[tuple[tuple[float, ...], dict]] = []
    for v, r in cands:  # sorted: a row can only be dominated by one before it
        if not any(dominates(fv, v) for fv, _ in front):
            front.append((v, r))
    return [r for _, r in front]
