"""The local chain, for real and small: starter GGUF as base → a short LoRA run with trl →
merge → llama.cpp's converter → Q4_K_M → validation → the engine loads it and answers.
Plus the label mask token by token, resuming, and bad input."""

from __future__ import annotations

import json

import pytest

from poetry_workshop.errors import ConfigError
from tests.support.cli import run_cli
from tests.support.training import PAIRS, SMALL, SYSTEM, conversation, masked_spans, write_sets

# The tests on the shared trained Educator run on one worker, which builds it once.
pytestmark = pytest.mark.xdist_group("trained-educator")


def test_the_chain_trains_exports_validates_and_the_engine_answers(chain):
    assert chain["train"].returncode == 0, chain["train"].stderr[-2000:]
    assert "step 2/2" in chain["train"].stderr and "validation loss" not in chain["train"].stdout
    out = chain["export"]
    assert out.returncode == 0, out.stderr[-2000:]
    gguf = chain["root"] / "models" / "educator.Q4_K_M.gguf"
    manifest = json.loads((chain["root"] / "models" / "educator.Q4_K_M.gguf.json").read_text())
    from poetry_workshop.files import sha256_of
    from poetry_workshop.inference.gguf_file import read_gguf

    assert manifest["sha256"] == sha256_of(gguf) and manifest["quantization"] == "Q4_K_M"
    assert manifest["converter"].startswith("llama-cpp-python 0.3.36") and manifest["data_hash"]
    assert manifest["validation"]["template_matches"] and manifest["validation"]["eos_token_id"] == 2
    assert read_gguf(gguf).quantization == "Q4_K_M"
    answered = run_cli("critique", "-", "--educator", str(gguf), "--config", str(_short(chain["root"])),
                       stdin="the kettle clicks off\nand the house goes on", env=chain["env"], timeout=300)
    assert answered.returncode == 0, answered.stderr[-2000:]
    assert "Critique of draft 1 (Educator)" in answered.stdout


def _short(root):
    path = root / "short.toml"
    path.write_text("[inference_config.max_tokens]\ncritique = 48\n", encoding="utf-8")
    return path


def test_the_pad_token_is_neither_eos_nor_end_of_turn(chain):
    meta = json.loads((chain["root"] / "data" / "checkpoints" / "educator" / "adapter" / "workshop_training.json").read_text())
    assert meta["pad_token_id"] not in (meta["end_of_turn_id"], 2)


def test_a_second_run_resumes_from_the_newest_checkpoint(chain_copy):
    again = run_cli("train", "educator", "--max-steps", "3", env=chain_copy["env"], timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resumed from" in again.stdout and "checkpoint-2" in again.stdout


def test_checkpoints_from_other_data_are_set_aside_not_resumed(chain_copy):
    chain = chain_copy
    train = chain["root"] / "data" / "educator_training" / "train.jsonl"
    train.write_text(train.read_text() + json.dumps(conversation("What is a couplet?", "Two lines that belong "
                                                                 "together.")) + "\n")
    fresh = run_cli("train", "educator", "--max-steps", "1", env=chain["env"], timeout=900)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert "resumed from" not in fresh.stdout and "checkpoints from a run with other data" in fresh.stderr
    aside = list((chain["root"] / "data" / "checkpoints").glob("educator.before-*"))
    assert len(aside) == 1 and (aside[0] / "checkpoint-2").is_dir()  # moved, not deleted


# ------------------------------------------------------------------------ the mask


def test_the_loss_covers_assistant_turns_and_their_end_of_turn_token_only(starter_gguf):
    from transformers import AutoTokenizer

    from poetry_workshop.pipeline.training.base_model import resolve_base
    from poetry_workshop.pipeline.training.chat_examples import end_of_turn_id, tokenize_conversation

    tokenizer = AutoTokenizer.from_pretrained(resolve_base(str(starter_gguf)))
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is a volta?"},
                {"role": "assistant", "content": "The turn."}, {"role": "user", "content": "And a caesura?"},
                {"role": "assistant", "content": "A pause."}]
    example = tokenize_conversation(tokenizer, messages)
    assert len(example.input_ids) == len(example.assistant_masks)
    eot = end_of_turn_id(tokenizer)
    # Token by token: the trained spans are exactly each answer and its end-of-turn token; the
    # newline the template puts after it, like everything else, is context.
    spans = masked_spans(example)
    assert [tokenizer.decode(s) for s in spans] == ["The turn.<|im_end|>", "A pause.<|im_end|>"]
    assert all(s[-1] == eot for s in spans)
    context = [t for t, bit in zip(example.input_ids, example.assistant_masks) if not bit]
    assert "What is a volta?" in tokenizer.decode(context) and "The turn." not in tokenizer.decode(context)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("line,message", [
    ("{not json", "train.jsonl:2: not a {\"messages\": [...]} line"),
    (json.dumps({"messages": [{"role": "narrator", "content": "x"}, {"role": "assistant", "content": "y"}]}),
     "train.jsonl:2: unknown role ['narrator']"),
    (json.dumps({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": " "}]}),
     "train.jsonl:2: an empty assistant turn"),
])
def test_a_bad_training_file_is_one_clear_line(tmp_path, line, message):
    data = tmp_path / "data" / "educator_training"
    data.mkdir(parents=True)
    (data / "train.jsonl").write_text(json.dumps(conversation(*PAIRS[0])) + "\n" + line + "\n")
    out = run_cli("train", "educator", env={**SMALL, "POETRY_WORKSHOP_DATA": str(tmp_path / "data")})
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_a_base_model_that_does_not_exist_is_named(tmp_path):
    write_sets(tmp_path / "data")
    env = {**SMALL, "POETRY_WORKSHOP_DATA": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1",
           "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__BASE_MODEL": '"no-such-org/no-such-model"'}
    out = run_cli("train", "educator", env=env)
    assert out.returncode == 2 and "no-such-org/no-such-model" in out.stderr and "Traceback" not in out.stderr
    missing = run_cli("train", "educator", env={**env, "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__BASE_MODEL": '"gone.gguf"'})
    assert missing.returncode == 2 and "gone.gguf not found" in missing.stderr


def test_a_cut_off_checkpoint_is_not_resumed(tmp_path):
    from poetry_workshop.pipeline.training.trainer import newest_checkpoint

    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / "checkpoint-4" / "trainer_state.json").write_text('{"global_step": 4}')
    (tmp_path / "checkpoint-9").mkdir()
    (tmp_path / "checkpoint-9" / "trainer_state.json").write_text('{"global_st')
    (tmp_path / "checkpoint-12").mkdir()  # no state at all: saving was interrupted
    assert newest_checkpoint(tmp_path).name == "checkpoint-4"


def test_a_converter_failure_publishes_nothing(tmp_path, monkeypatch):
    from poetry_workshop.pipeline.training import gguf_export
    fake = tmp_path / "converter"
    fake.mkdir()
    (fake / "convert_hf_to_gguf.py").write_text("import sys\nprint('unsupported architecture', file=sys.stderr)\nsys.exit(1)\n")
    with pytest.raises(gguf_export.ExportError, match="converter failed.*unsupported architecture"):
        gguf_export.convert(fake, tmp_path / "merged", tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()


def test_an_unknown_quantization_is_refused(tmp_path):
    from poetry_workshop.pipeline.training.gguf_export import quantize

    with pytest.raises(ConfigError, match="Q4_K_M"):
        quantize(tmp_path / "in.gguf", tmp_path / "out.gguf", "Q3_FANCY")
