"""``tessera scalesim``: SCALE-Sim's own inputs, unchanged, through Tessera's one path.

    tessera scalesim -c CONFIG.cfg -t TOPOLOGY.csv [-i conv|gemm] [--out DIR | -p LOGDIR]
                     [-l LAYOUT.csv] [-s Y|N] [--engine E] [--freq F]

Contract: reads the config (``architectures.scalesim_cfg``) and the topology
(``workloads.scalesim``), checks every input before anything runs (one error listing every
problem, exit status 2, no output written), runs every layer through ``simulator.run.simulate``
on its own, as SCALE-Sim does (``simulate_layer_by_layer``; any engine, analytical by default),
and writes Tessera's result files (``results.json``, ``layers.csv``, ``resolved_config.yaml``,
which loads back as an experiment) plus SCALE-Sim's ``COMPUTE_REPORT.csv``,
``BANDWIDTH_REPORT.csv`` and ``DETAILED_ACCESS_REPORT.csv`` with SCALE-Sim's headers, column
order and value style, one row per SCALE-Sim ``LayerID``. With ``-p LOGDIR`` the files go to
``LOGDIR/<run_name>/`` as SCALE-Sim writes them; with ``--out DIR`` into ``DIR``; by default into
``results/<run_name>/`` (SCALE-Sim's default ``-p`` is ``./results/``).

The report columns hold Tessera's numbers (simulator/SCALESIM.md says where they differ from
SCALE-Sim's and why). Counts are in words (bytes / element bytes; SCALE-Sim's word is 1 byte).
Cycle columns are counted from the layer's own start (cycle 0), as SCALE-Sim counts every layer
from 0:

- ``Total Cycles``: the layer's span in Tessera (compute plus stalls), not SCALE-Sim's
  compute - 1. ``Total Cycles (incl. prefetch)``: the same span; Tessera's span already runs from
  the layer's first DRAM load to its last store, which SCALE-Sim adds on top as prefetch/drain.
- ``Stall Cycles``: span - compute cycles. ``Overall Util %``: MACs / (span x PEs).
- ``SRAM * Start/Stop Cycle`` and ``DRAM * Start/Stop Cycle``: 0 and span - 1, the window in
  which the layer moves that operand (the analytical engine does not place accesses inside
  the span), so that SCALE-Sim's ``accesses / (stop - start + 1)`` gives the BW columns.
- ``SRAM OFMAP Writes``: output and partial-sum writes (no extra R + C per os fold).
  ``DRAM OFMAP Writes``: writes to DRAM (partial-sum read-backs are not in any column).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from workloads.errors import ConfigError, Problem

if TYPE_CHECKING:
    from architectures.systolic import SystolicArray
    from mappers.pipeline import MapperOptions
    from simulator.result import SimResult
    from workloads.graph import OpGraph

__all__ = ["add_arguments", "main", "scalesim_reports", "simulate_layer_by_layer", "REPORT_HEADERS"]

REPORT_HEADERS: dict[str, str] = {
    "COMPUTE_REPORT.csv": ("LayerID, Total Cycles (incl. prefetch), Total Cycles, Stall Cycles, "
                           "Overall Util %, Mapping Efficiency %, Compute Util %,"),
    "BANDWIDTH_REPORT.csv": ("LayerID, Avg IFMAP SRAM BW, Avg FILTER SRAM BW, Avg OFMAP SRAM BW, "
                             "Avg IFMAP DRAM BW, Avg FILTER DRAM BW, Avg OFMAP DRAM BW,"),
    "DETAILED_ACCESS_REPORT.csv": (
        "LayerID, "
        "SRAM IFMAP Start Cycle, SRAM IFMAP Stop Cycle, SRAM IFMAP Reads, "
        "SRAM Filter Start Cycle, SRAM Filter Stop Cycle, SRAM Filter Reads, "
        "SRAM OFMAP Start Cycle, SRAM OFMAP Stop Cycle, SRAM OFMAP Writes, "
        "DRAM IFMAP Start Cycle, DRAM IFMAP Stop Cycle, DRAM IFMAP Reads, "
        "DRAM Filter Start Cycle, DRAM Filter Stop Cycle, DRAM Filter Reads, "
        "DRAM OFMAP Start Cycle, DRAM OFMAP Stop Cycle, DRAM OFMAP Writes,"),
}

CMDLINE = "command line"


def simulate_layer_by_layer(graph: OpGraph, arch: SystolicArray, *, mapper: MapperOptions | None = None,
                            engine: str = "analytical", name: str = "") -> SimResult:
    """Simulate each operator of ``graph`` on its own, as SCALE-Sim runs its layers, and return
    one ``SimResult`` with the layers back to back (layer i starts where layer i - 1 ended).

    SCALE-Sim starts every layer from empty buffers at cycle 0. A topology graph has no edges,
    so in one program the event engines would start every layer's loads at cycle 0 and overlap
    all layers; one program per layer keeps each layer's span (its prefetch, compute and drain)
    comparable with SCALE-Sim's. The analytical engine runs layers in sequence either way, so
    for it this equals ``simulate(graph, ...)``.
    """
    from dataclasses import replace

    from simulator.result import ResourceStats
    from simulator.run import simulate
    from workloads.graph import OpGraph

    if len(graph) == 0:
        raise ValueError(f"graph '{graph.name}' has no operators to simulate")
    runs = []
    for op in graph.ops():
        sub = OpGraph(op.name, graph.precision, meta=graph.meta)
        for t in op.inputs:
            sub.input(t.name, t.shape, t.precision)
        sub.add(op)
        runs.append(simulate(sub, arch, mapper=mapper, engine=engine, name=name))
    layers, offset = [], 0
    busy: dict[tuple[str, str], list[int]] = {}
    for r in runs:
        for layer in r.layers:
            layers.append(replace(layer, index=len(layers), start_cycle=layer.start_cycle + offset,
                                  end_cycle=layer.end_cycle + offset))
        for s in r.resources:
            acc = busy.setdefault((s.name, s.kind), [0, 0, 0, 0])
            for k, v in enumerate((s.busy_cycles, s.idle_cycles, s.tasks, s.bytes)):
                acc[k] += v
        offset += r.cycles
    resources = tuple(ResourceStats(n, k, *v) for (n, k), v in busy.items())
    return replace(runs[0], workload=graph.name, cycles=offset, layers=tuple(layers),
                   resources=resources, timeline=None)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", dest="config", required=True, metavar="CONFIG.cfg",
                        help="SCALE-Sim configuration file")
    parser.add_argument("-t", dest="topology", required=True, metavar="TOPOLOGY.csv",
                        help="SCALE-Sim topology file")
    parser.add_argument("-i", dest="input_type", choices=("conv", "gemm"), default="conv",
                        help="topology format: conv (default) or gemm (Layer, M, N, K)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", metavar="DIR", help="write every file into DIR")
    where.add_argument("-p", dest="logdir", metavar="LOGDIR",
                       help="write into LOGDIR/<run_name>/, as SCALE-Sim does (default: results/)")
    parser.add_argument("-l", dest="layout", metavar="LAYOUT.csv",
                        help="SCALE-Sim layout file: checked to exist, not used (Tessera models no "
                             "SRAM banks)")
    parser.add_argument("-s", dest="save_trace", type=str.upper, choices=("Y", "N"),
                        help="SCALE-Sim's save-trace flag: accepted; Tessera writes no address traces")
    parser.add_argument("--engine", choices=("numba", "simpy", "analytical"), default="analytical",
                        help="Tessera engine (default: analytical)")
    parser.add_argument("--freq", default="1 GHz",
                        help="clock frequency, for seconds and USER bandwidth (default: 1 GHz)")
    parser.add_argument("--scalesim-shapes", action="store_true",
                        help="use SCALE-Sim's output-size rounding, ceil((H - R + stride) / stride), "
                        "so every layer's cycles equal SCALE-Sim's (default: the convolution a "
                        "framework runs, floor((H - R) / stride) + 1)")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    parser.add_argument("--max-rows", type=int, default=None, help="layers shown in the table")


def _fmt(value: float | int) -> str:
    """SCALE-Sim's value style: Python's ``str`` of ints and floats."""
    return str(value)


def _row(lid: int, items: list) -> str:
    return f"{lid}, " + ", ".join(_fmt(x) for x in items) + ",\n"


def scalesim_reports(result: SimResult, graph: OpGraph) -> dict[str, str]:
    """The three SCALE-Sim report files (name -> text) for ``result`` of ``graph``."""
    texts = {name: header + "\n" for name, header in REPORT_HEADERS.items()}
    for lid, layer in enumerate(result.layers):
        op = graph.op(layer.name)
        eb_i = op.inputs[0].element_bytes
        eb_f = op.weights[0].element_bytes if op.weights else eb_i
        eb_o = op.output.element_bytes
        c = layer.counters

        def words(key: str, eb: float) -> int:
            return int(round(c.get(key, 0) / eb))

        total = layer.total_cycles
        span = max(total, 1)
        sram_i, sram_f = words("ifmap_sram_read_bytes", eb_i), words("filter_sram_read_bytes", eb_f)
        sram_o = words("ofmap_sram_write_bytes", eb_o)
        dram_i, dram_f = words("ifmap_dram_read_bytes", eb_i), words("filter_dram_read_bytes", eb_f)
        dram_o = words("ofmap_dram_write_bytes", eb_o)
        start, stop = 0.0, float(total - 1)
        texts["COMPUTE_REPORT.csv"] += _row(lid, [
            total, total, layer.stall_cycles, layer.utilization * 100,
            (layer.mapping_efficiency or 0.0) * 100, (layer.compute_utilization or 0.0) * 100])
        texts["BANDWIDTH_REPORT.csv"] += _row(lid, [
            sram_i / span, sram_f / span, sram_o / span, dram_i / span, dram_f / span, dram_o / span])
        texts["DETAILED_ACCESS_REPORT.csv"] += _row(lid, [
            start, stop, sram_i, start, stop, sram_f, start, stop, sram_o,
            start, stop, dram_i, start, stop, dram_f, start, stop, dram_o])
    return texts


def _output_dir(args: argparse.Namespace, run_name: str | None) -> tuple[Path | None, list[Problem]]:
    if args.out:
        out, flag = Path(args.out), "--out"
    else:
        base = Path(args.logdir) if args.logdir else Path("results")
        flag = "-p"
        if base.exists() and not base.is_dir():
            return None, [Problem(CMDLINE, flag, f"'{base}' exists and is not a folder")]
        if run_name is None:
            return None, []
        out = base / run_name
    if out.exists() and not out.is_dir():
        return None, [Problem(CMDLINE, flag, f"'{out}' exists and is not a folder")]
    return out, []


def main(args: argparse.Namespace) -> int:
    from architectures.scalesim_cfg import load_scalesim_cfg
    from mappers.pipeline import MapperOptions
    from simulator.engines import get_engine
    from simulator.experiment import Experiment, OutputOptions
    from simulator.report import atomic_write, render_table, write_results
    from workloads.graph import PrecisionPolicy
    from workloads.scalesim import load_topology

    problems: list[Problem] = []
    cfg = graph = None
    try:
        cfg = load_scalesim_cfg(args.config, freq=args.freq)
    except ConfigError as exc:
        problems.extend(exc.problems)
    policy = PrecisionPolicy(weights="int8", activations="int8")  # SCALE-Sim: 1-byte words
    try:
        graph = load_topology(args.topology, fmt=args.input_type, precision=policy,
                              shapes="scalesim" if args.scalesim_shapes else "conv")
    except ConfigError as exc:
        problems.extend(exc.problems)
    if args.layout is not None:
        lp = Path(args.layout)
        if not lp.is_file():
            problems.append(Problem(CMDLINE, "-l", f"layout file '{lp}' "
                                    + ("is a folder" if lp.is_dir() else "not found")))
    try:
        get_engine(args.engine)
    except ConfigError as exc:
        problems.extend(Problem(CMDLINE, "--engine", p.message, hint=p.hint) for p in exc.problems)
    out, out_problems = _output_dir(args, cfg.run_name if cfg else None)
    problems.extend(out_problems)
    if problems:
        raise ConfigError(problems)
    assert cfg is not None and graph is not None and out is not None

    notes = list(cfg.notes)
    if args.save_trace == "Y":
        notes.append("-s Y: SCALE-Sim's SRAM/DRAM address traces are not written (Tessera has no "
                     "address-level model)")
    if graph.meta.get("sparsity"):
        sp = graph.meta["sparsity"]
        notes.append(f"{args.topology}: the N:M sparsity column is ignored ({len(sp)} layers, e.g. "
                     f"{next(iter(sp))} {next(iter(sp.values()))}): SCALE-Sim applies it only with "
                     f"[sparsity] SparsitySupport on")
    for name, d in graph.meta.get("scalesim_ofmap", {}).items():
        (sh, sw), (th, tw) = d["scalesim"], d["tessera"]
        notes.append(f"{name}: output {th}x{tw}; SCALE-Sim computes {sh}x{sw} (its last window "
                     f"hangs past the IFMAP edge when (IFMAP - filter) is not a multiple of the "
                     f"stride), so this layer's numbers differ from SCALE-Sim's (--scalesim-shapes "
                     f"reproduces SCALE-Sim's shape)")
    if graph.meta.get("renamed"):
        notes.append(f"{args.topology}: repeated layer names were made unique: "
                     + ", ".join(graph.meta["renamed"]))

    arch = cfg.architecture
    exp = Experiment(
        name=cfg.run_name, architecture=arch, workload=graph, mapper=MapperOptions(),
        engine=args.engine, outputs=OutputOptions(), source=cfg.path,
        description=(f"SCALE-Sim inputs: -c {cfg.path} -t {args.topology} -i {args.input_type} "
                     f"(InterfaceBandwidth {cfg.bandwidth_mode})"),
        workload_spec={"scalesim_topology": str(Path(args.topology).resolve()),
                       "scalesim_format": args.input_type,
                       "precision": {"weights": policy.weights, "activations": policy.activations,
                                     "kv_cache": policy.kv_cache, "group_size": policy.group_size}})
    t0 = time.perf_counter()
    result = simulate_layer_by_layer(graph, arch, mapper=exp.mapper, engine=args.engine, name=exp.name)
    wall = time.perf_counter() - t0
    reports = scalesim_reports(result, graph)
    files = write_results(result, out, exp.resolved_config())
    for name, text in reports.items():
        atomic_write(out / name, text)
        files.append(out / name)
    if not args.quiet:
        from simulator.cli import _console

        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        con = _console()
        con.print(render_table(result, max_rows=args.max_rows))
        con.print(f"simulated in {wall:.3f} s; wrote {', '.join(str(f) for f in files)}")
    return 0
