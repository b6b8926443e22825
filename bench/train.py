"""Benchmark of the project's trainer against a plain peft loop (a benchmark, not a test).

Starter model as the base, on the CPU, the same batches (4 short conversations, LoRA r=8)
for all three, in this one process:

1. plain: a hand-written forward / backward / AdamW step on a peft model;
2. project: `pipeline.trainer.train` (trl's SFTTrainer with the project's settings);
3. stock: SFTTrainer with trl's own defaults (bf16 and gradient checkpointing on), which is
   what made a first attempt here run many times slower than the plain loop.

Seconds per optimiser step exclude the first step of each (warm-up). Goal: project ÷ plain
<= 1.5.

Usage: .venv/bin/python -m bench.train [--steps N]
Ends with one `goal <name>: <measured> (target <target>) met|missed` line per goal.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TQDM_DISABLE", "1")

from poetry_workshop.inference import starter  # noqa: E402 - after the environment above, which tqdm reads on import

PAIRS = [("What is a volta?", "The turn in a poem, where the thought changes direction."),
         ("What is enjambment?", "A sentence running past the end of a line into the next."),
         ("What is a caesura?", "A pause inside a line, often at a comma or a full stop."),
         ("What is an image?", "Something a reader can see, hear or touch in the words.")]
MESSAGES = [[{"role": "system", "content": "You are the Educator."}, {"role": "user", "content": q},
             {"role": "assistant", "content": a}] for q, a in PAIRS]


def plain_loop(base: str, steps: int) -> list[float]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from poetry_workshop.pipeline.training.chat_examples import tokenize_conversation

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, task_type="CAUSAL_LM",
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                             "up_proj", "down_proj"]))
    examples = [tokenize_conversation(tokenizer, m) for m in MESSAGES]
    width = max(len(e.input_ids) for e in examples)
    pad = tokenizer.unk_token_id
    ids = torch.tensor([e.input_ids + [pad] * (width - len(e.input_ids)) for e in examples])
    attention = torch.tensor([[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in examples])
    labels = torch.tensor([[t if m else -100 for t, m in zip(e.input_ids, e.assistant_masks)] + [-100] * (width - len(e.input_ids))
                           for e in examples])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    model.train()
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        loss = model(input_ids=ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    return times[1:]


def project_trainer(steps: int, stock: bool) -> list[float]:
    """Steps of the project's trainer; `stock` puts back trl's own bf16/checkpointing defaults."""
    from poetry_workshop.config.loader import load_settings
    from poetry_workshop.pipeline.training import trainer
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data" / "educator_training"
        data.mkdir(parents=True)
        (data / "train.jsonl").write_text("".join(json.dumps({"messages": m}) + "\n" for m in MESSAGES * 4))
        os.environ.update({
            "POETRY_WORKSHOP_DATA": str(Path(tmp) / "data"),
            "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__BASE_MODEL": f'"{ROOT / "models" / starter.FILENAME}"',
            "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__BATCH_SIZE": "4",
            "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__GRADIENT_ACCUMULATION": "1",
            "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__CHECKPOINT_STEPS": "1000",
            "POETRY_WORKSHOP__EDUCATOR_TRAINING__LORA__R": "8",
            "POETRY_WORKSHOP__EDUCATOR_TRAINING__LORA__ALPHA": "16",
        })
        stamps: list[float] = []
        original = trainer.cpu_friendly
        if stock:
            trainer.cpu_friendly = lambda cuda: {}  # trl's defaults: bf16 and gradient checkpointing on
        try:
            trainer.train("educator", load_settings(), max_steps=steps + 1,
                          on_progress=lambda e: stamps.append(time.perf_counter()) if e.loss is not None else None)
        finally:
            trainer.cpu_friendly = original
    return [b - a for a, b in zip(stamps, stamps[1:])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    from poetry_workshop.pipeline.training.base_model import resolve_base

    base = resolve_base(str(ROOT / "models" / starter.FILENAME), lambda m: print(m, file=sys.stderr))
    plain = statistics.median(plain_loop(base, args.steps))
    ours = statistics.median(project_trainer(args.steps, stock=False))
    stock = statistics.median(project_trainer(2, stock=True))
    print(f"plain peft loop   {plain:6.2f} s/step")
    print(f"project trainer   {ours:6.2f} s/step  ({ours / plain:.2f}x)")
    print(f"stock SFTConfig   {stock:6.2f} s/step  ({stock / plain:.2f}x: bf16 and gradient checkpointing on a CPU)")
    ratio = ours / plain
    print(f"goal trainer_step_ratio: {ratio:.2f} (target <= 1.5) {'met' if ratio <= 1.5 else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
