"""Benchmark: wall time of a continuous-batching serving run (the serving issue's speed target).

1,000 requests of Mixtral-8x7B served by a Duplex system: 4 H100-class xPUs with Logic-PIM
(preset ``h100_logic_pim``, expert parallel, expert co-processing), Poisson arrivals at 10
requests/s, prompts uniform in 512-4096 tokens, outputs uniform in 128-1024 tokens, batch up to
64, numba engine, the default cost model (iteration shapes interpolated, 1- and 2-layer models
extrapolated; simulator/serving/costs.py). Variable lengths are the hard case for the cost cache
(every iteration's shape differs); a second case serves fixed (4096, 512) requests, the paper's
latency study.

Each case runs in a fresh process (imports and loading the cached numba kernels included), with
the default number of shape workers (``simulator/serving/workers.py``: the iteration shapes an
iteration needs are simulated on helper processes, one per core) and, as the baseline measured
in the same run, with one (``TESSERA_SERVING_WORKERS=1``: every shape simulated in turn in the
main process). Printed per run: the wall time, the time spent waiting for shape simulations, the
shapes and graph simulations, the time per shape, the iterations, the 1-minute load average
before and after (the machine is shared: timings are noisy), the speed-up over the baseline and
whether every metric of the two runs is identical (it must be), and the serving metrics.
Target: under 30 s on this machine (2 cores).

    python experiments/benchmarks/bench_serving.py [--requests 1000] [--workers N] [--no-baseline]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
WORKERS_ENV = "TESSERA_SERVING_WORKERS"  # simulator.serving.workers.WORKERS_ENV (not imported: the
# benchmark's own process stays light)

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


def fresh(requests: int, input_length, output_length, workers: int | None) -> dict:
    """Run one case in a new process (``workers``: shape workers, None for the default); returns
    its timings, load averages and metrics."""
    code = textwrap.dedent(f"""
        import json, os, sys, time
        t0 = time.perf_counter()
        sys.path.insert(0, {str(REPO)!r})
        sys.argv = ["x"]
        from experiments.benchmarks.bench_serving import experiment
        from simulator import serving
        from simulator.experiment import experiment_from_dict
        from simulator.run import run_experiment
        spent, seen = [0.0], []
        prepare = serving.IterationCosts.prepare
        def timed(self, *a, **k):
            if not seen:
                seen.append(self)
            t = time.perf_counter()
            try:
                return prepare(self, *a, **k)
            finally:
                spent[0] += time.perf_counter() - t
        serving.IterationCosts.prepare = timed
        exp = experiment_from_dict(experiment({requests}, {input_length!r}, {output_length!r}))
        m = run_experiment(exp).metrics()
        wall = time.perf_counter() - t0
        seen[0].close()  # the helpers end and are reaped: their CPU time counts below
        import resource
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        print(json.dumps({{"wall_s": wall, "shapes_s": spent[0], "cpu_s": me.ru_utime + me.ru_stime,
                          "helpers_cpu_s": kids.ru_utime + kids.ru_stime,
                          "workers": seen[0].workers, "helper_jobs": seen[0].pool.remote_jobs,
                          "metrics": {{k: v for k, v in m.items() if isinstance(v, (int, float))}}}}))
    """)
    env = dict(os.environ)
    env.pop(WORKERS_ENV, None)
    if workers is not None:
        env[WORKERS_ENV] = str(workers)
    load = os.getloadavg()[0]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env)
    if out.returncode != 0:
        sys.exit(f"the benchmark's run failed (exit {out.returncode}):\n{out.stderr}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["load"] = (load, os.getloadavg()[0])
    return r


def _line(tag: str, r: dict) -> str:
    m = r["metrics"]
    per = r["shapes_s"] / max(1, m["serving_shapes"])
    return (f"  {tag:<16} wall {r['wall_s']:5.1f} s (CPU {r['cpu_s']:.1f} s here + {r['helpers_cpu_s']:.1f} s "
            f"in helpers); waiting for shapes {r['shapes_s']:5.1f} s ({m['serving_shapes']} shapes, "
            f"{m['serving_simulations']} graph simulations, {per * 1e3:.0f} ms per shape, {r['helper_jobs']} on "
            f"helpers); the rest {r['wall_s'] - r['shapes_s']:.1f} s ({m['iterations']} iterations); 1-min load "
            f"{r['load'][0]:.2f} -> {r['load'][1]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=None, help="shape workers (default: one per core, "
                    "simulator/serving/workers.py)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the 1-worker baseline runs")
    args = ap.parse_args()
    print(f"{args.requests} requests of Mixtral-8x7B, Poisson 10/s, batch <= 64, on 4 xPUs with Logic-PIM "
          f"(h100_logic_pim, expert parallel, co-processing), numba engine; {os.cpu_count()} cores")
    for label, (n_in, n_out) in CASES.items():
        r = fresh(args.requests, n_in, n_out, args.workers)
        m = r["metrics"]
        print(f"\n{label}")
        print(_line(f"{r['workers']} workers{'' if args.workers else ' (default)'}:", r))
        if not args.no_baseline:
            b = fresh(args.requests, n_in, n_out, 1)
            print(_line("1 (baseline):", b))
            same = r["metrics"] == b["metrics"]
            print(f"  speed-up {b['wall_s'] / r['wall_s']:.2f}x wall, {b['shapes_s'] / max(r['shapes_s'], 1e-9):.2f}x "
                  f"on shapes; every metric identical to the baseline: {'yes' if same else 'NO'}")
        print(f"  target: < 30 s -> {'met' if r['wall_s'] < 30 else 'NOT met'}")
        print(f"  served {m['requests_completed']} requests in {m['serving_span_s']:.1f} simulated s: "
              f"{m['throughput_tokens_per_s']:.0f} tokens/s, mean batch {m['mean_batch']:.1f}")
        print(f"  TTFT median {m['ttft_s'] * 1e3:.1f} ms, p99 {m['ttft_p99_s'] * 1e3:.1f} ms; "
              f"TBT median {m['tbt_s'] * 1e3:.2f} ms, p99 {m['tbt_p99_s'] * 1e3:.2f} ms; "
              f"{m['energy_pj_per_token'] / 1e9:.1f} mJ per token")


if __name__ == "__main__":
    main()
