"""Optional dependencies: import them, or say which extra to install."""

from __future__ import annotations

import importlib
from typing import Any

from workloads.errors import ConfigError, Problem

__all__ = ["require", "EXTRAS"]

# module -> (pip extra, what needs it)
EXTRAS = {
    "optuna": ("dse", "search: sections (optuna samplers)"),
    "gymnasium": ("dse", "the Gym environment"),
    "distributed": ("cluster", "the Dask backend (--cluster)"),
    "matplotlib": ("plots", "plots"),
}


def require(module: str, path: str = "", file: str | None = None) -> Any:
    """Import ``module`` or raise ``ConfigError`` naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra, what = EXTRAS.get(module.split(".")[0], ("dse", module))
        raise ConfigError(Problem(file, path, f"{what} need{'s' if not what.endswith('s') else ''} "
                                  f"'{module.split('.')[0]}', which is not installed "
                                  f"(pip install 'tessera[{extra}]')")) from None
