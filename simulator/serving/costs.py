"""Iteration costs: what one continuous-batching iteration costs, from the event engine.

Contract: ``IterationCosts(plan, simulate_graph)`` gives ``cost(P, span, D, C) ->
IterationCost`` (seconds and energy of every device) for an iteration of P prompt tokens
attending ``span`` keys each and D decoding sequences of mean context C, from simulated
iteration shapes cached by shape (``shapes``; energy-only ones in ``untimed``); ``record(cost)``
adds an iteration's weights to ``usage``, from which the run's layers and resources are summed.

An iteration's graph (``workloads.serving.build_iteration``) is lowered and simulated on the
architecture with the experiment's mapper options. An iteration is the shape (P prompt tokens, L
the keys a prompt token attends = sum of the squared prompt lengths / their sum, D decoding
sequences, C their mean context: decode attention's bytes and MACs are linear in each request's
context, so the mean gives their exact sum). With ``cost_model.mode: interpolate`` (the default)
costs come from a cache of simulated grid shapes:

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
  output the ``allocate`` pass keeps in L2 differently from a middle layer's). A model with
  dense and MoE layers (``decoder_sparse_step``, ``mlp_only_layers``) is extrapolated per kind
  of layer: 1- and 2-layer models of each kind (``LLMConfig.with_layer_kinds``), ``T = T_a(1) +
  (n_a - 1) (T_a(2) - T_a(1)) + n_b (T_b(2) - T_b(1))`` with a the kind of layer 0 and n_a, n_b
  the layers of each kind (``layer_groups``; four simulations instead of two; energy from the
  2-layer models' rows: ``layers.1`` weighted n_a - 1 and n_b). The layers' order is not
  simulated: a layer's cost is taken not to depend on its neighbours' kind. Against ``layers:
  all`` on a small interleaved model (tests/simulator/test_serving.py): time to the cycle,
  energy within 0.3 % per shape (0.21 % on 4 devices: each kind's marginal layer is a last
  layer) and 0.05 % over a run.
- ``mode: exact`` simulates every distinct iteration shape (C rounded to a token).
  ``tests/simulator/test_serving.py`` measures the interpolated costs against it on a small
  case and pins the error (within 0.4 % for throughput and energy, 1.1 % for TTFT and TBT,
  median and p99; on Mixtral-8x7B on 4 devices within 0.05 % and 1.8 %).

Shapes an iteration needs that are not cached yet are simulated as one batch (``prepare``): on
helper processes forked from this one when there are several (``workers``, by default
``simulator.serving.workers.default_workers()``: the cores, at most 4; 1 inside a sweep's worker
processes; ``TESSERA_SERVING_WORKERS`` overrides it). A shape's simulation depends on the shape
alone (the tile budget is the full model's, whatever the guess it starts from), so the costs, and
every result, are the same with any number of workers; the tests check it. While shapes are
simulated the garbage collector runs less often (``workers.relaxed_gc``: lowering allocates many
objects and few cycles).

Energy counts every device: each simulated layer's row is weighted by the devices that run it
(``Parallelism.replicas``): with tensor parallelism every device does the simulated device's
work; with expert parallelism the non-expert operators run on every device (data parallel) and
each expert, and each all-to-all, once.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from workloads.graph import OpGraph
from workloads.llm_config import LLMConfig
from workloads.serving import IterationShape
from simulator.result import LayerResult, ResourceStats, SimResult
from simulator.serving.plan import ServingPlan
from simulator.serving.workers import JobWorkers, default_workers, relaxed_gc

_Job = tuple[IterationShape, bool, dict[tuple[bool, bool], int]]  # shape, timed, tile guesses


@dataclass(frozen=True)
class IterationCost:
    """One iteration's cost, and the simulated shapes it was interpolated from."""

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


def _kind(shape: IterationShape) -> tuple[bool, bool]:
    """Shapes of a kind (with prompt tokens?, with decoding sequences?) run the same operators."""
    return shape.prefill_tokens > 0, shape.decode_batch > 0


def _run_job(costs: weakref.ref, job: _Job) -> tuple[_Shape, int, int | None]:
    return costs()._simulate(*job)


def layer_groups(cfg: LLMConfig) -> list[tuple[bool, int]]:
    """The model's kinds of decoder layer (True: MoE) with how many layers are of each, the
    kind of layer 0 first (its short models also carry the embedding and the head)."""
    kinds = cfg.layer_kinds
    out = [(kinds[0], kinds.count(kinds[0]))]
    if (not kinds[0]) in kinds:
        out.append((not kinds[0], kinds.count(not kinds[0])))
    return out


def extrapolates(plan: ServingPlan) -> bool:
    """Whether iteration costs are extrapolated from short models (``cost_model.layers:
    extrapolate`` and more layers than the short models hold: 2 per kind of layer)."""
    return (plan.spec.cost_model.layers == "extrapolate"
            and plan.cfg.num_hidden_layers > 2 * len(layer_groups(plan.cfg)))


def _extrapolate(groups: list[tuple[bool, int]], one: list[float], two: list[float]) -> float:
    """A quantity of the full model from its 1- and 2-layer values per kind of layer: the first
    kind's 1-layer model (embedding, head, a layer) plus (count - 1) of its marginal layers,
    plus ``count`` marginal layers of each other kind."""
    (_, c0), *rest = groups
    total = one[0] + (c0 - 1) * (two[0] - one[0])
    for (_, c), a, b in zip(rest, one[1:], two[1:]):
        total += c * (b - a)
    return total


def _group_weight(j: int, count: int) -> Callable[[LayerResult], float]:
    """Row weights of kind ``j``'s 2-layer model: its ``layers.1`` stands for the kind's other
    layers; the rest (embedding, head, ``layers.0``) counts once, for the first kind only."""
    if j == 0:
        return lambda l: float(count - 1) if l.block == "layers.1" else 1.0
    return lambda l: float(count) if l.block == "layers.1" else 0.0


def _weights(v: float, lo: int, hi: int) -> list[tuple[int, float]]:
    if hi == lo:
        return [(lo, 1.0)]
    t = (v - lo) / (hi - lo)
    return [(lo, 1.0 - t), (hi, t)]


class IterationCosts:
    """Iteration time and energy from the event engine, cached by shape (module docstring)."""

    def __init__(self, plan: ServingPlan, simulate_graph: Callable[..., SimResult], *, max_tasks: int = 60_000,
                 max_tiles_per_layer: int = 64, tile_fidelity: bool = True, workers: int | None = None):
        self.plan = plan
        self.cm = plan.spec.cost_model
        self.simulate_graph = simulate_graph  # (graph, max_tiles_per_layer or None) -> SimResult
        self.max_tasks, self.max_tiles = max_tasks, max_tiles_per_layer
        self.tile_fidelity = tile_fidelity
        mb = plan.spec.max_batch
        step = max(1, -(-mb // 8))
        par = plan.parallelism
        self.ep = par.data_parallel
        tile = self.cm.token_bucket * self.ep
        self.d_grid = sorted({0, mb} | {1 << i for i in range(mb.bit_length()) if 1 << i <= mb}
                             | {j * step for j in range(1, 9) if j * step <= mb}
                             | set(range(tile, mb + 1, tile)))
        self.shapes: dict[IterationShape, _Shape] = {}
        self.untimed: dict[IterationShape, _Shape] = {}  # energy-only simulations
        self._tiles_guess: dict[tuple[bool, bool], int] = {}
        self.usage: dict[IterationShape, tuple[float, float]] = {}  # summed (time, energy) weights
        self.simulations = 0
        self._interned: dict[tuple[int, int, int, int], IterationShape] = {}
        self.workers = default_workers() if workers is None else max(1, workers)
        # helper processes, forked at the first batch of several shapes (the job holds no
        # strong reference to self: the helpers end when this object is collected)
        self.pool = JobWorkers(partial(_run_job, weakref.ref(self)), self.workers)

    # -- the shapes -----------------------------------------------------------------------------
    def corners(self, prefill_tokens: int, span: float, decode: int,
                context: float) -> list[tuple[IterationShape, float, float]]:
        """The simulated shapes an iteration's cost comes from: (shape, time weight, energy
        weight); see the module docstring."""
        if self.cm.mode == "exact":
            L = max(1, int(round(span))) if prefill_tokens else 1
            return [(self._intern((prefill_tokens, L, decode, int(round(context)) if decode else 0)), 1.0, 1.0)]
        out: dict[tuple[int, int, int, int], list[float]] = {}  # (P, L, D, C): summed weights

        def add(p: int, d: int, c: int, L: int, wt: float, we: float) -> None:
            if (p == 0 and d == 0) or (wt <= 0 and we <= 0):
                return
            key = (p, L if p else 1, d, c if d else 0)
            acc = out.get(key)
            if acc is None:
                out[key] = [wt, we]
            else:
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
        return [(self._intern(k), v[0] / tt, v[1] / te) for k, v in out.items()]

    def _intern(self, key: tuple[int, int, int, int]) -> IterationShape:
        """One ``IterationShape`` object per shape: the caches' lookups then find it by identity."""
        shape = self._interned.get(key)
        if shape is None:
            shape = self._interned[key] = IterationShape(*key)
        return shape

    def cost(self, prefill_tokens: int, span: float, decode: int, context: float) -> IterationCost:
        """Time and energy of an iteration (interpolated or exact, per ``cost_model.mode``)."""
        corners = self.corners(prefill_tokens, span, decode, context)
        if not all(self._cached(shape, wt > 0) for shape, wt, _ in corners):
            self.prepare([(shape, wt > 0) for shape, wt, _ in corners])  # the missing ones, as one batch
        seconds = energy = 0.0
        for shape, wt, we in corners:
            s = self.shapes.get(shape)
            if s is None:  # energy only
                s = self.untimed[shape]
            seconds += wt * s.cycles / s.freq_hz
            energy += we * s.energy_pj
        return IterationCost(seconds, energy, tuple(corners))

    def _cached(self, shape: IterationShape, timed: bool) -> bool:
        return shape in self.shapes or (not timed and shape in self.untimed)

    def record(self, cost: IterationCost) -> None:
        """Count an iteration that ran: add its corners' time and energy weights to ``usage``."""
        for shape, wt, we in cost.corners:
            t, e = self.usage.get(shape, (0.0, 0.0))
            self.usage[shape] = (t + wt, e + we)

    # -- simulating a shape -----------------------------------------------------------------------
    def shape(self, shape: IterationShape, timed: bool = True) -> _Shape:
        """A shape's simulation. ``timed=False``: only its energy and counters are wanted, which
        do not depend on timing: one 2-layer simulation at one tile per operator suffices (its
        time is not used)."""
        self.prepare([(shape, timed)])
        hit = self.shapes.get(shape)
        return hit if hit is not None else self.untimed[shape]

    def prepare(self, wanted: list[tuple[IterationShape, bool]]) -> None:
        """Simulate the ``(shape, timed)`` not cached yet, as one batch (on the helper processes
        when there are several). Every job starts from the tile budgets learnt before the batch
        (a kind of shape met for the first time sends one of its shapes ahead, to learn its
        budget), so what is simulated does not depend on which process ran what."""
        guessing = self.tile_fidelity and extrapolates(self.plan)
        while True:
            guess = dict(self._tiles_guess)
            jobs: list[_Job] = []
            seen: set[IterationShape] = set()
            for shape, timed in wanted:
                if shape not in seen and not self._cached(shape, timed):
                    seen.add(shape)
                    jobs.append((shape, timed, guess))
            # a kind of shape met for the first time: one of them first, to learn its tile budget
            scouts: dict[tuple[bool, bool], _Job] = {}
            for j in jobs:
                if guessing and j[1] and _kind(j[0]) not in guess:
                    scouts.setdefault(_kind(j[0]), j)
            if not scouts:
                break
            self._run(list(scouts.values()))
        if jobs:
            self._run(jobs)

    def _run(self, jobs: list[_Job]) -> None:
        jobs = sorted(jobs, key=lambda j: not j[1])  # the timed ones (two simulations) first: less idle at the end
        with relaxed_gc():
            done = self.pool.map(jobs)
        for (shape, timed, _), (sim, runs, tiles) in zip(jobs, done):
            self.simulations += runs
            if timed:
                self.shapes[shape] = sim
                self.untimed.pop(shape, None)
                if tiles is not None:
                    self._tiles_guess[_kind(shape)] = tiles
            else:
                self.untimed[shape] = sim

    def close(self) -> None:
        """End the helper processes (also done when this object is collected)."""
        self.pool.close()

    def _tiles_for(self, running: int) -> int | None:
        if not self.tile_fidelity:
            return None
        return max(1, min(self.max_tiles, self.max_tasks // max(1, 3 * running)))

    def _graph(self, shape: IterationShape, kinds: tuple[bool, ...] | None = None) -> OpGraph:
        """The iteration graph of the whole model, or (``kinds``) of a short model whose layers
        are of those kinds (True: MoE): the model's first layers when all its layers are alike."""
        if kinds is None:
            return self.plan.iteration_graph(shape)
        cfg = self.plan.cfg
        if len(set(cfg.layer_kinds)) == 1:
            return self.plan.iteration_graph(shape, len(kinds))
        return dataclasses.replace(self.plan, cfg=cfg.with_layer_kinds(kinds)).iteration_graph(shape)

    def _simulate(self, shape: IterationShape, timed: bool = True,
                  guess: dict[tuple[bool, bool], int] | None = None) -> tuple[_Shape, int, int | None]:
        """Simulate ``shape``: its ``_Shape``, the graph simulations run, and the tile budget used
        (the full model's; ``guess``: the budget to try first, by kind)."""
        groups = layer_groups(self.plan.cfg)
        if not extrapolates(self.plan):
            r = self.simulate_graph(self._graph(shape), None)
            return self._collect([(r, lambda l: 1.0)], r.cycles, r), 1, None
        weights = [_group_weight(j, count) for j, (_, count) in enumerate(groups)]
        if not timed:  # energy and counters only: the 2-layer models at one tile per operator
            r2s = [self.simulate_graph(self._graph(shape, (kind, kind)), 1) for kind, _ in groups]
            return self._collect(list(zip(r2s, weights)), 0.0, r2s[0]), len(groups), None
        g1s = [self._graph(shape, (kind,)) for kind, _ in groups]
        g2s = [self._graph(shape, (kind, kind)) for kind, _ in groups]
        # the tile budget of the full model's graph, from its running operators (linear in the
        # layers of each kind); guessed from the last shape of the same kind, checked, and redone
        # if wrong. A kind's first shape tries one tile per operator: a cheap simulation that
        # counts them
        tiles = (guess or {}).get(_kind(shape), 1) if self.tile_fidelity else None
        runs = 0
        while True:
            r1s = [self.simulate_graph(g, tiles) for g in g1s]
            r2s = [self.simulate_graph(g, tiles) for g in g2s]
            runs += 2 * len(groups)
            if tiles is None:
                break
            want = self._tiles_for(_extrapolate(groups, [_running(r) for r in r1s], [_running(r) for r in r2s]))
            if want == tiles:
                break
            tiles = want
        cycles = _extrapolate(groups, [r.cycles for r in r1s], [r.cycles for r in r2s])
        out = self._collect(list(zip(r2s, weights)), cycles, r2s[0])
        # resources: extrapolated like the time
        resources: dict[str, list] = {}
        for j, ((_, count), r1, r2) in enumerate(zip(groups, r1s, r2s)):
            one = {r.name: r for r in r1.resources}
            for r in r2.resources:
                now = (float(r.busy_cycles), float(r.tasks), float(r.bytes))
                a = one.get(r.name)
                if a is None:
                    add = now if j == 0 else (0.0, 0.0, 0.0)
                else:
                    before = (a.busy_cycles, a.tasks, a.bytes)
                    add = tuple(b + (count - 1) * (x - b) if j == 0 else count * (x - b)
                                for x, b in zip(now, before))
                entry = resources.setdefault(r.name, [r, 0.0, 0.0, 0.0])
                for k in range(3):
                    entry[k + 1] += add[k]
        out.resources = {name: tuple(v) for name, v in resources.items()}
        return out, runs, tiles

    def _collect(self, parts: list[tuple[SimResult, Callable[[LayerResult], float]]], cycles: float,
                 base: SimResult) -> _Shape:
        par = self.plan.parallelism
        layers, energy = [], 0.0
        for r, weight in parts:
            for l in r.layers:
                w = weight(l) * par.replicas(l.name, l.kind)
                if w == 0:  # a row another simulation stands for
                    continue
                layers.append((l, w))
                energy += w * l.energy_pj
        resources = {r.name: (r, float(r.busy_cycles), float(r.tasks), float(r.bytes)) for r in base.resources}
        return _Shape(float(cycles), energy, layers, resources, base.peak_macs_per_cycle, base.freq_hz)

