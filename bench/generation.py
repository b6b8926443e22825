"""Benchmark of the teaching-data engine against the loopback Claude server (a benchmark,
not a test: it prints figures).

The server (tests/claude_server.py) answers every request after a fixed latency, over real
HTTP, through the real anthropic SDK, and reports cache reads for repeated cached prefixes
as the API does. Three runs of the same task, in this one process:

1. serial: `--requests` briefs at concurrency 1, prompt caching on;
2. concurrent: the same at `--concurrency` (default 8), prompt caching on;
3. uncached: the concurrent run again with prompt caching off.

Goals: concurrent wall time <= 0.2 x serial; the ledger's input cost with caching <= 0.5 x
without it.

Usage: .venv/bin/python -m bench.generation [--requests N] [--concurrency N] [--latency S]
Ends with one `goal <name>: <measured> (target <target>) met|missed` line per goal.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from poetry_workshop.config.loader import load_settings
from poetry_workshop.pipeline.claude.ledger import PriceBook, Usage, is_call
from poetry_workshop.pipeline.data.generation import GenerateOptions, TeachingDataRun
from poetry_workshop.pipeline.jsonl_log import read_jsonl
from tests.fakes.claude_server import ClaudeServer

ROOT = Path(__file__).resolve().parent.parent

KEY = "bench-key"


def one_run(folder: Path, requests: int, concurrency: int, cache: bool) -> tuple[float, float, int]:
    """Wall seconds, ledger input dollars and accepted records of one fresh run."""
    os.environ["POETRY_WORKSHOP__GENERATION__CLAUDE__PROMPT_CACHE"] = "true" if cache else "false"
    settings = load_settings()
    output = folder / "briefs.jsonl"
    run = TeachingDataRun(settings, GenerateOptions(task="briefs", limit=requests, concurrency=concurrency,
                                                    output=output))
    start = time.perf_counter()
    report = run.run()
    seconds = time.perf_counter() - start
    ledger, _ = read_jsonl(folder / "ledger.jsonl")
    book = PriceBook(settings.generation.prices)
    input_dollars = sum(book.input_cost(e["model"], Usage(**e["usage"])) for e in ledger if is_call(e))
    return seconds, input_dollars, report.accepted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds the server waits per request")
    args = parser.parse_args()

    with ClaudeServer(api_key=KEY, latency=args.latency) as server, tempfile.TemporaryDirectory() as tmp:
        os.environ.update({"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": server.base_url,
                           "POETRY_WORKSHOP_DATA": str(Path(tmp) / "data")})
        results = {}
        for name, concurrency, cache in (("serial", 1, True), ("concurrent", args.concurrency, True),
                                         ("uncached", args.concurrency, False)):
            folder = Path(tmp) / name
            seconds, dollars, accepted = one_run(folder, args.requests, concurrency, cache)
            results[name] = (seconds, dollars)
            print(f"{name:<10} concurrency {concurrency}  cache {'on ' if cache else 'off'}  {accepted} records  "
                  f"{seconds:6.2f} s  ({args.requests / seconds:5.1f} req/s)  ledger input cost ${dollars:.4f}")

    speed = results["concurrent"][0] / results["serial"][0]
    cost = results["concurrent"][1] / results["uncached"][1]
    print(f"goal concurrency_time_ratio: {speed:.3f} (target <= 0.2) {'met' if speed <= 0.2 else 'missed'}")
    print(f"goal cached_input_cost_ratio: {cost:.3f} (target <= 0.5) {'met' if cost <= 0.5 else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
