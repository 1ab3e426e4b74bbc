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

The request-level process (simpy): arrivals join a FCFS queue. Before every iteration the
scheduler admits queued requests, in order, while the batch has fewer than ``max_batch``
requests, the KV cache can hold the request's prompt and all its output tokens (reserved at
admission, released when it finishes: a request that does not fit waits, it is never dropped
or preempted) and the iteration's prompt tokens stay within ``max_prefill_tokens`` (a longer
prompt is prefilled alone). An iteration runs the new requests' prefill and one decode step of
every running request together (Orca-style mixed batches); at its end the new requests have
their first token and each decoding request one more. The server idles until the next arrival
when nothing is queued or running.

What an iteration costs comes from the event engine (``IterationCosts``): its graph
(``workloads.serving.build_iteration``) is lowered and simulated on the architecture with the
experiment's mapper options. An iteration is the shape (P prompt tokens, L the keys a prompt
token attends = sum of the squared prompt lengths / their sum, D decoding sequences, C their
mean context: decode attention's bytes and MACs are linear in each request's context, so the
mean gives their exact sum). With ``cost_model.mode: interpolate`` (the default) costs come
from a cache of simulated grid shapes:

- Decode-only iterations (P = 0): bilinear interpolation in D on the grid {0, 1, 2, 4, ...,
  max_batch} plus the multiples of ceil(max_batch / 8) and of 64 x the data-parallel degree
  (tile boundaries), and in C on the multiples of ``context_bucket`` (512) and, below it, on
  0, 32, 64, ..., 256 (short operators are not linear in their size yet: their chunks fill up).
  Decode attention is affine in C and in D x C and weight reads do not depend on D, so this is
  exact for them; the error comes from kinks inside a cell (a tile boundary; an operator's
  placement switching between the xPU and PIM).
- Iterations with prompt tokens: T, the token rows per device (its share of the prompt tokens
  plus of the decoding sequences), is rounded up to a multiple of ``token_bucket`` (64, the
  rows of the smallest GPU CTA tile: a GEMM's time is a staircase in its rows with steps at
  multiples of 64, so the rounded shape runs the same tiles). At that T, cost is taken linear
  in D between a prefill-only shape (D = 0, all T rows prompt) and the shape with the most
  decoding sequences T rows hold (D_hi = min(max_batch, T x data-parallel degree), the rest of
  the rows prompt), at C interpolated on multiples of ``mixed_context_bucket`` (2048; powers of
  two below it); L is interpolated between the powers of two around it (prefill attention's
  MACs and bytes are linear in L). Time takes the rounded-up T. Energy (and every counter)
  grows linearly with the tokens rather than in steps, so it is interpolated between T
  rounded down and rounded up; a shape needed for energy only is simulated once, with 2 layers
  and one tile per operator (counters do not depend on the tiling).
- ``cost_model.layers: extrapolate``: each grid shape is simulated with 1 and 2 decoder layers
  and extrapolated, ``T(n) = T(1) + (n - 1) (T(2) - T(1))`` (time, energy, every counter), at
  the tile budget the full model's graph would get: time to the cycle in the tests (identical
  layers), energy within 0.05 % (layer 1 of the 2-layer model is the last layer, whose residual
  output the ``allocate`` pass keeps in L2 differently from a middle layer's).
- ``mode: exact`` simulates every distinct iteration shape (C rounded to a token).
  ``tests/simulator/test_serving.py`` measures the interpolated costs against it on a small
  case and pins the error (within 0.4 % for throughput and energy, 1.1 % for TTFT and TBT,
  median and p99; on Mixtral-8x7B on 4 devices within 0.05 % and 1.8 %).

Energy counts every device: with tensor parallelism every device does the simulated device's
work; with expert parallelism the non-expert operators run on every device (data parallel) and
each expert, and each all-to-all, once.
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import io
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workloads.errors import ConfigError, Problem, Problems
from workloads.graph import OpGraph, PrecisionPolicy
from workloads.llm_config import LLMConfig, kv_cache_bytes, llm_param_counts
from workloads.llm_parallel import Parallelism
from workloads.precision import storage_bytes
from workloads.serving import IterationShape, Request, ServingSpec, build_iteration, request_stream
from simulator.result import LayerResult, ResourceStats, SimResult

__all__ = ["ServingPlan", "ServingResult", "RequestRecord", "IterationCosts", "IterationCost",
           "build_serving_workload", "run_serving", "serve", "write_requests_csv", "requests_csv",
           "HBM_USABLE_FRACTION", "REQUEST_COLUMNS"]

HBM_USABLE_FRACTION = 0.9  # of a device's HBM, for weights + KV cache (the rest: activations,
# workspace), as vLLM's default gpu_memory_utilization = 0.9 (vllm/engine/arg_utils.py)
REQUEST_COLUMNS = ("id", "arrival_s", "input_tokens", "output_tokens", "admitted_s", "first_token_s",
                   "finished_s", "queue_s", "ttft_s", "e2e_s", "mean_tbt_s")


@dataclass(frozen=True)
class ServingPlan:
    """What a serving experiment runs (built by ``build_serving_workload``)."""

    spec: ServingSpec
    cfg: LLMConfig
    requests: tuple[Request, ...]
    precision: PrecisionPolicy
    parallelism: Parallelism
    link: dict | None
    expert_load: Any
    kv_capacity_tokens: int
    devices: int

    def iteration_graph(self, shape: IterationShape, layers: int | None = None) -> OpGraph:
        g = build_iteration(self.cfg, shape, precision=self.precision, parallelism=self.parallelism,
                            expert_load=self.expert_load, layers=layers)
        if self.link:
            g.meta["link"] = self.link
        return g


@dataclass(frozen=True)
class RequestRecord:
    id: int
    arrival_s: float
    input_tokens: int
    output_tokens: int
    admitted_s: float
    first_token_s: float
    finished_s: float
    mean_tbt_s: float  # 0 for a request with one output token

    def row(self) -> dict[str, float]:
        return {"id": self.id, "arrival_s": self.arrival_s, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "admitted_s": self.admitted_s,
                "first_token_s": self.first_token_s, "finished_s": self.finished_s,
                "queue_s": self.admitted_s - self.arrival_s, "ttft_s": self.first_token_s - self.arrival_s,
                "e2e_s": self.finished_s - self.arrival_s, "mean_tbt_s": self.mean_tbt_s}


@dataclass(frozen=True)
class ServingResult(SimResult):
    """A ``SimResult`` of a serving run: layers and resources summed over all iterations (every
    device), and one record per request."""

    requests: tuple[RequestRecord, ...] = field(default=(), compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["requests"] = [r.row() for r in self.requests]
        return out

    def extra_files(self) -> dict[str, str]:
        return {"requests.csv": requests_csv(self)}


def requests_csv(result: ServingResult) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=REQUEST_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in result.requests:
        w.writerow(r.row())
    return buf.getvalue()


def write_requests_csv(result: ServingResult, path: str | Path) -> Path:
    """Write the request-level trace (one row per request, ``REQUEST_COLUMNS``)."""
    from simulator.report import atomic_write

    path = Path(path)
    atomic_write(path, requests_csv(result))
    return path


# ---- building the plan ---------------------------------------------------------------------------

def _config(spec: ServingSpec, file: str | None) -> LLMConfig:
    from workloads.llm_config import load_llm_config, shipped_config
    from workloads.serving import resolve_path

    if spec.config is not None:
        return load_llm_config(resolve_path(spec.config, file))
    from workloads.registry import MODELS, model_names

    model_names()
    entry = MODELS.get(spec.model)
    if entry is not None and entry.family != "llm":
        raise ConfigError(Problem(file, "workload.serving.model", f"'{spec.model}' is a {entry.family} "
                                  "model; serving runs LLMs (decoders)"))
    try:
        return shipped_config(spec.model)
    except ConfigError as exc:
        raise ConfigError([Problem(file, "workload.serving.model", p.message, None, p.hint)
                           for p in exc.problems]) from None


def _device_weight_bytes(cfg: LLMConfig, par: Parallelism, precision: PrecisionPolicy) -> int:
    """Weight bytes one device holds: tensor parallelism splits everything but the embedding
    tables; expert parallelism replicates the non-expert weights and splits the experts."""
    counts = llm_param_counts(cfg)
    total, experts, embedding = counts["total"], counts["experts"], counts["embedding"]
    if par.tensor > 1:
        params = (total - embedding) / par.tensor + embedding
    elif par.expert > 1:
        params = total - experts + experts / par.expert
    else:
        params = total
    return storage_bytes(int(math.ceil(params)), precision.weights, precision.group_size)


def kv_capacity_tokens(spec: ServingSpec, cfg: LLMConfig, arch, par: Parallelism,
                       precision: PrecisionPolicy, devices: int, file: str | None) -> int:
    """Tokens the whole system's KV cache holds (see ``ServingSpec.kv_capacity``)."""
    if spec.kv_capacity_tokens is not None:
        return spec.kv_capacity_tokens
    per_token = kv_cache_bytes(cfg, 1, 1, precision)  # all layers, all KV heads
    if par.tensor > 1:  # each device keeps its KV heads (one, replicated, if fewer heads than devices)
        _, local_kv = par.local_heads(cfg)
        per_token = per_token * local_kv // cfg.num_key_value_heads
        holders = 1
    else:  # a request's cache lives on one device (data-parallel attention, or one device)
        holders = par.expert if par.expert > 1 else 1
    if spec.kv_capacity not in (None, "auto"):
        from architectures.units import UnitError, parse_quantity

        try:
            free = parse_quantity(spec.kv_capacity, "size")
        except (UnitError, TypeError) as exc:
            raise ConfigError(Problem(file, "workload.serving.kv_capacity", f"expected 'auto' or a size "
                                      f"like '40 GB' (per device), found {spec.kv_capacity!r} ({exc})")) from None
        if not free > 0:
            raise ConfigError(Problem(file, "workload.serving.kv_capacity", f"expected a size > 0, "
                                      f"found {spec.kv_capacity!r}"))
    else:
        hbm = sum(t.size_bytes for t in arch.offchip_tiers().values())
        if not math.isfinite(hbm):
            return 2 ** 62
        weights = _device_weight_bytes(cfg, par, precision)
        free = HBM_USABLE_FRACTION * hbm - weights
        if free <= 0:
            raise ConfigError(Problem(file, "workload.serving.kv_capacity", (
                f"'{cfg.name}' does not fit: a device holds {weights / 1e9:.1f} GB of weights, more than "
                f"{HBM_USABLE_FRACTION:g} x its {hbm / 1e9:.0f} GB of memory (use more devices)")))
    return int(free // per_token) * holders


def build_serving_workload(spec: ServingSpec, arch, policy: PrecisionPolicy, system, *,
                           file: str | None = None, expert_load: Any = None) -> tuple[OpGraph, dict, ServingPlan]:
    """The graph users inspect (a decode iteration at the full batch), the resolved section, and
    the plan (see the module docstring)."""
    probs = Problems(file)
    cfg = _config(spec, file)
    if cfg.is_encoder:
        probs.add("workload.serving.model", f"'{cfg.name}' is an encoder: it generates no tokens")
        probs.raise_if_any()
    par = Parallelism(**system.parallelism.model_dump()) if system is not None and system.devices > 1 else Parallelism()
    if par.pipeline > 1:
        probs.add("system.parallelism.pipeline", "serving runs tensor and expert parallelism; pipeline "
                  "stages are not modelled for serving")
    probs.raise_if_any()
    requests = request_stream(spec, file=file)
    devices = system.devices if system is not None else 1
    capacity = kv_capacity_tokens(spec, cfg, arch, par, policy, devices, file)
    limit = cfg.max_position_embeddings if cfg.learned_positions else None
    for r in requests:
        need = r.input_tokens + r.output_tokens
        where = f"request {r.id}" + (f" (trace line {r.id + 2})" if spec.arrival.trace else "")
        if need > capacity:
            probs.add("workload.serving.kv_capacity", f"{where} needs {need} tokens of KV cache, more "
                      f"than the system holds ({capacity}): it could never be admitted")
        if limit is not None and need > limit:
            probs.add("workload.serving.input_length", f"{where}: {need} tokens exceed "
                      f"max_position_embeddings {limit} of '{cfg.name}' (learned position table)")
        if len(probs.items) >= 5:
            break
    probs.raise_if_any()
    plan = ServingPlan(spec=spec, cfg=cfg, requests=tuple(requests), precision=policy, parallelism=par,
                       link=system.link.model_dump() if system is not None and system.link is not None else None,
                       expert_load=expert_load, kv_capacity_tokens=capacity, devices=devices)
    mean_in = int(round(sum(r.input_tokens for r in requests) / len(requests)))
    batch = min(spec.max_batch, len(requests))
    graph = plan.iteration_graph(IterationShape(0, 1, batch, mean_in))
    from workloads.serving import resolve_path

    dumped = spec.model_dump(mode="json")
    if spec.config is not None:  # paths as found, so the resolved file loads from anywhere
        dumped["config"] = str(resolve_path(spec.config, file).resolve())
    if spec.arrival.trace is not None:
        dumped["arrival"]["trace"] = str(resolve_path(spec.arrival.trace, file).resolve())
    resolved = {"serving": dumped, "phase": "serving"}
    return graph, resolved, plan


# ---- iteration costs --------------------------------------------------------------------------------

@dataclass(frozen=True)
class IterationCost:
    seconds: float
    energy_pj: float  # all devices
    corners: tuple[tuple[IterationShape, float, float], ...]  # simulated shapes, time and energy weights


@dataclass
class _Shape:
    """One simulated shape: totals and the per-layer rows with their weights (layers x devices)."""

    cycles: float
    energy_pj: float
    layers: list[tuple[LayerResult, float]]
    resources: dict[str, tuple[ResourceStats, float, float, float]]  # name -> (stats, busy, tasks, bytes)
    peak_macs_per_cycle: int
    freq_hz: float


def _running(result: SimResult) -> int:
    """Operators the plan pass tiled (every simulated layer but the collectives on links)."""
    return sum(1 for l in result.layers if l.kind != "collective")


def _c_weights(context: float, bucket: int) -> list[tuple[int, float]]:
    """Contexts: the multiples of ``bucket``, and below it the powers of two from 32 (and 0)."""
    if context < bucket:
        if context < 32:
            return [(0, 1.0)] if context == 0 else _weights(context, 0, 32)
        lo, hi = _pow2_bracket(context)
        return [(lo, 1.0)] if lo == hi else _weights(context, lo, min(hi, bucket))
    lo = int(context // bucket) * bucket
    return [(lo, 1.0)] if context == lo else _weights(context, lo, lo + bucket)


def _pow2_bracket(v: float) -> tuple[int, int]:
    """The powers of two around ``v`` (>= 1)."""
    lo = 1 << max(0, int(math.floor(math.log2(max(1.0, v)))))
    return (lo, lo) if lo == v else (lo, 2 * lo)


def _bracket(v: float, grid: list[int]) -> tuple[int, int]:
    i = bisect.bisect_left(grid, v)
    if i < len(grid) and grid[i] == v:
        return grid[i], grid[i]
    return grid[max(0, i - 1)], grid[min(i, len(grid) - 1)]


def _weights(v: float, lo: int, hi: int) -> list[tuple[int, float]]:
    if hi == lo:
        return [(lo, 1.0)]
    t = (v - lo) / (hi - lo)
    return [(lo, 1.0 - t), (hi, t)]


class IterationCosts:
    """Iteration time and energy from the event engine, cached by shape (module docstring)."""

    def __init__(self, plan: ServingPlan, simulate_graph: Callable[..., SimResult], *, max_tasks: int = 60_000,
                 max_tiles_per_layer: int = 64, tile_fidelity: bool = True):
        self.plan = plan
        self.cm = plan.spec.cost_model
        self.simulate_graph = simulate_graph  # (graph, max_tiles_per_layer or None) -> SimResult
        self.max_tasks, self.max_tiles = max_tasks, max_tiles_per_layer
        self.tile_fidelity = tile_fidelity
        mb = plan.spec.max_batch
        step = max(1, -(-mb // 8))
        par = plan.parallelism
        self.ep = par.expert if par.expert > 1 else 1
        tile = self.cm.token_bucket * self.ep
        self.d_grid = sorted({0, mb} | {1 << i for i in range(mb.bit_length()) if 1 << i <= mb}
                             | {j * step for j in range(1, 9) if j * step <= mb}
                             | set(range(tile, mb + 1, tile)))
        self.shapes: dict[IterationShape, _Shape] = {}
        self.untimed: dict[IterationShape, _Shape] = {}  # energy-only simulations
        self._tiles_guess: dict[tuple[bool, bool], int] = {}
        self.usage: dict[IterationShape, tuple[float, float]] = {}  # summed (time, energy) weights
        self.simulations = 0

    # -- the shapes -----------------------------------------------------------------------------
    def corners(self, prefill_tokens: int, span: float, decode: int,
                context: float) -> list[tuple[IterationShape, float, float]]:
        """The simulated shapes an iteration's cost comes from: (shape, time weight, energy
        weight); see the module docstring."""
        if self.cm.mode == "exact":
            L = max(1, int(round(span))) if prefill_tokens else 1
            return [(IterationShape(prefill_tokens, L, decode, int(round(context)) if decode else 0), 1.0, 1.0)]
        out: dict[IterationShape, list[float]] = {}

        def add(p: int, d: int, c: int, L: int, wt: float, we: float) -> None:
            if (p == 0 and d == 0) or (wt <= 0 and we <= 0):
                return
            key = IterationShape(p, L if p else 1, d, c if d else 0)
            acc = out.setdefault(key, [0.0, 0.0])
            acc[0] += wt
            acc[1] += we

        ep, tb = self.ep, self.cm.token_bucket
        if prefill_tokens == 0:  # decode only: bilinear in (D, C) on the fine grids
            for d, wd in _weights(decode, *_bracket(decode, self.d_grid)):
                for c, wc in _c_weights(context, self.cm.context_bucket):
                    add(0, d, c, 1, wd * wc, wd * wc)
        else:  # prompt tokens: by token rows per device, T = its prompt + decode rows
            rows = -(-prefill_tokens // ep) + -(-decode // ep)
            t_up = -(-rows // tb) * tb
            t_dn = rows // tb * tb
            frac = (rows - t_dn) / (t_up - t_dn) if t_up > t_dn else 1.0
            levels = [(t_up, 1.0, frac if t_dn > 0 else 1.0)]
            if t_dn > 0 and t_up > t_dn:
                levels.append((t_dn, 0.0, 1.0 - frac))
            for L, wl in _weights(span, *_pow2_bracket(span)):
                for T, wt, we in levels:
                    # D between 0 (a prefill-only iteration of T rows) and the most decoding
                    # sequences T rows hold, at the same T: linear in D
                    d_hi = min(self.plan.spec.max_batch, T * ep)
                    x = min(1.0, decode / d_hi)
                    add(T * ep, 0, 0, L, wl * wt * (1 - x), wl * we * (1 - x))
                    if x > 0:
                        p_hi = (T - -(-d_hi // ep)) * ep
                        for c, wc in _c_weights(context, self.cm.mixed_context_bucket):
                            add(p_hi, d_hi, c, L, wl * wt * x * wc, wl * we * x * wc)
        tt = sum(v[0] for v in out.values())
        te = sum(v[1] for v in out.values())
        return [(k, v[0] / tt, v[1] / te) for k, v in out.items()]

    def cost(self, prefill_tokens: int, span: float, decode: int, context: float) -> IterationCost:
        """Time and energy of an iteration (interpolated or exact, per ``cost_model.mode``)."""
        corners = self.corners(prefill_tokens, span, decode, context)
        seconds = energy = 0.0
        for shape, wt, we in corners:
            s = self.shape(shape, timed=wt > 0)
            seconds += wt * s.cycles / s.freq_hz
            energy += we * s.energy_pj
        return IterationCost(seconds, energy, tuple(corners))

    def record(self, cost: IterationCost) -> None:
        for shape, wt, we in cost.corners:
            t, e = self.usage.get(shape, (0.0, 0.0))
            self.usage[shape] = (t + wt, e + we)

    # -- simulating a shape -----------------------------------------------------------------------
    def shape(self, shape: IterationShape, timed: bool = True) -> _Shape:
        """A shape's simulation. ``timed=False``: only its energy and counters are wanted, which
        do not depend on timing: one 2-layer simulation at one tile per operator suffices (its
        time is not used)."""
        hit = self.shapes.get(shape)
        if hit is None and not timed:
            hit = self.untimed.get(shape)
            if hit is None:
                hit = self.untimed[shape] = self._simulate(shape, timed=False)
        elif hit is None:
            hit = self.shapes[shape] = self._simulate(shape)
            self.untimed.pop(shape, None)
        return hit

    def _tiles_for(self, running: int) -> int | None:
        if not self.tile_fidelity:
            return None
        return max(1, min(self.max_tiles, self.max_tasks // max(1, 3 * running)))

    def _simulate(self, shape: IterationShape, timed: bool = True) -> _Shape:
        n = self.plan.cfg.num_hidden_layers
        if not timed and n > 2 and self.cm.layers == "extrapolate":
            r2 = self.simulate_graph(self.plan.iteration_graph(shape, 2), 1)
            self.simulations += 1
            return self._collect([(r2, lambda l: float(n - 1) if l.block == "layers.1" else 1.0)], 0.0, r2)
        if self.cm.layers == "all" or n <= 2:
            r = self.simulate_graph(self.plan.iteration_graph(shape), None)
            self.simulations += 1
            return self._collect([(r, lambda l: 1.0)], r.cycles, r)
        g1, g2 = self.plan.iteration_graph(shape, 1), self.plan.iteration_graph(shape, 2)
        # the tile budget of the full model's graph, from its running operators (linear in the
        # layers); guessed from the last shape of the same kind, checked, and redone if wrong
        kind = (shape.prefill_tokens > 0, shape.decode_batch > 0)
        tiles = self._tiles_guess.get(kind, self.max_tiles) if self.tile_fidelity else None
        while True:
            r1, r2 = self.simulate_graph(g1, tiles), self.simulate_graph(g2, tiles)
            self.simulations += 2
            if tiles is None:
                break
            a, b = _running(r1), _running(r2)
            want = self._tiles_for(a + (n - 1) * (b - a))
            self._tiles_guess[kind] = want
            if want == tiles:
                break
            tiles = want
        cycles = r1.cycles + (n - 1) * (r2.cycles - r1.cycles)

        def weight(l: LayerResult) -> float:
            return float(n - 1) if l.block == "layers.1" else 1.0

        out = self._collect([(r2, weight)], cycles, r2)
        # resources: extrapolated like the time
        res1 = {r.name: r for r in r1.resources}
        for name, (stats, busy, tasks, nbytes) in list(out.resources.items()):
            a = res1.get(name)
            if a is not None:
                out.resources[name] = (stats, a.busy_cycles + (n - 1) * (busy - a.busy_cycles),
                                       a.tasks + (n - 1) * (tasks - a.tasks), a.bytes + (n - 1) * (nbytes - a.bytes))
        return out

    def _collect(self, parts, cycles: float, base: SimResult) -> _Shape:
        par = self.plan.parallelism
        layers, energy = [], 0.0
        for r, weight in parts:
            for l in r.layers:
                w = weight(l) * par.replicas(l.name, l.kind)
                layers.append((l, w))
                energy += w * l.energy_pj
        resources = {r.name: (r, float(r.busy_cycles), float(r.tasks), float(r.bytes)) for r in base.resources}
        return _Shape(float(cycles), energy, layers, resources, base.peak_macs_per_cycle, base.freq_hz)


# ---- the request-level process --------------------------------------------------------------------

class _Running:
    __slots__ = ("req", "admitted", "first", "last", "generated", "tbt_sum")

    def __init__(self, req: Request, admitted: float):
        self.req, self.admitted = req, admitted
        self.first = self.last = 0.0
        self.generated = 0
        self.tbt_sum = 0.0


@dataclass
class ServingOutcome:
    records: list[RequestRecord]
    tbt: np.ndarray
    iterations: int
    energy_pj: float
    batch_sum: int
    end_s: float
    start_s: float


def serve(requests: list[Request] | tuple[Request, ...], cost: Callable[[int, float, int, float], IterationCost],
          *, max_batch: int, kv_capacity_tokens: int, max_prefill_tokens: int,
          on_iteration: Callable[[IterationCost], None] | None = None) -> ServingOutcome:
    """Run the continuous-batching process (module docstring) with simpy; ``cost(P, span, D,
    mean context)`` gives each iteration's cost."""
    import simpy

    env = simpy.Environment()
    queue: deque[Request] = deque()
    wake: list = [None]
    records: list[RequestRecord] = []
    tbt: list[float] = []
    stats = {"iterations": 0, "energy": 0.0, "batch": 0}
    ordered = sorted(requests, key=lambda r: (r.arrival_s, r.id))

    def arrivals():
        for r in ordered:
            if r.arrival_s > env.now:
                yield env.timeout(r.arrival_s - env.now)
            queue.append(r)
            if wake[0] is not None and not wake[0].triggered:
                wake[0].succeed()

    def server():
        running: list[_Running] = []
        reserved = 0
        ctx_sum = 0  # tokens in the KV caches of the decoding requests
        done = 0
        while done < len(ordered):
            new: list[Request] = []
            prompt = 0
            while queue and len(running) + len(new) < max_batch:
                r = queue[0]
                need = r.input_tokens + r.output_tokens
                if reserved + need > kv_capacity_tokens:
                    break  # FCFS: the head waits for room, nobody overtakes it
                if new and prompt + r.input_tokens > max_prefill_tokens:
                    break
                queue.popleft()
                new.append(r)
                reserved += need
                prompt += r.input_tokens
            if not new and not running:
                wake[0] = env.event()
                yield wake[0]
                wake[0] = None
                continue
            start = env.now
            d = len(running)
            span = sum(r.input_tokens ** 2 for r in new) / prompt if prompt else 1.0
            c = cost(prompt, span, d, ctx_sum / d if d else 0.0)
            if on_iteration is not None:
                on_iteration(c)
            stats["iterations"] += 1
            stats["energy"] += c.energy_pj
            stats["batch"] += d + len(new)
            yield env.timeout(c.seconds)
            now = env.now
            still: list[_Running] = []
            for s in running:
                gap = now - s.last
                tbt.append(gap)
                s.tbt_sum += gap
                s.last = now
                s.generated += 1
                ctx_sum += 1
                if s.generated >= s.req.output_tokens:
                    done += 1
                    reserved -= s.req.input_tokens + s.req.output_tokens
                    ctx_sum -= s.req.input_tokens + s.generated - 1
                    records.append(_record(s, now))
                else:
                    still.append(s)
            for r in new:
                s = _Running(r, start)
                s.first = s.last = now
                s.generated = 1
                if r.output_tokens <= 1:
                    done += 1
                    reserved -= r.input_tokens + r.output_tokens
                    records.append(_record(s, now))
                else:
                    still.append(s)
                    ctx_sum += r.input_tokens
            running = still
        stats["end"] = env.now

    env.process(arrivals())
    env.process(server())
    env.run()
    records.sort(key=lambda r: r.id)
    start = min((r.arrival_s for r in ordered), default=0.0)
    return ServingOutcome(records, np.asarray(tbt, dtype=np.float64), stats["iterations"], stats["energy"],
                          stats["batch"], stats.get("end", 0.0), start)


def _record(s: _Running, now: float) -> RequestRecord:
    gaps = s.generated - 1
    return RequestRecord(s.req.id, s.req.arrival_s, s.req.input_tokens, s.req.output_tokens, s.admitted,
                         s.first, now, s.tbt_sum / gaps if gaps else 0.0)


# ---- the experiment -----------------------------------------------------------------------------

def run_serving(exp, *, engine: str | None = None) -> ServingResult:
    """Simulate a serving experiment (see the module docstring)."""
    from simulator.run import run_metrics, simulate

    plan: ServingPlan = exp.serving
    spec = plan.spec
    engine = engine or exp.engine
    mapper = exp.mapper

    def simulate_graph(graph: OpGraph, tiles: int | None) -> SimResult:
        m = mapper if tiles is None else mapper.model_copy(update={"max_tiles_per_layer": tiles,
                                                                   "max_tasks": 10 ** 12})
        return simulate(graph, exp.architecture, mapper=m, engine=engine, name=exp.name)

    costs = IterationCosts(plan, simulate_graph, max_tasks=mapper.max_tasks,
                           max_tiles_per_layer=mapper.max_tiles_per_layer,
                           tile_fidelity=mapper.fidelity == "tile")
    outcome = serve(plan.requests, costs.cost, max_batch=spec.max_batch,
                    kv_capacity_tokens=plan.kv_capacity_tokens, max_prefill_tokens=spec.max_prefill_tokens,
                    on_iteration=costs.record)
    return _result(exp, plan, costs, outcome, engine, run_metrics)


def _result(exp, plan: ServingPlan, costs: IterationCosts, outcome: ServingOutcome, engine: str,
            run_metrics) -> ServingResult:
    # layers and resources: every simulated shape's, weighted by how often iterations used it
    by_name: dict[str, list[tuple[LayerResult, float]]] = {}
    resources: dict[str, list] = {}
    peak, freq = 0, exp.architecture.freq_hz
    n_layers = plan.cfg.num_hidden_layers
    extrapolated = plan.spec.cost_model.layers == "extrapolate" and n_layers > 2
    for shape, (use_t, use_e) in sorted(costs.usage.items()):
        s = costs.shapes.get(shape) or costs.untimed[shape]
        peak = max(peak, s.peak_macs_per_cycle)
        for l, w in s.layers:  # what the layers did: energy weights (linear in the tokens)
            name = l.name
            if extrapolated and l.block == "layers.1":
                name = name.replace("layers.1.", f"layers.1-{n_layers - 1}.", 1)
            if use_e > 0:
                by_name.setdefault(name, []).append((l, w * use_e))
        for rname, (stats, busy, tasks, nbytes) in s.resources.items():  # busy time: time weights
            entry = resources.setdefault(rname, [stats, 0.0, 0.0, 0.0])
            entry[1] += busy * use_t
            entry[2] += tasks * use_t
            entry[3] += nbytes * use_t
    layers = tuple(_summed_layer(name, parts, i) for i, (name, parts) in enumerate(by_name.items()))
    cycles = int(round(outcome.end_s * freq))
    stats = tuple(ResourceStats(r.name, r.kind, round(b), max(0, cycles - round(b)), round(t), round(nb))
                  for r, b, t, nb in resources.values())
    recs = outcome.records
    generated = sum(r.output_tokens for r in recs)
    span_s = outcome.end_s - outcome.start_s
    ttft = np.array([r.first_token_s - r.arrival_s for r in recs])
    e2e = np.array([r.finished_s - r.arrival_s for r in recs])
    queue = np.array([r.admitted_s - r.arrival_s for r in recs])
    tbt = outcome.tbt

    def pct(a: np.ndarray, q: float) -> float:
        return float(np.percentile(a, q)) if len(a) else 0.0

    base = SimResult(experiment=exp.name, engine=engine, architecture=exp.architecture.name,
                     workload=f"{plan.cfg.name}-serving", freq_hz=freq, cycles=cycles,
                     peak_macs_per_cycle=peak * plan.devices, layers=layers, resources=stats)
    energy = base.energy_pj
    extra = {
        "throughput_tokens_per_s": generated / span_s if span_s > 0 else 0.0,
        "ttft_s": pct(ttft, 50), "ttft_p99_s": pct(ttft, 99),
        "tbt_s": pct(tbt, 50), "tbt_p99_s": pct(tbt, 99),
        "tpot_s": float(tbt.mean()) if len(tbt) else 0.0,
        "energy_pj_per_token": energy / generated if generated else 0.0,
        "requests_completed": len(recs), "requests": len(plan.requests),
        "generated_tokens": generated, "prompt_tokens": sum(r.input_tokens for r in recs),
        "e2e_s": pct(e2e, 50), "e2e_p99_s": pct(e2e, 99), "queue_s": pct(queue, 50),
        "iterations": outcome.iterations,
        "mean_batch": outcome.batch_sum / outcome.iterations if outcome.iterations else 0.0,
        "kv_capacity_tokens": plan.kv_capacity_tokens, "devices": plan.devices,
        "serving_simulations": costs.simulations, "serving_shapes": len(costs.shapes) + len(costs.untimed),
        "serving_span_s": span_s, "system_energy_pj": energy,
    }
    from simulator.run import design_metrics

    extra.update({k: v * plan.devices for k, v in design_metrics(exp.architecture).items()})
    result = ServingResult(**{f.name: getattr(base, f.name) for f in dataclasses.fields(SimResult)},
                           requests=tuple(recs))
    result = dataclasses.replace(result, extra=extra)
    return run_metrics(result, len(recs))


def _summed_layer(name: str, parts: list[tuple[LayerResult, float]], index: int) -> LayerResult:
    first = parts[0][0]

    def wsum(get) -> float:
        return sum(get(l) * w for l, w in parts)

    keys: list[str] = []
    for l, _ in parts:
        for k in l.counters:
            if k not in keys:
                keys.append(k)
    counters = {k: wsum(lambda l, k=k: l.counters.get(k, 0.0)) for k in keys}
    start, end = round(wsum(lambda l: l.start_cycle)), round(wsum(lambda l: l.end_cycle))
    compute = round(wsum(lambda l: l.compute_cycles))
    block = first.block
    if block == "layers.1" and "layers.1-" in name:
        block = name.split(".")[0] + "." + name.split(".")[1]
    return dataclasses.replace(
        first, index=index, name=f"serving:{name}", block=block, start_cycle=start, end_cycle=end,
        compute_cycles=compute, stall_cycles=max(0, end - start - compute),
        stall_memory_cycles=round(wsum(lambda l: l.stall_memory_cycles)),
        stall_dependency_cycles=round(wsum(lambda l: l.stall_dependency_cycles)),
        stall_busy_cycles=round(wsum(lambda l: l.stall_busy_cycles)),
        macs=round(wsum(lambda l: l.macs)), vector_ops=round(wsum(lambda l: l.vector_ops)),
        folds=round(wsum(lambda l: l.folds)), utilization=first.utilization,
        latency_s=wsum(lambda l: l.latency_s), counters=counters)
