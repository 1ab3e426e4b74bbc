"""Validated configuration objects: YAML dict -> frozen pydantic model, with errors users can act on.

Contract:
- Every config object derives from ``Schema``: frozen, keyword-only, unknown keys are errors.
- Fields whose name carries a unit (``size_bytes``, ``bandwidth_bytes_per_s``, ``freq_hz``)
  are declared with ``quantity(kind, ...)``: YAML may write ``"24 MiB"`` and may use the short
  key (``size``, ``bandwidth``, ``freq``); the object always holds base units.
- ``validate(cls, data, file=..., prefix=..., lines=...)`` returns the object or raises one
  ``ConfigError`` listing every problem with file, line, key path, expected and found, and a
  "did you mean" for unknown keys.
- ``canonicalize(cls, data)`` renames short keys to field names; ``resolve_path(cls, "a.b")``
  turns a dotted path written by a user into the canonical path (or says what is wrong).
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from workloads.errors import ConfigError, Problem, Problems, did_you_mean

__all__ = ["Schema", "FieldProblems", "quantity", "validate", "canonicalize", "resolve_path", "field_names",
           "problems_from_validation", "written_path"]


class Schema(BaseModel):
    """Base of every validated config object: frozen, keyword-only, no unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True,
                              validate_default=True, protected_namespaces=())


class FieldProblems(ValueError):
    """Raised by cross-field validators: a list of (dotted field path, message) pairs.

    Loaders report each pair against the file and key where that field was written.
    """

    def __init__(self, items: list[tuple[str, str]]):
        self.items = list(items)
        super().__init__("; ".join(f"{p}: {m}" for p, m in self.items))


def _quantity_validator(kind: str, integer: bool):
    from architectures.units import UnitError, parse_quantity  # architectures owns the unit table

    def check(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str) and value.strip().lower() in ("inf", "unlimited", "infinite"):
            return math.inf
        try:
            v = parse_quantity(value, kind)
        except UnitError as exc:
            raise ValueError(str(exc)) from None
        except TypeError:
            raise ValueError(f"expected a {kind}, found {type(value).__name__}") from None
        if integer and math.isfinite(v):
            if abs(v - round(v)) > 1e-6 * max(1.0, abs(v)):
                raise ValueError(f"expected a whole number of bytes, found {v:g}")
            return int(round(v))
        return v

    return check


def quantity(kind: str, description: str, *, default: Any = ..., alias: str | None = None,
             integer: bool = False, gt: float | None = None, ge: float | None = None) -> Any:
    """A field holding a physical quantity (see ``architectures.units.KINDS``).

    Returns an ``Annotated`` type; use as ``size_bytes: quantity("size", "...", alias="size")``.
    """
    base: Any = Union[int, float] if integer else float  # float only for inf ("unlimited")
    base = Annotated[base, Field(gt=gt, ge=ge)]
    if default is None:
        base = Union[base, None]
    f = Field(default, description=description,
              json_schema_extra={"unit_kind": kind, **({"short_key": alias} if alias else {})})
    return Annotated[base, BeforeValidator(_quantity_validator(kind, integer)), f]


# ---- walking model types ----------------------------------------------------------------

def _unwrap(tp: Any) -> Any:
    """Strip Annotated/Optional; return the model class, (dict, value type), (list, type) or None."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (Union, types.UnionType):
        models = [a for a in typing.get_args(tp) if a is not type(None)]
        for a in models:
            u = _unwrap(a)
            if u is not None:
                return u
        return None
    if origin in (dict, Mapping) or origin is typing.get_origin(Mapping[str, int]):
        return ("dict", typing.get_args(tp)[1])
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return ("list", args[0]) if args else None
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    return None


def field_names(cls: type[BaseModel]) -> dict[str, str]:
    """{accepted key: canonical field name} for a model (field names and short keys)."""
    out = {}
    for name, info in cls.model_fields.items():
        out[name] = name
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if extra.get("short_key"):
            out[extra["short_key"]] = name
    return out


def _field_type(cls: type[BaseModel], name: str) -> Any:
    return cls.model_fields[name].annotation if name in cls.model_fields else None


def canonicalize(cls: Any, data: Any) -> Any:
    """Rename short keys (``bandwidth``) to field names (``bandwidth_bytes_per_s``), recursively."""
    target = _unwrap(cls) if not (isinstance(cls, type) and issubclass(cls, BaseModel)) else cls
    if target is None or not isinstance(data, (dict, list)):
        return data
    if isinstance(target, tuple):
        kind, inner = target
        if kind == "dict" and isinstance(data, dict):
            return {k: canonicalize(inner, v) for k, v in data.items()}
        if kind == "list" and isinstance(data, list):
            return [canonicalize(inner, v) for v in data]
        return data
    if not isinstance(data, dict):
        return data
    names = field_names(target)
    out: dict = {}
    for key, value in data.items():
        canon = names.get(key, key)
        if canon in out and canon != key:
            # both forms written: keep the later one, as YAML users expect from overrides
            pass
        out[canon] = canonicalize(_field_type(target, canon), value) if canon in target.model_fields else value
    return out


def resolve_path(cls: type[BaseModel], dotted: str | tuple) -> tuple[tuple, str | None]:
    """Canonical key tuple for a user-written dotted path, and an error message or None."""
    parts = list(dotted.split(".")) if isinstance(dotted, str) else list(dotted)
    out: list = []
    current: Any = cls
    for i, part in enumerate(parts):
        target = current if (isinstance(current, type) and issubclass(current, BaseModel)) else _unwrap(current)
        if target is None:
            return tuple(out + parts[i:]), (
                f"'{'.'.join(map(str, out))}' is a value, it has no field '{part}'")
        if isinstance(target, tuple):
            out.append(part)
            current = target[1]
            continue
        names = field_names(target)
        if part not in names:
            hint = did_you_mean(part, names)
            msg = f"unknown key '{part}'" + (f" under '{'.'.join(map(str, out))}'" if out else "")
            return tuple(out + parts[i:]), msg + (f" ({hint})" if hint else "")
        canon = names[part]
        out.append(canon)
        current = _field_type(target, canon)
    return tuple(out), None


def written_path(cls: Any, loc: tuple, written: Any) -> tuple:
    """``loc`` (canonical field names, as validation reports them) spelled as the user wrote it:
    each field name is replaced by its short key (``energy_per_cycle`` for
    ``energy_pj_per_cycle``) where ``written(path so far + (key,))`` says that spelling was
    written, so that error messages show the user's key and find its line."""
    out: list = []
    current: Any = cls
    for part in loc:
        target = current if (isinstance(current, type) and issubclass(current, BaseModel)) else _unwrap(current)
        if isinstance(target, type) and str(part) in target.model_fields:
            spellings = [k for k, v in field_names(target).items() if v == part and k != part]
            out.append(next((k for k in spellings if written(tuple(out) + (k,))), part))
            current = _field_type(target, str(part))
            continue
        out.append(part)
        current = target[1] if isinstance(target, tuple) else current  # a union tag or a key: stay
    return tuple(out)


def _allowed_at(cls: type[BaseModel], loc: tuple) -> list[str]:
    current: Any = cls
    for part in loc:
        target = current if (isinstance(current, type) and issubclass(current, BaseModel)) else _unwrap(current)
        if target is None:
            return []
        if isinstance(target, tuple):
            current = target[1]
            continue
        names = field_names(target)
        if part not in names:
            # pydantic puts the union member's tag in loc; skip it
            continue
        current = _field_type(target, names[part])
    target = current if (isinstance(current, type) and issubclass(current, BaseModel)) else _unwrap(current)
    return list(field_names(target)) if isinstance(target, type) else []


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def problems_from_validation(exc: ValidationError, cls: type[BaseModel], *, file: str | None,
                             prefix: tuple = (), lines: dict | None = None,
                             origin: Any = None) -> list[Problem]:
    """Translate pydantic's errors into ``Problem``s with key paths and hints.

    ``origin(loc) -> (file, display path tuple, line)`` may re-attribute a path to another file
    (a value that came from a preset rather than from the experiment).
    """
    probs = Problems(file, lines)
    expanded = []
    for err in exc.errors(include_url=False):
        inner = (err.get("ctx") or {}).get("error")
        if isinstance(inner, FieldProblems):
            for path, message in inner.items:
                expanded.append({**err, "loc": tuple(err["loc"]) + tuple(path.split(".")),
                                 "msg": message, "ctx": {}})
        else:
            expanded.append(err)
    for err in expanded:
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # pydantic adds the union member name to loc for tagged unions; drop non-key parts
        etype = err["type"]
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if msg.startswith("Assertion failed, "):
            msg = msg[len("Assertion failed, "):]
        hint = None
        if etype == "extra_forbidden":
            key = loc[-1]
            allowed = _allowed_at(cls, loc[:-1])
            hint = did_you_mean(str(key), allowed)
            msg = f"unknown key '{key}'"
            if not hint and allowed:
                hint = "allowed: " + ", ".join(sorted(allowed)[:12])
        elif etype == "missing":
            msg = "required key is missing"
        elif etype in ("literal_error", "enum"):
            expected = err.get("ctx", {}).get("expected", "")
            found = err.get("input")
            hint = did_you_mean(str(found), [e.strip(" '") for e in expected.replace(" or ", ",").split(",")])
            msg = f"expected one of {expected}, found {_short(found)}"
        elif etype not in ("value_error", "assertion_error"):
            msg = f"{msg[0].lower()}{msg[1:]}, found {_short(err.get('input'))}"
        if origin is not None:
            f, display_path, line = origin(loc)
        else:
            shown = prefix + written_path(cls, loc, lambda k: prefix + k in probs.lines)
            f, display_path, line = file, shown, probs.line_of(shown)
        probs.items.append(Problem(f, ".".join(map(str, display_path)), msg, line, hint))
    return probs.items


def validate(cls: type[BaseModel], data: Any, *, file: str | None = None, prefix: tuple = (),
             lines: dict | None = None, origin: Any = None) -> Any:
    """Build ``cls`` from ``data`` (short keys allowed) or raise ``ConfigError``."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        where = ".".join(map(str, prefix))
        raise ConfigError(Problem(file, where, f"expected a mapping of keys, found {_short(data)}",
                                  (lines or {}).get(prefix)))
    try:
        return cls.model_validate(canonicalize(cls, data))
    except ValidationError as exc:
        raise ConfigError(problems_from_validation(exc, cls, file=file, prefix=prefix, lines=lines,
                                                   origin=origin)) from None
