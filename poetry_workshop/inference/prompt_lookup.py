"""Candidate tokens for prompt-lookup decoding: what the conversation says comes next.

A revision copies most of the draft it revises and a critique quotes the draft's lines, so
the tokens that follow the latest few generated ones have often been seen already, right
after the same few tokens. `PromptLookup` holds the conversation's tokens (the prompt, then
each token emitted) with an index from every short n-gram to where it last ended, and
proposes what followed the latest earlier occurrence of the longest n-gram the
conversation now ends with.

Proposing is all it does: the model checks every candidate (`llama_backend`), so a poor
guess costs time, never text. How many candidates are worth checking is `CandidateBudget`'s
call: checking k candidates costs one decode of k + 1 positions, which is almost free where
decoding waits on memory (a large model on a GPU or Apple silicon) and nearly k + 1 decodes
where it waits on arithmetic (measured here, a 135M model on one busy CPU core: each extra
position cost about 0.8 of a one-token decode). So the budget measures both costs on the
machine it runs on, estimates how often candidates are confirmed (also from guesses it did
not check: the next tokens tell whether they were right), and checks only as many as make
tokens come sooner; where checking does not pay, decoding stays plain.

The knobs below are module constants, not settings: they change only the speed.
"""

from __future__ import annotations

from collections.abc import Iterable

# Two tokens of context before a guess: a single token (a newline, ",", " the") recurs
# everywhere in a poem and predicts little, so a one-token match mostly buys a wasted batch.
MIN_NGRAM = 2
# Longer matches pick the right copy when a phrase recurs (a refrain, a quoted line).
MAX_NGRAM = 4
# About one line of verse: a longer guess rarely survives past a line's end, and each
# rejected candidate still costs a position of the batch.
MAX_CANDIDATES = 10
# Running averages: how fast the acceptance estimate follows the reply (a copied line is
# confirmed token after token, the new line after it is not) and how fast a cost follows
# the machine's load.
ACCEPTANCE_SMOOTHING = 0.3
COST_SMOOTHING = 0.2
# Before anything is known, a guess is taken to be right half the time.
PRIOR_ACCEPTANCE = 0.5
# Check candidates only where the expected rate beats plain decoding by this factor: the
# estimates are noisy, and a wrong call costs more than a missed gain.
MIN_GAIN = 1.05


class PromptLookup:
    """The conversation's tokens and the latest place each n-gram of them ended."""

    def __init__(self, tokens: Iterable[int] = (), *, min_ngram: int = MIN_NGRAM, max_ngram: int = MAX_NGRAM,
                 max_candidates: int = MAX_CANDIDATES):
        if not 1 <= min_ngram <= max_ngram:
            raise ValueError(f"n-gram sizes must satisfy 1 <= min ({min_ngram}) <= max ({max_ngram})")
        self.min_ngram = min_ngram
        self.max_ngram = max_ngram
        self.max_candidates = max_candidates
        self.tokens: list[int] = []
        # n-gram -> index of its last token, for n-grams ending before the newest token:
        # the newest one's own n-grams would only ever match themselves.
        self._ends: dict[tuple[int, ...], int] = {}
        self._indexed = 0  # n-grams ending at positions below this are in `_ends`
        self.extend(tokens)

    def append(self, token: int) -> None:
        self.tokens.append(token)

    def extend(self, tokens: Iterable[int]) -> None:
        self.tokens.extend(tokens)

    def _index(self) -> None:
        tokens = self.tokens
        newest = len(tokens) - 1
        for end in range(self._indexed, newest):
            for n in range(self.min_ngram, self.max_ngram + 1):
                if end + 1 >= n:
                    self._ends[tuple(tokens[end + 1 - n : end + 1])] = end
        self._indexed = max(self._indexed, newest)

    def propose(self, limit: int | None = None) -> list[int]:
        """Up to `limit` (at most `max_candidates`) tokens likely to come next; [] when the
        conversation's last n-gram has not been seen before."""
        room = self.max_candidates if limit is None else min(limit, self.max_candidates)
        if room <= 0:
            return []
        self._index()
        tokens = self.tokens
        for n in range(min(self.max_ngram, len(tokens)), self.min_ngram - 1, -1):
            end = self._ends.get(tuple(tokens[-n:]))
            if end is not None:
                return tokens[end + 1 : end + 1 + room]
        return []



def _average(old: float | None, new: float, weight: float) -> float:
    return new if old is None else old + weight * (new - old)


class CheckCost:
    """What a decode costs on this machine and model: seconds for one token, and seconds
    added by each candidate checked with it (running averages of measured decodes). Kept
    for the life of a model, since it is a property of the hardware, not of one reply."""

    def __init__(self) -> None:
        self.single: float | None = None
        self.per_candidate: float | None = None

    def observe(self, candidates: int, seconds: float) -> None:
        if candidates == 0:
            self.single = _average(self.single, seconds, COST_SMOOTHING)
        elif self.single is not None:
            extra = max(0.0, seconds - self.single) / candidates
            self.per_candidate = _average(self.per_candidate, extra, COST_SMOOTHING)


class CandidateBudget:
    """How many candidates one reply should check next, from the machine's costs and how
    often this reply's candidates have been confirmed."""

    def __init__(self, cost: CheckCost, acceptance: float = PRIOR_ACCEPTANCE):
        self.cost = cost
        self.acceptance = acceptance

    def observe(self, confirmed: bool) -> None:
        """One candidate checked (or a guess compared with what came): right or not."""
        self.acceptance = _average(self.acceptance, 1.0 if confirmed else 0.0, ACCEPTANCE_SMOOTHING)

    def size(self, room: int) -> int:
        """The number of candidates (0..room) that brings the most tokens per second."""
        single, extra = self.cost.single, self.cost.per_candidate
        if room <= 0 or single is None:
            return 0  # a plain step first, to know what one costs
        if extra is None:
            return room  # never measured: check once to learn the cost
        plain = 1.0 / single
        best, best_rate = 0, plain * MIN_GAIN
        expected, reach = 1.0, 1.0  # tokens a check yields: the sample after the last confirmed
        for k in range(1, room + 1):
            reach *= self.acceptance  # the chance that candidate k is reached and confirmed
            expected += reach
            rate = expected / (single + k * extra)
            if rate > best_rate:
                best, best_rate = k, rate
        return best
