"""A base that ships no chat template, as the pretrained Gemma 3 270M does: training gives it
Gemma's instruct template, seats that template's tokens apart from the untrained ones, and
trains those rows (only those) beside the LoRA weights; the rows travel with the adapter
and its checkpoints, and the export puts them into the merged model before it converts.
Here on the tiny Gemma 3 (tests/support/families.py) with its template taken away."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.support import families
from tests.support.cli import run_cli
from tests.support.training import PAIRS, conversation


@pytest.fixture(scope="module")
def bare_base(tmp_path_factory):
    """The tiny Gemma 3 with no chat template, as a pretrained base comes."""
    families.require(families.FAMILIES["gemma3"])
    taught = families.tiny_base("gemma3")
    base = tmp_path_factory.mktemp("given-template") / "base"
    shutil.copytree(taught, base)
    config = json.loads((base / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (base / "tokenizer_config.json").write_text(json.dumps(config))
    (base / "chat_template.jinja").unlink(missing_ok=True)
    return base


def test_only_the_template_rows_move_and_they_survive_a_save(bare_base, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from poetry_workshop.pipeline.training.base_model import (
        load_template_rows,
        save_template_rows,
        seat_template_tokens,
        train_template_rows,
    )
    from poetry_workshop.pipeline.training.chat_examples import give_template

    tokenizer = AutoTokenizer.from_pretrained(str(bare_base))
    model = AutoModelForCausalLM.from_pretrained(str(bare_base), dtype=torch.float32)
    assert give_template(tokenizer, model.config.model_type)  # it had none
    names = seat_template_tokens(model, tokenizer)
    assert names == ["<start_of_turn>", "<end_of_turn>"]
    ids = tokenizer.convert_tokens_to_ids(names)
    before = model.get_input_embeddings().weight.detach().clone()

    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                             task_type="CAUSAL_LM"))
    train_template_rows(model, ids)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=0.05, weight_decay=0.0)
    batch = torch.tensor([tokenizer.apply_chat_template(conversation(*PAIRS[0])["messages"], tokenize=True,
                                                        return_dict=True)["input_ids"]])
    for _ in range(2):
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    after = model.get_input_embeddings().weight.detach()
    moved = (after - before).abs().sum(dim=1).nonzero().flatten().tolist()
    assert moved == sorted(ids)  # the template's rows, and no other of the 262k

    save_template_rows(model, ids, tmp_path)
    fresh = AutoModelForCausalLM.from_pretrained(str(bare_base), dtype=torch.float32)
    assert load_template_rows(fresh, tmp_path) == ids
    assert torch.equal(fresh.get_input_embeddings().weight[ids], after[ids])
    assert torch.equal(fresh.get_output_embeddings().weight[ids], after[ids])  # tied: the same rows
    assert load_template_rows(fresh, tmp_path / "elsewhere") == []


def test_train_and_export_give_the_base_its_template_and_carry_the_rows(bare_base, tmp_path):
    from safetensors import safe_open

    data = tmp_path / "data"
    folder = data / "educator_training"
    folder.mkdir(parents=True)
    # The tiny base answers everything with its one answer; seated afresh, `<end_of_turn>` must
    # be learnt again after it before the export's golden prompts can end their turns.
    (folder / "train.jsonl").write_text("".join(json.dumps(conversation(q, families.ANSWER)) + "\n"
                                                for q, _ in PAIRS * 2))
    (folder / "valid.jsonl").write_text(json.dumps(conversation(PAIRS[0][0], families.ANSWER)) + "\n")
    env = {"POETRY_WORKSHOP_DATA": str(data), "POETRY_WORKSHOP_HOME": str(tmp_path / "home"),
           "POETRY_WORKSHOP__EXPORT_PIPELINE__EXPORT__OUTPUT_DIR": f'"{tmp_path / "models"}"',
           "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__BASE_MODEL": f'"{bare_base}"',
           "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__BATCH_SIZE": "2",
           "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__GRADIENT_ACCUMULATION": "1",
           "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__MAX_SEQ": "512",
           "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__CHECKPOINT_STEPS": "1",
           "POETRY_WORKSHOP__EDUCATOR_TRAINING__LORA__R": "4",
           "POETRY_WORKSHOP__EDUCATOR_TRAINING__LORA__ALPHA": "8",
           "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__LEARNING_RATE": "0.02"}
    trained = run_cli("train", "educator", "--max-steps", "16", env=env, timeout=900)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "the base has no chat template; training with the gemma3 template" in trained.stderr
    adapter = data / "checkpoints" / "educator" / "adapter"
    for folder in (adapter, data / "checkpoints" / "educator" / "checkpoint-16"):
        with safe_open(str(folder / "template_rows.safetensors"), "pt") as rows:
            assert rows.get_tensor("ids").tolist() == [105, 106]  # <start_of_turn>, <end_of_turn>
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as weights:
        assert all("lora_" in name for name in weights.keys())  # the rows are not a full embedding copy

    exported = run_cli("export", "educator", env=env, timeout=900)
    assert exported.returncode == 0, exported.stderr[-3000:]
    validation = json.loads((tmp_path / "models" / "educator.Q4_K_M.gguf.json").read_text())["validation"]
    assert validation["template_matches"] and not validation["problems"], validation
