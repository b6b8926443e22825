"""Tiny models of the families a user trains on, on their real tokenizers and chat templates.

Each family is a random-weight model of its real architecture (two layers, 128 wide) with:
- its real tokenizer where one is at hand: Llama 3 and Qwen2 vocabularies from the pinned
  llama-cpp-python source distribution (`workshop setup --converter` unpacks them), the
  starter's SmolLM2 vocabulary, and Gemma 3's from the real Gemma 3 270M GGUF
  (`workshop setup --gemma`);
- its real chat template from the same distribution (`models/templates/`); the Gemma 3
  vocabulary has none, so the tiny Gemma is taught in, and ships, the template training gives
  a Gemma base (chat_examples.GEMMA_TEMPLATE).

What stands in, and why:
- Llama 3.1: the archive holds Llama 3's vocabulary, the same 128,256 tokens; the special
  tokens 3.1 renamed (`<|finetune_right_pad_id|>`, `<|eom_id|>`, `<|python_tag|>`) are given
  their 3.1 names, as in Meta's tokenizer. The config has 3.1's rope scaling.
- Qwen3: the archive holds Qwen2's vocabulary (Qwen3 kept it); Qwen3's added tokens
  (`<think>`, `</think>`, `<tool_response>`, `</tool_response>`) take the ids Qwen3 gave them,
  which the Qwen2 file fills with padding entries. EOS is `<|im_end|>` as in Qwen3.
- Mistral: there is no Mistral vocabulary in the archive. Mistral Nemo's Tekken is a
  tiktoken-style byte BPE of 131k tokens whose first ids are control tokens (`<unk>`, `<s>`,
  `</s>`, `[INST]`, `[/INST]`); Llama 3's byte BPE of 128k stands in, its first reserved
  tokens renamed to those, under Nemo's real template. (Llama 2's SentencePiece file does not
  serve: transformers reads it into a tokenizer that splits words differently from llama.cpp,
  which the export's template check rightly refuses.)

Random weights never stop by themselves, so each tiny base is first taught, with all its
weights, to answer any conversation briefly and end its turn (and, for the thinking variant
of Qwen3, to open a `<think>` block when thinking is on). That is what a real instruct base
brings; the family tests then train a LoRA on it through the real trainer.

Built models are kept in `models/.test-families/` (ignored by git), keyed by what built
them, so a second run reuses them; building one takes seconds to a minute.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from poetry_workshop.config.schema import ExportSettings
from poetry_workshop.pipeline.training.gguf_export import converter_dir
from tests.support.cli import ROOT, STARTER

FIXTURE_VERSION = "2"
CONVERTER = converter_dir(ExportSettings().converter_version)
REFERENCE = CONVERTER / "models"
TEMPLATES = REFERENCE / "templates"
GEMMA = ROOT / "models" / "gemma-3-270m-q4_k_m.gguf"
CACHE = ROOT / "models" / ".test-families"

# What a taught base answers, whatever it is asked; short so every check runs fast.
ANSWER = "Listen."
REASONING = "Weigh it."


@dataclass(frozen=True)
class Family:
    name: str
    architecture: str       # the transformers config class
    vocabulary: Path        # the GGUF the tokenizer is read from
    template: str | None    # a file in TEMPLATES; None keeps the vocabulary's own
    end_of_turn: str        # the token that ends an assistant turn
    pad: str                # the reserved token training pads with (no new token, no resize)


FAMILIES = {
    "smollm2": Family("smollm2", "LlamaConfig", STARTER, None, "<|im_end|>", "<|endoftext|>"),
    "llama3.1": Family("llama3.1", "LlamaConfig", REFERENCE / "ggml-vocab-llama-bpe.gguf",
                       "meta-llama-Llama-3.1-8B-Instruct.jinja", "<|eot_id|>", "<|finetune_right_pad_id|>"),
    "qwen3": Family("qwen3", "Qwen3Config", REFERENCE / "ggml-vocab-qwen2.gguf", "Qwen-Qwen3-0.6B.jinja",
                    "<|im_end|>", "<|endoftext|>"),
    "gemma3": Family("gemma3", "Gemma3TextConfig", GEMMA, None, "<end_of_turn>", "<pad>"),
    "mistral": Family("mistral", "MistralConfig", REFERENCE / "ggml-vocab-llama-bpe.gguf",
                      "mistralai-Mistral-Nemo-Instruct-2407.jinja", "</s>", "<pad>"),
}

# Llama 3.1 renamed some of Llama 3's reserved special tokens; Meta's 3.1 tokenizer has these.
MISTRAL_NAMES = {128000: "<s>", 128001: "</s>", 128002: "[INST]", 128003: "[/INST]", 128004: "<pad>", 128005: "<unk>"}
LLAMA31_NAMES = {128002: "<|reserved_special_token_0|>", 128003: "<|reserved_special_token_1|>",
                 128004: "<|finetune_right_pad_id|>", 128005: "<|reserved_special_token_2|>",
                 128008: "<|eom_id|>", 128010: "<|python_tag|>"}
QWEN3_ADDED = {151665: ("<tool_response>", False), 151666: ("</tool_response>", False),
               151667: ("<think>", False), 151668: ("</think>", False)}


def require_material(path: Path, how: str) -> Path:
    """`path`, or a skip that says how to place it; in CI, where `setup.sh --test` places
    every file, a failure: a missing file there is a broken set-up, not a reason to test less."""
    if not path.exists():
        message = f"{path} is not here; run `{how}`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def require(family: Family) -> None:
    """The family's real vocabulary and template, or a skip (a failure in CI)."""
    require_material(family.vocabulary, "workshop setup --gemma" if family.name == "gemma3" else "workshop setup --converter")
    if family.template:
        require_material(TEMPLATES / family.template, "workshop setup --converter")


def _key(*parts) -> str:
    import transformers

    return hashlib.sha256(json.dumps([FIXTURE_VERSION, transformers.__version__, *map(str, parts)]).encode()).hexdigest()[:10]


def _built(target: Path, build) -> Path:
    """`target`, built once by `build(work)` into a temporary folder and renamed into place:
    two test workers building the same model both end with a whole one."""
    if (target / "done").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(work)
        (work / "done").write_text("", encoding="utf-8")
        try:
            os.replace(work, target)
        except OSError:
            if not (target / "done").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


# ------------------------------------------------------------------------ tokenizers


def tokenizer_folder(name: str) -> Path:
    """The family's tokenizer, saved in transformers' own format (read from a GGUF once)."""
    family = FAMILIES[name]
    require(family)
    return _built(CACHE / f"tokenizer-{name}-{_key(family)}", lambda work: _save_tokenizer(family, work))


def _save_tokenizer(family: Family, work: Path) -> None:
    from transformers import AutoTokenizer

    os.environ.setdefault("TQDM_DISABLE", "1")
    tokenizer = AutoTokenizer.from_pretrained(str(family.vocabulary.parent), gguf_file=family.vocabulary.name)
    if family.template:
        tokenizer.chat_template = (TEMPLATES / family.template).read_text(encoding="utf-8")
    tokenizer.save_pretrained(str(work))
    _fix_vocabulary(family, work)


def _fix_vocabulary(family: Family, folder: Path) -> None:
    """Give the stand-in vocabularies the names and ends their real family uses."""
    path = folder / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if family.name in ("llama3.1", "mistral"):
        # transformers' GGUF reader appends an `<|endoftext|>` Llama never had.
        data["added_tokens"] = [t for t in data["added_tokens"] if t["id"] < 128256]
        data["model"]["vocab"] = {k: v for k, v in data["model"]["vocab"].items() if v < 128256}
        names = LLAMA31_NAMES if family.name == "llama3.1" else MISTRAL_NAMES
        for token_id, content in names.items():
            _rename(data, token_id, content, special=True)
        if family.name == "llama3.1":
            config.update(eos_token="<|eot_id|>", pad_token=None)
        else:
            config.update(bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    elif family.name == "qwen3":
        for token_id, (content, special) in QWEN3_ADDED.items():
            _rename(data, token_id, content, special)
        config.update(eos_token="<|im_end|>", pad_token="<|endoftext|>")
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")


def _rename(data: dict, token_id: int, content: str, special: bool) -> None:
    """Token `token_id` becomes the added token `content`, in the vocabulary and the added list."""
    vocab = data["model"]["vocab"]
    for key in [k for k, v in vocab.items() if v == token_id]:
        del vocab[key]
    vocab[content] = token_id
    added = [t for t in data["added_tokens"] if t["id"] != token_id]
    added.append({"id": token_id, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                  "normalized": False, "special": special})
    data["added_tokens"] = sorted(added, key=lambda t: t["id"])


# ------------------------------------------------------------------------ tiny bases


def _config(family: Family, tokenizer):
    import transformers

    eot = tokenizer.convert_tokens_to_ids(family.end_of_turn)
    shape = dict(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=4096,
                 bos_token_id=tokenizer.bos_token_id, eos_token_id=eot, pad_token_id=None)
    if family.name == "llama3.1":
        shape.update(rope_theta=500000.0, max_position_embeddings=131072, tie_word_embeddings=False,
                     eos_token_id=[tokenizer.convert_tokens_to_ids(t) for t in ("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>")],
                     rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                   "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
    elif family.name == "smollm2":
        shape.update(tie_word_embeddings=True, rope_theta=100000.0)
    elif family.name == "qwen3":
        shape.update(tie_word_embeddings=True, rope_theta=1000000.0)
    elif family.name == "gemma3":
        shape.update(num_key_value_heads=1, sliding_window=512, tie_word_embeddings=True,
                     layer_types=["sliding_attention", "full_attention"], pad_token_id=tokenizer.pad_token_id)
    elif family.name == "mistral":
        shape.update(sliding_window=None, rope_theta=1000000.0, tie_word_embeddings=False)
    return getattr(transformers, family.architecture)(**shape)


def _lessons(thinking: bool) -> list[tuple[list[dict], dict, str]]:
    """(conversation, template options, answer) to teach a base: system prompts short and
    long (the persona's own), questions of many lengths, one or two turns."""
    from poetry_workshop.workshop.persona import load_persona

    persona = load_persona(ROOT / "persona")
    systems = [persona.educator_system, persona.poet_system, "You are the Educator.", None]
    asks = ["What is a volta?", "Workshop this draft. Its lines are numbered for reference:\n\n 1  the kettle "
            "clicks off\n 2  and the house goes on\n\nWrite your critique.", "Write a poem about rain.",
            "Brief:\nForm: free verse\nLength: 6-8 lines\nSpeaker: a baker\n\nWrite the poem. Output only the poem.",
            "And in free verse?", "Revise it."]
    out = []
    for i, ask in enumerate(asks + asks[:2]):
        system = systems[i % len(systems)]
        head = [{"role": "system", "content": system}] if system else []
        turns = [{"role": "user", "content": ask}]
        if i % 3 == 2:
            turns = [{"role": "user", "content": asks[(i + 1) % len(asks)]}, {"role": "assistant", "content": ANSWER}] + turns
        options = {"enable_thinking": False}
        answer = ANSWER
        if thinking and i % 2:
            options, answer = {"enable_thinking": True}, f"<think>\n{REASONING}\n</think>\n\n{ANSWER}"
        out.append((head + turns, options, answer))
    return out


def _teach(model, tokenizer, family: Family, thinking: bool, most_steps: int = 100) -> None:
    import torch

    from poetry_workshop.pipeline.training.chat_examples import fallback_template

    own = tokenizer.chat_template
    # A base that ships no template (Gemma 3 270M) is taught in the one training will give it.
    tokenizer.chat_template = own or fallback_template(model.config.model_type)
    rows = []
    for messages, options, answer in _lessons(thinking):
        kwargs = options if "enable_thinking" in (tokenizer.chat_template or "") else {}
        prompt = _ids(tokenizer, messages, True, kwargs)
        # The answer as the template writes it (measured without the system prompt, which
        # Mistral's template writes only into a last user turn), through its end-of-turn.
        bare = [m for m in messages if m["role"] != "system"]
        turn = _ids(tokenizer, bare + [{"role": "assistant", "content": answer}], False, kwargs)
        span = turn[len(_ids(tokenizer, bare, True, kwargs)):]
        eot = tokenizer.convert_tokens_to_ids(family.end_of_turn)
        span = span[: len(span) - span[::-1].index(eot)]
        rows.append((prompt + span, len(prompt)))
    tokenizer.chat_template = own
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    width = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows])
    attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows])
    # Only the answers are learnt, so only their positions go through the output layer: the
    # logits of every position at a 128k-262k vocabulary would cost gigabytes a step.
    at = [(r, i) for r, (ids, start) in enumerate(rows) for i in range(start - 1, len(ids) - 1)]
    rows_at = torch.tensor([r for r, _ in at])
    cols_at = torch.tensor([i for _, i in at])
    targets = input_ids[rows_at, cols_at + 1]
    head = model.get_output_embeddings()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    for step in range(most_steps):  # until it has learnt: 20 to 60 steps, by family
        hidden = model.model(input_ids=input_ids, attention_mask=attention).last_hidden_state
        logits = head(hidden[rows_at, cols_at])
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        loss = torch.nn.functional.cross_entropy(logits.float(), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if os.environ.get("FAMILY_TEACH_LOG"):
            print(f"{family.name} step {step} loss {loss.item():.3f}", flush=True)
        if loss.item() < 0.02:
            break
    model.eval()
    assert loss.item() < 0.05, f"{family.name}: the tiny base did not learn to answer and stop (loss {loss.item():.3f})"


def _ids(tokenizer, messages, generation_prompt, options) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt, **options)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def tiny_base(name: str, *, thinking: bool = False) -> Path:
    """A folder `from_pretrained` loads: the family's tokenizer and template, and a tiny model
    of its architecture taught to answer briefly and end its turn."""
    family = FAMILIES[name]
    source = tokenizer_folder(name)
    target = CACHE / f"base-{name}{'-thinking' if thinking else ''}-{_key(family, thinking, source.name)}"

    def build(work: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(source))
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(_config(family, tokenizer), dtype=torch.float32)
        _teach(model, tokenizer, family, thinking)
        if not tokenizer.chat_template:
            # Taught in Gemma's template, it ships it, as Gemma's instruct models do. (The
            # pretrained Gemma 3 270M ships none: `workshop first-test --base` runs that path.)
            from poetry_workshop.pipeline.training.chat_examples import fallback_template

            tokenizer.chat_template = fallback_template(model.config.model_type)
        model.save_pretrained(str(work))
        tokenizer.save_pretrained(str(work))

    return _built(target, build)


def tiny_gguf(name: str, folder: Path, *, thinking: bool = False) -> Path:
    """The tiny base as the app runs a model: converted by the pinned converter and quantized
    (Q8_0: rows 128 wide are too narrow for the K-quants, which would fall back anyway)."""
    from poetry_workshop.pipeline.training.gguf_export import convert, quantize

    base = tiny_base(name, thinking=thinking)
    folder.mkdir(parents=True, exist_ok=True)
    f16 = folder / f"{name}.f16.gguf"
    out = folder / f"{name}{'-thinking' if thinking else ''}.Q8_0.gguf"
    convert(CONVERTER, base, f16)
    quantize(f16, out, "Q8_0")
    f16.unlink()
    return out
