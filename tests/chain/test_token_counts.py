"""prepare counts tokens as training will: every id of the conversation under the base's real
tokenizer and template (not the two keys of a BatchEncoding), the same whether the base is
read by transformers or by llama.cpp, thinking templates with thinking off, and a Gemma base
without a template under the template training gives it.

The real tokenizers are llama.cpp's vocabulary GGUFs (Llama 3, Qwen2/3) and real chat
templates from the pinned llama-cpp-python sdist, which `workshop setup --converter` places,
and the Gemma 3 270M GGUF from `workshop setup --gemma`. Each transformers tokenizer takes
15-25 s to build from a GGUF, so each is built once for the module."""

from __future__ import annotations

from pathlib import Path

import pytest

from poetry_workshop.config.loader import load_settings
from poetry_workshop.inference import gemma_base
from poetry_workshop.pipeline.training.chat_examples import conversation_ids, give_template
from poetry_workshop.pipeline.training.gguf_export import converter_dir
from poetry_workshop.pipeline.training.training_sets import TokenCounter, educator_examples, poet_examples
from poetry_workshop.workshop.persona import load_persona
from tests.support.families import require_material
from tests.support.gate_corpus import GOOD_CRITIQUE, GOOD_REVISION, HUMAN, POEM

pytestmark = pytest.mark.xdist_group("token-counts")  # one worker builds each tokenizer once

LLAMA_BPE, QWEN2, LLAMA_SPM = "ggml-vocab-llama-bpe.gguf", "ggml-vocab-qwen2.gguf", "ggml-vocab-llama-spm.gguf"
LLAMA31_TEMPLATE, QWEN3_TEMPLATE = "meta-llama-Llama-3.1-8B-Instruct.jinja", "Qwen-Qwen3-0.6B.jinja"


def _vocab_dir() -> Path:
    return converter_dir(load_settings().export.export.converter_version) / "models"


def _hf_tokenizer(folder: Path, gguf: str, template: str | None = None):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf)
    if template is not None:
        tok.chat_template = template
    return tok


def _template(name: str) -> str:
    return (require_material(_vocab_dir() / "templates" / name, "workshop setup --converter")).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def llama31():
    folder = require_material(_vocab_dir(), "workshop setup --converter")
    return _hf_tokenizer(folder, LLAMA_BPE, _template(LLAMA31_TEMPLATE))


@pytest.fixture(scope="module")
def qwen3():
    folder = require_material(_vocab_dir(), "workshop setup --converter")
    return _hf_tokenizer(folder, QWEN2, _template(QWEN3_TEMPLATE))


@pytest.fixture(scope="module")
def gemma():
    """The Gemma 3 270M tokenizer as training loads it: no template of its own, given Gemma's."""
    path = require_material(gemma_base.default_target(), "workshop setup --gemma")
    tok = _hf_tokenizer(path.parent, path.name)
    assert not tok.chat_template
    give_template(tok, "gemma3_text")
    return tok


def conversations() -> dict[str, list[dict]]:
    """One conversation of each shape prepare writes: single turn, a multi-turn dialogue, a
    poet pair with a follow-up revision."""
    persona = load_persona()
    critique = {"id": "c", "task": "critiques", "inputs": {"poem": POEM}, "output": {"critique": GOOD_CRITIQUE}}
    dialogue = {"id": "d", "task": "dialogues", "inputs": {"poem": POEM, "critique": GOOD_CRITIQUE},
                "output": {"turns": [{"revision": GOOD_REVISION, "response": "What changed is the last line. " * 8},
                                     {"revision": GOOD_REVISION + "\nThe tap stays open.", "response": "Done. " * 30}]}}
    pair = {"id": "p", "task": "poet-pairs", "inputs": {"brief": "Form: free verse\nLength: 6-9 lines"},
            "output": {"poem": HUMAN[8], "critique": GOOD_CRITIQUE, "revision": HUMAN[9]}}
    return {"critique": educator_examples(critique, persona.educator_system)[0],
            "dialogue": educator_examples(dialogue, persona.educator_system)[0],
            "poet-pair": poet_examples(pair, persona.poet_system)[0]}


def test_llama31_counts_every_token_the_trainer_sees(llama31):
    counter = TokenCounter("meta-llama/Llama-3.1-8B-Instruct", tokenizer=llama31)
    for name, messages in conversations().items():
        ids = conversation_ids(llama31, messages)
        assert counter(messages) == len(ids), name
        text = llama31.decode(ids)
        assert text.startswith("<|begin_of_text|><|start_header_id|>system") and text.endswith("<|eot_id|>"), name
        # The persona system prompt alone is a few hundred tokens; the old count was 2.
        assert counter(messages) > len(messages[0]["content"]) // 6, name


def test_a_gguf_base_counts_what_transformers_counts_llama31(llama31):
    gguf = TokenCounter(str(_vocab_dir() / LLAMA_BPE), chat_template=_template(LLAMA31_TEMPLATE))
    assert gguf.note is None
    hf = TokenCounter("meta-llama/Llama-3.1-8B-Instruct", tokenizer=llama31)
    for name, messages in conversations().items():
        assert gguf(messages) == hf(messages), name


def test_qwen3_is_counted_with_thinking_off_on_both_paths(qwen3):
    gguf = TokenCounter(str(_vocab_dir() / QWEN2), chat_template=_template(QWEN3_TEMPLATE))
    hf = TokenCounter("Qwen/Qwen3-8B", tokenizer=qwen3)
    for name, messages in conversations().items():
        ids = conversation_ids(qwen3, messages)
        assert hf(messages) == len(ids) == gguf(messages), name
        # Qwen3 marks the last answer with an (empty) think block; it is counted.
        assert "<think>\n\n</think>" in qwen3.decode(ids), name


def test_the_gguf_path_passes_thinking_off_into_the_template(qwen3):
    """llama-cpp-python's formatter hands extra keywords to the template, as transformers does."""
    probe = ("{%- if enable_thinking is defined and enable_thinking is false %}thinking off {% endif -%}"
             "{%- for m in messages %}{{ m.content }}{% endfor %}")
    messages = [{"role": "user", "content": "a poem"}, {"role": "assistant", "content": "a line"}]
    gguf = TokenCounter(str(_vocab_dir() / QWEN2), chat_template=probe)
    plain = TokenCounter(str(_vocab_dir() / QWEN2), chat_template=probe.replace("enable_thinking", "no_such_switch"))
    assert gguf(messages) == len(qwen3.encode("thinking off a poema line", add_special_tokens=False))
    assert gguf(messages) > plain(messages)


def test_a_gemma_base_without_a_template_is_counted_under_the_one_training_gives_it(gemma):
    counter = TokenCounter(str(gemma_base.default_target()))
    assert counter.note is None
    for name, messages in conversations().items():
        ids = conversation_ids(gemma, messages)
        assert counter(messages) == len(ids), name
        # Gemma has no system role: the persona is folded into the first user turn.
        assert gemma.decode(ids).startswith("<bos><start_of_turn>user\n" + messages[0]["content"][:40]), name


def test_a_gguf_with_no_template_and_no_known_family_is_estimated_and_says_why():
    path = require_material(_vocab_dir() / LLAMA_SPM, "workshop setup --converter")
    counter = TokenCounter(str(path))
    assert "has no chat template" in counter.note and "estimated" in counter.note
    assert counter([{"role": "user", "content": "x" * 300}]) >= 100

