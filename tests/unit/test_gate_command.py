"""`workshop data gate`'s own path (gate_file) when it checks in worker processes: the prompt
versions are worked out while the workers check, and the verdicts are the serial ones, with
the records of an earlier prompt version left out (or kept, on request) as before."""

from __future__ import annotations

import json

import pytest

from poetry_workshop.config.loader import load_settings
from poetry_workshop.errors import ConfigError
from poetry_workshop.pipeline.gate import run as gate_run
from tests.support.gate_corpus import GOOD_CRITIQUE, PRAISE_CRITIQUE, REWRITE_CRITIQUE, UNGROUNDED_CRITIQUE
from tests.unit.test_quality_gate import critique_record


def verdicts(tmp_path, path, name: str, **options) -> tuple[list[str], list[dict], gate_run.GateRun]:
    run = gate_run.gate_file(load_settings(), path, tmp_path / f"{name}.jsonl", **options)
    kept = [json.loads(line)["id"] for line in run.output.read_text().splitlines()]
    rejects = [json.loads(line) for line in run.reject_log.read_text().splitlines()]
    return kept, rejects, run


def test_workers_give_the_serial_verdicts_and_leave_out_older_records(tmp_path, monkeypatch):
    texts = [GOOD_CRITIQUE, PRAISE_CRITIQUE, UNGROUNDED_CRITIQUE, REWRITE_CRITIQUE]
    records = [critique_record(i, texts[i % 4] + f"\n\nNote {i}: try a plainer verb for the last word.")
               for i in range(24)]
    for r in records[::3]:
        r["prompt_version"] = "0123456789"  # an earlier version
    path = tmp_path / "critiques.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    monkeypatch.setattr(gate_run, "default_workers", lambda: 1)
    serial = verdicts(tmp_path, path, "serial")
    serial_all = verdicts(tmp_path, path, "serial-all", include_older_versions=True)
    monkeypatch.setattr(gate_run, "default_workers", lambda: 2)
    monkeypatch.setattr(gate_run, "PARALLEL_FROM", 10)
    parallel = verdicts(tmp_path, path, "parallel")
    parallel_all = verdicts(tmp_path, path, "parallel-all", include_older_versions=True)
    assert parallel[:2] == serial[:2] and parallel_all[:2] == serial_all[:2]
    assert (parallel[2].report.seen, parallel[2].older) == (16, 8)
    assert (parallel_all[2].report.seen, parallel_all[2].older_kept) == (24, True)
    assert serial[0] and serial[1]  # both verdicts occur, so the comparison says something


def test_all_older_records_stop_the_workers_and_write_nothing(tmp_path, monkeypatch):
    records = [{**critique_record(i), "prompt_version": "0123456789"} for i in range(12)]
    path = tmp_path / "old.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    monkeypatch.setattr(gate_run, "default_workers", lambda: 2)
    monkeypatch.setattr(gate_run, "PARALLEL_FROM", 10)
    with pytest.raises(ConfigError, match="earlier prompt version"):
        gate_run.gate_file(load_settings(), path, tmp_path / "none.jsonl")
    assert not (tmp_path / "none.jsonl").exists()


def test_the_command_needs_no_claude_sdk_once_the_output_formats_are_remembered(tmp_path):
    import subprocess
    import sys

    from poetry_workshop.pipeline.data.tasks import TASKS

    for task in TASKS.values():
        task.version()  # the first run's work: the formats, transformed by the SDK, are remembered
    path = tmp_path / "critiques.jsonl"
    path.write_text("".join(json.dumps(critique_record(i)) + "\n" for i in range(3)), encoding="utf-8")
    code = ("import sys; from poetry_workshop.cli.main import main; code = main(['data', 'gate', sys.argv[1]]); "
            "print('anthropic' in sys.modules, code)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "False 0"
