"""Transformer configurations read from Hugging-Face-style ``config.json`` files.

Contract: ``LLMConfig.from_dict(data, name=..., file=...)`` / ``load_llm_config(path)`` /
``shipped_config(name)`` return a frozen ``LLMConfig`` or raise one ``ConfigError`` listing
every problem, each naming the file, the field and the numbers involved (a required field
missing, sizes that do not divide, more experts per token than experts, non-positive sizes).
Keys this module does not use are ignored (HF configs carry many: dropout, token ids, dtypes).

Families, chosen by ``model_type``:

- ``llama`` (llama, mistral, mixtral): RMSNorm before attention and MLP, rotary positions,
  gated MLP with three matrices (gate, up, down) and SiLU, no biases unless ``attention_bias``
  / ``mlp_bias``, untied LM head unless ``tie_word_embeddings``; mixtral: MoE MLPs.
- ``gpt`` (opt, gpt3, glam): LayerNorm before attention and MLP, learned positions, two-matrix
  MLP (``intermediate_size`` or OPT's ``ffn_dim``) with ReLU/GELU, biases, LM head tied to the
  token embedding (HF's default). OPT's position table has 2 extra rows (its offset). ``glam``
  (GLaM, Du et al. 2022; no Hugging Face config exists) has no position table: its per-layer
  relative position bias (a few parameters per head, added to the attention scores) is not
  modelled; experts are two-matrix MLPs like the dense ones.
- ``bert``: encoder, bidirectional attention, LayerNorm after attention and MLP, learned
  positions and token types, GELU, biases, a pooler (``BertModel``'s parameters).

Mixture of experts (``num_local_experts`` > 0, llama and gpt families): by default every layer's
MLP is a MoE block (Mixtral). Qwen2-MoE's keys interleave dense and MoE layers: layer i (from
0) is MoE unless it is in ``mlp_only_layers`` or ``(i + 1) % decoder_sparse_step != 0``
(Hugging Face ``Qwen2MoeDecoderLayer``); ``decoder_sparse_step: 2`` puts experts in every other
layer (GShard, Switch, GLaM). Dense layers use ``intermediate_size``, experts
``moe_intermediate_size`` (default: ``intermediate_size``). ``cfg.layer_is_moe(i)`` and
``cfg.layer_kinds`` say which layers are MoE; ``cfg.with_layer_kinds(kinds)`` is the same model
with ``len(kinds)`` layers of those kinds (the serving cost model simulates such short models).

Helpers: ``llm_param_counts(cfg)`` (total, active per token, embedding, LM head, experts) and
``kv_cache_bytes(cfg, batch, context, precision)``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from workloads.errors import ConfigError, Problem, Problems, did_you_mean
from workloads.graph import PrecisionPolicy
from workloads.precision import PRECISIONS, storage_bytes

__all__ = ["LLMConfig", "MODEL_TYPES", "load_llm_config", "shipped_config", "shipped_config_names",
           "config_dir", "llm_param_counts", "kv_cache_bytes"]

# model_type -> family
MODEL_TYPES: dict[str, str] = {"llama": "llama", "mistral": "llama", "mixtral": "llama",
                               "opt": "gpt", "gpt3": "gpt", "glam": "gpt", "bert": "bert"}
_NO_POSITION_TABLE = ("glam",)  # gpt-family models with relative position biases instead
ACTIVATIONS = ("silu", "swish", "gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "quick_gelu",
               "relu")
_DEFAULT_ACT = {"llama": "silu", "gpt": "relu", "bert": "gelu"}


def config_dir() -> Path:
    """The folder of the shipped configs (``workloads/configs``)."""
    return Path(str(resources.files("workloads") / "configs"))


def shipped_config_names() -> list[str]:
    return sorted(p.stem for p in config_dir().glob("*.json"))


@dataclass(frozen=True, kw_only=True)
class LLMConfig:
    """The architecture of a transformer, as a builder needs it (see the module docstring)."""

    name: str
    model_type: str
    family: str  # llama | gpt | bert
    hidden_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    num_hidden_layers: int
    intermediate_size: int
    vocab_size: int
    hidden_act: str
    max_position_embeddings: int | None = None
    tie_word_embeddings: bool = False
    num_local_experts: int = 0  # 0: a dense MLP
    num_experts_per_tok: int = 0
    moe_intermediate_size: int | None = None  # each expert's width (None: intermediate_size)
    decoder_sparse_step: int = 1  # MoE in layers i with (i + 1) % step == 0 ...
    mlp_only_layers: tuple[int, ...] = ()  # ... except these (dense MLP)
    sliding_window: int | None = None  # attention reaches back at most this many positions
    attention_bias: bool = False
    mlp_bias: bool = False
    type_vocab_size: int = 0  # bert's token types
    position_offset: int = 0  # extra rows of a learned position table (OPT: 2)
    source: str | None = None  # the file's "_source"
    file: str | None = None

    # ---- derived -----------------------------------------------------------------------------
    @property
    def is_encoder(self) -> bool:
        return self.family == "bert"

    @property
    def is_moe(self) -> bool:
        """The model has experts (in at least one layer)."""
        return self.num_local_experts > 0

    @property
    def expert_intermediate_size(self) -> int:
        """Each expert's intermediate width."""
        return self.moe_intermediate_size or self.intermediate_size

    def layer_is_moe(self, i: int) -> bool:
        """Layer ``i``'s MLP is a MoE block (Qwen2-MoE's rule; the module docstring)."""
        return (self.is_moe and i not in self.mlp_only_layers
                and (i + 1) % self.decoder_sparse_step == 0)

    @property
    def layer_kinds(self) -> tuple[bool, ...]:
        """Per layer: True where its MLP is a MoE block."""
        return tuple(self.layer_is_moe(i) for i in range(self.num_hidden_layers))

    def with_layer_kinds(self, kinds: tuple[bool, ...] | list[bool]) -> "LLMConfig":
        """The same model with ``len(kinds)`` layers, layer i a MoE layer where ``kinds[i]``."""
        kinds = tuple(bool(k) for k in kinds)
        if any(kinds) and not self.is_moe:
            raise ValueError(f"'{self.name}' has no experts: it has no MoE layers to build")
        return dataclasses.replace(self, num_hidden_layers=len(kinds), decoder_sparse_step=1,
                                   mlp_only_layers=tuple(i for i, k in enumerate(kinds) if not k)
                                   if self.is_moe else ())

    @property
    def gated_mlp(self) -> bool:
        return self.family == "llama"

    @property
    def rotary(self) -> bool:
        return self.family == "llama"

    @property
    def learned_positions(self) -> bool:
        return self.family in ("gpt", "bert") and self.model_type not in _NO_POSITION_TABLE

    @property
    def norm(self) -> str:
        return "rmsnorm" if self.family == "llama" else "layernorm"

    @property
    def pre_norm(self) -> bool:
        """Norm before attention and MLP (decoders) or after the residual adds (bert)."""
        return self.family != "bert"

    @property
    def heads_per_group(self) -> int:
        """Query heads sharing one K/V head (1: MHA; heads: MQA)."""
        return self.num_attention_heads // self.num_key_value_heads

    @property
    def q_dim(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_key_value_heads * self.head_dim

    def attention_span(self, positions: int) -> int:
        """Positions one query attends to in the cache, given ``positions`` in the sequence so far
        (a sliding window keeps at most ``sliding_window``)."""
        return min(positions, self.sliding_window) if self.sliding_window else positions

    # ---- reading -----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, *, name: str, file: str | None = None) -> "LLMConfig":
        """Validate a config dict (as read from ``config.json``); see the module docstring."""
        probs = Problems(file)
        if not isinstance(data, dict):
            raise ConfigError(Problem(file, "", f"expected a JSON object of config keys, found "
                                                f"{type(data).__name__}"))
        model_type = data.get("model_type")
        family = None
        if model_type is None:
            probs.add("model_type", f"required key is missing (one of: {', '.join(MODEL_TYPES)})")
        elif model_type not in MODEL_TYPES:
            probs.add("model_type", f"'{model_type}' is not supported; supported: "
                                    f"{', '.join(MODEL_TYPES)}", hint=did_you_mean(model_type, MODEL_TYPES))
        else:
            family = MODEL_TYPES[model_type]

        bad: set[str] = set()  # keys already reported

        def integer(key: str, *, required: bool, minimum: int = 1, alias: str | None = None) -> int | None:
            present = key if key in data else (alias if alias and alias in data else None)
            if present is None or data[present] is None:
                if required:
                    probs.add(key, "required key is missing" + (f" (or '{alias}')" if alias else ""))
                    bad.add(key)
                return None
            value = data[present]
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                probs.add(present, f"expected an integer >= {minimum}, found {value!r}")
                bad.add(key)
                return None
            return value

        hidden = integer("hidden_size", required=True)
        heads = integer("num_attention_heads", required=True)
        layers = integer("num_hidden_layers", required=True)
        inter = integer("intermediate_size", required=True, alias="ffn_dim")
        vocab = integer("vocab_size", required=True)
        kv = integer("num_key_value_heads", required=False)
        head_dim = integer("head_dim", required=False)
        experts = integer("num_local_experts", required=False)
        per_tok = integer("num_experts_per_tok", required=experts is not None)
        moe_inter = integer("moe_intermediate_size", required=False)
        step = integer("decoder_sparse_step", required=False)
        window = integer("sliding_window", required=False)
        max_pos = integer("max_position_embeddings", required=family in ("gpt", "bert")
                          and model_type not in _NO_POSITION_TABLE)
        types = integer("type_vocab_size", required=False, minimum=0)

        if heads is not None:
            if kv is None and "num_key_value_heads" not in bad:
                kv = heads  # multi-head attention
            if kv is not None and heads % kv:
                probs.add("num_key_value_heads", f"num_attention_heads {heads} is not divisible by "
                                                 f"num_key_value_heads {kv} ({heads} / {kv} = "
                                                 f"{heads / kv:g}; query heads share K/V heads in "
                                                 f"equal groups)")
            if head_dim is None and "head_dim" not in bad and hidden is not None:
                if hidden % heads:
                    probs.add("hidden_size", f"{hidden} is not divisible by num_attention_heads {heads} "
                                             f"({hidden} / {heads} = {hidden / heads:g}); give head_dim "
                                             f"if the heads are not hidden_size / num_attention_heads wide")
                else:
                    head_dim = hidden // heads
        if per_tok is not None and experts is None and "num_local_experts" not in bad:
            probs.add("num_local_experts", f"required key is missing (num_experts_per_tok is {per_tok})")
        if experts is not None and per_tok is not None and per_tok > experts:
            probs.add("num_experts_per_tok", f"{per_tok} experts per token is more than "
                                             f"num_local_experts {experts}")
        if experts is not None and family not in ("llama", "gpt", None):
            probs.add("num_local_experts", f"mixture-of-experts layers are supported for decoders "
                                           f"(the llama and gpt families), not '{model_type}'")
        only = _layer_list(data, layers, probs)
        if experts is None and "num_local_experts" not in bad:
            for key, given in (("decoder_sparse_step", step is not None and step != 1),
                               ("moe_intermediate_size", moe_inter is not None), ("mlp_only_layers", bool(only))):
                if given:
                    probs.add(key, f"{data[key]!r} applies to mixture-of-experts layers, but "
                                   f"num_local_experts is not given (a dense model)")
        elif experts is not None and layers is not None and only is not None and "decoder_sparse_step" not in bad:
            step_ = step or 1
            if not any(i not in only and (i + 1) % step_ == 0 for i in range(layers)):
                probs.add("decoder_sparse_step" if step_ > layers else "mlp_only_layers",
                          f"no layer has experts: of num_hidden_layers {layers}, MoE layers are those "
                          f"i with (i + 1) % decoder_sparse_step ({step_}) == 0 not in mlp_only_layers "
                          f"{sorted(only)}; drop num_local_experts for a dense model")

        act_key = "hidden_act" if "hidden_act" in data else "activation_function"
        act = data.get(act_key) or (_DEFAULT_ACT[family] if family else "silu")
        if act not in ACTIVATIONS:
            probs.add(act_key, f"activation {act!r} is not known; known: {', '.join(ACTIVATIONS)}",
                      hint=did_you_mean(str(act), ACTIVATIONS))

        flags = {}
        for key, default in (("tie_word_embeddings", family != "llama"),
                             ("attention_bias", family != "llama"), ("mlp_bias", family != "llama"),
                             ("enable_bias", True)):
            value = data.get(key, default)
            if value is None:
                value = default
            if not isinstance(value, bool):
                probs.add(key, f"expected true or false, found {value!r}")
                value = default
            flags[key] = value
        if model_type == "opt":
            proj = data.get("word_embed_proj_dim")
            if proj is not None and proj != hidden:
                probs.add("word_embed_proj_dim", f"{proj} differs from hidden_size {hidden}: OPT's "
                                                 f"embedding projections (opt-350m) are not supported")
            if data.get("do_layer_norm_before", True) is False:
                probs.add("do_layer_norm_before", "false (post-norm OPT, opt-350m) is not supported")
            flags["attention_bias"] = flags["mlp_bias"] = flags["enable_bias"]
        source = data.get("_source")
        probs.raise_if_any()
        return cls(name=name, model_type=model_type, family=family, hidden_size=hidden,
                   num_attention_heads=heads, num_key_value_heads=kv, head_dim=head_dim,
                   num_hidden_layers=layers, intermediate_size=inter, vocab_size=vocab,
                   hidden_act=act, max_position_embeddings=max_pos,
                   tie_word_embeddings=flags["tie_word_embeddings"],
                   num_local_experts=experts or 0, num_experts_per_tok=per_tok or 0,
                   moe_intermediate_size=moe_inter, decoder_sparse_step=step or 1,
                   mlp_only_layers=tuple(sorted(only or ())),
                   sliding_window=window, attention_bias=flags["attention_bias"],
                   mlp_bias=flags["mlp_bias"],
                   type_vocab_size=(2 if types is None else types) if family == "bert" else 0,
                   position_offset=2 if model_type == "opt" else 0,
                   source=source if isinstance(source, str) else None, file=file)


def _layer_list(data: dict, layers: int | None, probs: Problems) -> set[int] | None:
    """``mlp_only_layers``: distinct layer indices in [0, num_hidden_layers); None if malformed."""
    raw = data.get("mlp_only_layers")
    if raw is None:
        return set()
    if not isinstance(raw, list) or any(isinstance(i, bool) or not isinstance(i, int) for i in raw):
        probs.add("mlp_only_layers", f"expected a list of layer indices (integers), found {raw!r}")
        return None
    out = [i for i in raw if i < 0 or (layers is not None and i >= layers)]
    if out:
        probs.add("mlp_only_layers", f"layer indices {out} are outside 0..{layers - 1 if layers else '?'} "
                                     f"(num_hidden_layers {layers})")
        return None
    dup = sorted({i for i in raw if raw.count(i) > 1})
    if dup:
        probs.add("mlp_only_layers", f"layer indices {dup} are listed more than once")
        return None
    return set(raw)


def load_llm_config(path: str | Path, *, name: str | None = None) -> LLMConfig:
    """Read and validate a ``config.json``; ``name`` defaults to the file's stem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(Problem(str(path), "", "config file not found"))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(Problem(str(path), "", f"not valid JSON: {exc.msg}", exc.lineno)) from None
    return LLMConfig.from_dict(data, name=name or path.stem, file=str(path))


def shipped_config(name: str) -> LLMConfig:
    """A config shipped in ``workloads/configs`` by name (e.g. ``llama-2-7b``)."""
    names = shipped_config_names()
    if name not in names:
        raise ConfigError(Problem(None, "workload.model", f"'{name}' is not a shipped config; "
                                  f"available: {', '.join(names)}", hint=did_you_mean(name, names)))
    return load_llm_config(config_dir() / f"{name}.json", name=name)


# ---- sizes -----------------------------------------------------------------------------------

def _mlp_params(cfg: LLMConfig, inter: int) -> int:
    """Parameters of one MLP of intermediate width ``inter`` (a dense MLP or one expert)."""
    h = cfg.hidden_size
    if cfg.gated_mlp:
        return 3 * h * inter + ((2 * inter + h) if cfg.mlp_bias else 0)
    return 2 * h * inter + ((inter + h) if cfg.mlp_bias else 0)


def _layer_parts(cfg: LLMConfig) -> dict[str, int]:
    """Parameters of one layer by part: attention, norms, the dense MLP, one expert, router."""
    h, q, kv = cfg.hidden_size, cfg.q_dim, cfg.kv_dim
    attn = h * q + 2 * h * kv + q * h
    if cfg.attention_bias:
        attn += q + 2 * kv + h
    norm = h if cfg.norm == "rmsnorm" else 2 * h
    return {"attention": attn, "norms": 2 * norm, "mlp": _mlp_params(cfg, cfg.intermediate_size),
            "expert": _mlp_params(cfg, cfg.expert_intermediate_size) if cfg.is_moe else 0,
            "router": h * cfg.num_local_experts if cfg.is_moe else 0}


def llm_param_counts(cfg: LLMConfig) -> dict[str, int]:
    """Parameter counts: ``total``; ``active_per_token`` (total minus the experts a token does not
    use; embeddings and LM head included, as published MoE counts do); ``embedding`` (token,
    position and token-type tables); ``lm_head`` (0 when tied to the embedding or for an encoder);
    ``experts`` (all expert MLPs, 0 for a dense model). Dense and MoE layers are counted each as
    what it is (``cfg.layer_kinds``)."""
    h = cfg.hidden_size
    parts = _layer_parts(cfg)
    moe_layers = sum(cfg.layer_kinds)
    dense_layers = cfg.num_hidden_layers - moe_layers
    shared = parts["attention"] + parts["norms"]
    experts = moe_layers * cfg.num_local_experts * parts["expert"]
    layers = (cfg.num_hidden_layers * shared + dense_layers * parts["mlp"]
              + moe_layers * parts["router"] + experts)
    embedding = cfg.vocab_size * h
    if cfg.learned_positions:
        embedding += (cfg.max_position_embeddings + cfg.position_offset) * h
    embedding += cfg.type_vocab_size * h
    norm = h if cfg.norm == "rmsnorm" else 2 * h
    if cfg.is_encoder:
        extra = norm + h * h + h  # the embedding LayerNorm and the pooler
        lm_head = 0
    else:
        extra = norm  # the final norm
        lm_head = 0 if cfg.tie_word_embeddings else cfg.vocab_size * h
    total = embedding + layers + extra + lm_head
    idle = moe_layers * (cfg.num_local_experts - cfg.num_experts_per_tok) * parts["expert"]
    return {"total": total, "active_per_token": total - idle, "embedding": embedding,
            "lm_head": lm_head, "experts": experts}


def kv_cache_bytes(cfg: LLMConfig, batch: int, context: int,
                   precision: PrecisionPolicy | str = "fp16") -> int:
    """Bytes of the K and V caches of ``batch`` sequences holding ``context`` positions each:
    2 x layers x kv_heads x head_dim x positions x batch elements at the KV precision (a sliding
    window caps the positions kept). ``precision``: a ``PrecisionPolicy`` (its ``kv``) or a name."""
    if cfg.is_encoder:
        raise ConfigError(Problem(cfg.file, "model_type", f"'{cfg.name}' is an encoder "
                                  f"({cfg.model_type}): it keeps no KV cache"))
    fmt = precision.kv if isinstance(precision, PrecisionPolicy) else precision
    if fmt not in PRECISIONS:
        raise ConfigError(Problem(None, "precision.kv_cache", f"unknown precision {fmt!r}; known: "
                                  f"{', '.join(PRECISIONS)}", hint=did_you_mean(str(fmt), PRECISIONS)))
    if batch < 1 or context < 0:
        raise ConfigError(Problem(None, "workload", f"batch must be >= 1 and context >= 0, found "
                                  f"batch {batch}, context {context}"))
    positions = cfg.attention_span(context)
    return storage_bytes(2 * cfg.num_hidden_layers * cfg.kv_dim * positions * batch, fmt)
