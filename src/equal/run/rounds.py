"""The bandit rounds: select clusters, extract their documents, reward each pull, share the rewards.

:func:`play_rounds` knows nothing of files, models or configs: it takes the
arms, a policy, the budget and three functions (extract, reward, and what to
do with each round played), so the run, the scale benchmark and the tests
drive the same loop; the run writes each round's line of ``rounds.jsonl``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np

from equal.bandit import Arms, Policy, RoundShape
from equal.extraction.pending import Pending
from equal.records import Extraction, Pull, QAPair
from equal.run.budget import Budget

BEST_CLUSTERS = 5  # clusters listed as the best after each round


@dataclass(frozen=True, slots=True)
class PullScore:
    """The reward of one pull, and the OT distance it came from (``None``: the pull gave no pair)."""

    distance: float | None
    reward: float


@dataclass(frozen=True, slots=True)
class PlayedRound:
    """A round as it ends: its pulls, the budget spent so far, and the best clusters by mean reward.

    Attributes:
        round: its number, from 0.
        pulls: its pulls, in the order they were chosen.
        budget: the budget after its pulls were charged.
        best_clusters: the :data:`BEST_CLUSTERS` clusters of highest mean reward after its rewards were shared.
    """

    round: int
    pulls: list[Pull]
    budget: Budget
    best_clusters: list[int]


Extract = Callable[[list[int]], Sequence[Extraction]]
"""Extracts documents by index: one :class:`Extraction` per document, in order (tokens in its generation)."""
Submit = Callable[[list[int]], Pending[Extraction]]
"""Starts extracting documents by index; the extractions (as :data:`Extract` gives) are taken in order as they come."""
Reward = Callable[[list[QAPair]], PullScore]
"""Scores the pairs of one pull; called once per pull, in the order of the round's pulls."""
OnRound = Callable[[PlayedRound, Sequence[Pull]], None]
"""Called after each round with the round and every pull so far."""
Timer = Callable[[str], AbstractContextManager[None]]
"""Times the block it opens under a stage name (:meth:`equal.stats.Stats.timed`)."""


def _untimed(stage: str) -> AbstractContextManager[None]:
    return nullcontext()


@dataclass(frozen=True, slots=True)
class _InFlight:
    """A round whose requests are out: its number, its pulls' (cluster, documents), and their extractions to come."""

    round: int
    plan: list[tuple[int, list[int]]]
    extractions: Pending[Extraction]


def play_rounds(arms: Arms, policy: Policy, budget: Budget, *, shape: RoundShape, extract: Extract,
                reward: Reward, rng: np.random.Generator, on_round: OnRound | None = None,
                timed: Timer = _untimed, submit: Submit | None = None,
                rounds_in_flight: int = 1) -> tuple[list[Pull], Budget]:
    """Play rounds until the budget or the arms run out; return every pull and the budget left.

    A round: the policy picks up to B open clusters from the current state;
    each gives its next m documents (fewer at the end of the budget or of the
    cluster); all of the round's documents are sent in one batch, so a
    backend can run them concurrently, and charged to the budget (one document
    each, plus its tokens); each pull is rewarded, in order, as soon as its
    own documents are answered, while the rest of the round's answers arrive;
    then every reward is shared with the pulled cluster's neighbours, after the
    round, so every pull of a round was chosen from the same state. The token
    cap is checked between rounds, so the last round may overshoot it.

    With ``rounds_in_flight`` = k > 1 and a ``submit`` that returns while the
    answers are still coming, k rounds are out at once: as soon as one round
    is rewarded the next is chosen and sent, so a server's request slots do not
    wait for a round's slowest answer, nor for the driver's rewards. The price
    is staleness: round r is chosen from the rewards of rounds up to r - k.
    The order of every choice, reward and draw from ``rng`` is fixed, so a run
    is as deterministic as with one round in flight; only when answers arrive
    differs. A round is sent only while the tokens spent plus an estimate for
    the documents in flight (the mean tokens of a document charged so far; none
    before the first is charged) stay under the token cap, so the cap is passed
    by about one round, as with one round in flight, not by k.

    Args:
        arms: the clusters and the documents they have left, in pull order.
        policy: picks the clusters of a round.
        budget: what may be spent, and what was spent before the rounds.
        shape: B clusters a round, m documents a pull.
        extract: extracts documents by index.
        reward: the score of a pull's pairs.
        rng: the generator the policy draws from.
        on_round: called with each round played (the run writes its line in the round log and reports progress).
        timed: times each step of a round (``rounds/select``, ``rounds/extract``,
            ``rounds/reward``, ``rounds/share``, ``rounds/log``).
        submit: starts extracting documents by index without waiting (default:
            ``extract``, which waits).
        rounds_in_flight: rounds whose requests may be out at once.

    Returns:
        The pulls, round by round (rounds numbered from 0), and the budget after them.
    """
    start = submit or _waiting(extract)
    pulls: list[Pull] = []
    in_flight: deque[_InFlight] = deque()
    planned = 0  # documents sent but not yet charged
    next_round = 0
    while True:
        while (len(in_flight) < rounds_in_flight and not budget.exhausted(in_flight=planned)
               and budget.documents_left() > planned and arms.available().any()):
            with timed("rounds/select"):
                plan = _plan(arms, policy, budget.documents_left() - planned, shape, rng)
            if not plan:
                break
            indices = [i for _, docs in plan for i in docs]
            in_flight.append(_InFlight(next_round, plan, start(indices)))
            planned += len(indices)
            next_round += 1
        if not in_flight:
            break
        current = in_flight.popleft()
        round_pulls = []
        for cluster, docs in current.plan:
            with timed("rounds/extract"):
                got = current.extractions.take(len(docs))
            planned -= len(got)
            for extraction in got:
                budget = budget.charged(1, extraction.generation.tokens_in + extraction.generation.tokens_out)
            with timed("rounds/reward"):  # while the answers of the round's later pulls still arrive
                pairs = [p for e in got for p in e.pairs]
                score = reward(pairs)
            round_pulls.append(Pull(current.round, cluster, [e.document_id for e in got], pairs,
                                    score.distance, score.reward))
        with timed("rounds/share"):
            for pull in round_pulls:
                arms.share(pull.cluster, pull.reward)
        pulls += round_pulls
        if on_round is not None:
            with timed("rounds/log"):
                best = [int(c) for c in np.argsort(-arms.mean_reward(), kind="stable")[:BEST_CLUSTERS]]
                on_round(PlayedRound(current.round, round_pulls, budget, best), pulls)
    return pulls, budget


def _waiting(extract: Extract) -> Submit:
    """A ``submit`` that extracts at once: taking only hands the extractions over."""
    return lambda indices: Pending.ready(extract(indices))


def _plan(arms: Arms, policy: Policy, left: float, shape: RoundShape,
          rng: np.random.Generator) -> list[tuple[int, list[int]]]:
    """The round's pulls: (cluster, its documents) for each cluster the policy picks, within ``left`` documents."""
    plan = []
    for cluster in policy.select(arms, shape.clusters_per_round, rng):
        take = int(min(shape.docs_per_pull, left))
        if take <= 0:
            break
        docs = arms.take(cluster, take)
        left -= len(docs)
        plan.append((cluster, docs))
    return plan
