"""Sanitising text where it enters a run: corpus records, reference examples, LLM answers.

Python strings can hold what UTF-8 cannot encode: a lone surrogate (``\\ud800``,
common in scraped web text and legal in JSON as an escape) makes every later
``str.encode()`` raise, in cache keys, tokenizers and output files alike. NUL
characters pass through JSON too and then truncate C strings downstream. Text is
therefore cleaned once, at the boundary, and each repair is reported so that
it can be counted in ``stats.json``:

- ``repaired_surrogates``: a text held surrogates; a well-ordered high/low
  pair is joined into the character it encodes, a lone one becomes U+FFFD.
- ``repaired_nul``: a text held NUL characters, which were dropped.
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT_CHARACTER = "\ufffd"
REPAIRED_SURROGATES = "repaired_surrogates"
REPAIRED_NUL = "repaired_nul"

_SURROGATE = re.compile("[\ud800-\udfff]")
_PAIR_OR_LONE = re.compile("([\ud800-\udbff][\udc00-\udfff])|[\ud800-\udfff]")


def _join_or_replace(match: re.Match[str]) -> str:
    pair = match.group(1)
    if pair is None:
        return REPLACEMENT_CHARACTER
    high, low = ord(pair[0]), ord(pair[1])
    return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))


def sanitize(text: str, *, drop_nul: bool = True) -> tuple[str, set[str]]:
    """``text`` made encodable as UTF-8, and the names of the repairs that changed it.

    Args:
        text: any string.
        drop_nul: also remove NUL characters (``\\x00``).

    Returns:
        The clean text and a subset of ``{"repaired_surrogates", "repaired_nul"}``
        (empty when the text was already clean; the text is then returned as is).
    """
    repairs: set[str] = set()
    if _SURROGATE.search(text):
        text = _PAIR_OR_LONE.sub(_join_or_replace, text)
        repairs.add(REPAIRED_SURROGATES)
    if drop_nul and "\x00" in text:
        text = text.replace("\x00", "")
        repairs.add(REPAIRED_NUL)
    return text, repairs


def sanitize_value(value: Any, *, drop_nul: bool = True) -> tuple[Any, set[str]]:
    """:func:`sanitize` applied to every string inside a JSON-like value (dict keys included).

    Lists, tuples and dicts are rebuilt only when something in them changed;
    other values (numbers, ``None``, bytes) are returned unchanged.
    """
    if isinstance(value, str):
        return sanitize(value, drop_nul=drop_nul)
    repairs: set[str] = set()
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            clean_key, key_repairs = sanitize_value(key, drop_nul=drop_nul)
            clean_item, item_repairs = sanitize_value(item, drop_nul=drop_nul)
            repairs |= key_repairs | item_repairs
            out[clean_key] = clean_item
        return (out if repairs else value), repairs
    if isinstance(value, (list, tuple)):
        items = []
        for item in value:
            clean_item, item_repairs = sanitize_value(item, drop_nul=drop_nul)
            repairs |= item_repairs
            items.append(clean_item)
        if not repairs:
            return value, repairs
        return (tuple(items) if isinstance(value, tuple) else items), repairs
    return value, repairs
