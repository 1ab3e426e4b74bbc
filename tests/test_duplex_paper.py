"""Duplex (Yun et al., MICRO 2024, arXiv 2409.01141): experiments/papers/duplex_*.yaml.

An H100-class xPU with Logic-PIM on the logic die of its HBM3 stacks, serving MoE and dense LLMs
with continuous batching, against the same xPU alone (GPU), twice the GPUs (2xGPU), and the xPU
with bank-level PIM (bank-PIM). Each system serves 2 x batch requests queued at time 0 with
fixed (L_in, L_out); throughput is generated tokens per second, energy is per generated token
(every device). The grid: batch 32/64/128 x (L_in, L_out) in (256, 256), (1024, 1024),
(4096, 4096) for the paper's five models: Mixtral-8x7B (4 devices: attention tensor parallel
over the 4, the experts spread over the same 4, as in the paper; 2xGPU: the same over 8),
GLaM-143B (8 devices, the same layout, its dense FFN layers tensor parallel too; 2xGPU: 16, at
batch 64 only, to save time), Grok-1 (16 devices, 2 nodes: tensor parallel, the experts too; no
2xGPU: 32 devices do not divide its 48 heads) and Llama-3-70B (4 devices, tensor parallel), and
the first two lengths for OPT-66B (4 devices, tensor parallel; its learned position table has
2048 rows). Mixtral with expert parallelism and data-parallel attention (duplex_mixtral_ep.yaml,
duplex_mixtral_gpu_ep.yaml) is measured beside it. The default run checks the paper's sanity
point and one point of GLaM and Grok-1; the grid is marked slow.

The paper's numbers (arXiv 2409.01141, abstract and evaluation, over five models: Mixtral,
GLaM, Grok-1, OPT-66B, Llama-3-70B): Duplex over GPU 2.07x on average, up to 2.67x, energy
-28.19 % on average; Mixtral at batch 64, (256, 256): bank-PIM 1.18x and Duplex 2.05x the GPU;
Duplex over bank-PIM on Mixtral 1.49x on average, up to 1.80x. Tolerance: the direction
everywhere and the averages within +-25 %; the model's own values are pinned (2 %) so that a
change shows. Where a number does not reproduce, the test asserts what the model gives and says
why (and the paper's number is an xfail).
"""

from __future__ import annotations

import statistics
from functools import lru_cache
from pathlib import Path

import pytest

from simulator.experiment import experiment_from_dict
from simulator.run import run_experiment
from workloads.yamlio import load_yaml

PAPERS = Path(__file__).resolve().parents[1] / "experiments" / "papers"
LENGTHS = ((256, 256), (1024, 1024), (4096, 4096))
BATCHES = (32, 64, 128)
# model -> the lengths it runs at (OPT-66B: L_in + L_out <= its 2048 positions)
MODELS = {"mixtral": LENGTHS, "glam": LENGTHS, "grok1": LENGTHS, "llama3_70b": LENGTHS,
          "opt_66b": LENGTHS[:2]}
DENSE = ("llama3_70b", "opt_66b")
MOE = ("mixtral", "glam", "grok1")
BEFORE = ("mixtral", "llama3_70b", "opt_66b")  # the models the reproduction had before GLaM and Grok-1
# model -> the batches 2xGPU runs at (every length): GLaM's 16 devices at the paper's batch 64
# only (its 2xGPU runs take a third of the grid's time); Grok-1 has no 2xGPU system
TWO_GPU_BATCHES = {"mixtral": BATCHES, "glam": (64,), "grok1": (), "llama3_70b": BATCHES, "opt_66b": BATCHES}


@lru_cache(maxsize=None)
def _run(name: str, batch: int = 64, lengths: tuple[int, int] = (256, 256)) -> dict:
    path = PAPERS / f"{name}.yaml"
    data, lines = load_yaml(path)
    s = data["workload"]["serving"]
    s.update(max_batch=batch, requests=2 * batch, input_length=lengths[0], output_length=lengths[1])
    m = run_experiment(experiment_from_dict(data, file=str(path), lines=lines)).metrics()
    return {k: m[k] for k in ("throughput_tokens_per_s", "energy_pj_per_token", "tbt_s", "ttft_s",
                              "requests_completed", "mean_batch")}


def _ratio(system: str, base: str, batch: int, lengths: tuple[int, int], key: str = "throughput_tokens_per_s") -> float:
    return _run(system, batch, lengths)[key] / _run(base, batch, lengths)[key]


@pytest.mark.golden
def test_mixtral_batch_64_short_requests_matches_the_papers_sanity_point():
    # arXiv 2409.01141 (reference/published_designs.md Sec. 4 'sanity'): Mixtral, batch 64,
    # (256, 256): bank-PIM 1.18x and Duplex 2.05x the GPU's throughput. Model: 1.20x and 1.94x
    # (-6 %: at batch 64 each expert gets 16 rows, Op/B 16, above Logic-PIM's ridge of 8; see
    # test_how_the_gain_moves_with_length_and_batch).
    bank = _ratio("duplex_mixtral_bankpim", "duplex_mixtral_gpu", 64, (256, 256))
    duplex = _ratio("duplex_mixtral", "duplex_mixtral_gpu", 64, (256, 256))
    assert bank == pytest.approx(1.18, rel=0.25) and bank == pytest.approx(1.198, rel=0.02)
    assert duplex == pytest.approx(2.05, rel=0.25) and duplex == pytest.approx(1.936, rel=0.02)
    # Duplex beats bank-PIM (the paper: 1.49x on average over the grid; 1.62x here) and saves energy
    assert duplex / bank == pytest.approx(1.49, rel=0.25)
    energy = _ratio("duplex_mixtral", "duplex_mixtral_gpu", 64, (256, 256), "energy_pj_per_token")
    assert energy < 1.0 and energy == pytest.approx(0.651, rel=0.02)
    # With expert parallelism alone (data-parallel attention: each device reads every attention
    # weight for a quarter of the batch) both systems are slower here and the gain is 1.90x
    ep = _ratio("duplex_mixtral_ep", "duplex_mixtral_gpu_ep", 64, (256, 256))
    assert ep == pytest.approx(1.901, rel=0.02) and ep < duplex
    for tp_name, ep_name in (("duplex_mixtral", "duplex_mixtral_ep"), ("duplex_mixtral_gpu", "duplex_mixtral_gpu_ep")):
        assert _run(tp_name)["throughput_tokens_per_s"] > _run(ep_name)["throughput_tokens_per_s"]
    # every request is served, the batch is full
    for name in ("duplex_mixtral", "duplex_mixtral_gpu", "duplex_mixtral_bankpim"):
        assert _run(name)["requests_completed"] == 128 and _run(name)["mean_batch"] > 63


@pytest.mark.golden
def test_two_gpus_are_slower_than_duplex_on_mixtral():
    # 2xGPU: 8 H100s (attention tensor parallel over the 8, one expert each) for the same
    # requests: the paper puts Duplex ahead of it (end-to-end latency -35.4 % on GLaM); here
    # 1.77x the GPU vs Duplex's 1.94x.
    two = _ratio("duplex_mixtral_2xgpu", "duplex_mixtral_gpu", 64, (256, 256))
    assert 1.5 < two < _ratio("duplex_mixtral", "duplex_mixtral_gpu", 64, (256, 256))
    assert two == pytest.approx(1.766, rel=0.02)


@pytest.mark.golden
def test_the_two_moe_models_at_batch_64_short_requests():
    # GLaM-143B on 8 devices (Duplex Table I), batch 64, (256, 256): Duplex 2.98x the GPU's
    # tokens/s and -37.6 % energy per token (the paper's GLaM: -42.03 % on average over its grid,
    # its largest saving: 64 experts of 2 rows each at batch 64, Op/B 2, all read from Logic-PIM
    # at 4x the bandwidth and 1.81 instead of 3.48 pJ/bit). The paper, GLaM at batch 64: median
    # time between tokens -58.3 %; here -68.5 % (+17 %; offline: every request queued at time 0).
    speed = _ratio("duplex_glam", "duplex_glam_gpu", 64, (256, 256))
    energy = _ratio("duplex_glam", "duplex_glam_gpu", 64, (256, 256), "energy_pj_per_token")
    tbt = _ratio("duplex_glam", "duplex_glam_gpu", 64, (256, 256), "tbt_s")
    assert speed == pytest.approx(2.976, rel=0.02) and energy == pytest.approx(0.624, rel=0.02)
    assert 1 - tbt == pytest.approx(0.583, rel=0.25) and 1 - tbt == pytest.approx(0.685, rel=0.02)
    # Grok-1 on 16 devices (2 nodes; every layer tensor parallel, the experts too): 2.01x, -26 %
    # (8 experts of 16 rows each at batch 64: Op/B 16, above Logic-PIM's ridge, as Mixtral's)
    assert _ratio("duplex_grok1", "duplex_grok1_gpu", 64, (256, 256)) == pytest.approx(2.011, rel=0.02)
    assert _ratio("duplex_grok1", "duplex_grok1_gpu", 64, (256, 256), "energy_pj_per_token") == \
        pytest.approx(0.739, rel=0.02)
    for name in ("duplex_glam", "duplex_glam_gpu", "duplex_grok1", "duplex_grok1_gpu"):
        assert _run(name)["requests_completed"] == 128 and _run(name)["mean_batch"] > 63


# ---- the grid (slow) --------------------------------------------------------------------------------

def _points(model: str) -> list[tuple[int, tuple[int, int]]]:
    return [(b, l) for b in BATCHES for l in MODELS[model]]


@lru_cache(maxsize=None)
def _grid() -> dict:
    """Per model and point: Duplex / GPU and 2xGPU / GPU throughput and energy per token, and
    Duplex / bank-PIM throughput (Mixtral)."""
    out: dict = {}
    for model in MODELS:
        for b, l in _points(model):
            d, base = f"duplex_{model}", f"duplex_{model}_gpu"
            out[("speed", model, b, l)] = _ratio(d, base, b, l)
            out[("energy", model, b, l)] = _ratio(d, base, b, l, "energy_pj_per_token")
            if b in TWO_GPU_BATCHES[model]:
                out[("speed2x", model, b, l)] = _ratio(f"{d}_2xgpu", base, b, l)
                out[("energy2x", model, b, l)] = _ratio(f"{d}_2xgpu", base, b, l, "energy_pj_per_token")
            if model == "mixtral":
                out[("vs_bank", model, b, l)] = out[("speed", model, b, l)] / _ratio(f"{d}_bankpim", base, b, l)
    return out


def _values(what: str, model: str | tuple[str, ...] | None = None) -> list[float]:
    """Every grid point's value of ``what`` for a model, some models, or (None) all five."""
    models = (model,) if isinstance(model, str) else model
    return [v for k, v in _grid().items() if k[0] == what and (models is None or k[1] in models)]


def _mean(what: str, model: str | tuple[str, ...] | None = None) -> float:
    """The mean over every grid point (of each model: OPT-66B has 6, the others 9)."""
    return statistics.mean(_values(what, model))


@pytest.mark.golden
@pytest.mark.slow
def test_duplex_over_gpu_and_bank_pim_over_the_papers_grid():
    # The grid (about 2.3 minutes on this 2-core machine: 55 s for Mixtral, Llama-3-70B and
    # OPT-66B, 80 s for GLaM and Grok-1). Directions: Duplex faster and more frugal than the GPU
    # at every point, for every model; faster than bank-PIM at every Mixtral point.
    g = _grid()
    for (what, model, b, l), v in g.items():
        if what == "speed" or what == "vs_bank":
            assert v > 1.0, (what, model, b, l, v)
        if what == "energy":
            assert v < 1.0, (what, model, b, l, v)
    # Mixtral alone: mean 2.29x (paper, five models: 2.07x; +11 %), max 3.02x (2.67x: +13 %, at
    # batch 32, (4096, 4096)), energy -31.8 % (-28.2 %)
    assert _mean("speed", "mixtral") == pytest.approx(2.07, rel=0.25)
    assert _mean("speed", "mixtral") == pytest.approx(2.291, rel=0.02)
    assert max(_values("speed", "mixtral")) == pytest.approx(2.67, rel=0.25)
    assert max(_values("speed", "mixtral")) == pytest.approx(3.021, rel=0.02)
    assert 1 - _mean("energy", "mixtral") == pytest.approx(0.2819, rel=0.25)
    assert _mean("energy", "mixtral") == pytest.approx(0.682, rel=0.02)
    # The dense models: in Duplex only their decode attention moves to PIM (GQA Op/B about 8 for
    # Llama-3-70B, MHA Op/B about 1 for OPT-66B); the FC layers, whose weights are most of a
    # decode step's bytes at these lengths, stay on the xPU. Llama-3-70B 1.14x, energy -5 %;
    # OPT-66B 1.28x, energy -11 % (its cache is 9x Llama's per token: attention is a larger share).
    assert _mean("speed", "llama3_70b") == pytest.approx(1.140, rel=0.02)
    assert _mean("energy", "llama3_70b") == pytest.approx(0.950, rel=0.02)
    assert _mean("speed", "opt_66b") == pytest.approx(1.277, rel=0.02)
    assert _mean("energy", "opt_66b") == pytest.approx(0.888, rel=0.02)
    # The two MoE models the paper adds (Duplex Table I): GLaM-143B 3.10x on average, up to 3.33x
    # (batch 32, (4096, 4096)), energy -38.9 % (the paper: -42.03 % for GLaM); Grok-1 2.06x, up to
    # 2.51x, energy -27.4 %.
    assert _mean("speed", "glam") == pytest.approx(3.096, rel=0.02)
    assert max(_values("speed", "glam")) == pytest.approx(3.332, rel=0.02)
    assert 1 - _mean("energy", "glam") == pytest.approx(0.4203, rel=0.25)
    assert _mean("energy", "glam") == pytest.approx(0.611, rel=0.02)
    assert _mean("speed", "grok1") == pytest.approx(2.064, rel=0.02)
    assert max(_values("speed", "grok1")) == pytest.approx(2.508, rel=0.02)
    assert _mean("energy", "grok1") == pytest.approx(0.726, rel=0.02)
    # The three models the reproduction had before (Mixtral, Llama-3-70B, OPT-66B): 1.61x,
    # energy -16.6 %. All five (every point of each, 42 points): mean 2.02x (paper 2.07x: -2 %),
    # max 3.33x (GLaM at batch 32, (4096, 4096); paper 2.67x: +25 %, the edge of the tolerance);
    # energy: test_the_papers_average_energy_saving.
    assert _mean("speed", BEFORE) == pytest.approx(1.606, rel=0.02)
    assert _mean("energy", BEFORE) == pytest.approx(0.834, rel=0.02)
    assert len(_values("speed")) == 42
    assert _mean("speed") == pytest.approx(2.07, rel=0.25)
    assert _mean("speed") == pytest.approx(2.024, rel=0.02)
    assert max(_values("speed")) == pytest.approx(2.67, rel=0.25)
    assert max(_values("speed")) == pytest.approx(3.332, rel=0.02)
    # Duplex over bank-PIM on Mixtral: 1.47x on average (paper 1.49x), up to 1.62x (paper 1.80x)
    assert _mean("vs_bank") == pytest.approx(1.49, rel=0.25)
    assert _mean("vs_bank") == pytest.approx(1.471, rel=0.02)
    assert max(_values("vs_bank")) == pytest.approx(1.80, rel=0.25)
    assert max(_values("vs_bank")) == pytest.approx(1.617, rel=0.02)


@pytest.mark.golden
@pytest.mark.slow
def test_the_papers_average_energy_saving():
    # arXiv 2409.01141 (abstract, evaluation): energy per token -28.19 % on average over the five
    # models (Mixtral, GLaM, Grok-1, OPT-66B, Llama-3-70B). Here, over every grid point of the
    # same five: -23.7 % (-16 % from the paper, within +-25 %: -21.1 to -35.2 %); the mean of the
    # per-model means is -22.9 %. The MoE models save most (Mixtral 31.8 %, GLaM 38.9 %, Grok-1
    # 27.4 %: their experts' weights move to Logic-PIM's 1.81 pJ/bit); the dense ones 5.0 % and
    # 11.3 % (only attention moves; the FC weights are read by the xPU at 3.48 pJ/bit as on the
    # GPU), which keeps the average below the paper's. The three models alone give -16.6 %
    # (outside the tolerance: the paper's average needs GLaM and Grok-1).
    assert 1 - _mean("energy") == pytest.approx(0.2819, rel=0.25)
    assert _mean("energy") == pytest.approx(0.763, rel=0.02)
    per_model = statistics.mean(_mean("energy", m) for m in MODELS)
    assert 1 - per_model == pytest.approx(0.2819, rel=0.25) and per_model == pytest.approx(0.771, rel=0.02)
    assert 1 - _mean("energy", BEFORE) != pytest.approx(0.2819, rel=0.25)


@pytest.mark.golden
@pytest.mark.slow
def test_how_the_gain_moves_with_length_and_batch():
    g = _grid()
    # Longer requests: the gain grows (longer KV caches make attention, which Logic-PIM runs at 4x
    # the bandwidth, a larger share), for every model at every batch. Exceptions: Mixtral and
    # Grok-1 at batch 32 are flat (2.96x, 2.95x, 3.02x; 2.47x, 2.45x, 2.51x), as their experts get
    # 8 rows each there (8 experts, top-2), Logic-PIM's ridge: they gain the same 4x as attention,
    # so a larger attention share changes little.
    for model in MODELS:
        for b in BATCHES:
            row = [g[("speed", model, b, l)] for l in MODELS[model]]
            assert row[-1] > row[0], (model, b, row)
            if (model, b) not in (("mixtral", 32), ("grok1", 32)):
                assert row == sorted(row), (model, b, row)
    # Larger batches: for the dense models the gain grows, as in the paper (attention's bytes
    # grow with the batch, the FC weights' do not).
    for model in DENSE:
        for l in MODELS[model]:
            col = [g[("speed", model, b, l)] for b in BATCHES]
            assert col == sorted(col), (model, l, col)
    # For Mixtral it shrinks at every length (2.96x -> 1.94x -> 1.63x at (256, 256); 3.02x ->
    # 2.24x -> 2.12x at (4096, 4096)), the opposite of the paper's trend. Per-op times of a
    # decode step (1 layer, context 384): the GPU's expert GEMMs stay memory-bound (332 us summed
    # over the 8 experts at batch 32 and 128 alike); on Logic-PIM they take 84 us at batch 32
    # (8 rows per expert: Op/B 8, its ridge) but 308 us at batch 128 (32 rows, Op/B 32: compute-
    # bound at 106 TFLOPS per device), where expert co-processing only halves them by running
    # one expert per device on the xPU at once. Attention gains 3.8x at both batches. With
    # Duplex's own Logic-PIM rates (Op/B 8) this is what uniform routing gives. The attention is
    # tensor parallel, as in the paper; with data-parallel attention instead the trend is the
    # same (test_tensor_parallel_attention_beside_the_experts).
    for l in LENGTHS:
        col = [g[("speed", "mixtral", b, l)] for b in BATCHES]
        assert col == sorted(col, reverse=True), (l, col)
    assert g[("speed", "mixtral", 32, (256, 256))] == pytest.approx(2.962, rel=0.02)
    assert g[("speed", "mixtral", 128, (256, 256))] == pytest.approx(1.631, rel=0.02)
    # Grok-1 the same, for the same reason (8 experts, top-2: 8, 16, 32 rows per expert; 2.47x ->
    # 2.01x -> 1.46x at (256, 256)).
    for l in LENGTHS:
        col = [g[("speed", "grok1", b, l)] for b in BATCHES]
        assert col == sorted(col, reverse=True), (l, col)
    # GLaM's experts get 1, 2, 4 rows (64 experts), all below the ridge, and its gain shrinks less
    # (3.21x -> 2.98x -> 2.72x at (256, 256)): what grows with the batch (the xPU's projections and
    # dense FFNs, the collectives on the links, decode attention) grows about as much in both
    # systems (a decode step's dense layer, context 384: +25 us on Duplex, +45 us on the GPU from
    # batch 32 to 128; a MoE layer +23 and +44 us), while the expert weights, most of the GPU's
    # step, cost the same at every batch (median TBT gain 3.33x -> 3.03x). At (4096, 4096) it is
    # flat (3.33x, 3.24x, 3.24x): the 8 devices' KV caches hold about 64 such requests, so batch
    # 128 runs as 64.
    for l in LENGTHS[:2]:
        col = [g[("speed", "glam", b, l)] for b in BATCHES]
        assert col == sorted(col, reverse=True), (l, col)
    assert g[("speed", "glam", 128, (4096, 4096))] == pytest.approx(g[("speed", "glam", 64, (4096, 4096))], rel=0.01)


@pytest.mark.golden
@pytest.mark.slow
def test_tensor_parallel_attention_beside_the_experts():
    # The paper's Mixtral setup, attention tensor parallel over the 4 devices beside the experts
    # spread over them ({tensor: 4, expert: 4}), against expert parallelism with data-parallel
    # attention ({expert: 4}: each device runs a quarter of the batch with every attention
    # weight): the same attention MACs and KV-cache bytes and the same expert rows, a quarter of
    # the attention weights per device, but an all-reduce after the attention and an all-gather
    # after the MoE on the links. Duplex's gain over the GPU rises at batch 32 (2.75x -> 2.96x
    # at (256, 256)) and 64 (1.90x -> 1.94x) and is unchanged at batch 128 (1.64x -> 1.63x);
    # the grid's mean goes from 2.21x to 2.29x. It does not raise every gain.
    g = _grid()
    ep = {(b, l): _ratio("duplex_mixtral_ep", "duplex_mixtral_gpu_ep", b, l) for b, l in _points("mixtral")}
    assert statistics.mean(ep.values()) == pytest.approx(2.212, rel=0.02)
    assert ep[(32, (256, 256))] == pytest.approx(2.746, rel=0.02)
    assert ep[(128, (256, 256))] == pytest.approx(1.637, rel=0.02)
    for (b, l), v in ep.items():
        tp = g[("speed", "mixtral", b, l)]
        assert tp > v if b <= 64 else tp == pytest.approx(v, rel=0.01), (b, l, tp, v)
    for l in LENGTHS:  # the same trend in batch (test_how_the_gain_moves_with_length_and_batch)
        col = [ep[(b, l)] for b in BATCHES]
        assert col == sorted(col, reverse=True), (l, col)
    # Both systems are faster with it at batch 32 and 64 and about 1 % slower at batch 128:
    # there decode steps still gain (the attention weights saved outweigh the collectives) but
    # iterations with prompt tokens lose more (every prompt row of a layer is all-reduced and
    # all-gathered over 450 GB/s links), and at batch 128 those are a larger share of the run.
    for b, l in _points("mixtral"):
        for tp_name, ep_name in (("duplex_mixtral", "duplex_mixtral_ep"), ("duplex_mixtral_gpu", "duplex_mixtral_gpu_ep")):
            speedup = _run(tp_name, b, l)["throughput_tokens_per_s"] / _run(ep_name, b, l)["throughput_tokens_per_s"]
            assert (speedup > 1) == (b <= 64) and abs(speedup - 1) < 0.13, (tp_name, b, l, speedup)
            if b == 128:
                assert _run(tp_name, b, l)["tbt_s"] < _run(ep_name, b, l)["tbt_s"]
                assert _run(tp_name, b, l)["ttft_s"] > _run(ep_name, b, l)["ttft_s"]


@pytest.mark.golden
@pytest.mark.slow
def test_duplex_against_twice_the_gpus():
    # 2xGPU: 8 H100s for the same requests (Mixtral: attention tensor parallel over the 8, one
    # expert per GPU; the dense models tensor parallel over 8). The paper: Duplex ahead of 2xGPU
    # (GLaM at batch 64: end-to-end latency -35.4 %). Mixtral: Duplex 1.28x 2xGPU's throughput on
    # average and at every batch-32 and batch-64 point; at batch 128 2xGPU wins at (256, 256) and
    # (1024, 1024):
    # each expert gets 32 rows per step, which the GPUs read at twice the total HBM bandwidth
    # (memory-bound) while Logic-PIM is compute-bound on them (Op/B 32 against its ridge of 8).
    g = _grid()
    mix = {(b, l): g[("speed", "mixtral", b, l)] / g[("speed2x", "mixtral", b, l)] for b, l in _points("mixtral")}
    assert statistics.mean(mix.values()) == pytest.approx(1.275, rel=0.02)
    assert all(v > 1 for (b, _), v in mix.items() if b <= 64)
    assert mix[(128, (256, 256))] < 1
    # Energy: Duplex spends less per token than 2xGPU at every Mixtral point (2xGPU: +0.7 % over
    # the GPU: the same weights and KV cache are read once, but the norms and residual adds,
    # replicated on every tensor-parallel device, run on 8 devices instead of 4)
    assert all(g[("energy", "mixtral", b, l)] < g[("energy2x", "mixtral", b, l)] for b, l in _points("mixtral"))
    assert _mean("energy2x", "mixtral") == pytest.approx(1.007, rel=0.02)
    # Dense models: 2xGPU is faster at every point (1.74x and 2.09x the GPU on average vs
    # Duplex's 1.14x and 1.28x): doubling the HBM bandwidth speeds up the FC weights, which
    # Duplex leaves on the xPU, and doubles the KV-cache room (OPT-66B at (1024, 1024) holds
    # about 32 requests on 4 devices, 64 on 8). This does not reproduce the paper's ordering
    # for these models; the paper reports 2xGPU per model only in figures.
    for model in DENSE:
        for b, l in _points(model):
            assert g[("speed2x", model, b, l)] > g[("speed", model, b, l)], (model, b, l)
    # GLaM at batch 64 (16 devices for 2xGPU, 2 nodes): Duplex 1.78x 2xGPU's throughput on average
    # over the three lengths (the paper, GLaM at batch 64: end-to-end latency -35.4 % vs 2xGPU;
    # median TBT here -46 %), at the same energy per token as the GPU for 2xGPU (+0.5 %)
    glam = [g[("speed", "glam", 64, l)] / g[("speed2x", "glam", 64, l)] for l in LENGTHS]
    assert all(v > 1 for v in glam) and statistics.mean(glam) == pytest.approx(1.78, rel=0.02)
    assert _mean("energy2x", "glam") == pytest.approx(1.005, rel=0.02)
    assert _mean("speed2x", "llama3_70b") == pytest.approx(1.743, rel=0.02)
    assert _mean("speed2x", "opt_66b") == pytest.approx(2.090, rel=0.02)
    assert _mean("energy2x", "llama3_70b") == pytest.approx(0.972, rel=0.02)
    assert _mean("energy2x", "opt_66b") == pytest.approx(0.874, rel=0.02)


@pytest.mark.golden
@pytest.mark.slow
@pytest.mark.parametrize("lengths, expected", [((256, 256), 1.184), ((4096, 4096), 1.145)])
def test_tensor_parallel_experts_add_to_duplex(lengths, expected):
    # arXiv 2409.01141: expert co-processing adds 1.04x on average and tensor-parallel experts
    # ("ET") up to 1.36x over plain Duplex. ET = system.parallelism {tensor: 4} alone (every
    # expert split over the 4 devices, the attention tensor parallel as in plain Duplex's
    # {tensor: 4, expert: 4}): 1.18x and 1.14x here. Co-processing adds nothing under the grid's
    # uniform routing at batch 64 (a device's two experts are equal, so the best split puts both
    # on one unit); it splits skewed layers (tests/mappers/test_opb_placement.py,
    # tests/mappers/test_hetero_plan.py).
    data, lines = load_yaml(PAPERS / "duplex_mixtral.yaml")
    data["workload"]["serving"].update(input_length=lengths[0], output_length=lengths[1])
    plain = run_experiment(experiment_from_dict(data)).metrics()["throughput_tokens_per_s"]
    data["system"]["parallelism"] = {"tensor": 4}
    et = run_experiment(experiment_from_dict(data)).metrics()["throughput_tokens_per_s"]
    assert 1.0 < et / plain <= 1.36 * 1.25
    assert et / plain == pytest.approx(expected, rel=0.02)
