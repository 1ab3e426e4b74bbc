"""Searching a design space with optuna: single- or multi-objective, with constraints.

Contract: ``run_search(study, out, backend=...)`` runs ``search.budget`` trials. Each round asks
the sampler for ``search.batch`` trials, simulates their points in parallel on the backend
(every point through the normal path, as in a sweep) and tells the results back in trial order,
so a seeded search gives the same trials with any number of workers and on either backend.
It writes into ``out``:

- ``search.jsonl``: one row per point simulated (the evaluation log; ``--resume`` replays the
  seeded sampler and takes points found here from the log instead of simulating them again);
- ``search.csv``: every trial (trial number, parameters, status, ``feasible``, metrics);
- ``pareto.csv``: the feasible trials no other feasible trial beats on every objective (for one
  objective: the best); also ``study.json`` and ``resolved_config.yaml`` as for sweeps.

Samplers: ``tpe`` (TPESampler; multi-objective TPE for several objectives), ``nsga2``
(NSGAIISampler) and ``random``; ``auto`` is tpe for one objective and nsga2 for several.
Constraints: each trial reports every constraint's violation (<= 0 when satisfied) through
optuna's constraint mechanism (``Trial.set_constraint`` in optuna >= 5, the samplers'
``constraints_func`` before), which ``tpe`` and ``nsga2`` use to prefer feasible designs
(NSGA-II's constrained domination; TPE's feasibility-aware split) rather than a penalty added to
the objectives; the random sampler does not look at results, so constraints do not change what
it samples. A trial
whose point fails to simulate, or lacks an objective's metric, is told to optuna as failed.
Whatever the sampler, infeasible trials are kept in ``search.csv`` (``feasible: false``) and
never enter the Pareto front.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.dse.backends import Backend, InlineBackend
from simulator.dse.evaluate import evaluate
from simulator.dse.extras import require
from simulator.dse.pareto import pareto_front
from simulator.dse.progress import progress
from simulator.dse.space import integer_range, point_id
from simulator.dse.spec import Param, RangeSpec, range_bounds
from simulator.dse.store import CSV_METRICS, ResultLog, clear_study_outputs, row_metric
from simulator.dse.study import Study
from simulator.dse.sweep import check_resume
from simulator.report import atomic_write

__all__ = ["SearchOutcome", "run_search", "make_sampler", "suggest"]


@dataclass
class SearchOutcome:
    """What ``run_search`` returns; in a notebook it shows as a table of the front."""

    trials: list[dict]
    pareto: list[dict]
    evaluated: int  # points simulated now
    reused: int  # trials answered from the log (resume) or by an identical earlier trial
    elapsed_s: float
    backend: str
    files: list[Path] = field(default_factory=list)
    name: str = ""
    params: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)  # the metrics the table shows (Study.shown_metrics)
    objectives: list[str] = field(default_factory=list)

    @property
    def points_per_minute(self) -> float:
        return 60.0 * self.evaluated / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def by_status(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.trials:
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out

    @property
    def failed(self) -> int:
        """Trials whose point did not finish ``ok`` (infeasible designs are not failures)."""
        return sum(1 for r in self.trials if r["status"] != "ok")

    def summary(self) -> str:
        ok = sum(1 for r in self.trials if r["status"] == "ok")
        feasible = sum(1 for r in self.trials if r.get("feasible"))
        return (f"{len(self.trials)} trials ({self.evaluated} simulated, {self.reused} reused) on "
                f"{self.backend} in {self.elapsed_s:.1f} s; {ok} ok, {feasible} feasible"
                + (f", {self.failed} failed" if self.failed else ""))

    def title(self) -> str:
        if len(self.objectives) > 1:
            return f"{self.name}: Pareto front ({', '.join(self.objectives)}) of {len(self.trials)} trials"
        return f"{self.name}: best of {len(self.trials)} trials"

    def _repr_html_(self) -> str:
        from simulator.dse.tables import html_table

        return html_table(self.title(), self.pareto, self.params, self.metrics, lead="trial",
                          footer=self.summary())


def _constraints_from_attrs(trial) -> list[float]:
    return list(trial.user_attrs.get("constraints", []))


def _native_constraints(optuna) -> bool:
    """optuna >= 5 takes constraints per trial (``Trial.set_constraint``); older versions through
    the sampler's ``constraints_func``."""
    return hasattr(optuna.trial.Trial, "set_constraint")


def make_sampler(study: Study):
    """The optuna sampler the ``search:`` section asks for (see the module docstring)."""
    optuna = require("optuna", "search.sampler", study.file)
    spec = study.search
    name = spec.sampler
    if name == "auto":
        name = "tpe" if len(study.objectives) == 1 else "nsga2"
    cf = _constraints_from_attrs if study.constraints and not _native_constraints(optuna) else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=spec.seed, constraints_func=cf,
                                              n_startup_trials=max(1, min(10, spec.budget // 4)))
        if name == "nsga2":
            pop = spec.population or max(4, min(50, spec.budget // 4))
            return optuna.samplers.NSGAIISampler(seed=spec.seed, population_size=pop, constraints_func=cf)
        return optuna.samplers.RandomSampler(seed=spec.seed)


def _primitive(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def suggest(trial, param: Param, dim: Any) -> Any:
    """Ask an optuna trial for a value of one dimension (list: categorical; range: int or float)."""
    if isinstance(dim, list):
        if all(_primitive(v) for v in dim):
            return trial.suggest_categorical(param.path, dim)
        return dim[trial.suggest_categorical(param.path, list(range(len(dim))))]
    assert isinstance(dim, RangeSpec)
    low, high, step = range_bounds(param, dim)
    if integer_range(param, dim):
        return trial.suggest_int(param.path, int(low), int(high), step=int(step or 1), log=dim.log)
    return trial.suggest_float(param.path, low, high, step=step, log=dim.log)


def _judge(study: Study, row: dict) -> tuple[list[float] | None, list[float], bool, str | None]:
    """(objective values or None, constraint violations, feasible, why it failed)."""
    if row.get("status") != "ok":
        return None, [], False, row.get("error") or row.get("status")
    values = []
    for o in study.objectives:
        v = row_metric(row, o.metric)
        if v is None or not math.isfinite(v):
            return None, [], False, f"objective metric '{o.metric}' is {'missing' if v is None else v}"
        values.append(v)
    violations = []
    for c in study.constraints:
        v = row_metric(row, c.metric)
        violations.append(math.inf if v is None or math.isnan(v) else c.violation(v))
    return values, violations, all(x <= 0 for x in violations), None


def run_search(study: Study, out: str | Path, *, backend: Backend | None = None, resume: bool = False,
               quiet: bool = True, plots: bool = False, fn=evaluate) -> SearchOutcome:
    """Run a search (see the module docstring); ``fn`` is the point evaluator (tests replace it)."""
    optuna = require("optuna", "search", study.file)
    spec = study.search
    assert spec is not None, "run_search needs a study with a search: section"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    backend = backend or InlineBackend()
    if not resume:
        clear_study_outputs(out)
    check_resume(out, study, resume)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions = [o.direction for o in study.objectives]
    ostudy = optuna.create_study(directions=directions, sampler=make_sampler(study))

    referenced = [m for m in dict.fromkeys([*(o.metric for o in study.objectives),
                                            *(c.metric for c in study.constraints), *study.workload_metrics,
                                            *study.report])
                  if m not in CSV_METRICS]
    params = [p.path for p in study.params]
    log = ResultLog(out, "search", params, [*CSV_METRICS, *referenced], write_csv=False)
    log.open(resume)
    cache = {r["point_id"]: r for r in log.rows}  # points done in an earlier run (resume)
    trials_table = ResultLog(out, "search", params, [*dict.fromkeys([*(o.metric for o in study.objectives),
                                                                      *referenced, *CSV_METRICS])],
                             extra_columns=["feasible"], lead_columns=("trial", "point_id"), write_csv=False)
    ctx = study.context()
    dims = list(study.dims)
    trial_rows: list[dict] = []
    evaluated = reused = 0
    with progress(spec.budget, "search", quiet=quiet) as counter:
        try:
            while len(trial_rows) < spec.budget:
                k = min(spec.batch, spec.budget - len(trial_rows))
                trials = [ostudy.ask() for _ in range(k)]
                values = [{p.path: suggest(t, p, d) for p, d in dims} for t in trials]
                pids = [point_id(study.params, v) for v in values]
                tasks, queued = [], set()
                for t, v, pid in zip(trials, values, pids):
                    if pid not in cache and pid not in queued:
                        tasks.append((t.number, pid, v))
                        queued.add(pid)
                for row in backend.map(fn, ctx, tasks):
                    log.append(row)
                    cache[row["point_id"]] = row
                    evaluated += 1
                reused += k - len(tasks)
                for t, v, pid in zip(trials, values, pids):
                    row = cache[pid]
                    objective_values, violations, feasible, why = _judge(study, row)
                    failed = objective_values is None
                    trow = {"trial": t.number, "point_id": pid, "params": v,
                            "status": "error" if failed and row["status"] == "ok" else row["status"],
                            "feasible": None if failed else feasible, "metrics": row.get("metrics", {}),
                            "error": why}
                    if failed:
                        ostudy.tell(t, state=optuna.trial.TrialState.FAIL)
                    else:
                        if _native_constraints(optuna):
                            for c, v in zip(study.constraints, violations):
                                t.set_constraint(c.text, v)
                        else:
                            t.set_user_attr("constraints", violations)
                        ostudy.tell(t, objective_values)
                    trial_rows.append(trow)
                    counter.advance(trow["status"])
                atomic_write(out / "search.csv", trials_table.csv_text(trial_rows))
        finally:
            log.close()
    elapsed = counter.elapsed_s
    log.finish()
    unique = list({r["point_id"]: r for r in trial_rows}.values())
    front = pareto_front(unique, list(study.objectives))
    atomic_write(out / "pareto.csv", trials_table.csv_text(front))
    files = [out / "search.csv", out / "pareto.csv", log.jsonl, out / "study.json", out / "resolved_config.yaml"]
    if plots:
        from simulator.dse.plots import plot_folder

        files += plot_folder(out)
    return SearchOutcome(trials=trial_rows, pareto=front, evaluated=evaluated, reused=reused,
                         elapsed_s=elapsed, backend=backend.describe(), files=files, name=study.name,
                         params=[p.path for p in study.params], metrics=study.shown_metrics,
                         objectives=[str(o) for o in study.objectives])

