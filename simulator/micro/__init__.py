"""Teaching tools: a cycle-level systolic-array micro-simulator, its pictures and text view."""

from simulator.micro.systolic import (MAX_ARRAY, CycleStates, FoldTrace, MicroRun, check_size,
                                      random_operands, simulate_gemm)

__all__ = ["simulate_gemm", "random_operands", "check_size", "MicroRun", "FoldTrace", "CycleStates",
           "MAX_ARRAY"]
