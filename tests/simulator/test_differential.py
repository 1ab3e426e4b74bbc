"""numba core vs simpy reference on random programs: identical to the cycle and event by event.

Programs are random DAGs over 1-3 units (1-2 lanes) and 1-2 channels (random bandwidth, latency),
with random cycles and bytes including zero, random layers and priorities with ties. Besides
agreeing with each other, both must obey the rules on their own (``check_rules``): dependencies
and lane counts respected, no lane idle while a task waits, waiting tasks served in
``(ready time, priority, id)`` order.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.core import simulate as core_simulate
from simulator.engines import get_engine
from simulator.program import COMPUTE, LayerInfo, LoweredProgram, ProgramBuilder, Resource
from simulator.reference import simulate as reference_simulate

pytestmark = pytest.mark.differential

BANDWIDTHS = st.one_of(st.sampled_from([1.0, 2.0, 4.0, 8.0, math.inf]),
                       st.floats(0.2, 40.0, allow_nan=False, allow_infinity=False))


def layer_info(i: int) -> LayerInfo:
    return LayerInfo(index=i, name=f"L{i}", kind="conv", unit="u0", dataflow=None, block=None, macs=1000,
                     vector_ops=0, compute_cycles=0, folds=0, mapping_efficiency=None,
                     compute_utilization=None, peak_macs_per_cycle=16, gemm=None)


@st.composite
def programs(draw, max_tasks: int = 30) -> LoweredProgram:
    units = [Resource(f"u{i}", "unit", lanes=draw(st.integers(1, 2)), peak_macs_per_cycle=16)
             for i in range(draw(st.integers(1, 3)))]
    channels = [Resource(f"c{i}", "channel", bytes_per_cycle=draw(BANDWIDTHS), latency_cycles=draw(st.integers(0, 6)),
                         lanes=draw(st.sampled_from([1, 1, 1, 2])))  # the lowering uses one lane
                for i in range(draw(st.integers(1, 2)))]
    b = ProgramBuilder(1e9, units + channels)
    n_layers = draw(st.integers(0, 3))
    b.layers.extend(layer_info(i) for i in range(n_layers))
    n = draw(st.integers(1, max_tasks))
    for t in range(n):
        deps = draw(st.lists(st.integers(0, t - 1), max_size=3)) if t else []  # repeats allowed
        layer = draw(st.integers(-1, n_layers - 1))
        if draw(st.booleans()):
            b.compute(draw(st.sampled_from(units)).name, draw(st.integers(0, 12)), layer=layer, deps=deps,
                      label=f"t{t}")
        else:
            b.transfer(draw(st.sampled_from(channels)).name, draw(st.sampled_from([0, 1, 5, 16, 40, 97])),
                       layer=layer, deps=deps, label=f"t{t}")
    program = b.build()
    if draw(st.booleans()):  # few distinct priorities: many ties, broken by id
        prio = draw(st.lists(st.integers(-1, 2), min_size=n, max_size=n))
        program = dataclasses.replace(program, priority=np.array(prio, dtype=np.int64))
    return program


def check_rules(p: LoweredProgram, start: np.ndarray, end: np.ndarray, lane: np.ndarray) -> None:
    """The scheduling rules, checked from the outside on one engine's answer."""
    n = p.n_tasks
    occ = np.array([p.duration(t) for t in range(n)], dtype=np.int64)
    lat = np.array([0 if p.kind[t] == COMPUTE else p.resources[p.resource[t]].latency_cycles
                    for t in range(n)])
    assert (start >= 0).all()
    assert (end == start + occ + lat).all()
    ready = np.array([max((int(end[d]) for d in p.deps(t)), default=0) for t in range(n)])
    assert (start >= ready).all()
    horizon = int(end.max(initial=0)) + 1
    for r, res in enumerate(p.resources):
        mine = np.nonzero(p.resource == r)[0]
        held = np.zeros(horizon, dtype=np.int64)  # lanes held during [c, c + 1)
        for t in mine:
            held[start[t]:start[t] + occ[t]] += 1
            assert 0 <= lane[t] < res.lanes
        assert held.max(initial=0) <= res.lanes
        for t in mine:  # lanes with positive occupancy never overlap on the same lane
            for u in mine:
                if t < u and lane[t] == lane[u] and occ[t] and occ[u]:
                    assert start[t] + occ[t] <= start[u] or start[u] + occ[u] <= start[t]
        for t in mine:  # work conservation: while t waits, every lane is held
            assert (held[ready[t]:start[t]] == res.lanes).all()
        for t in mine:  # a task waiting before another started would have been preferred
            for u in mine:
                if ready[t] < start[u] < start[t]:
                    assert (ready[u], p.priority[u], u) < (ready[t], p.priority[t], t)


def _compare(program: LoweredProgram) -> None:
    fast = core_simulate(program, record_events=True)
    ref = reference_simulate(program)
    assert fast.start.tolist() == ref.start
    assert fast.end.tolist() == ref.end
    assert fast.lane.tolist() == ref.lane
    assert fast.ready.tolist() == ref.ready
    assert fast.last_transfer.tolist() == ref.last_transfer
    log = list(zip(*(column.tolist() for column in fast.events)))
    assert log == ref.events  # the same events, in the same (time, priority, sequence) order
    assert [e[0] for e in log] == sorted(e[0] for e in log)  # time never goes back
    assert sorted(e[2] for e in log) == list(range(len(log)))  # every scheduled event ran once
    check_rules(program, fast.start, fast.end, fast.lane)

    a = get_engine("numba").run(program)
    b = get_engine("simpy").run(program)
    da, db = a.to_dict(), b.to_dict()
    da.pop("engine"), db.pop("engine")
    assert da == db  # total cycles, per-layer spans and stalls, per-resource busy/idle/tasks/bytes
    for layer in a.layers:
        assert layer.stall_cycles == (layer.stall_memory_cycles + layer.stall_dependency_cycles
                                      + layer.stall_busy_cycles)
    assert a.cycles == int(fast.end.max(initial=0))


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_programs_agree(program):
    _compare(program)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(max_tasks=150))
def test_larger_random_programs_agree(program):
    _compare(program)


@settings(max_examples=200, deadline=None)
@given(tiles=st.integers(1, 12), layers=st.integers(1, 4), load=st.integers(0, 60), compute=st.integers(0, 25),
       store=st.integers(0, 60), bandwidth=BANDWIDTHS, latency=st.integers(0, 8), lanes=st.integers(1, 2))
def test_double_buffered_pipelines_agree(tiles, layers, load, compute, store, bandwidth, latency, lanes):
    """The shape mappers.lower writes: per layer, tiles of load/compute/store sharing one channel."""
    b = ProgramBuilder(1e9, [Resource("array", "unit", lanes=lanes),
                             Resource("dram", "channel", bytes_per_cycle=bandwidth, latency_cycles=latency)])
    b.layers.extend(layer_info(i) for i in range(layers))
    producer = None
    for i in range(layers):
        loads, comps, stores = [], [], []
        for t in range(tiles):
            ld = b.transfer("dram", load + 7 * t % 11, layer=i, label=f"L{i} load {t}",
                            deps=[producer if t == 0 else None, loads[-1] if loads else None,
                                  comps[t - 2] if t >= 2 else None])
            c = b.compute("array", compute + 3 * t % 5, layer=i, label=f"L{i} compute {t}",
                          deps=[ld, comps[-1] if comps else None, stores[t - 2] if t >= 2 else None])
            st_ = b.transfer("dram", store, layer=i, label=f"L{i} store {t}", deps=[c, stores[-1] if stores else None])
            loads.append(ld)
            comps.append(c)
            stores.append(st_)
        producer = stores[-1]
    _compare(b.build())


EXPERIMENTS = sorted(p for p in (Path(__file__).resolve().parents[2] / "experiments").rglob("*.yaml")
                     if "benchmarks" not in p.parts)


@pytest.mark.differential
@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_shipped_experiment_agrees_between_engines(path):
    """numba and simpy give identical cycles, per-resource busy time and bytes on every experiment."""
    from simulator.experiment import load_experiment
    from simulator.run import simulate

    exp = load_experiment(path)
    if getattr(exp, "sweep", None) or getattr(exp, "search", None):
        pytest.skip("sweeps and searches run many points; their points are plain experiments")
    a = simulate(exp.workload, exp.architecture, mapper=exp.mapper, engine="numba")
    b = simulate(exp.workload, exp.architecture, mapper=exp.mapper, engine="simpy")
    assert a.cycles == b.cycles
    assert [(r.name, r.busy_cycles, r.bytes, r.tasks) for r in a.resources] == \
        [(r.name, r.busy_cycles, r.bytes, r.tasks) for r in b.resources]
    assert [(l.name, l.start_cycle, l.end_cycle, l.stall_memory_cycles) for l in a.layers] == \
        [(l.name, l.start_cycle, l.end_cycle, l.stall_memory_cycles) for l in b.layers]
