"""Strict, typed configuration: frozen dataclasses loaded from YAML with ``yaml.safe_load``.

Every subsystem declares its settings as a frozen dataclass with defaults (the only place
defaults live). ``from_mapping`` builds one from a nested dict and rejects unknown keys,
missing required keys and values of the wrong type with a ``ConfigError`` naming the key.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or mapping is invalid; the message names the offending key."""


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping safely. Raises ConfigError on a missing file, bad YAML, a key written
    twice in one mapping (plain YAML silently keeps the last) or a non-mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    loader = None
    try:  # what yaml.safe_load does, with a look at the parsed tree before it becomes Python objects
        loader = yaml.SafeLoader(path.read_text(encoding="utf-8"))
        node = loader.get_single_node()
        if _expanded_size(node) > MAX_YAML_NODES:
            raise ConfigError(f"{path}: expands to more than {MAX_YAML_NODES} YAML nodes through aliases "
                              "(an alias bomb?); write the values out")
        duplicate = _duplicate_key(node)
        if duplicate:
            raise ConfigError(f"{path}: key {duplicate} is written twice in one mapping")
        data = loader.construct_document(node) if node is not None else None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    finally:
        if loader is not None:
            loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


MAX_YAML_NODES = 100_000  # a config expands to far fewer; an alias bomb to billions


def _duplicate_key(node: yaml.Node | None) -> str | None:
    """The first mapping key of a composed YAML tree written twice in its mapping, as
    "'name' (line N)", or None. Each node is visited once (aliases share nodes), so an alias
    bomb costs linear time here."""
    seen_nodes: set[int] = set()
    stack = [node] if node is not None else []
    while stack:
        current = stack.pop()
        if id(current) in seen_nodes:
            continue
        seen_nodes.add(id(current))
        if isinstance(current, yaml.MappingNode):
            keys: set[str] = set()
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode) and key.value != "<<":  # "<<" merges, may repeat
                    if key.value in keys:
                        return f"{key.value!r} (line {key.start_mark.line + 1})"
                    keys.add(key.value)
            stack.extend(value for _, value in reversed(current.value))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(reversed(current.value))
    return None


def _expanded_size(node: yaml.Node | None) -> int:
    """Number of nodes the tree has once every alias is expanded (memoised, linear time)."""
    sizes: dict[int, int] = {}

    def size(current: yaml.Node) -> int:
        if id(current) not in sizes:
            sizes[id(current)] = 1  # a placeholder breaks recursive aliases
            if isinstance(current, yaml.MappingNode):
                children = [n for pair in current.value for n in pair]
            elif isinstance(current, yaml.SequenceNode):
                children = list(current.value)
            else:
                children = []
            sizes[id(current)] = min(1 + sum(size(c) for c in children), 10 * MAX_YAML_NODES)
        return sizes[id(current)]

    return size(node) if node is not None else 0


def from_mapping(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass `cls` from `data` (a mapping), recursively and strictly."""
    label = where or cls.__name__
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields), key=repr)  # keys of any type (YAML allows 1:, null:)
    if unknown:
        raise ConfigError(f"{label}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{label}.{name}" if where else name)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # missing required field
        raise ConfigError(f"{label}: {exc}") from None
    except ValueError as exc:  # the dataclass's own __post_init__ validation
        raise ConfigError(f"{label}: {exc}") from None


def to_mapping(obj: Any) -> Any:
    """Dataclass (possibly nested) -> plain dict/list/scalars, suitable for YAML or JSON."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_mapping(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_mapping(v) for k, v in obj.items()}
    return obj


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} matches none of {args}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {list(args)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        items = [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, key)
    if hint is Any:
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    return value


def load_config(cls: type[T], path: str | Path, section: str | None = None) -> T:
    """Load dataclass `cls` from a YAML file (optionally one top-level `section` of it)."""
    data = load_yaml(path)
    if section is not None:
        data = data.get(section, {})
    return from_mapping(cls, data, where=f"{Path(path).name}" + (f":{section}" if section else ""))
