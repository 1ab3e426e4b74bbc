"""``tessera run`` for experiments with a ``sweep:`` or ``search:`` section.

Contract: ``add_study_arguments(parser)`` adds ``--workers``, ``--cluster`` and ``--resume`` to
``tessera run``; ``run_study_if_present(args)`` runs the study and returns an exit code, or
returns None when the file is a plain experiment (which ``cmd_run`` then runs as before).
Exit codes: 0 when every point finished ``ok`` (a search's infeasible designs are not failures);
1 when some points failed or were lost: every point was still tried and recorded, and stderr
lists the distinct errors with how many points each (the first three); 2 for bad input (nothing
runs); 130 when interrupted (Ctrl-C; ``--resume`` continues).
"""

from __future__ import annotations

import argparse
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


def render_rows(title: str, rows: list[dict], params: list[str], metrics: list[str], *,
                lead: str = "point", max_rows: int = 25):
    """A rich table of rows: lead column, parameters (short labels), status, the named metrics."""
    from rich.table import Table

    from simulator.dse.store import row_metric
    from simulator.dse.tables import fmt, value_label

    t = Table(title=title, title_justify="left")
    t.add_column(lead, justify="right")
    for p in params:  # fold: long names wrap instead of ending in an ellipsis
        t.add_column(p.split(".", 1)[-1], overflow="fold")
    t.add_column("status")
    for m in metrics:
        t.add_column(m, justify="right", overflow="fold")
    for r in rows[:max_rows]:
        status = r.get("status", "")
        if r.get("feasible") is False:
            status += " (infeasible)"
        t.add_row(fmt(r.get(lead)), *[value_label((r.get("params") or {}).get(p)) for p in params], status,
                  *[fmt(row_metric(r, m)) for m in metrics])
    if len(rows) > max_rows:
        t.add_row(f"... {len(rows) - max_rows} more", *[""] * (len(params) + 1 + len(metrics)))
    return t


def report_failures(rows: list[dict], total: int, limit: int = 3) -> None:
    """On stderr: how many points failed and the first ``limit`` distinct errors with counts."""
    from simulator.dse.tables import failures

    groups = failures(rows)
    if not groups:
        return
    n = sum(c for _, c in groups)
    which = f"every point failed ({n})" if n == total else f"{n} of {total} points failed"
    print(f"tessera: {which} ({len(groups)} distinct error"
          f"{'s' if len(groups) != 1 else ''}; each is in the 'error' column of the results):", file=sys.stderr)
    for msg, count in groups[:limit]:
        lines = msg.splitlines()
        text = "\n    ".join(lines[:6]) + (f"\n    ... {len(lines) - 6} more lines" if len(lines) > 6 else "")
        print(f"  {count} point{'s' if count != 1 else ''}: {text}", file=sys.stderr)
    if len(groups) > limit:
        print(f"  ... and {len(groups) - limit} other errors", file=sys.stderr)


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
    try:
        return _run(study, out, args, plots, args.quiet)
    except KeyboardInterrupt:
        # the message is this command's, and the exit status is the shell's for SIGINT: the
        # top-level handler (simulator.cli) must not print its own "interrupted" as well
        print(f"interrupted: the points finished so far are in {out}; rerun with --resume to "
              "continue", file=sys.stderr)
        return 130


def _run(study, out: Path, args: argparse.Namespace, plots: bool, quiet: bool) -> int:
    from simulator.dse.backends import make_backend

    with make_backend(args.workers, args.cluster) as backend:
        if study.kind == "sweep":
            from simulator.dse.sweep import run_sweep

            outcome = run_sweep(study, out, backend=backend, resume=args.resume, quiet=quiet, plots=plots)
            rows, shown, lead, total = outcome.rows, outcome.pareto or outcome.rows, "point", outcome.total
        else:
            from simulator.dse.search import run_search

            outcome = run_search(study, out, backend=backend, resume=args.resume, quiet=quiet, plots=plots)
            rows, shown, lead, total = outcome.trials, outcome.pareto, "trial", len(outcome.trials)
    if not quiet:
        con = _console()
        con.print(render_rows(outcome.title(), shown, outcome.params, outcome.metrics, lead=lead))
        con.print(outcome.summary())
        con.print(f"wrote {', '.join(str(f) for f in outcome.files)}")
    report_failures(rows, total)
    return 1 if outcome.failed else 0
