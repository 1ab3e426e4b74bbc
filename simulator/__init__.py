"""Simulator: engines, results, experiment loading, reports and the ``tessera`` CLI."""

from simulator.engines import get_engine
from simulator.experiment import Experiment, load_experiment
from simulator.result import SimResult
from simulator.run import lower_workload, run_experiment, simulate

__all__ = ["simulate", "run_experiment", "load_experiment", "lower_workload", "get_engine",
           "Experiment", "SimResult"]
