"""A progress bar on stderr: points done/total, failures, points per minute and time left.

Contract: ``progress(total, label, quiet=...)`` is a context manager yielding an object with
``advance(status)``. It draws nothing when ``quiet`` or when stderr is not a terminal, so logs
and pipes stay clean.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["progress", "Counter"]


class Counter:
    """Counts of finished points by status, and the rate since the start."""

    def __init__(self, total: int):
        self.total = total
        self.done = 0
        self.by_status: dict[str, int] = {}
        self.t0 = time.perf_counter()
        self._bar = None
        self._task = None

    def advance(self, status: str = "ok") -> None:
        self.done += 1
        self.by_status[status] = self.by_status.get(status, 0) + 1
        if self._bar is not None:
            failed = self.done - self.by_status.get("ok", 0)
            self._bar.update(self._task, advance=1, failed=failed, rate=self.per_minute)

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.t0

    @property
    def per_minute(self) -> float:
        return 60.0 * self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0


@contextmanager
def progress(total: int, label: str, *, quiet: bool = False) -> Iterator[Counter]:
    counter = Counter(total)
    if quiet or not sys.stderr.isatty() or total <= 0:
        yield counter
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=30), MofNCompleteColumn(),
                   TextColumn("{task.fields[failed]} failed"), TextColumn("{task.fields[rate]:.0f}/min"),
                   TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True), transient=False)
    with bar:
        counter._bar = bar
        counter._task = bar.add_task(label, total=total, failed=0, rate=0.0)
        yield counter
