"""The local two-model engine: the Educator and the Poet, each a conversation with its model.

`ChatBackend` is the contract a role's model satisfies: the llama.cpp backend in
production, a scripted double in unit tests. A `RoleChat` owns one role's conversation,
fits it to the context, and keeps it append-only so the KV cache carries over between
rounds. `Engine` wires both roles from the settings.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from poetry_workshop.config.schema import PromptLookup, RoleThinking, Sampling
from poetry_workshop.errors import PromptTooLongError
from poetry_workshop.inference.conversation import Conversation, Turn
from poetry_workshop.inference.llama_backend import Completion, GenerationStats
from poetry_workshop.inference.model_choice import ModelChoice

# Below this many tokens of room a reply is not worth starting.
MIN_REPLY_TOKENS = 64


class ChatBackend(Protocol):
    path: Path

    @property
    def n_ctx(self) -> int: ...

    def load(self) -> None: ...

    def count_tokens(self, messages: list[dict[str, str]]) -> int: ...

    def generate(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        sampling: Sampling,
        on_text: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        seed_offset: int = 0,
    ) -> Completion: ...

    def close(self) -> None: ...


@dataclass
class Reply:
    role: str
    text: str  # byte-identical to what the model generated, less any reasoning
    stats: GenerationStats

    @property
    def stopped(self) -> bool:
        return self.stats.finish_reason == "cancelled"


def same_file(a: Path | None, b: Path | None) -> bool:
    """Whether two roles' model paths name one file (so its mapped weights can be shared)."""
    if a is None or b is None:
        return False
    try:
        return Path(a).samefile(b)
    except OSError:
        return False


class RoleChat:
    """One role's running conversation with its model."""

    def __init__(self, role: str, backend: ChatBackend, system_prompt: str, sampling: Sampling):
        self.role = role
        self.backend = backend
        self.sampling = sampling
        self.conversation = Conversation(system=system_prompt)

    def restore(self, turns: list[Turn]) -> None:
        """Replace the turns (used when a session is resumed from the store)."""
        self.conversation.turns = list(turns)

    def send(
        self,
        user_text: str,
        max_tokens: int,
        on_text: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        notice: Callable[[str], None] | None = None,
        seed_offset: int = 0,
    ) -> Reply:
        """Add a user turn, generate the reply, and keep both in the conversation.

        On any failure the conversation is left as it was before the call."""
        before = list(self.conversation.turns)
        self.conversation.add_user(user_text)
        try:
            max_tokens, dropped = self._fit(max_tokens)
            if dropped and notice is not None:
                notice(
                    f"the {self.role}'s conversation outgrew its {self.backend.n_ctx}-token context: "
                    f"dropped the {dropped} oldest round(s); the current draft and critique are kept"
                )
            completion = self.backend.generate(
                self.conversation.messages(), max_tokens, self.sampling, on_text, cancel, seed_offset
            )
        except BaseException:
            self.conversation.turns = before
            raise
        self.conversation.add_assistant(completion.text)
        completion.stats.dropped_rounds = dropped
        return Reply(role=self.role, text=completion.text, stats=completion.stats)

    def _fit(self, max_tokens: int) -> tuple[int, int]:
        n_ctx = self.backend.n_ctx
        dropped = 0
        while True:
            prompt = self.backend.count_tokens(self.conversation.messages())
            if prompt + max_tokens <= n_ctx:
                return max_tokens, dropped
            if self.conversation.drop_oldest_round():
                dropped += 1
                continue
            room = n_ctx - prompt
            if room >= MIN_REPLY_TOKENS:
                return room, dropped
            raise PromptTooLongError(
                f"the {self.role}'s prompt is {prompt} tokens and its context holds {n_ctx}; "
                "shorten the poem or request, or raise n_ctx in [inference_config.runtime] of your config"
            )


class Engine:
    """Both roles, each on its own model object, all inference on one thread."""

    def __init__(self, educator: RoleChat, poet: RoleChat, choices: dict[str, ModelChoice], on_close=None,
                 thread=None, runtime=None, thinking: RoleThinking | None = None,
                 lookup: PromptLookup | None = None):
        self.educator = educator
        self.poet = poet
        self.choices = choices
        self._on_close = on_close
        self._thread = thread
        self._runtime = runtime
        self._thinking = thinking or RoleThinking()
        self._lookup = lookup or PromptLookup()

    @classmethod
    def from_settings(cls, settings, persona, choices: dict[str, ModelChoice]) -> Engine:
        from poetry_workshop.inference.inference_thread import InferenceThread
        from poetry_workshop.inference.llama_backend import LlamaBackend

        runtime = settings.inference.runtime
        sampling = settings.inference.sampling
        thinking = settings.inference.thinking
        lookup = settings.inference.lookup
        # Validate both files before starting anything, so a bad poet path fails fast too.
        thread = InferenceThread()
        shared = same_file(choices["educator"].path, choices["poet"].path)
        try:
            educator_backend = LlamaBackend(choices["educator"].path, runtime, thread, thinking.educator,
                                            adapter=choices["educator"].adapter, lookup=lookup.educator,
                                            shared_weights=shared)
            poet_backend = LlamaBackend(choices["poet"].path, runtime, thread, thinking.poet,
                                        adapter=choices["poet"].adapter, lookup=lookup.poet, shared_weights=shared)
        except BaseException:
            thread.close()
            raise

        engine = cls(
            RoleChat("educator", educator_backend, persona.educator_system, sampling.educator),
            RoleChat("poet", poet_backend, persona.poet_system, sampling.poet),
            choices, thread=thread, runtime=runtime, thinking=thinking, lookup=lookup,
        )

        def close_all():
            # The role's backend now, not the one it started with: `swap` may have replaced it.
            engine.educator.backend.close()
            engine.poet.backend.close()
            thread.close()

        engine._on_close = close_all
        return engine

    def swap(self, choice: ModelChoice) -> None:
        """Serve `choice.role` from another GGUF file. The new model is checked and loaded
        before the old one closes, so a bad file leaves the role as it was."""
        from poetry_workshop.inference.llama_backend import LlamaBackend

        other = self.role("poet" if choice.role == "educator" else "educator").backend
        # The other role keeps the copy it loaded with; this one at least maps a shared file.
        shared = same_file(choice.path, getattr(other, "path", None))
        new = LlamaBackend(choice.path, self._runtime, self._thread, getattr(self._thinking, choice.role),
                           adapter=choice.adapter, lookup=getattr(self._lookup, choice.role), shared_weights=shared)
        try:
            new.load()
        except BaseException:
            new.close()
            raise
        chat = self.role(choice.role)
        old, chat.backend = chat.backend, new
        old.close()
        self.choices = {**self.choices, choice.role: choice}

    def role(self, name: str) -> RoleChat:
        return {"educator": self.educator, "poet": self.poet}[name]

    def load(self) -> None:
        self.educator.backend.load()
        self.poet.backend.load()

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()
            self._on_close = None
