"""Pictures of a micro-simulation: one PNG frame per cycle, an animated GIF, utilization heat maps.

Contract: ``write_animation(run, folder)`` needs a ``MicroRun`` recorded with ``record=True`` and
writes ``folder/frames/title.png``, ``folder/frames/cycle_NNNNN.png`` (one per cycle),
``folder/animation.gif`` and ``folder/utilization.png``; it returns their paths. The GIF has
exactly ``1 + run.cycles`` frames: a title frame (the shape, the fold count and the per-fold
formula), then one frame per cycle, and ``run.cycles`` equals the fold model's compute cycles
(``FRAME_RULE``); earlier ``cycle_*.png`` files in ``frames/`` are removed first. Drawing is
limited to ``MAX_DRAW_ARRAY`` x ``MAX_DRAW_ARRAY`` PEs and ``MAX_FRAMES`` cycles
(``check_drawable``); cells carry text labels up to ``MAX_LABELLED`` PEs a side.

Frames are drawn with Pillow in matplotlib's DejaVu font (fast enough for hundreds of frames);
the heat maps are a matplotlib figure built directly (``matplotlib.figure.Figure`` with an Agg
canvas), never through pyplot, so nothing changes the process's backend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from architectures.systolic import fold_plan
from simulator.micro.systolic import MAX_ARRAY, NONE, PAD, MicroRun
from workloads.errors import ConfigError, Problem
from workloads.ops import GemmShape

__all__ = ["write_animation", "write_heatmaps", "render_frames", "check_drawable", "describe",
           "FRAME_RULE", "TITLE_FRAMES", "MAX_FRAMES", "MAX_DRAW_ARRAY", "MAX_LABELLED"]

TITLE_FRAMES = 1
FRAME_RULE = "frames = 1 title frame + 1 frame per cycle (the fold model's compute cycles)"
MAX_FRAMES = 1000  # cycles drawn; one frame each
MAX_DRAW_ARRAY = MAX_ARRAY
MAX_LABELLED = 8  # arrays up to 8x8 get text in every cell
MAX_HEATMAP_FOLDS = 48

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

ROLES = {
    "os": "A streams in from the left, B from the top; each PE keeps its output O[m,n]",
    "ws": "weights B[k,n] are shifted in from the top (R cycles), A[m,k] streams from the left, "
          "partial sums flow down",
    "is": "inputs A[m,k] are shifted in from the top (R cycles), B[k,n] streams from the left, "
          "partial sums flow down",
}


def check_drawable(gemm: GemmShape, rows: int, cols: int, dataflow: str, *, file: str | None = None,
                   gemm_path: str = "--gemm", array_path: str = "--array") -> int:
    """Raise ``ConfigError`` naming the limit when a run is too large to draw; return its cycles.
    ``file``/``gemm_path``/``array_path`` say where the GEMM and the array size came from."""
    if rows > MAX_DRAW_ARRAY or cols > MAX_DRAW_ARRAY:
        raise ConfigError(Problem(file, array_path, f"{_a(rows)} {rows}x{cols} array is too large to "
                                  f"draw; the limit is {MAX_DRAW_ARRAY}x{MAX_DRAW_ARRAY} PEs"))
    cycles = fold_plan(gemm, rows, cols, dataflow).compute_cycles
    if cycles > MAX_FRAMES:
        raise ConfigError(Problem(file, gemm_path, f"{_shape(gemm)} on {_a(rows)} {rows}x{cols} array "
                                  f"({dataflow}) takes {cycles:,} cycles, too many to draw: the limit is "
                                  f"{MAX_FRAMES:,} cycles (one frame per cycle); use a smaller GEMM "
                                  f"or a larger array"))
    return cycles


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
    return [
        f"{_shape(g)} on {_a(R)} {R}x{C} array, {df} dataflow",
        ROLES[df],
        f"folds = {groups}ceil({dims[0]}/R) x ceil({dims[1]}/C) = {groups}{plan.row_folds} x "
        f"{plan.col_folds} = {plan.folds}",
        f"cycles per fold = {formula} = {per} = {plan.fold_cycles}",
        f"fold model: {plan.compute_cycles:,} cycles; simulated: {run.cycles:,} cycles",
        f"mapping efficiency {plan.mapping_efficiency:.0%}, utilization {run.utilization:.1%} "
        f"({run.useful_macs:,} useful MACs)",
    ]


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


def _edges(run: MicroRun, t: int) -> tuple[list[str], list[str], list[str]]:
    """Labels for what enters each row (left), each column (top) and leaves each column (bottom)."""
    s, R, C, df = run.states, run.rows, run.cols, run.dataflow
    left, top, bottom = [""] * R, [""] * C, [""] * C
    partial = run.folds[int(s.fold[t])].partial
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
        if df != "os" and s.o_m[t, R - 1, j] >= 0:
            kind = "psum " if partial else ""  # partial sums go to the ofmap buffer to be added
            bottom[j] = f"v {kind}O{s.o_m[t, R - 1, j]},{s.o_n[t, R - 1, j]}={s.value[t, R - 1, j]:g}"
    return left, top, bottom


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
        self.height = self.top + grid_h + 170
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
        macs = int(self.macs_upto[t])
        outs = int(np.searchsorted(self.final_out, t, side="right"))
        total_out = run.gemm.groups * run.gemm.M * run.gemm.N
        footer = (f"useful MACs {macs:,}/{run.gemm.macs:,}   final outputs {outs:,}/{total_out:,}   this fold: "
                  f"rows {f.row_offset}..{f.row_offset + f.used_rows - 1}, cols {f.col_offset}.."
                  f"{f.col_offset + f.used_cols - 1} of the mapped GEMM")
        y = y0 + R * cell + 44
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


def write_animation(run: MicroRun, folder: str | Path, *, frame_ms: int = 350, title_ms: int = 2500,
                    pngs: bool = True) -> list[Path]:
    """Write the frames, the GIF and the heat maps (module docstring); return the paths."""
    from PIL import Image

    folder = Path(folder)
    frames_dir = folder / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    if pngs:
        for stale in frames_dir.glob("cycle_*.png"):  # an earlier, longer animation's frames
            stale.unlink()
    written: list[Path] = []
    images = []
    for n, img in enumerate(render_frames(run)):
        # a frame has a few flat colours and anti-aliased text: a 96-colour palette loses nothing
        # visible and makes both the PNG and the GIF frame several times faster to write
        img = img.quantize(colors=96, method=Image.Quantize.FASTOCTREE)
        if pngs:
            path = frames_dir / ("title.png" if n == 0 else f"cycle_{n - 1:05d}.png")
            img.save(path)
            written.append(path)
        images.append(img)
    gif = folder / "animation.gif"
    images[0].save(gif, save_all=True, append_images=images[1:], loop=0, optimize=False,
                   duration=[title_ms] + [frame_ms] * (len(images) - 1), disposal=1)
    written.append(gif)
    written.append(write_heatmaps(run, folder / "utilization.png"))
    return written


def write_heatmaps(run: MicroRun, path: str | Path) -> Path:
    """Per fold, which PEs did useful MACs (fraction of the fold's cycles), and all folds together."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    folds = run.folds[:MAX_HEATMAP_FOLDS]
    panels = len(folds) + 1
    ncol = min(panels, 6)
    nrow = -(-panels // ncol)
    side = 2.3
    fig = Figure(figsize=(ncol * side + 1.0, nrow * side + 0.9), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrow, ncol, squeeze=False)
    total = sum(f.macs for f in run.folds) / run.cycles
    image = None
    for n, ax in enumerate(axes.flat):
        if n >= panels:
            ax.set_axis_off()
            continue
        if n == 0:
            data, title = total, f"all {len(run.folds)} folds\nutilization {run.utilization:.0%}"
        else:
            f = folds[n - 1]
            data = f.utilization
            title = (f"fold {f.index + 1}: {f.used_rows}x{f.used_cols} used\n"
                     f"{int(f.macs.sum()):,} MACs / {f.cycles} cycles = "
                     f"{f.macs.sum() / (f.cycles * run.rows * run.cols):.0%}")
        image = ax.imshow(data, vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
        ax.set_title(title, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    more = (f" (first {MAX_HEATMAP_FOLDS} of {len(run.folds)} folds)"
            if len(run.folds) > MAX_HEATMAP_FOLDS else "")
    fig.suptitle(f"{run.dataflow}: {_shape(run.gemm)} on {run.rows}x{run.cols}: fraction of cycles each "
                 f"PE did a useful MAC{more}", fontsize=9)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="useful MACs / cycles")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
