"""Shared fixtures: a private user folder for every test, the real starter model, short
generations for real-model tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from poetry_workshop import locations
from poetry_workshop.config.schema import MaxTokens
from tests.support.cli import SMALL_TOKENS_TOML, STARTER


@pytest.fixture(autouse=True)
def workshop_home(tmp_path, monkeypatch) -> Path:
    """Every test gets its own user folder and data folder, so none reads or writes a
    person's sessions, poems or generated data."""
    home = tmp_path / "home"
    monkeypatch.setenv(locations.HOME_ENV, str(home))
    monkeypatch.setenv(locations.DATA_ENV, str(tmp_path / "data"))
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("POETRY_WORKSHOP__"):
            monkeypatch.delenv(name)
    return home


@pytest.fixture(scope="session")
def starter_gguf() -> Path:
    if not STARTER.is_file():
        pytest.fail(f"{STARTER} is missing: run `bash scripts/setup.sh --test` first")
    return STARTER


@pytest.fixture
def small_config(tmp_path) -> Path:
    """A --config file that keeps generations short so real-model tests stay quick."""
    path = tmp_path / "small.toml"
    path.write_text(SMALL_TOKENS_TOML, encoding="utf-8")
    return path


@pytest.fixture
def max_tokens() -> MaxTokens:
    return MaxTokens()
