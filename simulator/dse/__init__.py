"""Design-space exploration: sweeps, optuna searches, execution backends, plots, a Gym environment.

Importing the package registers the model variants of ``simulator.dse.variants``. The modules
that run studies import the experiment loader, which imports ``simulator.dse.spec``; import them
directly (``from simulator.dse.sweep import run_sweep``) rather than from here.
"""

from simulator.dse import variants  # noqa: F401  (registers model variants)
from simulator.dse.spec import SearchSpec, SweepSpec

__all__ = ["SweepSpec", "SearchSpec"]
