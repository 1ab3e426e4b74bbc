"""Transformer and LLM workloads: one forward pass of a Hugging-Face-style config as an ``OpGraph``.

Contract: ``build_llm(cfg, batch=, sequence=, context=, phase=, precision=, expert_load=)``
returns the graph of one forward pass in a phase; ``build_llm_from_file(path, **options)`` does
the same for a user's ``config.json``; every config in ``workloads/configs`` is registered under
its file name (``build_model("llama-2-7b", phase="decode", batch=8, context=2048)``). Bad
options raise one ``ConfigError`` naming the option (``workload.<option>``).

What a pass contains (every op has ``phase`` set and, in layer i, ``block = "layers.{i}"``):

- ``prefill``: ``batch`` sequences of ``sequence`` tokens. Token embedding (a gather of
  batch x sequence rows; OPT/GPT-3/BERT add learned positions, BERT token types and a norm),
  then per layer: ``norm1``, ``attn.q/k/v`` (Linear; the K and V outputs are the KV-cache
  writes: role ``kv_cache`` at the KV precision), ``attn.rotary`` on the queries and
  ``attn.rotary_k`` on the keys (llama family), the views ``attn.k_store`` and ``attn.v_store``
  (decoders: nothing reads them, so the new keys and values are graph outputs, written to the
  cache once), ``attn.qk``, ``attn.softmax``, ``attn.av``,
  ``attn.o``, ``add1``, ``norm2``, the MLP (``mlp.gate``/``mlp.up``/``mlp.act``/``mlp.down``; or
  in a MoE layer, ``cfg.layer_is_moe(i)``: ``moe.router``, ``moe.topk``,
  ``moe.expert{e}.dispatch/gate/up/act/down`` (no ``gate`` for two-matrix experts),
  ``moe.combine``),
  ``add2``. BERT normalizes after the adds (``norm1`` after ``add1``, ``norm2`` after
  ``add2``). Decoders then take the last token of each sequence (``last_token``, a view), the
  final ``norm`` and ``lm_head``: logits are computed for ``batch`` tokens only, as serving
  engines do. BERT ends with its pooler on the first token (``first_token``, ``pooler``,
  ``pooler.tanh``). Attention is dense: the full sequence x sequence scores are computed and the
  causal (or sliding-window) mask applied, not skipped.
- ``decode``: one step for ``batch`` sequences with ``context`` tokens in the KV cache: batch
  tokens go through the layers; the cached keys and values of each layer are graph inputs
  ``layers.{i}.attn.k_cache`` / ``v_cache`` (role ``kv_cache``, the KV precision) holding the
  context + 1 positions attended (a sliding window caps them). The step's own keys and values
  are written into them first: ``attn.qk`` reads the queries through a view ``attn.kv_append``
  of (queries, new keys, new values), so the attention starts once they are in the cache.

Attention shapes (GQA/MQA: G = heads / kv_heads query heads share one K/V head, read once):
``attn.qk`` is a MatMul with batch = batch x kv_heads, M = G x query positions, K = head_dim,
N = key positions; ``attn.av`` has the same batch and M, K = key positions, N = head_dim.
Operands keep their stored layouts ((batch, positions, features) for projections, (batch,
kv_heads, positions, head_dim) for caches); the MatMul's loop bounds are the per-head view.

Precision comes from the ``PrecisionPolicy`` (default fp16 weights, activations and KV cache):
every weight tensor (also embeddings and norms) is stored at ``weights`` with ``group_size``
quantization scales, activations at ``activations``, KV-cache tensors at ``kv_cache``; token ids
are int32. When the LM head is tied to the embedding it is a MatMul reading the table (no second
copy of the parameters; under tensor parallelism the device's rows of it, through the view
``lm_head.table_shard``).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from workloads.errors import ConfigError, Problem, Problems, did_you_mean
from workloads.graph import OpGraph, PrecisionPolicy
from workloads.llm_config import (LLMConfig, kv_cache_bytes, llm_param_counts, load_llm_config,
                                  shipped_config, shipped_config_names)
from workloads.llm_moe import ExpertLoad, moe_block
from workloads.llm_parallel import SINGLE, Parallelism
from workloads.ops import Collective, Linear, MatMul, Reshape, TensorSpec
from workloads.registry import register_model

__all__ = ["build_llm", "build_llm_from_file", "local_config", "PHASES", "DEFAULT_PRECISION", "ROTARY_OPS_PER_ELEMENT",
           "LLMConfig", "llm_param_counts", "kv_cache_bytes", "load_llm_config", "shipped_config"]

PHASES = ("prefill", "decode")
DEFAULT_PRECISION = PrecisionPolicy(weights="fp16", activations="fp16")
ROTARY_OPS_PER_ELEMENT = 3  # x * cos + rotate_half(x) * sin: two multiplies and an add


class _Builder:
    """Adds the ops of one pass to ``g``; knows the config, the phase and the precision."""

    def __init__(self, g: OpGraph, cfg: LLMConfig, phase: str, par: Parallelism = SINGLE,
                 vocab: int | None = None):
        self.g, self.cfg, self.phase, self.par = g, cfg, phase, par
        self.p = g.precision
        self.vocab = vocab or cfg.vocab_size  # the LM head's columns on this device

    def collective(self, name: str, kind: str, x: TensorSpec, block: str,
                   out_shape: tuple[int, ...] | None = None, group: int | None = None,
                   per_device_bytes: tuple[int, ...] = (), inputs: tuple[TensorSpec, ...] = ()) -> TensorSpec:
        n = group or self.par.tensor
        out = TensorSpec(f"{name}.out", tuple(out_shape or x.shape), x.precision)
        return self.g.add(Collective(name=name, inputs=(x, *inputs), output=out, collective=kind,
                                     group=tuple(range(n)), per_device_bytes=per_device_bytes,
                                     block=block, phase=self.phase))

    def linear(self, name: str, x: TensorSpec, out: int, bias: bool, block: str,
               role: str = "activation") -> TensorSpec:
        if role == "activation":
            return self.g.linear(name, x, out, bias=bias, block=block, phase=self.phase)
        *lead, k = x.shape
        weights = [self.p.weight(f"{name}.weight", (k, out))]
        if bias:
            weights.append(self.p.weight(f"{name}.bias", (out,)))
        return self.g.add(Linear(name=name, inputs=(x,), weights=tuple(weights),
                                 output=TensorSpec(f"{name}.out", (*lead, out), self.p.kv, role),
                                 tokens=x.numel // k, in_features=k, out_features=out,
                                 block=block, phase=self.phase))

    def matmul(self, name: str, a: TensorSpec, b: TensorSpec, *, batch: int, M: int, K: int, N: int,
               out_shape: tuple[int, ...], block: str) -> TensorSpec:
        out = TensorSpec(f"{name}.out", tuple(out_shape), self.p.activations)
        return self.g.add(MatMul(name=name, inputs=(a, b), output=out, batch=batch, M=M, K=K, N=N,
                                 block=block, phase=self.phase))

    def view(self, name: str, x: TensorSpec, shape: tuple[int, ...], block: str,
             like: TensorSpec | None = None) -> TensorSpec:
        out = (like.like(f"{name}.out", shape) if like is not None
               else TensorSpec(f"{name}.out", shape, self.p.activations))
        return self.g.add(Reshape(name=name, inputs=(x,), output=out, block=block, phase=self.phase))

    def ew(self, name: str, function: str, *xs: TensorSpec, block: str, ops: int = 1) -> TensorSpec:
        return self.g.elementwise(name, function, *xs, ops_per_element=ops, block=block, phase=self.phase)

    def kv_store(self, blk: str, k: TensorSpec, v: TensorSpec) -> None:
        """This pass's keys and values are written to the KV cache: views ``{blk}.attn.k_store`` and
        ``{blk}.attn.v_store`` (they move no data and cost nothing) read them and nothing reads
        the views, so the new rows are graph outputs, written off chip once by the projection that
        makes them (the cache write), whoever else reads them."""
        for part, t in (("k", k), ("v", v)):
            if f"{blk}.attn.{part}_store" not in self.g:
                self.view(f"{blk}.attn.{part}_store", t, t.shape, blk, like=t)

    def kv_append(self, blk: str, q: TensorSpec, k: TensorSpec, v: TensorSpec, name: str = "attn") -> TensorSpec:
        """Decode attention reads the KV cache after this step's keys and values are in it.

        The new rows are stored (``kv_store``), and a view ``{blk}.{name}.kv_append`` joins the
        queries with them; QK^T reads the queries through it, so the attention (and AV after it)
        starts only once the new keys and values are written. The view's output is the queries
        (a view aliases its first input: the bytes and residency of ``q`` are unchanged).
        """
        self.kv_store(blk, k, v)
        out = q.like(f"{blk}.{name}.kv_append.out", q.shape)
        return self.g.add(Reshape(name=f"{blk}.{name}.kv_append", inputs=(q, k, v), output=out, block=blk,
                                  phase=self.phase))

    def norm(self, name: str, x: TensorSpec, block: str) -> TensorSpec:
        return self.g.norm(name, x, self.cfg.norm, block=block, phase=self.phase)

    # ---- parts -----------------------------------------------------------------------------
    def embed(self, batch: int, positions: int) -> TensorSpec:
        cfg, g, blk = self.cfg, self.g, "embed"
        h = cfg.hidden_size
        ids = g.input("input_ids", (batch, positions), "int32")
        x = g.embedding("embed_tokens", ids, cfg.vocab_size, h, block=blk, phase=self.phase)
        if not cfg.learned_positions:
            return x
        parts = [x, g.embedding("embed_positions", g.input("position_ids", (batch, positions), "int32"),
                                cfg.max_position_embeddings + cfg.position_offset, h, block=blk,
                                phase=self.phase)]
        if cfg.type_vocab_size:
            parts.append(g.embedding("embed_types", g.input("token_type_ids", (batch, positions), "int32"),
                                     cfg.type_vocab_size, h, block=blk, phase=self.phase))
        x = self.ew("embed_add", "add", *parts, block=blk)
        return self.norm("embed_norm", x, blk) if cfg.is_encoder else x

    def attention(self, x: TensorSpec, blk: str, batch: int, positions: int, span: int) -> TensorSpec:
        cfg = self.cfg
        kvh, group, hd, bias = cfg.num_key_value_heads, cfg.heads_per_group, cfg.head_dim, cfg.attention_bias
        q = self.linear(f"{blk}.attn.q", x, cfg.q_dim, bias, blk)
        k = self.linear(f"{blk}.attn.k", x, cfg.kv_dim, bias, blk, role="kv_cache")
        v = self.linear(f"{blk}.attn.v", x, cfg.kv_dim, bias, blk, role="kv_cache")
        if cfg.rotary:
            q = self.ew(f"{blk}.attn.rotary", "rotary", q, block=blk, ops=ROTARY_OPS_PER_ELEMENT)
            k = self.ew(f"{blk}.attn.rotary_k", "rotary", k, block=blk, ops=ROTARY_OPS_PER_ELEMENT)
        if self.phase == "decode":  # the cache after this step's write: span positions per head
            q = self.kv_append(blk, q, k, v)
            k = self.g.kv_cache_input(f"{blk}.attn.k_cache", (batch, kvh, span, hd))
            v = self.g.kv_cache_input(f"{blk}.attn.v_cache", (batch, kvh, span, hd))
        elif not cfg.is_encoder:  # prefill writes the prompt's keys and values to the cache
            self.kv_store(blk, k, v)
        M = group * positions
        s = self.matmul(f"{blk}.attn.qk", q, k, batch=batch * kvh, M=M, K=hd, N=span,
                        out_shape=(batch * kvh, M, span), block=blk)
        s = self.g.softmax(f"{blk}.attn.softmax", s, block=blk, phase=self.phase)
        ctx = self.matmul(f"{blk}.attn.av", s, v, batch=batch * kvh, M=M, K=span, N=hd,
                          out_shape=(batch, positions, cfg.q_dim), block=blk)
        o = self.linear(f"{blk}.attn.o", ctx, cfg.hidden_size, bias, blk)
        if self.par.tensor > 1:  # row-parallel projection: sum the partial outputs
            o = self.collective(f"{blk}.attn.allreduce", "all_reduce", o, blk)
        return o

    def mlp(self, x: TensorSpec, blk: str) -> TensorSpec:
        cfg = self.cfg
        inter, bias, act = cfg.intermediate_size, cfg.mlp_bias, cfg.hidden_act
        if cfg.gated_mlp:
            gate = self.linear(f"{blk}.mlp.gate", x, inter, bias, blk)
            up = self.linear(f"{blk}.mlp.up", x, inter, bias, blk)
            a = self.ew(f"{blk}.mlp.act", f"{act}_mul", gate, up, block=blk, ops=2)
        else:
            a = self.ew(f"{blk}.mlp.act", act, self.linear(f"{blk}.mlp.up", x, inter, bias, blk), block=blk)
        y = self.linear(f"{blk}.mlp.down", a, cfg.hidden_size, bias, blk)
        if self.par.tensor > 1:
            y = self.collective(f"{blk}.mlp.allreduce", "all_reduce", y, blk)
        return y

    def layer(self, i: int, x: TensorSpec, batch: int, positions: int, span: int,
              load: ExpertLoad | None) -> tuple[TensorSpec, list[int] | None]:
        cfg, blk = self.cfg, f"layers.{i}"
        pre = cfg.pre_norm
        a = self.attention(self.norm(f"{blk}.norm1", x, blk) if pre else x, blk, batch, positions, span)
        x = self.ew(f"{blk}.add1", "add", x, a, block=blk)
        if not pre:
            x = self.norm(f"{blk}.norm1", x, blk)
        m_in = self.norm(f"{blk}.norm2", x, blk) if pre else x
        counts = None
        if cfg.layer_is_moe(i):
            m, counts = moe_block(self.g, cfg, m_in, load=load, layer=i, block=blk, phase=self.phase,
                                  act=cfg.hidden_act,
                                  linear=lambda n, t, out, bias: self.linear(n, t, out, bias, blk),
                                  expert_parallel=self.par.expert, token_shards=self.par.token_shards,
                                  collective=self.collective)
            if self.par.expert_tensor > 1:  # tensor-parallel experts: sum the partial outputs
                m = self.collective(f"{blk}.moe.allreduce", "all_reduce", m, blk)
        else:
            m = self.mlp(m_in, blk)
        x = self.ew(f"{blk}.add2", "add", x, m, block=blk)
        if not pre:
            x = self.norm(f"{blk}.norm2", x, blk)
        return x, counts

    def head(self, x: TensorSpec, batch: int) -> TensorSpec:
        cfg, g, blk = self.cfg, self.g, "head"
        h = cfg.hidden_size
        if cfg.is_encoder:
            x = self.view("first_token", x, (batch, h), "pooler")
            return self.ew("pooler.tanh", "tanh", self.linear("pooler", x, h, True, "pooler"), block="pooler")
        if self.phase == "prefill":
            x = self.view("last_token", x, (batch, h), blk)
        x = self.norm("norm", x, blk)
        if not cfg.tie_word_embeddings:
            y = self.linear("lm_head", x, self.vocab, False, blk)
        else:
            table = g.tensor("embed_tokens.weight")
            if self.par.tensor > 1:  # this device's rows of the vocabulary, not the whole table
                table = self.view("lm_head.table_shard", table, (self.vocab, h), blk, like=table)  # tied: read the embedding table as (K, N)
            y = self.matmul("lm_head", x, table, batch=1, M=x.numel // h, K=h, N=self.vocab,
                            out_shape=(*x.shape[:-1], self.vocab), block=blk)
        if self.par.tensor > 1:  # vocabulary-parallel head: gather the logits
            y = self.collective("lm_head.allgather", "all_gather", y, blk,
                                out_shape=(*y.shape[:-1], self.vocab * self.par.tensor))
        return y


def _check_options(cfg: LLMConfig, batch: Any, sequence: Any, context: Any, phase: Any,
                   precision: Any, expert_load: Any) -> tuple[int | None, ExpertLoad | None]:
    """Validate the options; return the decode context (None for prefill) and the expert load."""
    probs = Problems()

    def count(key: str, value: Any, minimum: int) -> bool:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            probs.add(f"workload.{key}", f"expected an integer >= {minimum}, found {value!r}")
            return False
        return True

    if phase not in PHASES:
        probs.add("workload.phase", f"expected one of {', '.join(PHASES)}, found {phase!r}",
                  hint=did_you_mean(str(phase), PHASES))
    elif phase == "decode" and cfg.is_encoder:
        probs.add("workload.phase", f"'{cfg.name}' is an encoder ({cfg.model_type}: bidirectional "
                                    f"attention, no KV cache): only phase 'prefill' is defined")
    count("batch", batch, 1)
    seq_ok = count("sequence", sequence, 1)
    if phase == "prefill" and context is not None:
        probs.add("workload.context", f"context ({context}) applies to phase 'decode' only; prefill "
                                      f"processes 'sequence' prompt tokens")
    if phase == "decode" and context is None:
        context = sequence if seq_ok else None  # the experiment's 'sequence' is the context in decode
    ctx_ok = phase != "decode" or (context is not None and count("context", context, 0))
    limit = cfg.max_position_embeddings
    if cfg.learned_positions and limit is not None:
        if phase == "prefill" and seq_ok and sequence > limit:
            probs.add("workload.sequence", f"{sequence} tokens exceed max_position_embeddings "
                                           f"{limit} of '{cfg.name}' (learned position table)")
        if phase == "decode" and ctx_ok and context + 1 > limit:
            probs.add("workload.context", f"context {context} + 1 new token exceeds "
                                          f"max_position_embeddings {limit} of '{cfg.name}'")
    if precision is not None and not isinstance(precision, PrecisionPolicy):
        probs.add("workload.precision", f"expected a PrecisionPolicy, found {type(precision).__name__}")
    load = None
    if expert_load is not None and not cfg.is_moe:
        probs.add("workload.expert_load", f"'{cfg.name}' has no experts (a dense MLP)")
    elif cfg.is_moe:
        try:
            load = ExpertLoad.parse(expert_load, experts=cfg.num_local_experts)
        except ConfigError as exc:
            probs.extend(exc.problems)
    probs.raise_if_any()
    return (context if phase == "decode" else None), load


def build_llm(cfg: LLMConfig, *, batch: int = 1, sequence: int = 512, context: int | None = None,
              phase: str = "prefill", precision: PrecisionPolicy | None = None,
              expert_load: dict | ExpertLoad | None = None,
              parallelism: Parallelism | dict | None = None) -> OpGraph:
    """One forward pass of ``cfg`` (see the module docstring). ``sequence``: prompt tokens per
    sequence (prefill); ``context``: tokens already in the KV cache (decode; default:
    ``sequence``); ``expert_load``: MoE routing (``{"distribution": "uniform"}`` by default);
    ``parallelism``: how the model is split across devices (``workloads.llm_parallel``): the
    graph is what one device runs (several devices' ops for pipeline and expert parallelism,
    marked with ``Op.device``), with the collectives between them; ``{"tensor": 4, "expert":
    4}`` is tensor-parallel attention beside expert-parallel experts on the same 4 devices."""
    context, load = _check_options(cfg, batch, sequence, context, phase, precision, expert_load)
    par = parallelism if isinstance(parallelism, Parallelism) else Parallelism(**(parallelism or {}))
    par.check(cfg, batch)
    decode = phase == "decode"
    positions = 1 if decode else sequence
    span = cfg.attention_span(context + 1) if decode else sequence
    local = local_config(cfg, par)
    # sequences one device (or one microbatch) processes
    local_batch = batch // par.microbatches // par.data_parallel
    g = OpGraph(f"{cfg.name}-{phase}", precision or DEFAULT_PRECISION,
                meta={"model": cfg.name, "family": cfg.family, "phase": phase, "batch": batch,
                      "sequence": None if decode else sequence, "context": context,
                      "tokens": batch * positions, "attention_span": span,
                      "param_counts": llm_param_counts(cfg),
                      "parallelism": dataclasses.asdict(par), "microbatch": local_batch})
    # the vocabulary is split across the tensor-parallel devices, padded to a multiple of them
    b = _Builder(g, local, phase, par, vocab=-(-cfg.vocab_size // par.tensor))
    x = b.embed(local_batch, positions)
    expert_tokens = []
    stage = 0
    for i in range(cfg.num_hidden_layers):
        s = par.stage_of(i, cfg.num_hidden_layers)
        if s != stage:  # hand the activations to the next pipeline stage
            x = b.collective(f"layers.{i}.send", "send", x, f"layers.{i}", group=2)
            stage = s
        x, counts = b.layer(i, x, local_batch, positions, span, load)
        if counts is not None:
            expert_tokens.append(counts)
    b.head(x, local_batch)
    if par.pipeline > 1:
        _assign_stages(g, par, cfg.num_hidden_layers)
    if cfg.is_moe:
        g.meta.update(expert_load=load.to_dict(), expert_tokens=expert_tokens)
    return g


def local_config(cfg: LLMConfig, par: Parallelism) -> LLMConfig:
    """What one tensor-parallel device holds of ``cfg``: its attention heads, its share of the
    dense MLPs' width (split ``tensor`` ways, also beside expert parallelism: dense layers of an
    interleaved MoE model run tensor parallel like the attention) and of each expert's (split
    ``par.expert_tensor`` ways: whole experts under expert parallelism). A width the degree does
    not divide is a ``ConfigError`` naming ``system.parallelism.tensor``."""
    if par.tensor == 1:
        return cfg
    kinds = cfg.layer_kinds
    probs = Problems()
    if not all(kinds) and cfg.intermediate_size % par.tensor:
        probs.add("system.parallelism.tensor", f"{par.tensor} does not divide intermediate_size "
                  f"{cfg.intermediate_size} of '{cfg.name}' (its dense MLP layers are tensor parallel)")
    if any(kinds) and cfg.expert_intermediate_size % par.expert_tensor:
        probs.add("system.parallelism.tensor", f"{par.expert_tensor} does not divide each expert's "
                  f"width {cfg.expert_intermediate_size} of '{cfg.name}' (tensor-parallel experts)")
    probs.raise_if_any()
    heads, kv_heads = par.local_heads(cfg)
    return dataclasses.replace(cfg, num_attention_heads=heads, num_key_value_heads=kv_heads,
                               intermediate_size=cfg.intermediate_size // par.tensor if not all(kinds)
                               else cfg.intermediate_size,
                               moe_intermediate_size=cfg.expert_intermediate_size // par.expert_tensor
                               if cfg.is_moe else None)


def _assign_stages(g: OpGraph, par: Parallelism, layers: int) -> None:
    """Pipeline stages: layer i on device i * pipeline // layers; the head on the last stage; a
    send on the stage that sends."""
    for op in g.ops():
        blk = op.block or ""
        if blk.startswith("layers."):
            i = int(blk.split(".")[1])
            stage = par.stage_of(i, layers) - (1 if op.name.endswith(".send") else 0)
        elif blk in ("head", "pooler"):
            stage = par.pipeline - 1
        else:
            stage = 0
        if stage:
            g.set_device(op.name, stage)


def build_llm_from_file(path: str, **options: Any) -> OpGraph:
    """``build_llm`` for a user's ``config.json`` (the model is named after the file)."""
    allowed = [p.name for p in inspect.signature(build_llm).parameters.values() if p.kind is p.KEYWORD_ONLY]
    bad = [k for k in options if k not in allowed]
    if bad:
        raise ConfigError([Problem(None, f"workload.{k}", f"option not accepted by an LLM config "
                                   f"(accepts: {', '.join(allowed)})", hint=did_you_mean(k, allowed))
                           for k in bad])
    return build_llm(load_llm_config(path), **options)


# ---- the shipped configs, registered by file name ------------------------------------------------

def _describe(cfg: LLMConfig) -> str:
    kind = {"llama": "decoder, RMSNorm, rotary, gated SiLU MLP", "gpt": "decoder, LayerNorm, learned "
            "positions, 2-matrix MLP", "bert": "encoder, LayerNorm, bidirectional"}[cfg.family]
    moe = (f", {cfg.num_local_experts} experts top-{cfg.num_experts_per_tok}" if cfg.is_moe else "")
    if cfg.is_moe and not all(cfg.layer_kinds):
        moe += f" in {sum(cfg.layer_kinds)} of the layers"
    return (f"{cfg.name} ({kind}; {cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, "
            f"{cfg.num_attention_heads} heads / {cfg.num_key_value_heads} KV heads{moe}; "
            f"{llm_param_counts(cfg)['total'] / 1e9:.3g} B params)")


def _register(name: str) -> None:
    cfg = shipped_config(name)
    kwargs = {"family": "encoder" if cfg.is_encoder else "llm", "description": _describe(cfg),
              "source": f"workloads/configs/{name}.json: {cfg.source}"}
    if cfg.is_encoder:
        def encoder(*, batch: int = 1, sequence: int = 512, phase: str = "prefill",
                    precision: PrecisionPolicy | None = None, parallelism: dict | None = None) -> OpGraph:
            return build_llm(cfg, batch=batch, sequence=sequence, phase=phase, precision=precision,
                             parallelism=parallelism)

        register_model(name, **kwargs)(encoder)
        return

    def decoder(*, batch: int = 1, sequence: int = 512, context: int | None = None,
                phase: str = "prefill", precision: PrecisionPolicy | None = None,
                expert_load: dict | None = None, parallelism: dict | None = None) -> OpGraph:
        return build_llm(cfg, batch=batch, sequence=sequence, context=context, phase=phase,
                         precision=precision, expert_load=expert_load, parallelism=parallelism)

    register_model(name, **kwargs)(decoder)


for _name in shipped_config_names():
    _register(_name)
