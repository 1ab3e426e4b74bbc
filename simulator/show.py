"""``tessera show preset NAME`` and ``tessera show model NAME``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from architectures.units import format_quantity

__all__ = ["preset_rows", "show_preset", "show_model"]


def _walk(obj: BaseModel, prefix: str = "") -> list[tuple[str, Any, str | None, str]]:
    """(dotted path, value, unit kind, description) for every field of a template object."""
    rows = []
    for name, info in type(obj).model_fields.items():
        value = getattr(obj, name)
        path = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            rows.extend(_walk(value, path + "."))
            continue
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        rows.append((path, value, extra.get("unit_kind"), info.description or ""))
    return rows


def preset_rows(name: str) -> list[dict[str, str]]:
    """The resolved fields of a preset, each with its value, unit and source."""
    from architectures.presets import load_preset, load_preset_file

    pf = load_preset_file(name)
    arch = load_preset(name)
    written = set(_written_paths(pf.fields, arch))
    rows = []
    for path, value, kind, desc in _walk(arch):
        shown = format_quantity(value, kind) if kind and value is not None else repr(value) if isinstance(value, str) else str(value)
        source = pf.sources.get(path) or pf.sources.get(_short(path))
        if source is None:
            source = ("label" if path in ("name", "description") else
                      "set in preset (no source given)" if path in written else "default")
        rows.append({"field": path, "value": shown, "source": source, "description": desc})
    return rows


def _short(path: str) -> str:
    for suffix in ("_bytes_per_s", "_bytes", "_hz", "_s", "_pj_per_byte"):
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path


def _written_paths(fields: dict, arch: BaseModel) -> list[str]:
    from workloads.schema import canonicalize

    canon = canonicalize(type(arch), fields)
    out = []

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out.append(f"{prefix}{k}")

    walk(canon, "")
    return out


def show_preset(name: str, console) -> None:
    from rich.table import Table

    from architectures.presets import load_preset, load_preset_file

    pf = load_preset_file(name)
    arch = load_preset(name)
    t = Table(title=f"preset {pf.name} ({pf.template}): {getattr(arch, 'description', '')}",
              title_justify="left")
    t.add_column("field", overflow="fold")
    t.add_column("value", justify="right", overflow="fold")
    t.add_column("source", overflow="fold")
    for row in preset_rows(name):
        t.add_row(row["field"], row["value"], row["source"])
    console.print(t)
    em = arch.energy_model() if hasattr(arch, "energy_model") else None
    if em is not None:
        e = Table(title=f"energy (table {arch.energy_table})", title_justify="left")
        e.add_column("what")
        e.add_column("value", justify="right")
        e.add_column("source", overflow="fold")
        e.add_row("MAC", f"{em.mac_pj.value:.4g} pJ", em.mac_pj.source)
        e.add_row("vector op", f"{em.vector_op_pj.value:.4g} pJ", em.vector_op_pj.source)
        for buf, s in em.sram_read_pj_per_byte.items():
            e.add_row(f"{buf} SRAM read", f"{s.value:.4g} pJ/B", s.source)
        e.add_row("DRAM read", f"{em.dram_read_pj_per_byte.value:.4g} pJ/B", em.dram_read_pj_per_byte.source)
        console.print(e)


def show_model(name: str, console) -> None:
    from rich.table import Table

    from workloads.registry import MODELS, build_model

    g = build_model(name)
    entry = MODELS[name]
    t = Table(title=f"model {name}: {entry.description} [{entry.source}]", title_justify="left")
    for col in ("op", "kind", "output", "GEMM M x K x N (groups)", "MACs", "params"):
        t.add_column(col)
    for row in g.summary():
        gm = row["gemm"]
        t.add_row(row["name"], row["kind"], "x".join(map(str, row["output"])),
                  f"{gm[0]} x {gm[1]} x {gm[2]} ({gm[3]})" if gm else "", f"{row['macs']:,}",
                  f"{row['params']:,}")
    console.print(t)
    console.print(f"total: {g.macs / 1e9:.3f} G MACs, {g.params / 1e6:.3f} M parameters, "
                  f"{len(g)} operators (options: {entry.options})")
