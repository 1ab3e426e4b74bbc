"""The ``tessera`` command.

Exit codes: 0 success, 2 bad input (every problem printed, one per line, no traceback),
1 an internal error (a one-line message; ``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import textwrap
import sys
import time
from pathlib import Path

from workloads.errors import ConfigError

__all__ = ["main"]


def _console(stderr: bool = False):
    import shutil

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = shutil.get_terminal_size((160, 24)).columns if stream.isatty() else 160
    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=max(width, 100))


def cmd_run(args: argparse.Namespace) -> int:
    from simulator.dse.cli import run_study_if_present
    from simulator.experiment import load_experiment
    from simulator.report import render_table, write_results
    from simulator.run import run_experiment

    study_exit = run_study_if_present(args)  # a sweep: or search: section runs as a study
    if study_exit is not None:
        return study_exit
    exp = load_experiment(args.experiment)
    engine = args.engine or exp.engine
    out = Path(args.out) if args.out else Path("results") / exp.name
    _check_out_dir(out)
    plots = args.plots or exp.outputs.plots
    if plots:
        from simulator.plots import require_matplotlib
        require_matplotlib("--plots" if args.plots else "outputs.plots", None if args.plots else exp.source)
    t0 = time.perf_counter()
    result = run_experiment(exp, engine=engine)
    wall = time.perf_counter() - t0
    files = write_results(result, out, exp.resolved_config())
    if args.trace or exp.outputs.trace:
        from simulator.trace import write_trace
        files.append(write_trace(result, out / "trace.json", exp))
    if plots:
        from simulator.plots import write_plots
        peak, bandwidth = exp.architecture.roofline()
        files += write_plots(result, out / "plots", peak_macs_per_s=peak, dram_bytes_per_s=bandwidth)
    if not args.quiet:
        con = _console()
        con.print(render_table(result, max_rows=args.max_rows))
        con.print(f"simulated in {wall:.3f} s; wrote {', '.join(str(f) for f in files)}")
    return 0


def _check_out_dir(out: Path) -> None:
    from workloads.errors import Problem

    if out.exists() and not out.is_dir():
        raise ConfigError(Problem(None, "--out", f"'{out}' exists and is not a folder; "
                                  "give a folder (it is created if missing)"))


def cmd_validate(args: argparse.Namespace) -> int:
    from simulator.dse.study import has_study_section, load_study, study_summary
    from simulator.experiment import load_experiment

    if has_study_section(args.experiment):  # the checks `tessera run` makes before any point runs
        study = load_study(args.experiment)
        exp, extra = study.experiment, f"; {study_summary(study)}"
    else:
        exp, extra = load_experiment(args.experiment), ""
    print(f"{args.experiment}: ok ({exp.workload.name}, {len(exp.workload)} ops on "
          f"{exp.architecture.name}, engine {exp.engine}{extra})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    what = args.what
    if what == "presets":
        from architectures.presets import load_preset_file, preset_names

        for n in preset_names():
            p = load_preset_file(n)
            print(f"{n:24s} {p.template:16s} {p.fields.get('description', '')}")
    elif what == "models":
        from workloads.registry import MODELS, model_names

        for n in model_names():
            e = MODELS[n]
            print(f"{n:24s} {e.family:12s} {e.description}")
    elif what == "templates":
        from architectures.base import TEMPLATES, _load_builtin

        _load_builtin()
        for n, cls in sorted(TEMPLATES.items()):
            print(f"{n:24s} {(cls.__doc__ or '').strip().splitlines()[0]}")
    elif what == "engines":
        from simulator.engines import ENGINES, _load_builtin

        _load_builtin()
        for n, cls in sorted(ENGINES.items()):
            print(f"{n:24s} {(cls.__doc__ or '').strip().splitlines()[0]}")
    elif what == "passes":
        from mappers.pipeline import PASSES, _load_builtin

        _load_builtin()
        for n, p in PASSES.items():
            print(f"{n:24s} requires {', '.join(p.requires) or '-':20s} {p.doc}")
    elif what == "pe-kinds":
        from architectures.pe import PE_KINDS

        for n, cls in PE_KINDS.items():
            doc = " ".join((cls.__doc__ or "").replace("``", "").split()).split(": ", 1)[-1]
            print(f"{n:12s} {textwrap.shorten(doc.split('. ')[0], 110, placeholder=' ...')}")
    elif what == "energy-tables":
        from architectures.energy import energy_table, energy_table_names

        for n in energy_table_names():
            print(f"{n:24s} {energy_table(n).description}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from simulator.show import show_model, show_preset

    if args.what == "preset":
        show_preset(args.name, _console())
    else:
        show_model(args.name, _console())
    return 0


# Commands that live in their own modules: module -> (command, help). Each module has
# add_arguments(parser) and main(args) -> exit code.
COMMAND_MODULES: dict[str, tuple[str, str]] = {
    "simulator.scalesim_cmd": ("scalesim", "run SCALE-Sim inputs (config .cfg + topology .csv) unchanged"),
    "simulator.dse.plot_cmd": ("plot", "draw PNG plots of a results folder (a run, a sweep or a search)"),
    "simulator.animate_cmd": ("animate", "draw a systolic array computing one GEMM, cycle by cycle (frames, GIF, text)"),
    "simulator.explain_cmd": ("explain", "per layer: what bounds it, its intensity vs the ridge, its folds, what would help"),
}


def build_parser() -> argparse.ArgumentParser:
    from simulator.dse.cli import add_study_arguments

    p = argparse.ArgumentParser(prog="tessera", description="Cycle-approximate accelerator simulator.")
    p.add_argument("--debug", action="store_true", help="show tracebacks for internal errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run an experiment YAML")
    r.add_argument("experiment", help="experiment YAML file")
    r.add_argument("--out", help="output folder (default: results/<experiment name>)")
    r.add_argument("--engine", choices=("numba", "simpy", "analytical"), help="override the engine")
    r.add_argument("--trace", action="store_true", help="also write trace.json (Perfetto)")
    r.add_argument("--plots", action="store_true", help="also write PNG plots into OUT/plots/")
    r.add_argument("--quiet", action="store_true", help="print nothing on success")
    r.add_argument("--max-rows", type=int, default=None, help="layers shown in the table")
    add_study_arguments(r)  # --workers, --cluster, --resume (simulator.dse)
    r.set_defaults(fn=cmd_run)

    v = sub.add_parser("validate", help="check an experiment YAML without running it")
    v.add_argument("experiment")
    v.set_defaults(fn=cmd_validate)

    ls = sub.add_parser("list", help="list presets, models, templates, PE kinds, engines, passes, energy tables")
    ls.add_argument("what", choices=("presets", "models", "templates", "pe-kinds", "engines", "passes",
                                     "energy-tables"))
    ls.set_defaults(fn=cmd_list)

    sh = sub.add_parser("show", help="show a preset's resolved fields with units and sources, or a model")
    sh.add_argument("what", choices=("preset", "model"))
    sh.add_argument("name")
    sh.set_defaults(fn=cmd_show)

    import importlib

    for module_name, (command, help_text) in COMMAND_MODULES.items():
        module = importlib.import_module(module_name)
        sp = sub.add_parser(command, help=help_text)
        module.add_arguments(sp)
        sp.set_defaults(fn=module.main)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - the last line of defence for users
        if args.debug:
            raise
        print(f"tessera: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the "
              f"traceback, and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
