"""Iso-area sizing: the largest array of a PE that fits an area budget."""

from __future__ import annotations

import math

__all__ = ["iso_area"]


def iso_area(pe_area_um2: float, budget_mm2: float, *, rows: int | None = None, cols: int | None = None,
             pnr_factor: float = 1.5, edge_area_um2: float = 0.0) -> tuple[int, int]:
    """The largest array that fits ``budget_mm2`` of PE area: give ``rows`` or ``cols`` (or
    neither: a square); the other is floor(budget / (fixed x PE area x pnr_factor)). Per-row
    edge area (LUT tables) is counted with each row. BitMoD sizes its baselines this way, with
    the synthesized PE area x 1.5 for place and route."""
    if pe_area_um2 <= 0 or budget_mm2 <= 0 or pnr_factor <= 0:
        raise ValueError("PE area, budget and place-and-route factor must be positive")
    if rows is not None and cols is not None:
        raise ValueError("give rows or cols (or neither), not both")
    pe = pe_area_um2 * pnr_factor * 1e-6
    edge = edge_area_um2 * pnr_factor * 1e-6
    if rows is not None:
        out = int(math.floor((budget_mm2 - rows * edge) / (rows * pe) + 1e-9))
        if out < 1:
            raise ValueError(f"{rows} rows of {pe_area_um2:g} um^2 PEs exceed {budget_mm2:g} mm^2")
        return rows, out
    if cols is not None:
        out = int(math.floor(budget_mm2 / (cols * pe + edge) + 1e-9))
        if out < 1:
            raise ValueError(f"{cols} columns of {pe_area_um2:g} um^2 PEs exceed {budget_mm2:g} mm^2")
        return out, cols
    side = int(math.floor(math.sqrt(budget_mm2 / pe) + 1e-9))
    while side > 1 and side * side * pe + side * edge > budget_mm2 * (1 + 1e-9):
        side -= 1
    return side, side
