"""``tessera animate``: watch a systolic array compute one GEMM, cycle by cycle.

Runs the micro-simulator (``simulator.micro``) on small random integer operands, checks the
product against numpy and the cycle count against the fold model, and draws it: one PNG frame
per cycle plus a title frame, an animated GIF of the same frames, and utilization heat maps
(``simulator.micro.draw``), or with ``--text`` a per-cycle view in the terminal.

The GEMM comes from ``--gemm MxKxN`` (with ``--array RxC`` and ``--dataflow``) or from a
single-GEMM experiment YAML (``workload: {gemm: {M, K, N}}`` on a ``systolic_array``; the
dataflow is the one ``tessera run`` would use, ``--dataflow`` overrides it). The micro-simulator
draws PEs that do one multiply-accumulate per cycle: an experiment whose PE kind (or precision
pair, or ``compute_model``) gives another step cost than that is refused with a ``ConfigError``
naming ``architecture.pe.kind`` and both cycle counts. ``--heatmap`` draws the utilization heat
maps alone, which need no per-cycle recording and so have no frame limit.

The ``--out`` folder is checked (a folder, or creatable, and writable) before anything is
simulated; bad input exits 2 with a ``ConfigError``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from architectures.systolic import DATAFLOWS, fold_plan
from workloads.errors import ConfigError, Problem
from workloads.ops import GemmShape

__all__ = ["add_arguments", "main", "parse_gemm", "parse_array", "resolve", "Target"]

_SEP = r"\s*[xX×,]\s*"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", nargs="?", help="a single-GEMM experiment YAML (instead of --gemm)")
    parser.add_argument("--gemm", help="the GEMM as MxKxN (optionally xG groups), e.g. 4x8x4")
    parser.add_argument("--array", help="array size RxC (default 4x4; not with an experiment)")
    parser.add_argument("--dataflow", choices=DATAFLOWS, help="os | ws | is (default: os, or the "
                        "experiment's)")
    parser.add_argument("--out", help="folder for the frames, the GIF and the heat maps "
                        "(default: results/animate/<name>/; with --text only when given)")
    parser.add_argument("--text", action="store_true", help="print the per-cycle view in the terminal")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random integer operands")
    parser.add_argument("--frame-ms", type=int, default=350, help="GIF: milliseconds per cycle frame")
    parser.add_argument("--no-png", action="store_true", help="write the GIF and heat maps only, "
                        "not one PNG per frame (frames of an earlier run in the folder are removed)")
    parser.add_argument("--heatmap", action="store_true", help="write only the utilization heat maps "
                        "(no frames: no limit on the cycles)")


def parse_gemm(text: str) -> GemmShape:
    m = re.fullmatch(rf"\s*(\d+){_SEP}(\d+){_SEP}(\d+)(?:{_SEP}(\d+))?\s*", text or "")
    if not m or any(int(x) <= 0 for x in m.groups() if x is not None):
        raise ConfigError(Problem(None, "--gemm", f"expected MxKxN with positive integers (optionally "
                                  f"xGROUPS), e.g. 4x8x4; found '{text}'"))
    M, K, N, G = m.groups()
    return GemmShape(int(M), int(K), int(N), int(G or 1))


def parse_array(text: str) -> tuple[int, int]:
    m = re.fullmatch(rf"\s*(\d+)(?:{_SEP}(\d+))?\s*", text or "")
    if not m or int(m.group(1)) <= 0 or (m.group(2) is not None and int(m.group(2)) <= 0):
        raise ConfigError(Problem(None, "--array", f"expected RxC with positive integers, e.g. 4x4; "
                                  f"found '{text}'"))
    r = int(m.group(1))
    return r, int(m.group(2) or r)


@dataclass(frozen=True)
class Target:
    """What to animate, and where it came from (for error messages)."""

    name: str
    gemm: GemmShape
    rows: int
    cols: int
    dataflow: str
    file: str | None = None
    gemm_path: str = "--gemm"
    array_path: str = "--array"


def resolve(args: argparse.Namespace) -> Target:
    """The GEMM, array and dataflow from the command line or the experiment file."""
    if args.experiment and (args.gemm or args.array):
        raise ConfigError(Problem(None, "--gemm" if args.gemm else "--array", "give an experiment file "
                                  "or --gemm/--array, not both"))
    if not args.experiment:
        if not args.gemm:
            raise ConfigError(Problem(None, "--gemm", "give a GEMM (--gemm MxKxN, e.g. 4x8x4) or a "
                                      "single-GEMM experiment YAML"))
        gemm = parse_gemm(args.gemm)
        rows, cols = parse_array(args.array or "4x4")
        df = args.dataflow or "os"
        return Target(f"gemm_{gemm.M}x{gemm.K}x{gemm.N}_{rows}x{cols}_{df}", gemm, rows, cols, df)
    from simulator.experiment import load_experiment

    exp = load_experiment(args.experiment)
    arch = exp.architecture
    spec = exp.workload_spec.get("gemm")
    if spec is None:
        source = next((f"{k} {exp.workload_spec[k]!r}" for k in ("model", "config", "scalesim_topology")
                       if k in exp.workload_spec), "not a GEMM")
        raise ConfigError(Problem(exp.source, "workload", f"tessera animate draws a single GEMM "
                                  f"(workload: {{gemm: {{M, K, N}}}}); this workload is {source}"))
    if arch.template != "systolic_array":
        raise ConfigError(Problem(exp.source, "architecture", f"tessera animate draws a systolic array; "
                                  f"this architecture is a '{arch.template}'"))
    gemm = GemmShape(spec["M"], spec["K"], spec["N"], spec.get("groups", 1))
    df = args.dataflow or exp.mapper.dataflow or arch.dataflow
    if df == "auto":
        df = _mapper_choice(exp)
    _check_one_mac_per_cycle(exp, gemm, df)
    return Target(f"{exp.name}_{df}", gemm, arch.rows, arch.cols, df, exp.source, "workload.gemm",
                  "architecture.rows")


def _check_one_mac_per_cycle(exp, gemm: GemmShape, df: str) -> None:
    """Refuse a PE whose step cost is not one MAC per cycle (the module docstring): the frames
    would show another cycle count than ``tessera run``."""
    from architectures.systolic import MAC_STEP
    from workloads.errors import Problems
    from workloads.ops import MatMul

    arch = exp.architecture
    op = next((o for o in exp.workload.ops() if o.is_matrix), None)
    if op is None:
        return
    second = op.inputs[1] if isinstance(op, MatMul) else op.weights[0]
    step, _ = arch.step_cost(second.precision, op.inputs[0].precision,
                             second.group_size if second.role == "weight" else None)
    if step == MAC_STEP:
        return
    lines = {}
    if exp.source and Path(exp.source).is_file():
        from workloads.yamlio import load_yaml

        _, lines = load_yaml(exp.source)
    probs = Problems(exp.source, lines)
    one_mac = fold_plan(gemm, arch.rows, arch.cols, df).compute_cycles
    if not step.skew:
        probs.add(("architecture", "compute_model"),
                  f"tessera animate draws the fold model's skewed pipeline, one MAC per PE per cycle; "
                  f"compute_model '{arch.compute_model}' has no fill or drain ({_cycles(gemm, arch, df, step)} "
                  f"cycles in `tessera run`, {one_mac:,} in the animation): use compute_model: fold")
    else:
        what = (f"{step.dot_width} element{'s' if step.dot_width > 1 else ''} of K per step in "
                f"{step.step_cycles:g} cycle{'s' if step.step_cycles != 1 else ''}")
        if step.dequant_group:
            what += f", plus {step.dequant_cycles:g} cycle(s) of dequantization per group of {step.dequant_group}"
        probs.add(("architecture", "pe", "kind"),
                  f"tessera animate draws PEs that do one multiply-accumulate per cycle (pe.kind mac); this "
                  f"'{arch.pe.kind}' PE does {what} for {second.precision} x {op.inputs[0].precision}, so "
                  f"`tessera run` counts {_cycles(gemm, arch, df, step)} cycles ({df}) where the animation "
                  f"would draw {one_mac:,}: animate the GEMM on pe: {{kind: mac}} (or with --gemm/--array) "
                  f"to see the fold model's skew")
    probs.raise_if_any()


def _cycles(gemm: GemmShape, arch, df: str, step) -> str:
    return f"{fold_plan(gemm, arch.rows, arch.cols, df, step).compute_cycles:,}"


def _mapper_choice(exp) -> str:
    """The dataflow ``tessera run`` picks for the experiment's GEMM (mapper.dataflow: auto)."""
    from mappers.annotations import Tiling
    from mappers.pipeline import Pipeline

    graph = Pipeline().run(exp.workload, exp.architecture, exp.mapper)
    for op in graph.ops():
        if graph.has(op.name, Tiling):
            return graph.get(op.name, Tiling).dataflow
    raise ConfigError(Problem(exp.source, "workload", "the GEMM is not mapped onto the array"))


def check_out(out: Path) -> None:
    """Make sure the frames, the GIF and the heat maps can be written into ``out`` (a folder, or
    one that can be created, and writable), before anything is simulated; create it."""
    def bad(message: str) -> ConfigError:
        return ConfigError(Problem(None, "--out", message))

    if out.exists() and not out.is_dir():
        raise bad(f"'{out}' is a file; give a folder (the frames, animation.gif and utilization.png go "
                  f"into it)")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise bad(f"cannot create the folder '{out}': '{parent}' is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise bad(f"cannot write into '{parent}' (permission denied or a read-only file system)")
    for name, folder in (("frames", True), ("animation.gif", False), ("utilization.png", False)):
        path = out / name
        if path.exists() and path.is_dir() != folder:
            raise bad(f"'{path}' is a {'file' if folder else 'folder'}; tessera animate writes its "
                      f"{'frames into a folder' if folder else 'image to a file'} of that name")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise bad(f"cannot create the folder '{out}': {exc.strerror or exc}") from None


def main(args: argparse.Namespace) -> int:
    import numpy as np

    from simulator.micro import random_operands, simulate_gemm
    from simulator.micro.draw import FRAME_RULE, check_drawable, describe, write_animation
    from simulator.micro.heatmaps import write_heatmaps
    from simulator.micro.text import text_lines

    if args.frame_ms <= 0:
        raise ConfigError(Problem(None, "--frame-ms", f"expected a positive number of milliseconds; "
                                  f"found {args.frame_ms}"))
    if args.heatmap and args.text:
        raise ConfigError(Problem(None, "--heatmap", "draws the heat maps alone; leave out --text (the "
                                  "per-cycle view)"))
    target = resolve(args)
    gemm, rows, cols, df = target.gemm, target.rows, target.cols, target.dataflow
    draw = args.out is not None or not args.text
    if draw:
        from simulator.plots import require_matplotlib

        require_matplotlib("tessera animate")
    if args.heatmap:
        from simulator.micro import check_size

        check_size(gemm, rows, cols, df, path=target.array_path)
    else:
        check_drawable(gemm, rows, cols, df, file=target.file, gemm_path=target.gemm_path,
                       array_path=target.array_path)
    out = Path(args.out) if args.out else Path("results") / "animate" / target.name
    if draw:
        check_out(out)
    A, B = random_operands(gemm, seed=args.seed)
    run = simulate_gemm(A, B, rows, cols, df, record=not args.heatmap)
    plan = fold_plan(gemm, rows, cols, df)
    expected = A @ B
    if run.cycles != plan.compute_cycles or not np.array_equal(run.output, expected):
        print(f"tessera: internal error: the micro-simulation disagrees with the fold model or numpy "
              f"({run.cycles} vs {plan.compute_cycles} cycles); please report it", file=sys.stderr)
        return 1
    if args.text:
        for line in text_lines(run):
            print(line)
        print()
    else:
        for line in describe(run):
            print(line)
    print(f"checked: {run.cycles:,} simulated cycles = the fold model's {plan.compute_cycles:,}; "
          f"the product equals numpy's (seed {args.seed})")
    if args.heatmap:
        print(f"wrote {write_heatmaps(run, out / 'utilization.png')}")
    elif draw:
        files = write_animation(run, out, frame_ms=args.frame_ms, pngs=not args.no_png)
        gif = out / "animation.gif"
        print(f"wrote {gif} ({run.cycles + 1} frames: {FRAME_RULE}), {out / 'utilization.png'}"
              + ("" if args.no_png else f" and {len(files) - 2} PNG frames in {out / 'frames'}"))
    return 0
