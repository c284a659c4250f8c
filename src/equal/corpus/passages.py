"""Splitting long texts into passages on paragraph boundaries."""

from __future__ import annotations

import re

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _pieces_no_longer_than(paragraph: str, max_chars: int) -> list[str]:
    """Break one over-long paragraph at sentence ends, then hard at max_chars."""
    if len(paragraph) <= max_chars:
        return [paragraph]
    out: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(paragraph):
        while len(sentence) > max_chars:  # a "sentence" with no end in sight
            if current:
                out.append(current)
                current = ""
            out.append(sentence[:max_chars])
            sentence = sentence[max_chars:]
        if current and len(current) + 1 + len(sentence) > max_chars:
            out.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}" if current else sentence
    if current:
        out.append(current)
    return out


def split_passages(text: str, max_chars: int) -> list[str]:
    """Split ``text`` into passages of at most ``max_chars`` characters.

    Paragraphs (separated by blank lines) are packed greedily into passages;
    a paragraph longer than ``max_chars`` is cut at sentence ends, and a
    sentence longer than that is cut hard. Passages keep their paragraph
    breaks. Returns ``[]`` for blank text.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be positive")
    paragraphs = [p.strip() for p in _PARAGRAPH_BREAK.split(text) if p.strip()]
    passages: list[str] = []
    current = ""
    for paragraph in paragraphs:
        for piece in _pieces_no_longer_than(paragraph, max_chars):
            if current and len(current) + 2 + len(piece) > max_chars:
                passages.append(current)
                current = piece
            else:
                current = f"{current}\n\n{piece}" if current else piece
    if current:
        passages.append(current)
    return passages
