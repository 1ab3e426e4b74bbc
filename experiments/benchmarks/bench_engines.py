"""Benchmark: the event engines (numba core, simpy reference).

Prints a table with
- the numba core's event rate on a large synthetic program (many layers of double-buffered
  load/compute/store tiles sharing one DRAM channel, some layers on a second unit): the kernel
  alone, and ``simulate()`` including flattening the program (validation timed separately);
- the simpy reference on the same program (by default on its first layers only, extrapolated
  from its per-event rate; ``--simpy-full`` runs all of it), and the ratio;
- the compile cache: a fresh process run twice against an empty numba cache directory (the
  first compiles and writes the cache, the second loads it);
- ResNet-50 on a 128x128 array at tile fidelity from an experiment YAML, after the first
  compile, in this process and in a fresh process.

    python experiments/benchmarks/bench_engines.py [--layers 6000] [--tiles 64] [--repeat 3] [--simpy-full]

Targets (issue "The event-driven core"): >= 5 M events/s, >= 50x simpy, ResNet-50 < 2 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from simulator.program import LayerInfo, LoweredProgram, ProgramBuilder, Resource  # noqa: E402

EXPERIMENT = """\
name: bench_resnet50_128x128_tile
architecture:
  preset: scalesim_32x32
  overrides: {rows: 128, cols: 128}
workload:
  model: resnet50
mapper:
  fidelity: tile
engine: numba
"""


def synthetic(layers: int, tiles: int, seed: int = 0, chains: int = 1) -> LoweredProgram:
    """``chains`` independent chains of layers (layer i waits for layer i - chains); per layer
    ``tiles`` double-buffered tiles, as ``mappers.lower`` writes them."""
    rng = np.random.default_rng(seed)
    b = ProgramBuilder(1e9, [Resource("array", "unit", peak_macs_per_cycle=1024), Resource("vector", "unit"),
                             Resource("dram", "channel", bytes_per_cycle=32.0, latency_cycles=100)])
    producers: list[int | None] = [None] * chains
    for i in range(layers):
        producer = producers[i % chains]
        unit = "vector" if i % 5 == 4 else "array"
        b.layers.append(LayerInfo(index=i, name=f"layer{i}", kind="conv", unit=unit, dataflow="os", block=None,
                                  macs=0, vector_ops=0, compute_cycles=0, folds=tiles, mapping_efficiency=None,
                                  compute_utilization=None, peak_macs_per_cycle=0, gemm=None))
        cycles = rng.integers(40, 400, tiles)
        reads = rng.integers(0, 12000, tiles)
        writes = rng.integers(0, 6000, tiles)
        loads: list[int] = []
        comps: list[int] = []
        stores: list[int] = []
        for t in range(tiles):
            ld = b.transfer("dram", int(reads[t]), layer=i, label=f"layer{i} load {t}",
                            deps=[producer if t == 0 else None, loads[-1] if loads else None,
                                  comps[t - 2] if t >= 2 else None])
            c = b.compute(unit, int(cycles[t]), layer=i, label=f"layer{i} compute {t}",
                          deps=[ld, comps[-1] if comps else None, stores[t - 2] if t >= 2 else None])
            s = b.transfer("dram", int(writes[t]), layer=i, label=f"layer{i} store {t}",
                           deps=[c, stores[-1] if stores else None])
            loads.append(ld)
            comps.append(c)
            stores.append(s)
        producers[i % chains] = stores[-1]
    return b.build(meta={"graph": "synthetic"})


def best(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def fresh_process(code: str, env: dict | None = None) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, **(env or {})})
    if proc.returncode:
        raise RuntimeError(f"the fresh process failed:\n{proc.stderr}")
    return proc.stdout.strip()


COLD_START = """
    import time
    t0 = time.perf_counter()
    from simulator.core import simulate
    from simulator.program import ProgramBuilder, Resource
    b = ProgramBuilder(1e9, [Resource("u", "unit"), Resource("c", "channel", bytes_per_cycle=4.0)])
    b.compute("u", 5, deps=[b.transfer("c", 40)])
    t1 = time.perf_counter()
    simulate(b.build())
    t2 = time.perf_counter()
    print(f"{t1 - t0} {t2 - t1}")
"""

RESNET50_FRESH = """
    import sys, time
    t0 = time.perf_counter()
    from simulator.run import run_experiment
    result = run_experiment(sys.argv[1] if len(sys.argv) > 1 else {path!r})
    print(time.perf_counter() - t0, result.cycles)
"""


def rows_table(rows: list[tuple[str, str, str]]) -> str:
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"{'measure':<{w0}}  {'value':>{w1}}  note", f"{'-' * w0}  {'-' * w1}  ----"]
    lines += [f"{a:<{w0}}  {b:>{w1}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=6000, help="layers of the synthetic program")
    ap.add_argument("--tiles", type=int, default=64, help="tiles per layer")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    ap.add_argument("--chains", type=int, default=32, help="independent chains in the contended variant")
    ap.add_argument("--simpy-layers", type=int, default=300, help="layers the simpy engine runs")
    ap.add_argument("--simpy-full", action="store_true", help="run simpy on the whole program")
    args = ap.parse_args(argv)

    from simulator.core import simulate
    from simulator.core.flat import flatten
    from simulator.core.kernel import run_events
    from simulator.engines import get_engine
    from simulator.reference import simulate as reference

    rows: list[tuple[str, str, str]] = []
    simulate(synthetic(2, 4))  # compile or load the cached kernels

    t0 = time.perf_counter()
    program = synthetic(args.layers, args.tiles)
    build_s = time.perf_counter() - t0
    t_validate, _ = best(program.validate, 1)
    t_flatten, f = best(lambda: flatten(program), args.repeat)

    def kernel():
        return run_events(f.kind, f.res, f.occ, f.lat, f.prio, f.ndeps, f.user_ptr, f.user_idx, f.lanes,
                          f.res_ptr, f.lane_ptr, False)

    t_kernel, out = best(kernel, args.repeat)
    events = int(out[7])
    t_sim, run = best(lambda: simulate(program, validate=False), args.repeat)
    t_engine, result = best(lambda: get_engine("numba").run(program), 1)
    contended = synthetic(args.layers, args.tiles, chains=args.chains)
    fc = flatten(contended)
    t_cont, out_c = best(lambda: run_events(fc.kind, fc.res, fc.occ, fc.lat, fc.prio, fc.ndeps, fc.user_ptr,
                                            fc.user_idx, fc.lanes, fc.res_ptr, fc.lane_ptr, False), args.repeat)
    rows += [
        ("synthetic program", f"{program.n_tasks:,} tasks",
         f"{args.layers} layers x {args.tiles} tiles x (load, compute, store); built in {build_s:.1f} s"),
        ("events processed", f"{events:,}", f"END/FREE/DISPATCH; {result.cycles:,} simulated cycles"),
        ("numba kernel", f"{events / t_kernel / 1e6:.2f} M events/s", f"{t_kernel:.3f} s, best of {args.repeat}"),
        (f"numba kernel, {args.chains} chains", f"{int(out_c[7]) / t_cont / 1e6:.2f} M events/s",
         f"{int(out_c[7]):,} events; {args.chains} independent chains contend for the channel and units"),
        ("numba simulate()", f"{events / t_sim / 1e6:.2f} M events/s",
         f"{t_sim:.3f} s: flatten ({t_flatten:.3f} s) + kernel, without validate()"),
        ("program.validate()", f"{t_validate:.2f} s", "numpy checks; the cycle search runs only if a task depends on a later one"),
        ("numba engine.run()", f"{t_engine:.2f} s", "validate + simulate + stalls + timeline + SimResult"),
    ]

    if args.simpy_full:
        sub, label = program, "the whole program"
    else:
        sub = synthetic(min(args.simpy_layers, args.layers), args.tiles)
        label = f"first {min(args.simpy_layers, args.layers)} layers, rate extrapolated"
    t_ref, ref = best(lambda: reference(sub, validate=False), 1)
    ref_events = len(ref.events)
    fast_sub = simulate(sub, validate=False, record_events=True)
    assert fast_sub.start.tolist() == ref.start and fast_sub.n_events == ref_events  # same work
    ref_rate = ref_events / t_ref
    rows += [
        ("simpy reference", f"{ref_rate / 1e6:.3f} M events/s", f"{ref_events:,} events in {t_ref:.2f} s ({label})"),
        ("simpy, whole program", f"{events / ref_rate:.1f} s", "measured" if args.simpy_full else "extrapolated"),
        ("speed-up, kernel", f"{events / t_kernel / ref_rate:.0f}x", "numba kernel vs simpy simulate()"),
        ("speed-up, simulate()", f"{events / t_sim / ref_rate:.0f}x", "both including their setup"),
    ]

    with tempfile.TemporaryDirectory() as cache:
        env = {"NUMBA_CACHE_DIR": cache}
        first = [float(x) for x in fresh_process(COLD_START, env).split()]
        second = [float(x) for x in fresh_process(COLD_START, env).split()]
    rows += [
        ("fresh process, empty cache", f"{first[1]:.2f} s", f"first simulate(): imports numba, compiles, "
                                                         f"writes the cache (other imports {first[0]:.2f} s)"),
        ("fresh process, cache warm", f"{second[1]:.2f} s", f"first simulate(): imports numba, loads the "
                                                        f"cache (other imports {second[0]:.2f} s)"),
    ]

    from simulator.experiment import load_experiment
    from simulator.run import lower_workload, run_experiment

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet50_128x128_tile.yaml"
        path.write_text(EXPERIMENT)
        run_experiment(path)  # first compile / cache load, model and preset caches
        t_r50, r50 = best(lambda: run_experiment(path), args.repeat)
        t_load, exp = best(lambda: load_experiment(path), args.repeat)
        t_lower, prog = best(lambda: lower_workload(exp.workload, exp.architecture, exp.mapper), args.repeat)
        t_run, _ = best(lambda: get_engine("numba").run(prog), args.repeat)
        fresh = fresh_process(RESNET50_FRESH.format(path=str(path))).split()
    rows += [
        ("ResNet-50 128x128 tile", f"{t_r50:.3f} s", f"YAML -> SimResult in this process, best of {args.repeat}; "
                                                     f"{prog.n_tasks:,} tasks, {r50.cycles:,} cycles"),
        ("  load experiment", f"{t_load:.3f} s", ""),
        ("  map + lower", f"{t_lower:.3f} s", ""),
        ("  numba engine.run()", f"{t_run:.3f} s", ""),
        ("ResNet-50, fresh process", f"{float(fresh[0]):.2f} s", "python imports + cached kernels + the above"),
    ]
    print(rows_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
