"""The request-level process: requests arrive, join a running batch, and leave token by token.

Contract: ``serve(requests, cost, max_batch=, kv_capacity_tokens=, max_prefill_tokens=)`` runs
the process below with simpy, taking each iteration's time and energy from ``cost(P, span, D,
mean context)``, and returns a ``ServingOutcome``: one ``RequestRecord`` per request (by id),
every time between tokens, the iterations, their energy and batch sizes, and the first arrival
and last finish. It is deterministic: same requests and costs, same outcome.

Arrivals join a FCFS queue. Before every iteration the scheduler admits queued requests, in
order, while the batch has fewer than ``max_batch`` requests, the KV cache can hold the
request's prompt and all its output tokens (reserved at admission, released when it finishes: a
request that does not fit waits, it is never dropped or preempted) and the iteration's prompt
tokens stay within ``max_prefill_tokens`` (a longer prompt is prefilled alone). An iteration runs
the new requests' prefill and one decode step of every running request together (Orca-style
mixed batches); at its end the new requests have their first token and each decoding request one
more. The server idles until the next arrival when nothing is queued or running.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from workloads.serving import Request
from simulator.serving.costs import IterationCost
from simulator.serving.plan import RequestRecord


class _Running:
    """A request in the running batch: when it was admitted, its tokens so far and their gaps."""

    __slots__ = ("req", "admitted", "first", "last", "generated", "tbt_sum")

    def __init__(self, req: Request, admitted: float) -> None:
        self.req, self.admitted = req, admitted
        self.first = self.last = 0.0
        self.generated = 0
        self.tbt_sum = 0.0


@dataclass
class ServingOutcome:
    """What ``serve`` returns: the records by request id, every gap between two tokens of a
    request (seconds), the iterations with their summed energy and batch sizes, and the last
    finish and first arrival (seconds)."""

    records: list[RequestRecord]
    tbt: np.ndarray
    iterations: int
    energy_pj: float
    batch_sum: int
    end_s: float
    start_s: float


def serve(requests: list[Request] | tuple[Request, ...], cost: Callable[[int, float, int, float], IterationCost],
          *, max_batch: int, kv_capacity_tokens: int, max_prefill_tokens: int,
          on_iteration: Callable[[IterationCost], None] | None = None) -> ServingOutcome:
    """Run the continuous-batching process (module docstring) with simpy; ``cost(P, span, D,
    mean context)`` gives each iteration's cost, ``on_iteration`` sees each one as it starts."""
    import simpy

    env = simpy.Environment()
    queue: deque[Request] = deque()
    wake: list = [None]
    records: list[RequestRecord] = []
    tbt: list[float] = []
    stats = {"iterations": 0, "energy": 0.0, "batch": 0}
    ordered = sorted(requests, key=lambda r: (r.arrival_s, r.id))

    def arrivals() -> Generator[simpy.Event, Any, None]:
        for r in ordered:
            if r.arrival_s > env.now:
                yield env.timeout(r.arrival_s - env.now)
            queue.append(r)
            if wake[0] is not None and not wake[0].triggered:
                wake[0].succeed()

    def server() -> Generator[simpy.Event, Any, None]:
        running: list[_Running] = []
        reserved = 0
        ctx_sum = 0  # tokens in the KV caches of the decoding requests
        done = 0
        while done < len(ordered):
            new: list[Request] = []
            prompt = 0
            while queue and len(running) + len(new) < max_batch:
                r = queue[0]
                need = r.input_tokens + r.output_tokens
                if reserved + need > kv_capacity_tokens:
                    break  # FCFS: the head waits for room, nobody overtakes it
                if new and prompt + r.input_tokens > max_prefill_tokens:
                    break
                queue.popleft()
                new.append(r)
                reserved += need
                prompt += r.input_tokens
            if not new and not running:
                wake[0] = env.event()
                yield wake[0]
                wake[0] = None
                continue
            start = env.now
            d = len(running)
            span = sum(r.input_tokens ** 2 for r in new) / prompt if prompt else 1.0
            c = cost(prompt, span, d, ctx_sum / d if d else 0.0)
            if on_iteration is not None:
                on_iteration(c)
            stats["iterations"] += 1
            stats["energy"] += c.energy_pj
            stats["batch"] += d + len(new)
            yield env.timeout(c.seconds)
            now = env.now
            still: list[_Running] = []
            for s in running:
                gap = now - s.last
                tbt.append(gap)
                s.tbt_sum += gap
                s.last = now
                s.generated += 1
                ctx_sum += 1
                if s.generated >= s.req.output_tokens:
                    done += 1
                    reserved -= s.req.input_tokens + s.req.output_tokens
                    ctx_sum -= s.req.input_tokens + s.generated - 1
                    records.append(_record(s, now))
                else:
                    still.append(s)
            for r in new:
                s = _Running(r, start)
                s.first = s.last = now
                s.generated = 1
                if r.output_tokens <= 1:
                    done += 1
                    reserved -= r.input_tokens + r.output_tokens
                    records.append(_record(s, now))
                else:
                    still.append(s)
                    ctx_sum += r.input_tokens
            running = still
        stats["end"] = env.now

    env.process(arrivals())
    env.process(server())
    env.run()
    records.sort(key=lambda r: r.id)
    start = min((r.arrival_s for r in ordered), default=0.0)
    return ServingOutcome(records, np.asarray(tbt, dtype=np.float64), stats["iterations"], stats["energy"],
                          stats["batch"], stats.get("end", 0.0), start)


def _record(s: _Running, now: float) -> RequestRecord:
    gaps = s.generated - 1
    return RequestRecord(s.req.id, s.req.arrival_s, s.req.input_tokens, s.req.output_tokens, s.admitted,
                         s.first, now, s.tbt_sum / gaps if gaps else 0.0)

