"""What the teaching-data tests share: the loopback credential, poems to work from, and
readers of what a run left on disk (records, the ledger) and of what the server was asked."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.config.loader import load_settings
from poetry_workshop.pipeline.claude.ledger import is_call
from poetry_workshop.pipeline.data.generation import GenerateOptions, TeachingDataRun
from poetry_workshop.pipeline.jsonl_log import read_jsonl
from tests.fakes.claude_server import ClaudeServer
from tests.support.cli import ROOT

KEY = "loopback-credential-that-must-not-leak"
GOOD = [
    "The hose kicks in the yard\nwhere my father left it coiled,\na green snake with a brass head.",
    "At the bus stop the rain\nwrites nothing on the shelter glass\nbut the number 14, backwards.",
    "My aunt counts pills into a saucer\nthe way she once counted buttons,\nby colour, then by size.",
    "The night nurse eats an orange\nin the dark of the ward office,\npeel in one long curl.",
]
BAD = [
    "My heart is heavy like the rain\nthe tapestry of life unfolds\nin the echoes of the night",
    "We dance beneath the silver moon\nour souls entwined in sweet embrace\nforever in this sacred space",
    "The whispers of the ancient trees\nremind us of eternity\nand all the love that sets us free",
]


def generate(task: str, **options):
    run = TeachingDataRun(load_settings(), GenerateOptions(task=task, **options))
    return run, run.run()


def annotated(name: str) -> list[dict]:
    records, warnings = read_jsonl(locations.annotated_dir() / name)
    assert warnings == []
    return records


def ledger_calls() -> list[dict]:
    """The ledger's lines for calls that ended (not the reservations made before each call)."""
    return [e for e in annotated("ledger.jsonl") if is_call(e)]


def messages_calls(server: ClaudeServer) -> int:
    return sum(1 for r in server.requests if r["path"].rstrip("/").endswith("/v1/messages"))


def assert_consistent(task: str):
    """Every record has one ledger line; no id twice; every line a whole JSON object."""
    records = annotated(f"{task}.jsonl")
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids))
    ledger = [e for e in ledger_calls() if e["task"] == task]
    accepted = [e["id"] for e in ledger if e["outcome"] == "accepted"]
    assert set(ids) <= set(accepted)
    return records, ledger


def spawn_cli(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "poetry_workshop", *args], cwd=ROOT, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(predicate, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0
