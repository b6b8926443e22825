"""What a build has spent on Claude, read back from the ledger, and which build a run belongs to.

A build lasts from its first run until a run of it finishes every stage. Every run in
between (a resume after a cancel, a crash, a `kill -9` or a closed app, or a start with
other settings) belongs to it, and its spend cap covers them all: the generation runs
write the build's id on each ledger line (`GenerateOptions.build`) and read the build's
total back before each call. The id, the cap and the latest estimate of what is left to
spend are kept in `data/build/spending.json`, so a person who reopens the app sees the
whole total, not only the last run's.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.files import write_atomic
from poetry_workshop.pipeline.claude.ledger import SpendTally, spent
from poetry_workshop.pipeline.jsonl_log import read_jsonl


def spending_file() -> Path:
    return locations.data_dir() / "build" / "spending.json"


def ledger_file() -> Path:
    return locations.annotated_dir() / "ledger.jsonl"


@dataclass
class BuildRecord:
    """What spending.json holds: the build, its cap, and the estimate of what is left."""

    build: str
    started: str
    cap: float | None = None
    estimate_rest: float | None = None
    finished: bool = False


@dataclass(frozen=True)
class BuildSpending:
    """A build's Claude dollars as the screen and the command line show them."""

    build: str
    earlier: float  # by the build's earlier runs (the ledger, at this run's start)
    this_run: float
    cap: float | None
    estimate_rest: float | None

    @property
    def total(self) -> float:
        return self.earlier + self.this_run

    @property
    def left(self) -> float | None:
        return None if self.cap is None else max(0.0, self.cap - self.total)

    def describe(self) -> str:
        parts = [f"Claude ${self.total:.4f} spent by this build"]
        if self.earlier and self.this_run:
            parts[0] += f" (${self.earlier:.4f} in earlier runs + ${self.this_run:.4f} in this one)"
        if self.estimate_rest:
            parts.append(f"about ${self.estimate_rest:.2f} more to come")
        if self.cap is not None:
            parts.append(f"cap ${self.cap:.2f}, ${self.left:.4f} left")
        return " · ".join(parts)


def read_record(path: Path | None = None) -> BuildRecord | None:
    path = path or spending_file()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return BuildRecord(**{k: v for k, v in raw.items() if k in BuildRecord.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return None


def save_record(record: BuildRecord, path: Path | None = None) -> None:
    write_atomic(path or spending_file(), json.dumps(asdict(record), indent=1))


def current_build(cap: float | None, path: Path | None = None) -> BuildRecord:
    """The unfinished build a run resumes, or a new one when the last finished (or none was)."""
    record = read_record(path)
    if record is None or record.finished:
        record = BuildRecord(build=uuid.uuid4().hex[:12], started=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    record.cap = cap
    save_record(record, path)
    return record


def build_tally(build: str, ledger: Path | None = None) -> SpendTally:
    """Everything the build's ledger lines add up to, a dead run's unsettled calls included."""
    entries, _ = read_jsonl(ledger or ledger_file())
    return spent(entries, lambda e: e.get("build") == build)


def last_build_spending() -> BuildSpending | None:
    """The latest build's spending, from spending.json and the ledger (no run in this process)."""
    record = read_record()
    if record is None:
        return None
    return BuildSpending(record.build, build_tally(record.build).total, 0.0, record.cap,
                         None if record.finished else record.estimate_rest)
