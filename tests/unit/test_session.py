"""The workshop loop on a scripted model: order of steps, commits, resume, branch, failures."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from poetry_workshop.config.schema import MaxTokens, Sampling
from poetry_workshop.errors import GenerationError, PromptTooLongError, WorkshopError
from poetry_workshop.inference.engine import Engine, RoleChat
from poetry_workshop.inference.model_choice import ModelChoice
from poetry_workshop.workshop.session import Notice, StepFinished, StepStarted, TextChunk, WorkshopSession
from poetry_workshop.workshop.store import SessionStore
from tests.fakes.scripted_backend import ScriptedBackend

CRITIQUE = 'It reaches for the tide. "the water leaves" (line 1) works. What would the mud say?'


def make_engine(educator: ScriptedBackend, poet: ScriptedBackend) -> Engine:
    choices = {r: ModelChoice(r, Path(f"{r}.gguf"), True, "starter") for r in ("educator", "poet")}
    return Engine(
        RoleChat("educator", educator, "You are the Educator.", Sampling()),
        RoleChat("poet", poet, "You are the Poet.", Sampling()),
        choices,
    )


@pytest.fixture
def store(tmp_path):
    s = SessionStore.open(tmp_path / "sessions.db")
    yield s
    s.close()


def test_write_mode_runs_brief_draft_critique_rounds(store):
    educator = ScriptedBackend(["Form: free verse. Anchor: mudflats.", CRITIQUE, "Better. " + CRITIQUE])
    poet = ScriptedBackend(["Here is a poem:\nthe water leaves\nthe mud keeps count", "the water leaves\nmud counts gulls"])
    events = []
    session = WorkshopSession.start(store, make_engine(educator, poet), mode="write", text="the tide at night",
                                    rounds=2, max_tokens=MaxTokens(), on_event=events.append)
    session.run()
    kinds = [(n.kind, n.author) for n in session.path]
    assert kinds == [("request", "person"), ("brief", "educator"), ("draft", "poet"), ("critique", "educator"),
                     ("draft", "poet"), ("critique", "educator")]
    assert session.path[2].text == "the water leaves\nthe mud keeps count"  # chat preamble removed
    assert session.next_action() is None and session.rounds_done == 2
    # the follow-up critique was asked about what changed, with the new draft numbered
    followup = educator.calls[-1][-1]["content"]
    assert "revised the poem" in followup and " 2  mud counts gulls" in followup
    # the Poet revised from the critique and already knew its own draft
    revise = poet.calls[-1][-1]["content"]
    assert CRITIQUE in revise and "The current draft" not in revise
    # conversations only append: each call's messages extend the previous call's
    for calls in (educator.calls, poet.calls):
        for earlier, later in zip(calls, calls[1:]):
            assert later[: len(earlier)] == earlier
    assert [type(e) for e in events].count(StepStarted) == 5
    assert any(isinstance(e, TextChunk) for e in events)
    assert sum(isinstance(e, StepFinished) for e in events) == 5


def test_each_step_is_committed_before_the_next(store, tmp_path):
    seen_counts = []

    def poet_reply(messages):
        # While the Poet writes, the brief must already be in the database (a second connection sees it).
        other = SessionStore.open(tmp_path / "sessions.db")
        (record,) = other.list_sessions()
        seen_counts.append(len(other.tree(record.id).nodes))
        other.close()
        return "salt on the sill"

    educator = ScriptedBackend(["Brief.", CRITIQUE])
    session = WorkshopSession.start(store, make_engine(educator, ScriptedBackend(poet_reply)), mode="write",
                                    text="salt", rounds=1, max_tokens=MaxTokens())
    session.run()
    assert seen_counts == [2]  # request + brief committed before the draft was asked for


def test_workshop_mode_critiques_the_persons_poem_then_poet_revises(store):
    poem = "my grandmother's hands\nflour to the wrist"
    educator = ScriptedBackend([CRITIQUE, "The change helps."])
    poet = ScriptedBackend(["my grandmother's hands\nflour to the elbow"])
    session = WorkshopSession.start(store, make_engine(educator, poet), mode="workshop", text=poem, rounds=2,
                                    max_tokens=MaxTokens())
    session.run()
    assert [(n.kind, n.author) for n in session.path] == [
        ("draft", "person"), ("critique", "educator"), ("draft", "poet"), ("critique", "educator")]
    assert " 1  my grandmother's hands" in educator.calls[0][-1]["content"]
    # the Poet never saw this poem, so the revise request carries it
    assert "The current draft:\n\n" + poem in poet.calls[0][-1]["content"]


def test_resume_rebuilds_both_conversations_exactly(store):
    educator = ScriptedBackend(["Brief one.", CRITIQUE])
    poet = ScriptedBackend(["first draft line"])
    session = WorkshopSession.start(store, make_engine(educator, poet), mode="write", text="a kettle",
                                    rounds=2, max_tokens=MaxTokens())
    for _ in range(3):
        session.step()  # brief, draft, critique; then the process "dies"
    before_edu = session.engine.educator.conversation.messages()
    before_poet = session.engine.poet.conversation.messages()

    educator2, poet2 = ScriptedBackend(["Follow-up."]), ScriptedBackend(["second draft line"])
    resumed = WorkshopSession.resume(store, make_engine(educator2, poet2), session.record.id, MaxTokens())
    assert resumed.engine.educator.conversation.messages() == before_edu
    assert resumed.engine.poet.conversation.messages() == before_poet
    assert resumed.next_action() == "revise"
    resumed.run()
    assert poet2.calls[0][: len(before_poet)] == before_poet  # same prefix: the KV cache carries over
    assert [n.kind for n in resumed.path][-2:] == ["draft", "critique"]


def test_edit_branch_ask_and_accept(store):
    educator = ScriptedBackend(["Brief.", CRITIQUE, "Your edit sharpened line 2.", "Enjambment is ...", CRITIQUE])
    poet = ScriptedBackend(["draft one", "draft from branch"])
    session = WorkshopSession.start(store, make_engine(educator, poet), mode="write", text="fog", rounds=3,
                                    max_tokens=MaxTokens())
    session.step(), session.step(), session.step()
    first_draft = session.current_draft
    edited = session.edit("draft one\nwith a second line")
    assert (edited.author, edited.parent_id) == ("person", session.path[-2].id)
    session.step()  # follow-up critique of the person's edit
    answer = session.ask("what is enjambment?")
    assert answer.kind == "answer" and session.path[-2].kind == "question"

    session.branch(first_draft.id)
    assert session.next_action() == "critique"
    assert len(session.engine.poet.conversation.turns) == 2  # rebuilt to the branch point
    session.step()
    session.step()  # the Poet revises the first draft again: a sibling branch
    tree = session.tree
    drafts_under_critiques = [n for n in tree.drafts() if n.parent_id != first_draft.parent_id]
    assert len(tree.children(first_draft.id)) == 2  # two critiques of draft one: a branch
    assert session.current_draft.text == "draft from branch"
    assert "The current draft" not in poet.calls[-1][-1]["content"]
    assert drafts_under_critiques
    session.accept()
    assert session.record.status == "accepted" and session.next_action() is None


def test_failed_generation_leaves_session_and_conversation_as_they_were(store):
    educator = ScriptedBackend(["Brief.", GenerationError("llama.cpp failed")])
    poet = ScriptedBackend(["a draft"])
    session = WorkshopSession.start(store, make_engine(educator, poet), mode="write", text="x", rounds=1,
                                    max_tokens=MaxTokens())
    session.step(), session.step()
    nodes_before = dict(session.tree.nodes)
    turns_before = list(session.engine.educator.conversation.turns)
    with pytest.raises(GenerationError):
        session.step()
    assert session.tree.nodes == nodes_before
    assert session.engine.educator.conversation.turns == turns_before
    assert session.next_action() == "critique"


def test_empty_reply_is_an_error_not_an_empty_draft(store):
    educator = ScriptedBackend(["Brief."])
    poet = ScriptedBackend(["<|im_end|>"])
    session = WorkshopSession.start(store, make_engine(educator, poet), mode="write", text="x", rounds=1,
                                    max_tokens=MaxTokens())
    session.step()
    with pytest.raises(GenerationError, match="empty draft"):
        session.step()
    assert [n.kind for n in session.path] == ["request", "brief"]
    assert session.engine.poet.conversation.turns == []


def test_stop_keeps_partial_text_marked_stopped(store):
    cancel = threading.Event()

    def long_reply(messages):
        return "one two three four five six"

    poet = ScriptedBackend(long_reply)
    original = poet.generate

    def cancelling_generate(messages, max_tokens, sampling, on_text=None, cancel=None, seed_offset=0):
        def on_text_then_cancel(piece):
            on_text(piece)
            if piece.strip() == "two":
                cancel.set()
        return original(messages, max_tokens, sampling, on_text_then_cancel, cancel, seed_offset)

    poet.generate = cancelling_generate
    session = WorkshopSession.start(store, make_engine(ScriptedBackend(["Brief."]), poet), mode="write", text="x",
                                    rounds=1, max_tokens=MaxTokens())
    session.run(cancel=cancel)
    draft = session.current_draft
    assert draft.text == "one two" and draft.meta["stopped"] is True
    assert session.next_action() == "critique"  # the next action works on the partial draft


def test_long_conversations_drop_oldest_rounds_and_say_so(store):
    words = " ".join(["salt"] * 60)
    educator = ScriptedBackend(["Brief " + words] + [f"Critique {i} " + words for i in range(6)], n_ctx=700)
    poet = ScriptedBackend([f"draft {i} " + words for i in range(6)], n_ctx=700)
    notices = []
    session = WorkshopSession.start(store, make_engine(educator, poet), mode="write", text="sea", rounds=5,
                                    max_tokens=MaxTokens(brief=100, draft=100, critique=100, answer=100),
                                    on_event=lambda e: isinstance(e, Notice) and notices.append(e.text))
    session.run()
    assert session.rounds_done == 5
    assert notices and "dropped" in notices[0]
    last = educator.calls[-1]
    assert last[0]["content"] == "You are the Educator."  # system prompt kept
    assert "Critique 3" in last[-2]["content"]  # the latest critique kept
    assert "draft 4" in last[-1]["content"]  # the current draft kept
    assert not any("Brief salt" in m["content"] for m in last)  # the oldest round went first


def test_prompt_that_cannot_fit_is_a_clear_error(store):
    educator = ScriptedBackend(["never used"], n_ctx=50)
    session = WorkshopSession.start(store, make_engine(educator, ScriptedBackend([])), mode="write",
                                    text=" ".join(["word"] * 80), rounds=1, max_tokens=MaxTokens())
    with pytest.raises(PromptTooLongError, match="n_ctx"):
        session.step()
    assert educator.calls == []


@pytest.mark.parametrize("text", ["", "   \n  "])
def test_empty_request_is_refused(store, text):
    with pytest.raises(WorkshopError, match="empty"):
        WorkshopSession.start(store, make_engine(ScriptedBackend([]), ScriptedBackend([])), mode="write",
                              text=text, rounds=1, max_tokens=MaxTokens())
    assert store.list_sessions() == []


def test_critique_again_samples_afresh_but_a_replay_repeats(store):
    educator = ScriptedBackend(["Brief.", CRITIQUE, "Another reading."])
    session = WorkshopSession.start(store, make_engine(educator, ScriptedBackend(["a draft"])), mode="write",
                                    text="x", rounds=1, max_tokens=MaxTokens())
    session.run()
    session.critique_again()
    first, again = educator.seed_offsets[1], educator.seed_offsets[2]
    assert first != again  # the same question asked twice is sampled with another seed
    assert educator.seed_offsets == [1, 3, 4]  # fixed by the step's place in the session


def test_a_stop_before_any_text_stores_nothing_and_the_loop_can_go_on(store):
    educator = ScriptedBackend(["Brief.", CRITIQUE])
    poet = ScriptedBackend(["the water leaves", "never seen"])
    session = WorkshopSession.start(store, make_engine(educator, poet), mode="write", text="tide", rounds=2,
                                    max_tokens=MaxTokens())
    session.run(1)
    before, turns = session.tree.nodes.keys(), list(session.engine.poet.conversation.turns)
    events = []
    session.on_event = events.append
    cancel = threading.Event()
    cancel.set()  # stopped before the first token
    assert session.revise(cancel) is None
    assert session.tree.nodes.keys() == before and session.current_draft.text == "the water leaves"
    assert session.engine.poet.conversation.turns == turns  # as if never asked
    assert any(isinstance(e, Notice) and "nothing was kept" in e.text for e in events)


def test_undo_takes_a_step_back_and_rebuilds_the_conversations(store):
    educator = ScriptedBackend(["Brief.", CRITIQUE, "Follow-up."])
    poet = ScriptedBackend(["the water leaves", "mud counts gulls"])
    session = WorkshopSession.start(store, make_engine(educator, poet), mode="write", text="tide", rounds=1,
                                    max_tokens=MaxTokens())
    session.run()
    first, turns = session.current_draft, list(session.engine.poet.conversation.turns)
    before = session.checkpoint("revision")
    session.revise()
    session.critique()
    assert session.undo(before) == 2
    assert session.current_draft == first and session.engine.poet.conversation.turns == turns
    with pytest.raises(WorkshopError, match="nothing to undo"):
        session.undo(before)
    accepted = session.checkpoint("accept")
    session.accept()
    assert session.undo(accepted) == 0 and session.record.status == "open"
