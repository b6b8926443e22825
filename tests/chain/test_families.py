"""The model families a user trains on, each through the whole chain at tiny scale.

For SmolLM2, Llama 3.1, Qwen3, Gemma 3 and Mistral (tiny models on their real tokenizers
and templates, see tests/support/families.py): prepare counts tokens under the base's own
tokenizer; the loss mask covers exactly the assistant turns and their end-of-turn token; the
pad token is one the vocabulary reserves (no resize, so the adapter holds LoRA weights only);
`workshop train` runs 2 steps; `workshop export` merges, converts with the pinned converter,
quantizes and validates; and the app's own backend sends exactly what training rendered (the
system prompt included, wherever the template puts it), chats with the result and stops at
the family's end-of-turn.
"""

from __future__ import annotations

import json

import pytest

from tests.support import families
from tests.support.cli import run_cli
from tests.support.training import masked_spans

NAMES = list(families.FAMILIES)

# A two-turn conversation: the template must keep both answers findable in the whole.
DIALOGUE = [{"role": "system", "content": "You are the Educator."},
            {"role": "user", "content": "What is a volta?"},
            {"role": "assistant", "content": "The turn in a poem, where the thought changes direction."},
            {"role": "user", "content": "And in free verse?"},
            {"role": "assistant", "content": "Wherever the poem changes its mind: often at a stanza break."}]


def _write_sets(data) -> None:
    from tests.support.training import PAIRS, conversation

    folder = data / "educator_training"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [conversation(q, a) for q, a in PAIRS] + [{"messages": DIALOGUE}]
    (folder / "train.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (folder / "valid.jsonl").write_text(json.dumps(conversation(*PAIRS[0])) + "\n")


@pytest.fixture(scope="module", params=[pytest.param(n, marks=pytest.mark.xdist_group(f"family-{n}")) for n in NAMES])
def family(request, tmp_path_factory):
    """One family's tiny base, trained 2 steps and exported through the real commands."""
    name = request.param
    families.require(families.FAMILIES[name])
    base = families.tiny_base(name)
    root = tmp_path_factory.mktemp(f"family-{name}")
    _write_sets(root / "data")
    env = {"POETRY_WORKSHOP_DATA": str(root / "data"), "POETRY_WORKSHOP_HOME": str(root / "home"),
           "POETRY_WORKSHOP__EXPORT_PIPELINE__EXPORT__OUTPUT_DIR": f'"{root / "models"}"',
           "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__BASE_MODEL": f'"{base}"',
           "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__BATCH_SIZE": "2",
           "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__GRADIENT_ACCUMULATION": "1",
           "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__MAX_SEQ": "512",
           "POETRY_WORKSHOP__EDUCATOR_TRAINING__LORA__R": "4",
           "POETRY_WORKSHOP__EDUCATOR_TRAINING__LORA__ALPHA": "8"}
    trained = run_cli("train", "educator", "--max-steps", "2", env=env, timeout=900)
    exported = run_cli("export", "educator", env=env, timeout=900) if trained.returncode == 0 else None
    return {"name": name, "spec": families.FAMILIES[name], "base": base, "root": root,
            "train": trained, "export": exported}


def _tokenizer(family):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(family["base"]))


def test_prepare_counts_the_tokens_the_trainer_will_see(family):
    from poetry_workshop.pipeline.training.chat_examples import conversation_ids, give_template
    from poetry_workshop.pipeline.training.training_sets import TokenCounter

    tokenizer = _tokenizer(family)
    give_template(tokenizer, json.loads((family["base"] / "config.json").read_text())["model_type"])
    counted = TokenCounter(str(family["base"]))
    assert counted.note is None, counted.note
    assert counted(DIALOGUE) == len(conversation_ids(tokenizer, DIALOGUE)) > 40


def test_the_mask_covers_exactly_each_answer_and_its_end_of_turn(family):
    from poetry_workshop.pipeline.training.chat_examples import end_of_turn_id, give_template, tokenize_conversation

    tokenizer = _tokenizer(family)
    give_template(tokenizer, json.loads((family["base"] / "config.json").read_text())["model_type"])
    eot = end_of_turn_id(tokenizer)
    assert tokenizer.convert_ids_to_tokens(eot) == family["spec"].end_of_turn
    example = tokenize_conversation(tokenizer, DIALOGUE)
    spans = masked_spans(example)
    answers = [m["content"] for m in DIALOGUE if m["role"] == "assistant"]
    assert len(spans) == len(answers)
    for span, answer in zip(spans, answers):
        assert span[-1] == eot and eot not in span[:-1]
        assert tokenizer.decode(span[:-1]).strip() == answer


def test_training_pads_with_a_reserved_token_and_saves_lora_weights_only(family):
    assert family["train"].returncode == 0, family["train"].stderr[-3000:]
    adapter = family["root"] / "data" / "checkpoints" / "educator" / "adapter"
    meta = json.loads((adapter / "workshop_training.json").read_text())
    tokenizer = _tokenizer(family)
    assert meta["pad_token_id"] == tokenizer.convert_tokens_to_ids(family["spec"].pad)
    assert meta["pad_token_id"] not in (meta["end_of_turn_id"], tokenizer.eos_token_id)
    from safetensors import safe_open

    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as weights:
        names = list(weights.keys())
    assert names and all("lora_" in n for n in names), [n for n in names if "lora_" not in n][:3]
    assert "added <|pad|>" not in family["train"].stderr


def test_the_export_converts_quantizes_and_validates(family):
    assert family["export"] is not None and family["export"].returncode == 0, \
        (family["export"] or family["train"]).stderr[-3000:]
    manifest = json.loads((family["root"] / "models" / "educator.Q4_K_M.gguf.json").read_text())
    validation = manifest["validation"]
    tokenizer = _tokenizer(family)
    assert validation["template_matches"] and not validation["problems"]
    assert validation["eos_token_id"] == tokenizer.convert_tokens_to_ids(family["spec"].end_of_turn)


def test_the_app_chats_with_the_export_and_stops_at_the_end_of_turn(family):
    from transformers import AutoTokenizer

    from poetry_workshop.config.schema import Runtime, Sampling
    from poetry_workshop.inference.inference_thread import InferenceThread
    from poetry_workshop.inference.llama_backend import LlamaBackend
    from poetry_workshop.pipeline.training.chat_examples import conversation_ids

    gguf = family["root"] / "models" / "educator.Q4_K_M.gguf"
    assert gguf.is_file(), "the export did not publish"
    messages = [{"role": "system", "content": "You are the Educator."}, {"role": "user", "content": "What is a caesura?"}]
    trained = AutoTokenizer.from_pretrained(str(family["root"] / "data" / "checkpoints" / "educator" / "adapter"))
    thread = InferenceThread()
    backend = LlamaBackend(gguf, Runtime(n_ctx=2048, n_threads=2), thread)
    try:
        # The app sends exactly what training rendered, the system prompt in it wherever the
        # template puts it (Gemma: the first user turn; Mistral: the last).
        sent = backend.prompt_tokens(messages)
        assert sent == conversation_ids(trained, messages, generation_prompt=True)
        assert "You are the Educator." in trained.decode(sent)
        chunks: list[str] = []
        completion = backend.generate(messages, 96, Sampling(temperature=0.6), on_text=chunks.append)
    finally:
        backend.close()
        thread.close()
    assert completion.stats.finish_reason == "stop"
    assert completion.text.strip() and "".join(chunks) == completion.text
    assert family["spec"].end_of_turn not in completion.text and "<|" not in completion.text
