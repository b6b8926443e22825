"""Fixtures of the teaching-data tests: the loopback Claude server with the environment a
person would set, and poems in data/raw."""

from __future__ import annotations

from pathlib import Path

import pytest

from poetry_workshop import locations
from tests.claude.loopback import BAD, GOOD, KEY
from tests.fakes.claude_server import ClaudeServer


@pytest.fixture
def claude(monkeypatch):
    """The loopback server, with the environment a person would set, and fast retries."""
    with ClaudeServer(api_key=KEY) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        monkeypatch.setenv("POETRY_WORKSHOP__GENERATION__CLAUDE__RETRY_BASE_S", "0.01")
        monkeypatch.setenv("POETRY_WORKSHOP__GENERATION__CLAUDE__TIMEOUT_S", "5.0")
        monkeypatch.setenv("POETRY_WORKSHOP__GENERATION__BATCH__POLL_S", "0.05")
        yield server


@pytest.fixture
def poems() -> Path:
    raw = locations.data_dir() / "raw"
    for quality, texts in (("good", GOOD), ("bad", BAD)):
        (raw / quality).mkdir(parents=True)
        (raw / quality / "poems.txt").write_text("\n---\n".join(texts) + "\n", encoding="utf-8")
    return raw
