"""Reading HF-style config.json files: families, defaults, ignored keys, and every bad-input case
as a ConfigError naming the file, the field and the numbers."""

from __future__ import annotations

import json

import pytest

from workloads.errors import ConfigError
from workloads.llm_config import LLMConfig, config_dir, load_llm_config, shipped_config

BASE = {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2,
        "intermediate_size": 96, "vocab_size": 100}


def write(tmp_path, data, name="config.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def problems(tmp_path, **changes):
    data = {k: v for k, v in {**BASE, **changes}.items() if v is not ...}
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_llm_config(path)
    for p in err.value.problems:
        assert p.file == str(path)
        assert str(path) in str(p)
    return err.value.problems


# ---- reading ------------------------------------------------------------------------------------

def test_families_and_defaults():
    llama = shipped_config("llama-2-7b")
    assert (llama.family, llama.norm, llama.rotary, llama.gated_mlp, llama.pre_norm) == \
        ("llama", "rmsnorm", True, True, True)
    assert (llama.num_key_value_heads, llama.head_dim, llama.heads_per_group) == (32, 128, 1)
    assert not llama.tie_word_embeddings and not llama.attention_bias and not llama.is_moe
    opt = shipped_config("opt-6.7b")
    assert (opt.family, opt.norm, opt.intermediate_size, opt.hidden_act) == \
        ("gpt", "layernorm", 16384, "relu")
    assert opt.tie_word_embeddings and opt.attention_bias and opt.mlp_bias and opt.position_offset == 2
    bert = shipped_config("bert-base")
    assert bert.is_encoder and not bert.pre_norm and bert.type_vocab_size == 2
    mixtral = shipped_config("mixtral-8x7b")
    assert (mixtral.num_local_experts, mixtral.num_experts_per_tok, mixtral.sliding_window) == (8, 2, None)
    assert shipped_config("mistral-7b").sliding_window == 4096
    assert shipped_config("llama-2-70b").heads_per_group == 8


def test_every_shipped_file_names_its_source():
    for path in sorted(config_dir().glob("*.json")):
        data = json.loads(path.read_text())
        assert isinstance(data.get("_source"), str) and len(data["_source"]) > 40, path.name
        assert load_llm_config(path).source == data["_source"]
    assert "Brown et al." in shipped_config("gpt3-175b").source
    assert "No Hugging Face config" in shipped_config("gpt3-175b").source


def test_unknown_keys_are_ignored(tmp_path):
    data = {**BASE, "rope_scaling": {"type": "linear"}, "torch_dtype": "bfloat16", "bos_token_id": 1,
            "some_future_key": [1, 2, 3]}
    cfg = load_llm_config(write(tmp_path, data, "m.json"))
    assert cfg.name == "m" and cfg.hidden_size == 64


def test_explicit_head_dim_and_mqa():
    cfg = LLMConfig.from_dict({**BASE, "hidden_size": 60, "head_dim": 32, "num_key_value_heads": 1},
                              name="x")
    assert (cfg.head_dim, cfg.q_dim, cfg.kv_dim, cfg.heads_per_group) == (32, 128, 32, 4)


def test_ffn_dim_and_activation_function_for_opt():
    cfg = LLMConfig.from_dict({"model_type": "opt", "hidden_size": 64, "num_attention_heads": 4,
                               "num_hidden_layers": 1, "ffn_dim": 256, "vocab_size": 50,
                               "max_position_embeddings": 32, "activation_function": "gelu",
                               "enable_bias": False}, name="o")
    assert cfg.intermediate_size == 256 and cfg.hidden_act == "gelu"
    assert not cfg.attention_bias and not cfg.mlp_bias


# ---- bad input: file, field, numbers ------------------------------------------------------------

@pytest.mark.parametrize("field", ["hidden_size", "num_attention_heads", "num_hidden_layers",
                                   "vocab_size"])
def test_a_missing_required_field(tmp_path, field):
    p, = problems(tmp_path, **{field: ...})
    assert p.path == field and p.message == "required key is missing"


def test_missing_intermediate_size_mentions_ffn_dim(tmp_path):
    p, = problems(tmp_path, intermediate_size=...)
    assert p.path == "intermediate_size" and "'ffn_dim'" in p.message


def test_learned_positions_need_max_position_embeddings(tmp_path):
    p, = problems(tmp_path, model_type="opt")
    assert p.path == "max_position_embeddings" and "missing" in p.message


def test_hidden_not_divisible_by_heads(tmp_path):
    p, = problems(tmp_path, hidden_size=100, num_attention_heads=3, num_key_value_heads=3)
    assert p.path == "hidden_size"
    assert "100 is not divisible by num_attention_heads 3" in p.message and "33.3333" in p.message


def test_heads_not_divisible_by_kv_heads(tmp_path):
    p, = problems(tmp_path, hidden_size=96, num_attention_heads=6, num_key_value_heads=4)
    assert p.path == "num_key_value_heads"
    assert "num_attention_heads 6 is not divisible by num_key_value_heads 4" in p.message


def test_more_experts_per_token_than_experts(tmp_path):
    p, = problems(tmp_path, model_type="mixtral", num_local_experts=2, num_experts_per_tok=3)
    assert p.path == "num_experts_per_tok"
    assert "3 experts per token is more than num_local_experts 2" in p.message


def test_experts_without_experts_per_token_and_back(tmp_path):
    p, = problems(tmp_path, model_type="mixtral", num_local_experts=8)
    assert p.path == "num_experts_per_tok" and "missing" in p.message
    p, = problems(tmp_path, model_type="mixtral", num_experts_per_tok=2)
    assert p.path == "num_local_experts" and "num_experts_per_tok is 2" in p.message


@pytest.mark.parametrize("field, value", [("hidden_size", 0), ("num_hidden_layers", -2),
                                          ("vocab_size", 0), ("intermediate_size", -1),
                                          ("num_key_value_heads", 0), ("num_local_experts", 0),
                                          ("head_dim", -8), ("hidden_size", "4096"),
                                          ("num_attention_heads", 4.0), ("vocab_size", True)])
def test_non_positive_or_non_integer_sizes(tmp_path, field, value):
    p, = [p for p in problems(tmp_path, **{field: value}) if p.path == field]
    assert p.message == f"expected an integer >= 1, found {value!r}"


def test_every_problem_is_reported_at_once(tmp_path):
    ps = problems(tmp_path, hidden_size=0, num_hidden_layers=..., num_attention_heads=6,
                  num_key_value_heads=4, hidden_act="sigmoidal")
    assert [p.path for p in ps] == ["hidden_size", "num_hidden_layers", "num_key_value_heads",
                                    "hidden_act"]


def test_unknown_model_type_and_activation_suggest_names(tmp_path):
    p, = problems(tmp_path, model_type="lama")
    assert p.path == "model_type" and "'lama' is not supported" in p.message
    assert p.hint == "did you mean 'llama'?"
    p, = problems(tmp_path, model_type=...)
    assert p.path == "model_type" and "missing" in p.message
    p, = problems(tmp_path, hidden_act="slu")
    assert p.path == "hidden_act" and p.hint == "did you mean 'silu'?"


def test_unsupported_layouts(tmp_path):
    p, = problems(tmp_path, model_type="opt", max_position_embeddings=64, word_embed_proj_dim=32)
    assert p.path == "word_embed_proj_dim" and "32 differs from hidden_size 64" in p.message
    p, = problems(tmp_path, model_type="bert", max_position_embeddings=64, num_local_experts=4,
                  num_experts_per_tok=1)
    assert p.path == "num_local_experts" and "not 'bert'" in p.message
    p, = problems(tmp_path, tie_word_embeddings="yes")
    assert p.path == "tie_word_embeddings" and "expected true or false" in p.message


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_llm_config(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"hidden_size": 64,\n  oops}')
    with pytest.raises(ConfigError) as err:
        load_llm_config(bad)
    assert err.value.problems[0].line == 2 and "not valid JSON" in str(err.value)
    lst = write(tmp_path, [1, 2], "list.json")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        load_llm_config(lst)


def test_unknown_shipped_name():
    with pytest.raises(ConfigError, match="did you mean 'llama-2-7b'"):
        shipped_config("llama-2-7")


# ---- dense and MoE layers interleaved (Qwen2-MoE's keys) ------------------------------------------

MOE = {**BASE, "model_type": "mixtral", "num_hidden_layers": 6, "num_local_experts": 4,
       "num_experts_per_tok": 2}


def test_which_layers_are_moe_follows_qwen2_moe(tmp_path):
    # Hugging Face Qwen2MoeDecoderLayer: MoE when layer_idx not in mlp_only_layers and
    # (layer_idx + 1) % decoder_sparse_step == 0
    every = load_llm_config(write(tmp_path, MOE))
    assert every.layer_kinds == (True,) * 6 and every.decoder_sparse_step == 1
    other = load_llm_config(write(tmp_path, {**MOE, "decoder_sparse_step": 2}))
    assert other.layer_kinds == (False, True) * 3
    third = load_llm_config(write(tmp_path, {**MOE, "decoder_sparse_step": 3, "mlp_only_layers": [5]}))
    assert third.layer_kinds == (False, False, True, False, False, False)
    some = load_llm_config(write(tmp_path, {**MOE, "mlp_only_layers": [0, 3], "moe_intermediate_size": 32}))
    assert some.layer_kinds == (False, True, True, False, True, True)
    assert (some.intermediate_size, some.expert_intermediate_size) == (96, 32)
    assert every.expert_intermediate_size == 96  # Mixtral: the experts are intermediate_size wide
    # a short model of given kinds (the serving cost model's), and the dense model's
    short = other.with_layer_kinds((True, True))
    assert short.num_hidden_layers == 2 and short.layer_kinds == (True, True)
    assert other.with_layer_kinds((False,)).layer_kinds == (False,)
    assert shipped_config("llama-2-7b").with_layer_kinds((False, False)).num_hidden_layers == 2
    with pytest.raises(ValueError, match="has no experts"):
        shipped_config("llama-2-7b").with_layer_kinds((True,))


def test_glam_is_a_gpt_decoder_without_a_position_table():
    glam = shipped_config("glam-143b")
    assert (glam.family, glam.norm, glam.gated_mlp, glam.rotary, glam.learned_positions) == \
        ("gpt", "layernorm", False, False, False)
    assert (glam.num_local_experts, glam.num_experts_per_tok, glam.decoder_sparse_step) == (64, 2, 2)
    assert not glam.attention_bias and not glam.mlp_bias and glam.tie_word_embeddings
    grok = shipped_config("grok-1")
    assert (grok.family, grok.gated_mlp, grok.hidden_act, grok.heads_per_group) == ("llama", True, "gelu", 6)


@pytest.mark.parametrize("changes, key, text", [
    ({"decoder_sparse_step": 0}, "decoder_sparse_step", "expected an integer >= 1, found 0"),
    ({"decoder_sparse_step": 7}, "decoder_sparse_step", "no layer has experts"),
    ({"mlp_only_layers": [0, 1, 2, 3, 4, 5]}, "mlp_only_layers", "no layer has experts"),
    ({"mlp_only_layers": [1, 6]}, "mlp_only_layers", "layer indices [6] are outside 0..5"),
    ({"mlp_only_layers": [1, 1]}, "mlp_only_layers", "[1] are listed more than once"),
    ({"mlp_only_layers": "1"}, "mlp_only_layers", "expected a list of layer indices"),
    ({"mlp_only_layers": [True]}, "mlp_only_layers", "expected a list of layer indices"),
    ({"moe_intermediate_size": -2}, "moe_intermediate_size", "expected an integer >= 1"),
])
def test_bad_interleaving_keys(tmp_path, changes, key, text):
    with pytest.raises(ConfigError) as err:
        load_llm_config(write(tmp_path, {**MOE, **changes}))
    p, = err.value.problems
    assert p.path == key and text in p.message and p.file.endswith("config.json")


def test_interleaving_keys_on_a_dense_model_are_errors(tmp_path):
    ps = problems(tmp_path, decoder_sparse_step=2, mlp_only_layers=[0], moe_intermediate_size=8)
    assert [p.path for p in ps] == ["decoder_sparse_step", "moe_intermediate_size", "mlp_only_layers"]
    assert all("num_local_experts is not given" in p.message for p in ps)
    # step 1 is the default and says nothing
    assert load_llm_config(write(tmp_path, {**BASE, "decoder_sparse_step": 1})).layer_kinds == (False, False)
