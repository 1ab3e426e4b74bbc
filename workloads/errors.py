"""One error type for every kind of bad input (YAML, presets, model configs, topology files).

Contract: loaders collect every problem they find into a ``Problems`` list and raise one
``ConfigError`` at the end. Each ``Problem`` names the file, the line where known, the dotted key
path, what was expected, what was found, and a "did you mean" where a name is close. The CLI
prints ``str(error)`` and exits with status 2; nothing else is printed, no traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Problem", "Problems", "ConfigError", "did_you_mean"]


@dataclass(frozen=True)
class Problem:
    file: str | None  # the file the bad value came from (None: built in Python)
    path: str  # dotted key path, e.g. "architecture.memory.dram.bandwidth"
    message: str  # expected vs found
    line: int | None = None
    hint: str | None = None  # e.g. "did you mean 'precision'?"

    def __str__(self) -> str:
        # a command-line flag is the user's input too: name the command, not Python
        where = self.file or ("tessera" if self.path.startswith("-") else "<python>")
        if self.line is not None:
            where += f":{self.line}"
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class ConfigError(Exception):
    """Bad input. ``problems`` lists every problem found; ``str()`` gives one per line."""

    def __init__(self, problems: Iterable[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem(None, "", problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class Problems:
    """Collects problems; ``raise_if_any()`` raises them all as one ``ConfigError``."""

    def __init__(self, file: str | None = None, lines: dict | None = None):
        self.file = file
        self.lines = lines or {}
        self.items: list[Problem] = []

    def add(self, path: str | tuple, message: str, hint: str | None = None,
            file: str | None = None, line: int | None = None) -> None:
        key = tuple(path) if isinstance(path, (tuple, list)) else tuple(p for p in path.split(".") if p)
        text = ".".join(str(k) for k in key)
        if line is None:
            line = self.line_of(key)
        self.items.append(Problem(file or self.file, text, message, line, hint))

    def extend(self, other: Iterable[Problem]) -> None:
        self.items.extend(other)

    def line_of(self, key: tuple) -> int | None:
        """Line of the deepest known prefix of ``key`` (a missing key points at its parent)."""
        for n in range(len(key), -1, -1):
            line = self.lines.get(tuple(key[:n]))
            if line is not None:
                return line
        return None

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError(self.items)


def did_you_mean(name: str, choices: Iterable[str]) -> str | None:
    """``"did you mean 'x'?"`` for the closest of ``choices``, or None if nothing is close."""
    choices = [str(c) for c in choices]
    name = str(name)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if not close:
        lowered = name.lower()
        close = [c for c in choices if c.lower() == lowered]
    if not close and len(name) >= 3:  # a prefix of a longer name: 'tpu' -> 'tpu_v1_like'
        stem = name.lower().rstrip("0123456789_-.")
        close = sorted((c for c in choices if stem and c.lower().startswith(stem)), key=len)[:1]
    if not close:
        close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f"did you mean '{close[0]}'?" if close else None
