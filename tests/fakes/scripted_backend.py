"""A scripted model: a test double of the engine's chat backend that replays queued replies."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from poetry_workshop.config.schema import Sampling
from poetry_workshop.inference.llama_backend import Completion, GenerationStats


class ScriptedBackend:
    """A test double of `ChatBackend`: replays queued replies, records what it was sent.

    Token counts are words, so context-fitting logic can be tested with small numbers.
    `token_delay_s` makes it a slow model (each word takes that long, like a real model on a
    small machine), `prompt_delay_s` one slow to read its prompt; `max_tokens` is honoured as llama.cpp does, ending with finish "length".
    `lookup` (proposed, accepted) is what each reply reports of prompt-lookup decoding.
    Like the real backend, a cancel is checked before each word is accepted."""

    def __init__(self, replies: list[str | Exception] | Callable[[list[dict]], str], n_ctx: int = 4096,
                 token_delay_s: float = 0.0, prompt_delay_s: float = 0.0, lookup: tuple[int, int] = (0, 0)):
        self.path = Path("scripted.gguf")
        self.lookup = lookup
        self.token_delay_s = token_delay_s
        self.prompt_delay_s = prompt_delay_s  # reading the prompt: like llama.cpp, deaf to cancel
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
        if self.prompt_delay_s:
            time.sleep(self.prompt_delay_s)
        emitted = []
        finish = "stop"
        for word in reply.split(" "):
            if self.token_delay_s:
                time.sleep(self.token_delay_s)
            if cancel is not None and cancel.is_set():
                finish = "cancelled"
                break
            if len(emitted) >= max_tokens:
                finish = "length"
                break
            piece = word if not emitted else " " + word
            emitted.append(piece)
            if on_text:
                on_text(piece)
        text = "".join(emitted)
        stats = GenerationStats(
            prompt_tokens=self.count_tokens(messages), evaluated_tokens=self.count_tokens(messages[-1:]),
            generated_tokens=len(emitted), seconds=0.01, finish_reason=finish,
            lookup_proposed=self.lookup[0], lookup_accepted=self.lookup[1],
        )
        return Completion(text=text, stats=stats)

    def close(self) -> None:
        pass
