"""A real thinking model through the app's engine: a tiny Qwen3 (real tokenizer, real
template, taught to reason in <think>…</think> when thinking is on) runs the workshop loop
through `Engine.from_settings`, `LlamaBackend` and `WorkshopSession`; no reasoning reaches
the panes, the conversation, the store or the transcript, with thinking on and off."""

from __future__ import annotations

import json

import pytest

from poetry_workshop.config.loader import load_settings
from poetry_workshop.config.schema import Runtime, Sampling
from poetry_workshop.errors import GenerationError
from poetry_workshop.inference.engine import Engine
from poetry_workshop.inference.gguf_file import read_gguf
from poetry_workshop.inference.inference_thread import InferenceThread
from poetry_workshop.inference.llama_backend import LlamaBackend
from poetry_workshop.inference.model_choice import ModelChoice
from poetry_workshop.workshop.persona import load_persona
from poetry_workshop.workshop.session import StepFinished, TextChunk
from poetry_workshop.workshop.store import SessionStore
from poetry_workshop.workshop.studio import Studio
from poetry_workshop.workshop.transcript import to_markdown, to_records
from tests.support.families import ANSWER, REASONING, tiny_gguf

pytestmark = [pytest.mark.model, pytest.mark.xdist_group("tiny-qwen3")]

POEM = "the kettle clicks off\nand the house goes on"
MESSAGES = [{"role": "system", "content": "You are the Educator."}, {"role": "user", "content": "What is a volta?"}]


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory):
    """The tiny Qwen3 taught to think when asked to, and the one never taught to think."""
    folder = tmp_path_factory.mktemp("qwen3")
    return {"thinking": tiny_gguf("qwen3", folder, thinking=True), "plain": tiny_gguf("qwen3", folder)}


def open_studio(tmp_path, gguf, thinking: bool, max_tokens: int = 64) -> Studio:
    settings = load_settings(environ={})
    settings.inference.runtime.n_ctx = 2048
    settings.inference.runtime.n_threads = 2
    for role in ("educator", "poet"):
        setattr(settings.inference.models, role, str(gguf))
        setattr(settings.inference.thinking, role, thinking)
        getattr(settings.inference.sampling, role).temperature = 0.0  # greedy: the taught answer every time
    for step in ("brief", "draft", "critique", "answer"):
        setattr(settings.inference.max_tokens, step, max_tokens)
    choices = {role: ModelChoice(role, gguf, False, "config") for role in ("educator", "poet")}
    engine = Engine.from_settings(settings, load_persona(), choices)
    return Studio(settings, choices, SessionStore.open(tmp_path / "sessions.db"), engine)


def test_the_tiny_qwen3_is_a_thinking_model(qwen3):
    info = read_gguf(qwen3["thinking"])
    assert info.thinking.thinks and info.thinking.has_switch


@pytest.mark.parametrize("model, thinking", [("thinking", True), ("thinking", False), ("plain", False)])
def test_no_reasoning_reaches_a_stored_draft_or_critique(tmp_path, qwen3, model, thinking):
    studio = open_studio(tmp_path, qwen3[model], thinking)
    streamed: list[str] = []
    finished: list[StepFinished] = []

    def on_event(event):
        if isinstance(event, TextChunk):
            streamed.append(event.text)
        elif isinstance(event, StepFinished) and event.stats is not None:
            finished.append(event)

    try:
        session = studio.start("workshop", POEM, rounds=2, on_event=on_event)
        session.run()
        tree = session.tree
        generated = [n for n in tree.nodes.values() if n.author in ("educator", "poet")]
        assert [n.kind for n in generated] == ["critique", "draft", "critique"]
        assert [e.node.id for e in finished] == [n.id for n in generated]
        reopened = SessionStore.open(tmp_path / "sessions.db")  # what is on disk, not in memory
        try:
            stored = reopened.tree(session.record.id)
        finally:
            reopened.close()
        on_disk = json.dumps([[n.text, n.meta] for n in stored.nodes.values()])
        transcript = to_markdown(session.record, tree) + json.dumps(to_records(session.record, tree))
        turns = "".join(t.content for t in studio.engine.educator.conversation.turns + studio.engine.poet.conversation.turns)
        for where in (on_disk, transcript, "".join(streamed), turns):
            assert "<think>" not in where and "</think>" not in where
            assert REASONING not in where and "second line carries" not in where
        for node in generated:
            assert ANSWER in node.text  # the answer after the reasoning is kept
        thought = [e.stats.thinking_tokens for e in finished]
        if thinking:  # the taught model reasons first, and its tokens are counted apart
            assert all(n > 0 for n in thought), thought
            assert all(e.stats.generated_tokens > e.stats.thinking_tokens for e in finished)
        else:
            assert thought == [0, 0, 0]
    finally:
        studio.close()


def test_a_thought_cut_off_by_max_tokens_stores_nothing(tmp_path, qwen3):
    studio = open_studio(tmp_path, qwen3["thinking"], thinking=True, max_tokens=4)
    try:
        session = studio.start("workshop", POEM, rounds=1)
        with pytest.raises(GenerationError, match="spent all 4 tokens thinking and wrote no critique"):
            session.critique()
        assert [n.kind for n in session.tree.nodes.values()] == ["draft"]
        assert studio.engine.educator.conversation.turns == []
    finally:
        studio.close()


@pytest.mark.parametrize("thinking", [True, False])
def test_counting_renders_the_prompt_as_generation_does(qwen3, thinking):
    thread = InferenceThread()
    backend = LlamaBackend(qwen3["thinking"], Runtime(n_ctx=1024, n_threads=2), thread, thinking=thinking)
    try:
        counted = backend.count_tokens(MESSAGES)
        tokens = backend.prompt_tokens(MESSAGES)
        completion = backend.generate(MESSAGES, 48, Sampling(temperature=0.0))
        assert completion.stats.prompt_tokens == counted == len(tokens)
        tail = backend._llm.detokenize(tokens[-8:], special=True).decode()
        if thinking:
            assert tail.endswith("<|im_start|>assistant\n")
            assert completion.stats.thinking_tokens > 0
        else:
            assert tail.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
            assert completion.stats.thinking_tokens == 0
        assert completion.text == ANSWER and completion.stats.finish_reason == "stop"
    finally:
        backend.close()
        thread.close()
