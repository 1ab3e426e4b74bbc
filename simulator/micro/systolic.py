"""A cycle-level systolic-array micro-simulator: every PE, every cycle, for os / ws / is.

Contract: ``simulate_gemm(A, B, rows, cols, dataflow, record=...)`` computes ``A @ B`` (or
``groups`` of them) on an R x C array by moving operands register by register
(``simulator.micro.kernels``) and returns a ``MicroRun``: the product, the cycles the array took
(each fold runs until its last token has left the array), and per fold the useful MACs of every
PE and the cycle each output (or partial sum) left. With ``record=True`` it also keeps the state
of every PE in every cycle (``CycleStates``), which the pictures and the text view read. In a
notebook a ``MicroRun`` shows its summary and heat maps; ``run.gif()`` and ``run.heatmaps()``
return pictures Jupyter displays.

Folds run in the fold model's order (group, then column folds, then row folds) and map the GEMM
as ``architectures.systolic`` does: os puts M on rows and N on columns and streams K; ws puts K on
rows and N on columns, preloads the weights and streams M; is puts K on rows and M on columns,
preloads the inputs and streams N. With ws/is every row fold but the last produces partial sums,
which the ofmap buffer adds up. The cycle counts come out of the register loop, not from a
formula; ``tests/simulator/test_systolic_micro.py`` checks them against ``fold_plan`` for every
dataflow and every fold, and the product against numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from architectures.systolic import DATAFLOWS, fold_plan
from simulator.micro.kernels import os_fold, stationary_fold
from workloads.errors import ConfigError, Problem
from workloads.ops import GemmShape

__all__ = ["MicroRun", "FoldTrace", "CycleStates", "simulate_gemm", "random_operands", "check_size",
           "MAX_ARRAY", "MAX_PE_CYCLES", "MAX_RECORDED_PE_CYCLES", "PAD", "NONE"]

MAX_ARRAY = 32  # rows and columns: a teaching tool, not a replacement for the fold model
MAX_PE_CYCLES = 50_000_000  # PE-cycles simulated in one run (about a second)
MAX_RECORDED_PE_CYCLES = 2_000_000  # PE-cycles kept with record=True (about 60 MB of state)
NONE = -1  # CycleStates: nothing there
PAD = -2  # CycleStates: a padding token (a lane beyond the GEMM's edge)


@dataclass(frozen=True, eq=False)
class FoldTrace:
    """One fold: where it sits in the GEMM and what each PE did.

    ``rows``/``cols`` of the mapped extents (``Sr``/``Sc`` of the fold model) start at
    ``row_offset``/``col_offset`` and ``used_rows``/``used_cols`` of them are real. ``macs[i, j]``:
    useful MACs of PE (i, j). ``out_cycle[m, n]``: the run cycle output ``O[m0 + m, n0 + n]`` was
    complete (os: its PE's last MAC; the accumulators drain in the shadow of the next fold) or
    left the bottom row (ws/is), -1 for none; ``partial`` when it is a partial sum (a ws/is fold
    that is not the last along K)."""

    index: int
    group: int
    row_fold: int
    col_fold: int
    start_cycle: int
    cycles: int
    row_offset: int
    col_offset: int
    used_rows: int
    used_cols: int
    macs: np.ndarray  # int64 [R, C]
    m0: int
    n0: int
    out_cycle: np.ndarray  # int64 [outputs along M, outputs along N]
    partial: bool

    @property
    def utilization(self) -> np.ndarray:
        """Per PE: the fraction of the fold's cycles it did a useful MAC."""
        return self.macs / self.cycles


@dataclass(frozen=True, eq=False)
class CycleStates:
    """Every PE in every cycle of a run (arrays of shape [cycles, R, C]).

    Which GEMM elements each PE holds: ``a_m, a_k`` (an element of A, the ifmap), ``b_k, b_n`` (of
    B, the filter), ``o_m, o_n`` (the output its accumulator or partial sum belongs to); ``NONE``
    (-1) for nothing, ``PAD`` (-2) for a padding token in a lane beyond the GEMM's edge.
    ``mac``: a useful MAC this cycle. ``value``: the accumulator (os) or the partial sum leaving the
    PE (ws/is). ``terms`` (os): products accumulated so far. ``loading``: the stationary operand is
    being shifted in (ws/is). ``fold[t]``: the fold cycle t belongs to; ``fold_cycle[t]``: the
    cycle within it."""

    fold: np.ndarray
    fold_cycle: np.ndarray
    a_m: np.ndarray
    a_k: np.ndarray
    b_k: np.ndarray
    b_n: np.ndarray
    o_m: np.ndarray
    o_n: np.ndarray
    mac: np.ndarray
    value: np.ndarray
    terms: np.ndarray
    loading: np.ndarray

    @property
    def cycles(self) -> int:
        return int(self.fold.shape[0])


@dataclass(frozen=True, eq=False)
class MicroRun:
    """The result of ``simulate_gemm``."""

    dataflow: str
    rows: int
    cols: int
    gemm: GemmShape
    A: np.ndarray
    B: np.ndarray
    output: np.ndarray
    cycles: int
    folds: tuple[FoldTrace, ...]
    states: CycleStates | None = None

    @property
    def useful_macs(self) -> int:
        return int(sum(int(f.macs.sum()) for f in self.folds))

    @property
    def utilization(self) -> float:
        """Useful MACs / (cycles x PEs)."""
        return self.useful_macs / (self.cycles * self.rows * self.cols) if self.cycles else 0.0

    def gif(self, frame_ms: int = 350, title_ms: int = 2500):
        """The animation as a ``simulator.notebook.Picture`` (GIF bytes Jupyter displays; ``.save(path)``
        writes them). Needs a run simulated with ``record=True`` and at most ``MAX_FRAMES`` cycles."""
        from simulator.micro.draw import MAX_FRAMES, gif_bytes
        from simulator.notebook import Picture

        if self.states is None:
            raise ValueError("gif() needs a run simulated with record=True (simulate_gemm(..., record=True))")
        if self.cycles > MAX_FRAMES:
            raise ValueError(f"{self.cycles:,} cycles are too many to animate: the limit is {MAX_FRAMES:,} "
                             f"(one frame per cycle); heatmaps() has no limit")
        return Picture(gif_bytes(self, frame_ms=frame_ms, title_ms=title_ms), "gif")

    def heatmaps(self):
        """The utilization heat maps (``simulator.micro.heatmaps``) as a PNG ``Picture``."""
        from simulator.micro.heatmaps import heatmap_figure
        from simulator.notebook import Picture

        return Picture.from_figure(heatmap_figure(self))

    def _repr_html_(self) -> str:
        """Jupyter: the title frame's lines and the heat maps (``simulator.notebook.micro_html``)."""
        from simulator.notebook import micro_html

        return micro_html(self)

    def output_events(self) -> list[tuple[int, int, int, int, bool]]:
        """(cycle, group, m, n, partial) for every output or partial sum, in cycle order."""
        events = []
        for f in self.folds:
            ms, ns = np.nonzero(f.out_cycle >= 0)
            for m, n in zip(ms.tolist(), ns.tolist()):
                events.append((int(f.out_cycle[m, n]), f.group, f.m0 + m, f.n0 + n, f.partial))
        events.sort()
        return events


def random_operands(gemm: GemmShape, seed: int = 0, low: int = -4,
                    high: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Small-integer operands (exact in float64) for a GEMM: A (groups x M x K), B (groups x K x N)
    without the group axis when ``groups == 1``."""
    rng = np.random.default_rng(seed)
    shape_a = (gemm.M, gemm.K) if gemm.groups == 1 else (gemm.groups, gemm.M, gemm.K)
    shape_b = (gemm.K, gemm.N) if gemm.groups == 1 else (gemm.groups, gemm.K, gemm.N)
    return (rng.integers(low, high, size=shape_a).astype(np.float64),
            rng.integers(low, high, size=shape_b).astype(np.float64))


def check_size(gemm: GemmShape, rows: int, cols: int, dataflow: str, *, record: bool = False,
               path: str = "--array") -> int:
    """Raise ``ConfigError`` if the run is beyond the micro-simulator's limits; return its cycles
    (from the fold model, which the simulation reproduces)."""
    if dataflow not in DATAFLOWS:
        raise ConfigError(Problem(None, "--dataflow", f"'{dataflow}' is not a dataflow; expected one "
                                  f"of {', '.join(DATAFLOWS)}"))
    if not (1 <= rows <= MAX_ARRAY and 1 <= cols <= MAX_ARRAY):
        raise ConfigError(Problem(None, path, f"a {rows}x{cols} array is beyond the micro-simulator's "
                                  f"limit of {MAX_ARRAY}x{MAX_ARRAY} PEs"))
    cycles = fold_plan(gemm, rows, cols, dataflow).compute_cycles
    work = cycles * rows * cols
    limit = MAX_RECORDED_PE_CYCLES if record else MAX_PE_CYCLES
    if work > limit:
        raise ConfigError(Problem(None, "--gemm", f"{gemm.M}x{gemm.K}x{gemm.N} on a {rows}x{cols} "
                                  f"array ({dataflow}) takes {cycles:,} cycles = {work:,} PE-cycles; "
                                  f"the micro-simulator's limit is {limit:,} PE-cycles"
                                  + (" when it records every cycle" if record else "")))
    return cycles


def _as_groups(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray, GemmShape]:
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    if A.ndim == 2:
        A = A[None]
    if B.ndim == 2:
        B = B[None]
    if A.ndim != 3 or B.ndim != 3 or A.shape[0] != B.shape[0] or A.shape[2] != B.shape[1]:
        raise ValueError(f"A {A.shape} and B {B.shape} are not (groups x) M x K and K x N")
    g, M, K = A.shape
    return A, B, GemmShape(M, K, B.shape[2], g)


def simulate_gemm(A: np.ndarray, B: np.ndarray, rows: int, cols: int, dataflow: str, *,
                  record: bool = False) -> MicroRun:
    """Run ``A @ B`` on a ``rows`` x ``cols`` array, every PE every cycle (module docstring)."""
    A3, B3, gemm = _as_groups(A, B)
    cycles_expected = check_size(gemm, rows, cols, dataflow, record=record)
    plan = fold_plan(gemm, rows, cols, dataflow)
    R, C = rows, cols
    n_rec = cycles_expected + R + C + 2 if record else 0  # room to spare: the kernels stop themselves
    rec = _Recorder(n_rec, R, C)
    out = np.zeros((gemm.groups, gemm.M, gemm.N))
    folds: list[FoldTrace] = []
    t0 = 0
    for g in range(gemm.groups):
        for cf in range(plan.col_folds):
            for rf in range(plan.row_folds):
                r0, c0 = rf * R, cf * C
                ur, uc = min(R, plan.Sr - r0), min(C, plan.Sc - c0)
                bufs = rec.buffers(t0)
                if dataflow == "os":
                    a = np.zeros((R, gemm.K))
                    a[:ur] = A3[g, r0:r0 + ur, :]
                    b = np.zeros((gemm.K, C))
                    b[:, :uc] = B3[g, :, c0:c0 + uc]
                    cyc, acc, macs, last = os_fold(a, b, ur, uc, record, *bufs)
                    out[g, r0:r0 + ur, c0:c0 + uc] = acc[:ur, :uc]
                    done = np.where(last[:ur, :uc] >= 0, last[:ur, :uc] + t0, -1)
                    m0, n0, partial = r0, c0, False
                else:
                    s = np.zeros((R, C))
                    if dataflow == "ws":  # rows: K, cols: N, stream: M
                        s[:ur, :uc] = B3[g, r0:r0 + ur, c0:c0 + uc]
                        x = np.zeros((gemm.M, R))
                        x[:, :ur] = A3[g, :, r0:r0 + ur]
                    else:  # is: rows: K, cols: M, stream: N
                        s[:ur, :uc] = A3[g, c0:c0 + uc, r0:r0 + ur].T
                        x = np.zeros((gemm.N, R))
                        x[:, :ur] = B3[g, r0:r0 + ur, :].T
                    cyc, res, macs, left = stationary_fold(s, x, ur, uc, record, *bufs)
                    left = np.where(left[:, :uc] >= 0, left[:, :uc] + t0, -1)
                    if dataflow == "ws":
                        out[g, :, c0:c0 + uc] += res[:, :uc]
                        done, m0, n0 = left, 0, c0
                    else:
                        out[g, c0:c0 + uc, :] += res[:, :uc].T
                        done, m0, n0 = left.T, c0, 0
                    partial = rf < plan.row_folds - 1
                rec.fold_done(len(folds), t0, cyc)
                folds.append(FoldTrace(len(folds), g, rf, cf, t0, int(cyc), r0, c0, ur, uc, macs, m0, n0,
                                       done, partial))
                t0 += int(cyc)
    states = rec.states(t0, dataflow, folds, gemm) if record else None
    output = out[0] if np.ndim(A) == 2 else out
    return MicroRun(dataflow, R, C, gemm, A3[0] if np.ndim(A) == 2 else A3,
                    B3[0] if np.ndim(B) == 2 else B3, output, t0, tuple(folds), states)


class _Recorder:
    """Preallocated per-cycle buffers for the kernels, and their translation into GEMM indices."""

    def __init__(self, cycles: int, R: int, C: int):
        self.R, self.C = R, C
        self.h = np.full((cycles, R, C), -1, np.int64)
        self.v = np.full((cycles, R, C), -1, np.int64)
        self.p = np.full((cycles, R, C), -1, np.int64)
        self.mac = np.zeros((cycles, R, C), np.uint8)
        self.val = np.zeros((cycles, R, C))
        self.fold = np.full(cycles, -1, np.int64)
        self.fold_cycle = np.full(cycles, -1, np.int64)

    def buffers(self, t0: int):
        return self.h[t0:], self.v[t0:], self.p[t0:], self.mac[t0:], self.val[t0:]

    def fold_done(self, index: int, t0: int, cycles: int) -> None:
        if len(self.fold):
            self.fold[t0:t0 + cycles] = index
            self.fold_cycle[t0:t0 + cycles] = np.arange(cycles)

    def states(self, n: int, dataflow: str, folds: list[FoldTrace], gemm: GemmShape) -> CycleStates:
        R, C = self.R, self.C
        h, v, p = self.h[:n], self.v[:n], self.p[:n]
        shape = (n, R, C)
        fi = self.fold[:n]
        row_off = np.array([f.row_offset for f in folds])[fi][:, None, None]
        col_off = np.array([f.col_offset for f in folds])[fi][:, None, None]
        used_r = np.array([f.used_rows for f in folds])[fi][:, None, None]
        used_c = np.array([f.used_cols for f in folds])[fi][:, None, None]
        ii = np.arange(R)[None, :, None]
        jj = np.arange(C)[None, None, :]
        row_ok = np.broadcast_to(ii < used_r, shape)
        col_ok = np.broadcast_to(jj < used_c, shape)

        def idx(present: np.ndarray, real: np.ndarray, value) -> np.ndarray:
            return np.where(present, np.where(real, value, PAD), NONE).astype(np.int32)

        loading = np.zeros(shape, dtype=bool)
        terms = np.zeros(shape, dtype=np.int32)
        if dataflow == "os":  # h: k of A[m, k]; v: k of B[k, n]; the output stays in the PE
            a_ok, b_ok = h >= 0, v >= 0
            m = row_off + ii
            n_ = col_off + jj
            a_m, a_k = idx(a_ok, row_ok, m), idx(a_ok, row_ok, h)
            b_k, b_n = idx(b_ok, col_ok, v), idx(b_ok, col_ok, n_)
            o_ok = np.ones(shape, dtype=bool)
            o_m, o_n = idx(o_ok, row_ok & col_ok, m), idx(o_ok, row_ok & col_ok, n_)
            terms = p.astype(np.int32)
        else:
            k_h = row_off + ii  # the streamed token in row i carries reduction index k0 + i
            w_ok = v >= 0
            w_real = (v < used_r) & col_ok
            k_w = row_off + v
            tok_ok, ps_ok = h >= 0, p >= 0
            loading = np.broadcast_to((self.fold_cycle[:n] < R)[:, None, None], shape) & w_ok
            if dataflow == "ws":  # stationary B[k, n]; streamed A[m, k], m = token; psum O[m, n]
                a_m, a_k = idx(tok_ok, row_ok, h), idx(tok_ok, row_ok, k_h)
                b_k, b_n = idx(w_ok, w_real, k_w), idx(w_ok, w_real, col_off + jj)
                o_m, o_n = idx(ps_ok, col_ok, p), idx(ps_ok, col_ok, col_off + jj)
            else:  # is: stationary A[m, k]; streamed B[k, n], n = token; psum O[m, n]
                b_k, b_n = idx(tok_ok, row_ok, k_h), idx(tok_ok, row_ok, h)
                a_m, a_k = idx(w_ok, w_real, col_off + jj), idx(w_ok, w_real, k_w)
                o_m, o_n = idx(ps_ok, col_ok, col_off + jj), idx(ps_ok, col_ok, p)
        return CycleStates(fold=fi.astype(np.int32), fold_cycle=self.fold_cycle[:n].astype(np.int32),
                           a_m=a_m, a_k=a_k, b_k=b_k, b_n=b_n, o_m=o_m, o_n=o_n,
                           mac=self.mac[:n].astype(bool), value=self.val[:n].copy(), terms=terms,
                           loading=loading)

