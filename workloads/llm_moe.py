"""Mixture-of-experts layers: the expert load model and the MoE block of an LLM graph.

Contract: ``ExpertLoad.parse(options)`` validates a ``workload.expert_load`` option (or raises one
``ConfigError``); ``load.tokens_per_expert(tokens, experts, k, layer)`` says how many token rows
each expert receives in a layer. The counts always sum to ``tokens * k`` and no expert gets more
than ``tokens`` rows (a token picks k distinct experts). Distributions:

- ``uniform``: ``tokens * k`` spread evenly; the remainder goes one row each to the lowest-numbered
  experts.
- ``explicit``: ``shares`` (one non-negative number per expert) give each expert's fraction.
- ``zipf``: the expert of rank r (1 = hottest) gets a share proportional to ``1 / r**alpha``;
  which expert holds which rank is a permutation drawn per layer from ``seed`` (deterministic).

Skewed counts are the expected counts apportioned to integers (largest remainder, ties to the
lower expert number), not a random sample; an expert over its ``tokens`` cap passes the excess to
the others in proportion to their shares. ``moe_block`` adds the router, top-k selection, one MLP
per expert that receives rows (idle experts get no ops; their weights still count in
``llm_param_counts``; each an MLP of the family's shape, ``moe_intermediate_size`` wide) and the
weighted combine to a graph, with the all-to-alls of expert
parallelism and, beside tensor-parallel attention, the token shard and its all-gather
(``workloads.llm_parallel`` says where each runs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np

from workloads.errors import Problems, did_you_mean
from workloads.graph import OpGraph
from workloads.ops import Elementwise, Reshape, TensorSpec

__all__ = ["ExpertLoad", "MoECombine", "apportion", "moe_block", "DISTRIBUTIONS"]

DISTRIBUTIONS = ("uniform", "explicit", "zipf")
_KEYS = {"uniform": ("distribution",), "explicit": ("distribution", "shares"),
         "zipf": ("distribution", "alpha", "seed")}


def apportion(total: int, shares: list[float], cap: int) -> list[int]:
    """Integers proportional to ``shares`` summing to ``total``, each at most ``cap``.

    Largest-remainder rounding with ties to the lower index; rows over the cap go to the
    experts below it in proportion to their shares (evenly if those shares are all zero).
    """
    n = len(shares)
    if total > cap * n:
        raise ValueError(f"cannot place {total} rows on {n} experts of at most {cap} rows each")
    counts = [0] * n
    free = [i for i in range(n)]
    remaining = total
    while remaining > 0:
        w = [Fraction(shares[i]) for i in free]
        if sum(w) == 0:
            w = [Fraction(1)] * len(free)
        s = sum(w)
        quotas = [remaining * x / s for x in w]
        alloc = [math.floor(q) for q in quotas]
        order = sorted(range(len(free)), key=lambda j: (-(quotas[j] - alloc[j]), free[j]))
        for j in order[:remaining - sum(alloc)]:
            alloc[j] += 1
        still = []
        for j, i in enumerate(free):
            give = min(alloc[j], cap - counts[i])
            counts[i] += give
            remaining -= give
            if counts[i] < cap:
                still.append(i)
        free = still
    return counts


@dataclass(frozen=True)
class ExpertLoad:
    """How a layer's routed rows spread over the experts (see the module docstring)."""

    distribution: str = "uniform"
    shares: tuple[float, ...] | None = None  # explicit
    alpha: float = 1.0  # zipf exponent (0: uniform shares)
    seed: int = 0  # zipf: which expert holds which rank, per layer

    @classmethod
    def parse(cls, value: Any, *, experts: int, path: str = "workload.expert_load",
              file: str | None = None) -> "ExpertLoad":
        """An ``ExpertLoad`` from None (uniform), an ``ExpertLoad`` or a dict like
        ``{"distribution": "zipf", "alpha": 1.2, "seed": 0}``."""
        if value is None:
            return cls()
        if isinstance(value, ExpertLoad):
            value = value.to_dict()
        probs = Problems(file)
        if not isinstance(value, dict):
            probs.add(path, f"expected a mapping like {{distribution: zipf, alpha: 1.2, seed: 0}}, "
                            f"found {value!r}")
            probs.raise_if_any()
        dist = value.get("distribution", "uniform")
        if dist not in DISTRIBUTIONS:
            probs.add(f"{path}.distribution", f"expected one of {', '.join(DISTRIBUTIONS)}, found "
                                              f"{dist!r}", hint=did_you_mean(str(dist), DISTRIBUTIONS))
            probs.raise_if_any()
        for key in value:
            if key not in _KEYS[dist]:
                probs.add(f"{path}.{key}", f"unknown key for distribution '{dist}' (accepts: "
                                           f"{', '.join(_KEYS[dist])})", hint=did_you_mean(key, _KEYS[dist]))
        shares, alpha, seed = None, 1.0, 0
        if dist == "explicit":
            raw = value.get("shares")
            if not isinstance(raw, (list, tuple)) or not all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) for x in raw):
                probs.add(f"{path}.shares", f"expected a list of {experts} numbers, found {raw!r}")
            elif len(raw) != experts:
                probs.add(f"{path}.shares", f"expected one share per expert ({experts}), found {len(raw)}")
            elif any(x < 0 or not math.isfinite(x) for x in raw) or sum(raw) <= 0:
                probs.add(f"{path}.shares", f"shares must be finite, >= 0 and not all 0, found {list(raw)}")
            else:
                shares = tuple(float(x) for x in raw)
        if dist == "zipf":
            alpha = value.get("alpha", 1.0)
            if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha < math.inf:
                probs.add(f"{path}.alpha", f"expected a number >= 0, found {alpha!r}")
            seed = value.get("seed", 0)
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                probs.add(f"{path}.seed", f"expected an integer >= 0, found {seed!r}")
        probs.raise_if_any()
        return cls(dist, shares, float(alpha), int(seed))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"distribution": self.distribution}
        if self.distribution == "explicit":
            out["shares"] = list(self.shares) if self.shares is not None else None
        if self.distribution == "zipf":
            out.update(alpha=self.alpha, seed=self.seed)
        return out

    def expert_shares(self, experts: int, layer: int) -> list[float]:
        """Each expert's fraction of the routed rows in ``layer``."""
        if self.distribution == "explicit":
            total = sum(self.shares)
            return [s / total for s in self.shares]
        if self.distribution == "zipf":
            weights = np.arange(1, experts + 1, dtype=np.float64) ** -self.alpha
            rank = np.random.default_rng([self.seed, layer]).permutation(experts)  # expert -> rank
            w = weights[rank]
            return list(w / w.sum())
        return [1.0 / experts] * experts

    def tokens_per_expert(self, tokens: int, experts: int, k: int, layer: int = 0) -> list[int]:
        """Rows each expert receives; the sum is ``tokens * k``, each at most ``tokens``."""
        total = tokens * k
        if self.distribution == "uniform":
            base, rem = divmod(total, experts)
            return [base + (1 if e < rem else 0) for e in range(experts)]
        return apportion(total, self.expert_shares(experts, layer), tokens)


@dataclass(frozen=True, kw_only=True)
class MoECombine(Elementwise):
    """``moe.combine``: each token's output is the sum over its k experts of the routing weight
    times that expert's output row. Inputs: the routing weights (tokens, k), then the output rows
    of each active expert. An element-wise op (kind ``elementwise``) whose vector ops are one
    multiply and one add per routed element: ``2 * sum(expert output elements)``."""

    kind: ClassVar[str] = "elementwise"

    def loop_dims(self) -> dict[str, int]:
        *lead, h = self.output.shape
        return {"d0": math.prod(lead), "d1": h, "k": self.inputs[0].shape[-1]}

    def operand_dims(self) -> dict[str, tuple[str, ...]]:
        dims = {self.inputs[0].name: ("d0", "k"), self.output.name: ("d0", "d1")}
        for t in self.inputs[1:]:  # an expert's rows: a gathered subset of the tokens
            dims[t.name] = ("d0", "d1")
        return dims

    @property
    def vector_ops(self) -> int:
        return 2 * sum(t.numel for t in self.inputs[1:])


def moe_block(g: OpGraph, cfg, x: TensorSpec, *, load: ExpertLoad, layer: int, block: str,
              phase: str, act: str, linear, expert_parallel: int = 1, token_shards: int = 1,
              collective=None) -> tuple[TensorSpec, list[int]]:
    """Router, top-k, the experts that receive rows, combine. Returns (output, rows per expert).

    ``x`` is the normed hidden state (..., hidden); ``linear(name, x, out, bias)`` adds a Linear;
    ``collective(name, kind, x, block, out_shape=, group=, per_device_bytes=, inputs=)`` adds a
    Collective. Each active expert reads its rows through ``expert{e}.dispatch``, a view of the
    rows routed to it (a gather fused into the expert's GEMM, as grouped-GEMM MoE kernels do).
    With ``expert_parallel`` > 1 the rows travel to the experts' devices and back in two
    all-to-alls (``moe.dispatch``, ``moe.return``). With ``token_shards`` > 1 (tensor-parallel
    attention over the expert group: every device holds the same rows) the device routes only
    its ceil(rows / token_shards) rows (the view ``moe.shard``) and an all-gather over the
    ``token_shards`` devices (``moe.allgather``) brings every device all the combined rows.
    """
    h = cfg.hidden_size
    tokens = x.numel // h
    experts, k = cfg.num_local_experts, cfg.num_experts_per_tok
    pre = f"{block}.moe"
    full = x
    if token_shards > 1:  # the tensor-parallel peers hold the same rows: each routes its share
        tokens = -(-tokens // token_shards)
        x = g.add(Reshape(name=f"{pre}.shard", inputs=(full,), block=block, phase=phase,
                          output=full.like(f"{pre}.shard.out", (tokens, h))))
    logits = linear(f"{pre}.router", x, experts, False)
    weights = g.topk(f"{pre}.topk", logits, k, block=block, phase=phase)
    ep = expert_parallel
    # with expert parallelism every device of the group routes its own tokens: the experts
    # receive the rows of tokens * ep tokens, and the rows travel in an all-to-all
    counts = load.tokens_per_expert(tokens * ep, experts, k, layer)
    row_bytes = h * x.element_bytes
    source = x
    if ep > 1:
        sent = round(tokens * k * (ep - 1) / ep * row_bytes)  # rows leaving each device
        source = collective(f"{pre}.dispatch", "all_to_all", x, block, out_shape=(tokens * ep * k, h),
                            group=ep, per_device_bytes=(sent,) * ep)
    outs, owner = [], []
    for e, rows in enumerate(counts):
        if rows == 0:
            continue
        name = f"{pre}.expert{e}"
        xe = g.add(Reshape(name=f"{name}.dispatch", inputs=(source,), block=block, phase=phase,
                           output=TensorSpec(f"{name}.dispatch.out", (rows, h), g.precision.activations)))
        inter = cfg.expert_intermediate_size
        if cfg.gated_mlp:  # gate and up projections, act(gate) * up (Mixtral, Grok-1)
            gate = linear(f"{name}.gate", xe, inter, cfg.mlp_bias)
            up = linear(f"{name}.up", xe, inter, cfg.mlp_bias)
            a = g.elementwise(f"{name}.act", f"{act}_mul", gate, up, ops_per_element=2, block=block, phase=phase)
        else:  # a two-matrix MLP like the family's dense one (GLaM)
            a = g.elementwise(f"{name}.act", act, linear(f"{name}.up", xe, inter, cfg.mlp_bias),
                              block=block, phase=phase)
        outs.append(linear(f"{name}.down", a, h, cfg.mlp_bias))
        owner.append(e % ep)
        if ep > 1 and e % ep:
            for part in ("dispatch", "gate", "up", "act", "down") if cfg.gated_mlp else ("dispatch", "up", "act", "down"):
                g.set_device(f"{name}.{part}", e % ep)
    if ep > 1:  # each device sends back what its experts produced for other devices' tokens
        back = [0] * ep
        for rows_out, d in zip(outs, owner):
            back[d] += round(rows_out.numel // h * (ep - 1) / ep * row_bytes)
        returned = collective(f"{pre}.return", "all_to_all", outs[0], block, out_shape=(tokens * k, h),
                              group=ep, per_device_bytes=tuple(back), inputs=tuple(outs[1:]))
        outs = [returned]
    y = g.add(MoECombine(name=f"{pre}.combine", inputs=(weights, *outs), function="weighted_sum",
                         ops_per_element=2, block=block, phase=phase,
                         output=TensorSpec(f"{pre}.combine.out", x.shape, g.precision.activations)))
    if token_shards > 1:  # every tensor-parallel peer gets all the rows back (residual add)
        y = collective(f"{pre}.allgather", "all_gather", y, block, out_shape=full.shape, group=token_shards)
    return y, counts
