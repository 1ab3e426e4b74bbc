"""One frame of a micro-simulation's animation, drawn with Pillow (``simulator.micro.draw`` writes
the files).

Contract: ``render_frames(run)`` yields the PIL images of a ``MicroRun`` recorded with
``record=True``: a title frame (``describe``: the shape, the fold count, the per-fold formula),
then one frame per cycle: each PE coloured by its state (``COLORS``), labelled with the elements
it holds up to ``MAX_LABELLED`` PEs a side, what enters each row and column, and what leaves the
bottom of a ws/is array (``bottom_labels``: a partial sum's running value or a final output's
value), and a footer of counts. Text is in matplotlib's DejaVu font; the background (grid,
names, legend) is drawn once per run, so a frame costs a few milliseconds.
"""

from __future__ import annotations

import numpy as np

from architectures.systolic import fold_plan
from simulator.micro.systolic import NONE, PAD, MicroRun
from workloads.ops import GemmShape

__all__ = ["render_frames", "describe", "bottom_labels", "COLORS", "LEGEND", "ROLES", "MAX_LABELLED"]

MAX_LABELLED = 8  # arrays up to 8x8 get text in every cell

COLORS = {  # state of a PE in a frame
    "mac": "#4C72B0",  # a useful multiply-accumulate this cycle
    "pad": "#C8C8C8",  # a padding token passes (a lane beyond the GEMM's edge)
    "loading": "#8BC78B",  # the stationary operand is being shifted in
    "holding": "#DCEFD9",  # holds its stationary operand, nothing to multiply this cycle
    "partial": "#DCE6F2",  # os: accumulating, no product this cycle
    "done": "#F6C28B",  # os: output complete, waiting to drain
    "idle": "#FFFFFF",
}
LEGEND = {"mac": "useful MAC", "pad": "padding token", "loading": "loading stationary operand",
          "holding": "holding stationary operand", "partial": "partial output (os)",
          "done": "output complete (os)", "idle": "idle"}

OS_DRAIN = ("os: the outputs stay in their PEs; a fold ends with its last MAC, the accumulators drain "
            "while the next fold runs, and the last fold's drain is not counted (SCALE-Sim's convention)")

ROLES = {
    "os": "A streams in from the left, B from the top; each PE keeps its output O[m,n]",
    "ws": "weights B[k,n] are shifted in from the top (R cycles), A[m,k] streams from the left, "
          "partial sums flow down",
    "is": "inputs A[m,k] are shifted in from the top (R cycles), B[k,n] streams from the left, "
          "partial sums flow down",
}


def _a(n: int) -> str:
    """The article before a number: 'an 8x8 array', 'a 4x4 array'."""
    return "an" if str(n).startswith("8") or str(n) in ("11", "18") else "a"


def _shape(g: GemmShape) -> str:
    return f"GEMM {g.M}x{g.K}x{g.N}" + (f" x{g.groups} groups" if g.groups > 1 else "") + " (MxKxN)"


def describe(run: MicroRun) -> list[str]:
    """The title frame's lines (also printed by the text view): shape, folds, formula, totals."""
    g, R, C, df = run.gemm, run.rows, run.cols, run.dataflow
    plan = fold_plan(g, R, C, df)
    dims = {"os": ("M", "N", "K"), "ws": ("K", "N", "M"), "is": ("K", "M", "N")}[df]
    formula = ("K + R + C - 2" if df == "os" else f"2R + C + {dims[2]} - 2")
    per = (f"{g.K} + {R} + {C} - 2" if df == "os" else f"2x{R} + {C} + {plan.T} - 2")
    groups = f"{g.groups} groups x " if g.groups > 1 else ""
    drain = ([OS_DRAIN] if df == "os" else [])
    return [
        f"{_shape(g)} on {_a(R)} {R}x{C} array, {df} dataflow",
        ROLES[df],
        f"folds = {groups}ceil({dims[0]}/R) x ceil({dims[1]}/C) = {groups}{plan.row_folds} x "
        f"{plan.col_folds} = {plan.folds}",
        f"cycles per fold = {formula} = {per} = {plan.fold_cycles}",
        f"fold model: {plan.compute_cycles:,} cycles; simulated: {run.cycles:,} cycles",
        f"mapping efficiency {plan.mapping_efficiency:.0%}, utilization {run.utilization:.1%} "
        f"({run.useful_macs:,} useful MACs)",
    ] + drain


def _categories(run: MicroRun, t: int) -> np.ndarray:
    """Per PE, the index into COLORS of its state in cycle t."""
    s = run.states
    keys = list(COLORS)
    cat = np.full((run.rows, run.cols), keys.index("idle"), dtype=np.int64)
    if run.dataflow == "os":
        started = s.terms[t] > 0
        real = s.o_m[t] >= 0
        cat[started & real] = keys.index("partial")
        cat[(s.terms[t] >= run.gemm.K) & real] = keys.index("done")
        passing = (s.a_k[t] != NONE) | (s.b_k[t] != NONE)
    else:
        stationary = s.b_k[t] if run.dataflow == "ws" else s.a_k[t]
        cat[stationary >= 0] = keys.index("holding")
        cat[s.loading[t] & (stationary >= 0)] = keys.index("loading")
        cat[stationary == PAD] = keys.index("pad")  # a padding element in a lane beyond the edge
        passing = (s.b_n[t] != NONE) if run.dataflow == "is" else (s.a_m[t] != NONE)
    cat[passing & ~s.mac[t]] = keys.index("pad")
    cat[s.mac[t]] = keys.index("mac")
    return cat


def _el(name: str, x: int, y: int) -> str:
    if x == PAD or y == PAD:
        return "pad"
    return f"{name}{x},{y}"


def _cell_label(run: MicroRun, t: int, i: int, j: int) -> str:
    s = run.states
    lines = []
    if s.a_m[t, i, j] != NONE:
        lines.append(_el("A", s.a_m[t, i, j], s.a_k[t, i, j]))
    if s.b_k[t, i, j] != NONE:
        lines.append(_el("B", s.b_k[t, i, j], s.b_n[t, i, j]))
    if run.dataflow == "os":
        if s.o_m[t, i, j] >= 0 and s.terms[t, i, j] > 0:
            lines.append(f"O{s.o_m[t, i, j]},{s.o_n[t, i, j]}:{s.terms[t, i, j]}/{run.gemm.K}")
    elif s.o_m[t, i, j] >= 0:
        lines.append(f"O{s.o_m[t, i, j]},{s.o_n[t, i, j]}")
    return "\n".join(lines)


def _running_sum(run: MicroRun, group: int, m: int, n: int, k_end: int) -> float:
    """O[m, n] summed over the reduction indices 0..k_end-1: what the ofmap buffer holds for it
    once a K-fold that ends at k_end has been added."""
    g = run.gemm
    A = np.asarray(run.A).reshape(g.groups, g.M, g.K)
    B = np.asarray(run.B).reshape(g.groups, g.K, g.N)
    return float(A[group, m, :k_end] @ B[group, :k_end, n])


def bottom_labels(run: MicroRun, t: int) -> list[tuple[int, int, float, bool] | None]:
    """ws/is: per column, what leaves the bottom row in cycle t: ``(m, n, value, partial)``, None
    for nothing. ``partial``: a partial sum of a K-fold that is not the last; its ``value`` is the
    running sum over the K-folds so far (k 0 .. the fold's last k), as the ofmap buffer holds it.
    Otherwise ``value`` is the final output, the element of ``A @ B``."""
    s, R = run.states, run.rows
    f = run.folds[int(s.fold[t])]
    out: list[tuple[int, int, float, bool] | None] = [None] * run.cols
    if run.dataflow == "os":
        return out
    final = np.asarray(run.output).reshape(run.gemm.groups, run.gemm.M, run.gemm.N)[f.group]
    for j in range(run.cols):
        m, n = int(s.o_m[t, R - 1, j]), int(s.o_n[t, R - 1, j])
        if m < 0 or n < 0:
            continue
        if f.partial:
            value = _running_sum(run, f.group, m, n, f.row_offset + f.used_rows)
        else:
            value = float(final[m, n])
        out[j] = (m, n, value, f.partial)
    return out


def _edges(run: MicroRun, t: int) -> tuple[list[str], list[str], list[str]]:
    """Labels for what enters each row (left), each column (top) and leaves each column (bottom)."""
    s, R, C, df = run.states, run.rows, run.cols, run.dataflow
    left, top, bottom = [""] * R, [""] * C, [""] * C
    for i in range(R):
        if df == "is":
            if s.b_k[t, i, 0] != NONE:
                left[i] = _el("B", s.b_k[t, i, 0], s.b_n[t, i, 0]) + " >"
        elif s.a_m[t, i, 0] != NONE:
            left[i] = _el("A", s.a_m[t, i, 0], s.a_k[t, i, 0]) + " >"
    for j in range(C):
        if df == "os" and s.b_k[t, 0, j] != NONE:
            top[j] = _el("B", s.b_k[t, 0, j], s.b_n[t, 0, j]) + " v"
        elif df == "ws" and s.loading[t, 0, j]:
            top[j] = _el("B", s.b_k[t, 0, j], s.b_n[t, 0, j]) + " v"
        elif df == "is" and s.loading[t, 0, j]:
            top[j] = _el("A", s.a_m[t, 0, j], s.a_k[t, 0, j]) + " v"
    for j, leaving in enumerate(bottom_labels(run, t)):
        if leaving is not None:
            m, n, value, partial = leaving
            bottom[j] = f"v {'psum ' if partial else ''}O{m},{n}={value:g}"
    return left, top, bottom


def _bottom_caption(run: MicroRun, t: int) -> str:
    """What the values below a ws/is array are, in this cycle's fold."""
    f = run.folds[int(run.states.fold[t])]
    k1 = f.row_offset + f.used_rows - 1
    if f.partial:
        return (f"psum: running partial sum over k 0..{k1} (this K-fold adds k {f.row_offset}..{k1}), "
                f"kept in the ofmap buffer")
    if f.row_offset:
        return (f"leaving: final outputs (this last K-fold adds k {f.row_offset}..{k1} to the partial "
                f"sums in the ofmap buffer)")
    return f"leaving: final outputs (k 0..{k1})"


def _fonts() -> dict[str, object]:
    """matplotlib's DejaVu fonts for Pillow (both ship with matplotlib)."""
    from matplotlib import font_manager
    from PIL import ImageFont

    regular = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"))
    bold = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans", weight="bold"))
    return {"title": ImageFont.truetype(bold, 19), "big": ImageFont.truetype(bold, 24),
            "text": ImageFont.truetype(regular, 14), "small": ImageFont.truetype(regular, 12),
            "cell": ImageFont.truetype(regular, 12)}


class _FrameDrawer:
    """Draws frames with Pillow on a background drawn once (the grid lines, names and legend are
    the same in every frame); text in matplotlib's DejaVu font. Pillow rather than a matplotlib
    figure per frame: a frame costs a few milliseconds instead of a tenth of a second, which
    matters at hundreds of frames."""

    def __init__(self, run: MicroRun):
        from PIL import Image, ImageDraw

        self.run = run
        R, C = run.rows, run.cols
        self.macs_upto = np.cumsum(run.states.mac.sum(axis=(1, 2)))
        self.final_out = np.array(sorted(e[0] for e in run.output_events() if not e[4]))
        self.labelled = max(R, C) <= MAX_LABELLED
        self.named = max(R, C) <= 16
        self.fonts = _fonts()
        self.cell = 92 if self.labelled else max(14, 560 // max(R, C))
        self.left = 150 if self.labelled else 60
        self.top = 130
        grid_w, grid_h = C * self.cell, R * self.cell
        self.width = max(760, self.left + grid_w + 60)
        self.height = self.top + grid_h + 180
        self.x0 = self.left + max(0, (self.width - 60 - self.left - grid_w) // 2)
        self.y0 = self.top
        bg = Image.new("RGB", (self.width, self.height), "white")
        d = ImageDraw.Draw(bg)
        d.text((self.width // 2, 44), ROLES[run.dataflow], fill="#333333", font=self.fonts["small"], anchor="mt")
        if self.named:
            for i in range(R):
                d.text((self.x0 - 6, self.y0 + i * self.cell + self.cell // 2), f"r{i}", fill="#555555",
                       font=self.fonts["small"], anchor="rm")
            for j in range(C):
                d.text((self.x0 + j * self.cell + self.cell // 2, self.y0 - 4), f"c{j}", fill="#555555",
                       font=self.fonts["small"], anchor="md")
        keys = [k for k in COLORS if k in self._legend_keys()]
        x, y = 20, self.height - 34
        for k in keys:
            d.rectangle((x, y, x + 14, y + 14), fill=COLORS[k], outline="#888888")
            d.text((x + 20, y + 7), LEGEND[k], fill="#333333", font=self.fonts["small"], anchor="lm")
            x += 34 + int(d.textlength(LEGEND[k], font=self.fonts["small"]))
        self.background = bg

    def _legend_keys(self) -> set[str]:
        if self.run.dataflow == "os":
            return {"mac", "pad", "partial", "done", "idle"}
        return {"mac", "pad", "loading", "holding", "idle"}

    def title_frame(self):
        from PIL import Image, ImageDraw

        img = Image.new("RGB", (self.width, self.height), "white")
        d = ImageDraw.Draw(img)
        y = self.height // 5
        d.text((self.width // 2, y), "Tessera systolic micro-simulator", fill="black", font=self.fonts["big"],
               anchor="mt")
        y += 60
        for line in describe(self.run):
            for part in _wrap(line, self.fonts["text"], self.width - 60, d):
                d.text((self.width // 2, y), part, fill="black", font=self.fonts["text"], anchor="mt")
                y += 22
            y += 12
        d.text((self.width // 2, y + 30), f"then one frame per cycle ({self.run.cycles:,} frames)",
               fill="#555555", font=self.fonts["text"], anchor="mt")
        return img

    def frame(self, t: int):
        from PIL import ImageDraw

        run, s = self.run, self.run.states
        R, C, cell, x0, y0 = run.rows, run.cols, self.cell, self.x0, self.y0
        f = run.folds[int(s.fold[t])]
        img = self.background.copy()
        d = ImageDraw.Draw(img)
        where = f"fold {f.index + 1}/{len(run.folds)}" + (f" (group {f.group})" if run.gemm.groups > 1 else "")
        d.text((self.width // 2, 12), f"{run.dataflow}: cycle {t + 1}/{run.cycles}   {where}, cycle "
               f"{int(s.fold_cycle[t]) + 1}/{f.cycles}", fill="black", font=self.fonts["title"], anchor="mt")
        colors = list(COLORS.values())
        cats = _categories(run, t)
        for i in range(R):
            for j in range(C):
                box = (x0 + j * cell, y0 + i * cell, x0 + (j + 1) * cell, y0 + (i + 1) * cell)
                d.rectangle(box, fill=colors[cats[i, j]], outline="#888888")
                if self.labelled:
                    label = _cell_label(run, t, i, j)
                    if label:
                        fill = "white" if cats[i, j] == 0 else "black"
                        d.multiline_text(((box[0] + box[2]) // 2, (box[1] + box[3]) // 2), label, fill=fill,
                                         font=self.fonts["cell"], anchor="mm", align="center", spacing=3)
        if self.labelled:
            left, top, bottom = _edges(run, t)
            for i, text in enumerate(left):
                if text:
                    d.text((x0 - 30, y0 + i * cell + cell // 2), text, fill="#333333", font=self.fonts["small"],
                           anchor="rm")
            for j, text in enumerate(top):
                if text:
                    d.text((x0 + j * cell + cell // 2, y0 - 22), text, fill="#333333", font=self.fonts["small"],
                           anchor="md")
            for j, text in enumerate(bottom):
                if text:
                    d.text((x0 + j * cell + cell // 2, y0 + R * cell + 6 + 14 * (j % 2)), text, fill="#333333",
                           font=self.fonts["small"], anchor="mt")
            if any(bottom):
                d.text((self.width // 2, y0 + R * cell + 38), _bottom_caption(run, t), fill="#555555",
                       font=self.fonts["small"], anchor="mt")
        macs = int(self.macs_upto[t])
        outs = int(np.searchsorted(self.final_out, t, side="right"))
        total_out = run.gemm.groups * run.gemm.M * run.gemm.N
        footer = (f"useful MACs {macs:,}/{run.gemm.macs:,}   final outputs {outs:,}/{total_out:,}   this fold: "
                  f"rows {f.row_offset}..{f.row_offset + f.used_rows - 1}, cols {f.col_offset}.."
                  f"{f.col_offset + f.used_cols - 1} of the mapped GEMM")
        y = y0 + R * cell + 60
        for part in _wrap(footer, self.fonts["text"], self.width - 40, d):
            d.text((self.width // 2, y), part, fill="black", font=self.fonts["text"], anchor="mt")
            y += 20
        return img


def _wrap(text: str, font, width: int, draw) -> list[str]:
    """Greedy word wrap to ``width`` pixels."""
    lines, line = [], ""
    for word in text.split(" "):
        trial = f"{line} {word}" if line else word
        if line and draw.textlength(trial, font=font) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    return lines + [line]


def render_frames(run: MicroRun):
    """Yield the PIL images of the animation: the title frame, then one per cycle."""
    if run.states is None:
        raise ValueError("render_frames needs a run simulated with record=True")
    drawer = _FrameDrawer(run)
    yield drawer.title_frame()
    for t in range(run.cycles):
        yield drawer.frame(t)
