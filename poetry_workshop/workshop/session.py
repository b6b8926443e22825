"""The workshop loop over a revision tree: the one session core every front end drives.

Write with the Poet: request → brief → draft → critique → revise → follow-up critique → …
Workshop my poem: the person's poem → critique → (a revision by the person or the Poet) →
follow-up → … Every node is committed to the store before the next step starts, and each
generated node keeps the exact user turn and raw reply, so a resumed session rebuilds both
conversations token for token (and the KV cache prefix with them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from poetry_workshop.config.schema import MaxTokens
from poetry_workshop.errors import GenerationError, WorkshopError
from poetry_workshop.inference.conversation import Turn
from poetry_workshop.inference.engine import Engine, Reply
from poetry_workshop.inference.llama_backend import GenerationStats
from poetry_workshop.workshop import prompts
from poetry_workshop.workshop.store import Node, RevisionTree, SessionRecord, SessionStore

LOOP_KINDS = ("request", "brief", "draft", "critique")
MAX_INPUT_CHARS = 20_000


# ------------------------------------------------------------------ events for front ends
@dataclass
class StepStarted:
    role: str
    action: str  # brief, draft, critique, follow-up, revision, answer


@dataclass
class TextChunk:
    role: str
    text: str


@dataclass
class StepFinished:
    node: Node
    stats: GenerationStats | None


@dataclass
class Notice:
    text: str


Event = StepStarted | TextChunk | StepFinished | Notice


def validate_text(text: str, what: str) -> str:
    if not text or not text.strip():
        raise WorkshopError(f"the {what} is empty; write a few words of it")
    if len(text) > MAX_INPUT_CHARS:
        raise WorkshopError(
            f"the {what} is {len(text):,} characters; the limit is {MAX_INPUT_CHARS:,}: shorten it"
        )
    return text.strip("\n")


@dataclass(frozen=True)
class Checkpoint:
    """The session as it was before one step, so the step can be taken back."""

    label: str
    head_id: str | None
    status: str
    node_ids: frozenset[str]


def _title(text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "untitled")
    return first if len(first) <= 60 else first[:57].rstrip() + "…"


class WorkshopSession:
    def __init__(
        self,
        store: SessionStore,
        engine: Engine,
        record: SessionRecord,
        max_tokens: MaxTokens,
        on_event: Callable[[Event], None] | None = None,
    ):
        self.store = store
        self.engine = engine
        self.record = record
        self.max_tokens = max_tokens
        self.on_event = on_event or (lambda event: None)
        self._restore_conversations()

    # ---------------------------------------------------------------------- creation
    @classmethod
    def start(
        cls, store: SessionStore, engine: Engine, *, mode: str, text: str, rounds: int,
        max_tokens: MaxTokens, on_event: Callable[[Event], None] | None = None, origin: str = "app",
    ) -> WorkshopSession:
        """Begin a session: `mode` "write" takes a request, "workshop" takes a poem. `origin`
        names a headless command (batch, write, critique); the app never offers those to resume."""
        if mode not in ("write", "workshop"):
            raise WorkshopError(f"unknown mode {mode!r}; use 'write' or 'workshop'")
        if rounds < 1:
            raise WorkshopError(f"--rounds must be at least 1, got {rounds}")
        text = validate_text(text, "request" if mode == "write" else "poem")
        models = {role: str(choice.path) for role, choice in engine.choices.items()}
        first = "request" if mode == "write" else "draft"
        record, _ = store.start_session(mode, _title(text), rounds, models, first, "person", text, origin)
        return cls(store, engine, record, max_tokens, on_event)

    @classmethod
    def resume(
        cls, store: SessionStore, engine: Engine, session_id: str, max_tokens: MaxTokens,
        on_event: Callable[[Event], None] | None = None,
    ) -> WorkshopSession:
        return cls(store, engine, store.get_session(session_id), max_tokens, on_event)

    # ---------------------------------------------------------------------- state
    def refresh(self) -> None:
        self.record = self.store.get_session(self.record.id)

    @property
    def tree(self) -> RevisionTree:
        return self.store.tree(self.record.id)

    @property
    def path(self) -> list[Node]:
        return self.tree.path_to(self.record.head_id)

    def _last(self, kind: str, path: list[Node] | None = None) -> Node | None:
        return next((n for n in reversed(path or self.path) if n.kind == kind), None)

    @property
    def current_draft(self) -> Node | None:
        return self._last("draft")

    @property
    def latest_critique(self) -> Node | None:
        return self._last("critique")

    @property
    def rounds_done(self) -> int:
        return sum(1 for n in self.path if n.kind == "critique")

    def next_action(self) -> str | None:
        """What the loop does next from the head, or None when the rounds are done."""
        if self.record.status == "accepted":
            return None
        loop = [n for n in self.path if n.kind in LOOP_KINDS]
        if not loop:
            return None
        last = loop[-1]
        if last.kind == "request":
            return "brief"
        if last.kind == "brief":
            return "draft"
        if last.kind == "draft":
            return "critique"
        if self.rounds_done < self.record.target_rounds:
            return "revise"
        return None

    # ---------------------------------------------------------------------- the loop
    def run(self, rounds: int | None = None, cancel: threading.Event | None = None) -> None:
        """Step until the rounds are done (or `cancel` is set)."""
        if rounds is not None and rounds != self.record.target_rounds:
            self.store.set_target_rounds(self.record.id, rounds)
            self.refresh()
        while (action := self.next_action()) is not None:
            if cancel is not None and cancel.is_set():
                return
            node = self.step(action, cancel)
            if node is None or node.meta.get("stopped"):
                return

    def step(self, action: str | None = None, cancel: threading.Event | None = None) -> Node | None:
        """One step of the loop; None when it was stopped before it wrote anything."""
        action = action or self.next_action()
        handlers = {"brief": self.make_brief, "draft": self.write_draft, "critique": self.critique, "revise": self.revise}
        if action not in handlers:
            raise WorkshopError("nothing to do: the session is finished; branch, edit or ask a question")
        return handlers[action](cancel=cancel)

    def make_brief(self, cancel: threading.Event | None = None) -> Node | None:
        request = self._last("request")
        if request is None:
            raise WorkshopError("this session has no request to turn into a brief")
        return self._generate("educator", "brief", "brief", prompts.brief_request(request.text),
                              self.max_tokens.brief, cancel)

    def write_draft(self, cancel: threading.Event | None = None) -> Node | None:
        brief = self._last("brief")
        if brief is None:
            raise WorkshopError("this session has no brief to write from")
        return self._generate("poet", "draft", "draft", prompts.draft_request(brief.text),
                              self.max_tokens.draft, cancel)

    def critique(self, cancel: threading.Event | None = None) -> Node | None:
        draft = self.current_draft
        if draft is None:
            raise WorkshopError("there is no draft to critique yet")
        earlier = [n for n in self.path if n.kind == "critique"]
        if earlier:
            return self._generate("educator", "critique", "follow-up", prompts.followup_request(draft.text),
                                  self.max_tokens.critique, cancel)
        return self._generate("educator", "critique", "critique", prompts.critique_request(draft.text),
                              self.max_tokens.critique, cancel)

    def revise(self, cancel: threading.Event | None = None) -> Node | None:
        critique, draft = self.latest_critique, self.current_draft
        if critique is None or draft is None:
            raise WorkshopError("there is no critique to revise from yet")
        poet_turns = self.engine.poet.conversation.turns
        last_poet = poet_turns[-1].content if poet_turns and poet_turns[-1].role == "assistant" else None
        known = last_poet is not None and prompts.clean_poem(last_poet, self._specials("poet")) == draft.text
        return self._generate("poet", "draft", "revision",
                              prompts.revise_request(critique.text, None if known else draft.text),
                              self.max_tokens.draft, cancel)

    def critique_again(self, cancel: threading.Event | None = None) -> Node | None:
        """A fresh critique of the current draft, beside the one it already has."""
        draft = self.current_draft
        if draft is None:
            raise WorkshopError("there is no draft to critique yet")
        if self.record.head_id != draft.id:
            self.branch(draft.id)
        return self.critique(cancel)

    def run_rounds(self, rounds: int, cancel: threading.Event | None = None) -> None:
        """Run `rounds` more revise/critique rounds unattended (the app's auto action)."""
        if self.record.status == "accepted":
            raise WorkshopError("this poem is accepted; branch from a draft to keep working")
        self.run(self.rounds_done + rounds, cancel)

    def ask(self, question: str, cancel: threading.Event | None = None) -> Node | None:
        question = validate_text(question, "question")
        self.store.add_node(self.record.id, self.record.head_id, "question", "person", question)
        self.refresh()
        return self._generate("educator", "answer", "answer", prompts.question_request(question),
                              self.max_tokens.answer, cancel)

    def edit(self, poem: str) -> Node:
        """The person's own revision: a new draft under the head."""
        poem = validate_text(poem, "poem")
        node = self.store.add_node(self.record.id, self.record.head_id, "draft", "person", poem)
        self.refresh()
        self.on_event(StepFinished(node, None))
        return node

    def branch(self, node_id: str) -> None:
        """Continue from an earlier node: the next step makes a sibling of what followed it."""
        tree = self.tree
        if node_id not in tree.nodes:
            raise WorkshopError(f"no node {node_id!r} in session {self.record.id}")
        self.store.set_head(self.record.id, node_id)
        self.refresh()
        self._restore_conversations()

    def accept(self) -> None:
        self.store.set_status(self.record.id, "accepted")
        self.refresh()

    # ---------------------------------------------------------------------- undo
    def checkpoint(self, label: str) -> Checkpoint:
        """Where the session stands before a step (`label` says which, for "undid …")."""
        self.refresh()
        return Checkpoint(label, self.record.head_id, self.record.status, frozenset(self.tree.nodes))

    def undo(self, before: Checkpoint) -> int:
        """Take the session back to `before`: the nodes made since are deleted, the head and
        status restored, both conversations rebuilt. Returns how many nodes went."""
        made = [nid for nid in self.tree.nodes if nid not in before.node_ids]
        if not made and before.head_id == self.record.head_id and before.status == self.record.status:
            raise WorkshopError("nothing to undo: the last step changed nothing")
        self.store.undo_step(self.record.id, made, before.head_id, before.status)
        self.refresh()
        self._restore_conversations()
        return len(made)

    # ---------------------------------------------------------------------- internals
    def _specials(self, role: str) -> list[str]:
        return list(getattr(self.engine.role(role).backend, "stop_texts", []))

    def _generate(self, role: str, kind: str, action: str, user_text: str, max_tokens: int,
                  cancel: threading.Event | None) -> Node | None:
        """Generate and commit one node; None when stopped before any text came (a stop
        that leaves nothing is no draft and no critique: nothing is stored)."""
        self.on_event(StepStarted(role, action))
        chat = self.engine.role(role)
        reply: Reply = chat.send(
            user_text, max_tokens,
            on_text=lambda chunk: self.on_event(TextChunk(role, chunk)),
            cancel=cancel,
            notice=lambda text: self.on_event(Notice(text)),
            # The step's place in the session: "critique again" samples afresh, a replay repeats.
            seed_offset=len(self.tree.nodes),
        )
        clean = prompts.clean_poem if kind == "draft" else prompts.clean_reply
        text = clean(reply.text, self._specials(role))
        if not text and reply.stopped:
            chat.conversation.turns = chat.conversation.turns[:-2]  # as if never asked
            self.on_event(Notice(f"stopped before the {role.capitalize()} wrote anything: nothing was kept"))
            return None
        if not text:
            chat.conversation.turns = chat.conversation.turns[:-2]  # as if never asked
            if reply.stats.thinking_tokens and reply.stats.finish_reason == "length":
                raise GenerationError(
                    f"the {role.capitalize()} spent all {reply.stats.generated_tokens} tokens thinking and wrote "
                    f"no {action}; turn thinking off ([inference_config.thinking] {role} = false) or raise its max_tokens"
                )
            raise GenerationError(f"the {role.capitalize()} returned an empty {action}; try again")
        meta: dict[str, Any] = {
            "prompt": user_text,
            "raw": reply.text,
            "stats": vars(reply.stats),
            "stopped": reply.stopped,
            "action": action,
        }
        node = self.store.add_node(self.record.id, self.record.head_id, kind, role, text, meta)
        self.refresh()
        self.on_event(StepFinished(node, reply.stats))
        return node

    def _restore_conversations(self) -> None:
        """Rebuild both roles' turns from the stored path (exact prompts and raw replies)."""
        turns: dict[str, list[Turn]] = {"educator": [], "poet": []}
        for node in self.path:
            if node.author in turns and "prompt" in node.meta:
                turns[node.author].append(Turn("user", node.meta["prompt"]))
                turns[node.author].append(Turn("assistant", node.meta.get("raw", node.text)))
        self.engine.educator.restore(turns["educator"])
        self.engine.poet.restore(turns["poet"])
