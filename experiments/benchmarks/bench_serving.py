"""Benchmark: wall time of a continuous-batching serving run (the serving issue's speed target).

1,000 requests of Mixtral-8x7B served by a Duplex system: 4 H100-class xPUs with Logic-PIM
(preset ``h100_logic_pim``, expert parallel, expert co-processing), Poisson arrivals at 10
requests/s, prompts uniform in 512-4096 tokens, outputs uniform in 128-1024 tokens, batch up to
64, numba engine, the default cost model (iteration shapes interpolated, 1- and 2-layer models
extrapolated; simulator/serving.py). Variable lengths are the hard case for the cost cache (every
iteration's shape differs); a second case serves fixed (4096, 512) requests, the paper's latency
study. Printed: the wall time from the experiment to the result in a fresh process (imports and
cached numba kernels included), the time spent simulating iteration shapes, the number of
shapes, iterations, and the serving metrics. Target: under 30 s on this machine.

    python experiments/benchmarks/bench_serving.py [--requests 1000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

CASES = {  # label: (input length, output length)
    "prompts U[512, 4096], outputs U[128, 1024]": ({"uniform": [512, 4096]}, {"uniform": [128, 1024]}),
    "prompts 4096, outputs 512 (the paper's latency study)": (4096, 512),
}


def experiment(requests: int, input_length, output_length) -> dict:
    return {
        "name": "bench_serving",
        "architecture": {"preset": "h100_logic_pim",
                         "overrides": {"energy_table": "duplex_llmsimulator", "memory.l2.energy": 0,
                                       "kernel.launch_overhead": 0}},
        "system": {"devices": 4, "link": {"bandwidth": "450 GB/s", "latency": "0.8 us"},
                   "parallelism": {"expert": 4}},
        "workload": {"phase": "serving", "serving": {
            "model": "mixtral-8x7b", "arrival": {"poisson": 10}, "requests": requests,
            "input_length": input_length, "output_length": output_length, "max_batch": 64, "seed": 0}},
        "mapper": {"attention": "fused", "expert_coprocessing": True},
        "engine": "numba",
    }


def fresh(requests: int, input_length, output_length) -> dict:
    """Run one case in a new process; returns its timings and metrics."""
    code = textwrap.dedent(f"""
        import json, sys, time
        t0 = time.perf_counter()
        sys.path.insert(0, {str(REPO)!r})
        sys.argv = ["x"]
        from experiments.benchmarks.bench_serving import experiment
        from simulator import serving
        from simulator.experiment import experiment_from_dict
        from simulator.run import run_experiment
        spent = [0.0]
        simulate_shape = serving.IterationCosts._simulate
        def timed(self, *a, **k):
            t = time.perf_counter()
            try:
                return simulate_shape(self, *a, **k)
            finally:
                spent[0] += time.perf_counter() - t
        serving.IterationCosts._simulate = timed
        exp = experiment_from_dict(experiment({requests}, {input_length!r}, {output_length!r}))
        m = run_experiment(exp).metrics()
        keys = ("throughput_tokens_per_s", "ttft_s", "ttft_p99_s", "tbt_s", "tbt_p99_s",
                "energy_pj_per_token", "requests_completed", "iterations", "mean_batch",
                "serving_shapes", "serving_simulations", "serving_span_s")
        print(json.dumps({{"wall_s": time.perf_counter() - t0, "shapes_s": spent[0],
                          **{{k: m[k] for k in keys}}}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1000)
    args = ap.parse_args()
    print(f"{args.requests} requests of Mixtral-8x7B, Poisson 10/s, batch <= 64, on 4 xPUs with Logic-PIM "
          f"(h100_logic_pim, expert parallel, co-processing), numba engine")
    for label, (n_in, n_out) in CASES.items():
        t = time.perf_counter()
        r = fresh(args.requests, n_in, n_out)
        print(f"\n{label}")
        print(f"  wall, fresh process:        {r['wall_s']:.1f} s   (target: < 30 s; measured outside: "
              f"{time.perf_counter() - t:.1f} s)")
        print(f"    simulating shapes:        {r['shapes_s']:.1f} s ({r['serving_shapes']} shapes, "
              f"{r['serving_simulations']} graph simulations)")
        print(f"    the rest (requests, ...): {r['wall_s'] - r['shapes_s']:.1f} s ({r['iterations']} iterations)")
        print(f"  served {r['requests_completed']} requests in {r['serving_span_s']:.1f} simulated s: "
              f"{r['throughput_tokens_per_s']:.0f} tokens/s, mean batch {r['mean_batch']:.1f}")
        print(f"  TTFT median {r['ttft_s'] * 1e3:.1f} ms, p99 {r['ttft_p99_s'] * 1e3:.1f} ms; "
              f"TBT median {r['tbt_s'] * 1e3:.2f} ms, p99 {r['tbt_p99_s'] * 1e3:.2f} ms; "
              f"{r['energy_pj_per_token'] / 1e9:.1f} mJ per token")


if __name__ == "__main__":
    main()
