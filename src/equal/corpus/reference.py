"""Reading the reference set: examples of the downstream task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from equal.corpus.readers import read_records
from equal.errors import InputError
from equal.records import QAPair
from equal.stats import Stats
from equal.text import sanitize_value

# Field pairs accepted for (question, answer), tried in order.
_FIELD_PAIRS = (("question", "answer"), ("prompt", "output"), ("prompt", "completion"),
                ("instruction", "output"), ("problem", "solution"))


def pair_from_record(record: dict[str, Any]) -> QAPair | None:
    """Read one question-answer pair from a record, or ``None`` if it holds none.

    Accepts ``question``/``answer``, ``prompt``/``output`` (and a few common
    aliases), or chat ``messages`` (the first user and the first assistant turn).
    """
    for q_key, a_key in _FIELD_PAIRS:
        q, a = record.get(q_key), record.get(a_key)
        if isinstance(q, str) and isinstance(a, str) and q.strip() and a.strip():
            return QAPair(question=q.strip(), answer=a.strip())
    messages = record.get("messages")
    if isinstance(messages, list):
        user = next((m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"), None)
        bot = next((m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "assistant"), None)
        if isinstance(user, str) and isinstance(bot, str) and user.strip() and bot.strip():
            return QAPair(question=user.strip(), answer=bot.strip())
    return None


def read_reference(
    path: str | Path, *, fmt: str = "auto", min_examples: int = 10, limit: int | None = None,
    stats: Stats | None = None,
) -> list[QAPair]:
    """Read the reference set of task examples.

    Examples are kept as given, repeats included, but only distinct ones count
    toward ``min_examples``: twenty copies of one example are one example of
    the task. Two examples are the same when their question and answer are,
    whitespace aside.

    Args:
        path: a JSONL/Parquet/CSV file of examples.
        fmt: file format or ``auto``.
        min_examples: refuse a set with fewer distinct usable examples than this.
        limit: keep at most this many examples (in file order).
        stats: receives ``reference_read``, ``reference_skipped``,
            ``reference_duplicates`` (repeats of an earlier example) and the
            repairs of examples whose text held lone surrogates or NULs
            (``repaired_surrogates``, ``repaired_nul``; see :mod:`equal.text`).

    Raises:
        InputError: the file is unreadable or holds fewer than ``min_examples`` distinct pairs.
    """
    stats = stats if stats is not None else Stats()
    pairs: list[QAPair] = []
    distinct: set[tuple[str, str]] = set()
    for i, raw in enumerate(read_records(path, fmt, stats)):
        record, repairs = sanitize_value(raw)
        pair = pair_from_record(record)
        if pair is None:
            stats.inc("reference_skipped")
            continue
        for name in sorted(repairs):
            stats.inc(name)
        pair.document_id = str(record.get("id", i))
        pairs.append(pair)
        distinct.add((" ".join(pair.question.split()), " ".join(pair.answer.split())))
        if limit is not None and len(pairs) >= limit:
            break
    stats.inc("reference_read", len(pairs))
    if len(pairs) > len(distinct):
        stats.inc("reference_duplicates", len(pairs) - len(distinct))
    if len(distinct) < min_examples:
        repeats = f" ({len(pairs) - len(distinct)} repeat earlier ones)" if len(pairs) > len(distinct) else ""
        raise InputError(
            f"the reference set {path} has {len(distinct)} distinct usable "
            f"{'example' if len(distinct) == 1 else 'examples'}{repeats}, fewer than the "
            f"{min_examples} needed; add examples with fields question/answer, prompt/output "
            "or chat messages (or lower reference.min_examples)"
        )
    return pairs
