"""How a study's rows are shown: short labels for values, the failures summary, an HTML table.

Contract: ``value_label(v)`` is the short text of a parameter value in tables and plots (a
mapping shows its ``label``, else its ``kind`` and precision, e.g. ``mixpe/int8``);
``fmt(v)`` formats a cell; ``failures(rows)`` groups the errors of failed points (distinct
messages, most frequent first, with counts); ``html_table(...)`` is the rows as an HTML table
for notebooks (``SweepOutcome._repr_html_``).
"""

from __future__ import annotations

import html
import math
from typing import Any

from simulator.dse.store import row_metric

__all__ = ["value_label", "param_short", "fmt", "failures", "html_table"]

_SHOWN_WITH_KIND = ("precision", "activations")


def value_label(value: Any) -> str:
    """Short text of a parameter value (see the module docstring)."""
    if isinstance(value, dict):
        if "label" in value:
            return str(value["label"])
        head = value.get("kind") or value.get("name") or value.get("template")
        if head is not None:
            return "/".join([str(head), *(str(value[k]) for k in _SHOWN_WITH_KIND if k in value)])
        return ", ".join(f"{k}={value_label(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(value_label(v) for v in value) + "]"
    return fmt(value)


def param_short(path: str) -> str:
    """A parameter's short name for legends: ``architecture.memory.ifmap_sram.size`` -> ``ifmap_sram.size``."""
    parts = path.split(".")[1:] or [path]
    return ".".join(parts[-2:])


def fmt(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return f"{value:.4g}"
    if isinstance(value, (dict, list, tuple)):
        return value_label(value)
    return str(value)


def failures(rows: list[dict]) -> list[tuple[str, int]]:
    """(error message, number of points) of every failed point (status not ``ok``), grouped by
    message, most frequent first (then first seen)."""
    counts: dict[str, int] = {}
    for r in rows:
        if r.get("status") not in ("ok", None):
            msg = r.get("error") or f"status {r.get('status')}"
            counts[msg] = counts.get(msg, 0) + 1
    return sorted(counts.items(), key=lambda kv: -kv[1])


def html_table(title: str, rows: list[dict], params: list[str], metrics: list[str], *, lead: str = "point",
               max_rows: int = 50, footer: str = "") -> str:
    """The rows as an HTML table: lead column, parameters, status, metrics (then ``footer``)."""
    e = html.escape
    head = [lead, *(p.split(".", 1)[-1] for p in params), "status", *metrics]
    out = [f"<div><b>{e(title)}</b>", "<table>", "<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head)
           + "</tr></thead>", "<tbody>"]
    for r in rows[:max_rows]:
        status = r.get("status", "")
        if r.get("feasible") is False:
            status += " (infeasible)"
        cells = [fmt(r.get(lead)), *(value_label((r.get("params") or {}).get(p)) for p in params), status,
                 *(fmt(row_metric(r, m)) for m in metrics)]
        tip = f' title="{e(r["error"])}"' if r.get("error") else ""
        out.append(f"<tr{tip}>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    if len(rows) > max_rows:
        out.append(f"<p>... {len(rows) - max_rows} more rows</p>")
    if footer:
        out.append(f"<p>{e(footer)}</p>")
    out.append("</div>")
    return "\n".join(out)
