"""One training conversation as token ids and a loss mask, under the base model's template.

The loss covers the assistant turns only, and each turn's end-of-turn token is inside the
trained span, so the model learns to stop; system prompts, requests and template markup
are context. Spans are found by rendering the conversation turn by turn: the assistant's
part is what the full rendering adds after the rendering that ends with the generation
prompt. A template that rewrites earlier turns (so a prefix does not stay a prefix) is
refused with its name, rather than trained on with a wrong mask.
"""

from __future__ import annotations

from dataclasses import dataclass

from poetry_workshop.errors import ConfigError


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    assistant_masks: list[int]  # 1 where the loss applies


def _ids(tokenizer, messages: list[dict], generation_prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt)
    if isinstance(out, dict) or hasattr(out, "keys"):  # BatchEncoding in newer transformers
        out = out["input_ids"]
    return list(out)


def tokenize_conversation(tokenizer, messages: list[dict]) -> TokenizedExample:
    ids: list[int] = []
    mask: list[int] = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = _ids(tokenizer, messages[:k], generation_prompt=True)
        full = _ids(tokenizer, messages[: k + 1], generation_prompt=False)
        if full[: len(prompt)] != prompt or prompt[: len(ids)] != ids:
            raise ConfigError(
                "the base model's chat template does not render a conversation as a growing prefix; "
                "choose a base whose template appends turns (ChatML, Llama 3 and most instruct models do)"
            )
        mask += [0] * (len(prompt) - len(ids)) + [1] * (len(full) - len(prompt))
        ids = full
    return TokenizedExample(ids, mask)


def end_of_turn_id(tokenizer) -> int:
    """The token that ends an assistant turn in the template: the first token the template
    puts after an assistant's text."""
    probe = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    prompt = _ids(tokenizer, probe[:1], generation_prompt=True)
    full = _ids(tokenizer, probe, generation_prompt=False)
    added = full[len(prompt):]
    content = tokenizer.encode("b", add_special_tokens=False)
    for i in range(len(added) - len(content) + 1):
        if added[i:i + len(content)] == content and i + len(content) < len(added):
            return added[i + len(content)]
    raise ConfigError("could not find the end-of-turn token of the base model's chat template")
