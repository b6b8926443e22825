"""Near-duplicate records: MinHash signatures with LSH banding, confirmed by exact Jaccard, so
that of a set of near-identical teaching examples only the first is kept.

A record's `Fingerprint` (its shingles and band keys) depends on its text alone and is the
costly part, so the gate computes it in its worker processes; deciding which records are
twins is order-dependent (the first is kept) and runs in one process (`add_fingerprint`).
Shingles are hashed with CRC-32 of each word, not Python's `hash()`, so processes started
fresh (spawn, as on macOS) agree with the one that forked them, and a run is repeatable.
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import chain, compress, islice

import numpy as np

from poetry_workshop.verse import poem_metrics as pm


def main_text(record: dict) -> str:
    """What two records must not share to be distinct examples."""
    out = record["output"]
    return {
        "critiques": lambda: out["critique"], "lessons": lambda: out["lesson"],
        "autopsies": lambda: out["autopsy"], "comparisons": lambda: out["comparison"],
        "briefs": lambda: out["request"] + " " + " ".join(out["brief"].values()),
        "dialogues": lambda: " ".join(t["revision"] + " " + t["response"] for t in out["turns"]),
        "poet-pairs": lambda: out["poem"],
    }[record["task"]]()


@dataclass(frozen=True)
class Fingerprint:
    shingles: np.ndarray  # the text's word 4-gram hashes, sorted and distinct (uint64)
    bands: tuple[int, ...]  # one key per LSH band, each folded from that band's MinHash rows


class _WordIds(dict):
    """word -> a stable 64-bit id (its CRC-32, spread by an odd multiplier), computed once."""

    def __missing__(self, word: str) -> int:
        if len(self) > 200_000:  # a bound, for a process that reads without end
            self.clear()
        value = self[word] = (zlib.crc32(word.encode()) * 0x9E3779B97F4A7C15 + 1) % (1 << 64)
        return value


class NearDuplicates:
    """MinHash over word 4-gram shingles with LSH banding: candidates share a band, and are
    confirmed by their exact shingle Jaccard, so the first of each near-duplicate set is kept."""

    # 16 bands of 8 rows: pairs at Jaccard 0.8 share a band 95% of the time, pairs at 0.5
    # about 6%, so few candidates need the exact check.
    PERMUTATIONS, BANDS = 128, 16
    CHECKED, BUCKET_CAP = 5, 64  # exact checks per record; members remembered per band bucket
    SHINGLE = 4  # words

    def __init__(self, threshold: float, seed: int = 7):
        rng = np.random.default_rng(seed)
        self.threshold = threshold
        self.a = rng.integers(1, 2**63 - 1, self.PERMUTATIONS, dtype=np.uint64) | np.uint64(1)
        self.b = rng.integers(0, 2**63 - 1, self.PERMUTATIONS, dtype=np.uint64)
        # Each word of a shingle is multiplied by its own odd constant, so order counts.
        self.positions = rng.integers(1, 2**63 - 1, self.SHINGLE, dtype=np.uint64) | np.uint64(1)
        self.fold = rng.integers(1, 2**63 - 1, (self.BANDS, self.PERMUTATIONS // self.BANDS),
                                 dtype=np.uint64) | np.uint64(1)
        self._ids = _WordIds()
        self.buckets: dict[tuple[int, int], list[str]] = defaultdict(list)
        self.shingles: dict[str, frozenset[int]] = {}  # of the records kept

    def fingerprint(self, text: str) -> Fingerprint | None:
        """The text's shingles and band keys; None for a text under four words (never a twin)."""
        w = pm.words(text)
        n = len(w) - self.SHINGLE + 1
        if n <= 0:
            return None
        ids = np.fromiter(map(self._ids.__getitem__, w), dtype=np.uint64, count=len(w))
        with np.errstate(over="ignore"):
            hashed = ids[:n] * self.positions[0]
            for k in range(1, self.SHINGLE):
                hashed += ids[k:k + n] * self.positions[k]
            sh = _sorted_distinct(hashed)
            rows = np.multiply.outer(sh, self.a)
            rows += self.b
            sig = rows.min(axis=0)
            bands = (sig.reshape(self.BANDS, -1) * self.fold).sum(axis=1)
        return Fingerprint(sh, tuple(bands.tolist()))

    def add(self, key: str, text: str) -> str | None:
        """Remember `text` under `key` unless it nearly duplicates one already kept; returns that one."""
        return self.add_fingerprint(key, self.fingerprint(text))

    def add_fingerprint(self, key: str, print_: Fingerprint | None) -> str | None:
        """`add`, for a fingerprint computed elsewhere (in a worker process)."""
        if print_ is None:
            return None
        bands = list(enumerate(print_.bands))
        buckets = self.buckets
        shared = Counter(chain.from_iterable(buckets[band] for band in bands if band in buckets))
        # The records sharing the most bands are the likeliest twins; a handful is checked
        # exactly, so a set of many similar records cannot make this quadratic.
        shingles = frozenset(print_.shingles.tolist())
        for other in _most_shared(shared, self.CHECKED):
            kept = self.shingles[other]
            common = len(shingles & kept)
            if common / (len(shingles) + len(kept) - common) >= self.threshold:
                return other
        for band in bands:
            bucket = buckets[band]
            if len(bucket) < self.BUCKET_CAP:
                bucket.append(key)
        self.shingles[key] = shingles
        return None


def _sorted_distinct(values: np.ndarray) -> np.ndarray:
    """`np.unique(values)` (sorted, each value once) for a short array: a sort and a mask
    take a third of its time, which a fingerprint per record adds up."""
    out = np.sort(values)
    keep = np.empty(len(out), dtype=bool)
    keep[:1] = True
    np.not_equal(out[1:], out[:-1], out=keep[1:])
    return out[keep]


def _most_shared(shared: Counter, most: int) -> list[str]:
    """The `most` keys with the highest counts, ties in the order first met: what
    `shared.most_common(most)` names, without a Python call per key. Most keys share one
    band (a common phrase), so those with more are picked out in C first."""
    keys, counts = shared.keys(), shared.values()
    several = list(compress(keys, map((1).__lt__, counts)))
    several.sort(key=shared.__getitem__, reverse=True)  # stable: ties keep their order
    if len(several) < most:
        several += islice(compress(keys, map((1).__eq__, counts)), most - len(several))
    return several[:most]
