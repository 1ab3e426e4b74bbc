"""Pictures of a micro-simulation: one PNG frame per cycle, an animated GIF, utilization heat maps.

Contract: ``write_animation(run, folder)`` needs a ``MicroRun`` recorded with ``record=True`` and
writes ``folder/frames/cycle_00000_title.png`` (the title frame), ``folder/frames/cycle_NNNNN.png``
(cycle NNNNN, counted from 1 as the frames and the text view count them),
``folder/animation.gif`` and ``folder/utilization.png`` (``simulator.micro.heatmaps``); it
returns their paths. The GIF has exactly ``1 + run.cycles`` frames: a title frame (the shape,
the fold count and the per-fold formula), then one frame per cycle, and ``run.cycles`` equals the
fold model's compute cycles (``FRAME_RULE``). Frames an earlier animation wrote into
``frames/`` (files named as this module names them, and nothing else) are removed first, also
with ``pngs=False``. Frames are streamed: drawn, saved and appended to the GIF one at a time
(``simulator.micro.gif``). Drawing is limited to ``MAX_DRAW_ARRAY`` x ``MAX_DRAW_ARRAY`` PEs and
``MAX_FRAMES`` cycles (``check_drawable``); cells carry text labels up to ``MAX_LABELLED`` PEs a
side.

What leaves the bottom of a ws/is array is labelled with its value: in every K-fold but the last
a partial sum (``psum O6,0=12``: the running sum over the reduction indices so far, as the ofmap
buffer holds it after adding this fold's part), in the last K-fold the final output
(``O6,0=35``, an element of ``A @ B``).

A frame is drawn by ``simulator.micro.frame`` (Pillow, matplotlib's DejaVu font).
"""

from __future__ import annotations

import re
from pathlib import Path

from architectures.systolic import fold_plan
from simulator.micro.frame import MAX_LABELLED, _a, _shape, bottom_labels, describe, render_frames
from simulator.micro.heatmaps import write_heatmaps
from simulator.micro.systolic import MAX_ARRAY, MicroRun
from workloads.errors import ConfigError, Problem
from workloads.ops import GemmShape

__all__ = ["write_animation", "write_heatmaps", "render_frames", "check_drawable", "describe",
           "frame_name", "bottom_labels", "clear_frames", "gif_bytes", "FRAME_RULE", "TITLE_FRAMES",
           "TITLE_FRAME", "MAX_FRAMES", "MAX_DRAW_ARRAY", "MAX_LABELLED"]

TITLE_FRAMES = 1
FRAME_RULE = "frames = 1 title frame + 1 frame per cycle (the fold model's compute cycles)"
MAX_FRAMES = 1000  # cycles drawn; one frame each
MAX_DRAW_ARRAY = MAX_ARRAY
TITLE_FRAME = "cycle_00000_title.png"  # sorts before cycle_00001.png
_OUR_FRAMES = re.compile(r"cycle_\d{5}(_title)?\.png|title\.png")  # what this module writes (and wrote)


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
                                  f"or a larger array, or --heatmap for the utilization heat maps "
                                  f"alone (they need no frames)"))
    return cycles


def frame_name(n: int) -> str:
    """The file of frame n of ``render_frames`` (0: the title frame, n: cycle n)."""
    return TITLE_FRAME if n == 0 else f"cycle_{n:05d}.png"


def clear_frames(folder: str | Path) -> int:
    """Remove the frames an earlier animation wrote into ``folder/frames`` (only files named as
    ``frame_name`` names them, or the ``title.png`` of earlier versions), and the folder if that
    leaves it empty; return how many files were removed."""
    frames_dir = Path(folder) / "frames"
    if not frames_dir.is_dir():
        return 0
    removed = 0
    for path in frames_dir.iterdir():
        if _OUR_FRAMES.fullmatch(path.name) and path.is_file():
            path.unlink()
            removed += 1
    if not any(frames_dir.iterdir()):
        frames_dir.rmdir()
    return removed


def _stream(run: MicroRun, writer, *, frame_ms: int, title_ms: int, frames_dir: Path | None) -> list[Path]:
    """Draw every frame once: save it as a PNG into ``frames_dir`` (None: no PNGs) and append it
    to the GIF ``writer``; return the PNG paths."""
    from PIL import Image

    written: list[Path] = []
    for n, img in enumerate(render_frames(run)):
        # a frame has a few flat colours and anti-aliased text: a 96-colour palette loses nothing
        # visible and makes both the PNG and the GIF frame several times faster to write
        small = img.quantize(colors=96, method=Image.Quantize.FASTOCTREE)
        if frames_dir is not None:
            path = frames_dir / frame_name(n)
            small.save(path)
            written.append(path)
        writer.add(small, title_ms if n == 0 else frame_ms, rgb=img)
    return written


def gif_bytes(run: MicroRun, *, frame_ms: int = 350, title_ms: int = 2500) -> bytes:
    """The animated GIF of ``write_animation`` as bytes (for a notebook: ``MicroRun.gif()``)."""
    import io

    from simulator.micro.gif import GifWriter

    buffer = io.BytesIO()
    with GifWriter(buffer) as writer:
        _stream(run, writer, frame_ms=frame_ms, title_ms=title_ms, frames_dir=None)
    return buffer.getvalue()


def write_animation(run: MicroRun, folder: str | Path, *, frame_ms: int = 350, title_ms: int = 2500,
                    pngs: bool = True) -> list[Path]:
    """Write the frames, the GIF and the heat maps (module docstring); return the paths."""
    from simulator.micro.gif import GifWriter

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clear_frames(folder)
    frames_dir = folder / "frames" if pngs else None
    if frames_dir is not None:
        frames_dir.mkdir(exist_ok=True)
    gif = folder / "animation.gif"
    with GifWriter(gif) as writer:
        written = _stream(run, writer, frame_ms=frame_ms, title_ms=title_ms, frames_dir=frames_dir)
    written.append(gif)
    written.append(write_heatmaps(run, folder / "utilization.png"))
    return written
