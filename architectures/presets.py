"""Presets: YAML files under ``architectures/presets/`` that name a template and set its fields.

A preset file::

    template: systolic_array
    name: tpu_v1_like
    description: ...
    rows: 256
    memory: {dram: {bandwidth: "34 GB/s"}}
    sources:                       # dotted field path -> where the number comes from
      rows: "Jouppi et al., ISCA 2017, Sec. 2: 256x256 MAC matrix"

Contract: ``build_architecture(spec)`` turns an experiment's ``architecture:`` mapping
(``preset:`` or ``template:`` plus fields, and ``overrides:`` by dotted path) into a validated
template object. Every problem is reported against the file and key the user wrote: a bad
override names the experiment, a bad preset value names the preset file.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from architectures.base import Architecture, template_class
from workloads.errors import ConfigError, Problem, Problems, did_you_mean
from workloads.schema import canonicalize, resolve_path, validate, written_path
from workloads.yamlio import load_yaml, parse_yaml

__all__ = ["PresetFile", "preset_names", "load_preset_file", "build_architecture", "load_preset",
           "set_path"]

RESERVED = ("template", "sources")


@dataclass(frozen=True)
class PresetFile:
    name: str
    path: str
    template: str
    fields: dict[str, Any]  # as written (short keys allowed)
    sources: dict[str, str]
    lines: dict


def _preset_dir():
    return resources.files("architectures") / "presets"


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in _preset_dir().iterdir() if p.name.endswith(".yaml"))


def load_preset_file(name_or_path: str, *, file: str | None = None,
                     path: str = "architecture.preset", line: int | None = None) -> PresetFile:
    """Read a preset by name (shipped) or by path (a user's YAML)."""
    candidate = Path(name_or_path)
    if name_or_path.endswith((".yaml", ".yml")) or candidate.exists():
        if file and not candidate.is_absolute() and not candidate.exists():
            candidate = Path(file).parent / candidate
        data, lines = load_yaml(candidate)
        where = str(candidate)
        pname = candidate.stem
    else:
        res = _preset_dir() / f"{name_or_path}.yaml"
        if not res.is_file():
            names = preset_names()
            raise ConfigError(Problem(file, path, f"'{name_or_path}' is not a preset; available: "
                                      f"{', '.join(names)}", line, did_you_mean(name_or_path, names)))
        where = f"architectures/presets/{name_or_path}.yaml"
        data, lines = parse_yaml(res.read_text(encoding="utf-8"), where)
        pname = name_or_path
    if not isinstance(data, dict) or "template" not in data:
        raise ConfigError(Problem(where, "template", "a preset must name its template "
                                  "(e.g. 'template: systolic_array')", lines.get(())))
    fields = {k: v for k, v in data.items() if k not in RESERVED}
    sources = data.get("sources") or {}
    return PresetFile(pname, where, data["template"], fields, dict(sources), lines)


def set_path(data: dict, path: tuple, value: Any) -> None:
    """Set ``data[a][b][c] = value`` for path (a, b, c), creating mappings on the way."""
    cur = data
    for key in path[:-1]:
        nxt = cur.get(key)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[key] = nxt
        cur = nxt
    cur[path[-1]] = value


def _deep_copy(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _deep_copy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deep_copy(v) for v in d]
    return d


def build_architecture(spec: dict | str, *, file: str | None = None, lines: dict | None = None,
                       prefix: tuple = ("architecture",)) -> Architecture:
    """Build the architecture an experiment describes (see the module docstring)."""
    lines = lines or {}
    if isinstance(spec, str):
        spec = {"preset": spec}
    if not isinstance(spec, dict):
        raise ConfigError(Problem(file, ".".join(prefix), "expected a mapping with 'preset:' or "
                                  f"'template:', found {spec!r}", lines.get(prefix)))
    probs = Problems(file, lines)
    preset = None
    spec = dict(spec)
    overrides = spec.pop("overrides", None) or {}
    if "preset" in spec:
        preset = load_preset_file(str(spec.pop("preset")), file=file, path=".".join(prefix + ("preset",)),
                                  line=lines.get(prefix + ("preset",)))
        if "template" in spec and spec["template"] != preset.template:
            probs.add(prefix + ("template",), f"preset '{preset.name}' is a '{preset.template}', "
                      f"not a '{spec['template']}'")
        spec.pop("template", None)
        template_name = preset.template
        inline = spec  # fields written beside preset: treated as overrides of the preset
    elif "template" in spec:
        template_name = str(spec.pop("template"))
        inline = spec
    else:
        raise ConfigError(Problem(file, ".".join(prefix), "give 'preset: NAME' or 'template: NAME' "
                                  "(see 'tessera list presets')", lines.get(prefix)))
    cls = template_class(template_name, file=preset.path if preset else file,
                         path="template" if preset else ".".join(prefix + ("template",)))

    base = canonicalize(cls, _deep_copy(preset.fields)) if preset else {}
    provenance: dict[tuple, tuple[str | None, tuple, int | None]] = {}
    inline_canon = canonicalize(cls, _deep_copy(inline))
    for key in inline_canon:
        provenance[(key,)] = (file, prefix, None)
    base = _merge(base, inline_canon)

    if not isinstance(overrides, dict):
        probs.add(prefix + ("overrides",), f"expected a mapping of dotted paths to values, found {overrides!r}")
    else:
        for dotted, value in overrides.items():
            canon, err = resolve_path(cls, str(dotted))
            key = prefix + ("overrides", dotted)
            if err:
                probs.add(key, err)
                continue
            set_path(base, canon, value)
            provenance[canon] = (file, key, lines.get(key))

    def origin(loc: tuple):
        # paths are shown as the user spelled them (short keys included), so their lines resolve
        for n in range(len(loc), 0, -1):
            hit = provenance.get(tuple(loc[:n]))
            if hit:
                f, shown, line = hit
                if shown and shown[-2:-1] == ("overrides",):  # keys under an override's value
                    rest = written_path(cls, tuple(loc), lambda k: len(k) <= n or shown + k[n:] in lines)[n:]
                    return f, shown + rest, lines.get(shown + rest) or line
                w = written_path(cls, tuple(loc), lambda k: shown + k in lines)
                return f, shown + w, lines.get(shown + w) or line
        if preset:
            w = written_path(cls, tuple(loc), lambda k: k in preset.lines)
            return preset.path, w, _line(preset.lines, w)
        w = written_path(cls, tuple(loc), lambda k: prefix + k in lines)
        return file, prefix + w, _line(lines, prefix + w)

    try:
        arch = validate(cls, base, file=file, prefix=prefix, lines=lines, origin=origin)
    except ConfigError as exc:
        probs.extend(exc.problems)
    probs.raise_if_any()
    return arch


def _line(lines: dict, key: tuple) -> int | None:
    for n in range(len(key), -1, -1):
        if tuple(key[:n]) in lines:
            return lines[tuple(key[:n])]
    return None


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def load_preset(name_or_path: str, overrides: dict[str, Any] | None = None) -> Architecture:
    """The architecture a preset describes, with optional dotted-path overrides."""
    return build_architecture({"preset": name_or_path, "overrides": overrides or {}}, prefix=())
