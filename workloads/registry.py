"""Registry of workload builders: name -> function returning an ``OpGraph``.

Contract: ``@register_model("resnet50", family="cnn", description=...)`` on a function whose
keyword parameters are the builder's options (``batch``, ``image_size``, ``precision``...);
``build_model(name, **options)`` checks the options against the signature and raises
``ConfigError`` with a "did you mean" for an unknown name or option.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from workloads.errors import ConfigError, Problem, did_you_mean
from workloads.graph import OpGraph

__all__ = ["ModelEntry", "MODELS", "register_model", "build_model", "model_names"]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str  # cnn | transformer | llm | gemm
    description: str
    source: str  # where the shapes come from
    builder: Callable[..., OpGraph]

    @property
    def options(self) -> dict[str, object]:
        """Builder options and their defaults."""
        return {p.name: p.default for p in inspect.signature(self.builder).parameters.values()
                if p.kind is p.KEYWORD_ONLY}


MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, *, family: str, description: str, source: str):
    """Register a builder under ``name`` (lower case, as users write it in YAML)."""

    def deco(fn: Callable[..., OpGraph]) -> Callable[..., OpGraph]:
        if name in MODELS:
            raise ValueError(f"model '{name}' registered twice")
        MODELS[name] = ModelEntry(name, family, description, source, fn)
        return fn

    return deco


def model_names() -> list[str]:
    _load_builtin()
    return sorted(MODELS)


def build_model(name: str, **options) -> OpGraph:
    """Build the named model with ``options`` (keyword options of its builder)."""
    _load_builtin()
    entry = MODELS.get(name) or MODELS.get(name.lower())
    if entry is None:
        raise ConfigError(Problem(None, "workload.model", f"'{name}' is not a known model; "
                                  f"available: {', '.join(sorted(MODELS))}",
                                  hint=did_you_mean(name, MODELS)))
    allowed = entry.options
    bad = [k for k in options if k not in allowed]
    if bad:
        raise ConfigError([Problem(None, f"workload.{k}", f"option not accepted by model '{entry.name}'"
                                   f" (accepts: {', '.join(allowed)})", hint=did_you_mean(k, allowed))
                           for k in bad])
    return entry.builder(**options)


def _load_builtin() -> None:
    # importing the builder modules registers them (one explicit import per module)
    from workloads import cnn  # noqa: F401
    from workloads import llm  # noqa: F401
    from workloads import attention, llm_layer  # noqa: F401  (FuseMax attention workloads, one-layer LLMs)
    from workloads import vit  # noqa: F401  (Vision Transformers)
