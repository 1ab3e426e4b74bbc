"""An animated GIF written one frame at a time, so a long animation never sits in memory.

Contract: ``GifWriter(target)`` opens ``target`` (a path, or a binary file object it does not
close); ``add(frame, duration_ms, rgb=None)`` appends a
palette ("P") image of the first frame's size and ``close()`` ends the file (``with`` does it).
The writer keeps only the previous frame: each frame after the first is cropped to the box
where it differs from the previous one (``rgb``: the frames' unquantized pixels, compared
instead of the palette images) and written with its own colour table and disposal 1 (leave the
rest in place), so the GIF shows every frame exactly as drawn up to its palette.

Why not ``Image.save(save_all=True, append_images=...)``: Pillow's GIF encoder collects every
frame before it writes one (to merge identical frames), about 0.6 MB per 760x844 frame, 1.5 GB
for the largest animation ``tessera animate`` draws. This writer uses Pillow's frame encoder
through its public legacy helpers (``GifImagePlugin.getheader`` / ``getdata``), one frame at a
time.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = ["GifWriter"]


class GifWriter:
    """Streams frames into an animated GIF (module docstring)."""

    def __init__(self, target: str | Path | IO[bytes], *, loop: int = 0):
        self.loop = loop
        self.frames = 0
        self._owned = isinstance(target, (str, Path))
        self._fp = Path(target).open("wb") if self._owned else target
        self._closed = False
        self._size: tuple[int, int] | None = None
        self._previous = None  # the previous frame's pixels, to crop the next one to what changed

    def add(self, frame, duration_ms: int, rgb=None) -> None:
        """Append ``frame`` (a "P" image), shown for ``duration_ms``; ``rgb``: its unquantized
        pixels (same size), compared with the previous frame's to find what changed."""
        from PIL import GifImagePlugin, ImageChops

        if frame.mode != "P":
            raise ValueError(f"GifWriter takes palette ('P') frames; found mode {frame.mode}")
        compare = rgb if rgb is not None else frame.convert("RGB")
        if self._size is None:
            self._size = frame.size
            header, _ = GifImagePlugin.getheader(frame.copy(), None, {"loop": self.loop,
                                                                     "duration": duration_ms})
            for chunk in header:
                self._fp.write(chunk)
            box = (0, 0, *frame.size)
        else:
            if frame.size != self._size:
                raise ValueError(f"frame {self.frames} is {frame.size}, the GIF is {self._size}")
            box = ImageChops.difference(self._previous, compare).getbbox() or (0, 0, 1, 1)
        part = frame.crop(box)  # a fresh image: saving the frame as a PNG left PNG encoder settings on it
        for chunk in GifImagePlugin.getdata(part, box[:2], duration=duration_ms, disposal=1,
                                            include_color_table=True):
            self._fp.write(chunk)
        self._previous = compare
        self.frames += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._fp.write(b";")  # the GIF trailer
        if self._owned:
            self._fp.close()

    def __enter__(self) -> "GifWriter":
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
