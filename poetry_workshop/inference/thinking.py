"""Thinking models: what a chat template says about reasoning, and the prompt that turns it off.

Qwen3, QwQ and the DeepSeek-R1 distills reason in `<think>…</think>` before they answer,
as plain text tokens. Their templates say so: Qwen3 and QwQ take an `enable_thinking`
switch, the R1 distills open `<think>` in the generation prompt and strip earlier turns'
reasoning. Thinking is a per-role setting, off by default: a thinking critique costs
hundreds of tokens nobody reads. Whatever the setting, the reasoning itself never leaves
the backend (see `reasoning_filter`).
"""

from __future__ import annotations

from dataclasses import dataclass

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
SWITCH = "enable_thinking"

# What closes an open think block when thinking is off: the same empty block Qwen3's own
# template writes for enable_thinking=False, so the model sees the form it was trained on.
_EMPTY_THOUGHT_END = "\n\n" + THINK_CLOSE + "\n\n"


@dataclass(frozen=True)
class ThinkingTemplate:
    """What a chat template does with reasoning."""

    thinks: bool  # the template knows think blocks: the model behind it may reason
    has_switch: bool  # it reads `enable_thinking` (Qwen3, QwQ, DeepSeek V3.1, …)

    def render_kwargs(self, thinking: bool) -> dict[str, bool]:
        """Extra template variables for a prompt with thinking on or off.

        Passed explicitly both ways: templates disagree on what an undefined switch means
        (Qwen3 reads it as on, the QwQ template in llama.cpp's collection as off)."""
        return {SWITCH: thinking} if self.has_switch else {}


def thinking_template(template: str | None) -> ThinkingTemplate:
    """Detect a thinking template from its text (the markers every known one carries)."""
    text = template or ""
    has_switch = SWITCH in text
    return ThinkingTemplate(thinks=has_switch or THINK_OPEN in text or THINK_CLOSE in text, has_switch=has_switch)


def opens_thought(prompt: str) -> bool:
    """True when the rendered prompt leaves a think block open, so the reply starts inside
    the reasoning and carries only its `</think>` (DeepSeek-R1 distills, QwQ)."""
    stripped = prompt.rstrip()
    return stripped.endswith(THINK_OPEN)


def close_open_thought(prompt: str) -> str:
    """The prompt with an open think block closed empty: thinking off for a template that
    has no switch and always opens one (DeepSeek-R1 distills)."""
    if not opens_thought(prompt):
        return prompt
    return prompt.rstrip() + _EMPTY_THOUGHT_END
