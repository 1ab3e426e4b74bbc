"""``tessera run`` for experiments with a ``sweep:`` or ``search:`` section.

Contract: ``add_study_arguments(parser)`` adds ``--workers``, ``--cluster`` and ``--resume`` to
``tessera run``; ``run_study_if_present(args)`` runs the study and returns an exit code, or
returns None when the file is a plain experiment (which ``cmd_run`` then runs as before).
Exit codes: 0 when at least one point succeeded, 1 when every point failed (the first error is
printed), 2 for bad input (nothing runs).
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from pathlib import Path

from workloads.errors import ConfigError, Problem

__all__ = ["add_study_arguments", "run_study_if_present", "render_rows"]


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("sweeps and searches (experiments with a sweep: or search: section)")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="points run at once: local worker processes (default: one per core; 0: in "
                        "this process), or Dask workers started by --cluster local")
    g.add_argument("--cluster", default=None, metavar="ADDRESS",
                   help="run points on Dask: tcp://HOST:PORT of a running scheduler, or 'local' to "
                        "start a local cluster (pip install 'tessera[cluster]')")
    g.add_argument("--resume", action="store_true",
                   help="continue a sweep/search in --out: points already recorded are not run again")


def _console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = shutil.get_terminal_size((160, 24)).columns if stream.isatty() else 160
    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=max(width, 100))


def _fmt(v) -> str:
    if v is None or v == "":
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        if math.isinf(v):
            return "inf"
        return f"{v:.4g}"
    return str(v)


def render_rows(title: str, rows: list[dict], params: list[str], metrics: list[str], *,
                lead: str = "point", max_rows: int = 25):
    """A rich table of rows: lead column, parameters, status, the named metrics."""
    from rich.table import Table

    from simulator.dse.store import row_metric

    t = Table(title=title, title_justify="left")
    t.add_column(lead, justify="right")
    for p in params:
        t.add_column(p.split(".", 1)[-1])
    t.add_column("status")
    for m in metrics:
        t.add_column(m, justify="right")
    for r in rows[:max_rows]:
        status = r.get("status", "")
        if r.get("feasible") is False:
            status += " (infeasible)"
        t.add_row(_fmt(r.get(lead)), *[_fmt((r.get("params") or {}).get(p)) for p in params], status,
                  *[_fmt(row_metric(r, m)) for m in metrics])
    if len(rows) > max_rows:
        t.add_row(f"... {len(rows) - max_rows} more", *[""] * (len(params) + 1 + len(metrics)))
    return t


def _metrics_for(study) -> list[str]:
    named = [o.metric for o in study.objectives] + [c.metric for c in study.constraints]
    # LLM and serving runs: tokens per second, time to first token, ... (the table has room for four)
    usual = [m for m in study.workload_metrics if m != "requests_completed"][:4] or \
        ["latency_s", "energy_pj", "utilization"]
    return list(dict.fromkeys([*named, *usual, "area_mm2"]))


def run_study_if_present(args: argparse.Namespace) -> int | None:
    from simulator.dse.study import has_study_section

    study_options = [o for o, v in (("--workers", getattr(args, "workers", None)),
                                    ("--cluster", getattr(args, "cluster", None)),
                                    ("--resume", getattr(args, "resume", False))) if v not in (None, False)]
    if not has_study_section(args.experiment):
        if study_options:
            raise ConfigError(Problem(args.experiment, "", f"{', '.join(study_options)} apply to "
                                      "experiments with a 'sweep:' or 'search:' section; this one has neither"))
        return None
    if args.trace:
        raise ConfigError(Problem(None, "--trace", "a sweep or search runs many points; --trace is for "
                                  "single runs (set sweep.save_results to keep each point's results)"))
    from simulator.dse.study import load_study

    study = load_study(args.experiment, engine=args.engine)
    out = Path(args.out) if args.out else Path("results") / study.name
    if out.exists() and not out.is_dir():
        raise ConfigError(Problem(None, "--out", f"'{out}' exists and is not a folder"))
    plots = args.plots or study.experiment.outputs.plots
    if plots:
        from simulator.plots import require_matplotlib

        require_matplotlib("--plots" if args.plots else "outputs.plots", None if args.plots else study.file)
    if study.kind == "search":
        from simulator.dse.extras import require

        require("optuna", "search", study.file)
    quiet = args.quiet
    try:
        return _run(study, out, args, plots, quiet)
    except KeyboardInterrupt:
        print(f"interrupted: the points finished so far are in {out}; rerun with --resume to "
              "continue", file=sys.stderr)
        raise


def _run(study, out: Path, args: argparse.Namespace, plots: bool, quiet: bool) -> int:
    from simulator.dse.backends import make_backend

    with make_backend(args.workers, args.cluster) as backend:
        if study.kind == "sweep":
            from simulator.dse.sweep import run_sweep

            outcome = run_sweep(study, out, backend=backend, resume=args.resume, quiet=quiet, plots=plots)
            rows, ok = outcome.rows, outcome.by_status.get("ok", 0)
            shown = outcome.pareto if outcome.pareto else rows
            title = (f"{study.name}: Pareto front ({', '.join(map(str, study.objectives))}) of "
                     f"{len(rows)} points" if outcome.pareto else f"{study.name}: {len(rows)} points")
            lead = "point"
            line = (f"{outcome.total} points ({outcome.resumed} already done"
                    + (f", {outcome.dropped} duplicate draws dropped" if outcome.dropped else "")
                    + f"); ran {outcome.ran} on {outcome.backend} in {outcome.elapsed_s:.1f} s "
                    f"({outcome.points_per_minute:.0f} points/min); "
                    + ", ".join(f"{n} {s}" for s, n in sorted(outcome.by_status.items())))
        else:
            from simulator.dse.search import run_search

            outcome = run_search(study, out, backend=backend, resume=args.resume, quiet=quiet, plots=plots)
            rows = outcome.trials
            ok = sum(1 for r in rows if r["status"] == "ok")
            shown = outcome.pareto
            title = (f"{study.name}: Pareto front ({', '.join(map(str, study.objectives))}) of "
                     f"{len(rows)} trials" if len(study.objectives) > 1
                     else f"{study.name}: best of {len(rows)} trials")
            lead = "trial"
            feasible = sum(1 for r in rows if r.get("feasible"))
            line = (f"{len(rows)} trials ({outcome.evaluated} simulated, {outcome.reused} reused) on "
                    f"{outcome.backend} in {outcome.elapsed_s:.1f} s; {ok} ok, {feasible} feasible")
    if not quiet:
        con = _console()
        con.print(render_rows(title, shown, [p.path for p in study.params], _metrics_for(study), lead=lead))
        con.print(line)
        con.print(f"wrote {', '.join(str(f) for f in outcome.files)}")
    if ok == 0 and rows:
        first = next((r.get("error") for r in rows if r.get("error")), "no details")
        print(f"tessera: every point failed; the first error:\n{first}", file=sys.stderr)
        return 1
    return 0
