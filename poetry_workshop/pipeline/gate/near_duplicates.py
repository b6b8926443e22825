"""Near-duplicate records: MinHash signatures with LSH banding, confirmed by exact Jaccard, so
that of a set of near-identical teaching examples only the first is kept."""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import chain

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


class NearDuplicates:
    """MinHash over word 4-gram shingles with LSH banding: candidates share a band, and are
    confirmed by their exact shingle Jaccard, so the first of each near-duplicate set is kept."""

    # 16 bands of 8 rows: pairs at Jaccard 0.8 share a band 95% of the time, pairs at 0.5
    # about 6%, so few candidates need the exact check.
    PERMUTATIONS, BANDS = 128, 16
    CHECKED, BUCKET_CAP = 5, 64  # exact checks per record; members remembered per band bucket

    def __init__(self, threshold: float, seed: int = 7):
        rng = np.random.default_rng(seed)
        self.threshold = threshold
        self.a = rng.integers(1, 2**63 - 1, self.PERMUTATIONS, dtype=np.uint64) | np.uint64(1)
        self.b = rng.integers(0, 2**63 - 1, self.PERMUTATIONS, dtype=np.uint64)
        self.buckets: dict[tuple, list[str]] = defaultdict(list)
        self.shingles: dict[str, set[int]] = {}

    def add(self, key: str, text: str) -> str | None:
        """Remember `text` under `key` unless it nearly duplicates one already kept; returns that one."""
        sh = pm.shingles(text)
        if not sh:
            return None
        values = np.array(list(sh), dtype=np.int64).view(np.uint64)
        with np.errstate(over="ignore"):
            sig = (values[:, None] * self.a + self.b).min(axis=0)
        rows = self.PERMUTATIONS // self.BANDS
        bands = [(i, sig[i * rows:(i + 1) * rows].tobytes()) for i in range(self.BANDS)]
        buckets = self.buckets
        shared = Counter(chain.from_iterable(buckets[band] for band in bands if band in buckets))
        # The records sharing the most bands are the likeliest twins; a handful is checked
        # exactly, so a set of many similar records cannot make this quadratic.
        for other, _ in shared.most_common(self.CHECKED):
            if pm.jaccard(sh, self.shingles[other]) >= self.threshold:
                return other
        for band in bands:
            bucket = self.buckets[band]
            if len(bucket) < self.BUCKET_CAP:
                bucket.append(key)
        self.shingles[key] = sh
        return None
