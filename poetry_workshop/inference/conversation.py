"""A role's conversation: the system prompt and the turns since, and how it fits the context.

Turns are kept exactly as sent and as generated (byte-identical), because the KV cache is
reused only for a token prefix that matches. When the prompt outgrows the context, the
oldest whole rounds (a user turn and its reply) are dropped; never the system prompt, the
newest request, or the reply before it (the current draft for the Poet, the latest
critique for the Educator), nor a turn marked `pinned`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Turn:
    role: str  # "user" or "assistant"
    content: str
    pinned: bool = False


@dataclass
class Conversation:
    system: str
    turns: list[Turn] = field(default_factory=list)

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}] + [
            {"role": t.role, "content": t.content} for t in self.turns
        ]

    def add_user(self, content: str, pinned: bool = False) -> None:
        self.turns.append(Turn("user", content, pinned))

    def add_assistant(self, content: str, pinned: bool = False) -> None:
        self.turns.append(Turn("assistant", content, pinned))

    def drop_oldest_round(self) -> bool:
        """Drop the oldest droppable user/assistant pair; False when none is left."""
        protected = len(self.turns) - 2  # the reply before the newest request, and the request
        for i in range(0, max(protected, 0) - 1):
            user, reply = self.turns[i], self.turns[i + 1]
            if user.role == "user" and reply.role == "assistant" and not (user.pinned or reply.pinned):
                del self.turns[i : i + 2]
                return True
        return False
