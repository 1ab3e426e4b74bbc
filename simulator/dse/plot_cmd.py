"""``tessera plot RESULTS``: draw PNG plots of a results folder (a run, a sweep or a search)."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="a results folder written by 'tessera run' (--out)")
    parser.add_argument("--out", default=None, help="where to write the PNGs (default: RESULTS/plots)")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")


def main(args: argparse.Namespace) -> int:
    from simulator.dse.plots import plot_folder

    files = plot_folder(args.results, args.out)
    if not args.quiet:
        print(f"wrote {len(files)} plots: {', '.join(str(f) for f in files)}")
    return 0
