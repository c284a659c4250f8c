"""JSON codecs derived from dataclass fields, for the bench's files.

A record is a (frozen) dataclass of JSON-able values, nested records, lists of them
and optionals. ``to_json`` and ``from_json`` read the field list, so a key is named
once, in the class. Unknown keys in a file are ignored (a newer writer may add
some); a missing key takes the field's default, or is an error naming it.

This module imports only the standard library: the GPU script loads the downstream
measurement by path, without equal installed, and that module uses these codecs.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

R = TypeVar("R")


def to_json(record: Any) -> Any:
    """A dataclass (or list, dict, plain value) as JSON-able values, field by field."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: to_json(getattr(record, f.name)) for f in dataclasses.fields(record)}
    if isinstance(record, (list, tuple)):
        return [to_json(v) for v in record]
    if isinstance(record, dict):
        return {k: to_json(v) for k, v in record.items()}
    return record


def from_json(cls: type[R], data: dict[str, Any]) -> R:
    """``data`` (one JSON object) as a ``cls``, with nested records and lists of them rebuilt.

    Raises:
        ValueError: a field without default is missing.
    """
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{cls.__name__}: the key {f.name!r} is missing")
            continue
        values[f.name] = _decode(hints[f.name], data[f.name])
    return cls(**values)


def _decode(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _decode(inner[0], value) if len(inner) == 1 else value
    if origin in (list, tuple):
        (item, *_) = typing.get_args(hint) or (Any,)
        decoded = [_decode(item, v) for v in value]
        return tuple(decoded) if origin is tuple else decoded
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_json(hint, value)  # type: ignore[arg-type]
    if hint is float and isinstance(value, int):
        return float(value)
    return value
