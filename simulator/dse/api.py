"""Running a study from Python: ``run_study(path_or_dict, out)``, what ``tessera run`` does.

    from simulator.dse.api import run_study
    outcome = run_study("experiments/dse/resnet50_array_sram.yaml", "results/r50", workers=2)
    outcome.rows           # a sweep's rows (outcome.trials / outcome.pareto for a search)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulator.dse.backends import make_backend
from simulator.dse.search import SearchOutcome, run_search
from simulator.dse.study import Study, load_study, study_from_dict
from simulator.dse.sweep import SweepOutcome, run_sweep

__all__ = ["run_study"]


def run_study(study: Study | str | Path | dict[str, Any], out: str | Path, *, workers: int | None = 0,
              cluster: str | None = None, resume: bool = False, quiet: bool = True, plots: bool = False,
              engine: str | None = None) -> SweepOutcome | SearchOutcome:
    """Run a sweep or a search (a ``Study``, an experiment file, or the file's data as a dict).

    ``workers=0`` runs the points in this process; ``workers=N`` in N local processes; ``cluster``
    ("local" or "tcp://HOST:PORT") on Dask, as ``tessera run --workers/--cluster`` do.
    """
    if isinstance(study, dict):
        study = study_from_dict(study, engine=engine)
    elif not isinstance(study, Study):
        study = load_study(study, engine=engine)
    with make_backend(workers, cluster) as backend:
        run = run_sweep if study.kind == "sweep" else run_search
        return run(study, out, backend=backend, resume=resume, quiet=quiet, plots=plots)
