"""Per-layer spans and stall attribution from per-task times (numpy, vectorized).

Contract (the same rules as ``simulator.reference``; see ``simulator/README.md``): a layer starts
at the earliest start of its tasks and ends at the latest completion; its busy cycles are the sum
of its compute tasks' cycles. Walking its compute tasks in ``(start, id)`` order, with ``prev``
the completion of the previous one (the layer start for the first):

- ``max(0, ready - prev)`` is a *memory* stall if the dependency that completed last is a
  transfer, else a *dependency* stall;
- the rest of ``start - prev`` is a *busy-unit* stall (negative when compute tasks of the layer
  overlap on several lanes, so that the sum stays exact);
- the layer end minus the completion of the last compute task is a *memory* stall (stores).

So ``span - busy == memory + dependency + busy-unit`` for every layer.
"""

from __future__ import annotations

import numpy as np

from simulator.engines import LayerTiming
from simulator.program import COMPUTE

__all__ = ["layer_timing"]


def layer_timing(n_layers: int, layer: np.ndarray, kind: np.ndarray, cycles: np.ndarray,
                 start: np.ndarray, end: np.ndarray, ready: np.ndarray,
                 last_transfer: np.ndarray) -> LayerTiming:
    timing = LayerTiming(n_layers)
    if n_layers == 0:
        return timing
    own = layer >= 0
    lay = layer[own]
    first = np.full(n_layers, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, lay, start[own])
    last = np.zeros(n_layers, dtype=np.int64)
    np.maximum.at(last, lay, end[own])
    empty = first == np.iinfo(np.int64).max
    first[empty] = 0
    last[empty] = 0
    timing.start[:] = first
    timing.end[:] = last

    comp = np.nonzero(own & (kind == COMPUTE))[0]
    order = comp[np.lexsort((comp, start[comp], layer[comp]))]  # by layer, then (start, id)
    cl = layer[order]
    np.add.at(timing.busy, cl, cycles[order])
    head = np.ones(len(order), dtype=bool)
    head[1:] = cl[1:] != cl[:-1]
    prev = np.empty(len(order), dtype=np.int64)
    prev[head] = first[cl[head]]
    prev[~head] = end[order[:-1]][~head[1:]]
    gap = start[order] - prev
    wait = np.maximum(0, ready[order] - prev)
    memory = last_transfer[order].astype(bool)
    np.add.at(timing.stall_memory, cl[memory], wait[memory])
    np.add.at(timing.stall_dependency, cl[~memory], wait[~memory])
    np.add.at(timing.stall_busy, cl, gap - wait)

    # the tail after each layer's last compute task (the whole span if it has none)
    tail_from = first.copy()
    tail = np.ones(len(order), dtype=bool)
    tail[:-1] = cl[1:] != cl[:-1]
    tail_from[cl[tail]] = end[order[tail]]
    timing.stall_memory += last - tail_from
    return timing
