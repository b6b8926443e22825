"""Shared fixtures: a private user folder for every test, the real starter model, and a
scripted model for unit tests of the session logic."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from poetry_workshop import locations

from poetry_workshop.inference import starter
from poetry_workshop.config.schema import MaxTokens, Sampling
from poetry_workshop.inference.llama_backend import Completion, GenerationStats

ROOT = Path(__file__).resolve().parent.parent
STARTER = ROOT / "models" / starter.FILENAME


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


def run_cli(*args: str, env: dict | None = None, stdin: str | None = None, timeout: int = 300):
    """Run the real `workshop` command in a subprocess, as a person would."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "poetry_workshop", *args],
        capture_output=True, text=True, env=full_env, input=stdin, timeout=timeout, cwd=ROOT,
    )


SMALL_TOKENS_TOML = """
[inference_config.max_tokens]
brief = 48
draft = 64
critique = 64
answer = 64
"""


@pytest.fixture
def small_config(tmp_path) -> Path:
    """A --config file that keeps generations short so real-model tests stay quick."""
    path = tmp_path / "small.toml"
    path.write_text(SMALL_TOKENS_TOML, encoding="utf-8")
    return path


class ScriptedBackend:
    """A test double of `ChatBackend`: replays queued replies, records what it was sent.

    Token counts are words, so context-fitting logic can be tested with small numbers."""

    def __init__(self, replies: list[str | Exception] | Callable[[list[dict]], str], n_ctx: int = 4096):
        self.path = Path("scripted.gguf")
        self._replies = replies
        self._n_ctx = n_ctx
        self.calls: list[list[dict]] = []
        self.seed_offsets: list[int] = []
        self.stop_texts = ["<|im_end|>", "<|im_start|>"]

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    def load(self) -> None:
        pass

    def count_tokens(self, messages: list[dict]) -> int:
        return sum(len(m["content"].split()) + 4 for m in messages)

    def generate(self, messages, max_tokens, sampling: Sampling, on_text=None, cancel: threading.Event | None = None,
                 seed_offset: int = 0):
        self.seed_offsets.append(seed_offset)
        self.calls.append([dict(m) for m in messages])
        if callable(self._replies):
            reply = self._replies(messages)
        else:
            if not self._replies:
                raise AssertionError("ScriptedBackend ran out of replies")
            reply = self._replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        emitted = []
        finish = "stop"
        for word in reply.split(" "):
            piece = word if not emitted else " " + word
            emitted.append(piece)
            if on_text:
                on_text(piece)
            if cancel is not None and cancel.is_set():
                finish = "cancelled"
                break
        text = "".join(emitted)
        stats = GenerationStats(
            prompt_tokens=self.count_tokens(messages), evaluated_tokens=self.count_tokens(messages[-1:]),
            generated_tokens=len(emitted), seconds=0.01, finish_reason=finish,
        )
        return Completion(text=text, stats=stats)

    def close(self) -> None:
        pass


@pytest.fixture
def max_tokens() -> MaxTokens:
    return MaxTokens()
