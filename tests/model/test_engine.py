"""The engine on the real starter GGUF through llama.cpp: streaming, stops, KV reuse, cancel,
context limits, and one inference thread for every caller."""

from __future__ import annotations

import threading

import pytest

from poetry_workshop.config.loader import load_settings
from poetry_workshop.config.schema import Runtime, Sampling
from poetry_workshop.errors import PromptTooLongError
from poetry_workshop.inference.engine import Engine, RoleChat
from poetry_workshop.inference.inference_thread import InferenceThread
from poetry_workshop.inference.llama_backend import LlamaBackend
from poetry_workshop.inference.model_choice import choose_models
from poetry_workshop.workshop.persona import load_persona

pytestmark = pytest.mark.model

SPECIAL = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")


@pytest.fixture(scope="module")
def thread():
    t = InferenceThread()
    yield t
    t.close()


@pytest.fixture(scope="module")
def backend(thread, starter_gguf):
    b = LlamaBackend(starter_gguf, Runtime(n_ctx=2048, n_threads=2), thread)
    b.load()
    yield b
    b.close()


def chat(backend, system="You are a poet. Answer with a short poem."):
    return RoleChat("poet", backend, system, Sampling(temperature=0.8))


def test_reply_streams_and_stops_at_end_of_turn(backend):
    pieces = []
    reply = chat(backend).send("Write three lines about rain on a tin roof.", 200, on_text=pieces.append)
    assert reply.text and "".join(pieces) == reply.text
    s = reply.stats
    assert s.prompt_tokens > 20 and 0 < s.generated_tokens <= 200 and s.seconds > 0
    assert s.finish_reason in ("stop", "length")
    for marker in SPECIAL:
        assert marker not in reply.text
    assert not reply.text.lstrip().lower().startswith("assistant")


def test_stop_markers_come_from_the_gguf(backend):
    assert "<|im_end|>" in backend.stop_texts and "<|im_start|>" in backend.stop_texts


def test_later_rounds_evaluate_only_new_tokens(backend):
    c = chat(backend)
    first = c.send("Write two lines about a heron.", 48)
    second = c.send("Now revise it: make the second line about its feet.", 48)
    third = c.send("Revise once more, keep it short.", 48)
    assert first.stats.evaluated_tokens >= first.stats.prompt_tokens - 1 or first.stats.evaluated_tokens > 0
    for later in (second, third):
        new_turn = later.stats.prompt_tokens - (first.stats.prompt_tokens if later is second else second.stats.prompt_tokens)
        assert later.stats.evaluated_tokens < later.stats.prompt_tokens / 2
        assert later.stats.evaluated_tokens <= new_turn + 2
    # assistant turns are kept exactly as generated
    assert c.conversation.turns[1].content == first.text


def test_cancel_takes_effect_within_one_token(backend):
    cancel = threading.Event()
    seen = []

    def on_text(piece):
        seen.append(piece)
        if len(seen) == 3:
            cancel.set()

    reply = chat(backend).send("Write a long poem about the sea, forty lines.", 300, on_text=on_text, cancel=cancel)
    assert reply.stats.finish_reason == "cancelled" and reply.stopped
    assert reply.stats.generated_tokens <= 4
    assert len(seen) <= 4


def test_the_next_call_works_after_a_cancel(backend):
    cancel = threading.Event()
    cancel.set()
    c = chat(backend)
    stopped = c.send("Write about snow.", 100, cancel=cancel)
    assert stopped.stats.generated_tokens <= 1
    after = c.send("Write about ice instead.", 40)
    assert after.stats.generated_tokens > 0 and after.stats.finish_reason in ("stop", "length")


def test_prompt_longer_than_context_is_refused(thread, starter_gguf):
    small = LlamaBackend(starter_gguf, Runtime(n_ctx=256, n_threads=2), thread)
    try:
        c = chat(small)
        with pytest.raises(PromptTooLongError, match="context holds 256"):
            c.send(" ".join(f"word{i}" for i in range(400)), 64)
        assert c.conversation.turns == []
    finally:
        small.close()


def test_outgrown_context_drops_oldest_rounds_on_the_real_model(thread, starter_gguf):
    small = LlamaBackend(starter_gguf, Runtime(n_ctx=512, n_threads=2), thread)
    notices = []
    try:
        c = chat(small)
        # Long user turns and short replies make the overflow certain whatever the model writes.
        detail = " ".join(f"the lighthouse keeper counts gull number {n} on the rail," for n in range(14))
        for i in range(5):
            c.send(f"Round {i}: {detail} Write one line.", 24, notice=notices.append)
        assert notices and "dropped" in notices[0]
        assert "Round 4" in c.conversation.turns[-2].content
        assert c.conversation.messages()[0]["role"] == "system"
    finally:
        small.close()


def test_calls_from_many_threads_are_serialised(backend):
    results, errors = [], []

    def worker(n):
        try:
            results.append(chat(backend).send(f"One line about stone {n}.", 16).stats.generated_tokens)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and len(results) == 4 and all(n > 0 for n in results)


def test_engine_from_settings_uses_the_starter_for_both_roles(starter_gguf):
    settings = load_settings(environ={})
    choices = choose_models(settings)
    assert all(c.is_starter and c.path == starter_gguf for c in choices.values())
    engine = Engine.from_settings(settings, load_persona(), choices)
    try:
        assert engine.educator.backend is not engine.poet.backend  # one Llama per role
        reply = engine.educator.send("Say one sentence about line breaks.", 32)
        assert reply.stats.generated_tokens > 0
    finally:
        engine.close()


def test_evaluated_prompt_tokens_are_llama_cpps_own_count(thread, starter_gguf):
    """The figure comes from llama.cpp's performance counters: what it actually decoded."""
    fresh = LlamaBackend(starter_gguf, Runtime(n_ctx=1024, n_threads=2), thread)
    messages = [{"role": "system", "content": "You are a poet."},
                {"role": "user", "content": "Write two lines about a heron."}]
    try:
        first = fresh.generate(messages, 8, Sampling(temperature=0.0))
        again = fresh.generate(messages, 8, Sampling(temperature=0.0))
    finally:
        fresh.close()
    assert first.stats.evaluated_tokens == first.stats.prompt_tokens  # a fresh context decodes it all
    # All of it is cached: llama-cpp-python decodes only the last token again, for fresh logits.
    assert again.stats.evaluated_tokens == 1
