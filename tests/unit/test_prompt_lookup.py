"""The prompt-lookup proposer: what it guesses comes next from the conversation's tokens."""

from __future__ import annotations

import pytest

from poetry_workshop.inference.prompt_lookup import MAX_CANDIDATES, CandidateBudget, CheckCost, PromptLookup


def test_a_copied_line_is_proposed_after_its_first_two_tokens():
    draft = [10, 11, 12, 13, 14, 15, 16]
    lookup = PromptLookup([1, 2, *draft, 3, 4])
    lookup.extend([10, 11])  # the reply starts copying the draft's line
    assert lookup.propose() == [12, 13, 14, 15, 16, 3, 4, 10, 11][:MAX_CANDIDATES]


def test_nothing_is_proposed_for_an_unseen_ending():
    lookup = PromptLookup([1, 2, 3, 4, 5])
    lookup.extend([7, 8])
    assert lookup.propose() == []


def test_one_shared_token_is_not_enough_context():
    lookup = PromptLookup([5, 9, 10, 11, 12])
    lookup.append(9)  # 9 was seen, but only after 5; the last bigram (12, 9) is new
    assert lookup.propose() == []
    assert PromptLookup([5, 9, 10, 11, 12], min_ngram=1).propose() == []  # 12 was never followed
    one = PromptLookup([5, 9, 10, 11, 12, 9], min_ngram=1)
    assert one.propose() == [10, 11, 12, 9]


def test_the_longest_match_wins_over_a_later_shorter_one():
    # (2, 3) is followed by 40 at the start and by 50 later; (1, 2, 3) only at the start.
    lookup = PromptLookup([1, 2, 3, 40, 41, 7, 2, 3, 50, 51, 8])
    lookup.extend([1, 2, 3])
    assert lookup.propose(2) == [40, 41]


def test_the_latest_occurrence_wins_among_equal_matches():
    lookup = PromptLookup([2, 3, 40, 7, 2, 3, 50, 8])
    lookup.extend([2, 3])
    assert lookup.propose(1) == [50]


def test_the_newest_ngram_never_matches_itself():
    lookup = PromptLookup([1, 2, 3])
    assert lookup.propose() == []
    lookup.extend([1, 2])  # now (1, 2) was seen before, followed by 3
    assert lookup.propose() == [3, 1, 2]


def test_limit_and_max_candidates_cap_the_proposal():
    tokens = list(range(100, 140))
    lookup = PromptLookup(tokens + [100, 101], max_candidates=5)
    assert lookup.propose() == [102, 103, 104, 105, 106]
    assert lookup.propose(3) == [102, 103, 104]
    assert lookup.propose(0) == []


def test_the_index_follows_tokens_appended_between_proposals():
    lookup = PromptLookup([9, 9])
    for token in [1, 2, 3, 4]:
        lookup.append(token)
        lookup.propose()
    lookup.extend([1, 2])
    assert lookup.propose() == [3, 4, 1, 2]


def test_ngram_sizes_are_checked():
    with pytest.raises(ValueError):
        PromptLookup(min_ngram=3, max_ngram=2)
    with pytest.raises(ValueError):
        PromptLookup(min_ngram=0)


# ---------------------------------------------------------------- how many to check


def costs(single: float | None, per_candidate: float | None) -> CheckCost:
    cost = CheckCost()
    cost.single, cost.per_candidate = single, per_candidate
    return cost


def test_a_plain_step_comes_first_then_one_full_check_to_learn_its_cost():
    assert CandidateBudget(costs(None, None)).size(10) == 0
    assert CandidateBudget(costs(0.02, None)).size(10) == 10
    assert CandidateBudget(costs(0.02, None)).size(0) == 0


def test_cheap_checks_are_used_to_the_full():
    # A GPU-like machine: a candidate adds 2% of a decode.
    assert CandidateBudget(costs(0.02, 0.0004), acceptance=0.8).size(10) == 10


def test_dear_checks_are_not_made_unless_nearly_every_guess_is_right():
    # This CPU: a candidate adds 80% of a decode, so a guess must almost always be right.
    dear = costs(0.025, 0.02)
    assert CandidateBudget(dear, acceptance=0.5).size(10) == 0
    assert CandidateBudget(dear, acceptance=0.95).size(10) > 0


def test_acceptance_follows_what_is_confirmed():
    budget = CandidateBudget(costs(0.02, 0.004), acceptance=0.5)
    many = budget.size(10)
    for _ in range(6):
        budget.observe(False)
    assert budget.acceptance < 0.2 and budget.size(10) < many
    for _ in range(12):
        budget.observe(True)
    assert budget.acceptance > 0.9 and budget.size(10) >= many


def test_costs_are_running_averages_of_measured_decodes():
    cost = CheckCost()
    cost.observe(4, 0.1)  # nothing to compare a batch with yet
    assert cost.per_candidate is None
    cost.observe(0, 0.02)
    cost.observe(4, 0.06)
    assert cost.single == pytest.approx(0.02) and cost.per_candidate == pytest.approx(0.01)
    cost.observe(0, 0.04)
    assert 0.02 < cost.single < 0.04
