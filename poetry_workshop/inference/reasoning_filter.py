"""Cutting a thinking model's reasoning out of its streamed reply.

Everything between `<think>` and `</think>` is reasoning: it never reaches a pane, a
draft, a critique or the store. The filter sits on the stream, so text outside the tags
still goes out as it arrives; it holds back only a tail that could be the start of a tag
(a `<thi` at the end of a chunk), and, before anything visible, leading whitespace (which
is dropped if a think block follows it, and kept otherwise, so a reply with no tags comes
out unchanged).

Three shapes are handled: `<think>…</think>answer`; an unterminated `<think>…` (the model
ran out of tokens while reasoning: no visible text at all); and a reply that starts inside
the reasoning because the prompt opened the block (DeepSeek-R1), carrying only `</think>`.
A stray `</think>` outside a block is dropped.
"""

from __future__ import annotations

from collections.abc import Callable

from poetry_workshop.inference.thinking import THINK_CLOSE, THINK_OPEN


def _partial_tag(text: str, tags: tuple[str, ...]) -> int:
    """Length of the longest tail of `text` that is a proper prefix of one of `tags`."""
    longest = 0
    for tag in tags:
        for n in range(min(len(tag) - 1, len(text)), longest, -1):
            if text.endswith(tag[:n]):
                longest = n
                break
    return longest


class ReasoningFilter:
    """Passes answer text on to `emit`; swallows reasoning and the tags around it."""

    def __init__(self, emit: Callable[[str], None], *, inside: bool = False):
        self.emit = emit
        self.inside = inside  # in a think block now
        self.thought = inside  # a think block was seen (or opened by the prompt)
        self._pending = ""  # a tail that may be the start of a tag
        self._lead = ""  # leading whitespace before any visible text
        self._visible = False  # something visible went out
        self._after_thought = False  # just past `</think>`: its blank lines are dropped

    def feed(self, piece: str) -> None:
        self._pending += piece
        self._drain(final=False)

    def finish(self) -> None:
        """The stream ended: release what was held back; an unclosed thought is dropped."""
        self._drain(final=True)
        lead, self._lead = self._lead, ""
        self._out(lead)  # a reply of only whitespace comes out as it was

    def _drain(self, final: bool) -> None:
        while self._pending:
            tags = (THINK_CLOSE,) if self.inside else (THINK_OPEN, THINK_CLOSE)
            found = [(i, tag) for tag in tags if (i := self._pending.find(tag)) >= 0]
            if not found:
                keep = 0 if final else _partial_tag(self._pending, tags)
                cut = len(self._pending) - keep
                ready, self._pending = self._pending[:cut], self._pending[cut:]
                if not self.inside:
                    self._answer(ready)
                return
            at, tag = min(found)
            before, self._pending = self._pending[:at], self._pending[at + len(tag) :]
            if self.inside:
                self.inside, self._after_thought = False, True
                continue
            if tag == THINK_OPEN:
                if self._visible or before.strip():
                    self._answer(before)
                else:
                    self._lead = ""  # whitespace before a first thought is no part of the answer
                self.inside = self.thought = True
            else:  # a stray close: drop the tag, keep the text
                self._answer(before)
                self._after_thought = True

    def _answer(self, text: str) -> None:
        if self._after_thought:
            text = text.lstrip()  # the blank lines after `</think>` belong to the block
            if not text:
                return
            self._after_thought = False
        elif not self._visible:
            if not text.strip():
                self._lead += text  # until we know whether an answer or a thought follows
                return
            text, self._lead = self._lead + text, ""
        self._out(text)

    def _out(self, text: str) -> None:
        if text:
            self._visible = True
            self.emit(text)
