"""A single GEMM as a workload: (M x K) @ (K x N), optionally ``groups`` independent ones."""

from __future__ import annotations

from workloads.graph import OpGraph, PrecisionPolicy

__all__ = ["gemm_graph"]


def gemm_graph(M: int, K: int, N: int, groups: int = 1,
               precision: PrecisionPolicy | None = None) -> OpGraph:
    """One GEMM: with ``groups == 1`` a weight matrix (K x N) times an activation (M x K);
    otherwise a batched product of two activations."""
    g = OpGraph(f"gemm_{M}x{K}x{N}" + (f"x{groups}" if groups > 1 else ""), precision,
                meta={"model": "gemm", "M": M, "K": K, "N": N, "groups": groups})
    if groups == 1:
        g.linear("gemm", g.input("A", (M, K)), N, bias=False)
    else:
        g.matmul("gemm", g.input("A", (groups, M, K)), g.input("B", (groups, K, N)))
    return g
