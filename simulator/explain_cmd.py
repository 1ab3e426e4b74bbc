"""``tessera explain EXPERIMENT.yaml``: per layer, what bounds it and what would make it faster.

Runs the experiment and prints ``simulator.explain``'s report: a summary against the roofline,
then per layer its bound (compute, kernel launches, or the stall kind it waits on most), its
arithmetic intensity against the ridge point of the unit that ran it (PIM's own for a layer on
PIM), its folds and mapping efficiency (a GPU kernel's CTA tiling), what ``mapper.search`` or
``mapper.dataflow: auto`` chose against what, and one sentence on what would help, each computed
from the run's numbers.
"""

from __future__ import annotations

import argparse

from workloads.errors import ConfigError, Problem

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", help="experiment YAML file")
    parser.add_argument("--engine", choices=("numba", "simpy", "analytical"), help="override the engine")
    parser.add_argument("--top", type=int, default=None,
                        help="only the N layers taking the most cycles (default: all of up to 30 "
                        "layers, else 15)")
    parser.add_argument("--all", action="store_true", help="every layer, in order")
    parser.add_argument("--layer", default=None, help="only layers whose name contains this text")


def main(args: argparse.Namespace) -> int:
    from simulator.explain import default_top, explain_experiment

    if args.top is not None and args.top <= 0:
        raise ConfigError(Problem(None, "--top", f"expected a positive number of layers; found {args.top}"))
    explanation = explain_experiment(args.experiment, engine=args.engine)
    if args.layer is not None and not any(args.layer in l.name for l in explanation.layers):
        names = ", ".join(l.name for l in explanation.layers[:6])
        raise ConfigError(Problem(None, "--layer", f"no layer name contains '{args.layer}'; layers: "
                                  f"{names}{', ...' if len(explanation.layers) > 6 else ''}"))
    top = None if args.all else (args.top if args.top is not None else default_top(len(explanation.layers)))
    print("\n".join(explanation.lines(top=top, match=args.layer)))
    return 0
