"""A swept field's own limits (``rows > 0``, whole numbers), checked on every value before any point runs.

Contract: ``field_limits(cls, canon)`` reads the numeric bounds a pydantic field declares
(``Field(gt=0)`` and friends, from ``annotated_types``) and whether it holds whole numbers.
``field_choices(info)`` the values of a ``Literal`` field (``dataflow: os | ws | is``).
``check_limits(param, values, key, problems)`` appends ``(YAML key, message)`` for each listed
value (or range bound) outside them, so an obviously bad value is reported at load, at the
sweep key's line, instead of failing every point it is part of. Only what a field declares on
its own is checked here; rules between fields (a tile larger than its buffer) still fail the
point that breaks them, with the sweep key named (``simulator.dse.evaluate``).
"""

from __future__ import annotations

import math
import operator
from typing import Any

__all__ = ["field_limits", "field_choices", "check_limits", "value_number"]

_OPS = {"gt": (operator.gt, ">"), "ge": (operator.ge, ">="), "lt": (operator.lt, "<"), "le": (operator.le, "<=")}


def field_limits(info: Any) -> tuple[tuple[str, float], ...]:
    """The (op, bound) pairs a pydantic ``FieldInfo`` declares (``gt``, ``ge``, ``lt``, ``le``)."""
    if info is None:
        return ()
    out = []
    for meta in getattr(info, "metadata", ()):
        for op in _OPS:
            bound = getattr(meta, op, None)
            if isinstance(bound, (int, float)) and not isinstance(bound, bool):
                out.append((op, float(bound)))
    return tuple(out)


def field_choices(info: Any) -> tuple | None:
    """The values a ``Literal[...]`` (or ``Literal[...] | None``) field takes, else None."""
    from typing import Literal, Union, get_args, get_origin

    if info is None:
        return None
    tp = info.annotation
    if get_origin(tp) is Union:
        parts = [a for a in get_args(tp) if a is not type(None)]
        if len(parts) != 1:
            return None
        tp = parts[0]
    if get_origin(tp) is Literal:
        return get_args(tp)
    return None


def value_number(kind: str | None, value: Any) -> float | None:
    """A swept value as a number in the field's base unit, or None (a name, a mapping, 'inf')."""
    from architectures.units import UnitError, parse_quantity

    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and kind is not None:
        try:
            return parse_quantity(value, kind)
        except (UnitError, TypeError, ValueError):
            return None  # the unit check reports it
    return None


def _violation(param: Any, number: float) -> str | None:
    for op, bound in param.limits:
        fn, sign = _OPS[op]
        if not fn(number, bound):
            return f"a value {sign} {bound:g}"
    if param.integer and param.kind is None and math.isfinite(number) and not float(number).is_integer():
        return "a whole number"
    return None


def check_limits(param: Any, values: Any, key: tuple, problems: list) -> None:
    """Append a problem for each value of ``values`` (a list, or (low, high) of a range) outside
    the field's limits; ``key`` is the YAML key of the list (items get their index)."""
    if isinstance(values, tuple):  # a range: its bounds
        for what, number in zip(("low", "high"), values):
            why = _violation(param, number)
            if why:
                problems.append((key, f"'{param.path}' takes {why}; found {what} {number:g}"))
        return
    from workloads.errors import did_you_mean

    for i, v in enumerate(values):
        if param.choices is not None:
            if v is not None and v not in param.choices:
                hint = did_you_mean(str(v), [str(c) for c in param.choices])
                problems.append((key + (i,), f"'{param.path}' takes one of {', '.join(map(repr, param.choices))}; "
                                 f"found {v!r}" + (f" ({hint})" if hint else "")))
            continue
        number = value_number(param.kind, v)
        if number is None or math.isinf(number):
            continue
        why = _violation(param, number)
        if why:
            problems.append((key + (i,), f"'{param.path}' takes {why}; found {v!r}"))
