"""Serving workloads: request streams (Poisson, traces) and the graph of one batching iteration.

Contract:

- ``ServingSpec`` is the experiment's ``workload.serving`` section (validated: unknown keys,
  a rate <= 0, lengths < 1 are errors naming the key). ``request_stream(spec, file=)`` returns
  the requests, deterministic for a seed: ``arrival: {poisson: RATE}`` draws exponential gaps
  at RATE requests/s, ``{all_at_start: true}`` queues every request at time 0 (an offline
  throughput run), ``{trace: FILE.csv}`` reads them (columns ``arrival_s``, ``input_tokens``,
  ``output_tokens``; more columns are ignored; a missing column, a non-number, a negative time
  or a length < 1 is a ``ConfigError`` naming the file, line and column; each ``Request`` keeps
  the line it came from, for later errors). Lengths are ``N`` or
  ``{uniform: [LO, HI]}`` (inclusive), drawn from the same seeded generator.
- ``build_iteration(cfg, shape, ...)`` is the ``OpGraph`` of one continuous-batching iteration
  of an LLM: ``shape.prefill_tokens`` prompt tokens being prefilled (attending
  ``shape.prefill_span`` keys each) and ``shape.decode_batch`` sequences decoding one token with
  ``shape.context`` tokens in their KV cache, in one forward pass. The token rows of both go
  through the projections, MLPs and experts together (the weights are read once); attention
  splits: ``layers.{i}.prefill.attn.{qk,softmax,av}`` over the prompt tokens (``P / span``
  sequences of ``span`` tokens, batched like ``build_llm``'s prefill when that divides, else one
  flattened product with the same MACs and bytes), ``layers.{i}.decode.attn.{qk,softmax,av}``
  over the KV caches (as ``build_llm``'s decode, after this iteration's keys and values are
  written: the view ``decode.attn.kv_append``; every token's new keys and values are graph
  outputs through ``attn.k_store`` / ``attn.v_store``), and a view ``attn.merge`` joins them
  before the output projection. The LM head runs for the last token of each sequence.
  Parallelism as ``build_llm``: tensor parallel devices share every token; expert parallelism
  (data-parallel attention) gives each device ``ceil(1/expert)`` of the prompt tokens and of the
  decoding sequences (the busiest device; tokens are assumed spread evenly, a request's prompt
  split across devices if need be) and routes all of them to the experts. Pipeline parallelism
  is not modelled for serving. ``layers`` builds a model of the first ``layers`` decoder layers
  (dense and MoE as in the full model); the cost model extrapolates from short models of each
  kind of layer (``LLMConfig.with_layer_kinds``; see ``simulator.serving.costs``).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from workloads.errors import ConfigError, Problem, Problems
from workloads.graph import OpGraph, PrecisionPolicy
from workloads.llm import DEFAULT_PRECISION, ROTARY_OPS_PER_ELEMENT, _Builder, local_config
from workloads.llm_config import LLMConfig, llm_param_counts
from workloads.llm_moe import ExpertLoad
from workloads.llm_parallel import Parallelism
from workloads.ops import Reshape, TensorSpec
from workloads.schema import FieldProblems, Schema

__all__ = ["ServingSpec", "ArrivalSpec", "UniformLength", "CostModelSpec", "Request", "request_stream",
           "read_trace", "IterationShape", "build_iteration", "TRACE_COLUMNS"]

TRACE_COLUMNS = ("arrival_s", "input_tokens", "output_tokens")


class UniformLength(Schema):
    """A length drawn uniformly from ``[lo, hi]`` (inclusive)."""

    uniform: tuple[int, int] = Field(description="[lo, hi] tokens, inclusive")

    @field_validator("uniform")
    @classmethod
    def _ordered(cls, v: tuple[int, int]) -> tuple[int, int]:
        lo, hi = v
        if lo < 1 or hi < lo:
            raise ValueError(f"expected [lo, hi] with 1 <= lo <= hi, found {list(v)}")
        return v


class ArrivalSpec(Schema):
    """How requests arrive: exactly one of ``poisson``, ``trace``, ``all_at_start``."""

    poisson: float | None = Field(None, description="mean arrival rate, requests per second "
                                  "(exponential gaps)")
    trace: str | None = Field(None, description="CSV file with columns arrival_s, input_tokens, "
                              "output_tokens (relative paths: from the experiment file's folder)")
    all_at_start: bool | None = Field(None, description="every request waits at time 0 (offline "
                                      "throughput)")

    @field_validator("poisson")
    @classmethod
    def _positive_rate(cls, v: float | None) -> float | None:
        if v is not None and not (v > 0 and math.isfinite(v)):
            raise ValueError(f"expected an arrival rate > 0 requests per second, found {v!r}")
        return v

    @model_validator(mode="after")
    def _exactly_one(self) -> "ArrivalSpec":
        given = [k for k in ("poisson", "trace") if getattr(self, k) is not None]
        if self.all_at_start:
            given.append("all_at_start")
        if len(given) != 1:
            raise ValueError("give exactly one of {poisson: RATE}, {trace: FILE.csv}, {all_at_start: true}"
                             + (f"; found {', '.join(given)}" if given else ""))
        return self


class CostModelSpec(Schema):
    """How iteration costs are obtained (``simulator.serving``)."""

    mode: Literal["interpolate", "exact"] = Field(
        "interpolate", description="interpolate: simulate iteration shapes on a grid and interpolate "
        "(fast); exact: simulate every distinct iteration shape (mean context rounded to a token)")
    context_bucket: int = Field(512, gt=0, description="interpolate: context grid step of decode-only "
                                "iterations, tokens")
    mixed_context_bucket: int = Field(2048, gt=0, description="interpolate: context grid step of "
                                      "iterations with prompt tokens (decode attention is a small part "
                                      "of them)")
    token_bucket: int = Field(64, gt=0, description="interpolate: an iteration's token rows per device "
                              "(prompt + decode) are rounded up to a multiple of this (the smallest "
                              "GPU CTA tile has 64 rows)")
    layers: Literal["extrapolate", "all"] = Field(
        "extrapolate", description="extrapolate: simulate 1- and 2-layer models of each kind of "
        "layer (dense, MoE) and extrapolate linearly to the model's layers of that kind; all: "
        "simulate every layer")


class ServingSpec(Schema):
    """The ``workload.serving`` section: a model served with continuous batching."""

    model: str | None = Field(None, description="a shipped LLM (see 'tessera list models')")
    config: str | None = Field(None, description="path to a Hugging-Face-style config.json")
    arrival: ArrivalSpec = Field(description="{poisson: RATE} | {trace: FILE.csv} | {all_at_start: true}")
    requests: int | None = Field(None, gt=0, description="requests to serve (trace: its first N "
                                 "rows; unset: all of them)")
    input_length: int | UniformLength | None = Field(None, description="prompt tokens: N or "
                                                     "{uniform: [lo, hi]} (not with a trace)")
    output_length: int | UniformLength | None = Field(None, description="generated tokens per "
                                                      "request (the first comes out of the prefill)")
    max_batch: int = Field(64, gt=0, description="most requests in the running batch")
    kv_capacity: str | float | None = Field(
        "auto", description="KV-cache capacity per device: a size ('40 GB') or auto (HBM capacity "
        "x 0.9 minus the weights a device holds)")
    kv_capacity_tokens: int | None = Field(None, gt=0, description="KV-cache capacity of the "
                                           "whole system in tokens (overrides kv_capacity)")
    max_prefill_tokens: int = Field(8192, gt=0, description="most prompt tokens prefilled in one "
                                    "iteration (a longer prompt is prefilled alone)")
    seed: int = Field(0, ge=0, description="seed of the arrival and length draws")
    cost_model: CostModelSpec = Field(CostModelSpec(), description="iteration cost cache")

    @field_validator("input_length", "output_length")
    @classmethod
    def _length(cls, v: Any) -> Any:
        if isinstance(v, int) and v < 1:
            raise ValueError(f"expected a length >= 1 token, found {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "ServingSpec":
        bad = []
        if (self.model is None) == (self.config is None):
            bad.append(("model", "give exactly one of 'model' and 'config'"))
        if self.arrival.trace is None:
            for key in ("input_length", "output_length"):
                if getattr(self, key) is None:
                    bad.append((key, "required unless the arrival is a trace"))
            if self.requests is None:
                bad.append(("requests", "required unless the arrival is a trace"))
        else:
            for key in ("input_length", "output_length"):
                if getattr(self, key) is not None:
                    bad.append((key, "a trace gives each request's lengths (input_tokens, output_tokens)"))
        if bad:
            raise FieldProblems(bad)
        return self


# ---- requests ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    """One request: its id (arrival order), arrival time and lengths; ``line`` is the line of
    the trace file it came from (None for drawn requests), for error messages."""

    id: int
    arrival_s: float
    input_tokens: int
    output_tokens: int
    line: int | None = field(default=None, compare=False)


def _draw(rng: np.random.Generator, spec: int | UniformLength, n: int) -> np.ndarray:
    if isinstance(spec, int):
        return np.full(n, spec, dtype=np.int64)
    lo, hi = spec.uniform
    return rng.integers(lo, hi + 1, size=n, dtype=np.int64)


def resolve_path(path: str, file: str | None) -> Path:
    p = Path(path)
    if file and not p.is_absolute() and not p.exists():
        p = Path(file).parent / p
    return p


def request_stream(spec: ServingSpec, *, file: str | None = None) -> list[Request]:
    """The requests the spec describes, in arrival order (see the module docstring)."""
    if spec.arrival.trace is not None:
        rows = _trace_rows(resolve_path(spec.arrival.trace, file))
        if spec.requests is not None:
            if spec.requests > len(rows):
                raise ConfigError(Problem(file, "workload.serving.requests", f"{spec.requests} requests "
                                          f"asked for, the trace has {len(rows)}"))
            rows = rows[:spec.requests]
        return [Request(i, a, n_in, n_out, line) for i, (a, n_in, n_out, line) in enumerate(rows)]
    rng = np.random.default_rng(spec.seed)
    n = spec.requests
    if spec.arrival.poisson is not None:
        arrivals = np.cumsum(rng.exponential(1.0 / spec.arrival.poisson, size=n))
    else:
        arrivals = np.zeros(n)
    n_in = _draw(rng, spec.input_length, n)
    n_out = _draw(rng, spec.output_length, n)
    return [Request(i, float(arrivals[i]), int(n_in[i]), int(n_out[i])) for i in range(n)]


def read_trace(path: Path) -> list[tuple[float, int, int]]:
    """(arrival_s, input_tokens, output_tokens) rows of a trace CSV, sorted by arrival (stable)."""
    return [row[:3] for row in _trace_rows(path)]


def _trace_rows(path: Path) -> list[tuple[float, int, int, int]]:
    """``read_trace``'s rows with the line of the file each came from."""
    where = str(path)
    if not path.is_file():
        raise ConfigError(Problem(None, "workload.serving.arrival.trace", f"no such file: '{where}'"))
    probs = Problems(where)
    rows: list[tuple[float, int, int, int]] = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ConfigError(Problem(where, "", "the trace is empty (expected a header line: "
                                      f"{','.join(TRACE_COLUMNS)})", 1))
        names = [h.strip() for h in header]
        missing = [c for c in TRACE_COLUMNS if c not in names]
        if missing:
            from workloads.errors import did_you_mean

            others = [n for n in names if n not in TRACE_COLUMNS]  # never suggest a column it has
            for c in missing:
                probs.add(c, f"missing column (the header has: {', '.join(names) or 'nothing'})",
                          hint=did_you_mean(c, others), line=1)
            probs.raise_if_any()
        col = {c: names.index(c) for c in TRACE_COLUMNS}
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not x.strip() for x in row):
                continue
            values = []
            for c in TRACE_COLUMNS:
                raw = row[col[c]].strip() if col[c] < len(row) else ""
                try:
                    v = float(raw) if c == "arrival_s" else int(raw)
                except ValueError:
                    probs.add(c, f"expected {'a time in seconds' if c == 'arrival_s' else 'a whole number of tokens'}"
                              f", found {raw!r}", line=lineno)
                    values = None
                    break
                if c == "arrival_s" and not (v >= 0 and math.isfinite(v)):
                    probs.add(c, f"expected a time >= 0 s, found {raw}", line=lineno)
                    values = None
                    break
                if c != "arrival_s" and v < 1:
                    probs.add(c, f"expected a length >= 1 token, found {raw}", line=lineno)
                    values = None
                    break
                values.append(v)
            if values is not None:
                rows.append((*values, lineno))
    probs.raise_if_any()
    if not rows:
        raise ConfigError(Problem(where, "", "the trace has a header but no requests", 1))
    return sorted(rows, key=lambda r: r[0])


# ---- one iteration's graph ---------------------------------------------------------------------

@dataclass(frozen=True, order=True)
class IterationShape:
    """What one continuous-batching iteration runs (whole system)."""

    prefill_tokens: int  # prompt tokens prefilled in this iteration (all sequences)
    prefill_span: int  # keys each prompt token attends (the prompt length; dense attention)
    decode_batch: int  # sequences decoding one token
    context: int  # tokens already in each decoding sequence's KV cache

    def __post_init__(self) -> None:
        if min(self.prefill_tokens, self.decode_batch, self.context) < 0 or self.prefill_span < 1:
            raise ValueError(f"an iteration needs sizes >= 0 and a span >= 1, found {self}")
        if self.prefill_tokens == 0 and self.decode_batch == 0:
            raise ValueError("an iteration with no prompt tokens and no decoding sequence runs nothing")


class _IterationBuilder(_Builder):
    """``workloads.llm``'s builder with a mixed attention and head (see the module docstring)."""

    def __init__(self, g: OpGraph, cfg: LLMConfig, phase: str, par: Parallelism, vocab: int,
                 prefill: int, span: int, decode: int, decode_span: int):
        super().__init__(g, cfg, phase, par, vocab)
        self.P, self.L, self.D, self.decode_span = prefill, span, decode, decode_span

    def _rows(self, name: str, x: TensorSpec, shape: tuple[int, ...], blk: str) -> TensorSpec:
        """A view of some token rows of ``x``, keeping its precision and role."""
        out = x.like(f"{name}.out", shape)
        return self.g.add(Reshape(name=name, inputs=(x,), output=out, block=blk, phase=self.phase))

    def attention(self, x: TensorSpec, blk: str, batch: int, positions: int, span: int) -> TensorSpec:
        cfg, P, L, D = self.cfg, self.P, self.L, self.D
        kvh, group, hd, bias = cfg.num_key_value_heads, cfg.heads_per_group, cfg.head_dim, cfg.attention_bias
        q = self.linear(f"{blk}.attn.q", x, cfg.q_dim, bias, blk)
        k = self.linear(f"{blk}.attn.k", x, cfg.kv_dim, bias, blk, role="kv_cache")
        v = self.linear(f"{blk}.attn.v", x, cfg.kv_dim, bias, blk, role="kv_cache")
        if cfg.rotary:
            q = self.ew(f"{blk}.attn.rotary", "rotary", q, block=blk, ops=ROTARY_OPS_PER_ELEMENT)
            k = self.ew(f"{blk}.attn.rotary_k", "rotary", k, block=blk, ops=ROTARY_OPS_PER_ELEMENT)
        self.kv_store(blk, k, v)  # every token's keys and values are written to the KV cache
        both = P > 0 and D > 0
        parts = []
        if P:
            pre = f"{blk}.prefill.attn"
            qp, kp, vp = q, k, v
            if both:
                qp = self._rows(f"{pre}.q_rows", q, (1, P, cfg.q_dim), blk)
                kp = self._rows(f"{pre}.k_rows", k, (1, P, cfg.kv_dim), blk)
                vp = self._rows(f"{pre}.v_rows", v, (1, P, cfg.kv_dim), blk)
            n, rem = divmod(P, L)
            if rem == 0:  # n sequences of L tokens: as build_llm's prefill
                dims = dict(batch=n * kvh, M=group * L)
            else:  # ragged: one product over all prompt tokens, the same MACs and bytes
                dims = dict(batch=kvh, M=group * P)
            s = self.matmul(f"{pre}.qk", qp, kp, **dims, K=hd, N=L, out_shape=(dims["batch"], dims["M"], L), block=blk)
            s = self.g.softmax(f"{pre}.softmax", s, block=blk, phase=self.phase)
            parts.append(self.matmul(f"{pre}.av", s, vp, **dims, K=L, N=hd, out_shape=(1, P, cfg.q_dim), block=blk))
        if D:
            dec = f"{blk}.decode.attn"
            qd = self._rows(f"{dec}.q_rows", q, (1, D, cfg.q_dim), blk) if both else q
            qd = self.kv_append(blk, qd, k, v, name="decode.attn")  # after this step's K/V are in the cache
            kc = self.g.kv_cache_input(f"{blk}.attn.k_cache", (D, kvh, self.decode_span, hd))
            vc = self.g.kv_cache_input(f"{blk}.attn.v_cache", (D, kvh, self.decode_span, hd))
            s = self.matmul(f"{dec}.qk", qd, kc, batch=D * kvh, M=group, K=hd, N=self.decode_span,
                            out_shape=(D * kvh, group, self.decode_span), block=blk)
            s = self.g.softmax(f"{dec}.softmax", s, block=blk, phase=self.phase)
            parts.append(self.matmul(f"{dec}.av", s, vc, batch=D * kvh, M=group, K=self.decode_span, N=hd,
                                     out_shape=(1, D, cfg.q_dim), block=blk))
        ctx = parts[0]
        if both:
            out = TensorSpec(f"{blk}.attn.merge.out", (1, P + D, cfg.q_dim), self.p.activations)
            ctx = self.g.add(Reshape(name=f"{blk}.attn.merge", inputs=tuple(parts), output=out, block=blk,
                                     phase=self.phase))
        o = self.linear(f"{blk}.attn.o", ctx, cfg.hidden_size, bias, blk)
        if self.par.tensor > 1:
            o = self.collective(f"{blk}.attn.allreduce", "all_reduce", o, blk)
        return o

    def head(self, x: TensorSpec, batch: int) -> TensorSpec:
        cfg, g, blk = self.cfg, self.g, "head"
        h = cfg.hidden_size
        rows = -(-self.P // self.L) + self.D  # the last token of each sequence
        if rows != x.numel // h:
            x = self.view("last_token", x, (rows, h), blk)
        x = self.norm("norm", x, blk)
        if not cfg.tie_word_embeddings:
            y = self.linear("lm_head", x, self.vocab, False, blk)
        else:
            table = g.tensor("embed_tokens.weight")
            if self.par.tensor > 1:  # this device's rows of the vocabulary, not the whole table
                table = self.view("lm_head.table_shard", table, (self.vocab, h), blk, like=table)
            y = self.matmul("lm_head", x, table, batch=1, M=x.numel // h, K=h, N=self.vocab,
                            out_shape=(*x.shape[:-1], self.vocab), block=blk)
        if self.par.tensor > 1:
            y = self.collective("lm_head.allgather", "all_gather", y, blk,
                                out_shape=(*y.shape[:-1], self.vocab * self.par.tensor))
        return y


def build_iteration(cfg: LLMConfig, shape: IterationShape, *, precision: PrecisionPolicy | None = None,
                    parallelism: Parallelism | dict | None = None, expert_load: Any = None,
                    layers: int | None = None) -> OpGraph:
    """One continuous-batching iteration of ``cfg`` (see the module docstring)."""
    par = parallelism if isinstance(parallelism, Parallelism) else Parallelism(**(parallelism or {}))
    if par.pipeline > 1 or par.microbatches > 1:
        raise ConfigError(Problem(None, "system.parallelism.pipeline", "serving runs tensor and expert "
                                  "parallelism; pipeline stages are not modelled for serving"))
    if cfg.is_encoder:
        raise ConfigError(Problem(None, "workload.serving.model", f"'{cfg.name}' is an encoder: it "
                                  "generates no tokens to serve"))
    par.check(cfg, par.expert)  # every degree divides what it splits
    load = ExpertLoad.parse(expert_load, experts=cfg.num_local_experts) if cfg.is_moe else None
    ep = par.data_parallel  # devices running separate tokens through the attention
    P, D = -(-shape.prefill_tokens // ep), -(-shape.decode_batch // ep)
    L = shape.prefill_span
    n_layers = layers if layers is not None else cfg.num_hidden_layers
    local = local_config(dataclasses.replace(cfg, num_hidden_layers=n_layers), par)
    phase = "decode" if P == 0 else "prefill" if D == 0 else "mixed"
    g = OpGraph(f"{cfg.name}-iteration", precision or DEFAULT_PRECISION,
                meta={"model": cfg.name, "family": cfg.family, "phase": "serving", "iteration": phase,
                      "batch": -(-shape.prefill_tokens // L) + shape.decode_batch,
                      "tokens": P + D, "prefill_tokens": shape.prefill_tokens, "prefill_span": L,
                      "decode_batch": shape.decode_batch, "context": shape.context,
                      "layers": n_layers, "param_counts": llm_param_counts(cfg),
                      "parallelism": dataclasses.asdict(par)})
    b = _IterationBuilder(g, local, phase, par, -(-cfg.vocab_size // par.tensor), P, L, D,
                          cfg.attention_span(shape.context + 1))
    x = b.embed(1, P + D)
    expert_tokens = []
    for i in range(n_layers):
        x, counts = b.layer(i, x, 1, P + D, 0, load)
        if counts is not None:
            expert_tokens.append(counts)
    b.head(x, 1)
    if cfg.is_moe:
        g.meta.update(expert_load=load.to_dict(), expert_tokens=expert_tokens)
    return g
