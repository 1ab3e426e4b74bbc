"""Serving workloads (workloads/serving.py): request streams, traces, one iteration's graph."""

from __future__ import annotations

import numpy as np
import pytest

from architectures.presets import load_preset
from simulator.run import simulate
from workloads.errors import ConfigError
from workloads.llm_config import shipped_config
from workloads.registry import build_model
from workloads.schema import validate
from workloads.serving import IterationShape, ServingSpec, build_iteration, read_trace, request_stream


def _spec(**kw) -> ServingSpec:
    base = {"model": "llama-3-8b", "arrival": {"poisson": 4.0}, "requests": 2000, "input_length": 512,
            "output_length": {"uniform": [10, 20]}, "seed": 7}
    return validate(ServingSpec, {**base, **kw}, prefix=("workload", "serving"))


def test_poisson_requests_are_deterministic_for_a_seed():
    a, b, c = request_stream(_spec()), request_stream(_spec()), request_stream(_spec(seed=8))
    assert a == b and a != c
    gaps = np.diff([0.0] + [r.arrival_s for r in a])
    assert gaps.min() > 0 and gaps.mean() == pytest.approx(1 / 4.0, rel=0.05)
    assert {r.input_tokens for r in a} == {512}
    outs = [r.output_tokens for r in a]
    assert min(outs) == 10 and max(outs) == 20
    at_once = request_stream(_spec(arrival={"all_at_start": True}, requests=3))
    assert [r.arrival_s for r in at_once] == [0.0, 0.0, 0.0]


def test_a_trace_is_read_and_sorted_by_arrival(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("request_id,arrival_s,input_tokens,output_tokens\n7,0.5,100,10\n8,0.1,200,20\n\n")
    assert read_trace(p) == [(0.1, 200, 20), (0.5, 100, 10)]
    reqs = request_stream(_spec(arrival={"trace": str(p)}, requests=None, input_length=None, output_length=None))
    assert [(r.arrival_s, r.input_tokens) for r in reqs] == [(0.1, 200), (0.5, 100)]


@pytest.mark.parametrize("text, where, what", [
    ("arrival_s,input_tokens\n0,5\n", ":1: output_tokens:", "missing column"),
    ("arrival_s,input_tokens,output_token\n0,5,5\n", ":1: output_tokens:", "did you mean 'output_token'"),
    ("arrival_s,input_tokens,output_tokens\n0,5,5\n1,-3,5\n", ":3: input_tokens:", "expected a length >= 1 token, found -3"),
    ("arrival_s,input_tokens,output_tokens\n-1,5,5\n", ":2: arrival_s:", "expected a time >= 0 s"),
    ("arrival_s,input_tokens,output_tokens\n0,five,5\n", ":2: input_tokens:", "found 'five'"),
])
def test_bad_traces_name_the_line_and_column(tmp_path, text, where, what):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        read_trace(p)
    assert f"{p}{where}" in str(info.value) and what in str(info.value)


@pytest.mark.parametrize("change, key, what", [
    ({"arrival": {"poisson": 0}}, "workload.serving.arrival.poisson", "expected an arrival rate > 0"),
    ({"arrival": {"poisson": -2.0}}, "workload.serving.arrival.poisson", "expected an arrival rate > 0"),
    ({"arrival": {"poisson": 1, "all_at_start": True}}, "workload.serving.arrival", "exactly one"),
    ({"input_length": 0}, "workload.serving.input_length", "expected a length >= 1"),
    ({"input_length": {"uniform": [20, 10]}}, "workload.serving.input_length", "lo <= hi"),
    ({"requests": None}, "workload.serving.requests", "required unless the arrival is a trace"),
    ({"max_bacth": 8}, "workload.serving.max_bacth", "did you mean 'max_batch'"),
])
def test_bad_serving_sections_name_the_key(change, key, what):
    with pytest.raises(ConfigError) as info:
        _spec(**change)
    text = str(info.value)
    assert key in text and what in text


# ---- one iteration's graph ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def h100():
    return load_preset("h100_sxm")


def test_decode_only_and_prefill_only_iterations_are_the_llm_phases(h100):
    cfg = shipped_config("llama-3-8b")
    dec = build_iteration(cfg, IterationShape(0, 1, 16, 1000))
    ref = build_model("llama-3-8b", phase="decode", batch=16, context=1000)
    assert dec.macs == ref.macs and dec.weight_bytes == ref.weight_bytes
    assert simulate(dec, h100, engine="analytical").cycles == simulate(ref, h100, engine="analytical").cycles
    pre = build_iteration(cfg, IterationShape(2048, 512, 0, 0))
    ref = build_model("llama-3-8b", phase="prefill", batch=4, sequence=512)
    assert pre.macs == ref.macs
    assert simulate(pre, h100, engine="analytical").cycles == simulate(ref, h100, engine="analytical").cycles


def test_a_mixed_iteration_shares_the_weights_and_splits_attention():
    cfg = shipped_config("mixtral-8x7b")
    g = build_iteration(cfg, IterationShape(700, 350, 9, 300), parallelism={"expert": 4})
    names = {op.name for op in g.ops()}
    for part in ("prefill.attn.qk", "prefill.attn.av", "decode.attn.qk", "decode.attn.av", "attn.merge"):
        assert f"layers.0.{part}" in names
    # per device: ceil(700 / 4) = 175 prompt rows and ceil(9 / 4) = 3 decoding rows, together
    q = g.op("layers.0.attn.q")
    assert q.tokens == 178
    # the prompt (two sequences of 350) does not divide into whole sequences of the span:
    # one flattened product with the exact MACs: 8 KV heads x (4 x 175) x 128 x 350
    qk = g.op("layers.0.prefill.attn.qk")
    assert qk.macs == 8 * 4 * 175 * 128 * 350
    dqk = g.op("layers.0.decode.attn.qk")
    assert (dqk.batch, dqk.M, dqk.N) == (3 * 8, 4, 301)
    # the experts see every device's tokens: 4 x 178 rows, top-2 of 8
    assert sum(g.meta["expert_tokens"][0]) == 4 * 178 * 2
    assert g.op("lm_head").tokens == 1 + 3  # last token of each sequence (ceil(175 / 350) = 1)
    with pytest.raises(ValueError):
        IterationShape(0, 1, 0, 0)


@pytest.mark.parametrize("shape", [IterationShape(0, 1, 16, 1000), IterationShape(700, 350, 9, 300),
                                   IterationShape(512, 512, 0, 0)])
def test_iteration_attention_waits_for_this_steps_keys_and_values(shape):
    # decode attention reads the KV cache after this step's rows are written: decode.attn.qk
    # depends on the new keys (rotary_k) and decode.attn.av on the new values, as prefill does
    import networkx as nx

    g = build_iteration(shipped_config("mixtral-8x7b"), shape, parallelism={"expert": 4})
    for part in (["decode"] if shape.decode_batch else []) + (["prefill"] if shape.prefill_tokens else []):
        assert nx.has_path(g.nx, "layers.0.attn.rotary_k", f"layers.0.{part}.attn.qk")
        assert nx.has_path(g.nx, "layers.0.attn.v", f"layers.0.{part}.attn.av")
    # every new K/V row is written to the cache once: both are graph outputs via the store views
    for part in ("k", "v"):
        assert g.nx.out_degree(f"layers.0.attn.{part}_store") == 0
