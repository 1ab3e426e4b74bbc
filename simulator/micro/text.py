"""A per-cycle text view of a micro-simulation, for a terminal.

Contract: ``text_lines(run)`` yields the lines of the view of a ``MicroRun`` recorded with
``record=True``: the header (``draw.describe``), a legend, then per cycle a grid with one cell per
PE and what entered the array and what left it, then per fold the useful MACs. Arrays up to
``VERBOSE_COLS`` columns show the elements in every cell (``*A0,5·B5,0``: PE multiplies A[0,5]
by B[5,0]); wider arrays show one character per PE (``MARKS``; in os ``.`` marks a PE whose
output is still accumulating and ``o`` one whose output is complete). Outputs that leave carry
their values: final outputs the element of ``A @ B``, partial sums (ws/is K-folds but the last)
the running sum over the K-folds so far, as the ofmap buffer holds it.
"""

from __future__ import annotations

from collections.abc import Iterator

from simulator.micro.frame import _running_sum, describe
from simulator.micro.systolic import NONE, PAD, MicroRun

__all__ = ["text_lines", "VERBOSE_COLS", "MARKS"]

VERBOSE_COLS = 8
MARKS = {"mac": "*", "pad": "~", "loading": "w", "holding": ".", "partial": ".", "done": "o", "idle": " "}


def _el(name: str, x: int, y: int) -> str:
    return "pad" if PAD in (x, y) else f"{name}{x},{y}"


def _state(run: MicroRun, t: int, i: int, j: int) -> tuple[str, str]:
    """(mark, content) of PE (i, j) in cycle t."""
    s = run.states
    a = _el("A", s.a_m[t, i, j], s.a_k[t, i, j]) if s.a_m[t, i, j] != NONE else ""
    b = _el("B", s.b_k[t, i, j], s.b_n[t, i, j]) if s.b_k[t, i, j] != NONE else ""
    if run.dataflow == "os":
        moving = bool(a or b)
        if s.mac[t, i, j]:
            return MARKS["mac"], f"{a}·{b}"
        if moving:
            return MARKS["pad"], f"{a}·{b}"
        if s.terms[t, i, j] > 0 and s.o_m[t, i, j] >= 0:
            mark = MARKS["done"] if s.terms[t, i, j] >= run.gemm.K else MARKS["partial"]
            return mark, f"O{s.o_m[t, i, j]},{s.o_n[t, i, j]} {s.terms[t, i, j]}/{run.gemm.K}"
        return MARKS["idle"], ""
    token = a if run.dataflow == "ws" else b
    held = b if run.dataflow == "ws" else a
    if s.mac[t, i, j]:
        return MARKS["mac"], f"{a}·{b}"
    if token:
        return MARKS["pad"], f"{a}·{b}"
    if s.loading[t, i, j]:
        return MARKS["loading"], held
    if held:
        return MARKS["holding"], held
    return MARKS["idle"], ""


def _entering(run: MicroRun, t: int) -> tuple[list[str], list[str]]:
    s, df = run.states, run.dataflow
    rows = []
    for i in range(run.rows):
        if df == "is":
            rows.append(_el("B", s.b_k[t, i, 0], s.b_n[t, i, 0]) if s.b_k[t, i, 0] != NONE else "")
        else:
            rows.append(_el("A", s.a_m[t, i, 0], s.a_k[t, i, 0]) if s.a_m[t, i, 0] != NONE else "")
    cols = []
    for j in range(run.cols):
        if df == "os":
            cols.append(_el("B", s.b_k[t, 0, j], s.b_n[t, 0, j]) if s.b_k[t, 0, j] != NONE else "")
        elif s.loading[t, 0, j]:
            cols.append(_el("B", s.b_k[t, 0, j], s.b_n[t, 0, j]) if df == "ws"
                        else _el("A", s.a_m[t, 0, j], s.a_k[t, 0, j]))
        else:
            cols.append("")
    return rows, cols


def text_lines(run: MicroRun) -> Iterator[str]:
    """The view, line by line (module docstring)."""
    if run.states is None:
        raise ValueError("text_lines needs a run simulated with record=True")
    yield from describe(run)
    legend = ("* useful MAC   ~ padding token   . output accumulating   o output complete   (blank) idle"
              if run.dataflow == "os"
              else "* useful MAC   ~ padding token   w loading stationary operand   . holding it   (blank) idle")
    yield f"legend: {legend}"
    events: dict[int, list[str]] = {}
    for f in run.folds:
        for m in range(f.out_cycle.shape[0]):
            for n in range(f.out_cycle.shape[1]):
                c = int(f.out_cycle[m, n])
                if c >= 0:
                    events.setdefault(c, []).append((f, f.m0 + m, f.n0 + n))
    verbose = run.cols <= VERBOSE_COLS
    for t in range(run.cycles):
        yield ""
        yield from _cycle(run, t, events.get(t, []), verbose)
    yield ""
    yield "useful MACs per fold:"
    for f in run.folds:
        pes = run.rows * run.cols
        yield (f"  fold {f.index + 1}" + (f" (group {f.group})" if run.gemm.groups > 1 else "")
               + f": {f.used_rows}x{f.used_cols} of {run.rows}x{run.cols} PEs used, "
               f"{int(f.macs.sum()):,} MACs in {f.cycles} cycles = {f.macs.sum() / (f.cycles * pes):.0%} "
               f"utilization")


def _cycle(run: MicroRun, t: int, events: list, verbose: bool) -> Iterator[str]:
    s = run.states
    f = run.folds[int(s.fold[t])]
    yield (f"cycle {t + 1}/{run.cycles}   fold {f.index + 1}/{len(run.folds)}, cycle "
           f"{int(s.fold_cycle[t]) + 1}/{f.cycles}")
    rows_in, cols_in = _entering(run, t)
    cells = [[_state(run, t, i, j) for j in range(run.cols)] for i in range(run.rows)]
    left_w = max([len(x) for x in rows_in] + [0])
    prefix = (left_w + 2) if left_w else 0
    if verbose:
        width = max([len(m) + len(c) for row in cells for m, c in row] + [len(x) + 2 for x in cols_in] + [4])
        if any(cols_in):
            yield " " * (prefix + 4) + " ".join(f"v {x}".ljust(width) if x else " " * width for x in cols_in)
        yield " " * (prefix + 4) + " ".join(f"c{j}".ljust(width) for j in range(run.cols))
        for i, row in enumerate(cells):
            lead = (f"{rows_in[i]} >".rjust(prefix) if rows_in[i] else " " * prefix) if prefix else ""
            yield f"{lead}r{i:<3}" + " ".join((m + c).ljust(width) for m, c in row).rstrip()
    else:
        for i, row in enumerate(cells):
            lead = (f"{rows_in[i]} >".rjust(prefix) if rows_in[i] else " " * prefix) if prefix else ""
            yield f"{lead}r{i:<3}" + "".join(m for m, _ in row)
    if events:
        finals = [(m, n) for ff, m, n in events if not ff.partial]
        partials = [(m, n) for ff, m, n in events if ff.partial]
        group = run.output.reshape((-1, run.gemm.M, run.gemm.N))[f.group]
        verb = "complete in its PE" if run.dataflow == "os" else "leaves the array"
        if finals:
            shown = ", ".join(f"O{m},{n}={group[m, n]:g}" for m, n in finals[:8])
            more = f" (+{len(finals) - 8} more)" if len(finals) > 8 else ""
            yield f"  output {verb}: {shown}{more}"
        if partials:
            k1 = f.row_offset + f.used_rows
            shown = ", ".join(f"O{m},{n}={_running_sum(run, f.group, m, n, k1):g}" for m, n in partials[:8])
            more = f" (+{len(partials) - 8} more)" if len(partials) > 8 else ""
            yield (f"  partial sum (running sum over k 0..{k1 - 1} of {run.gemm.K}; this fold adds k "
                   f"{f.row_offset}..{k1 - 1}) leaves to the ofmap buffer: {shown}{more}")
