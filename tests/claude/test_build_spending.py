"""A build's spend cap covers every run of the build: cap $X, spend most of it, `kill -9` the
build process (a real subprocess against the loopback Claude server), resume → the ledger's
total for the build stays within the cap, and the build screen shows the whole total."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

from poetry_workshop import locations
from poetry_workshop.config.loader import load_settings
from poetry_workshop.pipeline.build.chain import BuildChain
from poetry_workshop.pipeline.build.plan import ChainPlan
from poetry_workshop.pipeline.build.spending import build_tally, read_record
from poetry_workshop.pipeline.claude.ledger import PriceBook, spent
from poetry_workshop.pipeline.data.generation import GenerateOptions, TeachingDataRun
from poetry_workshop.pipeline.jsonl_log import read_jsonl
from poetry_workshop.tui.app import create_app
from tests.claude.loopback import KEY, wait_until
from tests.claude.test_spending import billed
from tests.support.cli import ROOT
from tests.support.studio import make_studio

# The chain's generation stages only: gate, prepare and training are other tests' business.
RUN_GENERATION = """
import sys
from poetry_workshop.pipeline.build.chain import BuildChain
from poetry_workshop.pipeline.build.plan import ChainPlan
chain = BuildChain(ChainPlan(roles=(), targets={"briefs": 100}, max_cost=float(sys.argv[1]), concurrency=4))
chain.state.stages = [s for s in chain.state.stages if s.id.startswith("generate:")]
chain.run()
"""


def generation_chain(cap: float, lines: list[str]) -> BuildChain:
    chain = BuildChain(ChainPlan(roles=(), targets={"briefs": 100}, max_cost=cap, concurrency=4), log=lines.append)
    chain.state.stages = [s for s in chain.state.stages if s.id.startswith("generate:")]
    return chain


async def test_a_build_cap_holds_across_a_kill_and_the_build_screen_shows_the_whole_total(claude, monkeypatch,
                                                                                         tmp_path):
    monkeypatch.setenv("POETRY_WORKSHOP__GENERATION__MAX_TOKENS__BRIEFS", "400")  # worst case near the real cost
    settings = load_settings()
    probe = TeachingDataRun(settings, GenerateOptions(task="briefs", limit=100))
    cap = round(12 * probe.worst_case(next(probe.pending_items())), 4)

    claude.latency = 0.2
    ledger = locations.annotated_dir() / "ledger.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", RUN_GENERATION, str(cap)], cwd=ROOT,
                            env={**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": claude.base_url},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until(lambda: spent(read_jsonl(ledger)[0]).dollars >= 0.6 * cap)  # most of the cap
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = read_record()
    assert first is not None and not first.finished
    earlier = build_tally(first.build).total

    # The resume is the same build: it starts from what the ledger says, not from $0.
    claude.latency = 0.0
    lines: list[str] = []
    chain = generation_chain(cap, lines)
    state = await asyncio.to_thread(chain.run)  # the chain runs its own event loop, as on the app's thread
    assert chain.build_id == first.build
    assert chain.spent_earlier == earlier > 0
    assert any("Claude spending of this build" in line and "in earlier runs" in line and "left" in line
               for line in lines), lines
    assert any("stopped by the build's spend cap" in line for line in lines), lines
    total = build_tally(first.build).total
    assert total <= cap
    assert billed(claude, PriceBook(settings.generation.prices)) <= cap  # what would really be paid
    assert chain.spending.total == earlier + state.dollars
    assert abs(chain.spending.total - total) < 1e-6

    # The app, opened afterwards, shows the whole build's total, not the last run's.
    app = create_app(make_studio(tmp_path, settings=load_settings(environ={})))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f5")
        await pilot.pause()
        totals = str(app.screen.query_one("#build-totals").render())
        assert f"Claude ${total:.4f} spent by this build" in totals and f"cap ${cap:.2f}" in totals
    assert state.dollars < total  # this run's part alone would have shown less
