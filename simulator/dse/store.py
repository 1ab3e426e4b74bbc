"""Result logs: one JSON line per design point, appended as each point finishes, and a CSV beside it.

Contract: ``ResultLog.open(resume=...)`` prepares ``NAME.jsonl`` and ``NAME.csv`` in a folder.
Each ``append(row)`` writes one complete line with a single ``write`` and flushes it, so a run
that is killed leaves at most one torn last line. On resume the log keeps every complete line
whose point is done (``ok`` or ``error``), drops a torn last line, duplicates and rows of points
that were lost (their points run again), rewrites the JSONL and the CSV from what it kept (each
by a temporary file and a rename), and reports the ids that are done. ``finish(order)`` rewrites
both files sorted by point order. Nothing is ever lost or written twice.

The CSV has one column per parameter (as written), then ``status``, the metric columns and
``error``; the JSONL row has every metric.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from simulator.report import atomic_write

__all__ = ["ResultLog", "read_rows", "CSV_METRICS", "LLM_METRICS", "SERVING_METRICS", "row_metric"]

# the stable metrics a sweep table shows (DESIGN.md), then the design metrics
CSV_METRICS = ("cycles", "latency_s", "energy_pj", "utilization", "macs", "sram_read_bytes",
               "sram_write_bytes", "dram_read_bytes", "dram_write_bytes", "area_mm2", "power_w",
               "sram_bytes", "throughput_per_s", "throughput_per_mm2", "edp_j_s")
LLM_METRICS = ("ttft_s", "tpot_s", "throughput_tokens_per_s", "energy_pj_per_token")
SERVING_METRICS = ("throughput_tokens_per_s", "ttft_s", "ttft_p99_s", "tbt_s", "tbt_p99_s",
                   "energy_pj_per_token", "requests_completed")
DONE = ("ok", "error")


def row_metric(row: dict, name: str) -> float | None:
    """A metric of a row as a float ("inf" strings back to infinity), or None if absent."""
    v = (row.get("metrics") or {}).get(name)
    if v is None:
        return None
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return float(v)


def read_rows(path: Path) -> tuple[list[dict], int]:
    """Complete JSON rows of a log and the number of lines skipped (torn or not JSON)."""
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    rows, skipped = [], 0
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        lines.pop()  # no newline at the end: the last line was torn by a kill
        skipped += 1
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            skipped += 1
            continue
        if isinstance(row, dict) and "point_id" in row:
            rows.append(row)
        else:
            skipped += 1
    return rows, skipped


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "")
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


class ResultLog:
    """``DIR/NAME.jsonl`` + ``DIR/NAME.csv`` (see the module docstring)."""

    def __init__(self, folder: str | Path, name: str, param_columns: list[str],
                 metric_columns: Iterable[str] = CSV_METRICS, extra_columns: Iterable[str] = (),
                 lead_columns: Iterable[str] = ("point", "point_id"), write_csv: bool = True):
        self.folder = Path(folder)
        self.jsonl = self.folder / f"{name}.jsonl"
        self.csv = self.folder / f"{name}.csv"
        self.write_csv = write_csv
        self.lead_columns = list(lead_columns)
        self.param_columns = list(param_columns)
        self.extra_columns = list(extra_columns)
        self.metric_columns = list(dict.fromkeys([*metric_columns]))
        self.rows: list[dict] = []
        self.skipped = 0  # lines of the previous log dropped on resume (torn or not JSON)
        self._jf = None
        self._cf = None

    @property
    def columns(self) -> list[str]:
        return [*self.lead_columns, *self.param_columns, "status", *self.extra_columns,
                *self.metric_columns, "error"]

    def csv_row(self, row: dict) -> dict[str, Any]:
        out: dict[str, Any] = {c: row.get(c) for c in self.lead_columns}
        out.update(status=row.get("status"), error=(row.get("error") or "").replace("\n", " | "))
        params = row.get("params") or {}
        for c in self.param_columns:
            out[c] = _cell(params.get(c))
        for c in self.extra_columns:
            out[c] = _cell(row.get(c))
        metrics = row.get("metrics") or {}
        for c in self.metric_columns:
            out[c] = _cell(metrics.get(c))
        return {c: _cell(out.get(c)) for c in self.columns}

    def csv_text(self, rows: list[dict]) -> str:
        """The CSV of ``rows`` (header included) in this log's columns."""
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow(self.csv_row(row))
        return buf.getvalue()

    def open(self, resume: bool = False) -> set[str]:
        """Start (or, with ``resume``, continue) the log; returns the ids of points already done."""
        self.folder.mkdir(parents=True, exist_ok=True)
        kept: list[dict] = []
        if resume:
            rows, self.skipped = read_rows(self.jsonl)
            seen: set[str] = set()
            for row in rows:
                pid = row["point_id"]
                if pid in seen or row.get("status") not in DONE:
                    continue
                seen.add(pid)
                kept.append(row)
        self.rows = kept
        atomic_write(self.jsonl, "".join(json.dumps(r, allow_nan=False) + "\n" for r in kept))
        self._jf = self.jsonl.open("a", encoding="utf-8")
        if self.write_csv:
            atomic_write(self.csv, self.csv_text(kept))
            self._cf = self.csv.open("a", encoding="utf-8", newline="")
        return {r["point_id"] for r in kept}

    def append(self, row: dict) -> None:
        """Record one finished point: one line each in the JSONL and the CSV, flushed."""
        line = json.dumps(row, allow_nan=False) + "\n"
        self._jf.write(line)
        self._jf.flush()
        if self._cf is not None:
            buf = io.StringIO()
            csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n").writerow(self.csv_row(row))
            self._cf.write(buf.getvalue())
            self._cf.flush()
        self.rows.append(row)

    def finish(self, order: dict[str, int] | None = None) -> list[dict]:
        """Close the files and rewrite both sorted by point order (ids not in ``order`` last)."""
        self.close()
        big = 1 << 60

        def key(r: dict) -> tuple:
            return (order.get(r["point_id"], big) if order else 0, r.get("point", 0))

        rows = sorted(self.rows, key=key)
        if order:
            for r in rows:
                if r["point_id"] in order:
                    r["point"] = order[r["point_id"]]
        present = {k for r in rows for k in (r.get("metrics") or {})}
        self.metric_columns += [m for m in LLM_METRICS if m in present and m not in self.metric_columns]
        self.metric_columns = [m for m in self.metric_columns if m in present] or self.metric_columns
        atomic_write(self.jsonl, "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows))
        if self.write_csv:
            atomic_write(self.csv, self.csv_text(rows))
        self.rows = rows
        return rows

    def close(self) -> None:
        for f in (self._jf, self._cf):
            if f is not None and not f.closed:
                f.close()
        self._jf = self._cf = None
