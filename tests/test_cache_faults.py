"""Damaged caches, a full disk, and two runs sharing one embedding store.

The embedding store and the embedding cache can always be computed again: a
damaged one is set aside (renamed, never deleted) and rebuilt. The response
cache holds answers that were paid for: damage is an error that names the
file and says how to recover it, and the file is left exactly as it was. A
full disk is one ``DiskFull`` error naming the directory, never a SIGBUS or a
traceback, and the files written before stay intact.
"""

from __future__ import annotations

import errno
import gc
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from equal.embedding import EmbeddingCache, HashingEmbedder, embed_cached
from equal.embedding.store import embed_to_store, store_path
from equal.errors import CacheDamaged, DiskFull
from equal.files import atomic_write_text
from equal.llm.cache import ResponseCache
from equal.records import Generation
from tests.helpers import CountingEmbedder

N = 1000
CHUNK = 100


def _texts(n: int = N) -> list[str]:
    return [f"document number {i} about topic {i % 7}" for i in range(n)]


def _expected(texts: list[str]) -> np.ndarray:
    return HashingEmbedder(64).encode(texts)


def _finished_store(tmp_path: Path) -> tuple[list[str], Path]:
    texts = _texts()
    path = store_path(tmp_path, "hashing-64", texts)
    embed_to_store(CountingEmbedder(), texts, path, chunk_size=CHUNK)
    gc.collect()
    return texts, path


def _zero_rows(path: Path, start: int, stop: int, dim: int = 64) -> None:
    """Overwrite rows ``start:stop`` of the store with zeros, keeping the header valid."""
    offset = path.stat().st_size - N * dim * 4
    with path.open("r+b") as f:
        f.seek(offset + start * dim * 4)
        f.write(b"\x00" * ((stop - start) * dim * 4))


def _set_aside(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".damaged-*"))


def _rebuilt_and_warned(caplog, path: Path, embedder: CountingEmbedder, vectors: np.ndarray, texts: list[str]) -> None:
    assert embedder.encoded == len(texts)  # embedded again from scratch
    np.testing.assert_allclose(vectors, _expected(texts), atol=1e-6)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(path) in w and "damaged" in w for w in warnings), warnings
    assert len(_set_aside(path)) == 1  # renamed, never deleted
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["done"] == len(texts) and sidecar["chunks"][0][:2] == [0, CHUNK]


# -- item: damaged embedding store ---------------------------------------------------------------


def test_a_truncated_store_is_set_aside_and_rebuilt(tmp_path, caplog):
    texts, path = _finished_store(tmp_path)
    size = path.stat().st_size
    os.truncate(path, size // 2)
    again = CountingEmbedder()
    with caplog.at_level(logging.WARNING):
        vectors = embed_to_store(again, texts, path, chunk_size=CHUNK)
    _rebuilt_and_warned(caplog, path, again, vectors, texts)
    assert _set_aside(path)[0].stat().st_size == size // 2  # the damaged file is kept as it was


def test_a_store_zeroed_under_a_valid_header_is_found_and_rebuilt(tmp_path, caplog):
    texts, path = _finished_store(tmp_path)
    _zero_rows(path, 500, 600)
    again = CountingEmbedder()
    with caplog.at_level(logging.WARNING):
        vectors = embed_to_store(again, texts, path, chunk_size=CHUNK)
    _rebuilt_and_warned(caplog, path, again, vectors, texts)


def test_zeroed_rows_of_a_partial_store_are_found_before_resuming(tmp_path, caplog):
    texts = _texts()
    path = store_path(tmp_path, "hashing-64", texts)
    with pytest.raises(KeyboardInterrupt):
        embed_to_store(CountingEmbedder(fail_after=300), texts, path, chunk_size=CHUNK)
    gc.collect()
    _zero_rows(path, 100, 200)
    again = CountingEmbedder()
    with caplog.at_level(logging.WARNING):
        vectors = embed_to_store(again, texts, path, chunk_size=CHUNK)
    _rebuilt_and_warned(caplog, path, again, vectors, texts)


def test_a_truncated_sidecar_is_set_aside_with_its_store_and_rebuilt(tmp_path, caplog):
    texts, path = _finished_store(tmp_path)
    sidecar = path.with_suffix(".json")
    text = sidecar.read_text()
    sidecar.write_text(text[: len(text) // 2])
    again = CountingEmbedder()
    with caplog.at_level(logging.WARNING):
        vectors = embed_to_store(again, texts, path, chunk_size=CHUNK)
    _rebuilt_and_warned(caplog, path, again, vectors, texts)
    assert len(sorted(tmp_path.glob(sidecar.name + ".damaged-*"))) == 1


def _strip_checksums(path: Path) -> None:
    """Rewrite the sidecar the way equal wrote it before checksums were recorded."""
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({"n": meta["n"], "dim": meta["dim"], "done": meta["done"]}))


def test_a_store_written_without_checksums_is_checked_reused_and_gets_checksums(tmp_path):
    """Compatibility, not a fault: an older store that is sound is reused without embedding again."""
    texts, path = _finished_store(tmp_path)
    _strip_checksums(path)
    again = CountingEmbedder()
    vectors = embed_to_store(again, texts, path, chunk_size=CHUNK)
    assert again.encoded == 0
    np.testing.assert_allclose(vectors, _expected(texts), atol=1e-6)
    del vectors
    gc.collect()
    assert "chunks" in json.loads(path.with_suffix(".json").read_text())
    _zero_rows(path, 900, 1000)  # from now on the checksums catch what the norm check could not name
    assert embed_to_store(CountingEmbedder(), texts, path, chunk_size=CHUNK)[950].any()


def test_a_store_without_checksums_whose_rows_were_zeroed_is_rebuilt(tmp_path, caplog):
    texts, path = _finished_store(tmp_path)
    _strip_checksums(path)
    _zero_rows(path, 0, 100)
    again = CountingEmbedder()
    with caplog.at_level(logging.WARNING):
        vectors = embed_to_store(again, texts, path, chunk_size=CHUNK)
    _rebuilt_and_warned(caplog, path, again, vectors, texts)


# -- item: damaged SQLite caches ------------------------------------------------------------------


def _damage(path: Path, how: str) -> None:
    size = path.stat().st_size
    assert size > 8 * 4096, "the database must span several pages"
    if how == "truncated":
        os.truncate(path, size // 2)
        return
    with path.open("r+b") as f:
        if how == "garbage header":
            f.write(b"\x00" * 100)
        elif how == "garbage pages":
            f.seek(3 * 4096)
            f.write(b"\xab" * 2 * 4096)
        elif how == "zeroed pages":
            f.seek(4096)
            f.write(b"\x00" * (size - 4096))


DAMAGE = ["truncated", "garbage header", "garbage pages", "zeroed pages"]


def _response_cache(path: Path) -> None:
    cache = ResponseCache(path)
    for i in range(300):
        cache.put(f"key-{i}", Generation(text=f"paid answer {i} " + "x" * 900, tokens_in=10, tokens_out=20))
    cache.close()


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_response_cache_is_an_error_that_names_it_and_leaves_it_as_it_was(tmp_path, how):
    path = tmp_path / "responses.sqlite"
    _response_cache(path)
    _damage(path, how)
    before = path.read_bytes()
    with pytest.raises(CacheDamaged) as info:
        ResponseCache(path)
    message = str(info.value)
    assert str(path) in message and ".recover" in message and "paid" in message
    assert path.read_bytes() == before  # paid answers: never replaced, repaired or deleted
    assert not _set_aside(path)


def test_damage_to_the_response_cache_found_after_it_was_opened_is_the_same_error(tmp_path, monkeypatch):
    path = tmp_path / "responses.sqlite"
    _response_cache(path)
    _damage(path, "zeroed pages")
    monkeypatch.setattr("equal.sqlite.sqlite_problems", lambda db: None)  # damage after open
    cache = ResponseCache(path)
    with pytest.raises(CacheDamaged, match="responses.sqlite"):
        cache.get("key-250")
    with pytest.raises(CacheDamaged, match="responses.sqlite"):
        cache.put("new", Generation(text="answer"))
    cache.close()


def _embedding_cache(path: Path, texts: list[str]) -> None:
    cache = EmbeddingCache(path)
    embed_cached(HashingEmbedder(64), texts, cache)
    cache.close()


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_embedding_cache_is_set_aside_and_rebuilt(tmp_path, caplog, how):
    path = tmp_path / "embeddings.sqlite"
    texts = _texts(300)
    _embedding_cache(path, texts)
    _damage(path, how)
    damaged = path.read_bytes()
    with caplog.at_level(logging.WARNING):
        cache = EmbeddingCache(path)
        again = CountingEmbedder()
        vectors = embed_cached(again, texts, cache)
    assert again.encoded == len(texts)
    np.testing.assert_allclose(vectors, _expected(texts), atol=1e-6)
    assert any(str(path) in r.getMessage() and "damaged" in r.getMessage() for r in caplog.records)
    assert [p.read_bytes() for p in _set_aside(path)] == [damaged]
    cache.close()
    third = CountingEmbedder()
    embed_cached(third, texts, EmbeddingCache(path))
    assert third.encoded == 0  # the rebuilt cache holds every vector


def test_damage_to_the_embedding_cache_found_after_it_was_opened_is_set_aside(tmp_path, caplog, monkeypatch):
    path = tmp_path / "embeddings.sqlite"
    texts = _texts(300)
    _embedding_cache(path, texts)
    _damage(path, "zeroed pages")
    monkeypatch.setattr("equal.sqlite.sqlite_problems", lambda db: None)
    cache = EmbeddingCache(path)
    again = CountingEmbedder()
    with caplog.at_level(logging.WARNING):
        vectors = embed_cached(again, texts, cache)
    np.testing.assert_allclose(vectors, _expected(texts), atol=1e-6)
    assert len(_set_aside(path)) == 1 and any(str(path) in r.getMessage() for r in caplog.records)
    cache.close()


def test_an_embedding_cache_still_damaged_once_started_afresh_is_an_error(tmp_path, monkeypatch):
    path = tmp_path / "embeddings.sqlite"
    _embedding_cache(path, _texts(300))
    monkeypatch.setattr("equal.sqlite.sqlite_problems", lambda db: "page 2: btree damaged")  # every file, new too
    with pytest.raises(CacheDamaged, match="still damaged after it was started afresh"):
        EmbeddingCache(path)
    assert len(_set_aside(path)) == 1  # set aside once, not again and again


# -- item: a full disk, without mounting anything ------------------------------------------------


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_the_store_reserves_its_blocks_so_a_full_disk_is_diskfull(tmp_path, monkeypatch):
    texts = _texts()
    path = store_path(tmp_path, "hashing-64", texts)
    monkeypatch.setattr(os, "posix_fallocate", _enospc)
    with pytest.raises(DiskFull) as info:
        embed_to_store(CountingEmbedder(), texts, path, chunk_size=CHUNK)
    message = str(info.value)
    assert str(tmp_path) in message and "250.1 KiB needed" in message  # 1000 x 64 float32 and the header
    assert not path.exists() and not list(tmp_path.glob("*.tmp"))


def test_a_full_disk_while_resuming_keeps_the_recorded_chunks(tmp_path, monkeypatch):
    texts = _texts()
    path = store_path(tmp_path, "hashing-64", texts)
    with pytest.raises(KeyboardInterrupt):
        embed_to_store(CountingEmbedder(fail_after=300), texts, path, chunk_size=CHUNK)
    gc.collect()
    with monkeypatch.context() as patch:
        patch.setattr(os, "posix_fallocate", _enospc)
        with pytest.raises(DiskFull, match=str(tmp_path)):
            embed_to_store(CountingEmbedder(), texts, path, chunk_size=CHUNK)
    assert json.loads(path.with_suffix(".json").read_text())["done"] == 300
    again = CountingEmbedder()
    vectors = embed_to_store(again, texts, path, chunk_size=CHUNK)
    assert again.encoded == 700  # the room was found: it resumes after the recorded chunks
    np.testing.assert_allclose(vectors, _expected(texts), atol=1e-6)


def test_an_atomic_write_on_a_full_disk_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    out = tmp_path / "stats.json"
    out.write_text("previous outputs")
    monkeypatch.setattr(os, "fsync", _enospc)
    with pytest.raises(DiskFull) as info:
        atomic_write_text(out, "x" * 3000)
    assert str(tmp_path) in str(info.value) and "2.9 KiB needed" in str(info.value)
    assert out.read_text() == "previous outputs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.json"]


def _fill_database(db: sqlite3.Connection) -> None:
    """Let the database grow no further, as on a full disk (SQLite then says SQLITE_FULL)."""
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")


def test_sqlite_saying_the_disk_is_full_is_diskfull_naming_the_directory(tmp_path):
    responses = ResponseCache(tmp_path / "responses.sqlite")
    responses.put("paid", Generation(text="kept"))
    _fill_database(responses._db)
    with pytest.raises(DiskFull, match=str(tmp_path)):
        for i in range(20):
            responses.put(f"key-{i}", Generation(text="y" * 20_000))
    assert responses.get("paid").text == "kept"
    responses.close()
    vectors = EmbeddingCache(tmp_path / "embeddings.sqlite")
    vectors.put_many(["a"], np.ones((1, 64), dtype=np.float32))
    _fill_database(vectors._db)
    with pytest.raises(DiskFull, match=str(tmp_path)):
        vectors.put_many([f"k{i}" for i in range(500)], np.ones((500, 64), dtype=np.float32))
    vectors.close()


# -- item: a full disk, on a real small filesystem ------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs mounted at ``tmp_path/small``, unmounted afterwards (needs root and mount)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8); the monkeypatched tests cover the behaviour")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the monkeypatched tests cover the behaviour")
    try:
        yield mount_point
    finally:
        gc.collect()
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def _fill_disk(directory: Path) -> None:
    with (directory / "filler").open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\x00" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from equal.embedding import HashingEmbedder
    from equal.embedding.store import embed_to_store, store_path
    texts = [f"document {i}" for i in range(5000)]
    embed_to_store(HashingEmbedder(64), texts, store_path(Path(sys.argv[1]), "hashing-64", texts), chunk_size=1000)
""")


def test_a_store_larger_than_the_disk_is_diskfull_not_sigbus(small_disk):
    """5000 x 64 float32 (1.2 MiB) on a 1 MiB tmpfs: writing into a sparse mapping used to die by SIGBUS."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(small_disk)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != -7, "killed by SIGBUS"
    assert done.returncode == 1
    assert "DiskFull" in done.stderr and str(small_disk) in done.stderr and "1.2 MiB needed" in done.stderr
    assert not list(small_disk.glob("*.tmp"))


def test_a_full_disk_under_the_caches_and_the_outputs(small_disk):
    out = small_disk / "stats.json"
    atomic_write_text(out, "previous outputs")
    responses = ResponseCache(small_disk / "responses.sqlite")
    responses.put("paid", Generation(text="kept"))
    vectors = EmbeddingCache(small_disk / "embeddings.sqlite")
    _fill_disk(small_disk)
    try:
        with pytest.raises(DiskFull, match=str(small_disk)):
            for i in range(50):
                responses.put(f"key-{i}", Generation(text="y" * 20_000))
        assert responses.get("paid").text == "kept"
        with pytest.raises(DiskFull, match=str(small_disk)):
            vectors.put_many([f"k{i}" for i in range(500)], np.ones((500, 64), dtype=np.float32))
        with pytest.raises(DiskFull, match=str(small_disk)):
            atomic_write_text(out, "new outputs " * 50_000)
        assert out.read_text() == "previous outputs"
        assert not (small_disk / "stats.json.tmp").exists()
    finally:
        responses.close()
        vectors.close()


# -- two runs sharing one store ------------------------------------------------------------------


class GatedEmbedder(HashingEmbedder):
    def __init__(self, before_encode) -> None:
        super().__init__(64)
        self.encoded = 0
        self.before_encode = before_encode

    def encode(self, texts):
        self.before_encode(self.encoded)
        self.encoded += len(texts)
        return super().encode(texts)


def test_a_second_run_waits_for_the_store_and_never_truncates_what_the_first_mapped(tmp_path):
    """Two runs start together on one cache directory; the second must not wipe the first one's vectors."""
    texts = _texts()
    path = store_path(tmp_path, "hashing-64", texts)
    a_encoding, b_encoding, a_done = threading.Event(), threading.Event(), threading.Event()
    a_result: list[np.ndarray] = []
    b_result: list[np.ndarray] = []
    seen_by_a: list[np.ndarray] = []  # A's last rows, read while B is running

    def a_gate(encoded: int) -> None:
        if encoded == 0:
            a_encoding.set()
            b_encoding.wait(timeout=1.0)  # give B the chance to start while A has written nothing

    def b_gate(encoded: int) -> None:
        if encoded == 0:
            b_encoding.set()
            a_done.wait(timeout=10)
        else:
            seen_by_a.append(np.array(a_result[0][-CHUNK:]))

    a, b = GatedEmbedder(a_gate), GatedEmbedder(b_gate)

    def run_a() -> None:
        try:
            a_result.append(embed_to_store(a, texts, path, chunk_size=CHUNK))
        finally:
            a_done.set()

    first = threading.Thread(target=run_a)
    second = threading.Thread(target=lambda: b_result.append(embed_to_store(b, texts, path, chunk_size=CHUNK)))
    first.start()
    assert a_encoding.wait(timeout=10)
    second.start()
    first.join(timeout=60)
    second.join(timeout=60)
    expected = _expected(texts)
    for rows in seen_by_a:
        np.testing.assert_allclose(rows, expected[-CHUNK:], atol=1e-6, err_msg="B wiped the store A had mapped")
    assert b.encoded == 0  # B waited for A and reused the finished store
    np.testing.assert_allclose(a_result[0], expected, atol=1e-6)
    np.testing.assert_allclose(b_result[0], expected, atol=1e-6)


PROCESS = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from equal.embedding import HashingEmbedder
    from equal.embedding.store import embed_to_store, store_path

    class Slow(HashingEmbedder):
        encoded = 0
        def encode(self, texts):
            time.sleep(0.05)
            self.encoded += len(texts)
            return super().encode(texts)

    directory, name = Path(sys.argv[1]), sys.argv[2]
    texts = [f"document number {i} about topic {i % 7}" for i in range(2000)]
    embedder = Slow(64)
    (directory / f"{name}.ready").touch()
    while not (directory / "go").exists():
        time.sleep(0.01)
    vectors = embed_to_store(embedder, texts, store_path(directory, "hashing-64", texts), chunk_size=100)
    expected = HashingEmbedder(64).encode(texts)
    print(embedder.encoded, float(abs(vectors - expected).max()))
""")


def test_two_processes_started_together_embed_the_corpus_once(tmp_path):
    children = [subprocess.Popen([sys.executable, "-c", PROCESS, str(tmp_path), name], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for name in ("first", "second")]
    try:
        for name in ("first", "second"):
            for _ in range(6000):
                if (tmp_path / f"{name}.ready").exists():
                    break
                threading.Event().wait(0.01)
        (tmp_path / "go").touch()
        results = [child.communicate(timeout=120) for child in children]
    finally:
        for child in children:
            child.kill()
    assert [child.returncode for child in children] == [0, 0], [err for _, err in results]
    encoded = [int(out.split()[0]) for out, _ in results]
    errors = [float(out.split()[1]) for out, _ in results]
    assert sorted(encoded) == [0, 2000]  # one embedded, the other waited and reused the store
    assert max(errors) < 1e-6


def test_a_writer_that_needs_a_path_gets_the_same_guarantees(tmp_path):
    """``atomic_file`` serves np.save or pyarrow, which may raise ENOSPC as an OSError without errno."""
    from equal.files import atomic_file

    out = tmp_path / "centroids.npy"
    with atomic_file(out) as tmp, tmp.open("wb") as f:
        np.save(f, np.ones(3, dtype=np.float32))
    with pytest.raises(DiskFull, match=str(tmp_path)), atomic_file(out) as tmp:
        tmp.write_bytes(b"half")
        raise OSError("IOError: No space left on device")  # what pyarrow raises
    np.testing.assert_array_equal(np.load(out), np.ones(3, dtype=np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["centroids.npy"]


def test_a_run_on_a_zeroed_store_warns_and_selects_what_a_sound_store_gives(replay_config, tmp_path, caplog):
    """Zeroed vectors under a valid header used to make a run finish quietly with other selections."""
    from equal import run

    def selected(run_dir: Path) -> list[str]:
        return [json.loads(line)["document_id"] for line in (run_dir / "documents.jsonl").read_text().splitlines()]

    cache = tmp_path / "shared-cache"
    run(replay_config(**{"extraction.cache_dir": str(cache), "output.dir": str(tmp_path / "a")}))
    gc.collect()
    store = next(cache.glob("documents-*.npy"))
    with store.open("r+b") as f:
        f.seek(128)  # the header of a 2-d float32 .npy
        f.write(b"\x00" * (store.stat().st_size - 128))
    with caplog.at_level(logging.WARNING):
        run(replay_config(**{"extraction.cache_dir": str(cache), "output.dir": str(tmp_path / "b")}))
    assert any(str(store) in r.getMessage() and "damaged" in r.getMessage() for r in caplog.records)
    assert selected(tmp_path / "a") == selected(tmp_path / "b")


def test_vectors_stored_without_replacing_keep_the_ones_already_cached(tmp_path):
    cache = EmbeddingCache(tmp_path / "embeddings.sqlite")
    first, second = np.ones((2, 3), dtype=np.float32), np.zeros((2, 3), dtype=np.float32)
    cache.put_many(["a", "b"], first)
    cache.put_many(["b", "c"], second, replace=False)  # what Ray actors send: "b" was there already
    found = cache.get_many(["a", "b", "c"])
    np.testing.assert_array_equal(found["b"], first[1])
    np.testing.assert_array_equal(found["c"], second[1])
    cache.put_many(["b"], second[:1])  # the default replaces
    np.testing.assert_array_equal(cache.get_many(["b"])["b"], second[0])
    cache.close()


# -- single damaged rows: a miss, paid (or embedded) again once, never used as data --------------


DAMAGED_ROWS = {
    "metadata-broken-json": "UPDATE responses SET metadata = '{broken' WHERE key = ?",
    "metadata-a-list": "UPDATE responses SET metadata = '[1,2]' WHERE key = ?",
    "text-a-blob": "UPDATE responses SET text = CAST(text AS BLOB) WHERE key = ?",
    "text-null": "UPDATE responses SET text = NULL WHERE key = ?",
    "tokens-null": "UPDATE responses SET tokens_in = NULL WHERE key = ?",
    "tokens-text": "UPDATE responses SET tokens_out = 'many' WHERE key = ?",
}


def _damage_row(path: Path, statement: str, key: str) -> None:
    db = sqlite3.connect(path)
    with db:
        assert db.execute(statement, (key,)).rowcount == 1
    db.close()


@pytest.mark.parametrize("statement", list(DAMAGED_ROWS.values()), ids=list(DAMAGED_ROWS))
def test_a_damaged_response_row_is_asked_again_once_and_never_used_as_data(tmp_path, statement):
    from equal.extraction import ExtractionTask, LLMExtractor
    from equal.llm.openai import OpenAICompatibleLLM
    from equal.records import Document
    from equal.stats import Stats
    from equal.testing import FakeOpenAIServer
    from equal.testing.fake_server import document_text

    docs = [Document(id=f"d{i}", text=f"Document {i} says the answer is {i}.") for i in range(3)]
    path = tmp_path / "responses.sqlite"
    task = ExtractionTask()
    with FakeOpenAIServer() as server:
        def extract(stats: Stats):
            cache = ResponseCache(path)
            try:
                llm = OpenAICompatibleLLM(server.base_url, "fake-model", stats=stats)
                return LLMExtractor(llm, task, cache, stats).extract(docs), llm.name
            finally:
                cache.close()

        first, name = extract(Stats())
        _damage_row(path, statement, task.format_input(docs[1]).key(name))
        stats = Stats()
        again, _ = extract(stats)
        resent = [document_text(body["messages"]) for body in server.bodies[3:]]
        third, _ = extract(Stats())
        assert server.total_requests == 4  # the damaged row was paid again once, and is sound now
    assert resent == [docs[1].text]
    assert stats.get("llm_cache_entries_resent") == 1 and stats.get("llm_cache_hits") == 2
    assert [e.pairs for e in again] == [e.pairs for e in first] == [e.pairs for e in third]


def test_a_run_whose_cache_lost_one_answers_text_writes_the_same_data_set(tmp_path):
    """A NULL text used to be read as an empty answer: other picks, fewer pairs, and a silent exit 0."""
    from equal import run
    from equal.config import load_config
    from equal.testing import FakeOpenAIServer
    from tests.helpers import make_corpus, make_reference

    settings = {
        "corpus.path": str(make_corpus(tmp_path / "corpus.jsonl")),
        "reference.path": str(make_reference(tmp_path / "reference.jsonl")), "corpus.id_field": "id",
        "embedding.model": "hashing-256", "clustering.k": 8, "seed": 3, "budget.fraction": 0.15,
        "extraction.extractor": "openai", "extraction.model": "fake", "extraction.max_retries": 0,
        "extraction.cache_dir": str(tmp_path / "cache"), "output.dir": str(tmp_path / "run"),
    }
    with FakeOpenAIServer() as server:
        config = load_config(None, {**settings, "extraction.base_url": server.base_url})
        first = run(config)
        expected = first.dataset_path.read_text()
        sent = server.total_requests
        path = tmp_path / "cache" / "responses.sqlite"
        db = sqlite3.connect(path)
        with db:
            db.execute("UPDATE responses SET text = NULL WHERE rowid = (SELECT MIN(rowid) FROM responses)")
        db.close()
        second = run(config)
        assert server.total_requests == sent + 1
    assert second.dataset_path.read_text() == expected
    assert second.counters["llm_cache_entries_resent"] == 1 and len(second.pairs) == len(first.pairs)


DAMAGED_VECTORS = {
    "12-bytes": lambda v: np.ones(3, dtype=np.float32).tobytes(),
    "all-nan": lambda v: np.full_like(v, np.nan).tobytes(),
    "not-unit": lambda v: (v * 3).tobytes(),
    "odd-length": lambda v: v.tobytes()[:-1],
    "text": lambda v: "not a vector",
    "null": lambda v: None,
}


@pytest.mark.parametrize("damage", list(DAMAGED_VECTORS.values()), ids=list(DAMAGED_VECTORS))
def test_a_damaged_vector_row_is_embedded_again_once_and_never_used(tmp_path, caplog, damage):
    from equal.embedding.cache import text_key

    path = tmp_path / "embeddings.sqlite"
    texts = _texts(20)
    _embedding_cache(path, texts)
    key = text_key("hashing-64", texts[7])
    db = sqlite3.connect(path)
    with db:
        (blob,) = db.execute("SELECT vec FROM vectors WHERE key = ?", (key,)).fetchone()
        db.execute("UPDATE vectors SET vec = ? WHERE key = ?", (damage(np.frombuffer(blob, np.float32)), key))
    db.close()
    cache = EmbeddingCache(path)
    again = CountingEmbedder()
    with caplog.at_level(logging.WARNING):
        vectors = embed_cached(again, texts, cache)
    assert again.encoded == 1 and cache.damaged_rows == 1
    np.testing.assert_allclose(vectors, _expected(texts), atol=1e-6)
    assert any(str(path) in r.getMessage() and "1 damaged" in r.getMessage() for r in caplog.records)
    third = CountingEmbedder()
    embed_cached(third, texts, cache)
    assert third.encoded == 0  # the row was stored again, sound
    cache.close()
