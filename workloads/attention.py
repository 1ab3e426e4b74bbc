"""Attention-only and encoder-layer workloads of the FuseMax study (Nayak et al., MICRO 2024).

Contract: ``attention_graph(model, batch=, sequence=)`` is one self-attention of ``model``: Q, K
and V are graph inputs of shape (batch, heads, sequence, E); ``layers.0.attn.qk`` (a MatMul of
batch x heads groups of (sequence x E) @ (E x sequence)), ``layers.0.attn.softmax`` and
``layers.0.attn.av`` ((sequence x sequence) @ (sequence x F)) produce (batch, sequence, heads x F).
``layer_graph`` adds the layer's matrix multiplications around it, as the FuseMax artifact's
end-to-end figure counts them: the Q, K, V and output projections (D x heads E) and the two FFN
matrices (D x S, S x D); norms, residual adds and the FFN activation are not part of it.

Registered (family ``encoder``, so ``sequence`` applies and the phase is ``prefill``):
``fusemax-<m>-attention`` and ``fusemax-<m>-layer`` for ``m`` in ``bert``, ``trxl``, ``t5``, ``xlm``.
"""

from __future__ import annotations

from dataclasses import dataclass

from workloads.errors import ConfigError, Problem
from workloads.graph import OpGraph, PrecisionPolicy
from workloads.ops import MatMul, TensorSpec
from workloads.registry import register_model

__all__ = ["AttentionShape", "FUSEMAX_MODELS", "attention_graph", "layer_graph"]


@dataclass(frozen=True)
class AttentionShape:
    """A transformer's attention and FFN dimensions."""

    name: str
    heads: int  # H
    e: int  # query/key head dimension E
    f: int  # value head dimension F
    d: int  # model dimension D
    ffn: int  # FFN inner dimension S


_SRC = "FPSG-UIUC/micro24-fusemax-artifact@13cd17d, data/pregenerated/flat_validation.csv (columns D, E, F, H, S)"
FUSEMAX_MODELS: dict[str, AttentionShape] = {
    "bert": AttentionShape("BERT", heads=12, e=64, f=64, d=768, ffn=3072),
    "trxl": AttentionShape("TrXL", heads=16, e=64, f=64, d=1024, ffn=4096),
    "t5": AttentionShape("T5", heads=8, e=64, f=64, d=512, ffn=2048),
    "xlm": AttentionShape("XLM", heads=16, e=128, f=128, d=2048, ffn=8192),
}


def _check(model: str, batch: int, sequence: int) -> AttentionShape:
    problems = []
    if model not in FUSEMAX_MODELS:
        problems.append(Problem(None, "workload.model", f"'{model}' is not one of {', '.join(FUSEMAX_MODELS)}"))
    for key, value in (("batch", batch), ("sequence", sequence)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(Problem(None, f"workload.{key}", f"expected an integer >= 1, found {value!r}"))
    if problems:
        raise ConfigError(problems)
    return FUSEMAX_MODELS[model]


def _attention(g: OpGraph, m: AttentionShape, batch: int, seq: int, q: TensorSpec, k: TensorSpec,
               v: TensorSpec, phase: str) -> TensorSpec:
    act = g.precision.activations
    blk = "layers.0"
    s = g.add(MatMul(name=f"{blk}.attn.qk", inputs=(q, k), batch=batch * m.heads, M=seq, K=m.e, N=seq,
                     output=TensorSpec(f"{blk}.attn.qk.out", (batch * m.heads, seq, seq), act),
                     block=blk, phase=phase))
    p = g.softmax(f"{blk}.attn.softmax", s, block=blk, phase=phase)
    return g.add(MatMul(name=f"{blk}.attn.av", inputs=(p, v), batch=batch * m.heads, M=seq, K=seq, N=m.f,
                        output=TensorSpec(f"{blk}.attn.av.out", (batch, seq, m.heads * m.f), act),
                        block=blk, phase=phase))


def attention_graph(model: str, *, batch: int = 64, sequence: int = 1024,
                    precision: PrecisionPolicy | None = None) -> OpGraph:
    """One self-attention of ``model`` (see the module docstring)."""
    m = _check(model, batch, sequence)
    g = OpGraph(f"fusemax-{model}-attention", precision or PrecisionPolicy(weights="int16", activations="int16"),
                meta={"model": f"fusemax-{model}-attention", "batch": batch, "sequence": sequence,
                      "tokens": batch * sequence})
    q = g.input("q", (batch, m.heads, sequence, m.e))
    k = g.input("k", (batch, m.heads, sequence, m.e))
    v = g.input("v", (batch, m.heads, sequence, m.f))
    _attention(g, m, batch, sequence, q, k, v, "prefill")
    return g


def layer_graph(model: str, *, batch: int = 64, sequence: int = 1024,
                precision: PrecisionPolicy | None = None) -> OpGraph:
    """The attention of ``model`` with the layer's six matrix multiplications around it."""
    m = _check(model, batch, sequence)
    g = OpGraph(f"fusemax-{model}-layer", precision or PrecisionPolicy(weights="int16", activations="int16"),
                meta={"model": f"fusemax-{model}-layer", "batch": batch, "sequence": sequence,
                      "tokens": batch * sequence})
    blk = "layers.0"
    x = g.input("hidden", (batch, sequence, m.d))
    q = g.linear(f"{blk}.attn.q", x, m.heads * m.e, bias=False, block=blk, phase="prefill")
    k = g.linear(f"{blk}.attn.k", x, m.heads * m.e, bias=False, block=blk, phase="prefill")
    v = g.linear(f"{blk}.attn.v", x, m.heads * m.f, bias=False, block=blk, phase="prefill")
    a = _attention(g, m, batch, sequence, q, k, v, "prefill")
    o = g.linear(f"{blk}.attn.o", a, m.d, bias=False, block=blk, phase="prefill")
    h = g.linear(f"{blk}.ffn.up", o, m.ffn, bias=False, block=blk, phase="prefill")
    g.linear(f"{blk}.ffn.down", h, m.d, bias=False, block=blk, phase="prefill")
    return g


def _builder(key: str, fn):
    def builder(*, batch: int = 64, sequence: int = 1024, phase: str = "prefill",
                precision: PrecisionPolicy | None = None, parallelism: dict | None = None) -> OpGraph:
        if phase != "prefill":
            raise ConfigError(Problem(None, "workload.phase", f"only 'prefill' (an encoder); found {phase!r}"))
        if parallelism and any(v != 1 for k, v in parallelism.items() if k != "microbatches"):
            raise ConfigError(Problem(None, "system.parallelism", "not supported by the FuseMax workloads"))
        return fn(key, batch=batch, sequence=sequence, precision=precision)

    return builder


def _register(key: str) -> None:
    m = FUSEMAX_MODELS[key]
    for part, fn in (("attention", attention_graph), ("layer", layer_graph)):
        what = "self-attention" if part == "attention" else "self-attention and the layer's matrix multiplications"
        register_model(f"fusemax-{key}-{part}", family="encoder",
                       description=f"{m.name} {what} (H{m.heads}, E={m.e}, F={m.f}, D={m.d}, S={m.ffn})",
                       source=_SRC)(_builder(key, fn))


for _key in FUSEMAX_MODELS:
    _register(_key)
