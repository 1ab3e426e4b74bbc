"""The numba kernels: an event queue and per-resource ready queues on flat arrays, and the loop.

Contract (shared with ``simulator.reference``, see ``simulator/README.md``):

- Events live in one binary heap ordered by ``(time, priority, sequence)``: *sequence* is the
  number of events scheduled before this one (a counter over the whole run), *priority* is
  ``COMPLETION_PRIORITY`` (2) for ``END`` (a task completes; for compute it also frees the lane)
  and ``FREE`` (a transfer releases its channel lane), ``DISPATCH_PRIORITY`` (3) for ``DISPATCH``
  (a resource fills its idle lanes). 0 and 1 are simpy's own priorities, left free so that the
  reference engine's queue orders its events exactly like this one. So at any time, every
  completion already due is applied before any resource chooses its next task.
- A resource gets a ``DISPATCH`` event when it has an idle lane and a waiting task and none is
  pending. Dispatch starts, while a lane is idle, the waiting task with the smallest
  ``(ready time, priority, id)``, on the idle lane most recently released (lanes start idle in
  order 0, 1, ...).
- Starting a task schedules its ``END`` (compute: ``start + occ``), or its ``FREE``
  (``start + occ``) and then its ``END`` (``start + occ + latency``) for a transfer.
- ``END`` of compute: free the lane (and ring its resource), then, for each dependent in task
  order: its ready time becomes the latest dependency completion (``last_transfer`` records
  whether a transfer completed last; on a tie, a transfer counts), and when its last
  dependency is done it joins its resource's ready queue (and rings it).
Times are int64 cycles; every array comes from ``simulator.core.flat.flatten``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from simulator.program import COMPUTE as _COMPUTE

__all__ = ["run_events", "EV_END", "EV_FREE", "EV_DISPATCH", "COMPLETION_PRIORITY",
           "DISPATCH_PRIORITY"]

EV_END, EV_FREE, EV_DISPATCH = 0, 1, 2
COMPLETION_PRIORITY, DISPATCH_PRIORITY = 2, 3
_SEQ_BITS = 40  # heap key = priority << 40 | sequence
_ID_MASK = (1 << 32) - 1  # heap item = kind << 32 | task or resource id


@njit(cache=True)
def _ev_push(ht, hk, hi, size, time, key, item):
    """Push ``(time, key) -> item`` onto the event heap of ``size`` entries; return the new size."""
    i = size
    while i > 0:
        p = (i - 1) >> 1
        if ht[p] < time or (ht[p] == time and hk[p] < key):
            break
        ht[i] = ht[p]
        hk[i] = hk[p]
        hi[i] = hi[p]
        i = p
    ht[i] = time
    hk[i] = key
    hi[i] = item
    return size + 1


@njit(cache=True)
def _ev_pop(ht, hk, hi, size):
    """Remove the top of the event heap (read it first); return the new size."""
    size -= 1
    t = ht[size]
    k = hk[size]
    it = hi[size]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        d = c + 1
        if d < size and (ht[d] < ht[c] or (ht[d] == ht[c] and hk[d] < hk[c])):
            c = d
        if ht[c] < t or (ht[c] == t and hk[c] < k):
            ht[i] = ht[c]
            hk[i] = hk[c]
            hi[i] = hi[c]
            i = c
        else:
            break
    ht[i] = t
    hk[i] = k
    hi[i] = it
    return size


@njit(cache=True)
def _before(ra, pa, ia, rb, pb, ib):
    """(ready, priority, id) a < b."""
    if ra != rb:
        return ra < rb
    if pa != pb:
        return pa < pb
    return ia < ib


@njit(cache=True)
def _rq_push(qr, qp, qi, base, size, ready, prio, task):
    """Push a task onto the ready heap stored at ``base``; return the new size."""
    i = size
    while i > 0:
        p = (i - 1) >> 1
        if _before(qr[base + p], qp[base + p], qi[base + p], ready, prio, task):
            break
        qr[base + i] = qr[base + p]
        qp[base + i] = qp[base + p]
        qi[base + i] = qi[base + p]
        i = p
    qr[base + i] = ready
    qp[base + i] = prio
    qi[base + i] = task
    return size + 1


@njit(cache=True)
def _rq_pop(qr, qp, qi, base, size):
    """Remove and return the first task of the ready heap at ``base`` (size decreases by one)."""
    top = qi[base]
    size -= 1
    r = qr[base + size]
    p = qp[base + size]
    t = qi[base + size]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        d = c + 1
        if d < size and _before(qr[base + d], qp[base + d], qi[base + d],
                                qr[base + c], qp[base + c], qi[base + c]):
            c = d
        if _before(qr[base + c], qp[base + c], qi[base + c], r, p, t):
            qr[base + i] = qr[base + c]
            qp[base + i] = qp[base + c]
            qi[base + i] = qi[base + c]
            i = c
        else:
            break
    qr[base + i] = r
    qp[base + i] = p
    qi[base + i] = t
    return top


@njit(cache=True)
def run_events(kind, res, occ, lat, prio, ndeps, user_ptr, user_idx, lanes, res_ptr, lane_ptr,
               record):
    """Run the program; see the module docstring for the rules.

    Returns ``(start, end, ready, last_transfer, lane, busy, n_done, n_events, log_time,
    log_priority, log_seq, log_kind, log_id)``; unfinished tasks keep ``end == -1``; the log
    arrays hold every processed event in order when ``record`` (else they are empty).
    """
    n = kind.shape[0]
    n_res = lanes.shape[0]
    start = np.full(n, -1, np.int64)
    end = np.full(n, -1, np.int64)
    ready = np.zeros(n, np.int64)
    last_tr = np.zeros(n, np.uint8)
    lane_of = np.full(n, -1, np.int32)
    remaining = ndeps.copy()
    busy = np.zeros(n_res, np.int64)

    # per-resource ready heaps, each in its own region [res_ptr[r], res_ptr[r + 1])
    qr = np.empty(n, np.int64)
    qp = np.empty(n, np.int64)
    qi = np.empty(n, np.int32)
    qn = np.zeros(n_res, np.int64)
    # per-resource stacks of idle lanes (top = next lane used), lane 0 on top at the start
    idle = np.empty(lane_ptr[n_res], np.int32)
    n_idle = np.zeros(n_res, np.int64)
    for r in range(n_res):
        for k in range(lanes[r]):
            idle[lane_ptr[r] + k] = lanes[r] - 1 - k
        n_idle[r] = lanes[r]
    pending = np.zeros(n_res, np.uint8)

    # event heap: at most two events per task and one DISPATCH per resource are pending
    cap = 2 * n + n_res + 1
    ht = np.empty(cap, np.int64)
    hk = np.empty(cap, np.int64)
    hi = np.empty(cap, np.int64)
    hsize = 0
    seq = 0
    n_log = 4 * n + n_res + 1 if record else 0  # END + FREE <= 2n, DISPATCH <= 2n + n_res
    log_time = np.empty(n_log, np.int64)
    log_prio = np.empty(n_log, np.int64)
    log_seq = np.empty(n_log, np.int64)
    log_kind = np.empty(n_log, np.int8)
    log_id = np.empty(n_log, np.int32)
    comp_key = np.int64(COMPLETION_PRIORITY) << _SEQ_BITS
    disp_key = np.int64(DISPATCH_PRIORITY) << _SEQ_BITS

    # tasks without dependencies are released at cycle 0, in task order
    for t in range(n):
        if remaining[t] == 0:
            r = res[t]
            qn[r] = _rq_push(qr, qp, qi, res_ptr[r], qn[r], 0, prio[t], t)
            if pending[r] == 0 and n_idle[r] > 0:
                pending[r] = 1
                hsize = _ev_push(ht, hk, hi, hsize, 0, disp_key | seq, (EV_DISPATCH << 32) | r)
                seq += 1

    n_events = 0
    n_done = 0
    while hsize > 0:
        now = ht[0]
        key = hk[0]
        item = hi[0]
        hsize = _ev_pop(ht, hk, hi, hsize)
        ev = item >> 32
        x = item & _ID_MASK
        if record:
            log_time[n_events] = now
            log_prio[n_events] = key >> _SEQ_BITS
            log_seq[n_events] = key & ((np.int64(1) << _SEQ_BITS) - 1)
            log_kind[n_events] = ev
            log_id[n_events] = x
        n_events += 1

        if ev == EV_DISPATCH:
            r = x
            pending[r] = 0
            base = res_ptr[r]
            while n_idle[r] > 0 and qn[r] > 0:
                t = _rq_pop(qr, qp, qi, base, qn[r])
                qn[r] -= 1
                n_idle[r] -= 1
                lane_of[t] = idle[lane_ptr[r] + n_idle[r]]
                start[t] = now
                busy[r] += occ[t]
                if kind[t] == _COMPUTE:
                    hsize = _ev_push(ht, hk, hi, hsize, now + occ[t], comp_key | seq, (EV_END << 32) | t)
                    seq += 1
                else:
                    hsize = _ev_push(ht, hk, hi, hsize, now + occ[t], comp_key | seq, (EV_FREE << 32) | t)
                    seq += 1
                    hsize = _ev_push(ht, hk, hi, hsize, now + occ[t] + lat[t], comp_key | seq,
                                     (EV_END << 32) | t)
                    seq += 1
            continue

        t = x
        if ev == EV_FREE or kind[t] == _COMPUTE:  # the task's lane is idle again
            r = res[t]
            idle[lane_ptr[r] + n_idle[r]] = lane_of[t]
            n_idle[r] += 1
            if pending[r] == 0 and qn[r] > 0:
                pending[r] = 1
                hsize = _ev_push(ht, hk, hi, hsize, now, disp_key | seq, (EV_DISPATCH << 32) | r)
                seq += 1
        if ev == EV_FREE:
            continue

        end[t] = now
        n_done += 1
        is_tr = kind[t] != _COMPUTE
        for j in range(user_ptr[t], user_ptr[t + 1]):
            u = user_idx[j]
            if now > ready[u]:
                ready[u] = now
                last_tr[u] = is_tr
            elif now == ready[u] and is_tr:
                last_tr[u] = 1
            remaining[u] -= 1
            if remaining[u] == 0:
                r = res[u]
                qn[r] = _rq_push(qr, qp, qi, res_ptr[r], qn[r], ready[u], prio[u], u)
                if pending[r] == 0 and n_idle[r] > 0:
                    pending[r] = 1
                    hsize = _ev_push(ht, hk, hi, hsize, now, disp_key | seq, (EV_DISPATCH << 32) | r)
                    seq += 1

    return (start, end, ready, last_tr, lane_of, busy, n_done, n_events, log_time[:n_events],
            log_prio[:n_events], log_seq[:n_events], log_kind[:n_events], log_id[:n_events])
