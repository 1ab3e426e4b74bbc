"""Composition of experts on a node: building the request stream and costing its operators.

Contract:
- ``build_coe_workload(spec, arch, precision)`` checks the configuration against the node the
  architecture describes and returns the CoE ``OpGraph`` (``workloads.coe``). The node (the
  template's ``node_*`` properties): its devices, their HBM, the expert store (rdu: the sockets'
  DDR; gpu: the host memory) and the copy path into HBM (rdu: ``node.ddr_to_hbm_bandwidth``, 1
  TB/s on SN40L; gpu: one GPU's host link, ``node.host_link_bandwidth``, 32/64 GB/s on DGX
  A100/H100). All experts must fit the node's DDR and at least one must
  fit its HBM, or it is a ``ConfigError`` with the numbers. HBM holds as many experts as fit
  after the router's weights and the KV cache of one request (``slots``).
- ``plan_coe_op(op, ...)`` is what a template's planner calls for the two CoE operators: a
  switch is a transfer of the expert's bytes on the node's DDR -> HBM channel (zero compute), a
  request is a compute task of the request's cycles, which come from simulating the expert's own
  prefill and decode graphs on the same architecture with the same mapper options (the
  ``analytical`` engine; decode steps at the mean context, as ``simulator.llm`` runs them).
  The event core then times the stream: switches on their channel, requests on the unit, each
  waiting for the one before.
- ``coe_summary(result)``: requests, hits, switches, bytes and seconds switched, from a result.

Counters: on a switch ``switch_count`` (1), ``switch_bytes``, ``switch_s`` (bytes / the path's
bandwidth), ``evictions``, ``ddr_read_bytes``, ``hbm_write_bytes``, ``dram_*``; on a request
``coe_requests``, ``coe_hits`` (1 when its expert was resident), ``request_cycles`` and the
request's own metrics (``energy_pj`` and its components, ``dram_*``, ``hbm_*``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from mappers.annotations import OpPlan
from mappers.pipeline import MapperOptions
from workloads.coe import (COE_KINDS, CoESpec, ExpertRequest, ExpertSwitch, build_coe_graph, lru_schedule,
                           route)
from workloads.errors import ConfigError, Problem
from workloads.graph import OpGraph, PrecisionPolicy

__all__ = ["build_coe_workload", "plan_coe_op", "coe_summary", "request_cost", "CoENode", "coe_node",
           "SUPPORTED_TEMPLATES"]

SUPPORTED_TEMPLATES = ("rdu", "gpu")  # templates whose planner calls plan_coe_op


class CoENode:
    """What model switching sees of a node."""

    def __init__(self, sockets: int, hbm_bytes: float, ddr_bytes: float, switch_bytes_per_s: float):
        self.sockets = sockets
        self.hbm_bytes = hbm_bytes
        self.ddr_bytes = ddr_bytes
        self.switch_bytes_per_s = switch_bytes_per_s


def coe_node(arch) -> CoENode:
    if arch.template not in SUPPORTED_TEMPLATES:
        raise ConfigError(Problem(None, "workload.coe", (
            f"the '{arch.template}' template does not run composition-of-experts streams (its planner "
            f"does not plan expert switches and requests); supported: {', '.join(SUPPORTED_TEMPLATES)}")))
    if not arch.node_ddr_to_hbm_bytes_per_s > 0 or not arch.node_ddr_bytes > 0:
        raise ConfigError(Problem(None, "architecture.node", (
            f"a composition-of-experts stream needs the node's expert store and copy path: the "
            f"'{arch.name}' architecture has {arch.node_ddr_bytes:g} B of it and a "
            f"{arch.node_ddr_to_hbm_bytes_per_s:g} B/s path (gpu: node.host_memory and "
            f"node.host_link_bandwidth; rdu: memory.ddr)")))
    return CoENode(arch.node_devices, arch.node_hbm_bytes, arch.node_ddr_bytes, arch.node_ddr_to_hbm_bytes_per_s)


def _gb(b: float) -> str:
    return f"{b / 1e12:.4g} TB" if b >= 1e12 else f"{b / 1e9:.4g} GB"


def _policy_key(p: PrecisionPolicy) -> tuple:
    return (p.weights, p.activations, p.kv_cache, p.group_size, p.scale_bits)


@lru_cache(maxsize=64)
def _model_facts(model: str, batch: int, prompt: int, generate: int, policy: tuple) -> tuple[int, int, int]:
    """(weight bytes, MACs of one request, KV-cache bytes of one request) of ``model``."""
    from simulator.llm import decode_samples
    from workloads.llm_config import kv_cache_bytes, shipped_config
    from workloads.registry import build_model

    p = PrecisionPolicy(weights=policy[0], activations=policy[1], kv_cache=policy[2], group_size=policy[3],
                        scale_bits=policy[4])
    pre = build_model(model, phase="prefill", batch=batch, sequence=prompt, precision=p)
    macs = pre.macs
    if generate:
        for context, weight in decode_samples(prompt, generate, "mean"):
            macs += round(build_model(model, phase="decode", batch=batch, context=context, precision=p).macs * weight)
    kv = kv_cache_bytes(shipped_config(model), batch, prompt + generate, p)
    return pre.weight_bytes, macs, kv


def build_coe_workload(spec: CoESpec, arch, precision: PrecisionPolicy) -> OpGraph:
    """The CoE request stream for ``arch``'s node (see the module docstring)."""
    from workloads.llm_config import shipped_config_names
    from workloads.errors import did_you_mean

    node = coe_node(arch)
    names = [n for n in shipped_config_names()]
    problems = []
    for key, model in (("expert_model", spec.expert_model), ("router_model", spec.router_model)):
        if model is not None and model not in names:
            problems.append(Problem(None, f"workload.coe.{key}", f"'{model}' is not a shipped LLM; "
                                    f"available: {', '.join(names)}", hint=did_you_mean(model, names)))
    if problems:
        raise ConfigError(problems)
    pkey = _policy_key(precision)
    expert_bytes, expert_macs, kv = _model_facts(spec.expert_model, spec.batch, spec.prompt, spec.generate, pkey)
    router_bytes = router_macs = 0
    if spec.router_model is not None:
        router_bytes, router_macs, _ = _model_facts(spec.router_model, spec.batch, spec.prompt, 0, pkey)
    total = spec.experts * expert_bytes
    if total > node.ddr_bytes:
        problems.append(Problem(None, "workload.coe.experts", (
            f"{spec.experts} experts x {_gb(expert_bytes)} ({spec.expert_model} at {precision.weights}) = "
            f"{_gb(total)} do not fit the node's expert store ({_gb(node.ddr_bytes)}); at most "
            f"{int(node.ddr_bytes // expert_bytes)} experts fit")))
    room = node.hbm_bytes - router_bytes - kv
    slots = int(room // expert_bytes) if room > 0 else 0
    if slots < 1:
        problems.append(Problem(None, "workload.coe.expert_model", (
            f"one expert ({_gb(expert_bytes)}) does not fit the node's HBM ({_gb(node.hbm_bytes)}) next "
            f"to the router ({_gb(router_bytes)}) and one request's KV cache ({_gb(kv)})")))
    if node.switch_bytes_per_s <= 0:
        problems.append(Problem(None, "architecture.node.ddr_to_hbm_bandwidth",
                                "the node has no DDR -> HBM path to copy experts over"))
    if problems:
        raise ConfigError(problems)
    schedule = lru_schedule(route(spec), slots)
    return build_coe_graph(spec, schedule, expert_bytes=expert_bytes, expert_macs=expert_macs,
                           router_macs=router_macs, precision=precision,
                           meta={"hbm_bytes": node.hbm_bytes, "ddr_bytes": node.ddr_bytes,
                                 "switch_bytes_per_s": node.switch_bytes_per_s, "kv_bytes": kv,
                                 "router_bytes": router_bytes})


# ---- costing the operators -------------------------------------------------------------------

_REQUEST_CACHE: dict[tuple, object] = {}


def request_cost(op: ExpertRequest, arch, options: MapperOptions, precision: PrecisionPolicy):
    """The ``SimResult`` of one request and the metrics a request passes on: the expert's prefill
    and decode graphs, simulated on ``arch`` with ``options`` (analytical engine), combined by
    ``simulator.llm.run_llm``."""
    key = (op.model, op.batch, op.prompt, op.generate, _policy_key(precision), arch.model_dump_json(),
           arch.template, options.model_dump_json())
    if key in _REQUEST_CACHE:
        return _REQUEST_CACHE[key]
    from simulator.llm import LLMPlan, run_llm
    from simulator.run import simulate
    from workloads.registry import build_model

    def build(*, phase: str, context: int | None) -> OpGraph:
        if phase == "decode":
            return build_model(op.model, phase="decode", batch=op.batch, context=context, precision=precision)
        return build_model(op.model, phase="prefill", batch=op.batch, sequence=op.prompt, precision=precision)

    plan = LLMPlan(phase="generate" if op.generate else "prefill", batch=op.batch, sequence=op.prompt,
                   generate=op.generate, decode_steps="mean", build=build)
    result = run_llm(plan, lambda g: simulate(g, arch, mapper=options, engine="analytical"), name=op.model)
    m = result.metrics()
    if len(_REQUEST_CACHE) > 32:
        _REQUEST_CACHE.clear()
    _REQUEST_CACHE[key] = (result, {k: m[k] for k in _PASSED if k in m})
    return _REQUEST_CACHE[key]


_PASSED = ("energy_pj", "mac_energy_pj", "vector_energy_pj", "sram_energy_pj", "dram_energy_pj",
           "dram_read_bytes", "dram_write_bytes", "hbm_read_bytes", "hbm_write_bytes", "ddr_read_bytes",
           "ddr_write_bytes", "sram_read_bytes", "sram_write_bytes", "kernel_calls")


def plan_coe_op(op, graph: OpGraph, arch, options: MapperOptions, ctx: dict, *, unit: str,
                switch_channel: str) -> list[OpPlan]:
    """The ``OpPlan`` of a CoE operator (see the module docstring)."""
    one = np.ones(1, dtype=np.int64)
    info = dict(dataflow=None, folds=0, mapping_efficiency=None, compute_utilization=None,
                peak_macs_per_cycle=0, vector_ops=0, gemm=None)
    if isinstance(op, ExpertSwitch):
        em = arch.energy_model()
        tiers = arch.offchip_tiers()
        r = em.offchip_read_pj_per_byte.get("ddr", em.dram_read_pj_per_byte).value
        w = em.offchip_write_pj_per_byte[next(iter(tiers))].value
        bw = coe_node(arch).switch_bytes_per_s
        energy = op.nbytes * (r + w)
        counters = {"switch_count": 1, "switch_bytes": op.nbytes, "switch_s": op.nbytes / bw,
                    "evictions": len(op.evicted), "ddr_read_bytes": op.nbytes, "hbm_write_bytes": op.nbytes,
                    "dram_read_bytes": op.nbytes, "dram_write_bytes": op.nbytes,
                    "dram_energy_pj": energy, "energy_pj": energy}
        return [OpPlan(unit=unit, cycles=np.zeros(1, dtype=np.int64), counts=one,
                       loads={switch_channel: np.array([op.nbytes], dtype=np.int64)}, stores={},
                       compute_cycles=0, counters=counters, **info)]
    if isinstance(op, ExpertRequest):
        res, passed = request_cost(op, arch, options, graph.precision)
        counters = dict(passed)
        counters.update({"coe_requests": 1 if op.expert >= 0 else 0, "router_requests": 1 if op.expert < 0 else 0,
                         "coe_hits": 1 if (op.hit and op.expert >= 0) else 0, "request_cycles": res.cycles})
        return [OpPlan(unit=unit, cycles=np.array([res.cycles], dtype=np.int64), counts=one, loads={},
                       stores={}, compute_cycles=res.cycles, counters=counters,
                       **{**info, "peak_macs_per_cycle": res.peak_macs_per_cycle})]
    raise ValueError(f"{op.name}: not a CoE operator (kinds: {', '.join(COE_KINDS)})")


def coe_summary(result) -> dict[str, float]:
    """Requests, hits, switches, bytes switched, and switch seconds (planned bytes/bandwidth and
    as the event engine timed the switch layers) of a CoE run's ``SimResult``."""
    switches = [l for l in result.layers if l.kind == "expert_switch"]
    return {"requests": result.counter("coe_requests"), "hits": result.counter("coe_hits"),
            "switches": result.counter("switch_count"), "switch_bytes": result.counter("switch_bytes"),
            "switch_s": result.counter("switch_s"), "evictions": result.counter("evictions"),
            "switch_span_s": sum(l.latency_s for l in switches), "latency_s": result.latency_s,
            "request_s": sum(l.latency_s for l in result.layers if l.kind == "expert_request")}
