"""Every kind of bad input, through a whole run: a clear error that says what to fix, or a counted skip.

Counted skips must lose nothing: the 200 good documents of the corpus are
all still there when the bad ones are dropped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from equal import run
from equal.errors import ConfigError, EqualError, InputError

GOOD = 200  # documents in the conftest corpus


def _append(path: Path, *lines: bytes) -> None:
    with path.open("ab") as f:
        for line in lines:
            f.write(line + b"\n")


# name -> (bad lines appended to a good corpus, the counter that must count each of them)
SKIPS = {
    "corrupt JSON line": ([b'{"id": "x1", "text": "cut off', b"]]]"], "skipped_corrupt_line"),
    "JSON that is not an object": ([b'["a", "list"]', b"42"], "skipped_not_an_object"),
    "text of the wrong type": ([json.dumps({"id": "x2", "text": 123}).encode(),
                                json.dumps({"id": "x3", "text": ["a", "b"]}).encode()], "skipped_wrong_type"),
    "missing text field": ([json.dumps({"id": "x4", "body": "elsewhere"}).encode()], "skipped_missing_field"),
    "empty and whitespace documents": ([json.dumps({"id": "x5", "text": ""}).encode(),
                                        json.dumps({"id": "x6", "text": " \n\t "}).encode()], "skipped_empty"),
    "binary document": ([json.dumps({"id": "x7", "text": "\x00\x01\x02\x03" * 20}).encode()], "skipped_binary"),
    "non-UTF-8 text": ([b'{"id": "x8", "text": "caf\xe9 au lait \xff\xfe and more words here"}'],
                       "skipped_undecodable"),
    "a 50 MB document": ([json.dumps({"id": "x9", "text": "word " * 10_000_000}).encode()], "skipped_too_long"),
    "duplicate ids": ([json.dumps({"id": "dup", "text": "First document with this id, long enough."}).encode(),
                       json.dumps({"id": "dup", "text": "Second document with the same id, long too."}).encode()],
                      "skipped_duplicate_id"),
}


@pytest.mark.parametrize("case", list(SKIPS))
def test_bad_records_are_counted_skips_and_nothing_good_is_lost(replay_config, corpus_path, case):
    lines, counter = SKIPS[case]
    _append(corpus_path, *lines)
    result = run(replay_config())
    counters, summary = result.counters, result.summary.to_json()
    expected = 1 if case == "duplicate ids" else len(lines)  # the first of two duplicates is kept
    assert counters[counter] == expected, counters
    good = GOOD + (1 if case == "duplicate ids" else 0)
    assert summary["corpus_passages"] == good and counters["documents_read"] == good
    assert counters["pairs_written"] > 0


def _tiny_reference(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.jsonl"
    path.write_text('{"question": "What is a list?", "answer": "A sequence."}\n{"nothing": "useful"}\n')
    return path


def _xml(tmp_path: Path) -> Path:
    (tmp_path / "corpus.xml").write_text("<docs><doc>text</doc></docs>")
    return tmp_path / "corpus.xml"


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "folder").mkdir()
    return tmp_path / "folder"


def _only_bad(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": ""}\n{"text": "   "}\n{"text": "one document only, long enough to count."}\n')
    return path


def _no_text_field(tmp_path: Path) -> Path:
    path = tmp_path / "fields.jsonl"
    path.write_text("".join(json.dumps({"content": f"document {i} under another field"}) + "\n" for i in range(5)))
    return path


# name -> (overrides built from tmp_path, the error type, words the message must hold)
ERRORS = {
    "reference set too small": (lambda t: {"reference.path": str(_tiny_reference(t))}, InputError,
                                "fewer than the 10 needed"),
    "fewer documents than clusters": (lambda t: {"clustering.k": 500}, ConfigError, "lower clustering.k"),
    "corpus path missing": (lambda t: {"corpus.path": str(t / "nowhere.jsonl")}, InputError, "does not exist"),
    "a folder where a file is expected": (lambda t: {"corpus.path": str(_folder(t)), "corpus.format": "jsonl"},
                                          InputError, "is a folder"),
    "unknown file type": (lambda t: {"corpus.path": str(_xml(t))}, InputError, "set corpus.format"),
    "no record has the text field": (lambda t: {"corpus.path": str(_no_text_field(t))}, InputError,
                                     "corpus.text_field"),
    "fewer than 2 usable documents": (lambda t: {"corpus.path": str(_only_bad(t)), "corpus.id_field": None},
                                      InputError, "usable documents"),
    "misspelled config key": (lambda t: {"bandit.alpah": 0.1}, ConfigError, "bandit.alpah: unknown key"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_unusable_input_is_a_clear_error(replay_config, tmp_path, case):
    make, error, words = ERRORS[case]
    with pytest.raises(error, match=words):
        run(replay_config(**make(tmp_path)))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_corpus_is_a_clear_error(replay_config, corpus_path):
    corpus_path.chmod(0)
    try:
        with pytest.raises(InputError, match="cannot read"):
            run(replay_config())
    finally:
        corpus_path.chmod(0o644)


def test_read_error_mid_file_is_a_clear_error(replay_config, corpus_path, monkeypatch):
    """What a user without read permission sees (as root, permission bits do not stop reads: simulated)."""
    real_open = Path.open

    def refusing_open(self, *args, **kwargs):
        if self == corpus_path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refusing_open)
    with pytest.raises(InputError, match="cannot read .*Permission denied"):
        run(replay_config())


def test_error_messages_say_what_to_fix(replay_config, tmp_path):
    """Each error names a setting or an action, not just what went wrong."""
    for case, (make, _, _) in ERRORS.items():
        where = tmp_path / case.replace(" ", "_")
        where.mkdir()
        try:
            run(replay_config(**make(where)))
        except EqualError as exc:
            message = str(exc)
        else:
            pytest.fail(f"{case}: no error")
        assert any(hint in message for hint in ("set ", "add ", "check", "give ", "lower", "use ")), (case, message)
