"""Frozen dataclass configs from YAML: parsing, ``key=value`` overrides, and back to plain data.

:func:`parse_dataclass` builds a (nested, frozen) dataclass from the plain data a YAML file
holds, checking every value against the field annotations; :func:`apply_overrides` applies
``--set section.key=value`` overrides; :func:`to_plain` turns a config back into YAML-safe data.
Every error is a :class:`~unmask.errors.ConfigError` naming the field path (``model.size``),
what is wrong, and the keys a section accepts.

Hand-written rather than a library: ``dacite``'s unknown-key error carries no field path and
needs type hooks for YAML's ``1e-3`` strings and lists-as-tuples; pydantic (installed only as a
Gradio dependency) accepts ``"yes"`` for a bool and needs per-class settings to reject unknown
keys of plain dataclasses; OmegaConf returns its own containers. What is used here is the
stdlib (``dataclasses``, ``typing``) plus PyYAML.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from unmask.errors import ConfigError


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """The top-level mapping of a YAML file (an empty file gives ``{}``).

    Raises:
        ConfigError: the file cannot be read, is not YAML, or is not a mapping.
    """
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text("utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc}.") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a mapping of sections (train:, model:, …).")
    return raw


def parse_dataclass(cls: type, raw: Any, where: str = "") -> Any:
    """Build the (frozen, possibly nested) dataclass ``cls`` from plain YAML data.

    Unknown keys raise :class:`ConfigError` naming the key and the allowed ones; values are
    checked and coerced against the field annotations (``1e-3`` written in YAML becomes a float,
    lists become tuples). ``where`` is the path of ``raw`` in the whole config (``""`` at the top).
    """
    if isinstance(raw, cls):
        return raw
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where or 'the config'} must be a mapping of {cls.__name__} fields, "
                          f"got {type(raw).__name__}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key {_join(where, unknown[0])!r}" + (f" (and {unknown[1:]})" if unknown[1:] else "")
                          + f"; {where or 'the config'} accepts: {sorted(fields)}.{did_you_mean(unknown[0], fields)} "
                          "Check the spelling or the config's section.")
    hints = typing.get_type_hints(cls)
    values = {name: _coerce(hints[name], value, _join(where, name)) for name, value in raw.items()}
    missing = [n for n, f in fields.items() if n not in values and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where or 'the config'} is missing required key(s) {missing}.")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from exc


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest of ``choices`` to a misspelt ``name``, else ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """``value`` checked against (and converted to) the annotation ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return parse_dataclass(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of {args}.")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {list(args)}, got {value!r}.")
        return value
    if origin in (tuple, list, Sequence) or tp in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}.")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{where} must have {len(args)} items, got {len(value)}.")
            return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        return tuple(value)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {value!r}.")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}.")
        return value
    if tp in (int, float):
        return _number(tp, value, where)
    if tp is str and not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, got {value!r}.")
    return value


def _number(tp: type, value: Any, where: str) -> int | float:
    """An int or float from a YAML number or numeric string (PyYAML reads ``1e-3`` as a string)."""
    kind = "an integer" if tp is int else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{where} must be {kind}, got {value!r}.")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{where} must be {kind}, got {value!r}.") from None
    if tp is float:
        return number
    if not number.is_integer():
        raise ConfigError(f"{where} must be an integer, got {value!r}.")
    return int(number)


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to a nested config dict (copied)."""
    import yaml

    raw = copy.deepcopy(dict(raw))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set train.max_steps=100.")
        parts = key.strip().split(".")
        node = raw
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part} is not a section.")
            node = child
        node[parts[-1]] = yaml.safe_load(text) if text.strip() else None
    return raw


def to_plain(value: Any) -> Any:
    """Config values as YAML-safe plain types (dataclasses -> dicts, tuples -> lists, paths -> str)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


__all__ = ["apply_overrides", "did_you_mean", "parse_dataclass", "read_yaml", "to_plain"]
