"""CoE on an SN40L node: switch counts, bytes and times follow the router's choices."""

from __future__ import annotations

import math

import pytest

from simulator.coe import coe_summary
from simulator.experiment import experiment_from_dict
from simulator.run import run_experiment
from workloads.coe import lru_schedule, route
from workloads.errors import ConfigError

COE = {"experts": 150, "expert_model": "llama-2-7b", "requests": 60,
       "routing": {"distribution": "zipf", "alpha": 1.0}, "seed": 1, "prompt": 128, "generate": 4}


def experiment(coe=None, overrides=None, engine="numba"):
    return experiment_from_dict({
        "name": "coe", "architecture": {"preset": "sn40l", "overrides": overrides or {}},
        "workload": {"coe": {**COE, **(coe or {})}, "precision": {"weights": "bf16", "activations": "bf16",
                                                                   "kv_cache": "bf16"}},
        "engine": engine})


@pytest.fixture(scope="module")
def run():
    exp = experiment()
    return exp, run_experiment(exp)


def test_switches_follow_the_router_and_the_lru_cache(run):
    exp, result = run
    meta = exp.workload.meta["coe"]
    expected = lru_schedule(route(_spec()), meta["slots"])
    s = coe_summary(result)
    assert s["requests"] == 60
    assert s["switches"] == expected.switches == meta["switches"]
    assert s["hits"] == 60 - expected.switches
    assert s["evictions"] == sum(len(e) for e in expected.evicted)
    assert s["switch_bytes"] == expected.switches * meta["expert_bytes"]
    # a switch row per copy, named after its request, in the router's order
    switched = [l.name.split(".")[0] for l in result.layers if l.kind == "expert_switch"]
    assert switched == [f"r{i}" for i, hit in enumerate(expected.hits) if not hit]


def _spec():
    from workloads.coe import CoESpec
    from workloads.schema import validate

    return validate(CoESpec, COE)


def test_switch_time_is_bytes_over_the_ddr_to_hbm_path(run):
    exp, result = run
    meta = exp.workload.meta["coe"]
    bytes_per_cycle = 1e12 / exp.architecture.freq_hz
    per_switch = math.ceil(meta["expert_bytes"] / bytes_per_cycle)
    switches = [l for l in result.layers if l.kind == "expert_switch"]
    assert all(l.total_cycles == per_switch for l in switches)
    assert coe_summary(result)["switch_s"] == pytest.approx(len(switches) * meta["expert_bytes"] / 1e12)
    # requests are served one after another, each after its switch: the run is the sum
    requests = [l for l in result.layers if l.kind == "expert_request"]
    assert result.cycles == sum(l.total_cycles for l in requests) + len(switches) * per_switch
    for a, b in zip(result.layers, result.layers[1:]):
        assert b.start_cycle >= a.end_cycle


def test_a_slower_host_link_only_changes_the_switches(run):
    exp, fast = run
    slow = run_experiment(experiment(overrides={"node.ddr_to_hbm_bandwidth": "64 GB/s"}))
    a, b = coe_summary(fast), coe_summary(slow)
    assert a["switches"] == b["switches"] and a["request_s"] == pytest.approx(b["request_s"])
    assert b["switch_s"] / a["switch_s"] == pytest.approx(1e12 / 64e9)


@pytest.mark.differential
def test_engines_agree(run):
    _, numba = run
    for engine in ("simpy", "analytical"):
        other = run_experiment(experiment(engine=engine))
        assert other.cycles == numba.cycles
        assert [(l.start_cycle, l.end_cycle) for l in other.layers] == \
            [(l.start_cycle, l.end_cycle) for l in numba.layers]


def test_more_experts_than_ddr_holds_is_an_error_with_the_numbers():
    with pytest.raises(ConfigError) as info:
        experiment({"experts": 1000})
    msg = str(info.value)
    assert "workload.coe.experts: 1000 experts x 13.48 GB (llama-2-7b at bf16) = 13.48 TB" in msg
    assert "do not fit the node's expert store (13.19 TB); at most 979 experts fit" in msg


def test_an_expert_larger_than_hbm_is_an_error():
    with pytest.raises(ConfigError, match="one expert .* does not fit the node's HBM"):
        experiment(overrides={"memory.hbm.size": "1 GiB"})


def test_other_templates_are_refused():
    with pytest.raises(ConfigError, match="the 'systolic_array' template does not run composition-of-experts"):
        experiment_from_dict({"name": "x", "architecture": {"preset": "tpu_v4_like"},
                              "workload": {"coe": COE}})


def test_workload_batch_is_refused_beside_coe():
    with pytest.raises(ConfigError, match="workload.coe.batch"):
        experiment_from_dict({"name": "x", "architecture": {"preset": "sn40l"},
                              "workload": {"coe": COE, "batch": 2}})


def test_router_model_runs_before_every_request():
    exp = experiment({"requests": 5, "router_model": "llama-2-7b", "generate": 0})
    result = run_experiment(exp)
    routers = [l for l in result.layers if l.name.endswith(".router")]
    assert len(routers) == 5 and result.counter("router_requests") == 5
    assert result.counter("coe_requests") == 5
