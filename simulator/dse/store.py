"""Result logs: one JSON line per design point, appended as each point finishes, and a CSV beside it.

Contract: ``ResultLog.open(resume=...)`` prepares ``NAME.jsonl`` and ``NAME.csv`` in a folder.
Each ``append(row)`` writes one complete line with a single ``write`` and flushes it, so a run
that is killed leaves at most one torn last line. On resume the log keeps every complete line
whose point is done (``ok`` or ``error``), drops a torn last line, duplicates, rows of points
that were lost (their points run again) and rows of points the study no longer has (``keep``:
a sweep whose values changed since), rewrites the JSONL and the CSV from what it kept (each
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
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from simulator.report import atomic_write

__all__ = ["ResultLog", "read_rows", "CSV_METRICS", "LLM_METRICS", "SERVING_METRICS", "row_metric",
           "clear_study_outputs", "prune_points", "POINT_FILES"]

# the stable metrics a sweep table shows (DESIGN.md), then the design metrics
CSV_METRICS = ("cycles", "latency_s", "energy_pj", "utilization", "macs", "sram_read_bytes",
               "sram_write_bytes", "dram_read_bytes", "dram_write_bytes", "area_mm2", "power_w",
               "sram_bytes", "throughput_per_s", "throughput_per_mm2", "edp_j_s")
LLM_METRICS = ("ttft_s", "tpot_s", "throughput_tokens_per_s", "energy_pj_per_token")
SERVING_METRICS = ("throughput_tokens_per_s", "ttft_s", "ttft_p99_s", "tbt_s", "tbt_p99_s",
                   "energy_pj_per_token", "requests_completed")
DONE = ("ok", "error")
# what a study writes into its folder (and only this is ever removed from it)
STUDY_FILES = ("sweep.jsonl", "sweep.csv", "search.jsonl", "search.csv", "pareto.csv", "study.json")
STUDY_PLOTS = ("pareto.png", "param_*.png", "utilization_by_point.png", "roofline_front.png")
POINT_FILES = ("results.json", "layers.csv", "resolved_config.yaml")
_POINT_ID = re.compile(r"^[0-9a-f]{16}$")


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


def prune_points(folder: Path, keep: set[str] | None = None) -> int:
    """Remove ``folder/points/<id>/`` of points not in ``keep`` (all when None): only the files a
    study writes there, and the folders left empty. Returns the number of points removed."""
    points = folder / "points"
    if not points.is_dir():
        return 0
    removed = 0
    for sub in points.iterdir():
        if not sub.is_dir() or not _POINT_ID.match(sub.name) or (keep is not None and sub.name in keep):
            continue
        for name in POINT_FILES:
            (sub / name).unlink(missing_ok=True)
        removed += 1
        if not any(sub.iterdir()):
            sub.rmdir()
    if not any(points.iterdir()):
        points.rmdir()
    return removed


def clear_study_outputs(folder: Path) -> list[str]:
    """Before a fresh (not resumed) study in ``folder``: remove what an earlier study wrote there
    (its logs, tables, ``points/`` and study plots), so nothing stale is read back or plotted.
    Only a folder with an earlier study's ``study.json`` is touched, and only the file names a
    study writes: any other file stays. Returns what was removed (relative names)."""
    if not (folder / "study.json").is_file():
        return []
    gone = [n for n in STUDY_FILES if (folder / n).is_file()]
    for n in gone:
        (folder / n).unlink()
    plots = folder / "plots"
    if plots.is_dir():
        for pattern in STUDY_PLOTS:
            for f in plots.glob(pattern):
                f.unlink()
                gone.append(f"plots/{f.name}")
    if prune_points(folder):
        gone.append("points/")
    return gone


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
        self.stale = 0  # points of the previous log no longer in the study, dropped on resume
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

    def open(self, resume: bool = False, keep: set[str] | None = None) -> set[str]:
        """Start (or, with ``resume``, continue) the log; returns the ids of points already done.
        ``keep``: the ids of the points the study has now; rows of other points (the sweep changed
        since) are dropped and counted in ``self.stale``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        kept: list[dict] = []
        self.stale = 0
        if resume:
            rows, self.skipped = read_rows(self.jsonl)
            seen: set[str] = set()
            for row in rows:
                pid = row["point_id"]
                if keep is not None and pid not in keep:
                    self.stale += pid not in seen
                    seen.add(pid)
                    continue
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
