"""Composition of experts (CoE): a stream of requests, each routed to one of many expert models.

As in Samba-CoE (Prabhakar et al., arXiv 2405.07518): every expert's weights live in the node's
DDR; the expert a request needs is copied DDR -> HBM on demand, evicting the least recently used
experts when HBM is full; the request then runs on the copy in HBM.

Contract: ``CoESpec`` is the experiment's ``workload: {coe: {...}}`` section (validated, unknown
keys are errors). ``route(spec)`` gives the expert of every request, the same on every Python
for a seed (draws use only ``random.Random(seed).random()``). ``lru_schedule`` replays the
requests against an HBM that holds ``slots`` experts and says, per request, whether its expert
was resident (a hit) or had to be copied (a switch), and which experts the copy evicted.
``build_coe_graph`` turns a schedule into an ``OpGraph``: per request an ``ExpertSwitch``
(present only when the expert is copied; it moves the expert's bytes over the node's DDR -> HBM
path) and an ``ExpertRequest`` (the request's prefill and decode on the expert, a macro operator
whose cost the mapper obtains by simulating the expert's own graphs: ``simulator.coe``).
Requests are served one at a time in arrival order; a switch starts when the previous request
has finished (on demand: the router names the expert when the request arrives; no prefetch).
"""

from __future__ import annotations

import bisect
import random
from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from workloads.graph import OpGraph, PrecisionPolicy
from workloads.ops import Op, TensorSpec
from workloads.schema import FieldProblems, Schema

__all__ = ["RoutingSpec", "CoESpec", "route", "lru_schedule", "Schedule", "ExpertSwitch",
           "ExpertRequest", "build_coe_graph", "COE_KINDS"]

COE_KINDS = ("expert_switch", "expert_request")


class RoutingSpec(Schema):
    """How the router spreads requests over the experts."""

    distribution: Literal["uniform", "zipf", "explicit"] = Field(
        "uniform", description="uniform | zipf (expert k with weight 1/(k+1)^alpha) | explicit")
    alpha: float = Field(1.0, gt=0, description="zipf exponent")
    experts: list[int] | None = Field(None, description="explicit: the expert of each request, in order")


class CoESpec(Schema):
    """The ``workload: {coe: ...}`` section."""

    experts: int = Field(gt=0, description="expert models held in DDR")
    expert_model: str = Field("llama-2-7b", description="the model every expert has (a shipped LLM)")
    requests: int | None = Field(None, gt=0, description="requests in the stream (explicit routing: "
                                 "the list's length; else default 100)")
    routing: RoutingSpec = Field(RoutingSpec(), description="how requests are spread over experts")
    seed: int = Field(0, description="seed of the router's draws")
    batch: int = Field(1, gt=0, description="sequences per request")
    prompt: int = Field(512, gt=0, description="prompt tokens per sequence")
    generate: int = Field(20, ge=0, description="tokens generated per sequence")
    router_model: str | None = Field(None, description="a shipped LLM run (prefill of the prompt) "
                                     "before every request to pick its expert; it stays in HBM. "
                                     "Unset: the router's own cost is not modelled")

    @model_validator(mode="after")
    def _consistent(self) -> "CoESpec":
        bad = []
        r = self.routing
        if r.distribution == "explicit":
            if not r.experts:
                bad.append(("routing.experts", "explicit routing needs the list of experts, one per request"))
            else:
                out = [e for e in r.experts if not 0 <= e < self.experts]
                if out:
                    bad.append(("routing.experts", f"expert ids must be in 0..{self.experts - 1} "
                                f"(experts: {self.experts}); found {out[:5]}"))
                if self.requests is not None and self.requests != len(r.experts):
                    bad.append(("requests", f"{self.requests} requests but routing.experts lists "
                                f"{len(r.experts)}"))
        elif r.experts is not None:
            bad.append(("routing.experts", f"applies to distribution 'explicit' only, not '{r.distribution}'"))
        if bad:
            raise FieldProblems(bad)
        return self

    @property
    def n_requests(self) -> int:
        if self.routing.distribution == "explicit":
            return len(self.routing.experts)
        return self.requests if self.requests is not None else 100


def route(spec: CoESpec) -> list[int]:
    """The expert of every request (see the module docstring)."""
    r = spec.routing
    if r.distribution == "explicit":
        return list(r.experts)
    rng = random.Random(spec.seed)
    n = spec.n_requests
    if r.distribution == "uniform":
        return [min(int(rng.random() * spec.experts), spec.experts - 1) for _ in range(n)]
    weights = [1.0 / (k + 1) ** r.alpha for k in range(spec.experts)]
    total = sum(weights)
    cum, acc = [], 0.0
    for w in weights:
        acc += w / total
        cum.append(acc)
    cum[-1] = 1.0
    return [bisect.bisect_left(cum, rng.random()) for _ in range(n)]


@dataclass(frozen=True)
class Schedule:
    """Per request: its expert, whether it was resident, and the experts its copy evicted."""

    experts: tuple[int, ...]
    hits: tuple[bool, ...]
    evicted: tuple[tuple[int, ...], ...]
    slots: int

    @property
    def switches(self) -> int:
        return sum(not h for h in self.hits)


def lru_schedule(experts: list[int], slots: int) -> Schedule:
    """Replay ``experts`` (one per request) on an HBM holding ``slots`` experts, least recently
    used evicted first; HBM starts empty."""
    if slots < 1:
        raise ValueError(f"HBM must hold at least one expert, found {slots} slots")
    resident: OrderedDict[int, None] = OrderedDict()
    hits, evicted = [], []
    for e in experts:
        if e in resident:
            resident.move_to_end(e)
            hits.append(True)
            evicted.append(())
            continue
        out = []
        while len(resident) >= slots:
            victim, _ = resident.popitem(last=False)
            out.append(victim)
        resident[e] = None
        hits.append(False)
        evicted.append(tuple(out))
    return Schedule(tuple(experts), tuple(hits), tuple(evicted), slots)


@dataclass(frozen=True, kw_only=True)
class ExpertSwitch(Op):
    """Copy one expert's weights from DDR to HBM (``nbytes``), evicting ``evicted``."""

    expert: int
    nbytes: int
    evicted: tuple[int, ...] = ()

    kind: ClassVar[str] = "expert_switch"

    def loop_dims(self) -> dict[str, int]:
        return {"bytes": self.nbytes}

    def operand_dims(self) -> dict[str, tuple[str, ...]]:
        return {t.name: () for t in self.tensors}


@dataclass(frozen=True, kw_only=True)
class ExpertRequest(Op):
    """One request on an expert (or the router): prefill of ``prompt`` tokens and ``generate``
    decode steps for ``batch`` sequences, on ``model``. ``request_macs`` is what those passes
    compute (decode steps at the mean context, as ``simulator.llm`` runs them)."""

    expert: int  # -1: the router
    model: str
    batch: int
    prompt: int
    generate: int
    request_macs: int
    hit: bool = True

    kind: ClassVar[str] = "expert_request"

    @property
    def macs(self) -> int:
        return self.request_macs

    def loop_dims(self) -> dict[str, int]:
        return {"B": self.batch, "prompt": self.prompt, "generate": self.generate}

    def operand_dims(self) -> dict[str, tuple[str, ...]]:
        return {t.name: () for t in self.tensors}


def build_coe_graph(spec: CoESpec, schedule: Schedule, *, expert_bytes: int, expert_macs: int,
                    router_macs: int = 0, precision: PrecisionPolicy | None = None,
                    meta: dict | None = None) -> OpGraph:
    """The request stream as an ``OpGraph``: a chain switch? -> (router ->) request per request."""
    g = OpGraph(f"coe-{spec.experts}x{spec.expert_model}", precision, meta={
        "batch": spec.batch * len(schedule.experts), "coe": {
            "experts": spec.experts, "expert_model": spec.expert_model, "requests": len(schedule.experts),
            "switches": schedule.switches, "slots": schedule.slots, "expert_bytes": expert_bytes,
            "routing": spec.routing.distribution, **(meta or {})}})
    prev = g.input("coe.start", (1,), "int32")
    for i, (e, hit, ev) in enumerate(zip(schedule.experts, schedule.hits, schedule.evicted)):
        blk = f"r{i}"
        prompt = g.input(f"{blk}.prompt", (spec.batch, spec.prompt), "int32")
        if spec.router_model is not None:
            prev = g.add(ExpertRequest(name=f"{blk}.router", inputs=(prev, prompt), block=blk,
                                       output=TensorSpec(f"{blk}.router.out", (spec.batch,), "int32"),
                                       expert=-1, model=spec.router_model, batch=spec.batch,
                                       prompt=spec.prompt, generate=0, request_macs=router_macs))
        if not hit:
            prev = g.add(ExpertSwitch(name=f"{blk}.switch", inputs=(prev,), block=blk,
                                      output=TensorSpec(f"{blk}.switch.out", (1,), "int32"),
                                      expert=e, nbytes=expert_bytes, evicted=ev))
        prev = g.add(ExpertRequest(name=f"{blk}.expert{e}", inputs=(prev, prompt), block=blk,
                                   output=TensorSpec(f"{blk}.out", (spec.batch, max(1, spec.generate)), "int32"),
                                   expert=e, model=spec.expert_model, batch=spec.batch,
                                   prompt=spec.prompt, generate=spec.generate, request_macs=expert_macs,
                                   hit=hit))
    return g
