#!/bin/sh
# Re-run the real SCALE-Sim on every case's pinned inputs and refresh its three reports.
# Needs SCALE-Sim v3.0.0 (pip install scalesim==3.0.0, numpy<2) in the active Python.
# Usage: sh tests/data/scalesim/regenerate.sh   (from anywhere)
set -e
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
for dir in "$here"/*/; do
    case=$(basename "$dir")
    fmt=conv
    case $case in gemm_*) fmt=gemm ;; esac
    # SCALE-Sim reads the -l file even without custom layouts; its parser takes integers only,
    # so a case whose topology has an N:M column brings a layout.csv without it
    layout="$dir/topology.csv"
    [ -f "$dir/layout.csv" ] && layout="$dir/layout.csv"
    python -m scalesim.scale -c "$dir/scale.cfg" -t "$dir/topology.csv" -l "$layout" \
        -i $fmt -p "$work" -s N > "$work/$case.log" 2>&1
    for f in COMPUTE_REPORT.csv BANDWIDTH_REPORT.csv DETAILED_ACCESS_REPORT.csv; do
        cp "$work/$case/$f" "$dir/$f"
    done
    echo "$case: ok"
done
rm -rf "$work"
