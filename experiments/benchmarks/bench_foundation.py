"""Benchmark: whole-network simulation time of the foundation path (YAML -> result).

Prints, for ResNet-50 on a 128x128 systolic array and each dataflow (os, ws, is), the wall time
of the whole path (build the graph, map, lower, simulate with the analytical engine) at layer
and tile fidelity, best of several repeats after one warm-up.

With ``--scalesim PYTHON`` (a Python that has SCALE-Sim installed, e.g. scalesim==3.0.0 with
numpy<2), it also runs SCALE-Sim and Tessera on the same first ``--scalesim-layers`` conv layers
of ResNet-50 in this run and prints the speed ratio and whether the compute cycles agree.

    python experiments/benchmarks/bench_foundation.py [--repeat 5] [--scalesim /path/to/python]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from architectures.presets import load_preset  # noqa: E402
from mappers.pipeline import MapperOptions  # noqa: E402
from simulator.run import simulate  # noqa: E402
from workloads.ops import Conv2D  # noqa: E402
from workloads.registry import build_model  # noqa: E402

ARRAY = {"rows": 128, "cols": 128}


def time_path(dataflow: str, fidelity: str, repeat: int) -> tuple[float, int]:
    arch = load_preset("scalesim_32x32", ARRAY)
    times = []
    cycles = 0
    for _ in range(repeat + 1):
        t0 = time.perf_counter()
        graph = build_model("resnet50")
        r = simulate(graph, arch, mapper=MapperOptions(dataflow=dataflow, fidelity=fidelity),
                     engine="analytical")
        times.append(time.perf_counter() - t0)
        cycles = r.cycles
    return min(times[1:]), cycles


def scalesim_topology(n_layers: int) -> list[tuple[str, Conv2D]]:
    """The first ``n_layers`` convolutions of ResNet-50 (padding folded into the ifmap size)."""
    convs = [op for op in build_model("resnet50").ops() if isinstance(op, Conv2D)][:n_layers]
    return [(op.name.replace(".", "_"), op) for op in convs]


def run_scalesim(python: str, n_layers: int, dataflow: str) -> tuple[float, list[int]]:
    layers = scalesim_topology(n_layers)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        topo = tmp / "topo.csv"
        with topo.open("w") as f:
            f.write("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n")
            for name, op in layers:
                h = op.in_hw[0] + 2 * op.padding[0]
                w = op.in_hw[1] + 2 * op.padding[1]
                f.write(f"{name}, {h}, {w}, {op.kernel[0]}, {op.kernel[1]}, {op.in_channels}, "
                        f"{op.out_channels}, {op.stride[0]},\n")
        cfg = tmp / "scale.cfg"
        cfg.write_text(f"""[general]
run_name = bench
[architecture_presets]
ArrayHeight: {ARRAY['rows']}
ArrayWidth: {ARRAY['cols']}
IfmapSramSzkB: 64
FilterSramSzkB: 64
OfmapSramSzkB: 64
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth : 10
Dataflow : {dataflow}
ReadRequestBuffer: 512
WriteRequestBuffer: 512
[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2
[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40
[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
""")
        t0 = time.perf_counter()
        subprocess.run([python, "-m", "scalesim.scale", "-c", str(cfg), "-t", str(topo), "-l", str(topo),
                        "-p", str(tmp / "out"), "-s", "N"], check=True, capture_output=True, cwd=tmp)
        wall = time.perf_counter() - t0
        with (tmp / "out" / "bench" / "COMPUTE_REPORT.csv").open() as f:
            rows = list(csv.reader(f))[1:]
        return wall, [int(float(r[2])) for r in rows]


def tessera_layers(n_layers: int, dataflow: str) -> tuple[float, list[int]]:
    arch = load_preset("scalesim_32x32", ARRAY)
    t0 = time.perf_counter()
    r = simulate(build_model("resnet50"), arch, mapper=MapperOptions(dataflow=dataflow), engine="analytical")
    wall = time.perf_counter() - t0
    names = [op.name for _, op in scalesim_topology(n_layers)]
    return wall, [r.layer(n).compute_cycles for n in names]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--scalesim", metavar="PYTHON", help="a Python with SCALE-Sim installed")
    ap.add_argument("--scalesim-layers", type=int, default=4)
    args = ap.parse_args()

    print(f"ResNet-50 (batch 1, 224x224, {len(build_model('resnet50'))} ops) on a "
          f"{ARRAY['rows']}x{ARRAY['cols']} systolic array, analytical engine, best of {args.repeat}")
    print(f"{'dataflow':>8} {'fidelity':>8} {'wall s':>8} {'cycles':>14}")
    walls = []
    for df in ("os", "ws", "is"):
        for fid in ("layer", "tile"):
            wall, cycles = time_path(df, fid, args.repeat)
            walls.append(wall)
            print(f"{df:>8} {fid:>8} {wall:8.3f} {cycles:14,}")
    print(f"median whole-network time: {statistics.median(walls):.3f} s (target: well under 1 s)")

    if args.scalesim:
        n = args.scalesim_layers
        print(f"\nSCALE-Sim vs Tessera on the first {n} conv layers of ResNet-50 (same run):")
        for df in ("os", "ws", "is"):
            s_wall, s_cycles = run_scalesim(args.scalesim, n, df)
            t_wall, t_cycles = tessera_layers(n, df)
            agree = all(t == s + 1 for t, s in zip(t_cycles, s_cycles))
            print(f"  {df}: SCALE-Sim {s_wall:7.2f} s, Tessera (whole network) {t_wall:.3f} s, "
                  f"ratio {s_wall / t_wall:,.0f}x; compute cycles equal SCALE-Sim's + 1 on every "
                  f"layer: {agree}")


if __name__ == "__main__":
    main()
