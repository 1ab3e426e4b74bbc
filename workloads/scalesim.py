"""SCALE-Sim topology CSV files -> ``OpGraph``.

Contract: ``load_topology(path, fmt="conv" | "gemm", precision=None)`` reads a SCALE-Sim v3
topology file and returns one operator per row SCALE-Sim simulates, in file order, so that
Tessera's per-layer reports line up with SCALE-Sim's ``LayerID`` row for row. Any bad input
raises one ``ConfigError`` listing every problem with file, line and column.

Formats (the first line is a header and is skipped, as SCALE-Sim does; blank lines are skipped;
the trailing comma SCALE-Sim writes is optional here):

- ``conv``: ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels,
  Num Filter, Strides[, N:M]``. SCALE-Sim's IFMAP height/width already include any padding,
  so each row becomes a ``Conv2D`` with padding 0 and the same stride in both directions.
  A row whose name contains ``DP`` is a depthwise layer: SCALE-Sim expands it into one layer
  per channel, each with 1 channel and ``Num Filter`` filters, named ``<name>Channel_<i>``;
  this loader does the same (the children carry ``block=<name>``).
- ``gemm``: ``Layer, M, N, K[, N:M]``: a ``Linear`` with M tokens, K input and N output
  features, which is how SCALE-Sim maps it (an M x K ifmap, N filters of 1 x K, 1 channel).

SCALE-Sim simulates every layer on its own (each reads its own ifmap from DRAM), so every
operator gets its own graph input and the graph has no edges.

The optional ``N:M`` sparsity column is checked (two positive integers, N <= M) and recorded in
``graph.meta["sparsity"]``, but not applied: SCALE-Sim uses it only when ``[sparsity]
SparsitySupport`` is on, which Tessera rejects (see ``architectures.scalesim_cfg``); with
sparsity off SCALE-Sim ignores the column too. Rows with a name used before are renamed
``<name>#2``, ``<name>#3``, ... (SCALE-Sim identifies layers by position, Tessera by name).

Output size: Tessera computes ``(H - R) // stride + 1`` output rows (and columns), the windows
that fit in the IFMAP. SCALE-Sim computes ``ceil((H - R + stride) / stride)``, one more when
``H - R`` is not a multiple of the stride: its last window hangs past the IFMAP edge (it reads
nothing there but spends array cycles on it). Such layers are listed in
``graph.meta["scalesim_ofmap"]`` (name -> SCALE-Sim's and Tessera's output height and width),
so a caller can say why their numbers differ.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from workloads.errors import ConfigError, Problem, Problems
from workloads.graph import GraphError, OpGraph, PrecisionPolicy

__all__ = ["load_topology", "read_topology_rows", "CONV_COLUMNS", "GEMM_COLUMNS"]

CONV_COLUMNS: tuple[str, ...] = ("Layer name", "IFMAP Height", "IFMAP Width", "Filter Height",
                                 "Filter Width", "Channels", "Num Filter", "Strides")
GEMM_COLUMNS: tuple[str, ...] = ("Layer", "M", "N", "K")
SPARSITY_COLUMN = "Sparsity (N:M)"
FORMATS = ("conv", "gemm")


def _column(i: int, columns: tuple[str, ...]) -> str:
    name = columns[i] if i < len(columns) else SPARSITY_COLUMN
    return f"column {i + 1} ({name})"


def _read_text(path: Path) -> str:
    if not path.exists():
        raise ConfigError(Problem(str(path), "", "topology file not found"))
    if path.is_dir():
        raise ConfigError(Problem(str(path), "", "is a folder, expected a topology CSV file"))
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(Problem(str(path), "", f"not a text file (byte {exc.start} is not "
                                  f"UTF-8); expected a SCALE-Sim topology CSV")) from None
    except OSError as exc:
        raise ConfigError(Problem(str(path), "", f"cannot read the file: {exc.strerror}")) from None


def _looks_numeric(cells: list[str]) -> bool:
    return len(cells) > 1 and all(c.strip().isdigit() for c in cells[1:] if c.strip())


def read_topology_rows(path: str | Path, fmt: str = "conv") -> list[dict[str, Any]]:
    """The validated rows of a topology file, before depthwise expansion: one dict per row with
    ``name``, ``line``, each integer column under its header name, and ``sparsity`` if given."""
    if fmt not in FORMATS:
        raise ConfigError(Problem(str(path), "format", f"expected one of {', '.join(FORMATS)}, "
                                  f"found {fmt!r}"))
    p = Path(path)
    file = str(path)
    text = _read_text(p)
    lines = text.splitlines()
    probs = Problems(file)
    columns = CONV_COLUMNS if fmt == "conv" else GEMM_COLUMNS
    other = "gemm" if fmt == "conv" else "conv"
    if not any(line.strip() for line in lines):
        raise ConfigError(Problem(file, "", f"the file is empty; expected a header line and one "
                                  f"line per layer: {', '.join(columns)},"))
    header = next(csv.reader([lines[0]])) if lines else []
    header_cells = [c.strip() for c in header if c.strip()]
    if _looks_numeric(header_cells):
        probs.add("", "the first line must be the header (SCALE-Sim skips it); this one looks "
                  f"like a layer. Add a header line: {', '.join(columns)},", line=1)
    wrong_format_hint = None
    if fmt == "conv" and [c.upper() for c in header_cells[1:4]] == ["M", "N", "K"]:
        wrong_format_hint = ("the header says M, N, K: is this a GEMM topology? "
                             "(use -i gemm / scalesim_format: gemm)")
    if fmt == "gemm" and len(header_cells) >= 8:
        wrong_format_hint = ("the header has 8 columns: is this a convolution topology? "
                             "(use -i conv / scalesim_format: conv)")

    rows: list[dict[str, Any]] = []
    for lineno, line in enumerate(lines, start=1):
        if lineno == 1 or not line.strip():
            continue
        cells = [c.strip() for c in next(csv.reader([line]))]
        while cells and cells[-1] == "":
            cells.pop()  # SCALE-Sim's trailing comma (and any run of empty columns)
        n_req = len(columns)
        if len(cells) < n_req:
            probs.add("", f"too few columns: expected {n_req} ({', '.join(columns)}) and an "
                      f"optional sparsity ratio N:M, found {len(cells)}",
                      hint=wrong_format_hint, line=lineno)
            continue
        if len(cells) > n_req + 1:
            probs.add("", f"too many columns: expected {n_req} ({', '.join(columns)}) and an "
                      f"optional sparsity ratio N:M, found {len(cells)}",
                      hint=wrong_format_hint or (f"is this a {other} topology?" if fmt == "gemm" else None),
                      line=lineno)
            continue
        row: dict[str, Any] = {"name": cells[0], "line": lineno}
        ok = True
        if not cells[0]:
            probs.add(_column(0, columns), "expected a layer name, found an empty cell", line=lineno)
            ok = False
        for i in range(1, n_req):
            raw = cells[i]
            try:
                value = int(raw)
            except ValueError:
                probs.add(_column(i, columns), f"expected a positive integer, found {raw!r}", line=lineno)
                ok = False
                continue
            if value <= 0:
                probs.add(_column(i, columns), f"expected a positive integer, found {value}", line=lineno)
                ok = False
                continue
            row[columns[i]] = value
        if len(cells) == n_req + 1:
            ratio = _sparsity(cells[n_req])
            if ratio is None:
                probs.add(_column(n_req, columns), f"expected a sparsity ratio N:M with 1 <= N <= M "
                          f"(e.g. 2:4), found {cells[n_req]!r}", line=lineno)
                ok = False
            else:
                row["sparsity"] = ratio
        if ok and fmt == "conv":
            # SCALE-Sim asserts this (topology_utils.append_topo_arrays)
            for f, i in (("Filter Height", "IFMAP Height"), ("Filter Width", "IFMAP Width")):
                if row[f] > row[i]:
                    probs.add(_column(columns.index(f), columns),
                              f"{f} {row[f]} is larger than {i} {row[i]} (SCALE-Sim's IFMAP "
                              f"dimensions already include any padding)", line=lineno)
                    ok = False
        if ok:
            rows.append(row)
    probs.raise_if_any()
    if not rows:
        raise ConfigError(Problem(file, "", f"no layers: the file has a header line but no layer "
                                  f"lines ({', '.join(columns)},)", 1))
    return rows


def _sparsity(text: str) -> tuple[int, int] | None:
    parts = text.split(":")
    if len(parts) != 2:
        return None
    try:
        n, m = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return (n, m) if 1 <= n <= m else None


def load_topology(path: str | Path, fmt: str = "conv",
                  precision: PrecisionPolicy | None = None, shapes: str = "conv") -> OpGraph:
    """Read a SCALE-Sim topology CSV as an ``OpGraph`` (see the module docstring).

    ``shapes="conv"`` (default) builds the convolutions a framework would run. ``shapes=
    "scalesim"`` reproduces SCALE-Sim's output size exactly, ceil((H - R + stride) / stride):
    where that adds a row or column, the ifmap is extended by the rows/columns the hanging
    window reads, so every layer has SCALE-Sim's shape and therefore its cycles.
    """
    if shapes not in ("conv", "scalesim"):
        raise ValueError(f"shapes must be 'conv' or 'scalesim', found {shapes!r}")
    rows = read_topology_rows(path, fmt)
    file = str(path)
    p = Path(path)
    sparsity: dict[str, str] = {}
    source_lines: dict[str, int] = {}
    renamed: dict[str, str] = {}
    ofmap_diff: dict[str, dict[str, tuple[int, int]]] = {}
    g = OpGraph(p.stem or "topology", precision,
                meta={"model": "scalesim", "topology": file, "format": fmt,
                      "sparsity": sparsity, "source_lines": source_lines, "renamed": renamed,
                      "scalesim_ofmap": ofmap_diff})
    used: dict[str, int] = {}

    def unique(name: str) -> str:
        if name not in used:
            used[name] = 1
            return name
        n = used[name]
        while True:
            n += 1
            candidate = f"{name}#{n}"
            if candidate not in used:
                used[name] = n
                used[candidate] = 1
                renamed[candidate] = name
                return candidate

    probs = Problems(file)
    for row in rows:
        line = row["line"]
        try:
            if fmt == "gemm":
                name = unique(row["name"])
                x = g.input(f"{name}.in", (row["M"], row["K"]))
                g.linear(name, x, row["N"], bias=False)
                _record(name, row, line, sparsity, source_lines)
                continue
            H, W = row["IFMAP Height"], row["IFMAP Width"]
            R, S = row["Filter Height"], row["Filter Width"]
            C, N, stride = row["Channels"], row["Num Filter"], row["Strides"]
            ours = ((H - R) // stride + 1, (W - S) // stride + 1)
            theirs = (-(-(H - R + stride) // stride), -(-(W - S + stride) // stride))
            if shapes == "scalesim" and theirs != ours:
                # grow the ifmap by what SCALE-Sim's last (hanging) window reads
                H, W = (theirs[0] - 1) * stride + R, (theirs[1] - 1) * stride + S
                ours = theirs
            if "DP" in row["name"]:
                for ch in range(C):
                    name = unique(f"{row['name']}Channel_{ch}")
                    x = g.input(f"{name}.ifmap", (1, 1, H, W))
                    g.conv2d(name, x, N, (R, S), stride=stride, padding=0, block=row["name"])
                    _record(name, row, line, sparsity, source_lines)
                    if theirs != ours:
                        ofmap_diff[name] = {"scalesim": theirs, "tessera": ours}
            else:
                name = unique(row["name"])
                x = g.input(f"{name}.ifmap", (1, C, H, W))
                g.conv2d(name, x, N, (R, S), stride=stride, padding=0)
                _record(name, row, line, sparsity, source_lines)
                if theirs != ours:
                    ofmap_diff[name] = {"scalesim": theirs, "tessera": ours}
        except GraphError as exc:
            probs.add("", str(exc), line=line)
    probs.raise_if_any()
    return g


def _record(name: str, row: dict[str, Any], line: int, sparsity: dict, source_lines: dict) -> None:
    source_lines[name] = line
    ratio = row.get("sparsity")
    if ratio is not None and ratio != (1, 1):
        sparsity[name] = f"{ratio[0]}:{ratio[1]}"
