"""One training conversation as token ids and a loss mask, under the base model's template.

The loss covers exactly the assistant turns and each one's end-of-turn token, so the model
learns to stop; system prompts, requests and template markup (the newline some templates put
after the end-of-turn token included) are context.

The ids are what the app sends for the last answer (the conversation before it, rendered with
the generation prompt) followed by that answer. Each answer's span is what its own rendering
adds after its generation prompt; the spans are then found, in order, in those ids. So a
template that rewrites earlier turns still trains on what inference sees: Qwen3 drops the
(empty) think block of earlier answers, Mistral writes the system prompt into the last user
turn only. A span that cannot be found (the template changes the assistant's own words) is
refused with the reason, rather than trained on with a wrong mask.

Thinking templates (Qwen3's `enable_thinking`) are rendered with thinking off: the teaching
data has no reasoning in it, and the app runs these models with thinking off by default.
"""

from __future__ import annotations

from dataclasses import dataclass

from poetry_workshop.errors import ConfigError


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    assistant_masks: list[int]  # 1 where the loss applies


def template_options(tokenizer) -> dict:
    """What every rendering for training passes to the template: thinking off where the
    template has the switch (it is ignored by templates that do not read it)."""
    return {"enable_thinking": False} if "enable_thinking" in (tokenizer.chat_template or "") else {}


def conversation_ids(tokenizer, messages: list[dict], generation_prompt: bool = False) -> list[int]:
    """The ids of `messages` under the base's chat template, as the app renders them."""
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt,
                                        **template_options(tokenizer))
    if isinstance(out, dict) or hasattr(out, "keys"):  # a BatchEncoding in transformers 5
        out = out["input_ids"]
    return list(out)


def _find(ids: list[int], span: list[int], start: int) -> int:
    for i in range(start, len(ids) - len(span) + 1):
        if ids[i:i + len(span)] == span:
            return i
    return -1


def answer_ids(tokenizer, messages: list[dict], k: int, end_of_turn: int) -> list[int]:
    """Assistant turn `k` as the template writes it after its generation prompt, through its
    end-of-turn token. Mistral's templates write the system prompt only into the last user
    turn, so a rendering that ends with an answer has none: then the turn is measured
    against the same conversation without its system prompt."""
    for context in (messages[:k], [m for m in messages[:k] if m["role"] != "system"]):
        prompt = conversation_ids(tokenizer, context, generation_prompt=True)
        turn = conversation_ids(tokenizer, context + [messages[k]])
        if turn[: len(prompt)] == prompt and len(turn) > len(prompt):
            span = turn[len(prompt):]
            if end_of_turn in span:  # markup after the end-of-turn token (a newline) is not the answer
                span = span[: len(span) - span[::-1].index(end_of_turn)]
            return span
    raise ConfigError(
        "the base model's chat template renders an assistant turn differently from its own generation prompt; "
        "choose a base whose template appends turns (ChatML, Llama 3, Qwen, Gemma, Mistral)")


def tokenize_conversation(tokenizer, messages: list[dict], end_of_turn: int | None = None) -> TokenizedExample:
    """`end_of_turn` (see end_of_turn_id) may be passed in to save two renderings a call."""
    if end_of_turn is None:
        end_of_turn = end_of_turn_id(tokenizer)
    last = _last_assistant(messages)
    answers = [answer_ids(tokenizer, messages, k, end_of_turn)
               for k in range(last + 1) if messages[k]["role"] == "assistant"]
    # Exactly what the app sends for the last answer, then the answer.
    ids = conversation_ids(tokenizer, messages[:last], generation_prompt=True) + answers[-1]
    mask = [0] * len(ids)
    at = 0
    for number, span in enumerate(answers, start=1):
        found = _find(ids, span, at)
        if found < 0:
            raise ConfigError(
                f"the base model's chat template rewrites answer {number} of a conversation when it is part of a "
                "longer one, so its loss mask cannot be placed; choose a base whose template keeps the assistant's "
                "words as written")
        mask[found:found + len(span)] = [1] * len(span)
        at = found + len(span)
    return TokenizedExample(ids, mask)


def _last_assistant(messages: list[dict]) -> int:
    for k in range(len(messages) - 1, -1, -1):
        if messages[k]["role"] == "assistant":
            return k
    raise ConfigError("a training conversation has no assistant turn")


def end_of_turn_id(tokenizer) -> int:
    """The token that ends an assistant turn in the template: the first token the template
    puts after an assistant's text."""
    probe = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    prompt = conversation_ids(tokenizer, probe[:1], generation_prompt=True)
    full = conversation_ids(tokenizer, probe)
    added = full[len(prompt):]
    content = tokenizer.encode("b", add_special_tokens=False)
    for i in range(len(added) - len(content) + 1):
        if added[i:i + len(content)] == content and i + len(content) < len(added):
            return added[i + len(content)]
    # SentencePiece writes "b" alone with a leading-space piece, and after "[/INST]" without
    # one: then the end of turn is the first control token after the answer's first token.
    special = {i for i, t in tokenizer.added_tokens_decoder.items() if t.special} | set(tokenizer.all_special_ids)
    for token in added[1:]:
        if token in special:
            return token
    raise ConfigError("could not find the end-of-turn token of the base model's chat template")


# Gemma 3's instruct template, text only. A Gemma base without a template (the pretrained
# Gemma 3 270M) gets it, so the model it becomes speaks the format its tokenizer already has
# tokens for (<start_of_turn>, <end_of_turn>). Gemma has no system role: the system prompt is
# folded into the first user turn, as Google's own template does.
GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}"
    "{{ '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)


def fallback_template(model_type: str) -> str | None:
    """The chat template given to a base that ships none, by its architecture; None when
    there is no right choice to make for it."""
    return GEMMA_TEMPLATE if model_type.startswith("gemma") else None


def give_template(tokenizer, model_type: str) -> str | None:
    """Give a template-less tokenizer its family's template; returns a line saying so, or
    None when it had one. A base with neither is refused by name."""
    if tokenizer.chat_template:
        return None
    template = fallback_template(model_type)
    if template is None:
        raise ConfigError(f"the base model ({model_type}) has no chat template and none is known for its family; "
                          "choose an instruct model, or a Gemma base")
    tokenizer.chat_template = template
    return f"the base has no chat template; training with the {model_type.split('_')[0]} template, which the export keeps"


def template_tokens(tokenizer) -> list[int]:
    """The control tokens the template writes around turns (start and end of a turn), BOS
    and the pad token aside."""
    probe = [{"role": "system", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]
    special = {i for i, t in tokenizer.added_tokens_decoder.items() if t.special} | set(tokenizer.all_special_ids)
    special -= {tokenizer.pad_token_id, tokenizer.bos_token_id}
    return sorted({t for t in conversation_ids(tokenizer, probe) if t in special})

