"""Buffer and DRAM traffic of one operator on a systolic array (an analytical reuse model).

The folds run in SCALE-Sim's order: column folds outer, row folds inner. Each operand SRAM is
double-buffered: half is read by the array while the other half is filled, so a working set is
reused across the inner loop only if it fits in half the buffer. Per dataflow:

====  ===============================  ==========================  ===========================
      ifmap                            filter                      ofmap
====  ===============================  ==========================  ===========================
os    whole ifmap reused across column the filter column block      final outputs, written once
      folds if it fits, else re-read   (K x C) reused across row
      once per column fold             folds if it fits, else
                                       re-read per row fold
ws    as os                            each weight loaded once      partial sums (M x C) stay on
                                                                    chip across K-folds if they
                                                                    fit, else spill to DRAM and
                                                                    are read back
is    each input loaded once           whole filter reused across  as ws with (C x N) partial
                                       column folds if it fits,    sums
                                       else re-read per column fold
====  ===============================  ==========================  ===========================

The ifmap's compulsory traffic is the input the windows actually touch (``unique_input_bytes``),
not the im2col matrix, because the buffer holds the feature map and the array's feeders
re-read overlapping windows from SRAM. This is an analytical model of what SCALE-Sim obtains by
replaying address traces through its buffers; simulator/SCALESIM.md says where the two differ.
For ws the model assumes the channel-outer order of a window's K = R*S*C elements (a row fold
covers a block of channels at every kernel offset), so the input is read once per column fold
even when it does not fit; SCALE-Sim's channel-innermost order would re-read it per row fold.
"""

from __future__ import annotations

from architectures.systolic import FoldPlan, SystolicArray
from mappers.annotations import DEFAULT_NEST, LoopNest, Traffic
from workloads.ops import Conv2D, Embedding, MatMul, Op

__all__ = ["systolic_traffic", "vector_traffic", "OPERANDS", "LoopNest", "DEFAULT_NEST", "DEPENDS",
           "InvalidMapping"]

OPERANDS = ("ifmap", "filter", "ofmap")


def _operand_bytes(op: Op) -> tuple[float, float, float, int, int, int]:
    """Element bytes (ifmap, filter, ofmap) and compulsory bytes (ifmap, filter, ofmap)."""
    x = op.inputs[0]
    w = op.inputs[1] if isinstance(op, MatMul) else op.weights[0]
    o = op.output
    ui = op.unique_input_bytes if isinstance(op, Conv2D) else x.nbytes
    # the filter operand carries all of the op's parameters (the matrix, and a bias if any)
    uf = w.nbytes if isinstance(op, MatMul) else sum(t.nbytes for t in op.weights)
    return x.element_bytes, w.element_bytes, o.element_bytes, ui, uf, o.nbytes


# which fold dimensions (A: row folds, B: column folds) each operand depends on
DEPENDS = {"os": {"ifmap": "A", "filter": "B", "ofmap": "AB"},
           "ws": {"ifmap": "A", "filter": "AB", "ofmap": "B"},
           "is": {"ifmap": "AB", "filter": "A", "ofmap": "B"}}


class InvalidMapping(ValueError):
    """A candidate mapping that cannot run (the reason says why); searches skip it."""


def _chunk_bytes(df: str, operand: str, g, R: int, C: int, bi: float, bf: float, bo: float,
                 ui: float, uf: float, uo: float) -> float:
    """Bytes of one fold index's slice of an operand that depends on one fold dimension."""
    G = g.groups
    if df == "os":
        return {"ifmap": ui / G * min(R, g.M) / g.M, "filter": g.K * min(C, g.N) * bf}[operand]
    if df == "ws":
        return {"ifmap": ui / G * min(R, g.K) / g.K, "ofmap": g.M * min(C, g.N) * bo}[operand]
    return {"filter": min(R, g.K) * g.N * bf, "ofmap": min(C, g.M) * g.N * bo}[operand]


def systolic_traffic(op: Op, plan: FoldPlan, arch: SystolicArray,
                     onchip: frozenset[str] = frozenset(), write_output: bool = True,
                     nest: LoopNest = DEFAULT_NEST) -> Traffic:
    """SRAM and DRAM bytes per operand for ``op`` folded as ``plan`` (see module docstring).

    ``onchip``: input tensors already resident in the on-chip scratchpad (no off-chip reads, also
    when the fold loop re-reads them); ``write_output``: whether the output goes off chip (False:
    it stays resident for the next layer). Partial-sum spills go off chip either way. ``nest``:
    the fold loops' order and blocking; raises ``InvalidMapping`` when a block does not fit.
    """
    g = plan.gemm
    bi, bf, bo, ui, uf, uo = _operand_bytes(op)
    G = g.groups
    half = {"ifmap": arch.memory.ifmap_sram.size_bytes / 2,
            "filter": arch.memory.filter_sram.size_bytes / 2,
            "ofmap": arch.memory.ofmap_sram.size_bytes / 2}
    whole = {"ifmap": ui / G, "filter": uf / G, "ofmap": uo / G}
    df = plan.dataflow
    inner, outer = ("A", "B") if nest.order == "cols_outer" else ("B", "A")
    n_dim = {"A": plan.row_folds, "B": plan.col_folds}
    if nest.block < 1 or nest.block > max(1, n_dim[outer]):
        raise InvalidMapping(f"block {nest.block} outside 1..{n_dim[outer]} outer folds")
    loads = {"ifmap": 1, "filter": 1, "ofmap": 1}
    psum_spill = False
    for operand, dep in DEPENDS[df].items():
        if operand == "ofmap":
            if dep == "B" and plan.k_folds > 1:  # partial sums accumulate over the row folds
                if inner == "A":
                    chunk = _chunk_bytes(df, operand, g, plan.rows, plan.cols, bi, bf, bo, ui, uf, uo)
                    psum_spill = chunk * nest.block > half["ofmap"]
                else:  # row folds outer: every column's partial sums live across the whole loop
                    psum_spill = whole["ofmap"] > half["ofmap"]
            continue
        if dep == inner:  # swept across the outer loop
            if whole[operand] > half[operand]:
                loads[operand] = -(-n_dim[outer] // nest.block)
        elif dep == outer:  # stationary within a block
            chunk = _chunk_bytes(df, operand, g, plan.rows, plan.cols, bi, bf, bo, ui, uf, uo)
            if chunk * nest.block > half[operand]:
                if nest.block > 1:
                    raise InvalidMapping(
                        f"{nest.block} {operand} blocks of {chunk:,.0f} B do not fit half the "
                        f"{operand} buffer ({half[operand]:,.0f} B)")
                loads[operand] = n_dim[inner]
    if psum_spill:
        loads["ofmap"] = plan.k_folds

    second = op.inputs[1] if isinstance(op, MatMul) else op.weights[0]
    dram_read = {"ifmap": 0 if op.inputs[0].name in onchip else round(ui * loads["ifmap"]),
                 "filter": 0 if second.name in onchip else round(uf * loads["filter"]), "ofmap": 0}
    dram_write = {"ifmap": 0, "filter": 0, "ofmap": uo if write_output else 0}
    if psum_spill:
        dram_write["ofmap"] = uo * plan.k_folds if write_output else uo * (plan.k_folds - 1)
        dram_read["ofmap"] = uo * (plan.k_folds - 1)
    sram_read = {"ifmap": round(plan.ifmap_reads * bi), "filter": round(plan.filter_reads * bf),
                 "ofmap": round(plan.ofmap_reads * bo)}
    sram_write = {"ifmap": 0, "filter": 0, "ofmap": round(plan.ofmap_writes * bo)}
    return Traffic(sram_read, sram_write, dram_read, dram_write, compulsory_read=ui + uf,
                   compulsory_write=uo, dram_loads=loads)


def vector_traffic(op: Op, onchip: frozenset[str] = frozenset(), write_output: bool = True) -> Traffic:
    """A vector op reads its inputs (and parameters) once and writes its output once; inputs
    resident on chip and an output kept on chip cost no off-chip traffic. An embedding lookup
    reads only the table rows it gathers."""
    inp = sum(t.nbytes for t in op.inputs)
    par = op.gathered_bytes if isinstance(op, Embedding) else sum(t.nbytes for t in op.weights)
    out = op.output.nbytes
    reads = {"ifmap": inp, "filter": par, "ofmap": 0}
    writes = {"ifmap": 0, "filter": 0, "ofmap": out}
    off_in = sum(t.nbytes for t in op.inputs if t.name not in onchip)
    return Traffic(reads, writes, {"ifmap": off_in, "filter": par, "ofmap": 0},
                   {"ifmap": 0, "filter": 0, "ofmap": out if write_output else 0},
                   compulsory_read=inp + par, compulsory_write=out,
                   dram_loads={"ifmap": 1, "filter": 1, "ofmap": 1})
