"""One decoder layer of a shipped LLM as a workload: ``llama-2-7b-layer``, ``llama-2-70b-layer``, ...

Contract: ``<config>-layer`` (for every shipped decoder config) builds what ``<config>`` builds for
one pass (same options: ``batch``, ``sequence``, ``context``, ``phase``, ``precision``,
``expert_load``, ``parallelism``) but keeps only the operators of the first decoder layer
(``block == "layers.0"``): no embedding, no final norm, no LM head. In a model that interleaves
dense and MoE layers (``decoder_sparse_step``, ``mlp_only_layers``) that is layer 0's kind (dense
for GLaM: its MoE layers are 1, 3, ...). The layer's input (the
hidden states) and, in decode, its KV cache are graph inputs. For per-layer studies (operator
fusion on a dataflow RDU: a whole layer is one kernel) without the embedding and LM head, which
are a large share of a one-layer model's weights.
"""

from __future__ import annotations

from workloads.graph import OpGraph, PrecisionPolicy
from workloads.llm import build_llm
from workloads.llm_config import LLMConfig, shipped_config, shipped_config_names
from workloads.registry import register_model

__all__ = ["decoder_layer"]


def decoder_layer(cfg: LLMConfig, **options) -> OpGraph:
    """The first decoder layer of ``cfg``'s pass with ``options`` (those of ``build_llm``)."""
    one = cfg.with_layer_kinds(cfg.layer_kinds[:1])
    full = build_llm(one, **options)
    g = OpGraph(f"{cfg.name}-layer-{options.get('phase', 'prefill')}", full.precision,
                meta={**full.meta, "model": f"{cfg.name}-layer", "layers": 1})
    ops = [op for op in full.ops() if op.block == "layers.0"]
    produced = {op.output.name for op in ops}
    declared: set[str] = set()
    for op in ops:
        for t in op.inputs:
            if t.name in produced or t.name in declared:
                continue
            declared.add(t.name)
            if t.role == "kv_cache":
                g.kv_cache_input(t.name, t.shape)
            else:
                g.input(t.name, t.shape, t.precision)
    for op in ops:
        g.add(op)
    return g


def _register(name: str) -> None:
    cfg = shipped_config(name)
    if cfg.is_encoder:
        return

    def layer(*, batch: int = 1, sequence: int = 512, context: int | None = None, phase: str = "prefill",
              precision: PrecisionPolicy | None = None, expert_load: dict | None = None,
              parallelism: dict | None = None) -> OpGraph:
        return decoder_layer(cfg, batch=batch, sequence=sequence, context=context, phase=phase,
                             precision=precision, expert_load=expert_load, parallelism=parallelism)

    register_model(f"{name}-layer", family="llm",
                   description=f"one decoder layer of {cfg.name} (hidden {cfg.hidden_size}, "
                               f"{cfg.num_attention_heads} heads / {cfg.num_key_value_heads} KV heads)",
                   source=f"workloads/configs/{name}.json: {cfg.source}")(layer)


for _name in shipped_config_names():
    _register(_name)
