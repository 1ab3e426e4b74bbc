"""Running a sweep: every point through the normal path, results written as each point finishes.

Contract: ``run_sweep(study, out, backend=...)`` runs the points of ``study`` not yet recorded
(all of them unless ``resume``) on ``backend`` and writes into ``out``:

- ``sweep.jsonl`` and ``sweep.csv``: one row per point (parameters, status, metrics, error),
  appended as points finish and rewritten in point order at the end (``simulator.dse.store``);
- ``study.json``: what was swept and a fingerprint of the base experiment (``--resume`` refuses
  to continue a folder written for a different experiment);
- ``resolved_config.yaml``: the base experiment with every default filled in, and the section;
- ``pareto.csv`` when the sweep names ``objectives``; ``points/<id>/`` with each point's
  ``results.json`` and ``layers.csv`` when ``save_results`` is set; ``plots/`` when asked.

A point that fails is recorded with its error and the sweep goes on.

Stale results: a fresh run (not ``resume``) into a folder an earlier study wrote first removes
that study's files (``simulator.dse.store.clear_study_outputs``: its logs, tables, ``points/``
and study plots; nothing else). A resumed run whose sweep changed keeps the rows of points the
sweep still has and drops the others, with their ``points/<id>/`` (counted in
``SweepOutcome.stale``), so tables and plots only ever show the current sweep's points.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from simulator.dse.backends import Backend, InlineBackend
from simulator.dse.evaluate import clean, evaluate
from simulator.dse.pareto import pareto_front
from simulator.dse.progress import progress
from simulator.dse.store import CSV_METRICS, ResultLog, clear_study_outputs, prune_points
from simulator.dse.study import Study
from simulator.report import atomic_write
from workloads.errors import ConfigError, Problem
from workloads.yamlio import dump_yaml

__all__ = ["SweepOutcome", "run_sweep", "write_point_results", "check_resume", "write_rows_csv"]


@dataclass
class SweepOutcome:
    """What ``run_sweep`` returns; in a notebook it shows as a table of the points."""

    rows: list[dict]
    total: int  # points in the sweep
    ran: int  # points run now
    resumed: int  # points found done in the log
    dropped: int  # duplicate random draws
    by_status: dict[str, int]
    elapsed_s: float
    backend: str
    files: list[Path] = field(default_factory=list)
    pareto: list[dict] = field(default_factory=list)
    name: str = ""
    params: list[str] = field(default_factory=list)  # parameter paths as written
    metrics: list[str] = field(default_factory=list)  # the metrics the table shows (Study.shown_metrics)
    objectives: list[str] = field(default_factory=list)
    stale: int = 0  # rows of points no longer in the sweep, dropped on resume

    @property
    def points_per_minute(self) -> float:
        return 60.0 * self.ran / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def failed(self) -> int:
        """Points that did not finish ``ok`` (``error`` or ``lost``)."""
        return sum(n for s, n in self.by_status.items() if s != "ok")

    def summary(self) -> str:
        """One line: points, how many ran where and how fast, counts by status."""
        extra = [f"{self.resumed} already done"]
        if self.dropped:
            extra.append(f"{self.dropped} duplicate draws dropped")
        if self.stale:
            extra.append(f"{self.stale} recorded points no longer in the sweep dropped")
        return (f"{self.total} points ({', '.join(extra)}); ran {self.ran} on {self.backend} in "
                f"{self.elapsed_s:.1f} s ({self.points_per_minute:.0f} points/min); "
                + ", ".join(f"{n} {s}" for s, n in sorted(self.by_status.items())))

    def title(self) -> str:
        if self.pareto:
            return (f"{self.name}: Pareto front ({', '.join(self.objectives)}) of {len(self.rows)} points")
        return f"{self.name}: {len(self.rows)} points"

    def _repr_html_(self) -> str:
        from simulator.dse.tables import html_table

        return html_table(self.title(), self.pareto or self.rows, self.params, self.metrics,
                          footer=self.summary())


def check_resume(out: Path, study: Study, resume: bool) -> None:
    """Refuse to resume into a folder written for another experiment; record this one."""
    meta_path = out / "study.json"
    if resume and meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            meta = {}
        if meta.get("kind") not in (None, study.kind) or meta.get("fingerprint") not in (None, study.fingerprint):
            raise ConfigError(Problem(study.file, "--resume", f"'{out}' holds a {meta.get('kind', 'study')} "
                                      f"of a different experiment (the experiment outside its "
                                      f"'{study.kind}:' section changed since); choose another --out "
                                      "or run without --resume"))
    meta = {"kind": study.kind, "name": study.name, "fingerprint": study.fingerprint,
            "source": study.file, "params": [p.path for p in study.params],
            "objectives": [str(o) for o in study.objectives],
            "constraints": [c.text for c in study.constraints], "report": list(study.report)}
    atomic_write(meta_path, json.dumps(meta, indent=2) + "\n")
    section = (study.sweep or study.search).model_dump(mode="json", exclude_none=True)
    atomic_write(out / "resolved_config.yaml",
                 dump_yaml(clean({**study.experiment.resolved_config(), study.kind: section})))


def write_point_results(out: Path, row: dict, result: dict, resolved: dict | None) -> None:
    """``out/points/<id>/``: results.json (with the point's parameters), layers.csv, resolved_config.yaml."""
    folder = out / "points" / row["point_id"]
    atomic_write(folder / "results.json", json.dumps({"params": row["params"], **result}, indent=2))
    layers = result.get("layers", [])
    columns: list[str] = []
    for layer in layers:
        columns += [k for k in layer if k not in columns]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for layer in layers:
        w.writerow({k: layer.get(k, "") for k in columns})
    atomic_write(folder / "layers.csv", buf.getvalue())
    if resolved is not None:
        atomic_write(folder / "resolved_config.yaml", dump_yaml(resolved))


def write_rows_csv(path: Path, log: ResultLog, rows: list[dict]) -> Path:
    atomic_write(path, log.csv_text(rows))
    return path


def run_sweep(study: Study, out: str | Path, *, backend: Backend | None = None, resume: bool = False,
              quiet: bool = True, plots: bool = False, fn=evaluate) -> SweepOutcome:
    """Run a sweep (see the module docstring); ``fn`` is the point evaluator (tests replace it)."""
    assert study.sweep is not None, "run_sweep needs a study with a sweep: section"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    backend = backend or InlineBackend()
    if not resume:
        clear_study_outputs(out)
    check_resume(out, study, resume)
    points, dropped = study.points()
    metric_columns = list(dict.fromkeys([*CSV_METRICS, *study.workload_metrics,
                                         *(o.metric for o in study.objectives), *study.report]))
    log = ResultLog(out, "sweep", [p.path for p in study.params], metric_columns)
    ids = {p.id for p in points}
    done = log.open(resume, keep=ids)
    if resume:
        prune_points(out, keep=ids)
    todo = [p for p in points if p.id not in done]
    ctx = study.context(save_results=study.sweep.save_results)
    tasks = [(p.index, p.id, p.values) for p in todo]
    with progress(len(tasks), "sweep", quiet=quiet) as counter:
        try:
            for row in backend.map(fn, ctx, tasks):
                result, resolved = row.pop("result", None), row.pop("resolved_config", None)
                if result is not None:
                    write_point_results(out, row, result, resolved)
                log.append(row)
                counter.advance(row["status"])
        finally:
            log.close()
    elapsed = counter.elapsed_s
    rows = log.finish({p.id: p.index for p in points})
    files = [log.csv, log.jsonl, out / "study.json", out / "resolved_config.yaml"]
    front: list[dict] = []
    if study.objectives:
        front = pareto_front(rows, list(study.objectives))
        files.append(write_rows_csv(out / "pareto.csv", log, front))
    if plots:
        from simulator.dse.plots import plot_folder

        files += plot_folder(out)
    by_status: dict[str, int] = {}
    for r in rows:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
    return SweepOutcome(rows=rows, total=len(points), ran=len(tasks), resumed=len(points) - len(tasks),
                        dropped=dropped, by_status=by_status, elapsed_s=elapsed,
                        backend=backend.describe(), files=files, pareto=front, name=study.name,
                        params=[p.path for p in study.params], metrics=study.shown_metrics,
                        objectives=[str(o) for o in study.objectives], stale=log.stale)

