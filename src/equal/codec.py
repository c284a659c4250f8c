"""JSON codecs read off dataclass fields: the files equal writes name each key once, in their record.

A record is a dataclass of JSON values (``int``, ``float``, ``str``, ``bool``,
``Any``), literals, nested records, and lists, tuples, ``str``-keyed dicts and
optionals of them. :func:`to_json` writes its fields in their order;
:func:`from_json` reads them back, checking each value's type against the
field's, so a file a user edited says which key is wrong::

    ValueError: 'cluster' is not an integer: 'x'

A key the record does not name is ignored (a newer writer may add one); a key
that is missing takes the field's default, or is an error. Where one key needs
a rule of its own, the field says so once, with :func:`json_key` metadata: a key
left out while its value is ``None``, a missing key read as a value, a dict that
holds every key the record does not name, a description for its error messages.

Standard library only: the downstream measurement is loaded on a GPU machine
without equal's dependencies (``benchmarks/downstream_gpu.py``), and its records
use these codecs.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

R = TypeVar("R")

_RULE = "equal.codec"
_MISSING: Any = dataclasses.MISSING
_UNSET: Any = object()  # no ``when_missing`` value (``None`` is one)


@dataclasses.dataclass(frozen=True)
class _Rule:
    omit_none: bool = False
    when_missing: Any = _UNSET
    rest: bool = False
    what: str | None = None


_PLAIN = _Rule()


def json_key(*, omit_none: bool = False, when_missing: Any = _UNSET, rest: bool = False,
             what: str | None = None) -> dict[str, Any]:
    """Field metadata for a key with a rule of its own: ``field(metadata=json_key(...))``.

    Args:
        omit_none: the key is left out of the JSON while the value is ``None``.
        when_missing: the value a missing key reads as (for a field that has no default).
        rest: the field is a ``dict`` of every key the record does not name: written in
            its place among the fields, filled with the unnamed keys when read.
        what: what the value must be, in the error for a wrong one (default: read off the type).
    """
    return {_RULE: _Rule(omit_none, when_missing, rest, what)}


def _rule(f: dataclasses.Field[Any]) -> _Rule:
    rule: _Rule = f.metadata.get(_RULE, _PLAIN)
    return rule


def to_json(record: Any) -> Any:
    """A record (or a list, dict or plain value of them) as JSON values, field by field in their order."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(record):
            value, rule = getattr(record, f.name), _rule(f)
            if rule.rest:  # in place, as ``{..., **rest, ...}`` would put them
                out.update((k, to_json(v)) for k, v in value.items())
            elif not (rule.omit_none and value is None):
                out[f.name] = to_json(value)
        return out
    if isinstance(record, (list, tuple)):
        return [to_json(v) for v in record]
    if isinstance(record, dict):
        return {k: to_json(v) for k, v in record.items()}
    return record


def from_json(cls: type[R], row: Any) -> R:
    """``row`` (one JSON object) as a ``cls``, every value checked against its field's type.

    Raises:
        ValueError: ``row`` is not an object, a key without default is missing, or a
            value is not of its field's type; the message names the key.
    """
    if not isinstance(row, Mapping):
        raise ValueError(f"not a JSON object (a {type(row).__name__})")
    values: dict[str, Any] = {}
    fields, hints = _fields(cls)
    for f in fields:
        rule = _rule(f)
        if rule.rest:
            named = {g.name for g in fields}
            values[f.name] = {k: v for k, v in row.items() if k not in named}
        elif f.name in row:
            values[f.name] = _value(hints[f.name], row[f.name], f.name, rule.what)
        elif rule.when_missing is not _UNSET:
            values[f.name] = rule.when_missing
        elif f.default is _MISSING and f.default_factory is _MISSING:
            raise ValueError(f"no {f.name!r}")
    return cls(**values)


_FIELDS: dict[type, tuple[tuple[dataclasses.Field[Any], ...], dict[str, Any]]] = {}


def _fields(cls: type) -> tuple[tuple[dataclasses.Field[Any], ...], dict[str, Any]]:
    """A record's fields and their resolved types, worked out once per class."""
    if cls not in _FIELDS:
        _FIELDS[cls] = dataclasses.fields(cls), typing.get_type_hints(cls)
    return _FIELDS[cls]


def _value(hint: Any, value: Any, key: str, what: str | None) -> Any:
    try:
        return _decode(hint, value)
    except _Wrong:
        raise ValueError(f"{key!r} is not {what or _describe(hint)}: {value!r}") from None


class _Wrong(Exception):
    """A value that is not of its type (turned into a ValueError naming the key)."""


def _decode(hint: Any, value: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for member in (a for a in args if a is not type(None)):
            try:
                return _decode(member, value)
            except _Wrong:
                continue
        raise _Wrong
    if origin is typing.Literal:
        if value in args and type(value) in {type(a) for a in args}:  # True is not 1
            return value
        raise _Wrong
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise _Wrong
        item = args[0] if args else Any
        items = [_decode(item, v) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise _Wrong
        item = args[1] if args else Any
        return {k: _decode(item, v) for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise _Wrong
        return from_json(hint, value)  # type: ignore[arg-type]  # its own errors name its own keys
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Wrong
    if isinstance(value, bool) or not isinstance(value, _SCALARS.get(hint, hint)):
        raise _Wrong
    return float(value) if hint is float else value


_SCALARS: dict[Any, tuple[type, ...]] = {float: (int, float), int: (int,), str: (str,)}
_NAMES = {int: ("an integer", "integers"), float: ("a number", "numbers"), str: ("a string", "strings"),
          bool: ("true or false", "booleans")}


def _describe(hint: Any, plural: bool = False) -> str:
    """What a value of type ``hint`` is, in words: ``an integer``, ``a list of strings``, ``a number or null``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in _NAMES:
        return _NAMES[hint][plural]
    if origin in (typing.Union, types.UnionType):
        text = " or ".join(_describe(a, plural) for a in args if a is not type(None))
        return text + " or null" if type(None) in args else text
    if origin is typing.Literal:
        return f"one of {', '.join(map(str, args))}"
    if origin in (list, tuple, dict):
        item = (args[1] if origin is dict else args[0]) if args else Any
        kind = ("lists", "a list") if origin in (list, tuple) else ("objects", "an object")
        if plural or item is Any or dataclasses.is_dataclass(item):
            return kind[0] if plural else kind[1]
        return f"{kind[1]} of {_describe(item, True)}"
    if dataclasses.is_dataclass(hint):
        return "objects" if plural else "an object"
    return "values" if plural else "a value"


class JsonRecord:
    """A dataclass whose JSON form is read off its fields: ``to_json`` and ``from_json`` come with it."""

    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object, its keys in field order."""
        out: dict[str, Any] = to_json(self)
        return out

    @classmethod
    def from_json(cls: type[R], row: Any) -> R:
        """A JSON object as this record; a ``ValueError`` names a missing or mistyped key."""
        return from_json(cls, row)
