"""Training one role's adapter with trl's SFTTrainer and peft: QLoRA on CUDA, LoRA elsewhere.

The run reads `data/<role>_training/{train,valid}.jsonl`, checks every line, tokenizes each
conversation with the base model's own chat template (loss on assistant turns only, see
chat_examples.py), and trains a LoRA adapter with the hyper-parameters of its training
config. Checkpoints land in `checkpoints/<role>/` every `checkpoint_steps`; a run started
again resumes from the newest complete one. Validation loss is computed each epoch;
progress goes to a callback as `TrainingProgress`.

trl's SFTConfig defaults to bf16 and gradient checkpointing. On a CPU without bf16 units
both cost far more than they save (bf16 matmuls are emulated; checkpointing runs every
forward twice), which is why a stock SFTTrainer ran many times slower than a plain peft
loop here. They are turned on only on CUDA (checkpointing on Apple's MPS too): device.py
chooses the device and dtype, and memory_plan.py checks that the run fits it before a weight
loads.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.errors import ConfigError
from poetry_workshop.names import ROLES
from poetry_workshop.pipeline.training.base_model import (
    load_template_rows,
    quiet_transformers,
    resolve_base,
    save_template_rows,
    seat_template_tokens,
    train_template_rows,
)
from poetry_workshop.pipeline.training.results import TrainingCancelled, TrainingProgress, TrainResult
from poetry_workshop.pipeline.training.training_sets import check_conversation


def checkpoints_dir(role: str) -> Path:
    """Checkpoints and the final adapter of one role."""
    return locations.checkpoints_dir() / role


def read_conversations(path: Path) -> list[list[dict]]:
    """Every line a valid conversation, or a ConfigError naming the first bad one."""
    if not path.is_file():
        raise ConfigError(f"{path}: training file not found; run `workshop data prepare` first")
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 (byte {exc.start}); regenerate it with `workshop data prepare`")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            messages = json.loads(line)["messages"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ConfigError(f"{path}:{number}: not a {{\"messages\": [...]}} line; fix it or run `workshop data prepare`")
        roles = {m.get("role") for m in messages if isinstance(m, dict)}
        unknown = roles - {"system", "user", "assistant"}
        if unknown or not all(isinstance(m, dict) for m in messages):
            raise ConfigError(f"{path}:{number}: unknown role {sorted(map(str, unknown))}; roles are system, user, assistant")
        problem = check_conversation(messages)
        if problem:
            raise ConfigError(f"{path}:{number}: {problem}")
        out.append(messages)
    if not out:
        raise ConfigError(f"{path}: no training examples in it")
    return out


def data_hash(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes() if path.is_file() else b"")
    return digest.hexdigest()


def newest_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint that finished saving (trainer_state.json is written last)."""
    found = []
    for child in folder.glob("checkpoint-*") if folder.is_dir() else []:
        try:
            step = int(child.name.split("-", 1)[1])
        except ValueError:
            continue
        if (child / "trainer_state.json").is_file():
            try:
                json.loads((child / "trainer_state.json").read_text(encoding="utf-8"))
            except ValueError:
                continue  # cut off mid-write: not a checkpoint to resume from
            found.append((step, child))
    return max(found)[1] if found else None


def run_key(config, data: str) -> dict:
    """What makes checkpoints resumable by a later run: the same data, base and adapter shape."""
    return {"data_hash": data, "base_model": config.training.base_model, "max_seq": config.training.max_seq,
            "lora_r": config.lora.r, "lora_alpha": config.lora.alpha, "target_modules": list(config.lora.target_modules)}


def set_aside_other_runs(out_dir: Path, key: dict, log: Callable[[str], None]) -> None:
    """Checkpoints of another run (other data or settings) must not be resumed into this one:
    they are moved aside, not deleted, and the run starts fresh."""
    marker = out_dir / "run.json"
    if out_dir.is_dir() and any(out_dir.iterdir()):
        try:
            before = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            before = None
        if before != key:
            aside = out_dir.with_name(f"{out_dir.name}.before-{time.strftime('%Y%m%d-%H%M%S')}")
            out_dir.rename(aside)
            log(f"checkpoints from a run with other data or settings moved to {aside}; starting from the base")
    out_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(key, indent=2), encoding="utf-8")


def adapter_is_current(role: str, settings, epochs: int | None = None) -> bool:
    """A finished adapter trained on exactly the current training set with these settings."""
    config = settings.educator_training if role == "educator" else settings.poet_training
    meta = checkpoints_dir(role) / "adapter" / "workshop_training.json"
    try:
        trained = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    train_path = locations.resolve_data_path(config.data.train)
    if not train_path.is_file():
        return False
    current = data_hash(train_path, locations.resolve_data_path(config.data.valid))
    wanted_epochs = epochs if epochs is not None else config.training.num_epochs
    return (trained.get("data_hash") == current and trained.get("base_model") == config.training.base_model
            and trained.get("epochs") == wanted_epochs and trained.get("complete", True))


def cpu_friendly(device) -> dict:
    """SFTConfig settings that differ between CUDA, MPS and the CPU (see the module docstring);
    `device` is a device.TrainingDevice."""
    return device.trainer_flags()


# Tokens a family reserves for padding, in order of preference: Llama 3.1's fine-tuning pad,
# then the usual names. Llama 3's reserved special tokens are trained to nothing, so one of
# them serves as well. Using one of these leaves the embeddings as they are.
RESERVED_PADS = ("<|finetune_right_pad_id|>", "<pad>", "<|pad|>", "[PAD]", "<|fim_pad|>", "<|endoftext|>",
                 "<|reserved_special_token_0|>", "<|reserved_special_token_2|>")


def choose_pad_token(tokenizer, model, end_of_turn: int) -> str | None:
    """A pad token that is neither EOS nor the end-of-turn token, so padding can never be
    mistaken for (or mask) the token that teaches the model to stop. A token the vocabulary
    already has is preferred: adding one resizes the embeddings, and then every adapter and
    checkpoint carries the whole embedding and output matrices (about 2 GB at 8B). Returns a
    line to log when it had to add one."""
    taken = {end_of_turn, tokenizer.eos_token_id}
    note = None
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id in taken:
        vocab = tokenizer.get_vocab()
        reserved = [t for t in RESERVED_PADS if t in vocab and vocab[t] not in taken]
        if reserved:
            tokenizer.pad_token = reserved[0]
        elif tokenizer.unk_token_id is not None and tokenizer.unk_token_id not in taken:
            tokenizer.pad_token = tokenizer.unk_token
        else:
            tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
            model.resize_token_embeddings(len(tokenizer))
            note = ("the base's vocabulary has no spare token to pad with; added <|pad|>, so the adapter also "
                    "saves the embedding and output layers")
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return note


def load_base(config, device, log: Callable[[str], None]):
    """The base's tokenizer and model (4-bit on CUDA when configured), its end-of-turn token
    (a pad token that is neither that nor EOS chosen), and the template tokens it seated
    (base_model.seat_template_tokens) when it gave the base a template. `device`: a
    device.TrainingDevice."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from poetry_workshop.pipeline.training.chat_examples import end_of_turn_id, give_template

    quiet_transformers()
    base = resolve_base(config.training.base_model, log)
    try:
        tokenizer = AutoTokenizer.from_pretrained(base)
        model_kwargs: dict = {"dtype": device.torch_dtype()}
        if device.can_load_4bit and config.quantization.load_in_4bit:
            from transformers import BitsAndBytesConfig

            model_kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type=config.quantization.quant_type,
                bnb_4bit_compute_dtype=device.torch_dtype(), bnb_4bit_use_double_quant=True)
        model = AutoModelForCausalLM.from_pretrained(base, **model_kwargs)
    except OSError as exc:
        raise ConfigError(f"base model '{config.training.base_model}' could not be loaded "
                          f"({str(exc).splitlines()[0]}); check the name on the Hugging Face hub and HF_TOKEN for "
                          "gated models, or use a local GGUF")
    given = give_template(tokenizer, model.config.model_type)
    seated = seat_template_tokens(model, tokenizer) if given else []
    end_of_turn = end_of_turn_id(tokenizer)
    padded = choose_pad_token(tokenizer, model, end_of_turn)
    if seated:
        given += f"; its tokens {' '.join(seated)}, which the base never wrote, are seated apart from its unused ones"
    for note in (given, padded):
        if note:
            log(note)
    return tokenizer, model, end_of_turn, seated


def encode(tokenizer, conversations: list[list[dict]], max_seq: int) -> tuple[list[dict], int]:
    """Token ids and assistant masks per conversation; the ones longer than max_seq are
    dropped and counted."""
    from poetry_workshop.pipeline.training.chat_examples import end_of_turn_id, tokenize_conversation

    rows, dropped = [], 0
    end_of_turn = end_of_turn_id(tokenizer)
    for messages in conversations:
        example = tokenize_conversation(tokenizer, messages, end_of_turn)
        if len(example.input_ids) > max_seq:
            dropped += 1
            continue
        rows.append({"input_ids": example.input_ids, "assistant_masks": example.assistant_masks})
    return rows, dropped


def training_arguments(run, out_dir: Path, num_epochs: int, max_steps: int | None, device, evaluate: bool):
    """trl's SFTConfig for one run: checkpoints every `checkpoint_steps`, loss on the
    assistant turns only (the masks), the device's own precision settings (device.py)."""
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(out_dir),
        num_train_epochs=num_epochs,
        max_steps=max_steps if max_steps is not None else -1,
        per_device_train_batch_size=run.batch_size,
        per_device_eval_batch_size=run.batch_size,
        gradient_accumulation_steps=run.gradient_accumulation,
        learning_rate=run.learning_rate,
        warmup_steps=run.warmup_ratio,  # a float below 1 is a share of the steps (transformers 5)
        logging_steps=1,
        save_strategy="steps",
        save_steps=run.checkpoint_steps,
        save_total_limit=3,
        eval_strategy="epoch" if evaluate else "no",
        max_length=run.max_seq,
        seed=run.seed,
        report_to=[],
        use_cpu=device.use_cpu,  # False on MPS too, so the Trainer puts the model on the Apple GPU
        **cpu_friendly(device),
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def train(role: str, settings, *, epochs: int | None = None, max_steps: int | None = None,
          on_progress: Callable[[TrainingProgress], None] | None = None,
          log: Callable[[str], None] = lambda message: None,
          on_checkpoint: Callable[[Path], None] = lambda folder: None,
          cancel: threading.Event | None = None) -> TrainResult:
    """Train `role`'s adapter. `on_checkpoint` runs after each checkpoint and after the final
    adapter is saved (the Modal backend commits its volume there, so a retry resumes).
    `cancel`, once set, ends the run after the current optimiser step with a checkpoint, and
    raises TrainingCancelled instead of saving an adapter that did not finish."""
    if role not in ROLES:
        raise ConfigError(f"unknown role '{role}'; train educator or poet")
    config = settings.educator_training if role == "educator" else settings.poet_training
    run = config.training
    train_path = locations.resolve_data_path(config.data.train)
    valid_path = locations.resolve_data_path(config.data.valid)
    # The sets are read and checked before torch loads: a bad line is named in a second.
    train_conversations = read_conversations(train_path)
    valid_conversations = read_conversations(valid_path) if valid_path.is_file() and valid_path.stat().st_size else []
    # The memory plan, from the base's config alone: a base this device cannot hold is
    # refused in seconds, with the way out, before a weight loads.
    from poetry_workshop.pipeline.training.device import training_device
    from poetry_workshop.pipeline.training.memory_plan import check_training

    device = training_device()
    check_training(config, settings.export.modal, device, log, examples=train_conversations + valid_conversations)

    import datasets
    from datasets import Dataset

    datasets.disable_progress_bars()
    from peft import LoraConfig
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTTrainer

    from poetry_workshop.pipeline.training.callbacks import WorkshopCallback

    tokenizer, model, end_of_turn, seated = load_base(config, device, log)
    train_rows, dropped = encode(tokenizer, train_conversations, run.max_seq)
    valid_rows, _ = encode(tokenizer, valid_conversations, run.max_seq)
    if not train_rows:
        raise ConfigError(f"{train_path}: every example is longer than max_seq {run.max_seq}")

    out_dir = checkpoints_dir(role)
    set_aside_other_runs(out_dir, run_key(config, data_hash(train_path, valid_path)), log)
    resume = newest_checkpoint(out_dir)
    if resume is None and any(out_dir.glob("checkpoint-*")):
        log(f"no complete checkpoint in {out_dir} (the newest was cut off); starting from the base")

    num_epochs = epochs if epochs is not None else run.num_epochs
    args = training_arguments(run, out_dir, num_epochs, max_steps, device, evaluate=bool(valid_rows))
    lora = LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha, lora_dropout=config.lora.dropout,
                      target_modules=list(config.lora.target_modules), task_type="CAUSAL_LM")
    seated_ids = tokenizer.convert_tokens_to_ids(seated)

    def saved(folder: Path) -> None:
        if seated_ids:  # the rows trained beside the adapter travel with every checkpoint
            save_template_rows(trainer.model, seated_ids, folder)
        on_checkpoint(folder)

    callback = WorkshopCallback(role, out_dir, on_progress=on_progress, on_checkpoint=saved, cancel=cancel)
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(valid_rows) if valid_rows else None,
        processing_class=tokenizer, peft_config=lora, callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)  # progress goes through on_progress instead
    if seated_ids:
        train_template_rows(trainer.model, seated_ids)
        if resume is not None:
            load_template_rows(trainer.model, resume)
    try:
        output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except (ValueError, RuntimeError, OSError) as exc:
        if resume is not None and "checkpoint" in str(exc).lower():
            raise ConfigError(f"{resume}: this checkpoint cannot be resumed ({exc}); move it away to start over")
        raise
    if cancel is not None and cancel.is_set() and trainer.state.global_step < trainer.state.max_steps:
        raise TrainingCancelled(f"{role}: stopped at step {trainer.state.global_step} of {trainer.state.max_steps}; "
                                f"a checkpoint is in {out_dir}, and training again resumes from it")
    adapter = out_dir / "adapter"
    trainer.model.save_pretrained(str(adapter))
    tokenizer.save_pretrained(str(adapter))
    if seated_ids:
        save_template_rows(trainer.model, seated_ids, adapter)
    (adapter / "workshop_training.json").write_text(json.dumps({
        "role": role, "base_model": run.base_model, "data_hash": data_hash(train_path, valid_path),
        "epochs": num_epochs, "steps": trainer.state.global_step, "end_of_turn_id": end_of_turn,
        "pad_token_id": tokenizer.pad_token_id, "max_seq": run.max_seq, "seated_tokens": seated,
        "complete": max_steps is None,  # a --max-steps run is a check, not the configured training
    }, indent=2), encoding="utf-8")
    on_checkpoint(adapter)
    eval_losses = callback.eval_losses
    return TrainResult(role, adapter, trainer.state.global_step, getattr(output, "training_loss", None),
                       eval_losses, str(resume) if resume else None, len(train_rows), dropped)
