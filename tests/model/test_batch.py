"""`workshop --batch` on the real starter model: transcripts, stdout as data, bad lines skipped."""

from __future__ import annotations

import json

import pytest

from poetry_workshop.cli.batch_sessions import BadItem, BatchItem, read_items
from poetry_workshop.errors import WorkshopError
from tests.support.cli import run_cli

pytestmark = pytest.mark.model

FIVE = "\n".join([
    "a short poem about a heron in the rain",
    '{"prompt": "a poem about bread rising at four in the morning", "rounds": 2}',
    "",
    "# comments and blank lines are ignored",
    "a poem about my father's boots by the door",
    '{"poem": "my grandmother\'s hands\\nflour to the wrist\\nthe radio low"}',
    "a poem about a bus station at night",
]) + "\n"


def test_five_items_give_five_transcripts_with_two_rounds(tmp_path, small_config):
    batch = tmp_path / "five.txt"
    batch.write_text(FIVE, encoding="utf-8")
    out = tmp_path / "out"
    result = run_cli("--batch", str(batch), "--rounds", "2", "--out", str(out), "--config", str(small_config),
                     timeout=900)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    results = [json.loads(line) for line in lines]  # stdout is only data
    assert all(r["status"] == "ok" for r in results)
    assert [r["mode"] for r in results] == ["write", "write", "write", "workshop", "write"]
    for r in results:
        assert r["rounds"] >= 2
        records = [json.loads(x) for x in open(r["transcript"], encoding="utf-8")]
        assert sum(1 for x in records if x["kind"] == "critique") >= 2
        assert sum(1 for x in records if x["kind"] == "draft") >= 2
        markdown = open(r["markdown"], encoding="utf-8").read()
        assert "## Critique of draft 2 (Educator)" in markdown
        for x in records:
            assert "<|im_start|>" not in x["text"] and "<|im_end|>" not in x["text"]
    assert len(list(out.glob("*.jsonl"))) == 5 and len(list(out.glob("*.md"))) == 5
    assert "starter model — train your own" in result.stderr
    assert "batch: 5 of 5" in result.stderr


def test_malformed_items_are_reported_and_the_rest_run(tmp_path, small_config):
    batch = tmp_path / "mixed.jsonl"
    batch.write_text(
        '{"prompt": "a poem about frost on a windscreen", "rounds": 1}\n'
        '{"prompt": "unterminated\n'
        '{"poem": ""}\n'
        '{"prompt": "x", "poem": "y"}\n',
        encoding="utf-8",
    )
    result = run_cli("--batch", str(batch), "--out", str(tmp_path / "o"), "--config", str(small_config))
    assert result.returncode == 1
    statuses = [json.loads(line)["status"] for line in result.stdout.splitlines()]
    assert statuses == ["ok", "skipped", "skipped", "skipped"]
    assert "mixed.jsonl:2: skipped: invalid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_read_items_parses_lines_and_json(tmp_path):
    path = tmp_path / "b.txt"
    path.write_text('\ufeffplain request\n{"poem": "a\\nb", "rounds": 3}\n{"rounds": 0, "prompt": "z"}\n{"prompt": 5}\n',
                    encoding="utf-8")
    items = read_items(path)
    assert items[0] == BatchItem(1, "write", "plain request", None)
    assert items[1] == BatchItem(2, "workshop", "a\nb", 3)
    assert isinstance(items[2], BadItem) and "rounds" in items[2].reason
    assert isinstance(items[3], BadItem)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# nothing\n", encoding="utf-8")
    with pytest.raises(WorkshopError, match="holds no requests"):
        read_items(empty)
