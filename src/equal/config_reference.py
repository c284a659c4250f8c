"""The configuration reference (docs/configuration.md), generated from the config models themselves.

``equal config-reference > docs/configuration.md`` rewrites it; a test fails when the
file and the models disagree, so the reference cannot go stale.
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from equal.config import RunConfig


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(_type_name(a) for a in args)
    if origin in (list, tuple):
        return f"{origin.__name__} of {_type_name(args[0])}" if args else origin.__name__
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "(section)"
    return f"`{value}`"


def reference_markdown() -> str:
    """The whole reference page as Markdown."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from `src/equal/config.py` by `equal config-reference`; do not edit by hand.",
        "",
        "A config is YAML with the sections below; every key is optional except `corpus.path` and "
        "`reference.path`. Unknown keys are errors. A CLI flag overrides its key (see `equal run --help`), "
        "and `equal validate CONFIG` prints a config with every default filled in.",
        "",
    ]
    for name, field in RunConfig.model_fields.items():
        model = field.annotation
        if not (inspect.isclass(model) and issubclass(model, BaseModel)):
            lines += [f"## `{name}`", "", f"{field.description or ''} Type {_type_name(model)}, default "
                      f"{_default(field)}.", ""]
            continue
        lines += [f"## `{name}`", ""]
        doc = model.__dict__.get("__doc__")  # the section's own docstring, not BaseModel's
        if doc:
            lines += [inspect.cleandoc(doc), ""]
        lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for key, sub in model.model_fields.items():
            description = (sub.description or "").replace("|", "\\|")
            lines.append(f"| `{name}.{key}` | {_type_name(sub.annotation)} | {_default(sub)} | {description} |")
        lines.append("")
    return "\n".join(lines)
