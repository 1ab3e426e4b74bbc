"""Benchmark: design points per minute of a sweep, by execution backend.

Runs one sweep (ResNet-50, batch 1, int8, on a systolic-array template; array rows x cols x
operand-buffer size; the analytical engine) through ``simulator.dse.sweep.run_sweep`` on

- local worker processes: 1 and 2 (``--workers``),
- a local Dask cluster with 2 workers (``--cluster local``; skipped if dask is not installed),
- and, for reference, inline (in this process, no pool),

and prints for each the design points per minute in steady state (workers started before the
clock starts) and end to end (including starting the workers), the speed-up over one worker, and
whether every backend produced the same rows. Each point is the full path: the modified
experiment dict is validated (``experiment_from_dict``: the architecture, the workload graph
built from scratch), mapped, lowered and simulated, and its row is appended to sweep.jsonl/csv.

By default the points use the analytical engine at ``mapper.fidelity: layer`` with the os
dataflow: with the analytical engine layer fidelity gives the same result as ``tile`` (checked
below on one point) and lowers faster. ``--engine numba --fidelity tile`` measures the event
core on per-tile programs instead (much slower per point); the engine, fidelity and dataflow
used are printed with the figures.

    python experiments/benchmarks/bench_dse.py [--points 240] [--engine analytical|numba|simpy]
                                               [--fidelity layer|tile] [--dataflow os|ws|is|auto]
                                               [--skip-dask]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from simulator.dse.backends import DaskBackend, InlineBackend, ProcessBackend  # noqa: E402
from simulator.dse.study import study_from_dict  # noqa: E402
from simulator.dse.sweep import run_sweep  # noqa: E402

SIZES = [16, 24, 32, 48, 64, 96, 128, 192, 256]
SRAM = ["32 KiB", "64 KiB", "128 KiB", "256 KiB", "512 KiB", "1 MiB", "2 MiB", "4 MiB"]


def experiment(points: int, engine: str = "analytical", fidelity: str = "layer", dataflow: str = "os") -> dict:
    combos = list(itertools.product(SIZES, SIZES, SRAM))[:points]
    return {
        "name": "bench_dse",
        "architecture": {"template": "systolic_array", "name": "bench", "rows": 64, "cols": 64,
                         "freq": "1 GHz", "pe": {"precision": "int8"},
                         "memory": {"ifmap_sram": {"size": "256 KiB"}, "filter_sram": {"size": "256 KiB"},
                                    "ofmap_sram": {"size": "256 KiB"}, "dram": {"bandwidth": "25.6 GB/s"}}},
        "workload": {"model": "resnet50", "batch": 1},
        "mapper": {"dataflow": dataflow, "fidelity": fidelity},
        "engine": engine,
        "sweep": {"zip": {"architecture.rows": [c[0] for c in combos],
                          "architecture.cols": [c[1] for c in combos],
                          "architecture.memory.ifmap_sram.size": [c[2] for c in combos]}},
    }


def rows_without_time(folder: Path) -> list[dict]:
    out = []
    for line in (folder / "sweep.jsonl").read_text().splitlines():
        row = json.loads(line)
        row.pop("wall_s", None)
        out.append(row)
    return out


def _cpu() -> float:
    """CPU seconds of this process and of its finished child processes (the workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(name: str, make, study, workdir: Path) -> dict:
    t0, c0 = time.perf_counter(), _cpu()
    with make() as backend:
        backend.warm_up()
        started = time.perf_counter() - t0
        outcome = run_sweep(study, workdir / name, backend=backend)
        workers = backend.workers
    total = time.perf_counter() - t0
    cpu = _cpu() - c0  # workers are reaped when the backend closes
    n = outcome.ran
    return {"backend": name, "points": n, "ok": outcome.by_status.get("ok", 0),
            "steady_per_min": 60 * n / outcome.elapsed_s, "end_to_end_per_min": 60 * n / total,
            "startup_s": started, "cpu_share": cpu / (max(workers, 1) * total),
            "rows": rows_without_time(workdir / name)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=240, help="design points per backend")
    ap.add_argument("--engine", choices=("analytical", "numba", "simpy"), default="analytical",
                    help="the engine every point runs on (default: analytical)")
    ap.add_argument("--fidelity", choices=("layer", "tile"), default="layer",
                    help="mapper.fidelity of every point (default: layer)")
    ap.add_argument("--dataflow", choices=("os", "ws", "is", "auto"), default="os",
                    help="mapper.dataflow of every point (default: os; auto tries all three per layer)")
    ap.add_argument("--skip-dask", action="store_true", help="do not measure the Dask backend")
    args = ap.parse_args()

    load0 = os.getloadavg()[0]
    setup = f"{args.engine} engine, {args.fidelity} fidelity, dataflow {args.dataflow}"
    print(f"points: ResNet-50 on a systolic array; {setup}")
    data = experiment(args.points, args.engine, args.fidelity, args.dataflow)
    study = study_from_dict(data)
    from simulator.dse.evaluate import evaluate

    if args.engine == "analytical":  # layer and tile fidelity agree on the analytical engine
        other = "tile" if args.fidelity == "layer" else "layer"
        twin = study_from_dict({**data, "mapper": {"dataflow": args.dataflow, "fidelity": other}})
        rows = [evaluate(s.context(), (0, "x", {"architecture.rows": 128})) for s in (study, twin)]
        for row in rows:
            if row["status"] != "ok":
                sys.exit(f"the benchmark's design point does not simulate: {row['error']}")
        a, b = rows[0]["metrics"], rows[1]["metrics"]
        print(f"analytical engine, {args.fidelity} vs {other} fidelity on one point: cycles {a['cycles']} vs "
              f"{b['cycles']}, energy {'equal' if a['energy_pj'] == b['energy_pj'] else 'DIFFERENT'}")

    # CPU time per point in this process: what a core running nothing else would do
    points, _ = study.points()
    ctx = study.context()
    sample = points[:60] if args.engine == "analytical" else points[:6]
    evaluate(ctx, (sample[0].index, sample[0].id, sample[0].values))  # compile / warm caches first
    cpu0 = time.process_time()
    for p in sample:
        evaluate(ctx, (p.index, p.id, p.values))
    cpu_per_point = (time.process_time() - cpu0) / len(sample)
    print(f"CPU time per point: {cpu_per_point * 1e3:.1f} ms, i.e. {60 / cpu_per_point:.0f} points/min "
          "per core that runs nothing else")

    runs = [("inline", InlineBackend), ("processes x1", lambda: ProcessBackend(1)),
            ("processes x2", lambda: ProcessBackend(2))]
    if not args.skip_dask:
        try:
            import distributed  # noqa: F401

            runs.append(("dask local x2", lambda: DaskBackend("local", 2)))
        except ImportError:
            print("dask not installed (pip install 'tessera[cluster]'): skipping the Dask backend")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in runs:
            results.append(measure(name.replace(" ", "_"), make, study, Path(tmp)))
            results[-1]["backend"] = name
    one = next(r for r in results if r["backend"] == "processes x1")["steady_per_min"]
    print(f"\nResNet-50 sweep, {args.points} design points per backend ({setup})")
    print(f"{'backend':16s} {'points/min':>11s} {'end-to-end':>11s} {'start-up':>9s} {'vs 1 worker':>12s} "
          f"{'CPU share':>10s}  ok")
    for r in results:
        print(f"{r['backend']:16s} {r['steady_per_min']:11.0f} {r['end_to_end_per_min']:11.0f} "
              f"{r['startup_s']:8.2f}s {r['steady_per_min'] / one:11.2f}x {r['cpu_share'] * 100:9.0f}%  "
              f"{r['ok']}/{r['points']}")
    print("CPU share: CPU time of this process and its workers over (workers x wall time), end to end; "
          "well below 100 % means other programs had the cores")
    same = all(r["rows"] == results[0]["rows"] for r in results)
    print(f"\nevery backend wrote the same rows: {same}")
    print(f"load average (1 min) before / after: {load0:.2f} / {os.getloadavg()[0]:.2f} on "
          f"{os.cpu_count()} cores (other processes on the machine slow every backend)")


if __name__ == "__main__":
    main()
