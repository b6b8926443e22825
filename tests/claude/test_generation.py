"""The teaching-data generators end to end: the real anthropic SDK over real HTTP to the
loopback Claude server (tests/claude_server.py), reached through ANTHROPIC_BASE_URL."""

from __future__ import annotations

import json
import signal
import time

import pytest

from poetry_workshop import locations
from poetry_workshop.config.loader import load_settings
from poetry_workshop.pipeline.data.generation import GenerateOptions, TeachingDataRun
from tests.claude.loopback import (
    KEY,
    annotated,
    assert_consistent,
    generate,
    ledger_calls,
    line_count,
    messages_calls,
    spawn_cli,
    wait_until,
)
from tests.support.cli import run_cli

# ------------------------------------------------------------------- the seven tasks


def test_all_seven_tasks_run_from_the_command_line_and_a_rerun_spends_nothing(claude, poems):
    env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": claude.base_url}
    for task in ("critiques", "briefs", "lessons", "autopsies", "comparisons", "dialogues", "poet-pairs"):
        out = run_cli("data", "generate", task, "--limit", "2", env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "accepted" in out.stdout and "$/accepted" in out.stdout  # the summary table
        records, ledger = assert_consistent(task)
        assert len(records) == 2
        for r in records:
            assert r["task"] == task and r["model"] == "claude-sonnet-5-5" and r["prompt_version"]
            assert r["usage"]["output_tokens"] > 0 and r["request_id"].startswith("req_")
    dialogues = annotated("dialogues.jsonl")
    critique_ids = {r["id"] for r in annotated("critiques.jsonl")}
    assert {r["inputs"]["critique_id"] for r in dialogues} <= critique_ids
    assert {r["inputs"]["brief_id"] for r in annotated("poet-pairs.jsonl")} <= {r["id"] for r in annotated("briefs.jsonl")}
    assert set(annotated("poet-pairs.jsonl")[0]["output"]) == {"poem", "critique", "revision"}

    before = messages_calls(claude)
    again = run_cli("data", "generate", "critiques", "--limit", "2", env=env, timeout=120)
    assert again.returncode == 0 and "done already" in again.stderr
    assert messages_calls(claude) == before


def test_requests_carry_the_cached_persona_prefix_and_no_unset_sampling(claude, poems):
    generate("critiques", limit=3, concurrency=1)
    bodies = [r["body"] for r in claude.requests if r["path"].endswith("/v1/messages")]
    for body in bodies:
        assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
        assert "How a critique is built" in body["system"][0]["text"]
        assert body["output_config"]["format"]["type"] == "json_schema" and "tools" not in body
        assert "temperature" not in body and "top_p" not in body
    ledger = ledger_calls()
    assert ledger[0]["usage"]["cache_write_tokens"] > 1000
    assert all(e["usage"]["cache_read_tokens"] == ledger[0]["usage"]["cache_write_tokens"] for e in ledger[1:])


def test_sampling_parameters_are_sent_when_configured(claude, poems, monkeypatch):
    monkeypatch.setenv("POETRY_WORKSHOP__GENERATION__CLAUDE__TEMPERATURE", "0.9")
    generate("critiques", limit=1)
    body = next(r["body"] for r in claude.requests if r["path"].endswith("/v1/messages"))
    assert body["temperature"] == 0.9


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("fault", [
    {"status": 429, "retry_after": 0}, {"status": 529}, {"status": 500}, {"status": 503},
    {"kind": "timeout", "seconds": 6}, {"kind": "reset"}, {"kind": "midstream_overload"},
], ids=["429", "529", "500", "503", "timeout", "reset", "midstream-overload"])
def test_transient_faults_are_retried_and_the_record_is_made(claude, poems, fault, monkeypatch):
    if fault.get("kind") == "timeout":
        monkeypatch.setenv("POETRY_WORKSHOP__GENERATION__CLAUDE__TIMEOUT_S", "0.5")
    claude.faults.append(fault)
    _, report = generate("critiques", limit=1, concurrency=1)
    assert (report.accepted, report.failed) == (1, 0)
    (entry,) = ledger_calls()
    assert entry["attempts"] == 2 and entry["outcome"] == "accepted"


def test_retry_after_is_honoured(claude, poems):
    claude.faults.append({"status": 429, "retry_after": 1})
    start = time.monotonic()
    _, report = generate("critiques", limit=1, concurrency=1)
    assert report.accepted == 1 and time.monotonic() - start >= 1.0


def test_a_fault_that_outlives_its_retries_is_recorded_as_failed_and_the_run_goes_on(claude, poems, monkeypatch):
    monkeypatch.setenv("POETRY_WORKSHOP__GENERATION__CLAUDE__MAX_RETRIES", "2")
    claude.faults.extend([{"status": 529}] * 3)
    _, report = generate("critiques", limit=3, concurrency=1)
    assert report.failed == 1 and report.accepted == 3  # the run replaced it with the next poem
    failed = [e for e in ledger_calls() if e["outcome"] == "failed"]
    assert len(failed) == 1 and failed[0]["attempts"] == 3
    assert "529 overloaded_error" in failed[0]["reason"] and failed[0]["request_id"].startswith("req_")
    assert any("failed after 3 attempt(s)" in w for w in report.warnings)


def test_a_bad_request_is_not_retried(claude, poems):
    claude.faults.append({"status": 400})
    _, report = generate("critiques", limit=1, concurrency=1)
    assert report.failed == 1 and report.accepted == 1
    assert messages_calls(claude) == 2  # one 400, then the next poem; no retry of the first


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_stop_the_run_with_an_actionable_message_and_no_key(claude, poems, status):
    claude.faults.extend([{"status": status}])
    out = run_cli("data", "generate", "critiques", "--limit", "3", "--concurrency", "1",
                  env={"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": claude.base_url})
    assert out.returncode == 2, out.stderr
    assert "the Claude API refused" in out.stderr and "ANTHROPIC_API_KEY" in out.stderr
    assert "Traceback" not in out.stderr
    assert messages_calls(claude) == 1
    for path in locations.annotated_dir().glob("*"):
        assert KEY not in path.read_text(encoding="utf-8")
    assert KEY not in out.stderr + out.stdout


def test_a_missing_key_is_one_clear_line(poems, monkeypatch, tmp_path):
    out = run_cli("data", "generate", "critiques", "--limit", "1", env={"ANTHROPIC_API_KEY": ""})
    assert out.returncode == 2
    assert "ANTHROPIC_API_KEY is not set" in out.stderr and "Traceback" not in out.stderr


def test_the_key_can_come_from_a_dot_env_file(claude, poems, monkeypatch, tmp_path):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"ANTHROPIC_API_KEY={KEY}\n", encoding="utf-8")
    _, report = generate("critiques", limit=1)
    assert report.accepted == 1


@pytest.mark.parametrize("fault,reason", [
    ({"kind": "max_tokens"}, "stop_reason max_tokens"),
    ({"kind": "refusal"}, "stop_reason refusal"),
    ({"kind": "invalid"}, "invalid output"),
    ({"kind": "text", "text": "Here is my critique."}, "invalid output"),
], ids=["max_tokens", "refusal", "invalid", "no-tool-call"])
def test_incomplete_or_invalid_output_goes_to_the_reject_log_never_the_data(claude, poems, fault, reason):
    claude.faults.append(fault)
    _, report = generate("critiques", limit=1, concurrency=1)
    assert (report.accepted, report.rejected) == (1, 1)
    (reject,) = annotated("critiques.rejects.jsonl")
    assert reason in reject["reason"] and reject["id"] not in {r["id"] for r in annotated("critiques.jsonl")}
    # The next run does not pay for the rejected item again.
    before = messages_calls(claude)
    generate("critiques", limit=2, concurrency=1)
    assert messages_calls(claude) == before + 1


# -------------------------------------------------------------------------- spending


def test_max_cost_stops_before_the_call_that_could_pass_it(claude):
    run = TeachingDataRun(load_settings(), GenerateOptions(task="briefs", limit=50))
    worst = run.worst_case(next(run.pending_items()))
    cap = worst * 1.5  # the first call fits at its worst case; later ones once spending leaves room
    _, report = generate("briefs", limit=50, concurrency=2, max_cost=cap)
    assert report.stopped.startswith("stopped by --max-cost") and 2 <= report.accepted < 50
    records, ledger = assert_consistent("briefs")
    assert len(records) == report.accepted == len(ledger)
    spent = sum(e["cost_usd"] for e in ledger)
    assert spent <= cap < spent + worst  # stopped only because the next call could have passed it


def test_estimate_counts_tokens_and_spends_nothing(claude, poems):
    out = run_cli("data", "generate", "critiques", "--limit", "5", "--estimate",
                  env={"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": claude.base_url})
    assert out.returncode == 0, out.stderr
    assert "estimate for 5 critiques call(s)" in out.stdout and "count-tokens endpoint" in out.stdout
    assert "$" in out.stdout and "--batch-api" in out.stdout
    assert messages_calls(claude) == 0 and claude.count("/v1/messages/count_tokens") > 0
    assert not (locations.annotated_dir() / "critiques.jsonl").exists()


# ------------------------------------------------------------- nothing lost, nothing twice


def test_a_kill_mid_run_loses_and_duplicates_nothing(claude, monkeypatch):
    claude.latency = 0.15
    env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": claude.base_url}
    out = locations.annotated_dir() / "briefs.jsonl"
    proc = spawn_cli(["data", "generate", "briefs", "--limit", "30", "--concurrency", "4"], env)
    wait_until(lambda: line_count(out) >= 6)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # A crash mid-write leaves half a line; the rerun must set it aside, not glue onto it.
    with out.open("a", encoding="utf-8") as fh:
        fh.write('{"id": "briefs-torn", "task": "bri')
    claude.latency = 0.0
    again = run_cli("data", "generate", "briefs", "--limit", "30", "--concurrency", "4", env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "was cut off" in again.stderr
    records, ledger = assert_consistent("briefs")
    assert len(records) == 30
    accepted_calls = [e for e in ledger if e["outcome"] == "accepted"]
    assert len(accepted_calls) - len(records) <= 4  # at most the calls in flight at the kill were paid twice


# --------------------------------------------------------------------- batches API


def test_batch_api_matches_results_by_custom_id_and_retries_errored_and_expired(claude, poems):
    items = list(TeachingDataRun(load_settings(), GenerateOptions(task="critiques", limit=5)).pending_items())
    claude.batch_result_faults.update({items[0].id: "errored", items[1].id: "expired", items[2].id: "invalid"})
    _, report = generate("critiques", limit=5, batch_api=True)
    records, ledger = assert_consistent("critiques")
    assert len(records) == 5 and report.failed == 1
    assert claude.count("/v1/messages/batches") == 2  # a second batch for the errored and the expired one
    assert items[0].id in {r["id"] for r in records} and items[1].id in {r["id"] for r in records}
    assert items[2].id not in {r["id"] for r in records}  # invalid: failed, not retried
    assert all(e["batch"] and e["batch_id"].startswith("msgbatch_") for e in ledger)
    direct = TeachingDataRun(load_settings(), GenerateOptions(task="critiques")).prices
    for e in ledger:  # half price
        from poetry_workshop.pipeline.claude.ledger import Usage
        assert e["cost_usd"] == pytest.approx(direct.cost("claude-sonnet-5-5", Usage(**e["usage"])) / 2, abs=1e-8)
    assert not (locations.annotated_dir() / "critiques.batch.json").exists()


def test_a_restart_resumes_polling_instead_of_resubmitting(claude, poems):
    claude.batch_polls = 10**6  # the batch stays in progress until the test lets it end
    env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": claude.base_url}
    state = locations.annotated_dir() / "critiques.batch.json"
    proc = spawn_cli(["data", "generate", "critiques", "--limit", "4", "--batch-api"], env)
    wait_until(lambda: state.exists() and claude.count("/v1/messages/batches/", "GET") >= 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    batch_id = json.loads(state.read_text(encoding="utf-8"))["batch_id"]
    claude.batch_polls = 0
    again = run_cli("data", "generate", "critiques", "--limit", "4", "--batch-api", env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    assert f"resuming batch {batch_id}" in again.stderr
    assert claude.count("/v1/messages/batches") == 1  # submitted once, in the first run
    records, _ = assert_consistent("critiques")
    assert len(records) == 4 and not state.exists()


# ------------------------------------------------------------------- bad input


def test_bad_flags_and_missing_inputs_are_one_line_each(claude, poems, tmp_path):
    env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": claude.base_url}
    cases = [
        (["data", "generate", "critiques", "--questions", "q.txt"], "--questions is for the lessons task"),
        (["data", "generate", "dialogues"], "no critiques to build on"),
        (["data", "generate", "lessons", "--questions", str(tmp_path / "none.txt")], "no such file"),
        (["data", "generate", "critiques", "--model", "claude-unknown"], "no price for model 'claude-unknown'"),
        (["data", "generate", "critiques", "--limit", "0"], "--limit must be at least 1"),
        (["data", "generate", "critiques", "--max-cost", "free"], "--max-cost must be dollars"),
        (["data", "generate", "sonnets"], "invalid choice"),
    ]
    for args, message in cases:
        out = run_cli(*args, env=env)
        assert out.returncode == 2, (args, out.stderr)
        assert message in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
    assert messages_calls(claude) == 0


def test_records_of_an_older_prompt_version_are_kept_and_named(claude, poems):
    path = locations.annotated_dir() / "critiques.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"id": "critiques-old", "task": "critiques", "prompt_version": "0000000000",
                                "inputs": {}, "output": {}}) + "\n", encoding="utf-8")
    _, report = generate("critiques", limit=1)
    assert report.accepted == 1
    assert any("earlier prompt version" in w for w in report.warnings)
    assert len(annotated("critiques.jsonl")) == 2
