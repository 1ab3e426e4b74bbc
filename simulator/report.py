"""Result files and tables.

``write_results`` writes ``results.json``, ``layers.csv`` and ``resolved_config.yaml`` into a
folder; each file is written to a temporary name and renamed, so no file is ever half-written,
and no other file in the folder is touched.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from simulator.result import LAYER_CSV_COLUMNS, SimResult
from workloads.yamlio import dump_yaml

__all__ = ["write_results", "atomic_write", "layers_csv", "results_json", "render_table",
           "summary_lines", "llm_summary_lines"]


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _clean(value: Any) -> Any:
    """Plain data with infinities written as "inf" (valid JSON, and loads back as a quantity)."""
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def results_json(result: SimResult) -> str:
    return json.dumps(_clean(result.to_dict()), indent=2)


def layers_csv(result: SimResult) -> str:
    rows = [layer.row() for layer in result.layers]
    columns = list(LAYER_CSV_COLUMNS)
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: row.get(k, "") for k in columns})
    return buf.getvalue()


def write_results(result: SimResult, out_dir: str | Path, resolved_config: dict | None = None) -> list[Path]:
    """Write the result files into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a folder")
    written = []
    files = {"results.json": results_json(result), "layers.csv": layers_csv(result), **result.extra_files()}
    for name, text in files.items():
        atomic_write(out / name, text)
        written.append(out / name)
    if resolved_config is not None:
        atomic_write(out / "resolved_config.yaml", dump_yaml(_clean(resolved_config)))
        written.append(out / "resolved_config.yaml")
    return written


def _si(value: float, unit: str) -> str:
    for scale, p in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {p}{unit}"
    return f"{value:.3g} {unit}"


def summary_lines(result: SimResult) -> list[tuple[str, str]]:
    m = result.metrics()
    lines = [
        ("cycles", f"{int(m['cycles']):,}"),
        ("latency", _si(m["latency_s"], "s") if m["latency_s"] >= 1 else f"{m['latency_s'] * 1e3:.4g} ms"),
        ("MACs", _si(m["macs"], "")),
        ("utilization", f"{m['utilization'] * 100:.1f} %"),
        ("stalls (memory / dependency / busy unit)",
         f"{int(m['stall_memory_cycles']):,} / {int(m['stall_dependency_cycles']):,} / "
         f"{int(m['stall_busy_cycles']):,} cycles"),
        ("SRAM reads / writes", f"{_si(m.get('sram_read_bytes', 0), 'B')} / {_si(m.get('sram_write_bytes', 0), 'B')}"),
        ("DRAM reads / writes", f"{_si(m.get('dram_read_bytes', 0), 'B')} / {_si(m.get('dram_write_bytes', 0), 'B')}"),
        ("energy", f"{m['energy_pj'] * 1e-6:.4g} uJ (" + ", ".join(
            f"{k.replace('_', ' ')} {v * 1e-6:.3g}" for k, v in result.energy_components().items()) + ")"),
    ]
    devices = int(m.get("devices", 1))
    if devices > 1 and m.get("system_energy_pj", m["energy_pj"]) != m["energy_pj"]:
        # the layers are the simulated devices' (one tensor-parallel device, ...): see simulator.llm
        lines.append((f"energy, all {devices} devices", f"{m['system_energy_pj'] * 1e-6:.4g} uJ"))
    return lines + llm_summary_lines(m)


def _duration(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.4g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.4g} ms"
    return f"{seconds * 1e6:.4g} us"


def _joules(pj: float) -> str:
    for scale, unit in ((1e12, "J"), (1e9, "mJ"), (1e6, "uJ"), (1e3, "nJ")):
        if pj >= scale:
            return f"{pj / scale:.4g} {unit}"
    return f"{pj:.4g} pJ"


def llm_summary_lines(m: dict[str, Any]) -> list[tuple[str, str]]:
    """Rows for the metrics of LLM phases (``simulator.llm``) and serving runs
    (``simulator.serving``), only those that apply: a serving run has requests, TTFT and TBT
    (median and p99); a prefill-only run has a TTFT and prompt tokens per second, no per-token
    decode time; a run that generates tokens has its time per output token."""
    if "throughput_tokens_per_s" not in m:
        return []
    out: list[tuple[str, str]] = []
    generated = int(m.get("generated_tokens", 0))
    serving = "requests_completed" in m
    if serving:
        out.append(("requests completed", f"{int(m['requests_completed']):,} of {int(m.get('requests', 0)):,}"
                    + (f" (mean batch {m['mean_batch']:.3g})" if m.get("mean_batch") else "")))
        out.append(("TTFT median / p99", f"{_duration(m['ttft_s'])} / {_duration(m['ttft_p99_s'])}"))
        if m.get("tbt_s"):
            out.append(("TBT median / p99", f"{_duration(m['tbt_s'])} / {_duration(m['tbt_p99_s'])}"))
    else:
        if m.get("ttft_s"):
            out.append(("TTFT (prefill)", _duration(m["ttft_s"])))
        if generated and m.get("tpot_s"):
            out.append(("time per output token", _duration(m["tpot_s"])))
    what = "generated" if generated or serving else "prompt"
    rate = m["throughput_tokens_per_s"]
    out.append(("throughput", f"{rate:,.0f} {what} tokens/s" if rate >= 100 else f"{rate:.3g} {what} tokens/s"))
    if m.get("energy_pj_per_token"):
        out.append(("energy per token", f"{_joules(m['energy_pj_per_token'])} per {what} token"))
    return out


def render_table(result: SimResult, max_rows: int | None = None) -> "Any":
    """A rich renderable: per-layer table and a summary."""
    from rich.console import Group
    from rich.table import Table

    t = Table(title=f"{result.experiment}: {result.workload} on {result.architecture} "
                    f"({result.engine} engine)", title_justify="left", show_lines=False)
    for col, justify in (("layer", "left"), ("kind", "left"), ("df", "left"), ("cycles", "right"),
                         ("compute", "right"), ("stall", "right"), ("util %", "right"),
                         ("map eff %", "right"), ("DRAM", "right"), ("energy uJ", "right")):
        t.add_column(col, justify=justify)
    layers = result.layers if max_rows is None else result.layers[:max_rows]
    for l in layers:
        dram = l.counters.get("dram_read_bytes", 0) + l.counters.get("dram_write_bytes", 0)
        t.add_row(l.name, l.kind, l.dataflow or "", f"{l.total_cycles:,}", f"{l.compute_cycles:,}",
                  f"{l.stall_cycles:,}", f"{l.utilization * 100:.1f}" if l.unit == "array" else "",
                  f"{l.mapping_efficiency * 100:.1f}" if l.mapping_efficiency is not None else "",
                  _si(dram, "B"), f"{l.energy_pj * 1e-6:.3g}")
    if max_rows is not None and len(result.layers) > max_rows:
        t.add_row(f"... {len(result.layers) - max_rows} more", *[""] * 9)
    s = Table(show_header=False, box=None)
    s.add_column(style="bold")
    s.add_column()
    for k, v in summary_lines(result):
        s.add_row(k, v)
    return Group(t, s)
