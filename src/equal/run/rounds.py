"""The bandit rounds: select clusters, extract their documents, reward each pull, share the rewards.

:func:`play_rounds` knows nothing of files, models or configs: it takes the
arms, a policy, the budget and three functions (extract, reward, and what to
do after each round), so the run, the scale benchmark and the tests drive the
same loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np

from equal.bandit import Arms, Policy, RoundShape
from equal.records import Extraction, Pull, QAPair
from equal.run.budget import Budget
from equal.run.schema import PullRecord, RoundRecord

BEST_CLUSTERS = 5  # clusters listed as the best after each round


@dataclass(frozen=True, slots=True)
class PullScore:
    """The reward of one pull, and the OT distance it came from (``None``: the pull gave no pair)."""

    distance: float | None
    reward: float


Extract = Callable[[list[int]], Sequence[Extraction]]
"""Extracts documents by index: one :class:`Extraction` per document, in order (tokens in its generation)."""
Reward = Callable[[list[QAPair]], PullScore]
"""Scores the pairs of one pull; called once per pull, in the order of the round's pulls."""
OnRound = Callable[[RoundRecord, Sequence[Pull]], None]
"""Called after each round with its record and every pull so far."""
Timer = Callable[[str], AbstractContextManager[None]]
"""Times the block it opens under a stage name (:meth:`equal.stats.Stats.timed`)."""


def _untimed(stage: str) -> AbstractContextManager[None]:
    return nullcontext()


def play_rounds(arms: Arms, policy: Policy, budget: Budget, *, shape: RoundShape, extract: Extract,
                reward: Reward, rng: np.random.Generator, on_round: OnRound | None = None,
                timed: Timer = _untimed) -> tuple[list[Pull], Budget]:
    """Play rounds until the budget or the arms run out; return every pull and the budget left.

    A round: the policy picks up to B open clusters from the current state;
    each gives its next m documents (fewer at the end of the budget or of the
    cluster); all of the round's documents are extracted in one call, so a
    backend can run them concurrently, and charged to the budget (one document
    each, plus its tokens); each pull is rewarded; then every reward is shared
    with the pulled cluster's neighbours, after the round, so every pull of a
    round was chosen from the same state. The token cap is checked between
    rounds, so the last round may overshoot it.

    Args:
        arms: the clusters and the documents they have left, in pull order.
        policy: picks the clusters of a round.
        budget: what may be spent, and what was spent before the rounds.
        shape: B clusters a round, m documents a pull.
        extract: extracts documents by index.
        reward: the score of a pull's pairs.
        rng: the generator the policy draws from.
        on_round: called after each round (writes the round log, reports progress).
        timed: times each step of a round (``rounds/select``, ``rounds/extract``,
            ``rounds/reward``, ``rounds/share``, ``rounds/log``).

    Returns:
        The pulls, round by round (rounds numbered from 0), and the budget after them.
    """
    pulls: list[Pull] = []
    round_no = 0
    while not budget.exhausted() and arms.available().any():
        with timed("rounds/select"):
            plan = _plan(arms, policy, budget, shape, rng)
        if not plan:
            break
        with timed("rounds/extract"):
            extractions = list(extract([i for _, docs in plan for i in docs]))
        for extraction in extractions:
            budget = budget.charged(1, extraction.generation.tokens_in + extraction.generation.tokens_out)
        pending = iter(extractions)
        round_pulls = []
        with timed("rounds/reward"):
            for cluster, docs in plan:
                got = [next(pending) for _ in docs]
                pairs = [p for e in got for p in e.pairs]
                score = reward(pairs)
                round_pulls.append(Pull(round_no, cluster, [e.document_id for e in got], pairs, score.distance,
                                        score.reward))
        with timed("rounds/share"):
            for pull in round_pulls:
                arms.share(pull.cluster, pull.reward)
        pulls += round_pulls
        if on_round is not None:
            with timed("rounds/log"):
                best = [int(c) for c in np.argsort(-arms.mean_reward(), kind="stable")[:BEST_CLUSTERS]]
                on_round(RoundRecord(round_no, [PullRecord(p.cluster, p.document_ids, len(p.pairs), p.distance,
                                                           p.reward) for p in round_pulls],
                                     budget.documents, budget.tokens, best), pulls)
        round_no += 1
    return pulls, budget


def _plan(arms: Arms, policy: Policy, budget: Budget, shape: RoundShape,
          rng: np.random.Generator) -> list[tuple[int, list[int]]]:
    """The round's pulls: (cluster, its documents) for each cluster the policy picks, within the budget."""
    left = budget.documents_left()
    plan = []
    for cluster in policy.select(arms, shape.clusters_per_round, rng):
        take = int(min(shape.docs_per_pull, left))
        if take <= 0:
            break
        docs = arms.take(cluster, take)
        left -= len(docs)
        plan.append((cluster, docs))
    return plan
