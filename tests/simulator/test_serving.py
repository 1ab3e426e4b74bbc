"""Continuous-batching serving (simulator/serving.py): the request process on hand-checked cases,
KV-cache admission, determinism, the iteration cost cache against exact simulation, the
experiment path and its errors."""

from __future__ import annotations

import dataclasses
import json

import pytest

from simulator.experiment import experiment_from_dict, parse_experiment
from simulator.run import run_experiment, simulate
from simulator.serving import (REQUEST_COLUMNS, IterationCost, IterationCosts, requests_csv, serve,
                               write_requests_csv)
from workloads.errors import ConfigError
from workloads.serving import IterationShape, Request
from tests.conftest import write_llm_config

# ---- the request-level process, with a made-up cost ------------------------------------------


def _constant(seconds: float, log: list | None = None):
    def cost(prefill, span, decode, context):
        if log is not None:
            log.append((prefill, span, decode, context))
        return IterationCost(seconds, 1.0, ())
    return cost


def test_tokens_come_out_when_the_hand_count_says():
    # r0 arrives at 0 (4 prompt tokens, 3 out), r1 at 0.5 (4, 2). Iterations of 1 s:
    # [0, 1): prefill r0 -> r0's first token at 1. [1, 2): prefill r1 (arrived at 0.5) + decode
    # r0 -> r0's 2nd token, r1's first, at 2. [2, 3): decode both -> r0's 3rd, r1's 2nd at 3.
    log = []
    out = serve([Request(0, 0.0, 4, 3), Request(1, 0.5, 4, 2)], _constant(1.0, log), max_batch=8,
                kv_capacity_tokens=100, max_prefill_tokens=100)
    r0, r1 = out.records
    assert (r0.first_token_s, r0.finished_s, r0.mean_tbt_s) == (1.0, 3.0, 1.0)
    assert (r1.admitted_s, r1.first_token_s, r1.finished_s) == (1.0, 2.0, 3.0)
    assert r1.first_token_s - r1.arrival_s == 1.5
    assert list(out.tbt) == [1.0, 1.0, 1.0] and out.iterations == 3 and out.energy_pj == 3.0
    # (prompt tokens, span, decoding sequences, mean context): r0 decodes with 4 then 5 tokens cached
    assert log == [(4, 4.0, 0, 0.0), (4, 4.0, 1, 4.0), (0, 1.0, 2, (5 + 4) / 2)]


def test_the_kv_cache_limits_admission_and_requests_wait_instead_of_being_lost():
    # each request needs 6 + 4 = 10 tokens of cache; 25 hold two at a time
    reqs = [Request(i, 0.0, 6, 4) for i in range(5)]
    log = []
    out = serve(reqs, _constant(1.0, log), max_batch=8, kv_capacity_tokens=25, max_prefill_tokens=100)
    assert len(out.records) == 5
    assert max(p // 6 + d for p, _, d, _ in log) == 2  # never more than two in the batch
    queued = [r.admitted_s - r.arrival_s for r in out.records]
    assert queued[:2] == [0.0, 0.0] and all(q > 0 for q in queued[2:])
    # the prefill budget: one 6-token prompt per iteration with max_prefill_tokens = 6
    log = []
    serve(reqs[:3], _constant(1.0, log), max_batch=8, kv_capacity_tokens=100, max_prefill_tokens=6)
    assert [p for p, *_ in log[:3]] == [6, 6, 6]


# ---- a small model: fast enough to simulate every iteration exactly -------------------------------

@pytest.fixture
def tiny(tmp_path):
    return str(write_llm_config(tmp_path))


def _exp(config: str, preset: str = "h100_logic_pim", **serving):
    s = {"config": config, "arrival": {"poisson": 200}, "requests": 10,
         "input_length": {"uniform": [64, 700]}, "output_length": {"uniform": [4, 24]}, "max_batch": 8,
         "seed": 1, **serving}
    return experiment_from_dict({
        "name": "serve", "architecture": {"preset": preset, "overrides": {"kernel.launch_overhead": 0}},
        "workload": {"phase": "serving", "serving": s}, "mapper": {"attention": "fused"}, "engine": "numba"})


KEYS = ("throughput_tokens_per_s", "ttft_s", "ttft_p99_s", "tbt_s", "tbt_p99_s", "energy_pj_per_token")


def test_serving_metrics_are_deterministic_for_a_seed(tiny):
    a, b = run_experiment(_exp(tiny)), run_experiment(_exp(tiny))
    c = run_experiment(_exp(tiny, seed=2))
    ma, mb = a.metrics(), b.metrics()
    assert ma == mb and a.requests == b.requests
    assert ma != c.metrics()
    assert ma["requests_completed"] == 10 and ma["generated_tokens"] == sum(r.output_tokens for r in a.requests)
    for k in KEYS:
        assert ma[k] > 0
    assert ma["ttft_p99_s"] >= ma["ttft_s"] and ma["tbt_p99_s"] >= ma["tbt_s"]
    # energy per token: every layer's energy over the generated tokens
    assert ma["energy_pj_per_token"] == pytest.approx(a.energy_pj / ma["generated_tokens"])


@pytest.mark.parametrize("preset", ["h100_logic_pim", pytest.param("h100_sxm", marks=pytest.mark.slow)])
def test_interpolated_costs_against_exact_simulation_of_every_iteration(tiny, preset):
    # The cost cache (interpolate: token rows rounded to 64 per device, D and C interpolated,
    # the span between powers of two) against simulating every distinct iteration shape (mean
    # context rounded to a token). This case: 10 Poisson requests, prompts 64-700, outputs 4-24,
    # batch 8, 126 iterations, 32 simulated shapes instead of 106. Measured (Logic-PIM / GPU):
    # throughput +0.00 / +0.00 %, energy per token -0.39 / -0.22 %, TTFT median -0.43 / -0.42 %,
    # p99 +1.11 / +1.09 %, TBT median +0.00 / -0.01 %, p99 +0.29 / +0.12 %. On Mixtral-8x7B (4
    # devices, 12 requests, not run here: ~3 min exact): throughput 0.02 %, energy 0.01 %, TTFT
    # median 1.8 %, p99 0.8 %, TBT median 0.01 %, p99 1.0 %.
    approx = run_experiment(_exp(tiny, preset)).metrics()
    exact = run_experiment(_exp(tiny, preset, cost_model={"mode": "exact"})).metrics()
    assert approx["serving_shapes"] < exact["serving_shapes"] / 2
    for k in ("throughput_tokens_per_s", "energy_pj_per_token"):
        assert approx[k] == pytest.approx(exact[k], rel=0.01), k
    for k in ("ttft_s", "ttft_p99_s", "tbt_s", "tbt_p99_s"):
        assert approx[k] == pytest.approx(exact[k], rel=0.02), k


def test_extrapolating_from_one_and_two_layers_is_exact_at_the_full_models_tile_budget(tiny):
    exp = _exp(tiny)
    plan = exp.serving

    def sim(graph, tiles):
        m = exp.mapper if tiles is None else exp.mapper.model_copy(update={"max_tiles_per_layer": tiles,
                                                                           "max_tasks": 10 ** 12})
        return simulate(graph, exp.architecture, mapper=m, engine="numba")

    every = dataclasses.replace(plan, spec=plan.spec.model_copy(update={
        "cost_model": plan.spec.cost_model.model_copy(update={"layers": "all"})}))
    ext, full = IterationCosts(plan, sim), IterationCosts(every, sim)
    for shape in (IterationShape(0, 1, 8, 700), IterationShape(1024, 512, 0, 0), IterationShape(512, 256, 5, 300)):
        a, b = ext.shape(shape), full.shape(shape)
        assert a.cycles == b.cycles  # to the cycle
        # energy within 0.05 %: in the 2-layer model layer 1 is the last layer, whose residual add
        # the allocate pass keeps in L2 differently from a middle layer's (layers.1.add2 here)
        assert a.energy_pj == pytest.approx(b.energy_pj, rel=1e-3)


# a model of dense and MoE layers: TINY_LLM with 4 experts top-2 in layers 1, 3, 5 (7 dense too)
INTERLEAVED = {"model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2,
               "num_hidden_layers": 8, "decoder_sparse_step": 2, "mlp_only_layers": [7]}
DUPLEX_LIKE = {"system": {"devices": 4, "link": {"bandwidth": "450 GB/s", "latency": "0.8 us"},
                          "parallelism": {"tensor": 4, "expert": 4}},
               "mapper": {"attention": "fused", "pim_placement": "opb", "expert_coprocessing": True}}


def _sim(exp):
    def sim(graph, tiles):
        m = exp.mapper if tiles is None else exp.mapper.model_copy(update={"max_tiles_per_layer": tiles,
                                                                           "max_tasks": 10 ** 12})
        return simulate(graph, exp.architecture, mapper=m, engine="numba")
    return sim


def _every_layer(plan):
    return dataclasses.replace(plan, spec=plan.spec.model_copy(update={
        "cost_model": plan.spec.cost_model.model_copy(update={"layers": "all"})}))


@pytest.mark.parametrize("setup", [{}, DUPLEX_LIKE], ids=["one-device", "tensor-expert-4"])
def test_extrapolating_dense_and_moe_layers_per_kind_is_exact_in_time(tmp_path, setup):
    # Layers 0, 2, 4, 6, 7 dense and 1, 3, 5 MoE: the cost model simulates 1- and 2-layer models
    # of each kind and adds 5 dense and 3 MoE layers (T = T_d(1) + 4 (T_d(2) - T_d(1)) + 3 (T_m(2)
    # - T_m(1))); against simulating all 8 layers: time to the cycle, every resource's busy time
    # too; energy within 0.3 % (decode-only shapes: 0.21 % on 4 devices; each kind's marginal
    # layer is its 2-layer model's last layer, whose residual output the allocate pass keeps in L2
    # differently, as in test_extrapolating_from_one_and_two_layers_...: 0.14 % with a uniform
    # MoE model on 4 devices).
    exp = _interleaved_exp(tmp_path, setup)
    plan = exp.serving
    assert plan.cfg.layer_kinds == (False, True, False, True, False, True, False, False)
    ext, full = IterationCosts(plan, _sim(exp)), IterationCosts(_every_layer(plan), _sim(exp))
    for shape in (IterationShape(0, 1, 8, 700), IterationShape(1024, 512, 0, 0), IterationShape(512, 256, 5, 300)):
        a, b = ext.shape(shape), full.shape(shape)
        assert a.cycles == b.cycles, shape
        assert {k: v[1:] for k, v in a.resources.items()} == {k: v[1:] for k, v in b.resources.items()}
        assert a.energy_pj == pytest.approx(b.energy_pj, rel=3e-3), shape
        # energy-only shapes: the 2-layer models of each kind at one tile per operator
        untimed = IterationCosts(plan, _sim(exp)).shape(shape, timed=False)
        assert untimed.energy_pj == pytest.approx(b.energy_pj, rel=3e-3), shape


def _interleaved_exp(tmp_path, setup: dict, **cost_model):
    s = {"config": str(write_llm_config(tmp_path, **INTERLEAVED)), "arrival": {"poisson": 200}, "requests": 10,
         "input_length": {"uniform": [64, 700]}, "output_length": {"uniform": [4, 24]}, "max_batch": 8,
         "seed": 1, **({"cost_model": cost_model} if cost_model else {})}
    return experiment_from_dict({
        "name": "serve", "architecture": {"preset": "h100_logic_pim", "overrides": {"kernel.launch_overhead": 0}},
        "workload": {"phase": "serving", "serving": s}, "mapper": {"attention": "fused"}, "engine": "numba",
        **setup})


def test_a_serving_run_of_dense_and_moe_layers_extrapolated_and_in_full(tmp_path):
    # The whole run (10 requests, tensor-parallel attention beside expert-parallel MoE on 4
    # devices, Duplex's placement): the same throughput, TTFT and TBT as simulating every layer;
    # energy per token within 0.05 %. The layers table has one row per operator of the middle
    # layers, dense (mlp.*) and MoE (moe.*) alike.
    ext = run_experiment(_interleaved_exp(tmp_path, DUPLEX_LIKE))
    full = run_experiment(_interleaved_exp(tmp_path, DUPLEX_LIKE, layers="all")).metrics()
    m = ext.metrics()
    for k in ("throughput_tokens_per_s", "ttft_s", "ttft_p99_s", "tbt_s", "tbt_p99_s"):
        assert m[k] == full[k], k
    assert m["energy_pj_per_token"] == pytest.approx(full["energy_pj_per_token"], rel=5e-4)
    names = {l.name for l in ext.layers}
    assert {"serving:layers.1-7.mlp.up", "serving:layers.1-7.moe.router", "serving:layers.0.mlp.up"} <= names
    assert not any(n.startswith("serving:layers.0.moe") for n in names)


def test_a_serving_experiment_from_yaml_and_its_request_trace(tiny, tmp_path):
    from simulator.cli import main

    text = f"""
name: tiny_serving
architecture: {{preset: h100_bank_pim}}
workload:
  phase: serving
  serving:
    config: {tiny}
    arrival: {{poisson: 100}}
    requests: 6
    input_length: 128
    output_length: 5
    max_batch: 4
    kv_capacity_tokens: 300
engine: analytical
"""
    path = tmp_path / "s.yaml"
    path.write_text(text)
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["metrics"]["requests_completed"] == 6 and len(res["requests"]) == 6
    assert res["metrics"]["kv_capacity_tokens"] == 300
    assert res["layers"][0]["layer"].startswith("serving:")
    written = (tmp_path / "out" / "requests.csv").read_text().splitlines()  # the CLI writes it too
    assert written[0] == ",".join(REQUEST_COLUMNS) and len(written) == 7
    result = run_experiment(parse_experiment(text))
    csv_path = write_requests_csv(result, tmp_path / "requests.csv")
    lines = csv_path.read_text().splitlines()
    assert lines[0] == ",".join(REQUEST_COLUMNS) and len(lines) == 7
    assert requests_csv(result) == csv_path.read_text()
    # at most two requests fit 300 tokens of cache (133 each): the rest queued
    assert max(r.admitted_s - r.arrival_s for r in result.requests) > 0


@pytest.mark.parametrize("change, key, what", [
    ({"workload": {"phase": "serving", "model": "llama-3-8b"}}, "workload.phase", "needs a workload.serving section"),
    ({"workload": {"phase": "serving"}}, "workload", "exactly one"),
    ({"workload": {"phase": "decode", "serving": "S"}}, "workload.phase", "runs phase 'serving'"),
    ({"workload": {"serving": "S", "batch": 4}}, "workload.batch", "not used by serving"),
    ({"workload": {"serving": "S", "kv_capacity_tokens": 100}}, "workload.serving.kv_capacity",
     "could never be admitted"),
    ({"system": {"devices": 2, "link": {"bandwidth": "1 GB/s"}, "parallelism": {"pipeline": 2}}},
     "system.parallelism.pipeline", "not modelled for serving"),
])
def test_bad_serving_experiments_are_errors_naming_the_key(tiny, change, key, what):
    serving = {"config": tiny, "arrival": {"poisson": 1}, "requests": 2, "input_length": 64, "output_length": 64}
    data = {"name": "bad", "architecture": {"preset": "h100_sxm"}, "workload": {"phase": "serving", "serving": serving}}
    for section, value in change.items():
        if section == "workload":
            w = {k: v for k, v in value.items() if k != "kv_capacity_tokens"}
            if w.get("serving") == "S":
                w["serving"] = dict(serving, **({"kv_capacity_tokens": value["kv_capacity_tokens"]}
                                               if "kv_capacity_tokens" in value else {}))
            data["workload"] = w
        else:
            data[section] = value
    with pytest.raises(ConfigError) as info:
        experiment_from_dict(data, file="bad.yaml")
    text = str(info.value)
    assert key in text and what in text


def test_automatic_kv_capacity_is_what_the_hbm_holds_beside_the_weights():
    from simulator.experiment import load_experiment
    from workloads.llm_config import llm_param_counts, shipped_config

    # Mixtral-8x7B on 4 H100s, expert parallel: each device holds the non-expert weights and 2 of
    # the 8 experts of every layer (fp16), and 0.9 x 80 GB (vLLM's default memory share) in all;
    # a request's cache lives on one device, 2 x 32 layers x 1024 KV features x 2 B per token
    exp = load_experiment("experiments/papers/duplex_mixtral_ep.yaml")
    counts = llm_param_counts(shipped_config("mixtral-8x7b"))
    weights = 2 * (counts["total"] - counts["experts"] + counts["experts"] / 4)
    per_token = 2 * 32 * 1024 * 2
    assert exp.serving.kv_capacity_tokens == 4 * int((0.9 * 80e9 - weights) // per_token)
    assert exp.serving.kv_capacity_tokens == pytest.approx(1.41e6, rel=0.01)


def test_placement_overrides_are_checked_against_each_layers_own_operators(tmp_path):
    # layer 3 is a MoE layer: a pattern for its dense MLP matches nothing (an error), while its
    # experts and the mixed iterations' prefill attention match
    ok = {"layers.3.moe.expert*": "pim", "layers.3.prefill.attn.qk": "xpu", "layers.2.mlp.up": "xpu"}
    _interleaved_exp(tmp_path, {"mapper": {"attention": "fused", "placement_overrides": ok}})
    with pytest.raises(ConfigError) as info:
        _interleaved_exp(tmp_path, {"mapper": {"attention": "fused",
                                               "placement_overrides": {"layers.3.mlp.*": "pim"}}})
    assert "'layers.3.mlp.*' matches no operator" in str(info.value)
