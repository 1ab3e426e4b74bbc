"""The cycle-level micro-simulator against numpy (the product) and the fold model (the cycles).

This is the proof that ``architectures.systolic``'s per-fold formulas are right: the micro-
simulator moves operands register by register and stops a fold when its last token has left
the array; nothing in it knows the formulas. Every dataflow, every fold (edge folds included).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from architectures.systolic import DATAFLOWS, fold_plan
from simulator.micro import MAX_ARRAY, random_operands, simulate_gemm
from simulator.micro.systolic import NONE, PAD, check_size
from workloads.errors import ConfigError
from workloads.ops import GemmShape

# (M, K, N, R, C): exact fits, edge folds in rows and in columns, K smaller than R, degenerate
# extents, non-square and 1x1 arrays
SHAPES = [
    (4, 8, 4, 4, 4),  # the animate test's GEMM: exact fit for os
    (8, 8, 8, 4, 4),  # several full folds in every direction
    (5, 8, 4, 4, 4),  # os: an edge fold in rows (M = R + 1)
    (4, 8, 6, 4, 4),  # an edge fold in columns (N = C + 2)
    (7, 9, 11, 4, 4),  # edge folds in rows and columns for every dataflow
    (6, 2, 5, 4, 4),  # K smaller than R (ws/is: one row fold, half the rows used)
    (3, 1, 3, 4, 4),  # K = 1
    (1, 13, 1, 4, 4),  # M = N = 1 (a dot product)
    (9, 6, 2, 3, 5),  # non-square array
    (5, 4, 3, 1, 1),  # a single PE
    (12, 20, 8, 8, 8),
]


def _check(M, K, N, R, C, df, seed=0, groups=1):
    gemm = GemmShape(M, K, N, groups)
    A, B = random_operands(gemm, seed)
    run = simulate_gemm(A, B, R, C, df)
    plan = fold_plan(gemm, R, C, df)
    assert np.array_equal(run.output, A @ B), "wrong product"
    assert run.cycles == plan.compute_cycles
    assert len(run.folds) == plan.folds
    assert [f.cycles for f in run.folds] == [plan.fold_cycles] * plan.folds  # every fold, edge ones too
    assert run.useful_macs == gemm.macs
    # each used PE does one MAC per streamed element, so useful MACs give the mapping efficiency
    for f in run.folds:
        expected = np.zeros((R, C), dtype=np.int64)
        expected[: f.used_rows, : f.used_cols] = plan.T
        assert np.array_equal(f.macs, expected), f"fold {f.index}"
    eff = np.mean([f.macs.sum() / (R * C * plan.T) for f in run.folds])
    assert eff == pytest.approx(plan.mapping_efficiency)
    assert run.utilization == pytest.approx(plan.compute_utilization)
    return run, plan


@pytest.mark.parametrize("df", DATAFLOWS)
@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
def test_product_and_cycles_match_numpy_and_the_fold_model(shape, df):
    _check(*shape, df)


@pytest.mark.parametrize("df", DATAFLOWS)
def test_groups_run_one_after_another(df):
    run, plan = _check(3, 5, 4, 4, 4, df, groups=3)
    assert run.output.shape == (3, 3, 4)
    assert [f.group for f in run.folds] == sorted(f.group for f in run.folds)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(M=st.integers(1, 20), K=st.integers(1, 20), N=st.integers(1, 20), R=st.integers(1, 8),
       C=st.integers(1, 8), df=st.sampled_from(DATAFLOWS), seed=st.integers(0, 2**16))
def test_random_shapes_match_numpy_and_the_fold_model(M, K, N, R, C, df, seed):
    _check(M, K, N, R, C, df, seed)


def test_fold_order_is_column_folds_outer_row_folds_inner():
    gemm = GemmShape(5, 9, 6)
    A, B = random_operands(gemm)
    run = simulate_gemm(A, B, 4, 4, "ws")
    assert [(f.col_fold, f.row_fold) for f in run.folds] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert [f.start_cycle for f in run.folds] == [i * run.folds[0].cycles for i in range(6)]


@pytest.mark.parametrize("df", DATAFLOWS)
def test_every_output_leaves_once_and_partial_sums_once_per_earlier_k_fold(df):
    gemm = GemmShape(5, 9, 6)
    A, B = random_operands(gemm)
    run = simulate_gemm(A, B, 4, 4, df)
    plan = fold_plan(gemm, 4, 4, df)
    events = run.output_events()
    finals = [(m, n) for _, _, m, n, partial in events if not partial]
    partials = [(m, n) for _, _, m, n, partial in events if partial]
    assert sorted(finals) == [(m, n) for m in range(5) for n in range(6)]
    assert len(partials) == (plan.k_folds - 1) * 5 * 6
    for f in run.folds:  # every event happens inside its own fold
        c = f.out_cycle[f.out_cycle >= 0]
        assert c.size and (c >= f.start_cycle).all() and (c < f.start_cycle + f.cycles).all()


def test_os_outputs_complete_on_the_skewed_wavefront():
    gemm = GemmShape(4, 8, 4)
    A, B = random_operands(gemm)
    run = simulate_gemm(A, B, 4, 4, "os")
    (f,) = run.folds
    i, j = np.indices((4, 4))
    assert np.array_equal(f.out_cycle, 8 - 1 + i + j)  # the last MAC of PE (i, j): K - 1 + i + j


@pytest.mark.parametrize("df", ["ws", "is"])
def test_stationary_outputs_leave_the_bottom_row_after_the_preload(df):
    gemm = GemmShape(4, 4, 4)
    A, B = random_operands(gemm)
    run = simulate_gemm(A, B, 4, 4, df)
    (f,) = run.folds
    t, j = np.indices((4, 4))  # stream token t, column j: R (preload) + t + (R - 1) + j
    expected = 4 + t + 3 + j
    assert np.array_equal(f.out_cycle if df == "ws" else f.out_cycle.T, expected)


@pytest.mark.parametrize("df", DATAFLOWS)
def test_recorded_states_replay_the_product(df):
    """Every useful MAC in the per-cycle states multiplies A[m, k] by B[k, n] into O[m, n]; summing
    them gives the product, and padding never does a useful MAC."""
    gemm = GemmShape(5, 7, 6)
    A, B = random_operands(gemm, 3)
    run = simulate_gemm(A, B, 4, 4, df, record=True)
    s = run.states
    assert s.cycles == run.cycles == fold_plan(gemm, 4, 4, df).compute_cycles
    assert int(s.mac.sum()) == gemm.macs
    t, i, j = np.nonzero(s.mac)
    am, ak, bk, bn, om, on = (x[t, i, j] for x in (s.a_m, s.a_k, s.b_k, s.b_n, s.o_m, s.o_n))
    assert (am >= 0).all() and (bk >= 0).all()
    assert np.array_equal(ak, bk) and np.array_equal(om, am) and np.array_equal(on, bn)
    out = np.zeros((5, 6))
    np.add.at(out, (om, on), A[am, ak] * B[bk, bn])
    assert np.array_equal(out, A @ B)
    assert not (s.mac & ((s.a_m == PAD) | (s.b_k == PAD))).any()
    assert ((s.a_m == PAD) | (s.b_k == PAD)).any()  # edge folds do carry padding
    assert list(s.fold_cycle[: run.folds[0].cycles]) == list(range(run.folds[0].cycles))
    if df != "os":  # the stationary operand is shifted in during the first R cycles of a fold
        assert s.loading[: 4].any() and not s.loading[4 : run.folds[0].cycles].any()
        assert (s.b_k[3] if df == "ws" else s.a_k[3])[:, :4].min() != NONE


def test_limits_are_config_errors_naming_the_limit():
    with pytest.raises(ConfigError, match=f"limit of {MAX_ARRAY}x{MAX_ARRAY}"):
        check_size(GemmShape(4, 4, 4), MAX_ARRAY + 1, 4, "os")
    with pytest.raises(ConfigError, match="limit is 2,000,000 PE-cycles"):
        simulate_gemm(np.ones((512, 512)), np.ones((512, 512)), 32, 32, "os", record=True)
    with pytest.raises(ConfigError, match="not a dataflow"):
        check_size(GemmShape(4, 4, 4), 4, 4, "rs")
