"""The event-driven core: a ``LoweredProgram`` run event by event on flat arrays with numba.

``NumbaEngine`` is registered as engine ``numba``. numba is imported on first use, not here, so
listing engines stays fast. The rules it follows are in ``simulator/README.md`` and
``simulator.core.kernel``; ``simulator.reference`` implements the same rules with simpy.
"""

from simulator.core.engine import CoreRun, EventLog, NumbaEngine, simulate

__all__ = ["NumbaEngine", "CoreRun", "EventLog", "simulate"]
