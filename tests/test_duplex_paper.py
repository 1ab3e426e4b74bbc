"""Duplex (Yun et al., MICRO 2024, arXiv 2409.01141): experiments/papers/duplex_*.yaml.

An H100-class xPU with Logic-PIM on the logic die of its HBM3 stacks, serving MoE and GQA LLMs
with continuous batching, against the same xPU alone (GPU), twice the GPUs (2xGPU), and the xPU
with bank-level PIM (bank-PIM). Each system serves 2 x batch requests queued at time 0 with
fixed (L_in, L_out); throughput is generated tokens per second, energy is per generated token
(every device). The grid: batch 32/64/128 x (L_in, L_out) in (256, 256), (1024, 1024),
(4096, 4096), Mixtral-8x7B (4 devices, expert parallel) and Llama-3-70B (4 devices, tensor
parallel). The default run checks the paper's sanity point; the full grid is marked slow.

The paper's numbers (arXiv 2409.01141, abstract and evaluation): Duplex over GPU 2.07x on
average, up to 2.67x, energy -28.19 % on average; Mixtral at batch 64, (256, 256): bank-PIM 1.18x
and Duplex 2.05x the GPU; Duplex over bank-PIM on Mixtral 1.49x on average, up to 1.80x.
Tolerance: the direction everywhere and the averages within +-25 %; the model's own values are
pinned (2 %) so that a change shows.
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
    # (256, 256): bank-PIM 1.18x and Duplex 2.05x the GPU's throughput. Model: 1.19x and 1.93x.
    bank = _ratio("duplex_mixtral_bankpim", "duplex_mixtral_gpu", 64, (256, 256))
    duplex = _ratio("duplex_mixtral", "duplex_mixtral_gpu", 64, (256, 256))
    assert bank == pytest.approx(1.18, rel=0.25) and bank == pytest.approx(1.194, rel=0.02)
    assert duplex == pytest.approx(2.05, rel=0.25) and duplex == pytest.approx(1.930, rel=0.02)
    # Duplex beats bank-PIM (the paper: 1.49x on average over the grid) and saves energy
    assert duplex / bank == pytest.approx(1.49, rel=0.25)
    energy = _ratio("duplex_mixtral", "duplex_mixtral_gpu", 64, (256, 256), "energy_pj_per_token")
    assert energy < 1.0 and energy == pytest.approx(0.672, rel=0.02)
    # every request is served, the batch is full
    for name in ("duplex_mixtral", "duplex_mixtral_gpu", "duplex_mixtral_bankpim"):
        assert _run(name)["requests_completed"] == 128 and _run(name)["mean_batch"] > 63


@pytest.mark.golden
def test_two_gpus_are_slower_than_duplex_on_mixtral():
    # 2xGPU: 8 H100s (one expert each) for the same requests: the paper puts Duplex ahead of it
    # (end-to-end latency -35.4 % on GLaM); here 1.80x the GPU vs Duplex's 1.93x.
    two = _ratio("duplex_mixtral_2xgpu", "duplex_mixtral_gpu", 64, (256, 256))
    assert 1.5 < two < _ratio("duplex_mixtral", "duplex_mixtral_gpu", 64, (256, 256))


GRID = [(b, l) for b in BATCHES for l in LENGTHS]


@pytest.mark.golden
@pytest.mark.slow
def test_duplex_over_gpu_and_bank_pim_over_the_papers_grid():
    # The full grid (about 2 minutes). Directions: Duplex faster and more frugal than the GPU at
    # every point, for both models; faster than bank-PIM at every Mixtral point.
    speed, energy, vs_bank = {}, {}, []
    for model in ("mixtral", "llama3_70b"):
        for b, l in GRID:
            s = _ratio(f"duplex_{model}", f"duplex_{model}_gpu", b, l)
            e = _ratio(f"duplex_{model}", f"duplex_{model}_gpu", b, l, "energy_pj_per_token")
            assert s > 1.0 and e < 1.0, (model, b, l, s, e)
            speed[(model, b, l)], energy[(model, b, l)] = s, e
            if model == "mixtral":
                vb = s / _ratio("duplex_mixtral_bankpim", "duplex_mixtral_gpu", b, l)
                assert vb > 1.0, (b, l, vb)
                vs_bank.append(vb)
    mix = [v for k, v in speed.items() if k[0] == "mixtral"]
    mix_e = [v for k, v in energy.items() if k[0] == "mixtral"]
    # Mixtral alone: mean 2.28x (paper, all five models: 2.07x; +10 %), max 2.97x (2.67x: +11 %),
    # energy -30 % (-28 %)
    assert statistics.mean(mix) == pytest.approx(2.07, rel=0.25)
    assert statistics.mean(mix) == pytest.approx(2.280, rel=0.02)
    assert max(mix) == pytest.approx(2.67, rel=0.25)
    assert 1 - statistics.mean(mix_e) == pytest.approx(0.2819, rel=0.25)
    assert statistics.mean(mix_e) == pytest.approx(0.699, rel=0.02)
    # Llama-3-70B alone: 1.17x, energy -5 %. Dense, so in Duplex only its GQA attention (Op/B
    # about 8) moves to PIM; the FC layers, whose weights dominate every decode step's bytes,
    # stay on the xPU. Both models together: mean 1.72x (paper 2.07x: -17 %, within +-25 %) but
    # energy -17.6 %, which does NOT reproduce the paper's -28.19 % (+-25 %: -21.1 to -35.2 %).
    # The paper averages five models, three of them MoE (Mixtral, GLaM, Grok-1; GLaM alone saves
    # 42 %) and OPT-66B with MHA attention (Op/B 1, all of its KV cache on PIM); our second model
    # is the one whose savings are smallest, and its prompt tokens' MACs (0.46 pJ each, 70 B per
    # token) are the same on both systems.
    llama = [v for k, v in speed.items() if k[0] == "llama3_70b"]
    llama_e = [v for k, v in energy.items() if k[0] == "llama3_70b"]
    assert statistics.mean(llama) == pytest.approx(1.167, rel=0.02)
    assert statistics.mean(llama_e) == pytest.approx(0.950, rel=0.02)
    assert statistics.mean(speed.values()) == pytest.approx(2.07, rel=0.25)
    assert statistics.mean(energy.values()) == pytest.approx(0.824, rel=0.02)
    # Duplex over bank-PIM on Mixtral: 1.50x on average (paper 1.49x), up to 1.62x (paper 1.80x)
    assert statistics.mean(vs_bank) == pytest.approx(1.49, rel=0.25)
    assert statistics.mean(vs_bank) == pytest.approx(1.502, rel=0.02)
    assert max(vs_bank) == pytest.approx(1.80, rel=0.25)
    # the paper: the gain rises with the lengths; it does here at every batch
    for b in BATCHES:
        row = [speed[("mixtral", b, l)] for l in LENGTHS]
        assert row == sorted(row), (b, row)
    # it does NOT rise with the batch here (the paper: it does). At batch 32 each device's two
    # experts get 8 rows per step, Op/B 8, Logic-PIM's ridge: the MoE layers run at 4x the HBM
    # bandwidth and Duplex gains most; at 64 and 128 the experts' Op/B (16, 32) is above PIM's
    # ridge, PIM is compute-bound and the gain shrinks. The paper's attention layers are tensor
    # parallel (Tessera's expert parallelism makes attention data parallel), which we cannot
    # set apart from this.
    assert speed[("mixtral", 32, (256, 256))] > speed[("mixtral", 128, (256, 256))]


@pytest.mark.golden
@pytest.mark.slow
@pytest.mark.parametrize("lengths, expected", [((256, 256), 1.233), ((4096, 4096), 1.174)])
def test_tensor_parallel_experts_add_to_duplex(lengths, expected):
    # arXiv 2409.01141: expert co-processing adds 1.04x on average and tensor-parallel experts
    # ("ET") up to 1.36x over plain Duplex. ET = system.parallelism.tensor: 4 (experts, and the
    # attention with them, split over the 4 devices): 1.23x and 1.17x here. Co-processing adds
    # nothing under the grid's uniform routing (a device's two experts are equal, so the best
    # split puts both on one unit); it splits skewed layers (tests/mappers/test_opb_placement.py).
    data, lines = load_yaml(PAPERS / "duplex_mixtral.yaml")
    data["workload"]["serving"].update(input_length=lengths[0], output_length=lengths[1])
    plain = run_experiment(experiment_from_dict(data)).metrics()["throughput_tokens_per_s"]
    data["system"]["parallelism"] = {"tensor": 4}
    et = run_experiment(experiment_from_dict(data)).metrics()["throughput_tokens_per_s"]
    assert 1.0 < et / plain <= 1.36 * 1.25
    assert et / plain == pytest.approx(expected, rel=0.02)
