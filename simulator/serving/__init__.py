"""Continuous-batching serving: requests arrive, join a running batch, and leave token by token.

Contract: ``build_serving_workload(spec, arch, policy, system, file)`` validates a
``workload.serving`` section against the architecture (model, requests, KV-cache capacity) and
returns the graph users inspect, the resolved section and a ``ServingPlan``;
``run_serving(experiment, engine)`` simulates the plan and returns a ``ServingResult`` (a
``SimResult``) whose metrics add ``throughput_tokens_per_s`` (generated tokens / (last finish -
first arrival)), ``ttft_s`` and ``ttft_p99_s`` (time to first token: arrival to the end of the
request's prefill iteration; median and 99th percentile), ``tbt_s`` and ``tbt_p99_s`` (time
between tokens of a request, over all gaps), ``energy_pj_per_token`` (energy of every device /
generated tokens), ``requests_completed``, and more (``e2e_s``, ``queue_s``, ``iterations``,
``mean_batch``, ``tpot_s``, ``kv_capacity_tokens``, ``serving_simulations``). Its
``requests`` hold one ``RequestRecord`` per request (``write_requests_csv`` writes them);
results are deterministic for a seed.

Modules: ``plan`` (the plan and result types, building the plan, KV-cache capacity), ``costs``
(``IterationCosts``: iteration time and energy from the event engine, cached and interpolated),
``workers`` (the forked helper processes that simulate missing shapes in parallel), ``process`` (``serve``: the request-level simpy process) and ``run`` (``run_serving``: the
experiment, and the result assembled from the other three).
"""

from simulator.serving.costs import IterationCost, IterationCosts
from simulator.serving.plan import (HBM_USABLE_FRACTION, REQUEST_COLUMNS, RequestRecord, ServingPlan,
                                    ServingResult, build_serving_workload, requests_csv, write_requests_csv)
from simulator.serving.process import serve
from simulator.serving.run import run_serving

__all__ = ["ServingPlan", "ServingResult", "RequestRecord", "IterationCosts", "IterationCost",
           "build_serving_workload", "run_serving", "serve", "write_requests_csv", "requests_csv",
           "HBM_USABLE_FRACTION", "REQUEST_COLUMNS"]
