"""The reference engine: the event rules of ``simulator.core`` as readable simpy processes.

``SimpyEngine`` is registered as engine ``simpy``. It is the oracle the numba core is tested
against (``tests/simulator/test_differential.py``) and the version to read first; it is slow.
"""

from simulator.reference.engine import ReferenceRun, SimpyEngine, simulate

__all__ = ["SimpyEngine", "ReferenceRun", "simulate"]
