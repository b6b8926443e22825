"""Spending read back from the ledger: a cap that holds across runs and a `kill -9`, the
price table's tiers and date, and a billing error that stops the run after one call. The
real SDK over real HTTP to the loopback server; `billed` is what the API would charge."""

from __future__ import annotations

import signal

import pytest

from poetry_workshop import locations
from poetry_workshop.config.loader import load_settings
from poetry_workshop.config.schema import Price, PriceTable, PriceTier
from poetry_workshop.pipeline.claude.calls import ClaudeAccessError
from poetry_workshop.pipeline.claude.ledger import PriceBook, SpendTally, Usage, spent
from poetry_workshop.pipeline.data.generation import GenerateOptions, TeachingDataRun
from poetry_workshop.pipeline.jsonl_log import read_jsonl
from tests.claude.loopback import (
    KEY,
    annotated,
    assert_consistent,
    ledger_calls,
    messages_calls,
    spawn_cli,
    wait_until,
)
from tests.support.cli import run_cli


def billed(server, prices: PriceBook) -> float:
    """What the API would charge for every message it composed, read or not."""
    return sum(prices.cost(model, Usage(u["input_tokens"], u["output_tokens"], u["cache_creation_input_tokens"],
                                        u["cache_read_input_tokens"]), batch) for model, u, batch in server.billed)


# ------------------------------------------------------------------------------ the cap


def test_a_target_cap_holds_across_a_kill_and_the_resume_says_what_is_left(claude, monkeypatch):
    """Cap $X, spend most of it, kill -9 with calls in flight, resume with the same cap: the
    ledger's total (the dead run's unsettled calls at their worst case) and what the API
    would bill both stay within the cap, and the resume says what earlier runs spent."""
    monkeypatch.setenv("POETRY_WORKSHOP__GENERATION__MAX_TOKENS__BRIEFS", "400")  # worst case near the real cost
    settings = load_settings()
    prices = PriceBook(settings.generation.prices)
    probe = TeachingDataRun(settings, GenerateOptions(task="briefs", limit=100))
    worst = probe.worst_case(next(probe.pending_items()))
    cap = round(12 * worst, 4)
    env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": claude.base_url}
    args = ["data", "generate", "briefs", "--limit", "100", "--concurrency", "4", "--max-cost", str(cap)]

    claude.latency = 0.2
    proc = spawn_cli(args, env)
    ledger = locations.annotated_dir() / "ledger.jsonl"
    wait_until(lambda: spent(read_jsonl(ledger)[0]).dollars >= 0.6 * cap)  # most of it
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = spent(annotated("ledger.jsonl"))
    assert before.unsettled_calls >= 1  # calls were in flight at the kill: counted at their worst case

    claude.latency = 0.0
    again = run_cli(*args, env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "earlier runs spent $" in again.stderr and "of the $" in again.stderr and "cap is left" in again.stderr
    assert "stopped by --max-cost" in again.stderr and "left" in again.stderr
    tally = spent(annotated("ledger.jsonl"))
    assert tally.total <= cap
    assert billed(claude, prices) <= cap  # the money a person would really pay
    records, _ = assert_consistent("briefs")
    assert 8 <= len(records) < 100

    # A third run has nothing left to spend: it says so and asks for nothing.
    calls = messages_calls(claude)
    third = run_cli(*args, env=env, timeout=120)
    assert third.returncode == 0, third.stderr
    assert messages_calls(claude) == calls
    assert "stopped by --max-cost" in third.stderr or "the cap is reached" in third.stderr


def test_the_cap_of_one_target_does_not_count_another_targets_spending(claude, poems):
    run = TeachingDataRun(load_settings(), GenerateOptions(task="critiques", limit=3))
    run.run()
    other = TeachingDataRun(load_settings(), GenerateOptions(task="critiques", limit=1, max_cost=1.0,
                                                             output=locations.annotated_dir() / "more.jsonl"))
    assert other.spent_before.total == 0
    again = TeachingDataRun(load_settings(), GenerateOptions(task="critiques", limit=5, max_cost=1.0))
    assert again.spent_before.total == pytest.approx(sum(e["cost_usd"] for e in ledger_calls()))


def test_an_unsettled_reservation_counts_at_its_worst_case_until_its_call_settles():
    tally = SpendTally([{"outcome": "started", "call": "a", "reserved_usd": 0.5},
                        {"outcome": "started", "call": "b", "reserved_usd": 0.25},
                        {"outcome": "accepted", "call": "a", "cost_usd": 0.01}])
    assert tally.total == pytest.approx(0.26) and tally.unsettled_calls == 1
    assert "in flight" in tally.describe()
    tally.add({"outcome": "released", "call": "b"})
    assert tally.total == pytest.approx(0.01) and tally.unsettled_calls == 0


# ------------------------------------------------------------------------- prices


def test_a_long_prompt_is_priced_whole_at_its_tier_and_the_estimate_names_date_and_prices():
    table = PriceTable(as_of="2026-10-24", models={"m": Price(1.0, 5.0, 1.25, 0.1, tiers=[
        PriceTier(100_000, 5.0, 25.0, 6.25, 0.5)])})
    book = PriceBook(table)
    short, long_ = Usage(input_tokens=100_000, output_tokens=1000), Usage(input_tokens=100_001, output_tokens=1000)
    assert book.cost("m", short) == pytest.approx(0.1 + 0.005)
    assert book.cost("m", long_) == pytest.approx(5 * (0.100001 + 0.005))
    # An estimate of many calls prices each at the mean prompt, not the sum of them.
    assert book.cost("m", Usage(input_tokens=300_000), calls=3) == pytest.approx(0.3)
    assert book.worst_case("m", 150_000, 1000) == pytest.approx((150_000 * 6.25 + 1000 * 25) / 1e6)
    text = book.describe("m")
    assert "as of 2026-10-24" in text and "above 100,000 prompt tokens $5 input" in text


def test_the_shipped_table_prices_haiku_5_5_five_times_above_100k_tokens():
    book = PriceBook(load_settings().generation.prices)
    base = book.cost("claude-haiku-5-5", Usage(input_tokens=50_000, output_tokens=1000))
    long_ = book.cost("claude-haiku-5-5", Usage(input_tokens=150_000, output_tokens=1000))
    assert base == pytest.approx((50_000 * 0.10 + 1000 * 0.50) / 1e6)
    assert long_ == pytest.approx(5 * (150_000 * 0.10 + 1000 * 0.50) / 1e6)


def test_the_estimate_prints_the_price_date_and_the_models_prices(claude, poems):
    out = run_cli("data", "generate", "critiques", "--limit", "2", "--estimate", "--max-cost", "3",
                  env={"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": claude.base_url})
    assert out.returncode == 0, out.stderr
    as_of = load_settings().generation.prices.as_of
    assert f"claude-sonnet-5-5 prices as of {as_of}" in out.stdout and "$2 input, $10 output" in out.stdout
    assert "cap     $3.00 for critiques.jsonl" in out.stdout


# ------------------------------------------------------------------- stop at once


def test_a_402_stops_a_run_after_one_call_with_one_line(claude, poems):
    claude.faults.append({"status": 402})
    out = run_cli("data", "generate", "critiques", "--limit", "3", "--concurrency", "1",
                  env={"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": claude.base_url})
    assert out.returncode == 2, out.stderr
    assert "refused to bill the account" in out.stderr and "HTTP 402 billing_error" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) <= 3
    assert messages_calls(claude) == 1  # not retried, and no further call
    assert spent(annotated("ledger.jsonl")).total == 0  # the refused call's reservation was released


def test_a_billing_error_lets_the_calls_in_flight_finish_and_keeps_them(claude, poems):
    # The first request of three in flight is refused at once and the other two answer late,
    # so the refusal is seen while they are in flight (with one latency for all three, a
    # success could land first and free a slot before the refusal was read).
    claude.faults.extend([{"status": 402}, {"kind": "timeout", "seconds": 0.5}, {"kind": "timeout", "seconds": 0.5}])
    run = TeachingDataRun(load_settings(), GenerateOptions(task="critiques", limit=10, concurrency=3))
    with pytest.raises(ClaudeAccessError, match="refused to bill"):
        run.run()
    assert messages_calls(claude) == 3  # none started after the refusal
    records, ledger = assert_consistent("critiques")
    assert len(records) == 2 and len(ledger) == 2  # the two in flight are recorded, nothing lost
    assert spent(annotated("ledger.jsonl")).unsettled_calls == 0


@pytest.mark.parametrize("status", [401, 403])
def test_access_errors_are_not_retried_either(claude, poems, status):
    claude.faults.append({"status": status})
    run = TeachingDataRun(load_settings(), GenerateOptions(task="critiques", limit=2, concurrency=1))
    with pytest.raises(ClaudeAccessError):
        run.run()
    assert messages_calls(claude) == 1
