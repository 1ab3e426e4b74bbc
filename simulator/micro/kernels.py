"""The per-cycle loops of the systolic micro-simulator (numba, compiled once and cached).

Each kernel runs one fold of an R x C array register by register and returns how many cycles the
fold took: the loop stops at the first cycle in which no operand is left in the array and no
feeder has anything left to send. Nothing here knows the fold-model formulas; the tests compare
the counts these loops produce with ``architectures.systolic.fold_plan``.

Conventions shared by both kernels (local coordinates of one fold):

- Feeders on the array's edges push one token per lane per cycle with a skew of one cycle per
  lane. Every lane of the full array is fed, used or not: lanes beyond the GEMM's edge carry
  padding tokens (value 0), exactly as SCALE-Sim's demand matrices pad them, so an edge fold takes
  as long as a full one. ``used_r``/``used_c`` say which rows and columns hold real operands; a
  MAC counts as useful only there.
- Recording (``record`` true) writes, per cycle ``t`` and PE ``(i, j)``: ``h_rec`` the index of
  the token that moves right (os: ``k``; ws/is: the stream index), ``v_rec`` the index of the
  other operand (os: ``k`` of the token moving down; ws/is: the local row of the stationary
  element held, while it is shifted in and after), ``p_rec`` (os: terms accumulated so far;
  ws/is: stream index of the partial sum produced here this cycle), ``mac_rec`` 1 for a useful
  MAC, ``val_rec`` the accumulator (os) or the partial sum leaving the PE (ws/is). ``-1`` is
  "nothing". The buffers need one entry per cycle of the fold (a kernel that would overrun them
  raises); without recording, pass arrays of shape (0, R, C).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["os_fold", "stationary_fold"]


@njit(cache=True)
def os_fold(A, B, used_r, used_c, record, h_rec, v_rec, p_rec, mac_rec, val_rec):
    """Output stationary. ``A``: R x K (row i streams ``A[i, k]`` in from the left at cycle
    ``k + i``), ``B``: K x C (column j streams ``B[k, j]`` in from the top at cycle ``k + j``).
    Tokens move one PE per cycle; where an ``A`` and a ``B`` token meet the PE accumulates their
    product. Returns (cycles, acc R x C, useful MACs per PE, cycle of each PE's last MAC)."""
    R = A.shape[0]
    K = A.shape[1]
    C = B.shape[1]
    h = np.full((R, C), -1, np.int64)
    hv = np.zeros((R, C))
    v = np.full((R, C), -1, np.int64)
    vv = np.zeros((R, C))
    acc = np.zeros((R, C))
    terms = np.zeros((R, C), np.int64)
    macs = np.zeros((R, C), np.int64)
    last = np.full((R, C), -1, np.int64)
    now = np.zeros((R, C), np.uint8)
    limit = h_rec.shape[0]
    t = 0
    while True:
        for i in range(R):  # A moves one PE to the right; the feeder pushes row i's next token
            for j in range(C - 1, 0, -1):
                h[i, j] = h[i, j - 1]
                hv[i, j] = hv[i, j - 1]
            k = t - i
            if 0 <= k < K:
                h[i, 0] = k
                hv[i, 0] = A[i, k]
            else:
                h[i, 0] = -1
                hv[i, 0] = 0.0
        for j in range(C):  # B moves one PE down
            for i in range(R - 1, 0, -1):
                v[i, j] = v[i - 1, j]
                vv[i, j] = vv[i - 1, j]
            k = t - j
            if 0 <= k < K:
                v[0, j] = k
                vv[0, j] = B[k, j]
            else:
                v[0, j] = -1
                vv[0, j] = 0.0
        active = False
        for i in range(R):
            for j in range(C):
                useful = 0
                if h[i, j] >= 0 or v[i, j] >= 0:
                    active = True
                if h[i, j] >= 0 and v[i, j] >= 0:
                    if h[i, j] != v[i, j]:
                        raise RuntimeError("os: A and B tokens met out of step")
                    acc[i, j] += hv[i, j] * vv[i, j]
                    terms[i, j] += 1
                    if i < used_r and j < used_c:
                        useful = 1
                        macs[i, j] += 1
                        if h[i, j] == K - 1:
                            last[i, j] = t
                elif h[i, j] >= 0 or v[i, j] >= 0:
                    raise RuntimeError("os: a token arrived without its partner")
                now[i, j] = useful
        if not active:
            break
        if record:
            if t >= limit:
                raise RuntimeError("recording buffer too small")
            h_rec[t] = h
            v_rec[t] = v
            p_rec[t] = terms
            mac_rec[t] = now
            val_rec[t] = acc
        t += 1
    return t, acc, macs, last


@njit(cache=True)
def stationary_fold(S, X, used_r, used_c, record, h_rec, v_rec, p_rec, mac_rec, val_rec):
    """Weight (ws) or input (is) stationary. ``S``: R x C, the stationary block (row r: reduction
    index r of the fold); ``X``: T x R, the streamed operand (token t carries ``X[t, r]`` into
    row r). First the stationary block is shifted in from the top, one row per cycle, for R
    cycles (all columns in parallel; the top row receives ``S[R - 1 - t]`` at cycle t). Then row
    i's feeder pushes token t at cycle ``R + t + i``; tokens move right one PE per cycle. Each PE
    adds its product to the partial sum coming from the PE above and passes it down; the bottom
    row's partial sums leave the array. Returns (cycles, out T x C, useful MACs per PE, cycle
    each output left the bottom row)."""
    R = S.shape[0]
    C = S.shape[1]
    T = X.shape[0]
    w = np.full((R, C), -1, np.int64)
    wv = np.zeros((R, C))
    h = np.full((R, C), -1, np.int64)
    hv = np.zeros((R, C))
    p = np.full((R, C), -1, np.int64)
    pv = np.zeros((R, C))
    out = np.zeros((T, C))
    left = np.full((T, C), -1, np.int64)
    macs = np.zeros((R, C), np.int64)
    now = np.zeros((R, C), np.uint8)
    limit = h_rec.shape[0]
    t = 0
    while True:
        loading = t < R
        if loading:  # the stationary block shifts down one row
            for j in range(C):
                for i in range(R - 1, 0, -1):
                    w[i, j] = w[i - 1, j]
                    wv[i, j] = wv[i - 1, j]
                w[0, j] = R - 1 - t
                wv[0, j] = S[R - 1 - t, j]
        for i in range(R):  # streamed tokens move one PE to the right
            for j in range(C - 1, 0, -1):
                h[i, j] = h[i, j - 1]
                hv[i, j] = hv[i, j - 1]
            tok = t - R - i
            if 0 <= tok < T:
                h[i, 0] = tok
                hv[i, 0] = X[tok, i]
            else:
                h[i, 0] = -1
                hv[i, 0] = 0.0
        active = loading
        for i in range(R - 1, -1, -1):  # bottom-up: row i reads row i-1's previous partial sum
            for j in range(C):
                useful = 0
                if h[i, j] >= 0:
                    active = True
                    if w[i, j] != i:
                        raise RuntimeError("stationary: a token reached a PE before its operand")
                    psum = 0.0
                    if i > 0:
                        if p[i - 1, j] != h[i, j]:
                            raise RuntimeError("stationary: partial sum and token out of step")
                        psum = pv[i - 1, j]
                    p[i, j] = h[i, j]
                    pv[i, j] = psum + hv[i, j] * wv[i, j]
                    if i < used_r and j < used_c:
                        useful = 1
                        macs[i, j] += 1
                    if i == R - 1:
                        out[h[i, j], j] = pv[i, j]
                        left[h[i, j], j] = t
                else:
                    p[i, j] = -1
                    pv[i, j] = 0.0
                now[i, j] = useful
        if not active:
            break
        if record:
            if t >= limit:
                raise RuntimeError("recording buffer too small")
            h_rec[t] = h
            v_rec[t] = w
            p_rec[t] = p
            mac_rec[t] = now
            val_rec[t] = pv
        t += 1
    return t, out, macs, left
