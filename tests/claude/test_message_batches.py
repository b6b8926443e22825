"""Message Batches submitted exactly once: the real SDK over real HTTP to the loopback server,
with creates that succeed on the server while the client never hears so (a timeout, a 5xx
after the batch was made, a hang-up) and a `kill -9` between create and the state write."""

from __future__ import annotations

import json
import signal
import threading

import anthropic
import pytest

from poetry_workshop import locations
from poetry_workshop.config.loader import load_settings
from poetry_workshop.pipeline.claude.ledger import is_call, spent
from poetry_workshop.pipeline.data.generation import GenerateOptions, TeachingDataRun
from tests.claude.loopback import KEY, annotated, assert_consistent, generate, spawn_cli, wait_until
from tests.support.cli import run_cli

STATE = "critiques.batch.json"


def creates(server) -> int:
    return sum(1 for r in server.requests if r["path"] == "/v1/messages/batches" and r["method"] == "POST")


def assert_all_collected(limit: int) -> None:
    records, ledger = assert_consistent("critiques")
    assert len(records) == limit
    assert all(e["batch"] for e in ledger)
    assert not (locations.annotated_dir() / STATE).exists()
    # Every reservation was settled: nothing is left counted at its worst case.
    tally = spent(annotated("ledger.jsonl"))
    assert tally.unsettled_calls == 0


@pytest.mark.parametrize("fault", [
    {"kind": "timeout", "seconds": 3},
    {"status": 500, "after_create": True},
    {"status": 529, "after_create": True},
    {"kind": "reset", "after_create": True},
], ids=["client-timeout", "500-after-create", "529-after-create", "reset-after-create"])
def test_a_create_the_server_made_but_the_client_never_heard_of_is_found_not_resent(claude, poems, fault,
                                                                                      monkeypatch):
    monkeypatch.setenv("POETRY_WORKSHOP__GENERATION__CLAUDE__TIMEOUT_S", "0.5")
    claude.batch_faults.append(fault)
    progress = []
    run = TeachingDataRun(load_settings(), GenerateOptions(task="critiques", limit=4, batch_api=True),
                          on_progress=lambda e: progress.append(e.note))
    report = run.run()
    assert len(claude.batch_ids) == 1 and creates(claude) == 1  # looked for it instead of creating again
    assert any("was submitted before" in note for note in progress), progress
    assert report.accepted == 4
    assert_all_collected(4)


def test_a_create_refused_outright_is_sent_again_once(claude, poems):
    claude.batch_faults.append({"status": 503})  # refused before anything was made
    _, report = generate("critiques", limit=4, batch_api=True)
    assert len(claude.batch_ids) == 1 and creates(claude) == 2
    assert report.accepted == 4
    assert_all_collected(4)


def test_a_bad_request_is_not_resent_and_leaves_no_reservation(claude, poems):
    claude.batch_faults.append({"status": 400})
    out = run_cli("data", "generate", "critiques", "--limit", "2", "--batch-api",
                  env={"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": claude.base_url})
    assert out.returncode == 1 and "the batch was not created" in out.stderr and "Traceback" not in out.stderr
    assert creates(claude) == 1 and claude.batch_ids == []
    assert spent(annotated("ledger.jsonl")).total == 0
    assert not (locations.annotated_dir() / STATE).exists()


def test_a_kill_between_create_and_the_state_write_submits_once_and_collects_everything(claude, poems):
    """The process dies after the server made the batch and before its id reached the state
    file; a batch of the same size made by someone else is also there. The rerun must find
    its own batch (the other one's results carry no tag of ours), create nothing, and settle
    every request."""
    env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": claude.base_url}
    client = anthropic.Anthropic(api_key=KEY, base_url=claude.base_url)
    params = {"model": "claude-sonnet-5-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    decoy = client.messages.batches.create(requests=[{"custom_id": f"other-{i}", "params": params} for i in range(4)])

    claude.batch_faults.append({"kind": "timeout", "seconds": 60})  # made, and the answer never comes
    state = locations.annotated_dir() / STATE
    proc = spawn_cli(["data", "generate", "critiques", "--limit", "4", "--batch-api"], env)
    wait_until(lambda: len(claude.batch_ids) == 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    intent = json.loads(state.read_text(encoding="utf-8"))
    assert intent["batch_id"] is None and len(intent["requests"]) == 4
    assert all(cid.endswith("-" + intent["tag"]) for cid in intent["requests"])
    ours = claude.batch_ids[1]

    again = run_cli("data", "generate", "critiques", "--limit", "4", "--batch-api", env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "not ours" in again.stderr and decoy.id in again.stderr  # the decoy was checked and set aside
    assert f"batch {ours} was submitted before" in again.stderr
    assert claude.batch_ids == [decoy.id, ours] and creates(claude) == 2  # the decoy's and ours: none resent
    assert_all_collected(4)
    assert {e["batch_id"] for e in annotated("ledger.jsonl") if is_call(e)} == {ours}


def test_the_server_lists_batches_newest_first_in_pages_as_the_api_does(claude):
    client = anthropic.Anthropic(api_key=KEY, base_url=claude.base_url)
    params = {"model": "claude-sonnet-5-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    made = [client.messages.batches.create(requests=[{"custom_id": f"r{i}", "params": params}]).id for i in range(5)]
    listed = [b.id for b in client.messages.batches.list(limit=2)]  # the SDK follows after_id itself
    assert listed == made[::-1]
    first = client.messages.batches.list(limit=2)
    assert [b.id for b in first.data] == [made[4], made[3]] and first.has_more
    newer = client.messages.batches.list(limit=2, before_id=made[0])
    assert [b.id for b in newer.data] == [made[2], made[1]] and newer.has_more
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.list(limit=0)


def test_cancel_cancels_the_batch_on_the_server_and_releases_what_never_ran(claude, poems):
    claude.batch_polls = 10**6  # in progress until canceled
    cancel = threading.Event()
    run = TeachingDataRun(load_settings(), GenerateOptions(task="critiques", limit=4, batch_api=True), cancel=cancel)
    worker = threading.Thread(target=run.run)
    worker.start()
    wait_until(lambda: claude.batch_ids and claude.count("/v1/messages/batches/", "GET") >= 1)
    cancel.set()
    worker.join(60)
    assert not worker.is_alive()
    assert claude.count(f"/v1/messages/batches/{claude.batch_ids[0]}/cancel") == 1
    assert run.report.stopped.startswith("cancelled") and len(claude.batch_ids) == 1
    assert not (locations.annotated_dir() / STATE).exists()
    tally = spent(annotated("ledger.jsonl"))
    assert tally.total == 0 and tally.unsettled_calls == 0  # canceled requests cost nothing
