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
- ``gpt`` (opt, gpt3): LayerNorm before attention and MLP, learned positions, two-matrix MLP
  (``intermediate_size`` or OPT's ``ffn_dim``) with ReLU/GELU, biases, LM head tied to the
  token embedding (HF's default). OPT's position table has 2 extra rows (its offset).
- ``bert``: encoder, bidirectional attention, LayerNorm after attention and MLP, learned
  positions and token types, GELU, biases, a pooler (``BertModel``'s parameters).

Helpers: ``llm_param_counts(cfg)`` (total, active per token, embedding, LM head, experts) and
``kv_cache_bytes(cfg, batch, context, precision)``.
"""

from __future__ import annotations

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
                               "opt": "gpt", "gpt3": "gpt", "bert": "bert"}
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
        return self.num_local_experts > 0

    @property
    def gated_mlp(self) -> bool:
        return self.family == "llama"

    @property
    def rotary(self) -> bool:
        return self.family == "llama"

    @property
    def learned_positions(self) -> bool:
        return self.family in ("gpt", "bert")

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
        window = integer("sliding_window", required=False)
        max_pos = integer("max_position_embeddings", required=family in ("gpt", "bert"))
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
        if experts is not None and family not in ("llama", None):
            probs.add("num_local_experts", f"mixture-of-experts layers are supported for the llama "
                                           f"family (llama, mistral, mixtral), not '{model_type}'")

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
                   sliding_window=window, attention_bias=flags["attention_bias"],
                   mlp_bias=flags["mlp_bias"],
                   type_vocab_size=(2 if types is None else types) if family == "bert" else 0,
                   position_offset=2 if model_type == "opt" else 0,
                   source=source if isinstance(source, str) else None, file=file)


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

def _layer_parts(cfg: LLMConfig) -> dict[str, int]:
    """Parameters of one layer by part: attention, norms, one expert's (or the dense) MLP, router."""
    h, q, kv, inter = cfg.hidden_size, cfg.q_dim, cfg.kv_dim, cfg.intermediate_size
    attn = h * q + 2 * h * kv + q * h
    if cfg.attention_bias:
        attn += q + 2 * kv + h
    if cfg.gated_mlp:
        mlp = 3 * h * inter + ((2 * inter + h) if cfg.mlp_bias else 0)
    else:
        mlp = 2 * h * inter + ((inter + h) if cfg.mlp_bias else 0)
    norm = h if cfg.norm == "rmsnorm" else 2 * h
    return {"attention": attn, "norms": 2 * norm, "mlp": mlp,
            "router": h * cfg.num_local_experts if cfg.is_moe else 0}


def llm_param_counts(cfg: LLMConfig) -> dict[str, int]:
    """Parameter counts: ``total``; ``active_per_token`` (total minus the experts a token does not
    use; embeddings and LM head included, as published MoE counts do); ``embedding`` (token,
    position and token-type tables); ``lm_head`` (0 when tied to the embedding or for an encoder);
    ``experts`` (all expert MLPs, 0 for a dense model)."""
    h = cfg.hidden_size
    parts = _layer_parts(cfg)
    experts = max(1, cfg.num_local_experts)
    layer = parts["attention"] + parts["norms"] + parts["router"] + experts * parts["mlp"]
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
    total = embedding + cfg.num_hidden_layers * layer + extra + lm_head
    idle = (cfg.num_local_experts - cfg.num_experts_per_tok) * parts["mlp"] if cfg.is_moe else 0
    return {"total": total, "active_per_token": total - cfg.num_hidden_layers * idle,
            "embedding": embedding, "lm_head": lm_head,
            "experts": cfg.num_hidden_layers * cfg.num_local_experts * parts["mlp"]}


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
