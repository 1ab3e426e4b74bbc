"""YAML reading that remembers where each key was written.

Contract: ``load_yaml(path)`` returns ``(data, lines)``: the plain data (dicts, lists, scalars)
and a map from key-path tuples to 1-based line numbers, so that a validation error can point at
the line the user wrote. Malformed YAML, duplicate keys, a missing or unreadable file all raise
``ConfigError`` naming the file and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from workloads.errors import ConfigError, Problem

__all__ = ["load_yaml", "parse_yaml", "dump_yaml"]


class _Loader(yaml.SafeLoader):
    pass


def _walk(loader: yaml.SafeLoader, node: yaml.Node, path: tuple, lines: dict, dups: list) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                dups.append((path, key_node.start_mark.line + 1, f"key {key!r} is not a name"))
                continue
            if key in out:
                dups.append((path + (key,), key_node.start_mark.line + 1,
                             f"duplicate key '{key}' (first written on line {lines[path + (key,)]})"))
                continue
            lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _walk(loader, value_node, path + (key,), lines, dups)
            lines[path + (key,)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(loader, item, path + (i,), lines, dups) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, file: str = "<string>") -> tuple[Any, dict]:
    """Parse YAML text; see ``load_yaml``."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        lines: dict = {}
        dups: list = []
        data = None if node is None else _walk(loader, node, (), lines, dups)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(Problem(file, "", f"malformed YAML: {what}", line)) from None
    finally:
        loader.dispose()
    if dups:
        raise ConfigError([Problem(file, ".".join(map(str, p)), m, ln) for p, ln, m in dups])
    return data, lines


def load_yaml(path: str | Path) -> tuple[Any, dict]:
    """Read a YAML file; returns (data, {key path tuple: line})."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(Problem(str(path), "", "file not found")) from None
    except IsADirectoryError:
        raise ConfigError(Problem(str(path), "", "is a directory, expected a YAML file")) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(Problem(str(path), "", f"cannot read: {exc}")) from None
    return parse_yaml(text, str(path))


def dump_yaml(data: Any) -> str:
    """YAML text for plain data, keys in insertion order."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
