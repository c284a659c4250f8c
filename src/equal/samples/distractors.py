"""Distractors for the benchmark: real text close to a reference set in embedding space, useless to extract from.

Part of the sample and benchmark data builders (:mod:`equal.samples`), not of the library.

Similarity ranking picks documents by their topic. Some documents are on the topic and still hold
nothing an extractor can turn into a question and its answer. Four kinds, all from documentation
installed on this machine (Debian ``python3-doc`` and ``python-sympy-doc``):

- ``api-index``: the general and module indexes of the Python and SymPy documentation (lists of
  names with the page that defines them);
- ``toc``: tables of contents (Python's ``contents.html``, SymPy's module index pages);
- ``whats-new``: the lists of what changed in each Python release (``whatsnew/3.*``): changelog
  bullets, mostly "X was removed", "Y is deprecated";
- ``formulas``: the ``.. math::`` blocks of the SymPy documentation, one after another, without the
  problems or text around them.

``distractor_passages`` cuts each into passages of about ``max_chars``; the benchmark keeps, for
each reference set, the ones nearest to it (``equal make-bench --distractors N``), so that a
strategy that ranks by similarity meets them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from equal.errors import InputError

PYTHON_HTML = Path("/usr/share/doc/python3.11/html")
SYMPY_HTML = Path("/usr/share/doc/python-sympy-doc/html")


class _Text(HTMLParser):
    """The visible text of an HTML page's main content, one line per block."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self._skip = 0
        self._current: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "nav", "header", "footer"):
            self._skip += 1
        if tag in ("li", "p", "dt", "dd", "tr", "h1", "h2", "h3", "div", "br"):
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "nav", "header", "footer") and self._skip:
            self._skip -= 1
        if tag in ("li", "p", "dt", "dd", "tr", "h1", "h2", "h3", "div"):
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._current.append(data)

    def _flush(self) -> None:
        line = " ".join("".join(self._current).split())
        if line:
            self.lines.append(line)
        self._current = []


def html_lines(path: Path) -> list[str]:
    parser = _Text()
    parser.feed(path.read_text(errors="replace"))
    parser._flush()
    return [line for line in parser.lines if len(line) > 1]


def _pack(lines: list[str], max_chars: int, sep: str = "\n") -> list[str]:
    """Consecutive lines joined into passages of at most about ``max_chars``."""
    passages, current = [], ""
    for line in lines:
        if current and len(current) + len(line) + len(sep) > max_chars:
            passages.append(current)
            current = ""
        current = f"{current}{sep}{line}" if current else line[:max_chars]
    if current:
        passages.append(current)
    return [p for p in passages if len(p) >= max_chars // 3]


def _whats_new(root: Path) -> list[str]:
    """The bullet items of the "What's New in Python 3.x" pages (changelog-like lists)."""
    bullets: list[str] = []
    for file in sorted((root / "_sources" / "whatsnew").glob("3.*.rst.txt")):
        item: list[str] = []
        for line in file.read_text(errors="replace").splitlines():
            if re.match(r"^\*\s", line):
                if item:
                    bullets.append(" ".join(item))
                item = [line[2:].strip()]
            elif item and line.startswith("  ") and line.strip():
                item.append(line.strip())
            elif item:
                bullets.append(" ".join(item))
                item = []
    return ["* " + re.sub(r":[a-z:]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`", r"\1", b) for b in bullets]


def _formulas(root: Path) -> list[str]:
    """The ``.. math::`` blocks of the SymPy documentation's sources, without their surrounding text."""
    blocks: list[str] = []
    for file in sorted((root / "_sources").rglob("*.txt")):
        lines = file.read_text(errors="replace").splitlines()
        for i, line in enumerate(lines):
            inline = re.match(r"^\s*\.\. math::\s*(\S.*)$", line)
            if inline:
                blocks.append(inline.group(1).strip())
            elif re.match(r"^\s*\.\. math::\s*$", line):
                body = []
                for follow in lines[i + 1:]:
                    if follow.strip() and not follow.startswith((" ", "\t")):
                        break
                    if follow.strip() and not follow.strip().startswith(":"):
                        body.append(follow.strip())
                if body:
                    blocks.append(" ".join(body))
    return blocks


def distractor_passages(max_chars: int = 1200) -> list[dict]:
    """Every distractor passage, with ``id``, ``text``, ``source`` (``distractor``) and ``kind``."""
    for root, package in ((PYTHON_HTML, "python3-doc"), (SYMPY_HTML, "python-sympy-doc")):
        if not root.is_dir():
            raise InputError(f"{root} is missing; install Debian's {package}")
    kinds = {
        "api-index": [line for page in sorted(PYTHON_HTML.glob("genindex-*.html")) + [PYTHON_HTML / "py-modindex.html",
                                                                                      SYMPY_HTML / "genindex.html"]
                      if page.exists() for line in html_lines(page)],
        "toc": [line for page in [PYTHON_HTML / "contents.html", *sorted((SYMPY_HTML / "modules").glob("index.html")),
                                  *sorted((SYMPY_HTML / "reference").rglob("index.html"))]
                if page.exists() for line in html_lines(page)],
        "whats-new": _whats_new(PYTHON_HTML),
        "formulas": _formulas(SYMPY_HTML),
    }
    rows = []
    for kind, lines in kinds.items():
        for i, text in enumerate(_pack(lines, max_chars, sep="\n" if kind != "formulas" else "\n\n")):
            rows.append({"id": f"distractor:{kind}:{i}", "text": text, "source": "distractor", "kind": kind})
    return rows


def nearest_distractors(rows: Sequence[dict], vectors: np.ndarray, reference: np.ndarray, n: int) -> list[dict]:
    """The ``n`` distractor passages with the highest mean cosine similarity to the reference.

    ``vectors`` ``(len(rows), d)`` and ``reference`` ``(m, d)`` are unit vectors of the benchmark's
    embedder. Each row gets its ``similarity`` (the mean cosine), so the benchmark can state how
    near they are.
    """
    score = vectors @ reference.mean(0)
    order = np.argsort(-score, kind="stable")[:n]
    return [{**rows[i], "similarity": round(float(score[i]), 4)} for i in order]


#: a question shorter than this (in words) is too common to count as held by a candidate
MIN_QUESTION_WORDS = 4


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def without_examples(rows: Sequence[dict], vectors: np.ndarray, questions: Sequence[str]) -> tuple[list[dict],
                                                                                                     np.ndarray]:
    """The candidates that hold none of ``questions`` word for word (case and spacing aside), with their vectors.

    The Python FAQ's table of contents lists the FAQ's own questions: as a distractor it would hand the
    extractor the reference set's examples, held-out part included, and the OT proxy would reward picking it.
    """
    needles = [n for n in (_normal(q) for q in questions) if len(n.split()) >= MIN_QUESTION_WORDS]
    keep = [i for i, row in enumerate(rows) if not any(n in _normal(row["text"]) for n in needles)]
    return [rows[i] for i in keep], vectors[keep]
