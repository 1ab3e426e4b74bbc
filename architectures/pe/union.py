"""``SystolicArray.pe``'s type: the discriminated union on ``kind`` of the kinds in ``PE_KINDS``.

``kind`` left out means ``mac``, so presets written before the union still load. Validation
problems are reported at ``pe.<field>`` with the chosen kind's keys as hints. ``AnyPE`` is the
model configuration code sees (every kind's fields); ``pe_adapter()`` validates a PE alone.
Nothing here lists the kinds (only ``mac`` is named, as the default): the union follows the
registry (``architectures.pe.registry``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Union

from pydantic import Discriminator, Tag

from architectures.pe.registry import PE_KINDS
from workloads.schema import Schema

__all__ = ["PEKind", "AnyPE", "pe_adapter"]


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return value.get("kind", "mac")
    return getattr(value, "kind", "mac")


PEKind = Annotated[Union[tuple(Annotated[cls, Tag(name)] for name, cls in PE_KINDS.items())],
                   Discriminator(_kind_of, custom_error_type="pe_kind",
                                 custom_error_message=f"unknown PE kind; kinds: {', '.join(PE_KINDS)}")]


def _kind_errors(value: Any, handler) -> Any:
    """Validate with the kind's class; report problems at ``pe.<field>`` (without the union's
    tag) with the kind's own keys as hints. A cross-field rule of a kind (a model validator)
    names its field by raising ``FieldProblems``; one that names none is reported at
    ``pe.kind``, never at ``pe.`` (an empty key)."""
    from pydantic import ValidationError

    from workloads.schema import FieldProblems

    try:
        return handler(value)
    except ValidationError as exc:
        kind = _kind_of(value)
        items = []
        for err in exc.errors(include_url=False):
            loc = [str(p) for p in err["loc"] if not str(p).startswith("function-")]
            if loc and loc[0] == kind:
                loc = loc[1:]
            inner = (err.get("ctx") or {}).get("error")
            if isinstance(inner, FieldProblems):  # a model validator naming its fields
                items.extend((".".join(loc + [path]), msg) for path, msg in inner.items)
                continue
            loc, msg = _message(err, loc, kind)
            items.append((".".join(loc) or "kind", msg))
        raise FieldProblems(items) from None


def _message(err: dict, loc: list[str], kind: str) -> tuple[list[str], str]:
    """One pydantic error of a PE kind as (key path under ``pe``, message)."""
    from workloads.errors import did_you_mean

    cls = PE_KINDS.get(kind)
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if err["type"] == "extra_forbidden" and cls is not None:
        names = [n for n in cls.model_fields]
        hint = did_you_mean(loc[-1], names)
        msg = (f"unknown key '{loc[-1]}' for pe kind '{kind}'" + (f" ({hint})" if hint else
               f"; its keys: {', '.join(names)}"))
    elif err["type"] == "pe_kind":
        msg = f"'{kind}' is not a PE kind; kinds: {', '.join(PE_KINDS)}"
        hint = did_you_mean(str(kind), PE_KINDS)
        msg += f" ({hint})" if hint else ""
        loc = ["kind"]
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif err["type"] == "literal_error":
        msg = f"expected one of {err.get('ctx', {}).get('expected', '')}, found {err.get('input')!r}"
    elif err["type"] not in ("value_error", "assertion_error"):
        msg = f"{msg[0].lower()}{msg[1:]}, found {err.get('input')!r}"
    return loc, msg


_PEUnion = PEKind


class _AnyPEBase(Schema):
    """What configuration code sees of the ``pe`` field: every kind's fields, so that dotted
    paths (``pe.lanes``) and short keys (``energy_per_cycle``) resolve whichever kind is
    chosen (``workloads.schema`` follows one model per field). Validation is the discriminated
    union of the kinds; no ``AnyPE`` object is ever built."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source, handler):
        from pydantic_core import core_schema

        return core_schema.no_info_wrap_validator_function(_kind_errors, handler.generate_schema(_PEUnion))


def _any_pe() -> type:
    from pydantic import create_model

    fields: dict[str, Any] = {}
    for kind in PE_KINDS.values():
        for name, info in kind.model_fields.items():
            fields.setdefault(name, (Any, info))
    return create_model("AnyPE", __base__=_AnyPEBase, **fields)


AnyPE = _any_pe()


@lru_cache(maxsize=1)
def pe_adapter():
    from pydantic import TypeAdapter

    return TypeAdapter(PEKind)
