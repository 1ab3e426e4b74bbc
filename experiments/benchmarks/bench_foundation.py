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


def write_topology(path: Path, n_layers: int) -> None:
    """The first ``n_layers`` convolutions of ResNet-50 as a SCALE-Sim topology (padded ifmaps)."""
    with path.open("w") as f:
        f.write("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n")
        for name, op in scalesim_topology(n_layers):
            h = op.in_hw[0] + 2 * op.padding[0]
            w = op.in_hw[1] + 2 * op.padding[1]
            f.write(f"{name}, {h}, {w}, {op.kernel[0]}, {op.kernel[1]}, {op.in_channels}, "
                    f"{op.out_channels}, {op.stride[0]},\n")


def write_cfg(path: Path, dataflow: str) -> None:
    path.write_text(f"""[general]
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


def compare_with_scalesim(python: str, n_layers: int, dataflow: str) -> tuple[float, float, list, list]:
    """Run SCALE-Sim and ``tessera scalesim`` on the same files; wall times and compute cycles."""
    from simulator.cli import main as tessera

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        topo, cfg = tmp / "topo.csv", tmp / "scale.cfg"
        write_topology(topo, n_layers)
        write_cfg(cfg, dataflow)
        t0 = time.perf_counter()
        subprocess.run([python, "-m", "scalesim.scale", "-c", str(cfg), "-t", str(topo), "-l", str(topo),
                        "-p", str(tmp / "ss"), "-s", "N"], check=True, capture_output=True, cwd=tmp)
        s_wall = time.perf_counter() - t0
        t0 = time.perf_counter()
        assert tessera(["scalesim", "-c", str(cfg), "-t", str(topo), "--out", str(tmp / "ts"), "--quiet",
                        "--scalesim-shapes"]) == 0
        t_wall = time.perf_counter() - t0

        def cycles(folder: Path, column: int) -> list[int]:
            with (folder / "COMPUTE_REPORT.csv").open() as f:
                return [int(float(r[column])) for r in list(csv.reader(f))[1:]]

        return s_wall, t_wall, cycles(tmp / "ss" / "bench", 2), cycles(tmp / "ts", 2)


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
        print(f"\nSCALE-Sim 3.0 vs tessera scalesim --scalesim-shapes on the same .cfg and topology "
              f"(first {n} convs of ResNet-50, padding folded into the ifmap as SCALE-Sim expects), same run:")
        for df in ("os", "ws", "is"):
            s_wall, t_wall, s_cyc, t_cyc = compare_with_scalesim(args.scalesim, n, df)
            same = sum(t == s + 1 for t, s in zip(t_cyc, s_cyc))
            print(f"  {df}: SCALE-Sim {s_wall:6.2f} s, Tessera {t_wall:.3f} s ({s_wall / t_wall:,.0f}x); "
                  f"layers whose compute cycles equal SCALE-Sim's Total Cycles + 1 (--scalesim-shapes): "
                  f"{same}/{len(s_cyc)}")


if __name__ == "__main__":
    main()
