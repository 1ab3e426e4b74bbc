"""Iteration-shape simulations on helper processes (simulator/serving/workers.py) and the cost
cache's batching (simulator/serving/costs.py): the same results, to the bit, with any number of
workers; failures and dead helpers fall back to this process; the defaults."""

from __future__ import annotations

import gc
import multiprocessing
import os

import pytest

from simulator.experiment import experiment_from_dict
from simulator.run import run_experiment, simulate
from simulator.serving import IterationCosts, serve
from simulator.serving import workers as W
from workloads.errors import ConfigError
from workloads.serving import IterationShape
from tests.conftest import write_llm_config

@pytest.fixture
def tiny(tmp_path):
    return str(write_llm_config(tmp_path))


@pytest.fixture
def forking(monkeypatch):
    """Let helpers fork even where the test runner keeps a thread of its own (pytest-xdist): the
    helpers run only the simulation, which takes no lock another thread could hold."""
    monkeypatch.setattr(W, "_single_threaded", lambda: True)


def _exp(config: str, **serving):
    s = {"config": config, "arrival": {"poisson": 200}, "requests": 10,
         "input_length": {"uniform": [64, 700]}, "output_length": {"uniform": [4, 24]}, "max_batch": 8,
         "seed": 1, **serving}
    return experiment_from_dict({
        "name": "serve", "architecture": {"preset": "h100_logic_pim", "overrides": {"kernel.launch_overhead": 0}},
        "workload": {"phase": "serving", "serving": s}, "mapper": {"attention": "fused"}, "engine": "numba"})


def _costs(exp, workers: int, max_tasks: int | None = None) -> IterationCosts:
    def sim(graph, tiles):
        m = exp.mapper if tiles is None else exp.mapper.model_copy(update={"max_tiles_per_layer": tiles,
                                                                           "max_tasks": 10 ** 12})
        return simulate(graph, exp.architecture, mapper=m, engine="numba")
    return IterationCosts(exp.serving, sim, max_tasks=max_tasks or exp.mapper.max_tasks,
                          max_tiles_per_layer=exp.mapper.max_tiles_per_layer, workers=workers)


def _serve(exp, costs: IterationCosts):
    spec = exp.serving.spec
    return serve(exp.serving.requests, costs.cost, max_batch=spec.max_batch,
                 kv_capacity_tokens=exp.serving.kv_capacity_tokens, max_prefill_tokens=spec.max_prefill_tokens,
                 on_iteration=costs.record)


def test_shapes_simulated_on_helpers_are_the_serial_ones_to_the_bit(tiny, forking):
    exp = _exp(tiny)
    one, two = _costs(exp, 1), _costs(exp, 2)
    a, b = _serve(exp, one), _serve(exp, two)
    assert two.pool.remote_jobs > 0 and one.pool.remote_jobs == 0  # the helpers did run shapes
    assert a.records == b.records and list(a.tbt) == list(b.tbt) and a.energy_pj == b.energy_pj
    assert one.usage == two.usage and one.simulations == two.simulations
    assert one.shapes.keys() == two.shapes.keys() and one.untimed.keys() == two.untimed.keys()
    for k, s in one.shapes.items():
        t = two.shapes[k]
        assert (s.cycles, s.energy_pj, s.layers, s.resources) == (t.cycles, t.energy_pj, t.layers, t.resources)
    two.close()
    assert two.pool._pool is None and not _helpers()


def test_a_serving_run_is_the_same_with_any_number_of_workers(tiny, forking, monkeypatch):
    made = []
    init = IterationCosts.__init__

    def spy(self, *a, **k):
        init(self, *a, **k)
        made.append(self)
    monkeypatch.setattr(IterationCosts, "__init__", spy)
    runs = {}
    for n in (1, 2):
        monkeypatch.setenv(W.WORKERS_ENV, str(n))
        runs[n] = run_experiment(_exp(tiny, seed=3))
        assert made[-1].workers == n
    assert made[-1].pool.remote_jobs > 0
    a, b = runs[1], runs[2]
    assert a.metrics() == b.metrics() and a.requests == b.requests
    assert a.layers == b.layers and a.resources == b.resources


def test_the_first_shape_of_a_kind_goes_ahead_so_every_batch_knows_its_tile_budget(tiny):
    # the tile budget is the full model's; the first mixed shape learns it (two tries of 1 + 2
    # layers: one tile per operator, counting them, then the budget), the others of its batch
    # start from it (one try each), whatever process runs them
    costs = _costs(_exp(tiny), 1, max_tasks=3000)
    mixed = [IterationShape(512, 256, 8, c) for c in (256, 512, 1024)]
    costs.prepare([(s, True) for s in mixed])
    assert 1 < costs._tiles_guess[(True, True)] < 64
    assert costs.simulations == 2 * 2 + 2 * 2
    costs.prepare([(IterationShape(512, 256, 8, 2048), True), (IterationShape(0, 1, 8, 300), True)])
    assert costs.simulations == 8 + 2 + 4  # a known kind: one try; a new one (decode only): two


def _helpers() -> list:
    """The helper processes alive (the test process starts no other children)."""
    return multiprocessing.active_children()


def _square(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative: {x}")
    if x == 1000 and multiprocessing.parent_process() is not None:  # dies in a helper, not here
        os._exit(1)
    return x * x


def test_job_workers_give_what_running_here_gives_and_errors_surface_here(forking):
    w = W.JobWorkers(_square, 2)
    assert w.map(list(range(9))) == [x * x for x in range(9)]
    assert w.remote_jobs > 0 and len(_helpers()) == 2
    with pytest.raises(ValueError, match="negative: -3"):  # failed in a helper, raised here
        w.map([1, 2, -3, 4])
    # a helper that dies while idle: the batch runs on the others or here
    dead = _helpers()[0]
    os.kill(dead.pid, 9)
    dead.join()
    assert w.map(list(range(6))) == [x * x for x in range(6)]
    # a helper that dies running a job: that job and those the broken pool lost run here, and the
    # pool is ended; the next batch forks a new one
    assert w.map([2, 1000, 3, 4, 5]) == [4, 1000 ** 2, 9, 16, 25]
    assert w._pool is None and not _helpers()
    done = w.remote_jobs
    assert w.map(list(range(6))) == [x * x for x in range(6)]
    assert len(_helpers()) == 2 and w.remote_jobs > done
    w.close()
    w.close()  # idempotent
    assert w._pool is None and not _helpers()


def test_one_set_of_helpers_per_process(forking):
    a, b = W.JobWorkers(_square, 2), W.JobWorkers(_square, 2)
    assert a.map([1, 2, 3]) == [1, 4, 9] and a._pool is not None and len(_helpers()) == 2
    procs = _helpers()
    assert b.map([4, 5, 6]) == [16, 25, 36] and b._pool is not None and len(_helpers()) == 2
    assert a._pool is None and not any(p.is_alive() for p in procs)  # b's start ended a's helpers
    assert a.map([7, 8, 9]) == [49, 64, 81] and a._pool is not None and b._pool is None  # a forks again
    assert len(_helpers()) == 2
    a.close()
    assert not _helpers()


def test_one_worker_or_one_job_runs_here_without_forking():
    w = W.JobWorkers(_square, 1)
    assert w.map([1, 2, 3]) == [1, 4, 9] and w._pool is None
    w = W.JobWorkers(_square, 4)
    assert w.map([5]) == [25] and w._pool is None and not _helpers()


def test_helpers_end_when_their_workers_are_collected(forking):
    w = W.JobWorkers(_square, 2)
    assert w.map([1, 2, 3]) == [1, 4, 9] and len(_helpers()) == 2
    del w
    gc.collect()
    assert not _helpers()


def test_default_workers(monkeypatch):
    monkeypatch.setenv(W.WORKERS_ENV, "3")
    assert W.default_workers() == 3
    for bad in ("many", "0", "-2", "1.5"):
        monkeypatch.setenv(W.WORKERS_ENV, bad)
        with pytest.raises(ConfigError, match=f"environment: TESSERA_SERVING_WORKERS: expected a whole "
                           f"number of shape workers >= 1 .*found '{bad}'"):
            W.default_workers()
    monkeypatch.delenv(W.WORKERS_ENV)
    assert 1 <= W.default_workers() <= W.MAX_DEFAULT_WORKERS
    monkeypatch.setattr(W.os, "sched_getaffinity", lambda pid: {0, 1})  # the cores we may use
    assert W.default_workers() == 2
    monkeypatch.setattr(W.os, "sched_getaffinity", lambda pid: set(range(16)))
    assert W.default_workers() == W.MAX_DEFAULT_WORKERS
    monkeypatch.setattr(W.multiprocessing, "parent_process", lambda: object())  # a pool's worker
    assert W.default_workers() == 1


def test_relaxed_gc_restores_the_thresholds():
    before = gc.get_threshold()
    with W.relaxed_gc(12345):
        assert gc.get_threshold()[0] == max(before[0], 12345)
    assert gc.get_threshold() == before
