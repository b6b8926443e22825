"""`workshop --batch FILE`: many sessions, unattended, through the same session core.

FILE holds one request per line, or JSONL objects with `prompt` (write with the Poet) or
`poem` (workshop a poem) and optional `rounds`. Each item gets a JSONL transcript and a
Markdown file in the output folder. stdout carries one JSON result per item and nothing
else; progress goes to stderr. A malformed item is reported and skipped; the others run.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from poetry_workshop.errors import ExitCode, WorkshopError
from poetry_workshop.workshop.studio import Studio
from poetry_workshop.workshop.transcript import write_session_files


@dataclass
class BatchItem:
    line: int
    mode: str  # "write" or "workshop"
    text: str
    rounds: int | None


@dataclass
class BadItem:
    line: int
    reason: str


def read_items(path: Path) -> list[BatchItem | BadItem]:
    if not path.exists():
        raise WorkshopError(f"{path}: batch file not found; pass a file with one request per line")
    if path.is_dir():
        raise WorkshopError(f"{path}: is a folder; pass a batch file (one request per line, or JSONL)")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise WorkshopError(f"{path}: cannot read the batch file ({exc.strerror}); check its permissions")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise WorkshopError(f"{path}: not UTF-8 text (byte {exc.start}); save the batch file as UTF-8")
    items: list[BatchItem | BadItem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not stripped.startswith("{"):
            items.append(BatchItem(number, "write", stripped, None))
            continue
        items.append(_parse_json_item(number, stripped))
    if not items:
        raise WorkshopError(f"{path}: the batch file holds no requests; write one request per line")
    return items


def _parse_json_item(number: int, line: str) -> BatchItem | BadItem:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        return BadItem(number, f"invalid JSON ({exc.msg} at column {exc.colno})")
    if not isinstance(obj, dict):
        return BadItem(number, "a JSON line must be an object with 'prompt' or 'poem'")
    unknown = set(obj) - {"prompt", "poem", "rounds"}
    if unknown:
        return BadItem(number, f"unknown field(s) {', '.join(sorted(unknown))}; use prompt, poem, rounds")
    has_prompt, has_poem = "prompt" in obj, "poem" in obj
    if has_prompt == has_poem:
        return BadItem(number, "give exactly one of 'prompt' (a request) or 'poem' (a poem to workshop)")
    text = obj.get("prompt") if has_prompt else obj.get("poem")
    if not isinstance(text, str) or not text.strip():
        return BadItem(number, f"'{'prompt' if has_prompt else 'poem'}' must be non-empty text")
    rounds = obj.get("rounds")
    if rounds is not None and (not isinstance(rounds, int) or isinstance(rounds, bool) or not 1 <= rounds <= 10):
        return BadItem(number, "'rounds' must be a whole number from 1 to 10")
    return BatchItem(number, "write" if has_prompt else "workshop", text, rounds)


def _slug(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())[:6]
    return "-".join(words) or "item"


def run_batch(
    studio: Studio, path: Path, out_dir: Path, rounds: int | None,
    stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr,
) -> ExitCode:
    items = read_items(path)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkshopError(f"{out_dir}: cannot create the output folder ({exc.strerror}); pass another --out")

    def emit(result: dict) -> None:
        stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
        stdout.flush()

    failures = 0
    for index, item in enumerate(items, start=1):
        prefix = f"[{index}/{len(items)}] {path.name}:{item.line}"
        if isinstance(item, BadItem):
            failures += 1
            print(f"{prefix}: skipped: {item.reason}", file=stderr)
            emit({"line": item.line, "status": "skipped", "error": item.reason})
            continue
        print(f"{prefix}: {item.mode} — {item.text.splitlines()[0][:60]}", file=stderr)

        def progress(event, prefix=prefix):
            from poetry_workshop.workshop.session import Notice, StepFinished

            if isinstance(event, StepFinished) and event.stats is not None:
                action = event.node.meta.get("action", event.node.kind)
                s = event.stats
                thought = f" ({s.thinking_tokens} thinking)" if s.thinking_tokens else ""
                print(f"{prefix}:   {action}: {s.generated_tokens} tokens{thought}, {s.tokens_per_second:.0f} tok/s,"
                      f" {s.finish_reason}", file=stderr)
            elif isinstance(event, Notice):
                print(f"{prefix}:   note: {event.text}", file=stderr)

        session = None
        try:
            session = studio.start(item.mode, item.text, item.rounds or rounds, on_event=progress, origin="batch")
            session.run()
            status, error = "ok", None
        except WorkshopError as exc:
            failures += 1
            status, error = "failed", str(exc)
            print(f"{prefix}: failed: {exc}", file=stderr)
        result = {"line": item.line, "status": status, "mode": item.mode}
        if session is not None:
            session.refresh()
            stem = out_dir / f"{item.line:04d}-{_slug(item.text)}"
            jsonl, markdown = write_session_files(session.record, session.tree, stem)
            result.update(session=session.record.id, rounds=session.rounds_done,
                          transcript=str(jsonl), markdown=str(markdown))
        if error:
            result["error"] = error
        emit(result)
    ok = len(items) - failures
    print(f"batch: {ok} of {len(items)} item(s) succeeded; files in {out_dir}", file=stderr)
    return ExitCode.OK if failures == 0 else ExitCode.FAILED
