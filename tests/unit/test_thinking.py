"""Thinking models with no model: the reasoning filter on awkward chunkings, thinking
templates detected and rendered from llama.cpp's real templates, and the llama.cpp backend
(on a stand-in for llama.cpp) keeping reasoning out of replies, the session and the store."""

from __future__ import annotations

import itertools
import json
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from poetry_workshop.config.loader import load_settings
from poetry_workshop.config.schema import ExportSettings, Runtime, Sampling
from poetry_workshop.errors import GenerationError
from poetry_workshop.inference.gguf_file import read_gguf
from poetry_workshop.inference.inference_thread import InferenceThread
from poetry_workshop.inference.llama_backend import LlamaBackend
from poetry_workshop.inference.reasoning_filter import ReasoningFilter
from poetry_workshop.inference.thinking import close_open_thought, opens_thought, thinking_template
from poetry_workshop.pipeline.training.gguf_export import converter_dir
from poetry_workshop.workshop.transcript import to_markdown, to_records
from tests.support.cli import STARTER
from tests.support.studio import make_studio

REASONING = "The user wants a critique. Let me look at line 2 first."
ANSWER = 'The poem watches the tide. "the water leaves" (line 1) is exact.'
THOUGHT_REPLY = f"<think>\n{REASONING}\n</think>\n\n{ANSWER}"


def filtered(chunks: list[str], inside: bool = False) -> tuple[str, list[str], ReasoningFilter]:
    out: list[str] = []
    f = ReasoningFilter(out.append, inside=inside)
    for chunk in chunks:
        f.feed(chunk)
    f.finish()
    return "".join(out), out, f


def every_split(text: str):
    """The text cut in two at every place, and cut into single characters."""
    for i in range(len(text) + 1):
        yield [text[:i], text[i:]]
    yield list(text)


# ------------------------------------------------------------------------ the stream filter
@pytest.mark.parametrize("text", [ANSWER, "\n\n  indented\nline", "a < b and <thing> and </th", "", "  \n"])
def test_a_reply_without_think_tags_comes_out_unchanged_however_it_is_cut(text):
    for chunks in every_split(text):
        assert filtered(chunks)[0] == text, chunks


def test_a_think_block_is_cut_wherever_the_chunks_split_its_tags():
    for chunks in every_split(THOUGHT_REPLY):
        text, _, f = filtered(chunks)
        assert text == ANSWER, chunks
        assert f.thought and not f.inside


def test_answer_text_streams_while_it_arrives():
    out: list[str] = []
    f = ReasoningFilter(out.append)
    f.feed("<think>plan the poem</think>\n\nthe water")
    assert "".join(out) == "the water"  # not held until the end
    f.feed(" leaves <")  # '<' might open a tag: held, and only that
    assert "".join(out) == "the water leaves "
    f.feed("br>")
    assert "".join(out) == "the water leaves <br>"
    f.feed("\nthe mud <thi")
    assert "".join(out) == "the water leaves <br>\nthe mud "
    f.feed("s>")
    f.finish()
    assert "".join(out) == "the water leaves <br>\nthe mud <this>"


def test_nothing_goes_out_before_the_thought_closes():
    out: list[str] = []
    f = ReasoningFilter(out.append)
    end = THOUGHT_REPLY.index("</think>") + len("</think>")
    for ch in THOUGHT_REPLY[:end]:
        f.feed(ch)
        assert out == []
    for ch in THOUGHT_REPLY[end:]:
        f.feed(ch)
    assert "".join(out) == ANSWER


def test_a_reply_that_starts_inside_the_thought_carries_only_the_closing_tag():
    # DeepSeek-R1: the prompt ends with "<think>\n", so the reply is "…reasoning…</think>answer"
    reply = f"{REASONING}\n</think>\n\n{ANSWER}"
    for chunks in every_split(reply):
        assert filtered(chunks, inside=True)[0] == ANSWER, chunks


def test_an_unterminated_thought_leaves_no_text():
    for chunks in every_split(f"<think>\n{REASONING} and so on"):
        text, pieces, f = filtered(chunks)
        assert text == "" and pieces == [] and f.thought and f.inside
    assert filtered([REASONING], inside=True)[0] == ""


def test_a_stray_closing_tag_is_dropped_and_a_later_block_cut():
    assert filtered(["first line</think>\n\nsecond"])[0] == "first linesecond"
    assert filtered(["before <think>aside</think> after"])[0] == "before after"


# -------------------------------------------------------------------- templates detected
def real_template(name: str) -> str:
    folder = converter_dir(ExportSettings().converter_version) / "models" / "templates"
    path = folder / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `bash scripts/setup.sh --test` (it fetches the converter) first")
    return path.read_text(encoding="utf-8")


QWEN3 = "Qwen-Qwen3-0.6B.jinja"
R1 = "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja"
QWQ = "Qwen-QwQ-32B.jinja"
MESSAGES = [{"role": "system", "content": "You are the Educator."}, {"role": "user", "content": "Critique this."}]


@pytest.mark.parametrize("name, switch", [(QWEN3, True), (QWQ, True), (R1, False)])
def test_thinking_templates_are_detected(name, switch):
    t = thinking_template(real_template(name))
    assert t.thinks and t.has_switch is switch


@pytest.mark.parametrize("name", ["meta-llama-Llama-3.1-8B-Instruct.jinja", "google-gemma-2-2b-it.jinja",
                                  "Qwen-Qwen2.5-7B-Instruct.jinja"])
def test_other_templates_are_not_thinking_templates(name):
    assert not thinking_template(real_template(name)).thinks


def test_the_starter_model_does_not_think():
    assert not read_gguf(STARTER).thinking.thinks


def render(name: str, thinking: bool) -> str:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = real_template(name)
    prompt = Jinja2ChatFormatter(template, eos_token="", bos_token="")(
        messages=MESSAGES, **thinking_template(template).render_kwargs(thinking)
    ).prompt
    return prompt if thinking else close_open_thought(prompt)


def test_qwen3_renders_an_empty_thought_when_thinking_is_off():
    off, on = render(QWEN3, False), render(QWEN3, True)
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n") and not opens_thought(off)
    assert on.endswith("<|im_start|>assistant\n") and "<think>" not in on


@pytest.mark.parametrize("name", [R1, QWQ])
def test_a_template_that_opens_the_thought_has_it_closed_when_thinking_is_off(name):
    off, on = render(name, False), render(name, True)
    assert opens_thought(on)
    assert not opens_thought(off) and off.rstrip().endswith("</think>")


# ------------------------------------------- the backend, on a stand-in for llama.cpp
EOS, IM_START = 0, 1


class FakeLlama:
    """Enough of `llama_cpp.Llama` for the backend: replays scripted replies piece by piece
    (one token per piece) and records the prompts it was given. The first token comes from
    `generate`, the rest from `_sampler.sample` after each `_ctx.decode`, as with the real one."""

    def __init__(self, replies: list[list[str]], think_is_control: bool):
        self.replies = replies
        self.pieces = ["<|im_end|>", "<|im_start|>"]
        self.control = {EOS, IM_START}
        for reply in replies:
            for piece in reply:
                if piece not in self.pieces:
                    self.pieces.append(piece)
        if think_is_control:
            self.control |= {self.pieces.index(t) for t in ("<think>", "</think>") if t in self.pieces}
        self.model = None
        self.input_ids = np.zeros(8192, dtype=np.intc)
        self.n_tokens = 0
        self.n_batch = 512
        self.script = iter(())
        self._ctx = SimpleNamespace(ctx=None, kv_cache_seq_rm=lambda *args: None, decode=lambda batch: None)
        self._batch = SimpleNamespace(set_batch=lambda **kwargs: None)
        self._sampler = SimpleNamespace(sample=lambda ctx, i: next(self.script))
        self.prompts: list[str] = []
        self.calls = 0

    def token_eos(self) -> int:
        return EOS

    def n_ctx(self) -> int:
        return len(self.input_ids)

    def token_bos(self) -> int:
        return -1

    def n_vocab(self) -> int:
        return len(self.pieces)

    def detokenize(self, tokens, special=False) -> bytes:
        return b"".join(b"" if t in self.control and not special else self.pieces[t].encode() for t in tokens)

    def tokenize(self, text: bytes, add_bos=True, special=False) -> list[int]:
        self.prompts.append(text.decode())
        return list(text)  # one token per byte: enough to count

    def set_seed(self, seed) -> None:
        pass

    def generate(self, tokens, **sampling):
        reply = self.replies[min(self.calls, len(self.replies) - 1)]
        self.calls += 1
        self.script = itertools.chain((self.pieces.index(piece) for piece in reply), itertools.repeat(EOS))
        yield next(self.script)

    def close(self) -> None:
        pass


def write_header_gguf(path: Path, template: str) -> Path:
    """A GGUF header with a chat template and no tensor data: enough for `read_gguf`."""
    def string(s: str) -> bytes:
        data = s.encode()
        return struct.pack("<Q", len(data)) + data

    kv = [("general.architecture", "qwen3"), ("tokenizer.chat_template", template)]
    body = b"GGUF" + struct.pack("<IQQ", 3, 1, len(kv))
    for key, value in kv:
        body += string(key) + struct.pack("<I", 8) + string(value)
    path.write_bytes(body)
    return path


@pytest.fixture
def thread():
    t = InferenceThread()
    yield t
    t.close()


@pytest.fixture
def fake_llama(monkeypatch):
    """Installs the stand-in; returns a function making a backend on it."""
    import llama_cpp

    def attr(vocab, token):
        return llama_cpp.LLAMA_TOKEN_ATTR_CONTROL if token in made[-1].control else llama_cpp.LLAMA_TOKEN_ATTR_NORMAL

    made: list[FakeLlama] = []
    monkeypatch.setattr(llama_cpp, "llama_model_get_vocab", lambda model: None)
    monkeypatch.setattr(llama_cpp, "llama_vocab_get_attr", attr)
    monkeypatch.setattr(llama_cpp, "llama_vocab_is_eog", lambda vocab, token: token == EOS)
    monkeypatch.setattr(llama_cpp, "llama_synchronize", lambda ctx: None)
    monkeypatch.setattr(llama_cpp, "llama_perf_context_reset", lambda ctx: None)
    no_time = SimpleNamespace(n_p_eval=0, t_p_eval_ms=0.0, n_eval=0, t_eval_ms=0.0)
    monkeypatch.setattr(llama_cpp, "llama_perf_context", lambda ctx: no_time)

    def backend(tmp_path, thread, replies, *, template=QWEN3, thinking=True, think_is_control=False):
        gguf = write_header_gguf(tmp_path / f"model{len(made)}.gguf", real_template(template))
        llm = FakeLlama(replies, think_is_control)
        monkeypatch.setattr(llama_cpp, "Llama", lambda **kwargs: made.append(llm) or llm)
        b = LlamaBackend(gguf, Runtime(n_ctx=8192, n_threads=1), thread, thinking=thinking)
        b.batch_logit_gap = 0.0  # a scripted reply is the same whichever way it is decoded
        b.load()
        return b, llm

    return backend


def pieces_of(text: str, size: int = 3) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize("think_is_control", [False, True])
def test_the_backend_streams_only_the_answer_and_counts_the_reasoning(tmp_path, thread, fake_llama, think_is_control):
    reply = ["<think>", "\n", *pieces_of(REASONING), "\n", "</think>", "\n\n", *pieces_of(ANSWER)]
    backend, llm = fake_llama(tmp_path, thread, [reply], think_is_control=think_is_control)
    streamed: list[str] = []
    completion = backend.generate(MESSAGES, 500, Sampling(), on_text=streamed.append)
    assert completion.text == ANSWER and "".join(streamed) == ANSWER
    s = completion.stats
    assert s.finish_reason == "stop" and s.generated_tokens == len(reply)
    assert s.thinking_tokens == len(reply) - 1 - len(pieces_of(ANSWER))  # all but the blank line and the answer
    assert "<think>" not in backend.stop_texts and "</think>" not in backend.stop_texts


def test_thinking_off_renders_the_empty_thought_for_counting_and_generating_alike(tmp_path, thread, fake_llama):
    backend, llm = fake_llama(tmp_path, thread, [pieces_of(ANSWER)], thinking=False)
    counted = backend.count_tokens(MESSAGES)
    completion = backend.generate(MESSAGES, 500, Sampling())
    assert llm.prompts[0] == llm.prompts[1] and llm.prompts[0].endswith("<think>\n\n</think>\n\n")
    assert counted == completion.stats.prompt_tokens
    assert completion.text == ANSWER and completion.stats.thinking_tokens == 0


def test_thinking_on_leaves_the_qwen3_prompt_open(tmp_path, thread, fake_llama):
    backend, llm = fake_llama(tmp_path, thread, [pieces_of(ANSWER)], thinking=True)
    backend.generate(MESSAGES, 500, Sampling())
    assert llm.prompts[-1].endswith("<|im_start|>assistant\n")


def test_a_thought_cut_off_at_max_tokens_leaves_empty_text_and_says_so(tmp_path, thread, fake_llama):
    backend, _ = fake_llama(tmp_path, thread, [["<think>", *pieces_of(REASONING * 3)]])
    streamed: list[str] = []
    completion = backend.generate(MESSAGES, 12, Sampling(), on_text=streamed.append)
    assert completion.text == "" and streamed == []
    s = completion.stats
    assert s.finish_reason == "length" and s.generated_tokens == 12 and s.thinking_tokens == 12


def test_a_deepseek_r1_reply_that_starts_inside_the_thought(tmp_path, thread, fake_llama):
    reply = [*pieces_of(REASONING), "\n", "</think>", "\n\n", *pieces_of(ANSWER)]
    backend, llm = fake_llama(tmp_path, thread, [reply], template=R1, thinking=True)
    completion = backend.generate(MESSAGES, 500, Sampling())
    assert llm.prompts[-1].endswith("<think>\n")
    assert completion.text == ANSWER and completion.stats.thinking_tokens == len(pieces_of(REASONING)) + 2


# ------------------------------------------------------------ the session and the store
EDUCATOR_REPLY = ["<think>", *pieces_of(REASONING), "</think>", "\n\n", *pieces_of(ANSWER)]
POET_THOUGHT = "I will keep the tide and show the mud."
POEM = "the water leaves\nmud counts gulls"
POET_REPLY = ["<think>", *pieces_of(POET_THOUGHT), "</think>", "\n\n", *pieces_of(POEM)]


def test_no_reasoning_reaches_the_panes_the_store_or_the_transcript(tmp_path, thread, fake_llama):
    educator, _ = fake_llama(tmp_path, thread, [EDUCATOR_REPLY])
    poet, _ = fake_llama(tmp_path, thread, [POET_REPLY])
    studio = make_studio(tmp_path, educator=educator, poet=poet)
    try:
        streamed: list[str] = []
        finished = []

        def on_event(event):
            if type(event).__name__ == "TextChunk":
                streamed.append(event.text)
            if type(event).__name__ == "StepFinished" and event.stats is not None:
                finished.append(event.stats)

        session = studio.start("workshop", "the water leaves\nthe mud keeps count", rounds=2, on_event=on_event)
        session.run()
        tree = session.tree
        generated = [n for n in tree.nodes.values() if n.author in ("educator", "poet")]
        assert {n.kind for n in generated} == {"critique", "draft"} and len(generated) == 3
        stored = json.dumps([[n.text, n.meta] for n in tree.nodes.values()])
        transcript = to_markdown(session.record, tree) + json.dumps(to_records(session.record, tree))
        for where in (stored, transcript, "".join(streamed)):
            assert "think>" not in where and REASONING not in where and POET_THOUGHT not in where
        for turn in studio.engine.educator.conversation.turns + studio.engine.poet.conversation.turns:
            assert "think>" not in turn.content
        assert session.current_draft.text == POEM
        assert all(s.thinking_tokens > 0 for s in finished)
        assert all(n.meta["stats"]["thinking_tokens"] > 0 for n in generated)
    finally:
        studio.store.close()


def test_a_step_that_only_thought_fails_with_a_clear_message(tmp_path, thread, fake_llama):
    settings = load_settings(environ={})
    settings.inference.max_tokens.critique = 10
    educator, _ = fake_llama(tmp_path, thread, [["<think>", *pieces_of(REASONING * 2)]])
    studio = make_studio(tmp_path, educator=educator, settings=settings)
    try:
        session = studio.start("workshop", "the water leaves\nthe mud keeps count", rounds=1)
        with pytest.raises(GenerationError, match=r"spent all 10 tokens thinking and wrote no critique"):
            session.critique()
        assert [n.kind for n in session.tree.nodes.values()] == ["draft"]  # nothing stored
    finally:
        studio.store.close()


def test_thinking_is_off_by_default_for_both_roles():
    thinking = load_settings(environ={}).inference.thinking
    assert (thinking.educator, thinking.poet) == (False, False)
    env = {"POETRY_WORKSHOP__INFERENCE_CONFIG__THINKING__POET": "true"}
    thinking = load_settings(environ=env).inference.thinking
    assert (thinking.educator, thinking.poet) == (False, True)
