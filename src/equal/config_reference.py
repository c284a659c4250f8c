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

from equal.config import EXECUTOR_KINDS, EXTRACTION_BACKENDS, ExtractionBase, LLMExtractionBase, RunConfig, own_keys


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:  # a strict number with its bounds: the number's type
        return _type_name(args[0])
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


def _row(section: str, key: str, field: FieldInfo, type_name: str | None = None) -> str:
    description = (field.description or "").replace("|", "\\|")
    return f"| `{section}.{key}` | {type_name or _type_name(field.annotation)} | {_default(field)} | {description} |"


def _table(section: str, model: type[BaseModel], keys: list[str]) -> list[str]:
    return ["| key | type | default | meaning |", "|---|---|---|---|",
            *(_row(section, key, model.model_fields[key]) for key in keys), ""]


def _extraction(name: str, field: FieldInfo) -> list[str]:
    """The extraction section: the keys every extractor takes, then one table per extractor."""
    shared = list(ExtractionBase.model_fields)
    lines = [f"## `{name}`", "",
             f"{field.description or ''} A key of another extractor than the one set is an error that names the "
             "extractor it belongs to. A flag that sets another extractor than the file's (`--extractor openai` on "
             "a file written for `local`) leaves out the file's keys that only its own extractor takes, with a "
             "warning naming them, and keeps the shared ones.", "",
             "Every extractor takes:", "", "| key | type | default | meaning |", "|---|---|---|---|"]
    for key in shared:
        kinds = " \\| ".join(f"`{b}`" for b in EXTRACTION_BACKENDS) if key == "extractor" else None
        lines.append(_row(name, key, ExtractionBase.model_fields[key], kinds))
    llm = [b for b, model in EXTRACTION_BACKENDS.items() if issubclass(model, LLMExtractionBase)]
    lines += ["", f"The LLM extractors ({', '.join(f'`{b}`' for b in llm)}) take:", "",
              *_table(name, LLMExtractionBase, [k for k in LLMExtractionBase.model_fields if k not in shared])]
    for backend, model in EXTRACTION_BACKENDS.items():
        lines += [f"### `{name}.extractor: {backend}`", ""]
        doc = model.__dict__.get("__doc__")
        if doc:
            lines += [inspect.cleandoc(doc), ""]
        lines += _table(name, model, [key for key in model.model_fields if key in own_keys(backend)])
    return lines


def _executor(name: str, field: FieldInfo) -> list[str]:
    """The executor section: the kind, then the keys of each kind."""
    kinds = " \\| ".join(f"`{k}`" for k in EXECUTOR_KINDS)
    lines = [f"## `{name}`", "", field.description or "", "", "| key | type | default | meaning |", "|---|---|---|---|",
             _row(name, "kind", next(iter(EXECUTOR_KINDS.values())).model_fields["kind"], kinds), ""]
    for kind, model in EXECUTOR_KINDS.items():
        keys = [key for key in model.model_fields if key != "kind"]
        lines += [f"### `{name}.kind: {kind}`", "", inspect.cleandoc(model.__dict__.get("__doc__") or ""), ""]
        lines += _table(name, model, keys) if keys else ["It takes no other key.", ""]
    return lines


def reference_markdown() -> str:
    """The whole reference page as Markdown."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from `src/equal/config.py` by `equal config-reference`; do not edit by hand.",
        "",
        "A config is YAML with the sections below; every key is optional except `corpus.path` and "
        "`reference.path`. Unknown keys are errors, and so is a key set twice in one section (YAML would keep "
        "the last one without a word). Numbers are taken as written: `true`/`yes` is no number, `5` no `true`, "
        "`\"5\"` and `5.0` no int, and `.nan`/`.inf` no float; each count has the bounds its row says. "
        "A CLI flag overrides its key (see `equal run --help`), and `equal validate CONFIG` prints a config "
        "with every default filled in.",
        "",
    ]
    for name, field in RunConfig.model_fields.items():
        model = field.annotation
        if name == "extraction":
            lines += _extraction(name, field)
            continue
        if name == "executor":
            lines += _executor(name, field)
            continue
        if not (inspect.isclass(model) and issubclass(model, BaseModel)):
            lines += [f"## `{name}`", "", f"{field.description or ''} Type {_type_name(model)}, default "
                      f"{_default(field)}.", ""]
            continue
        lines += [f"## `{name}`", ""]
        doc = model.__dict__.get("__doc__")  # the section's own docstring, not BaseModel's
        if doc:
            lines += [inspect.cleandoc(doc), ""]
        lines += _table(name, model, list(model.model_fields))
    return "\n".join(lines)
