"""The public rounds loop, driven by fakes: arms, a scripted policy, extraction and reward."""

from __future__ import annotations

import numpy as np
import pytest

from equal.bandit import RoundShape
from equal.extraction.pending import Pending
from equal.records import Extraction, Generation, QAPair
from equal.run import PullScore, play_rounds
from equal.run.budget import Budget
from equal.run.writer import round_record
from tests.helpers import FakeArms, ScriptedPolicy


class FakeExtract:
    """One pair per document (none for odd documents), ``tokens`` tokens each; records each batch."""

    def __init__(self, tokens: int = 10) -> None:
        self.tokens = tokens
        self.batches: list[list[int]] = []

    def __call__(self, documents: list[int]) -> list[Extraction]:
        self.batches.append(list(documents))
        return [Extraction(f"d{i}", [] if i % 2 else [QAPair("q", "a", f"d{i}")], Generation("", self.tokens, 0))
                for i in documents]


def reward(pairs: list[QAPair]) -> PullScore:
    """More pairs, more reward; no pair: distance None and reward -1."""
    return PullScore(None, -1.0) if not pairs else PullScore(1.0 / len(pairs), float(len(pairs)))


def test_rounds_extract_each_round_as_one_batch_and_share_rewards_after_it():
    arms, policy, extract = FakeArms([4, 4, 4]), ScriptedPolicy([[0, 2], [1], [1], [0, 1, 2]]), FakeExtract()
    records = []
    before = Budget(max_documents=10)
    pulls, after = play_rounds(arms, policy, before, shape=RoundShape(2, 2), extract=extract, reward=reward,
                               rng=np.random.default_rng(0),
                               on_round=lambda played, so_far: records.append((round_record(played), len(so_far))))
    # round 0: clusters 0 and 2, two documents each, in one batch; then cluster 1 twice; then clusters 0 and 2
    # again, but the budget of 10 documents ends after cluster 0's pull
    assert extract.batches == [[0, 1, 8, 9], [4, 5], [6, 7], [2, 3]]
    assert [(p.round, p.cluster, p.document_ids) for p in pulls] == [
        (0, 0, ["d0", "d1"]), (0, 2, ["d8", "d9"]), (1, 1, ["d4", "d5"]), (2, 1, ["d6", "d7"]), (3, 0, ["d2", "d3"])]
    assert [(p.distance, p.reward) for p in pulls] == [(1.0, 1.0)] * 5  # d0/d1: one pair of two documents
    # both pulls of round 0 were chosen before either reward was shared
    assert policy.seen == [0, 2, 3, 4]
    assert arms.shared == [(p.cluster, p.reward) for p in pulls]
    assert [r.round for r, _ in records] == [0, 1, 2, 3] and [n for _, n in records] == [2, 3, 4, 5]
    last = records[-1][0]
    assert (last.documents_spent, last.tokens_spent) == (after.documents, after.tokens) == (10, 100)
    assert (before.documents, before.tokens) == (0, 0)  # a budget is a value: charging makes a new one
    assert [p.to_json() for p in records[0][0].pulls] == [
        {"cluster": 0, "documents": ["d0", "d1"], "pairs": 1, "distance": 1.0, "reward": 1.0},
        {"cluster": 2, "documents": ["d8", "d9"], "pairs": 1, "distance": 1.0, "reward": 1.0}]
    assert records[0][0].best_clusters[:2] == [0, 2]


def test_the_document_budget_cuts_the_last_pull_short():
    arms, extract = FakeArms([10, 10]), FakeExtract()
    pulls, budget = play_rounds(arms, ScriptedPolicy([[0, 1]]), Budget(max_documents=5), shape=RoundShape(2, 3),
                                extract=extract, reward=reward, rng=np.random.default_rng(0))
    assert [len(p.document_ids) for p in pulls] == [3, 2]
    assert budget.documents == 5 and budget.exhausted()


def test_the_token_cap_is_checked_between_rounds():
    pulls, budget = play_rounds(FakeArms([10]), ScriptedPolicy([[0]]), Budget(max_tokens=25), shape=RoundShape(1, 2),
                                extract=FakeExtract(), reward=reward, rng=np.random.default_rng(0))
    assert len(pulls) == 2 and budget.tokens == 40  # the round that crossed 25 is finished, then it stops


def test_a_pull_without_pairs_gets_what_the_reward_says():
    pulls, _ = play_rounds(FakeArms([1, 1]), ScriptedPolicy([[1], [0]]), Budget(), shape=RoundShape(1, 1),
                           extract=FakeExtract(), reward=reward, rng=np.random.default_rng(0))
    assert [(p.document_ids, p.pairs, p.distance, p.reward) for p in pulls] == [
        (["d1"], [], None, -1.0), (["d0"], [QAPair("q", "a", "d0")], 1.0, 1.0)]


@pytest.mark.parametrize("sizes", [[0, 0], []])
def test_no_documents_no_round(sizes):
    extract = FakeExtract()
    assert play_rounds(FakeArms(sizes), ScriptedPolicy([[0]]), Budget(), shape=RoundShape(1, 1), extract=extract,
                       reward=reward, rng=np.random.default_rng(0)) == ([], Budget())
    assert extract.batches == []


def test_a_policy_that_picks_nothing_ends_the_rounds():
    extract = FakeExtract()
    assert play_rounds(FakeArms([3]), ScriptedPolicy([[]]), Budget(), shape=RoundShape(1, 1), extract=extract,
                       reward=reward, rng=np.random.default_rng(0)) == ([], Budget())
    assert extract.batches == []


class DeferredExtract(FakeExtract):
    """A ``submit`` that sends at once and answers only when waited for; records the order of both."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    def submit(self, documents: list[int]) -> Pending:
        self.events.append(f"send {documents}")
        answers: list = []

        def items(start: int, stop: int) -> list:
            if not answers:  # the whole batch is answered when its first slice is waited for
                self.events.append(f"wait {documents}")
                answers.extend(self(documents))
            return answers[start:stop]
        return Pending(len(documents), items)


def test_two_rounds_in_flight_send_the_next_round_before_this_one_is_rewarded():
    arms, policy, extract = FakeArms([4, 4, 4]), ScriptedPolicy([[0], [1], [2], [0], [1], [2]]), DeferredExtract()
    pulls, budget = play_rounds(arms, policy, Budget(max_documents=9), shape=RoundShape(1, 2), extract=extract,
                                reward=reward, rng=np.random.default_rng(0), submit=extract.submit,
                                rounds_in_flight=2)
    # rounds 0 and 1 go out together; each later round goes out when the round two before it is rewarded
    assert extract.events == ["send [0, 1]", "send [4, 5]", "wait [0, 1]", "send [8, 9]", "wait [4, 5]",
                              "send [2, 3]", "wait [8, 9]", "send [6]", "wait [2, 3]", "wait [6]"]
    assert policy.seen == [0, 0, 1, 2, 3]  # round r was chosen knowing the rewards of rounds up to r - 2
    assert [p.round for p in pulls] == [0, 1, 2, 3, 4]
    assert budget.documents == 9  # documents out but not yet charged count against the budget


@pytest.mark.parametrize("in_flight", [1, 2, 4, 8])
def test_the_token_cap_is_passed_by_one_round_at_most_however_many_rounds_may_be_in_flight(in_flight):
    """Every answer 1,200 tokens, cap 30,000, 6 documents a round: more rounds in flight must not spend more."""
    extract = DeferredExtract()
    extract.tokens = 1200
    pulls, budget = play_rounds(FakeArms([100, 100, 100]), ScriptedPolicy([[0, 1, 2]]), Budget(max_tokens=30_000),
                                shape=RoundShape(3, 2), extract=extract, reward=reward,
                                rng=np.random.default_rng(0), submit=extract.submit, rounds_in_flight=in_flight)
    # 28,800 spent after four rounds, the fifth crosses the cap: what one round in flight spends
    assert budget.tokens == 36_000 and len(pulls) == 15
    assert sum(event.startswith("send") for event in extract.events) == 5  # and no round is sent for nothing


def test_rounds_in_flight_under_a_token_cap_wait_for_the_cost_of_a_first_document():
    """Before any document is charged nothing is known of their cost: one round goes out alone."""
    extract = DeferredExtract()
    play_rounds(FakeArms([4, 4]), ScriptedPolicy([[0], [1]]), Budget(max_tokens=100), shape=RoundShape(1, 2),
                extract=extract, reward=reward, rng=np.random.default_rng(0), submit=extract.submit,
                rounds_in_flight=2)
    assert extract.events[:3] == ["send [0, 1]", "wait [0, 1]", "send [4, 5]"]


def test_a_budget_counts_the_documents_in_flight_at_the_mean_cost_of_those_charged():
    spent = Budget(max_tokens=1000).charged(4, 400)  # 100 tokens a document so far
    assert not spent.exhausted() and not spent.exhausted(in_flight=5)
    assert spent.exhausted(in_flight=6)  # 400 + 6 x 100 reaches the cap
    assert Budget(max_tokens=1000).exhausted(in_flight=1)  # nothing charged yet: the cost is unknown
    assert not Budget(max_documents=10).charged(4, 400).exhausted(in_flight=6)  # no token cap


def test_one_round_in_flight_with_a_deferred_submit_plays_exactly_the_blocking_loop():
    def play(**kwargs):
        arms, extract = FakeArms([5, 3, 4]), DeferredExtract()
        pulls, budget = play_rounds(arms, ScriptedPolicy([[0, 2], [1], [2, 0], [1, 2]]), Budget(max_documents=11),
                                    shape=RoundShape(2, 2), extract=extract, reward=reward,
                                    rng=np.random.default_rng(0), **({"submit": extract.submit} if kwargs else {}))
        return pulls, budget, arms.shared, extract.batches

    assert play(deferred=True) == play()
