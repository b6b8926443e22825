"""A tiny real training run: small LoRA settings on the starter base, and five question and
answer pairs as an Educator training set."""

from __future__ import annotations

import json

from tests.support.cli import STARTER

# A LoRA small enough to train in seconds on two cores, whatever the examples' length.
SMALL_LORA = {
    "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__BATCH_SIZE": "2",
    "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__GRADIENT_ACCUMULATION": "1",
    "POETRY_WORKSHOP__EDUCATOR_TRAINING__LORA__R": "4",
    "POETRY_WORKSHOP__EDUCATOR_TRAINING__LORA__ALPHA": "8",
}
# The same on the starter base, with short examples and a checkpoint every step.
SMALL = {
    "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__BASE_MODEL": f'"{STARTER}"',
    "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__BATCH_SIZE": "2",
    "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__GRADIENT_ACCUMULATION": "1",
    "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__MAX_SEQ": "512",
    "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__CHECKPOINT_STEPS": "1",
    "POETRY_WORKSHOP__EDUCATOR_TRAINING__LORA__R": "4",
    "POETRY_WORKSHOP__EDUCATOR_TRAINING__LORA__ALPHA": "8",
}
SYSTEM = "You are the Educator."
PAIRS = [("What is a volta?", "The turn in a poem, where the thought changes direction."),
         ("What is enjambment?", "A sentence running past the end of a line into the next."),
         ("What is a caesura?", "A pause inside a line, often at a comma or a full stop."),
         ("What is an image?", "Something a reader can see, hear or touch in the words."),
         ("What is a stanza?", "A group of lines set off by a blank line.")]


def conversation(question: str, answer: str) -> dict:
    return {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question},
                         {"role": "assistant", "content": answer}]}


def write_sets(data) -> None:
    folder = data / "educator_training"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(conversation(q, a)) + "\n" for q, a in PAIRS * 2))
    (folder / "valid.jsonl").write_text(json.dumps(conversation(*PAIRS[0])) + "\n")


def masked_spans(example) -> list[list[int]]:
    """The runs of token ids a TokenizedExample's loss covers, in order."""
    spans, current = [], []
    for token, masked in zip(example.input_ids, example.assistant_masks):
        if masked:
            current.append(token)
        elif current:
            spans.append(current)
            current = []
    if current:
        spans.append(current)
    return spans
