"""The headless front ends on the real starter model, as a person runs them."""

from __future__ import annotations

import pytest

from tests.support.cli import run_cli

pytestmark = pytest.mark.model


def test_models_lists_each_role_with_size_architecture_and_template(starter_gguf):
    result = run_cli("models")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith(("educator", "poet"))]
    assert len(rows) == 2
    for row in rows:
        assert str(starter_gguf) in row and "98 MB" in row and "llama" in row and "chatml" in row
    assert "starter model — train your own" in result.stdout


def test_write_prints_the_poem_and_critiques_and_stores_the_session(small_config):
    result = run_cli("write", "a poem about a heron at dusk", "--rounds", "2", "--config", str(small_config))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for heading in ("## Brief (Educator)", "## Draft 1 (Poet)", "## Critique of draft 1 (Educator)",
                    "## Draft 2 (Poet)", "## Critique of draft 2 (Educator)", "## Current draft"):
        assert heading in out
    assert "<|im_start|>" not in out and "<|im_end|>" not in out
    assert "starter model — train your own" in result.stderr
    assert "· Poet: revision…" in result.stderr  # progress goes to stderr, not stdout
    assert "· Poet" not in out
    listing = run_cli("sessions")
    assert "a poem about a heron at dusk" in listing.stdout and " 2 draft(s)" in listing.stdout
    session_id = listing.stdout.split()[0]
    shown = run_cli("sessions", "show", session_id)
    assert shown.stdout == out


def test_critique_workshops_a_poem_from_stdin(small_config):
    poem = "The kettle ticks as it cools.\nMy father's boots by the door,\nlaces knotted twice."
    result = run_cli("critique", "-", "--config", str(small_config), stdin=poem)
    assert result.returncode == 0, result.stderr
    assert "## Draft 1 (you)" in result.stdout and "## Critique of draft 1 (Educator)" in result.stdout
    assert "The kettle ticks as it cools." in result.stdout


def test_resume_finishes_an_interrupted_session(small_config, tmp_path):
    first = run_cli("write", "a poem about moths at a porch light", "--rounds", "1", "--config", str(small_config))
    assert first.returncode == 0, first.stderr
    session_id = run_cli("sessions").stdout.split()[0]
    resumed = run_cli("sessions", "resume", session_id, "--rounds", "2", "--config", str(small_config))
    assert resumed.returncode == 0, resumed.stderr
    assert "## Critique of draft 2 (Educator)" in resumed.stdout
    exported = tmp_path / "s.md"
    assert run_cli("sessions", "export", session_id, "--out", str(exported)).returncode == 0
    assert exported.read_text(encoding="utf-8") == resumed.stdout


def test_a_pipeline_command_without_its_packages_names_the_set_up_step(monkeypatch, capsys):
    from poetry_workshop.cli.data import DataCommand
    from poetry_workshop.cli.main import main

    def missing(self, args):
        raise ModuleNotFoundError("No module named 'anthropic'", name="anthropic")

    monkeypatch.setattr(DataCommand, "run", missing)
    assert main(["data", "generate", "critiques"]) == 2
    err = capsys.readouterr().err
    assert "'anthropic' package" in err and "bash scripts/setup.sh --pipeline" in err
