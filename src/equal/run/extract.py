"""Extraction as a run uses it: pairs copying protected text dropped, failures kept, documents counted."""

from __future__ import annotations

from collections.abc import Sequence

from equal.config import DecontaminationConfig
from equal.corpus import read_reference
from equal.extraction.extractor import Extractor
from equal.extraction.pending import Pending
from equal.filters import NgramIndex
from equal.progress import ItemsDone
from equal.records import Document, Extraction, QAPair
from equal.run.schema import ParseFailure, RemovedPair
from equal.stats import Stats


def decontamination_index(config: DecontaminationConfig, reference: list[QAPair]) -> NgramIndex | None:
    """The n-grams no output pair may copy: the reference set's and each named eval set's; ``None`` when off."""
    if not config.enabled:
        return None
    protected = list(reference) if config.against_reference else []
    for path in config.eval_sets:
        protected += read_reference(path, min_examples=1)
    return NgramIndex((t for p in protected for t in (p.question, p.answer)), n=config.ngram)


class ExtractStep:
    """Extract documents by their index in the corpus, as the warm-up and the rounds do.

    Each call extracts one batch (a round's documents go to the backend
    together), drops the pairs that copy protected text before anyone rewards
    them, keeps every failed answer, and counts the documents (per label too).
    It charges no budget: the loop that asked for the documents does.

    Args:
        extractor: the backend and task that turn a document into pairs.
        documents: the corpus; indices refer to it.
        decontamination: the protected n-grams, or ``None``.
        stats: where ``documents_extracted``, ``extracted_label:*`` and ``pairs_decontaminated`` are counted.
        label_field: ``corpus.label_field``, or ``None``.

    Attributes:
        decontamination: the protected n-grams, or ``None``.
        failures: the answers that were not the JSON asked for (or no answer), in order.
        removed: the pairs dropped for copying protected text, in order.
    """

    def __init__(self, extractor: Extractor, documents: Sequence[Document], decontamination: NgramIndex | None,
                 stats: Stats, label_field: str | None) -> None:
        self._extractor = extractor
        self._documents = documents
        self.decontamination = decontamination
        self._stats = stats
        self._label_field = label_field
        self.failures: list[ParseFailure] = []
        self.removed: list[RemovedPair] = []

    def __call__(self, indices: Sequence[int], done: ItemsDone | None = None) -> list[Extraction]:
        return self.submit(indices, done).rest()

    def submit(self, indices: Sequence[int], done: ItemsDone | None = None) -> Pending[Extraction]:
        """Start extracting documents by index; their extractions are finished as they are taken.

        Each document is reported to ``done`` as it is answered. Finishing
        (decontamination, failures, counts) happens on the thread that takes a
        slice, so documents finish in the order they are taken.
        """
        documents = [self._documents[i] for i in indices]
        return self._extractor.submit(documents, done).then(
            lambda start, stop, extractions: self._finish(documents[start:stop], extractions))

    def _finish(self, documents: list[Document], extractions: list[Extraction]) -> list[Extraction]:
        for extraction in extractions:
            with self._stats.timed("extract/decontaminate"):
                self._decontaminate(extraction)
            if not extraction.parse_ok:
                self.failures.append(ParseFailure(extraction.document_id, extraction.error,
                                                  extraction.generation.text))
        self._stats.inc("documents_extracted", len(documents))
        if self._label_field:
            for doc in documents:
                self._stats.inc(f"extracted_label:{doc.metadata.get(self._label_field)}")
        return extractions

    def _decontaminate(self, extraction: Extraction) -> None:
        # before the reward: a copied reference pair would otherwise earn its cluster a near-perfect reward
        index = self.decontamination
        if index is None:
            return
        kept = []
        for pair in extraction.pairs:
            if index.copies(pair):
                self._stats.inc("pairs_decontaminated")
                self.removed.append(RemovedPair(pair.document_id, pair.question, pair.answer,
                                                f"{index.n}-gram overlap"))
            else:
                kept.append(pair)
        extraction.pairs = kept
