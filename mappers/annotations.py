"""Typed per-operator annotations that mapper passes attach to an ``OpGraph``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from architectures.systolic import FoldPlan

__all__ = ["Placement", "Tiling", "MappingChoice", "Traffic", "OpPlan", "LinkPlan", "LoopNest", "DEFAULT_NEST"]


@dataclass(frozen=True)
class Placement:
    """Which unit runs the operator: ``array`` (matrix ops), ``vector``, ``none`` (a view), or
    ``fused`` (applied in the output stage of ``fused_into``, costing its energy but no time
    and no memory traffic of its own)."""

    unit: str
    fused_into: str | None = None


@dataclass(frozen=True)
class LoopNest:
    """The fold loops' order and blocking (a mapping choice; see ``mappers.traffic``).

    ``order``: ``cols_outer`` (SCALE-Sim's: column folds outer, row folds inner) or
    ``rows_outer``. ``block``: how many outer folds run as one block: the operand that depends
    only on the outer fold index is held for the whole block (all of it must fit in half its
    buffer), and the operand that depends only on the inner index is fetched once per block
    instead of once per outer fold.
    """

    order: str = "cols_outer"
    block: int = 1


DEFAULT_NEST = LoopNest()


@dataclass(frozen=True)
class Tiling:
    """How a matrix operator folds onto the array, and why this mapping was chosen.

    ``chosen_by`` says what was compared, in words: ``"architecture"`` / ``"mapper option"``
    (a fixed dataflow), ``"auto: os N, ws N, is N cycles"`` (``mapper.dataflow: auto``),
    ``"search: N candidates, R rejected ...; best ..."`` (``mapper.search``); other templates'
    planners start it with their name (``"gpu: ..."``, ``"rdu: ..."``). ``candidates`` and
    ``rejected``: how many mappings were evaluated and how many of them were invalid (auto and
    search; None for a fixed choice).
    """

    plan: FoldPlan
    chosen_by: str
    nest: LoopNest = DEFAULT_NEST  # the fold loops' order and blocking
    candidates: int | None = None
    rejected: int | None = None

    @property
    def dataflow(self) -> str:
        return self.plan.dataflow

    @property
    def method(self) -> str:
        """How the mapping was chosen, in one word or two: the part of ``chosen_by`` before its
        colon (``search``, ``auto``, ``gpu``, ...) or all of it (``architecture``, ``mapper option``)."""
        return self.chosen_by.split(":", 1)[0].strip()


@dataclass(frozen=True)
class MappingChoice:
    """The mapping a layer ran with, as the result files show it (``layers.csv`` and
    ``results.json`` columns ``loop_order``, ``loop_block``, ``chosen_by``, ``mapping_candidates``,
    ``mapping_rejected``; the dataflow has its own column). Planners with a mapping choice
    (the systolic array's) attach it to the ``OpPlan``; ``Tiling`` keeps the full story."""

    loop_order: str  # cols_outer | rows_outer (LoopNest.order)
    loop_block: int  # outer folds per block (LoopNest.block)
    chosen_by: str  # architecture | mapper option | auto | search (Tiling.method)
    candidates: int | None = None
    rejected: int | None = None

    @classmethod
    def of(cls, tiling: Tiling) -> "MappingChoice":
        return cls(tiling.nest.order, tiling.nest.block, tiling.method, tiling.candidates, tiling.rejected)

    def row(self) -> dict[str, object]:
        """The result-file columns (empty where not applicable)."""
        return {"loop_order": self.loop_order, "loop_block": self.loop_block, "chosen_by": self.chosen_by,
                "mapping_candidates": "" if self.candidates is None else self.candidates,
                "mapping_rejected": "" if self.rejected is None else self.rejected}


@dataclass(frozen=True)
class Traffic:
    """Bytes per operand (ifmap, filter, ofmap) at each level, for one operator.

    ``sram_read``/``sram_write``: array-side accesses (edge reads, output and partial-sum writes,
    partial-sum read-backs). ``dram_read``/``dram_write``: off-chip traffic; the SRAM is also
    written by every DRAM read (fill) and read by every DRAM write (drain), which the energy
    model charges. ``compulsory_*``: each input and weight read once, each output written once.
    ``dram_loads``: per operand, how many times the working set is brought on chip (1 = reuse).
    """

    sram_read: Mapping[str, int]
    sram_write: Mapping[str, int]
    dram_read: Mapping[str, int]
    dram_write: Mapping[str, int]
    compulsory_read: int
    compulsory_write: int
    dram_loads: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("sram_read", "sram_write", "dram_read", "dram_write", "dram_loads"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    @property
    def dram_read_bytes(self) -> int:
        return sum(self.dram_read.values())

    @property
    def dram_write_bytes(self) -> int:
        return sum(self.dram_write.values())


@dataclass(frozen=True, eq=False)
class OpPlan:
    """Everything the lowering needs about one operator that runs (see ``mappers.plan``).

    Per tile (coalesced folds): ``cycles`` on ``unit``, ``counts`` folds in it, and per off-chip
    channel the bytes loaded before it (``loads``) and stored after it (``stores``).
    """

    unit: str
    cycles: np.ndarray
    counts: np.ndarray
    loads: Mapping[str, np.ndarray]
    stores: Mapping[str, np.ndarray]
    compute_cycles: int
    counters: Mapping[str, float]
    dataflow: str | None = None
    folds: int = 0
    mapping_efficiency: float | None = None
    compute_utilization: float | None = None
    peak_macs_per_cycle: int = 0
    vector_ops: int = 0
    gemm: tuple[int, int, int, int] | None = None
    fused: tuple[str, ...] = ()
    overhead_cycles: int = 0  # part of compute_cycles that nothing overlaps (a kernel launch)
    mapping: MappingChoice | None = None  # the mapping choice, where the template has one

    @property
    def tiles(self) -> int:
        return int(len(self.cycles))


@dataclass(frozen=True)
class LinkPlan:
    """A collective as transfers on the devices' links: per (device, bytes, steps), ``steps``
    transfers of ``bytes / steps`` one after another on that device's link (a ring algorithm's
    steps each pay the link latency)."""

    transfers: tuple[tuple[int, int, int], ...]
    counters: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "counters", MappingProxyType(dict(self.counters)))
