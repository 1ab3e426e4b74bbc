"""A study: an experiment file with a ``sweep:`` or ``search:`` section, fully validated.

Contract: ``load_study(path)`` (or ``study_from_dict``) validates the base experiment and the
section before any point runs and raises one ``ConfigError`` listing every problem, each at its
exact line: unknown dotted paths (with a did-you-mean), empty lists and ranges, values in the
wrong unit, unparsable objectives and constraints, and metric names the experiment does not
produce (with a did-you-mean; the base experiment is simulated once to learn its metrics when
a name is not one of the stable metrics).
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from simulator.dse.evaluate import STUDY_METRICS, EvalContext
from simulator.dse.space import Point, sweep_points
from simulator.dse.spec import (Constraint, Objective, Param, SearchSpec, SweepSpec, check_section,
                                parse_constraint, parse_objective)
from simulator.dse.store import CSV_METRICS, LLM_METRICS, SERVING_METRICS
from simulator.experiment import Experiment, experiment_from_dict
from workloads.errors import ConfigError, Problem, did_you_mean
from workloads.schema import canonicalize
from workloads.yamlio import load_yaml

__all__ = ["Study", "load_study", "study_from_dict", "has_study_section", "relocate", "study_summary"]

STATIC_METRICS = (*CSV_METRICS, *LLM_METRICS, *SERVING_METRICS, *STUDY_METRICS, "array_compute_cycles",
                  "stall_memory_cycles", "stall_dependency_cycles", "stall_busy_cycles", "mac_energy_pj",
                  "sram_energy_pj",
                  "dram_energy_pj", "vector_energy_pj", "compulsory_dram_read_bytes",
                  "compulsory_dram_write_bytes",
                  *(f"{op}_{mem}_{rw}_bytes" for op in ("ifmap", "filter", "ofmap")
                    for mem in ("sram", "dram") for rw in ("read", "write")))


@dataclass(frozen=True)
class Study:
    """A validated sweep or search (see the module docstring)."""

    kind: str  # "sweep" | "search"
    experiment: Experiment  # the base point, validated
    base: dict  # the experiment as plain data, without its sweep/search section
    file: str | None
    lines: dict
    params: tuple[Param, ...]
    dims: tuple[tuple[Param, Any], ...]  # each parameter with its list of values or RangeSpec
    sweep: SweepSpec | None = None
    search: SearchSpec | None = None
    objectives: tuple[Objective, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    keys: tuple[tuple, ...] = ()  # each parameter's YAML key, e.g. ("sweep", "grid", "architecture.rows")
    report: tuple[str, ...] = ()  # the metrics the printed table and the plots show (``report:``)

    @property
    def name(self) -> str:
        return self.experiment.name

    @property
    def workload_metrics(self) -> tuple[str, ...]:
        """The metrics a person compares for this kind of workload: tokens per second, time to
        first token, ... for LLMs and serving runs; none beyond the stable ones otherwise."""
        if self.experiment.serving is not None:
            return SERVING_METRICS
        return LLM_METRICS if self.experiment.llm is not None else ()

    @property
    def shown_metrics(self) -> list[str]:
        """The metrics the printed table shows: the objectives' and constraints', then the
        section's ``report.metrics``, else the usual ones for the workload, and the area."""
        named = [o.metric for o in self.objectives] + [c.metric for c in self.constraints]
        if self.report:
            return list(dict.fromkeys([*named, *self.report]))
        # LLM and serving runs: tokens per second, time to first token, ... (the table has room for four)
        usual = [m for m in self.workload_metrics if m != "requests_completed"][:4] or \
            ["latency_s", "energy_pj", "utilization"]
        return list(dict.fromkeys([*named, *usual, "area_mm2"]))

    @property
    def fingerprint(self) -> str:
        """Hash of the base experiment: a resumed run must continue the same experiment."""
        text = json.dumps(self.base, sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def points(self) -> tuple[list[Point], int]:
        """A sweep's points and the number of duplicate random draws dropped."""
        assert self.sweep is not None
        return sweep_points(self.sweep, [(p, d, ()) for p, d in self.dims])

    def context(self, save_results: bool = False) -> EvalContext:
        return EvalContext(base=self.base, file=self.file, params=self.params, lines=self.lines,
                           save_results=save_results, keys=dict(zip((p.path for p in self.params), self.keys)))


def study_summary(study: Study) -> str:
    """One line: what the study runs (for ``tessera validate`` and logs)."""
    names = ", ".join(p.path for p in study.params)
    if study.kind == "sweep":
        points, dropped = study.points()
        return f"a sweep of {len(points)} points over {names}" + (f" ({dropped} duplicate draws dropped)"
                                                                  if dropped else "")
    return f"a search of {study.search.budget} trials over {names}"


def has_study_section(path: str | Path) -> bool:
    """Whether an experiment file has a ``sweep:`` or ``search:`` section (a quick look)."""
    data, _ = load_yaml(path)
    return isinstance(data, dict) and (data.get("sweep") is not None or data.get("search") is not None)


def relocate(problem: Problem, lines: dict) -> Problem:
    """The problem at the line of the exact YAML key its dotted path names (keys may contain dots)."""
    if problem.file is None or not problem.path.startswith(("sweep", "search")):
        return problem
    best = None
    for key in lines:
        joined = ".".join(map(str, key))
        if problem.path == joined or problem.path.startswith(joined + "."):
            if best is None or len(joined) > len(".".join(map(str, best))):
                best = key
    return replace(problem, line=lines[best]) if best is not None else problem


def load_study(path: str | Path, *, engine: str | None = None) -> Study:
    data, lines = load_yaml(path)
    return study_from_dict(data, file=str(path), lines=lines, engine=engine)


def study_from_dict(data: Any, *, file: str | None = None, lines: dict | None = None,
                    engine: str | None = None) -> Study:
    """Validate an experiment with a sweep/search section; ``engine`` overrides the file's."""
    lines = lines or {}
    if isinstance(data, dict) and engine:
        data = {**data, "engine": engine}
    try:
        exp = experiment_from_dict(data, file=file, lines=lines)
    except ConfigError as exc:
        raise ConfigError([relocate(p, lines) for p in exc.problems]) from None
    kind = "sweep" if data.get("sweep") is not None else "search" if data.get("search") is not None else None
    if kind is None:
        raise ConfigError(Problem(file, "", "the experiment has no 'sweep:' or 'search:' section"))
    cls = SweepSpec if kind == "sweep" else SearchSpec
    spec = cls.model_validate(canonicalize(cls, data[kind]))
    problems, resolved = check_section(kind, spec, [type(exp.architecture)], data.get("architecture"))
    out = [Problem(file, ".".join(map(str, key)), msg, _line(lines, key)) for key, msg in problems]
    if out:
        raise ConfigError(out)
    objectives = [parse_objective(t)[0] for t in (spec.objectives or [])]
    constraints = [parse_constraint(t)[0] for t in spec.constraints] if kind == "search" else []
    report = tuple(spec.report.metrics) if spec.report is not None else ()
    _check_metrics(exp, kind, objectives, constraints, file, lines, report)
    base = copy.deepcopy({k: v for k, v in data.items() if k not in ("sweep", "search")})
    return Study(kind=kind, experiment=exp, base=base, file=file, lines=lines,
                 params=tuple(p for p, _, _ in resolved), dims=tuple((p, d) for p, d, _ in resolved),
                 keys=tuple(k for _, _, k in resolved),
                 sweep=spec if kind == "sweep" else None, search=spec if kind == "search" else None,
                 objectives=tuple(objectives), constraints=tuple(constraints), report=report)


def _line(lines: dict, key: tuple) -> int | None:
    for n in range(len(key), -1, -1):
        if tuple(key[:n]) in lines:
            return lines[tuple(key[:n])]
    return None


def _check_metrics(exp: Experiment, kind: str, objectives: list[Objective], constraints: list[Constraint],
                   file: str | None, lines: dict, report: tuple[str, ...] = ()) -> None:
    used = [((kind, "objectives", i), o.metric) for i, o in enumerate(objectives)]
    used += [((kind, "constraints", i), c.metric) for i, c in enumerate(constraints)]
    used += [((kind, "report", "metrics", i), m) for i, m in enumerate(report)]
    known = set(STATIC_METRICS)
    if any(m not in known for _, m in used):
        known |= probe_metrics(exp)
    problems = []
    for key, metric in used:
        if metric not in known:
            problems.append(Problem(file, ".".join(map(str, key)), f"unknown metric '{metric}'; "
                                    f"metrics include {', '.join(CSV_METRICS)}", _line(lines, key),
                                    did_you_mean(metric, sorted(known))))
    if problems:
        raise ConfigError(problems)


def probe_metrics(exp: Experiment) -> set[str]:
    """The metric names the base experiment produces (simulated once), or none if it fails."""
    from simulator.run import run_experiment

    try:
        result = run_experiment(exp)
    except Exception:  # noqa: BLE001 - then only the static names are known
        return set()
    return set(result.metrics())
